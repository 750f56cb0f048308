//! `/api/v1/account`: the signed-in user's own password and TOTP.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use logbook_accounts::permission::OwnAccount;
use logbook_accounts::Secret;
use logbook_accounts::TotpEnrolment;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: Secret,
    /// 8 to 128 characters; common or easily guessed passwords are refused.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: Secret,
}

/// Changes one's own password (the current one is required).
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
/// current password.
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

/// Removes one's TOTP (the password is required).
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
