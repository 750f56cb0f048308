//! Extractors shared by the API's handlers: each answers bad input with [`ApiError`] (a JSON
//! 400, never axum's plain-text rejection), and the API token guard.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Json;
use logbook_core::Source;
use logbook_store::ApiToken;
use serde::de::DeserializeOwned;

use crate::auth::request_source;
use crate::{ApiError, AppState};

/// Query parameters; a malformed query is a JSON 400, not axum's plain-text rejection.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| ApiQuery(t))
            .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
    }
}

/// A JSON body; malformed JSON is a JSON 400 like every other error.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(t)) => Ok(ApiJson(t)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(e) => Err(ApiError::bad_request("bad_json", e.body_text())),
        }
    }
}

/// The numeric id of a path like `/api/v1/users/{id}`; anything else is a JSON 400.
pub struct IdPath<T>(pub T);

impl<T: std::str::FromStr, S: Send + Sync> FromRequestParts<S> for IdPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let bad = || ApiError::bad_request("bad_path", "the id in the path must be a number");
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| bad())?;
        raw.parse().map(IdPath).map_err(|_| bad())
    }
}

/// The request's source, for handlers without a session.
pub struct RequestSource(pub Source);

impl<S: Send + Sync> FromRequestParts<S> for RequestSource {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestSource(request_source(parts)))
    }
}

/// A request authenticated by an active API token. A handler that takes this cannot run
/// without the check: the type is the permission.
#[derive(Debug)]
pub struct ApiCaller(pub ApiToken);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let token = state.log.authenticate(presented).await?.ok_or(ApiError::Unauthorized)?;
        Ok(ApiCaller(token))
    }
}
