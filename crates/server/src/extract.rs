//! Extractors that answer bad input with [`ApiError`], and the API token guard.

use axum::extract::{FromRequestParts, Query};
use axum::http::header;
use axum::http::request::Parts;
use logbook_store::ApiToken;
use serde::de::DeserializeOwned;

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
