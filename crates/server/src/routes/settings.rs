//! `/api/v1/settings`: the platform's time zone and session and lockout policy.

use axum::extract::State;
use axum::Json;
use logbook_accounts::permission::ManageSettings;
use logbook_accounts::{PlatformSettings, SettingsPatch};

use crate::auth::Auth;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

/// The platform's settings.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings", security(("session" = [])),
    responses((status = 200, body = PlatformSettings)))]
pub async fn get_settings(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageSettings>,
) -> Result<Json<PlatformSettings>, ApiError> {
    Ok(Json(state.accounts.get_settings(&auth).await?))
}

/// Changes some settings; the change is recorded with old and new values.
#[utoipa::path(patch, path = "/api/v1/settings", tag = "settings", request_body = SettingsPatch,
    security(("session" = [], "csrf" = [])), responses((status = 200, body = PlatformSettings)))]
pub async fn update_settings(
    State(state): State<AppState>,
    Auth(auth): Auth<ManageSettings>,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> Result<Json<PlatformSettings>, ApiError> {
    Ok(Json(state.accounts.update_settings(&auth, &patch).await?))
}
