//! The console: server-rendered pages, compiled into the binary. Every page works without
//! JavaScript; forms post back with the session's CSRF token and redirect after success.

mod account;
mod api_tokens;
pub(crate) mod audit_log;
mod invitations;
pub mod layout;
mod protected_users;
mod session;
mod settings;
mod users;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use logbook_accounts::permission::ReadAuditLog;
use logbook_accounts::AccountError;
use logbook_core::Role;
use serde::Deserialize;

use crate::auth::PageCaller;
use crate::ApiError;
use crate::AppState;
use layout::Flash;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/assets/style.css", get(style))
        .route("/assets/console.js", get(script))
        .route("/audit-log", get(audit_log::audit_log))
        .route("/audit-log/events/{seq}", get(audit_log::event_page))
        .route("/login", get(session::login_page).post(session::login))
        .route("/login/totp", post(session::login_totp))
        .route("/logout", post(session::logout))
        .route("/setup", get(users::setup_page).post(users::setup))
        .route("/invite", get(invitations::invite_page).post(invitations::accept_invite))
        .route("/users", get(users::users))
        .route("/users/invite", post(invitations::users_invite))
        .route("/users/add", post(users::users_add))
        .route("/users/{id}/role", post(users::users_role))
        .route("/users/{id}/delete", post(users::users_delete))
        .route("/users/{id}/sign-out", post(users::users_sign_out))
        .route("/invitations/{id}/revoke", post(invitations::invitation_revoke))
        .route("/protected-users", get(protected_users::protected))
        .route("/protected-users/add", post(protected_users::protected_add))
        .route("/protected-users/import", post(protected_users::protected_import))
        .route("/protected-users/{id}/remove", post(protected_users::protected_remove))
        .route("/api-tokens", get(api_tokens::api_tokens).post(api_tokens::api_tokens_create))
        .route("/api-tokens/{name}/revoke", post(api_tokens::api_tokens_revoke))
        .route("/settings", get(settings::settings).post(settings::settings_save))
        .route("/account", get(account::account))
        .route("/account/password", post(account::account_password))
        .route("/account/totp", post(account::account_totp_confirm))
        .route("/account/totp/remove", post(account::account_totp_remove))
        .route("/account/sessions/{id}/end", post(account::account_session_end))
        .route("/account/sessions/end-others", post(account::account_sessions_end_others))
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], layout::STYLE)
        .into_response()
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], layout::SCRIPT)
        .into_response()
}

/// What a failed form shows: the message for what the user can fix (the status and message
/// the API answers, [`ApiError::for_the_user`]), the generic error page for the rest (logged,
/// never shown).
// The `Err` side is a whole page, built once on a cold path; boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn form_error(e: AccountError) -> Result<(StatusCode, String), Response> {
    let e = ApiError::from(e);
    e.for_the_user().ok_or_else(|| layout::api_error_page(e))
}

pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[derive(Debug, Deserialize, Default)]
pub struct Notice {
    notice: Option<String>,
}

/// Notices come from our own redirects: only known keys are shown.
fn notice(n: &Notice) -> Option<Flash> {
    let text = match n.notice.as_deref()? {
        "invited" => "Invitation created.",
        "added" => "User added.",
        "role" => "Role changed.",
        "deleted" => "User deleted.",
        "signed_out" => "The user is signed out everywhere.",
        "session_ended" => "Session ended.",
        "sessions_ended" => "Every other session ended.",
        "revoked" => "Invitation revoked.",
        "protected_added" => "Protected user added.",
        "protected_removed" => "Protected user removed.",
        "saved" => "Settings saved.",
        "token_revoked" => "API token revoked. It stops working at once.",
        "password" => "Password changed.",
        "totp_on" => "TOTP is enrolled. You will be asked for a code at sign-in.",
        "totp_off" => "TOTP removed.",
        "accepted" => "Your account is ready. Sign in with your email and new password.",
        "setup" => "The first admin is ready. Sign in.",
        _ => return None,
    };
    Some(Flash::Notice(text.into()))
}

pub async fn home(PageCaller(caller): PageCaller) -> Response {
    if caller.may::<ReadAuditLog>() {
        see_other("/audit-log")
    } else {
        see_other("/account")
    }
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn parse_role(s: &str) -> Result<Role, AccountError> {
    Role::from_code(s).map_err(|e| AccountError::Invalid(e.to_string()))
}

fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, AccountError> {
    raw.parse().map_err(|_| AccountError::NotFound("record"))
}

#[derive(Debug, Deserialize)]
pub struct Empty {}

/// Everything but RFC 3986's unreserved characters (ALPHA / DIGIT / "-" / "." / "_" / "~").
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes `s` (as UTF-8) for use as one query-string value: the console's one encoder.
pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::urlencode;

    #[test]
    fn console_forms_redact_their_secrets_in_debug() {
        use serde_json::json;
        crate::redaction::assert_redacted::<super::session::LoginForm>(
            json!({"email": "a@example.com", "password": "SENTINEL-pw", "next": "/"}),
        );
        crate::redaction::assert_redacted::<super::session::TotpForm>(
            json!({"pending": "SENTINEL-pending", "code": "SENTINEL-code"}),
        );
        crate::redaction::assert_redacted::<super::account::PasswordForm>(
            json!({"current_password": "SENTINEL-old", "new_password": "SENTINEL-new"}),
        );
        crate::redaction::assert_redacted::<super::account::TotpConfirmForm>(
            json!({"token": "SENTINEL-token", "code": "SENTINEL-code", "current_password": "SENTINEL-pw"}),
        );
        crate::redaction::assert_redacted::<super::account::TotpRemoveForm>(json!({"password": "SENTINEL-pw"}));
        crate::redaction::assert_redacted::<super::invitations::AcceptForm>(
            json!({"token": "SENTINEL-token", "password": "SENTINEL-pw"}),
        );
        crate::redaction::assert_redacted::<super::users::SetupForm>(
            json!({"token": "SENTINEL-token", "email": "a@example.com", "password": "SENTINEL-pw"}),
        );
        crate::redaction::assert_redacted::<super::users::AddUserForm>(
            json!({"email": "a@example.com", "role": "admin", "password": "SENTINEL-pw"}),
        );
    }

    #[test]
    fn urlencode_keeps_unreserved_and_encodes_the_rest() {
        assert_eq!(urlencode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(urlencode("a b&c=d/e?f#g+h%i"), "a%20b%26c%3Dd%2Fe%3Ff%23g%2Bh%25i");
        assert_eq!(urlencode("é"), "%C3%A9", "UTF-8 bytes, upper-case hex");
        assert_eq!(urlencode(""), "");
    }
}
