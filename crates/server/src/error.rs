//! The one error type of the web layer.
//!
//! Policy:
//! - Domain and storage errors stay typed (`thiserror`) in their crates; handlers convert them
//!   into [`ApiError`] with `?`.
//! - Every [`ApiError`] variant maps to exactly one status and one stable `code`, in the
//!   exhaustive `match` of `into_response`: a new variant does not compile until it is mapped.
//! - What the client sees is `{"error": {"code", "message"}}` with a message written for it.
//!   Internal details (SQL, paths, backend messages) are logged with `tracing::error!` and never
//!   sent: an internal error answers only "internal error".
//! - Secrets never reach an error message: inputs are echoed only when they are not secret and
//!   only truncated.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logbook_log::{AppendError, ProofRequestError};
use logbook_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or invalid input; nothing was changed.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Missing, unknown or revoked API token.
    #[error("authentication required")]
    Unauthorized,
    /// No live session: sign in first.
    #[error("sign in first")]
    SignInRequired,
    /// A sign-in failed. One message whatever the reason (the log records the reason).
    #[error("sign-in failed")]
    SignInFailed,
    /// The password was right; the TOTP code is needed.
    #[error("TOTP code required")]
    TotpRequired { pending: String },
    /// Signed in, but the role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// A state-changing request without the session's CSRF token.
    #[error("missing or wrong CSRF token")]
    CsrfFailed,
    #[error("{0}")]
    Conflict(String),
    /// Too much at once (e.g. a sign-in flood); retry later.
    #[error("too many requests")]
    TooManyRequests,
    /// Too many failed sign-ins from the request's address; retry after the window.
    #[error("too many failed sign-ins")]
    TooManyAttempts { minutes: u64 },
    /// Too many exports running (the user's own, or the server's).
    #[error("too many exports at once")]
    TooManyExports { mine: bool },
    /// A list or search ran past `query_timeout` and was stopped.
    #[error("the query took too long")]
    QueryTimeout,
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with an earlier one (e.g. an idempotency key reused for another body).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("request body too large")]
    PayloadTooLarge,
    /// The request body did not arrive in time (a slow or stalled client).
    #[error("request body too slow")]
    RequestTimeout,
    /// The log cannot take or serve data right now; the client may retry.
    #[error("{0}")]
    Unavailable(&'static str),
    /// The stored log does not extend its trusted checkpoints: it takes no appends until an
    /// operator deals with it (the details are logged).
    #[error("the log is damaged: {0}")]
    LogDamaged(String),
    /// A bug or a backend failure: logged in full, answered generically.
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `invalid_event`, `unknown_action`, …
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// With `totp_required` only: send it back with the code to finish signing in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into() }
    }

    /// What a person can fix and should read where they made the mistake (the console shows it
    /// on the form): its status and message, the same as the API answers. `None` for the rest,
    /// which the console answers with its generic error page.
    pub fn for_the_user(&self) -> Option<(StatusCode, String)> {
        match self {
            ApiError::BadRequest { message, .. } => Some((StatusCode::BAD_REQUEST, message.clone())),
            ApiError::SignInFailed => Some((StatusCode::UNAUTHORIZED, SIGN_IN_FAILED.into())),
            ApiError::Forbidden(why) => Some((StatusCode::FORBIDDEN, why.clone())),
            ApiError::Conflict(why) => Some((StatusCode::CONFLICT, why.clone())),
            ApiError::NotFound(what) => Some((StatusCode::NOT_FOUND, what.clone())),
            ApiError::TooManyAttempts { minutes } => Some((StatusCode::TOO_MANY_REQUESTS, too_many_attempts(*minutes))),
            ApiError::QueryTimeout => Some((StatusCode::SERVICE_UNAVAILABLE, QUERY_TIMEOUT.into())),
            _ => None,
        }
    }
}

const LOG_DAMAGED: &str = "the audit log does not match its signed checkpoints, so it takes no new events until an \
     operator has checked it (`logbook verify`); nothing was stored";
const SIGN_IN_FAILED: &str = "the email, password or code is not correct";

const QUERY_TIMEOUT: &str = "the query took longer than the server allows and was stopped; narrow the filters (a shorter time range, a user or an action) and retry";

fn too_many_attempts(minutes: u64) -> String {
    format!("too many failed sign-ins from this address; try again in {minutes} minutes")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::BadRequest { code, message } => (StatusCode::BAD_REQUEST, code, message),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API token is required (Authorization: Bearer …)".into(),
            ),
            ApiError::SignInRequired => (StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first".into()),
            ApiError::SignInFailed => (StatusCode::UNAUTHORIZED, "sign_in_failed", SIGN_IN_FAILED.into()),
            ApiError::TotpRequired { pending } => {
                let error = ErrorDetail {
                    code: "totp_required",
                    message: "enter the code from your authenticator app".into(),
                    pending: Some(pending),
                };
                return (StatusCode::UNAUTHORIZED, Json(ErrorBody { error })).into_response();
            }
            ApiError::Forbidden(why) => (StatusCode::FORBIDDEN, "forbidden", why),
            ApiError::CsrfFailed => (
                StatusCode::FORBIDDEN,
                "csrf",
                "this request needs the session's CSRF token (X-CSRF-Token header or csrf form field)".into(),
            ),
            ApiError::Conflict(why) => (StatusCode::CONFLICT, "conflict", why),
            ApiError::TooManyRequests => {
                return too_many("too_many_requests", "too many requests at once; retry in a moment".into(), 1)
            }
            ApiError::TooManyAttempts { minutes } => {
                return too_many("too_many_attempts", too_many_attempts(minutes), minutes.saturating_mul(60));
            }
            ApiError::TooManyExports { mine: true } => {
                return too_many(
                    "too_many_exports",
                    "you already have as many exports running as one user may; wait for one to finish".into(),
                    30,
                );
            }
            ApiError::TooManyExports { mine: false } => {
                return too_many(
                    "too_many_exports",
                    "the server is running as many exports as it allows; retry in a minute".into(),
                    30,
                );
            }
            ApiError::QueryTimeout => (StatusCode::SERVICE_UNAVAILABLE, "query_timeout", QUERY_TIMEOUT.into()),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, "not_found", what),
            ApiError::Unprocessable { code, message } => (StatusCode::UNPROCESSABLE_ENTITY, code, message),
            ApiError::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large".into())
            }
            ApiError::RequestTimeout => {
                (StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request body did not arrive in time".into())
            }
            ApiError::Unavailable(why) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", why.into()),
            ApiError::LogDamaged(detail) => {
                tracing::warn!(error = %detail, "append refused: the log is damaged");
                (StatusCode::SERVICE_UNAVAILABLE, "log_damaged", LOG_DAMAGED.into())
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into())
            }
        };
        let mut resp =
            (status, Json(ErrorBody { error: ErrorDetail { code, message, pending: None } })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DiskFull => {
                tracing::error!("the disk is full");
                ApiError::Unavailable("the log cannot store data right now (disk full)")
            }
            StoreError::Io(detail) => {
                tracing::error!(error = %detail, "storage I/O error");
                ApiError::Unavailable("the log cannot store data right now (storage I/O error)")
            }
            StoreError::Deadline => ApiError::QueryTimeout,
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Invalid(e) => ApiError::bad_request("invalid_event", e.to_string()),
            AppendError::Empty => ApiError::bad_request("invalid_event", "at least one event is required"),
            AppendError::Rejected(r) => ApiError::Unprocessable { code: "refused", message: r.to_string() },
            AppendError::ShuttingDown => ApiError::Unavailable("the server is shutting down; retry"),
            AppendError::Unavailable => {
                ApiError::Unavailable("the log cannot store events right now; nothing was stored, retry")
            }
            AppendError::OutcomeUnknown => ApiError::Unavailable(
                "the log could not confirm whether the events were stored; retry with the same Idempotency-Key",
            ),
            AppendError::DiskFull => {
                ApiError::Unavailable("the log cannot store events right now: the disk is full; nothing was stored")
            }
            AppendError::Stopped => ApiError::Unavailable(
                "the log stopped taking events after a storage I/O error; nothing was stored, retry after it restarts",
            ),
            AppendError::Damaged(d) => ApiError::LogDamaged(d),
            AppendError::Store(e) => e.into(),
        }
    }
}

impl From<ProofRequestError> for ApiError {
    fn from(e: ProofRequestError) -> Self {
        match e {
            ProofRequestError::Proof(logbook_integrity::proof::ProofError::Tiles) => {
                ApiError::Internal("stored tiles do not produce a valid proof".into())
            }
            ProofRequestError::Proof(p) => ApiError::bad_request("bad_proof_request", p.to_string()),
            ProofRequestError::NoCheckpoint => ApiError::NotFound("the log has no signed checkpoint yet".into()),
            ProofRequestError::Store(s) => s.into(),
        }
    }
}

/// 429 with `Retry-After` in seconds.
fn too_many(code: &'static str, message: String, retry_after_secs: u64) -> Response {
    let mut resp =
        (StatusCode::TOO_MANY_REQUESTS, Json(ErrorBody { error: ErrorDetail { code, message, pending: None } }))
            .into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

/// The one mapping of the accounts service's errors to HTTP: the API answers it as JSON, the
/// console shows it on the form or as an error page ([`ApiError::for_the_user`]).
impl From<logbook_accounts::AccountError> for ApiError {
    fn from(e: logbook_accounts::AccountError) -> Self {
        use logbook_accounts::AccountError as A;
        match e {
            A::Invalid(m) => ApiError::bad_request("invalid", m),
            A::Password(p) => ApiError::bad_request("weak_password", p.to_string()),
            A::SignInFailed => ApiError::SignInFailed,
            A::Busy => ApiError::TooManyRequests,
            A::Throttled { minutes } => ApiError::TooManyAttempts { minutes },
            A::Forbidden(f) => ApiError::Forbidden(f.to_string()),
            A::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            A::Conflict(m) => ApiError::Conflict(m),
            A::InvalidLink => ApiError::bad_request("invalid_link", A::InvalidLink.to_string()),
            A::Settings(s) => ApiError::bad_request("invalid_settings", s.to_string()),
            A::Append(a) => a.into(),
            A::Store(s) => s.into(),
            A::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<logbook_accounts::Forbidden> for ApiError {
    fn from(f: logbook_accounts::Forbidden) -> Self {
        ApiError::Forbidden(f.to_string())
    }
}
