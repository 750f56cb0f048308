//! `POST /api/v1/events`: the platform's other services record their events.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logbook_core::{Action, Actor, ActorKind, NewEvent, Outcome, Source, Target};
use logbook_log::AppendError;
use logbook_store::{Mutation, MutationError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::extract::ApiCaller;
use crate::{ApiError, AppState};

/// Most events one request may carry.
pub const MAX_EVENTS: usize = 1000;
/// Largest accepted body.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// One event to record. `seq`, `id` and `time` are assigned by Logbook.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// Action code, e.g. `login.failed` (see the event catalogue).
    pub action: String,
    pub actor: ActorInput,
    #[serde(default)]
    pub target: Option<TargetInput>,
    /// A short sentence a person can read.
    #[serde(default)]
    pub details: String,
    /// Structured details: string keys (a-z, 0-9, `_`, `.`) to string values.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// `success` (default) or `failure`.
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub source: Option<SourceInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorInput {
    /// `user`, `anonymous`, `service`, `api_token` or `system`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetInput {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub display: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceInput {
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IngestResponse {
    /// The `seq` of each event, in request order.
    pub seqs: Vec<u64>,
}

fn invalid(at: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_event", format!("{at}{message}"))
}

impl EventInput {
    fn into_event(self, at: &str, recorded_by: &str) -> Result<NewEvent, ApiError> {
        let action =
            Action::from_code(&self.action).map_err(|e| ApiError::bad_request("unknown_action", format!("{at}{e}")))?;
        let kind = ActorKind::from_code(&self.actor.kind)
            .ok_or_else(|| invalid(at, "actor.type must be one of user, anonymous, service, api_token, system"))?;
        let outcome = match self.outcome.as_deref() {
            None | Some("success") => Outcome::Success,
            Some("failure") => Outcome::Failure,
            Some(_) => return Err(invalid(at, "outcome must be \"success\" or \"failure\"")),
        };
        let source = match self.source {
            None => Source::default(),
            Some(s) => Source {
                via: None,
                ip: s
                    .ip
                    .map(|ip| ip.trim().parse())
                    .transpose()
                    .map_err(|_| invalid(at, "source.ip is not an IP address"))?,
                user_agent: s.user_agent,
            },
        };
        let event = NewEvent {
            action,
            actor: Actor { kind, id: self.actor.id, email: self.actor.email },
            target: self.target.map(|t| Target { kind: t.kind, id: t.id, display: t.display }),
            details: self.details,
            fields: self.fields,
            outcome,
            source,
            recorded_by: recorded_by.to_owned(),
        };
        event.validate().map_err(|e| invalid(at, e))?;
        Ok(event)
    }
}

pub(crate) fn parse_body(bytes: &[u8], recorded_by: &str) -> Result<Vec<NewEvent>, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}")))?;
    let (items, single) = match value {
        serde_json::Value::Array(items) => (items, false),
        v @ serde_json::Value::Object(_) => (vec![v], true),
        _ => {
            return Err(ApiError::bad_request("invalid_event", "the body must be an event object or an array of them"))
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_request("invalid_event", "the array holds no event"));
    }
    if items.len() > MAX_EVENTS {
        return Err(ApiError::bad_request("too_many_events", format!("at most {MAX_EVENTS} events per request")));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let at = if single { String::new() } else { format!("events[{i}]: ") };
            let input: EventInput = serde_json::from_value(v).map_err(|e| invalid(&at, e))?;
            input.into_event(&at, recorded_by)
        })
        .collect()
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let s = v.to_str().ok().filter(|s| !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic()));
    s.map(|s| Some(s.to_owned())).ok_or_else(|| {
        ApiError::bad_request("bad_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters")
    })
}

/// Records one event, or an array of up to 1,000, durably: the answer comes after the commit.
/// With an `Idempotency-Key`, a retried request answers the first result instead of appending
/// again.
#[utoipa::path(post, path = "/api/v1/events", tag = "ingestion",
    request_body(content = Vec<EventInput>, description = "one event object, or an array of up to 1,000"),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe")),
    security(("api_token" = [])),
    responses(
        (status = 201, body = IngestResponse, description = "committed"),
        (status = 400, body = crate::error::ErrorBody, description = "invalid input; nothing appended"),
        (status = 401, body = crate::error::ErrorBody, description = "missing, unknown or revoked token"),
        (status = 413, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "idempotency key reused for another request"),
        (status = 503, body = crate::error::ErrorBody, description = "not stored; retry")))]
pub async fn ingest(
    State(state): State<AppState>,
    ApiCaller(token): ApiCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let bytes = super::read_limited(body, MAX_BODY, state.body_read_timeout).await?;
    let org = state
        .log
        .org_by_id(token.org)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("token {} names no organization", token.id)))?;
    let request_hash: [u8; 32] = Sha256::digest(&bytes).into();
    if let Some(key) = &key {
        if let Some(r) = replay(&state, &token, key, &request_hash).await? {
            return Ok(r);
        }
    }
    let events = parse_body(&bytes, &format!("api-token:{}", token.name))?;
    let mutation = key.clone().map(|key| Mutation::RememberIdempotencyKey { token: token.id, key, request_hash });
    match state.log.append(&org, events, mutation).await {
        Ok(a) => Ok((StatusCode::CREATED, Json(IngestResponse { seqs: a.seqs().collect() })).into_response()),
        // A concurrent request with the same key won the race: answer what it stored.
        Err(AppendError::Rejected(MutationError::IdempotencyKeyTaken)) => {
            let key = key.unwrap_or_default();
            replay(&state, &token, &key, &request_hash)
                .await?
                .ok_or_else(|| ApiError::Internal("idempotency key taken but not found".into()))
        }
        Err(e) => Err(e.into()),
    }
}

async fn replay(
    state: &AppState,
    token: &logbook_store::ApiToken,
    key: &str,
    request_hash: &[u8; 32],
) -> Result<Option<Response>, ApiError> {
    let Some(rec) = state.log.store().idempotency_record(token.id, key).await? else { return Ok(None) };
    if &rec.request_hash != request_hash {
        return Err(ApiError::Unprocessable {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was used for a different request".into(),
        });
    }
    let seqs = (rec.first_seq..rec.first_seq + rec.count).collect();
    let mut resp = (StatusCode::CREATED, Json(IngestResponse { seqs })).into_response();
    resp.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    Ok(Some(resp))
}
