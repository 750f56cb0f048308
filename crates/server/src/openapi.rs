//! The OpenAPI document. Its operations come from the router itself ([`crate::routes::api_routes`]
//! registers each handler with `routes!`, which documents it); this module adds what is common
//! to all of them: the info, the security schemes, and the error answers every route can give,
//! each with the one error body. It is served at `/api/v1/openapi.json` and checked in at
//! `docs/openapi.json` (a test fails when they drift apart, another when a served `/api/`
//! route is missing from it).

use std::sync::OnceLock;

use axum::response::IntoResponse;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::auth::SESSION_COOKIE;
use crate::error::ErrorBody;

/// The document's frame; the router fills in the paths.
#[derive(OpenApi)]
#[openapi(
    info(title = "Logbook API", description = "The audit log of the platform: ingestion, queries and exports, checkpoints and proofs, and the accounts that read it. Every error is answered with the `ErrorBody` JSON."),
    components(schemas(ErrorBody)),
    tags(
        (name = "ingestion", description = "Services record events with an API token."),
        (name = "query", description = "Reading and exporting the audit log (a signed-in user)."),
        (name = "integrity", description = "Checkpoints and proofs anyone can check."),
        (name = "session", description = "Signing in and out."),
        (name = "users", description = "Management users and the first admin."),
        (name = "invitations", description = "Invitation links."),
        (name = "protected_users", description = "The accounts in the protected scope."),
        (name = "settings", description = "The platform's settings."),
        (name = "account", description = "One's own password and TOTP."),
        (name = "operations", description = "Health and metrics."),
    ),
    modifiers(&SecuritySchemes),
)]
#[derive(Debug)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The session cookie that `POST /api/v1/session` sets (named `__Host-logbook_session` when the public URL is https).",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's `csrf_token`, required with the session on every state-changing request.",
            ))),
        );
    }
}

/// The error answers that follow from what an operation takes, added to every operation of the
/// router (after `routes!` collected them, hence not an `#[openapi]` modifier) so that none can
/// be forgotten: 400 for a bad parameter or body, 401/403 for its authentication, 404
/// for an id in the path, 408/413 for a body, 503 when the log cannot store or read. Every error
/// answer, these and the ones a handler documents itself, carries the `ErrorBody` schema.
struct ErrorAnswers;

impl Modify for ErrorAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                add_error_answers(op);
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head]
        .into_iter()
        .filter_map(Option::as_mut)
}

fn add_error_answers(op: &mut Operation) {
    let schemes: Vec<String> = op
        .security
        .iter()
        .flatten()
        .filter_map(|req| serde_json::to_value(req).ok())
        .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
        .flatten()
        .collect();
    let params = op.parameters.as_deref().unwrap_or_default();
    let in_path = params.iter().any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path));
    let has_params = !params.is_empty();
    let has_body = op.request_body.is_some();
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    if has_params || has_body {
        wanted.push(("400", "a bad parameter or body; nothing was changed"));
    }
    if schemes.iter().any(|s| s == "session") {
        wanted.push(("401", "`unauthenticated`: sign in first"));
        wanted.push(("403", "`forbidden` for this role, or `csrf`: the X-CSRF-Token header is missing or wrong"));
    }
    if schemes.iter().any(|s| s == "api_token") {
        wanted.push(("401", "`unauthorized`: a missing, unknown or revoked API token"));
    }
    if in_path {
        wanted.push(("404", "`not_found`: no such id"));
    }
    if has_body {
        wanted.push(("408", "`request_timeout`: the body did not arrive in time"));
        wanted.push(("413", "`payload_too_large`"));
    }
    if !schemes.is_empty() || has_body {
        wanted.push(("503", "`unavailable`: the log cannot store or read right now; retry"));
    }
    for (status, description) in wanted {
        op.responses.responses.entry(status.to_owned()).or_insert_with(|| error_response(description));
    }
    for (status, resp) in op.responses.responses.iter_mut() {
        if status.starts_with('4') || status.starts_with('5') {
            if let RefOr::T(resp) = resp {
                if resp.content.is_empty() {
                    resp.content.insert("application/json".to_owned(), error_content());
                }
            }
        }
    }
}

fn error_content() -> Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build()
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(ResponseBuilder::new().description(description).content("application/json", error_content()).build())
}

/// The document of the router's routes, as served.
pub fn api_doc() -> utoipa::openapi::OpenApi {
    let mut doc = crate::routes::api_routes().into_openapi();
    ErrorAnswers.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The served document as pretty JSON (what `docs/openapi.json` holds).
pub fn document() -> String {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| api_doc().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))).clone()
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "the OpenAPI 3.1 document of this API", body = Object, content_type = "application/json")))]
pub async fn serve() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], document())
}
