//! `/api/v1/protected-users`: the accounts in the platform's protected scope.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use logbook_accounts::permission::{ManageProtectedUsers, ReadProtectedUsers};
use logbook_accounts::{ImportReport, ProtectedUserView};
use logbook_core::ProtectedUserId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::extract::{ApiJson, ApiQuery, IdPath};
use crate::{ApiError, AppState};

/// Page size when the request names none.
const DEFAULT_LIMIT: usize = 50;
/// Largest page.
const MAX_LIMIT: usize = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProtectedQuery {
    /// Case-insensitive substring of email or name.
    pub q: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page: 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProtectedPage {
    pub protected_users: Vec<ProtectedUserView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of protected users, by email.
#[utoipa::path(get, path = "/api/v1/protected-users", tag = "protected_users", params(ProtectedQuery),
    security(("session" = [])), responses((status = 200, body = ProtectedPage)))]
pub async fn list_protected(
    State(state): State<AppState>,
    Auth(auth): Auth<ReadProtectedUsers>,
    ApiQuery(q): ApiQuery<ProtectedQuery>,
) -> Result<Json<ProtectedPage>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("bad_query", "limit must be between 1 and 500"));
    }
    let rows = state.accounts.list_protected(&auth, q.q.as_deref(), q.cursor.as_deref(), limit).await?;
    let next_cursor = (rows.len() == limit).then(|| rows.last().map(|r| r.email.clone())).flatten();
    Ok(Json(ProtectedPage { protected_users: rows, next_cursor }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewProtectedUser {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    pub name: String,
}

/// Adds one protected user.
#[utoipa::path(post, path = "/api/v1/protected-users", tag = "protected_users", request_body = NewProtectedUser,
    security(("session" = [], "csrf" = [])),
    responses((status = 201, body = ProtectedUserView), (status = 409, description = "already protected")))]
pub async fn add_protected(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageProtectedUsers>,
    ApiJson(req): ApiJson<NewProtectedUser>,
) -> Result<(StatusCode, Json<ProtectedUserView>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.accounts.add_protected(&auth, &req.email, &req.name).await?)))
}

/// Removes one protected user.
#[utoipa::path(delete, path = "/api/v1/protected-users/{id}", tag = "protected_users",
    params(("id" = i64, Path, description = "the protected user's id")), security(("session" = [], "csrf" = [])),
    responses((status = 204, description = "removed"), (status = 404)))]
pub async fn remove_protected(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageProtectedUsers>,
    IdPath(id): IdPath<ProtectedUserId>,
) -> Result<StatusCode, ApiError> {
    state.accounts.remove_protected(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Bulk import: a CSV body with the header `email,name` (at most 10,000 rows, 4 MiB). Valid
/// rows are added (one event each); the others are reported by line.
#[utoipa::path(post, path = "/api/v1/protected-users/import", tag = "protected_users",
    request_body(content = String, content_type = "text/csv", description = "`email,name` and one row per user"),
    security(("session" = [], "csrf" = [])), responses((status = 200, body = ImportReport)))]
pub async fn import_protected(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageProtectedUsers>,
    body: Body,
) -> Result<Json<ImportReport>, ApiError> {
    let body = super::read_limited(body, super::MAX_IMPORT_BODY, state.body_read_timeout).await?;
    Ok(Json(state.accounts.import_protected(&auth, &body).await?))
}
