//! `/api/v1/users` and `/api/v1/setup`: the platform's management users, and the first admin.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use logbook_accounts::permission::{ManageUsers, ReadUsers};
use logbook_accounts::Secret;
use logbook_accounts::UserView;
use logbook_core::{Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::extract::{ApiJson, IdPath, RequestSource};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetupRequest {
    /// The token of the one-time setup link.
    pub token: Secret,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// 8 to 128 characters; common or easily guessed passwords are refused.
    #[schema(min_length = 8, max_length = 128)]
    pub password: Secret,
}

/// Creates the first admin with the one-time setup link's token.
#[utoipa::path(post, path = "/api/v1/setup", tag = "users", request_body = SetupRequest,
    responses((status = 201, body = UserView, description = "the first admin"), (status = 429, description = "`too_many_requests`: too many password checks at once; retry")))]
pub async fn setup(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    ApiJson(req): ApiJson<SetupRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state.accounts.complete_setup(req.token.expose(), &req.email, req.password.expose(), &source).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

/// Every management user.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("session" = [])),
    responses((status = 200, body = UserList)))]
pub async fn list_users(
    State(state): State<AppState>,
    Auth(auth): Auth<ReadUsers>,
) -> Result<Json<UserList>, ApiError> {
    Ok(Json(UserList { users: state.accounts.list_users(&auth).await? }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    pub role: Role,
    /// 8 to 128 characters; common or easily guessed passwords are refused.
    #[schema(min_length = 8, max_length = 128)]
    pub password: Secret,
}

/// Adds a management user with a password (an invitation lets them choose it instead).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser, security(("session" = [], "csrf" = [])),
    responses((status = 201, body = UserView), (status = 409, description = "the email is taken"), (status = 429, description = "`too_many_requests`: too many password checks at once; retry")))]
pub async fn add_user(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageUsers>,
    ApiJson(req): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state.accounts.add_user(&auth, &req.email, req.role, req.password.expose()).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleChange {
    pub role: Role,
}

/// Changes a user's role (never the last admin's).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = RoleChange,
    params(("id" = i64, Path, description = "the user's id")), security(("session" = [], "csrf" = [])),
    responses((status = 200, body = UserView), (status = 404), (status = 409, description = "the last admin")))]
pub async fn set_role(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageUsers>,
    IdPath(id): IdPath<UserId>,
    ApiJson(req): ApiJson<RoleChange>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(state.accounts.set_role(&auth, id, req.role).await?))
}

/// Deletes a user (never oneself nor the last admin) and ends their sessions.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "the user's id")), security(("session" = [], "csrf" = [])),
    responses((status = 204, description = "deleted"), (status = 404), (status = 409, description = "oneself or the last admin")))]
pub async fn delete_user(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageUsers>,
    IdPath(id): IdPath<UserId>,
) -> Result<StatusCode, ApiError> {
    state.accounts.delete_user(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignedOut {
    /// How many sessions ended.
    pub ended: usize,
}

/// Signs a user out everywhere: every session of theirs ends (each recorded as a Logout, reason
/// `signed_out_by_admin`), recorded as `user.signed_out_everywhere`.
#[utoipa::path(post, path = "/api/v1/users/{id}/sign-out", tag = "users",
    params(("id" = i64, Path, description = "the user's id")), security(("session" = [], "csrf" = [])),
    responses((status = 200, body = SignedOut), (status = 404)))]
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageUsers>,
    IdPath(id): IdPath<UserId>,
) -> Result<Json<SignedOut>, ApiError> {
    Ok(Json(SignedOut { ended: state.accounts.sign_out_everywhere(&auth, id).await? }))
}
