use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use logbook_core::OrgSlug;
use logbook_store::Org;
use tower_http::trace::TraceLayer;

use crate::metrics::StatusLabel;
use crate::{ApiError, AppState};

pub mod accounts;
pub mod events;
pub mod health;
pub mod integrity;
pub mod query;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/openapi.json", get(crate::openapi::serve))
        .route("/api/v1/checkpoint", get(integrity::checkpoint))
        .route("/api/v1/public-key", get(integrity::public_key))
        .route("/api/v1/proof/inclusion", get(integrity::inclusion))
        .route("/api/v1/proof/consistency", get(integrity::consistency))
        .route("/api/v1/events", post(events::ingest).get(query::list))
        .route("/api/v1/events/export", get(query::export))
        .route("/api/v1/users-in-log", get(query::users_in_log))
        .route("/api/v1/session", post(accounts::sign_in).get(accounts::session).delete(accounts::sign_out))
        .route("/api/v1/setup", post(accounts::setup))
        .route("/api/v1/users", get(accounts::list_users).post(accounts::add_user))
        .route("/api/v1/users/{id}", patch(accounts::set_role).delete(accounts::delete_user))
        .route("/api/v1/invitations", get(accounts::list_invitations).post(accounts::invite))
        .route("/api/v1/invitations/accept", post(accounts::accept_invitation))
        .route("/api/v1/invitations/{id}", delete(accounts::revoke_invitation))
        .route("/api/v1/protected-users", get(accounts::list_protected).post(accounts::add_protected))
        .route("/api/v1/protected-users/import", post(accounts::import_protected))
        .route("/api/v1/protected-users/{id}", delete(accounts::remove_protected))
        .route("/api/v1/settings", get(accounts::get_settings).patch(accounts::update_settings))
        .route("/api/v1/account/password", put(accounts::change_password))
        .route("/api/v1/account/totp", post(accounts::begin_totp).delete(accounts::remove_totp))
        .route("/api/v1/account/totp/confirm", post(accounts::confirm_totp))
        .merge(crate::console::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), common_headers))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// Counts responses and sets the headers every answer carries.
async fn common_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    state.metrics.http_responses.get_or_create(&StatusLabel { status: resp.status().as_u16() }).inc();
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// The organization a public request names with `?org=`, or the platform's own.
pub async fn resolve_org(state: &AppState, org: Option<&str>) -> Result<Org, ApiError> {
    match org {
        None => Ok(state.default_org.clone()),
        Some(s) => {
            let slug = OrgSlug::parse(s).map_err(|e| ApiError::bad_request("bad_query", e.to_string()))?;
            state.log.existing_org(&slug).await?.ok_or_else(|| ApiError::NotFound("no such organization".into()))
        }
    }
}
