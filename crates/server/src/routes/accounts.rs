//! The accounts API: sessions, the first admin, management users, invitations, protected
//! users, settings and one's own account. Every handler that needs a permission takes
//! [`Auth<P>`]; the accounts service records each change in the log.

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logbook_accounts::permission::{
    ManageProtectedUsers, ManageSettings, ManageUsers, OwnAccount, ReadProtectedUsers, ReadUsers,
};
use logbook_accounts::{
    ImportReport, InvitationCreated, InvitationView, PlatformSettings, ProtectedUserView, SettingsPatch, SignIn,
    TotpEnrolment, UserView,
};
use logbook_core::{InvitationId, ProtectedUserId, Role, Source, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{clear_session_cookie, request_source, session_cookie, Auth, SessionCaller};
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

/// The request's source, for handlers without a session.
pub struct RequestSource(pub Source);

impl<S: Send + Sync> FromRequestParts<S> for RequestSource {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestSource(request_source(parts)))
    }
}

/// A JSON body; malformed JSON is a JSON 400 like every other error.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(t)) => Ok(ApiJson(t)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(e) => Err(ApiError::bad_request("bad_json", e.body_text())),
        }
    }
}

fn role(code: &str) -> Result<Role, ApiError> {
    Role::from_code(code).map_err(|e| ApiError::bad_request("invalid", e.to_string()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SignInRequest {
    pub email: String,
    pub password: String,
    /// The TOTP code, when enrolled.
    #[serde(default)]
    pub totp: Option<String>,
    /// Instead of email and password: the `pending` token of a `totp_required` answer.
    #[serde(default)]
    pub pending: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    /// Send as `X-CSRF-Token` with every state-changing request.
    pub csrf_token: String,
    #[schema(value_type = Object)]
    pub user: UserView,
}

/// Signs in: sets the session cookie (a new token each time) and returns the CSRF token.
#[utoipa::path(post, path = "/api/v1/session", tag = "accounts", request_body = SignInRequest,
    responses((status = 200, body = SessionInfo), (status = 401, description = "sign_in_failed or totp_required"), (status = 429)))]
pub async fn sign_in(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    ApiJson(req): ApiJson<SignInRequest>,
) -> Result<Response, ApiError> {
    let signed_in = match (&req.pending, &req.totp) {
        (Some(pending), Some(code)) => state.accounts.sign_in_totp(pending, code, &source).await?,
        _ => match state.accounts.sign_in(&req.email, &req.password, req.totp.as_deref(), &source).await? {
            SignIn::Done(s) => s,
            SignIn::NeedsTotp { pending } => return Err(ApiError::TotpRequired { pending }),
        },
    };
    let cookie = session_cookie(&state, &signed_in.token);
    let body = SessionInfo { csrf_token: signed_in.csrf_token, user: signed_in.user };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// The current session's user and CSRF token.
#[utoipa::path(get, path = "/api/v1/session", tag = "accounts", responses((status = 200, body = SessionInfo), (status = 401)))]
pub async fn session(
    State(state): State<AppState>,
    SessionCaller(caller): SessionCaller,
) -> Result<Json<SessionInfo>, ApiError> {
    let user = state.accounts.me(&caller).await?;
    Ok(Json(SessionInfo { csrf_token: state.accounts.csrf_token(&caller), user }))
}

/// Signs out (records Logout) and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/session", tag = "accounts", responses((status = 204), (status = 401), (status = 403)))]
pub async fn sign_out(
    State(state): State<AppState>,
    SessionCaller(caller): SessionCaller,
) -> Result<Response, ApiError> {
    state.accounts.sign_out(&caller).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear_session_cookie(&state))]).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetupRequest {
    pub token: String,
    pub email: String,
    pub password: String,
}

/// Creates the first admin with the one-time setup link's token.
#[utoipa::path(post, path = "/api/v1/setup", tag = "accounts", request_body = SetupRequest, responses((status = 201), (status = 400)))]
pub async fn setup(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    ApiJson(req): ApiJson<SetupRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state.accounts.complete_setup(&req.token, &req.email, &req.password, &source).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    #[schema(value_type = Vec<Object>)]
    pub users: Vec<UserView>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "accounts", responses((status = 200, body = UserList), (status = 401), (status = 403)))]
pub async fn list_users(
    State(state): State<AppState>,
    Auth(auth): Auth<ReadUsers>,
) -> Result<Json<UserList>, ApiError> {
    Ok(Json(UserList { users: state.accounts.list_users(&auth).await? }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    pub email: String,
    /// `admin`, `analyst` or `auditor`.
    pub role: String,
    pub password: String,
}

#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = NewUser, responses((status = 201), (status = 400), (status = 403), (status = 409)))]
pub async fn add_user(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageUsers>,
    ApiJson(req): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state.accounts.add_user(&auth, &req.email, role(&req.role)?, &req.password).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleChange {
    pub role: String,
}

fn id_path<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::bad_request("bad_path", "the id in the path must be a number"))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "accounts", request_body = RoleChange, responses((status = 200), (status = 403), (status = 404), (status = 409)))]
pub async fn set_role(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageUsers>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RoleChange>,
) -> Result<Json<UserView>, ApiError> {
    let id: UserId = id_path(&id)?;
    Ok(Json(state.accounts.set_role(&auth, id, role(&req.role)?).await?))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "accounts", responses((status = 204), (status = 403), (status = 404), (status = 409)))]
pub async fn delete_user(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageUsers>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.delete_user(&auth, id_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    #[schema(value_type = Vec<Object>)]
    pub invitations: Vec<InvitationView>,
}

#[utoipa::path(get, path = "/api/v1/invitations", tag = "accounts", responses((status = 200, body = InvitationList), (status = 403)))]
pub async fn list_invitations(
    State(state): State<AppState>,
    Auth(auth): Auth<ReadUsers>,
) -> Result<Json<InvitationList>, ApiError> {
    Ok(Json(InvitationList { invitations: state.accounts.list_invitations(&auth).await? }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewInvitation {
    pub email: String,
    pub role: String,
}

/// Creates a single-use, expiring invitation; mails it when SMTP is configured, and always
/// returns the link.
#[utoipa::path(post, path = "/api/v1/invitations", tag = "accounts", request_body = NewInvitation, responses((status = 201), (status = 403), (status = 409)))]
pub async fn invite(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageUsers>,
    ApiJson(req): ApiJson<NewInvitation>,
) -> Result<(StatusCode, Json<InvitationCreated>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.accounts.invite(&auth, &req.email, role(&req.role)?).await?)))
}

#[utoipa::path(delete, path = "/api/v1/invitations/{id}", tag = "accounts", responses((status = 204), (status = 403), (status = 404), (status = 409)))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageUsers>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: InvitationId = id_path(&id)?;
    state.accounts.revoke_invitation(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptInvitation {
    pub token: String,
    pub password: String,
}

#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "accounts", request_body = AcceptInvitation, responses((status = 201), (status = 400)))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    ApiJson(req): ApiJson<AcceptInvitation>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.accounts.accept_invitation(&req.token, &req.password, &source).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProtectedQuery {
    /// Case-insensitive substring of email or name.
    pub q: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProtectedPage {
    #[schema(value_type = Vec<Object>)]
    pub protected_users: Vec<ProtectedUserView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/protected-users", tag = "accounts", params(("q" = Option<String>, Query), ("cursor" = Option<String>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = ProtectedPage), (status = 403)))]
pub async fn list_protected(
    State(state): State<AppState>,
    Auth(auth): Auth<ReadProtectedUsers>,
    ApiQuery(q): ApiQuery<ProtectedQuery>,
) -> Result<Json<ProtectedPage>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("bad_query", "limit must be between 1 and 500"));
    }
    let rows = state.accounts.list_protected(&auth, q.q.as_deref(), q.cursor.as_deref(), limit).await?;
    let next_cursor = (rows.len() == limit).then(|| rows.last().map(|r| r.email.clone())).flatten();
    Ok(Json(ProtectedPage { protected_users: rows, next_cursor }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewProtectedUser {
    pub email: String,
    pub name: String,
}

#[utoipa::path(post, path = "/api/v1/protected-users", tag = "accounts", request_body = NewProtectedUser, responses((status = 201), (status = 403), (status = 409)))]
pub async fn add_protected(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageProtectedUsers>,
    ApiJson(req): ApiJson<NewProtectedUser>,
) -> Result<(StatusCode, Json<ProtectedUserView>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.accounts.add_protected(&auth, &req.email, &req.name).await?)))
}

#[utoipa::path(delete, path = "/api/v1/protected-users/{id}", tag = "accounts", responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove_protected(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageProtectedUsers>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: ProtectedUserId = id_path(&id)?;
    state.accounts.remove_protected(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Bulk import: a CSV body with the header `email,name`. Valid rows are added (one event
/// each); the others are reported by line.
#[utoipa::path(post, path = "/api/v1/protected-users/import", tag = "accounts", request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = Object), (status = 400), (status = 403)))]
pub async fn import_protected(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageProtectedUsers>,
    body: Body,
) -> Result<Json<ImportReport>, ApiError> {
    let body = super::read_limited(body, super::MAX_IMPORT_BODY, state.body_read_timeout).await?;
    Ok(Json(state.accounts.import_protected(&auth, &body).await?))
}

#[utoipa::path(get, path = "/api/v1/settings", tag = "accounts", responses((status = 200, body = Object), (status = 403)))]
pub async fn get_settings(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageSettings>,
) -> Result<Json<PlatformSettings>, ApiError> {
    Ok(Json(state.accounts.get_settings(&auth).await?))
}

/// Changes some settings; the change is recorded with old and new values.
#[utoipa::path(patch, path = "/api/v1/settings", tag = "accounts", request_body = Object, responses((status = 200, body = Object), (status = 400), (status = 403)))]
pub async fn update_settings(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageSettings>,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> Result<Json<PlatformSettings>, ApiError> {
    Ok(Json(state.accounts.update_settings(&auth, &patch).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[utoipa::path(put, path = "/api/v1/account/password", tag = "accounts", request_body = PasswordChange, responses((status = 204), (status = 400)))]
pub async fn change_password(
    State(state): State<AppState>,
    Auth(auth): Auth<OwnAccount>,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    state.accounts.change_password(&auth, &req.current_password, &req.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new TOTP secret to enrol (nothing is stored until confirmed).
#[utoipa::path(post, path = "/api/v1/account/totp", tag = "accounts", responses((status = 200, body = Object)))]
pub async fn begin_totp(
    State(state): State<AppState>,
    Auth(auth): Auth<OwnAccount>,
) -> Result<Json<TotpEnrolment>, ApiError> {
    Ok(Json(state.accounts.begin_totp(&auth)?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TotpConfirm {
    pub secret: String,
    pub code: String,
}

#[utoipa::path(post, path = "/api/v1/account/totp/confirm", tag = "accounts", request_body = TotpConfirm, responses((status = 204), (status = 400), (status = 409)))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    Auth(auth): Auth<OwnAccount>,
    ApiJson(req): ApiJson<TotpConfirm>,
) -> Result<StatusCode, ApiError> {
    state.accounts.confirm_totp(&auth, &req.secret, &req.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TotpRemove {
    pub password: String,
}

#[utoipa::path(delete, path = "/api/v1/account/totp", tag = "accounts", request_body = TotpRemove, responses((status = 204), (status = 400), (status = 409)))]
pub async fn remove_totp(
    State(state): State<AppState>,
    Auth(auth): Auth<OwnAccount>,
    ApiJson(req): ApiJson<TotpRemove>,
) -> Result<StatusCode, ApiError> {
    state.accounts.remove_totp(&auth, &req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
