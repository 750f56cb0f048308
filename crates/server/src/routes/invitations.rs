//! `/api/v1/invitations`: single-use, expiring links that let someone choose their password.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use logbook_accounts::permission::{ManageUsers, ReadUsers};
use logbook_accounts::Secret;
use logbook_accounts::{InvitationCreated, InvitationView, UserView};
use logbook_core::{InvitationId, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::extract::{ApiJson, IdPath, RequestSource};
use crate::{ApiError, AppState};

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    pub invitations: Vec<InvitationView>,
}

/// Every invitation, whatever its status.
#[utoipa::path(get, path = "/api/v1/invitations", tag = "invitations", security(("session" = [])),
    responses((status = 200, body = InvitationList)))]
pub async fn list_invitations(
    State(state): State<AppState>,
    Auth(auth): Auth<ReadUsers>,
) -> Result<Json<InvitationList>, ApiError> {
    Ok(Json(InvitationList { invitations: state.accounts.list_invitations(&auth).await? }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewInvitation {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    pub role: Role,
}

/// Creates a single-use, expiring invitation; mails it when SMTP is configured, and always
/// returns the link.
#[utoipa::path(post, path = "/api/v1/invitations", tag = "invitations", request_body = NewInvitation,
    security(("session" = [], "csrf" = [])),
    responses((status = 201, body = InvitationCreated), (status = 409, description = "a user or an open invitation has this email")))]
pub async fn invite(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageUsers>,
    ApiJson(req): ApiJson<NewInvitation>,
) -> Result<(StatusCode, Json<InvitationCreated>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.accounts.invite(&auth, &req.email, req.role).await?)))
}

/// Revokes an open invitation.
#[utoipa::path(delete, path = "/api/v1/invitations/{id}", tag = "invitations",
    params(("id" = i64, Path, description = "the invitation's id")), security(("session" = [], "csrf" = [])),
    responses((status = 204, description = "revoked"), (status = 404), (status = 409, description = "not open")))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageUsers>,
    IdPath(id): IdPath<InvitationId>,
) -> Result<StatusCode, ApiError> {
    state.accounts.revoke_invitation(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptInvitation {
    /// The token of the invitation link.
    pub token: Secret,
    /// 8 to 128 characters; common or easily guessed passwords are refused.
    #[schema(min_length = 8, max_length = 128)]
    pub password: Secret,
}

/// Accepts an invitation: creates the user with the chosen password.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "invitations", request_body = AcceptInvitation,
    responses((status = 201, body = UserView), (status = 429, description = "`too_many_requests`: too many password checks at once; retry")))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    ApiJson(req): ApiJson<AcceptInvitation>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.accounts.accept_invitation(req.token.expose(), req.password.expose(), &source).await?),
    ))
}
