//! `/api/v1/session`: signing in and out, and who is signed in.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logbook_accounts::Secret;
use logbook_accounts::{SignIn, UserView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{clear_session_cookie, session_cookie, PresentedSession, SessionCaller};
use crate::extract::{ApiJson, RequestSource};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, ToSchema)]
pub struct SignInRequest {
    pub email: String,
    pub password: Secret,
    /// The TOTP code, when enrolled.
    #[serde(default)]
    pub totp: Option<Secret>,
    /// Instead of email and password: the `pending` token of a `totp_required` answer.
    #[serde(default)]
    pub pending: Option<Secret>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    /// Send as `X-CSRF-Token` with every state-changing request.
    pub csrf_token: String,
    pub user: UserView,
}

/// Signs in: sets the session cookie (a new token each time) and returns the CSRF token. A
/// session the request still presented ends (recorded as a Logout, reason `new_sign_in`).
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = SignInRequest,
    responses(
        (status = 200, body = SessionInfo, description = "signed in; the `Set-Cookie` header carries the session"),
        (status = 401, description = "`sign_in_failed`, or `totp_required` with the `pending` token"),
        (status = 429, description = "`too_many_attempts` from this address, or `too_many_requests`")))]
pub async fn sign_in(
    State(state): State<AppState>,
    PresentedSession(replaced): PresentedSession,
    RequestSource(source): RequestSource,
    ApiJson(req): ApiJson<SignInRequest>,
) -> Result<Response, ApiError> {
    let signed_in = match (&req.pending, &req.totp) {
        (Some(pending), Some(code)) => state.accounts.sign_in_totp(pending.expose(), code.expose(), &source).await?,
        _ => match state
            .accounts
            .sign_in(&req.email, req.password.expose(), req.totp.as_ref().map(Secret::expose), &source)
            .await?
        {
            SignIn::Done(s) => s,
            SignIn::NeedsTotp { pending } => return Err(ApiError::TotpRequired { pending }),
        },
    };
    if let Some(old) = replaced {
        state.accounts.end_replaced_session(old.expose(), &source).await?;
    }
    let cookie = session_cookie(&state, &signed_in.token);
    let body = SessionInfo { csrf_token: signed_in.csrf_token, user: signed_in.user };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// The current session's user and CSRF token.
#[utoipa::path(get, path = "/api/v1/session", tag = "session", security(("session" = [])),
    responses((status = 200, body = SessionInfo)))]
pub async fn session(
    State(state): State<AppState>,
    SessionCaller(caller): SessionCaller,
) -> Result<Json<SessionInfo>, ApiError> {
    let user = state.accounts.me(&caller).await?;
    Ok(Json(SessionInfo { csrf_token: state.accounts.csrf_token(&caller), user }))
}

/// Signs out (records Logout) and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", security(("session" = [], "csrf" = [])),
    responses((status = 204, description = "signed out")))]
pub async fn sign_out(
    State(state): State<AppState>,
    SessionCaller(caller): SessionCaller,
) -> Result<Response, ApiError> {
    state.accounts.sign_out(&caller).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear_session_cookie(&state))]).into_response())
}
