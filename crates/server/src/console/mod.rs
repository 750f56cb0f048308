//! The console: server-rendered pages, compiled into the binary. Every page works without
//! JavaScript; forms post back with the session's CSRF token and redirect after success.

pub(crate) mod audit_log;
pub mod layout;
mod pages;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use logbook_accounts::AccountError;

use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/assets/style.css", get(style))
        .route("/assets/console.js", get(script))
        .route("/audit-log", get(audit_log::audit_log))
        .route("/audit-log/events/{seq}", get(audit_log::event_page))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/login/totp", post(pages::login_totp))
        .route("/logout", post(pages::logout))
        .route("/setup", get(pages::setup_page).post(pages::setup))
        .route("/invite", get(pages::invite_page).post(pages::accept_invite))
        .route("/users", get(pages::users))
        .route("/users/invite", post(pages::users_invite))
        .route("/users/add", post(pages::users_add))
        .route("/users/{id}/role", post(pages::users_role))
        .route("/users/{id}/delete", post(pages::users_delete))
        .route("/invitations/{id}/revoke", post(pages::invitation_revoke))
        .route("/protected-users", get(pages::protected))
        .route("/protected-users/add", post(pages::protected_add))
        .route("/protected-users/import", post(pages::protected_import))
        .route("/protected-users/{id}/remove", post(pages::protected_remove))
        .route("/settings", get(pages::settings).post(pages::settings_save))
        .route("/account", get(pages::account))
        .route("/account/password", post(pages::account_password))
        .route("/account/totp", post(pages::account_totp_confirm))
        .route("/account/totp/remove", post(pages::account_totp_remove))
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], layout::STYLE)
        .into_response()
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], layout::SCRIPT)
        .into_response()
}

/// What a failed form shows: the domain's own message for what the user can fix, the
/// generic error page for the rest (logged, never shown).
// The `Err` side is a whole page, built once on a cold path; boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn form_error(e: AccountError) -> Result<(StatusCode, String), Response> {
    let status = match &e {
        AccountError::Invalid(_)
        | AccountError::Password(_)
        | AccountError::InvalidLink
        | AccountError::Settings(_) => StatusCode::BAD_REQUEST,
        AccountError::SignInFailed => StatusCode::UNAUTHORIZED,
        AccountError::Conflict(_) => StatusCode::CONFLICT,
        AccountError::NotFound(_) => StatusCode::NOT_FOUND,
        AccountError::Forbidden(_) => StatusCode::FORBIDDEN,
        AccountError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        AccountError::Busy | AccountError::Append(_) | AccountError::Store(_) | AccountError::Internal(_) => {
            return Err(layout::api_error_page(ApiError::from(e)))
        }
    };
    Ok((status, e.to_string()))
}
