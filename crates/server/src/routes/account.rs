//! `/api/v1/account`: the signed-in user's own password, TOTP and sessions.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logbook_accounts::permission::OwnAccount;
use logbook_accounts::Secret;
use logbook_accounts::{SessionView, TotpEnrolment};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{clear_session_cookie, Auth};
use crate::extract::{ApiJson, IdPath};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: Secret,
    /// 8 to 128 characters; common or easily guessed passwords are refused.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: Secret,
}

/// Changes one's own password (the current one is required); every other session of the user
/// ends (each recorded as a Logout, reason `password_changed`).
#[utoipa::path(put, path = "/api/v1/account/password", tag = "account", request_body = PasswordChange,
    security(("session" = [], "csrf" = [])), responses((status = 204, description = "changed"), (status = 429, description = "`too_many_requests`: too many password checks at once; retry")))]
pub async fn change_password(
    State(state): State<AppState>,
    Auth(auth): Auth<OwnAccount>,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    state.accounts.change_password(&auth, req.current_password.expose(), req.new_password.expose()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new TOTP secret to enrol (nothing is stored until confirmed).
#[utoipa::path(post, path = "/api/v1/account/totp", tag = "account", security(("session" = [], "csrf" = [])),
    responses((status = 200, body = TotpEnrolment)))]
pub async fn begin_totp(
    State(state): State<AppState>,
    Auth(auth): Auth<OwnAccount>,
) -> Result<Json<TotpEnrolment>, ApiError> {
    Ok(Json(state.accounts.begin_totp(&auth)?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TotpConfirm {
    /// The `token` of the enrolment (it names the secret the server issued).
    pub token: Secret,
    /// A current code from the authenticator app.
    pub code: Secret,
    /// The account's current password.
    pub current_password: Secret,
}

/// Enrols TOTP: the enrolment `token` of `POST /api/v1/account/totp`, a current code and the
/// current password. Every other session of the user ends (reason `mfa_changed`).
#[utoipa::path(post, path = "/api/v1/account/totp/confirm", tag = "account", request_body = TotpConfirm,
    security(("session" = [], "csrf" = [])),
    responses((status = 204, description = "enrolled"), (status = 409, description = "already enrolled")))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    Auth(auth): Auth<OwnAccount>,
    ApiJson(req): ApiJson<TotpConfirm>,
) -> Result<StatusCode, ApiError> {
    state.accounts.enrol_totp(&auth, req.token.expose(), req.code.expose(), req.current_password.expose()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TotpRemove {
    pub password: Secret,
}

/// Removes one's TOTP (the password is required). Every other session of the user ends
/// (reason `mfa_changed`).
#[utoipa::path(delete, path = "/api/v1/account/totp", tag = "account", request_body = TotpRemove,
    security(("session" = [], "csrf" = [])),
    responses((status = 204, description = "removed"), (status = 409, description = "not enrolled"), (status = 429, description = "`too_many_requests`: too many password checks at once; retry")))]
pub async fn remove_totp(
    State(state): State<AppState>,
    Auth(auth): Auth<OwnAccount>,
    ApiJson(req): ApiJson<TotpRemove>,
) -> Result<StatusCode, ApiError> {
    state.accounts.remove_totp(&auth, req.password.expose()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Oldest first; the one of this request is marked `current`.
    pub sessions: Vec<SessionView>,
}

/// One's own sessions: when each started and was last used, from which address and user agent.
#[utoipa::path(get, path = "/api/v1/account/sessions", tag = "account", security(("session" = [])),
    responses((status = 200, body = SessionList)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    Auth(auth): Auth<OwnAccount>,
) -> Result<Json<SessionList>, ApiError> {
    Ok(Json(SessionList { sessions: state.accounts.my_sessions(&auth).await? }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsEnded {
    /// How many sessions ended.
    pub ended: usize,
}

/// Ends every session of one's own but this one (each recorded as a Logout, reason
/// `ended_by_user`).
#[utoipa::path(delete, path = "/api/v1/account/sessions", tag = "account", security(("session" = [], "csrf" = [])),
    responses((status = 200, body = SessionsEnded)))]
pub async fn end_other_sessions(
    State(state): State<AppState>,
    Auth(auth): Auth<OwnAccount>,
) -> Result<Json<SessionsEnded>, ApiError> {
    Ok(Json(SessionsEnded { ended: state.accounts.end_my_other_sessions(&auth).await? }))
}

/// Ends one of one's own sessions, by the `id` the list shows (recorded as a Logout, reason
/// `ended_by_user`); ending this one signs out and clears the cookie. Another user's session is
/// not found.
#[utoipa::path(delete, path = "/api/v1/account/sessions/{id}", tag = "account",
    params(("id" = String, Path, description = "the session's `id`, from `GET /api/v1/account/sessions`")),
    security(("session" = [], "csrf" = [])),
    responses((status = 204, description = "ended"), (status = 404, description = "no such session of yours")))]
pub async fn end_session(
    State(state): State<AppState>,
    Auth(auth): Auth<OwnAccount>,
    IdPath(id): IdPath<String>,
) -> Result<Response, ApiError> {
    if state.accounts.end_my_session(&auth, &id).await? {
        return Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear_session_cookie(&state))]).into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
