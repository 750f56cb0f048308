//! The OpenAPI document, generated from the handlers and checked in at `docs/openapi.json`
//! (a test fails when they drift apart).

use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{events, health, integrity, query};

#[derive(OpenApi)]
#[openapi(
    info(title = "Logbook API", description = "The audit log of the platform: ingestion, queries and exports, checkpoints and proofs."),
    paths(
        health::healthz, health::readyz, health::metrics,
        integrity::checkpoint, integrity::public_key, integrity::inclusion, integrity::consistency,
        events::ingest,
        query::list, query::export, query::users_in_log,
    ),
    components(schemas(
        crate::error::ErrorBody, crate::error::ErrorDetail,
        integrity::InclusionProofBody, integrity::ConsistencyProofBody,
        events::EventInput, events::ActorInput, events::TargetInput, events::SourceInput, events::IngestResponse,
        query::EventList, query::UserList,
    )),
    modifiers(&BearerToken),
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

pub async fn serve() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], document())
}
