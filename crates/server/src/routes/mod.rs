use std::any::Any;
use std::sync::Arc;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt;
use logbook_core::OrgSlug;
use logbook_store::Org;
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::metrics::{Metrics, StatusLabel};
use crate::{ApiError, AppState};

pub mod account;
pub mod events;
pub mod health;
pub mod integrity;
pub mod invitations;
pub mod protected_users;
pub mod query;
pub mod session;
pub mod settings;
pub mod users;

/// Every route of the HTTP API with its documentation: `routes!` registers a handler under the
/// method and path of its `#[utoipa::path]` and adds that operation (and the schemas it names)
/// to the OpenAPI document, so a route cannot be served without being documented. The console's
/// pages are not part of the API and are added beside it in [`router`].
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(crate::openapi::serve))
        .routes(routes!(integrity::checkpoint))
        .routes(routes!(integrity::public_key))
        .routes(routes!(integrity::inclusion))
        .routes(routes!(integrity::consistency))
        .routes(routes!(integrity::witnesses))
        .routes(routes!(events::ingest, query::list))
        .routes(routes!(query::export))
        .routes(routes!(query::users_in_log))
        .routes(routes!(session::sign_in, session::session, session::sign_out))
        .routes(routes!(users::setup))
        .routes(routes!(users::list_users, users::add_user))
        .routes(routes!(users::set_role, users::delete_user))
        .routes(routes!(users::sign_out_everywhere))
        .routes(routes!(invitations::list_invitations, invitations::invite))
        .routes(routes!(invitations::accept_invitation))
        .routes(routes!(invitations::revoke_invitation))
        .routes(routes!(protected_users::list_protected, protected_users::add_protected))
        .routes(routes!(protected_users::import_protected))
        .routes(routes!(protected_users::remove_protected))
        .routes(routes!(settings::get_settings, settings::update_settings))
        .routes(routes!(account::change_password))
        .routes(routes!(account::begin_totp, account::remove_totp))
        .routes(routes!(account::confirm_totp))
        .routes(routes!(account::list_sessions, account::end_other_sessions))
        .routes(routes!(account::end_session))
}

pub fn router(state: AppState) -> Router {
    let (api, _) = api_routes().split_for_parts();
    api.merge(crate::console::router())
        .fallback(not_found)
        // For the extractors that read a body themselves (the console's import form); `read_body`
        // holds the others to their own limits.
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), read_body))
        .layer(catch_panics(state.metrics.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), common_headers))
        .layer(crate::request_log::layer())
        .with_state(state)
}

/// The largest request body of a JSON request or a console form.
pub const MAX_FORM_BODY: usize = 64 * 1024;
/// The largest protected-users import (CSV, or the console's form carrying it): 10,000 rows.
pub const MAX_IMPORT_BODY: usize = 4 * 1024 * 1024;

/// The most a request body may be on `path`.
fn body_limit(path: &str) -> usize {
    match path {
        "/api/v1/events" => events::MAX_BODY,
        "/api/v1/protected-users/import" | "/protected-users/import" => MAX_IMPORT_BODY,
        _ => MAX_FORM_BODY,
    }
}

/// How much of a refused body is still read and thrown away (within `body_read_timeout`), so
/// that a client that sends its body without waiting for `100 Continue` reads the 413 rather
/// than a reset connection. A larger declared body is refused and the connection closed at once.
const MAX_DRAIN: u64 = 16 * 1024 * 1024;

/// Bounds every request body before the handler runs. A declared length above the route's
/// limit is answered 413 at once (nothing is read, so an `Expect: 100-continue` client sends
/// nothing). The small bodies of JSON requests and console forms are then read here with
/// [`read_limited`] (at most [`MAX_FORM_BODY`], within `body_read_timeout`). The routes with
/// large bodies — ingestion and the imports — read theirs in the handler, after authentication,
/// through the same function (or, for the console's import form, `PageForm`, under the same
/// timeout), so that an unauthenticated client cannot make the server hold megabytes.
///
/// Why not tower-http's layers (the `limit` and `timeout` features are enabled):
/// `RequestBodyLimitLayer` answers a declared-too-large body without reading any of it, so a
/// client that sends its body without waiting for `100 Continue` gets a reset connection
/// instead of the 413 (hostile.rs: "A client that sends the body without waiting still reads
/// the 413"); its refusal is plain text, where the console answers a page. And
/// `RequestBodyTimeoutLayer` bounds the wait for each frame, not the whole body: a client
/// trickling one byte a second would never be cut off (hostile.rs: "slow_clients_are_cut_off").
/// Both tested behaviours need the hand-made part; only its pieces are ours (hyper reads the
/// body, tokio times it).
async fn read_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let limit = body_limit(path);
    let page = !path.starts_with("/api/");
    let refuse = |e: ApiError| if page { crate::console::layout::api_error_page(e) } else { e.into_response() };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let waits_for_continue = req.headers().contains_key(header::EXPECT);
        if !waits_for_continue && declared.is_some_and(|n| n <= MAX_DRAIN) {
            drain(req.into_body().into_data_stream(), state.body_read_timeout);
        }
        return refuse(ApiError::PayloadTooLarge);
    }
    let no_body = declared == Some(0) || (declared.is_none() && !req.headers().contains_key(header::TRANSFER_ENCODING));
    if no_body || limit > MAX_FORM_BODY {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match read_limited(body, limit, state.body_read_timeout).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(e) => refuse(e),
    }
}

/// Reads a whole request body: 413 beyond `limit` (the rest is drained in the background), 408
/// when it has not arrived within `timeout`.
pub(crate) async fn read_limited(body: Body, limit: usize, timeout: std::time::Duration) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    match tokio::time::timeout(timeout, read_at_most(&mut stream, limit)).await {
        Err(_) => Err(ApiError::RequestTimeout),
        Ok(Err(BodyError::TooLarge)) => {
            drain(stream, timeout);
            Err(ApiError::PayloadTooLarge)
        }
        Ok(Err(BodyError::Broken(e))) => {
            // The client went away or sent a malformed body; nobody may be reading this.
            tracing::debug!(error = %e, "reading a request body failed");
            Err(ApiError::bad_request("bad_body", "the request body could not be read"))
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

enum BodyError {
    TooLarge,
    Broken(axum::Error),
}

async fn read_at_most(stream: &mut BodyDataStream, limit: usize) -> Result<Bytes, BodyError> {
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Broken)?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Reads and discards up to [`MAX_DRAIN`] more bytes of a refused body in the background, while
/// the refusal is sent; hyper closes the connection afterwards.
fn drain(mut stream: BodyDataStream, timeout: std::time::Duration) {
    tokio::spawn(async move {
        let mut left = MAX_DRAIN;
        let _ = tokio::time::timeout(timeout, async {
            while let Some(Ok(chunk)) = stream.next().await {
                left = left.saturating_sub(chunk.len() as u64);
                if left == 0 {
                    break;
                }
            }
        })
        .await;
    });
}

/// A panic in a handler (or an extractor) is answered like any internal error — 500 with the
/// standard JSON body, the panic message logged and never sent — and counted in
/// `logbook_http_panics_total`; the connection and the server carry on.
pub(crate) fn catch_panics(metrics: Arc<Metrics>) -> CatchPanicLayer<PanicAnswer> {
    CatchPanicLayer::custom(PanicAnswer { metrics })
}

#[derive(Debug, Clone)]
pub(crate) struct PanicAnswer {
    metrics: Arc<Metrics>,
}

impl ResponseForPanic for PanicAnswer {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
        self.metrics.http_panics.inc();
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        ApiError::Internal(format!("a request handler panicked: {message}")).into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// Counts responses and sets the headers every answer carries.
async fn common_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    if api {
        resp = framework_rejection_as_json(resp).await;
    }
    state.metrics.http_responses.get_or_create(&StatusLabel { status: resp.status().as_u16() }).inc();
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    if state.secure_cookies {
        // Served over HTTPS (the public URL says so): browsers must never come back over
        // plain HTTP, where the session cookie and passwords could be read or altered.
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    resp
}

/// A year, the usual minimum for browsers' preload lists; subdomains too, so a cookie set for
/// this host cannot be overwritten from an unencrypted sibling.
pub(crate) const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The API answers every error with `{"error": {"code", "message"}}`; axum's own refusals
/// (a wrong method, a path segment that is not UTF-8, a form or body it cannot read) come as
/// plain text or empty. They are rewritten here: the code is the status's reason
/// (`method_not_allowed`, `bad_request`, …), the message axum's text.
async fn framework_rejection_as_json(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let reason = status.canonical_reason().unwrap_or("Client Error");
    let text = axum::body::to_bytes(body, 4096).await.ok().and_then(|b| String::from_utf8(b.to_vec()).ok());
    let message = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty() && t.len() <= 500);
    let body = serde_json::json!({"error": {
        "code": reason.to_ascii_lowercase().replace(' ', "_"),
        "message": message.unwrap_or_else(|| reason.to_owned()),
    }});
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    #[test]
    fn api_requests_redact_their_secrets_in_debug() {
        use serde_json::json;
        crate::redaction::assert_redacted::<super::session::SignInRequest>(
            json!({"email": "a@example.com", "password": "SENTINEL-pw", "totp": "SENTINEL-code", "pending": "SENTINEL-pending"}),
        );
        crate::redaction::assert_redacted::<super::account::PasswordChange>(
            json!({"current_password": "SENTINEL-old", "new_password": "SENTINEL-new"}),
        );
        crate::redaction::assert_redacted::<super::account::TotpConfirm>(
            json!({"token": "SENTINEL-token", "code": "SENTINEL-code", "current_password": "SENTINEL-pw"}),
        );
        crate::redaction::assert_redacted::<super::account::TotpRemove>(json!({"password": "SENTINEL-pw"}));
        crate::redaction::assert_redacted::<super::invitations::AcceptInvitation>(
            json!({"token": "SENTINEL-token", "password": "SENTINEL-pw"}),
        );
        crate::redaction::assert_redacted::<super::users::SetupRequest>(
            json!({"token": "SENTINEL-token", "email": "a@example.com", "password": "SENTINEL-pw"}),
        );
        crate::redaction::assert_redacted::<super::users::NewUser>(
            json!({"email": "a@example.com", "role": "admin", "password": "SENTINEL-pw"}),
        );
    }
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use crate::metrics::Metrics;

    async fn boom() -> &'static str {
        panic!("secret detail at /work/crates/x.rs:1: SELECT * FROM users")
    }

    /// The real panic layer on a tiny router (the application has no route that panics).
    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_json_and_counted() {
        let metrics =
            Arc::new(Metrics::new(&logbook_log::LogMetrics::default(), &logbook_accounts::AccountMetrics::default()));
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "ok" }))
            .layer(super::catch_panics(metrics.clone()));
        for _ in 0..2 {
            let resp = app.clone().oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(resp.headers()["content-type"], "application/json");
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json, serde_json::json!({"error": {"code": "internal", "message": "internal error"}}));
        }
        assert_eq!(metrics.http_panics.get(), 2);
        assert!(metrics.render().contains("logbook_http_panics_total 2"), "{}", metrics.render());
        // The router still serves.
        let resp = app.oneshot(Request::get("/fine").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
