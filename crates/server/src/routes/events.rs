//! `POST /api/v1/events`: the platform's other services record their events.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use logbook_core::{ActionGrant, Actor, ActorKind, EventAction, NewEvent, Outcome, Source, Target};
use logbook_log::AppendError;
use logbook_store::{IdempotencyKey, Mutation, MutationError, ServiceActionLabel};
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
    /// Action code: a service's own `<service>.<noun>.<verb>` (e.g. `billing.invoice.paid`), or
    /// one of the platform's catalogue (e.g. `login.failed`), which the token must be granted.
    pub action: String,
    /// The label the console shows for a service's own code, e.g. `Invoice Paid` (1-64
    /// characters). Required with the first event of a code this log has not seen; the code
    /// keeps the first label it was registered with, and another label is refused (409).
    #[serde(default)]
    pub action_label: Option<String>,
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

/// A request's events, and the service action labels it gives (the first given for each code),
/// with the index of the first event of each service code.
#[derive(Debug, Default)]
pub(crate) struct ParsedBody {
    pub events: Vec<NewEvent>,
    pub labels: BTreeMap<String, String>,
    pub first_use: BTreeMap<String, usize>,
    /// The body was one object, not an array: messages name no index.
    pub single: bool,
}

impl EventInput {
    /// The event, checked against what the token is granted: the platform's own codes and the
    /// actor type `system` are refused (403) unless the grant names them; and its checked
    /// `action_label`.
    fn into_event(
        self,
        at: &str,
        recorded_by: &str,
        grant: &ActionGrant,
    ) -> Result<(NewEvent, Option<String>), ApiError> {
        let action = EventAction::submitted(&self.action)
            .map_err(|e| ApiError::bad_request("unknown_action", format!("{at}{e}")))?;
        if !grant.allows(&action) {
            let why = match action {
                EventAction::Platform(_) => {
                    "it is one of the platform's own actions, which a token records only when granted"
                }
                EventAction::Service(_) => "it is not in the token's list of actions",
            };
            return Err(ApiError::Forbidden(format!(
                "{at}this API token may not record action {:?}: {why} (logbook admin create-token --actions)",
                action.code()
            )));
        }
        let kind = ActorKind::from_code(&self.actor.kind)
            .ok_or_else(|| invalid(at, "actor.type must be one of user, anonymous, service, api_token, system"))?;
        if !grant.allows_actor(kind) {
            return Err(ApiError::Forbidden(format!(
                "{at}this API token may not record actor type \"system\": it is the platform's own, which a token names only when granted actor:system"
            )));
        }
        if let Some(label) = &self.action_label {
            if matches!(action, EventAction::Platform(_)) {
                return Err(invalid(at, "action_label is only for a service's own action codes"));
            }
            logbook_core::check_action_label(label).map_err(|e| invalid(at, e))?;
        }
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
        Ok((event, self.action_label))
    }
}

pub(crate) fn parse_body(bytes: &[u8], recorded_by: &str, grant: &ActionGrant) -> Result<ParsedBody, ApiError> {
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
    let mut parsed = ParsedBody { events: Vec::with_capacity(items.len()), single, ..ParsedBody::default() };
    for (i, v) in items.into_iter().enumerate() {
        let at = if single { String::new() } else { format!("events[{i}]: ") };
        let input: EventInput = serde_json::from_value(v).map_err(|e| invalid(&at, e))?;
        let (event, label) = input.into_event(&at, recorded_by, grant)?;
        if let EventAction::Service(code) = &event.action {
            parsed.first_use.entry(code.code().to_owned()).or_insert(i);
            if let Some(label) = label {
                let first = parsed.labels.entry(code.code().to_owned()).or_insert_with(|| label.clone());
                if *first != label {
                    return Err(invalid(&at, format!("action_label differs from the one given earlier for {code:?}")));
                }
            }
        }
        parsed.events.push(event);
    }
    Ok(parsed)
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
/// again. All or nothing: one refused event refuses the request.
///
/// A token records its service's own codes (`<service>.<noun>.<verb>`, the first event of a
/// new code carrying its `action_label`); the platform's own codes and the actor type `system`
/// only when its grant names them (`logbook admin create-token --actions`), else 403.
#[utoipa::path(post, path = "/api/v1/events", tag = "ingestion",
    request_body(content = Vec<EventInput>, description = "one event object, or an array of up to 1,000"),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe")),
    security(("api_token" = [])),
    responses(
        (status = 201, body = IngestResponse, description = "committed"),
        (status = 400, body = crate::error::ErrorBody, description = "invalid input; nothing appended"),
        (status = 401, body = crate::error::ErrorBody, description = "missing, unknown or revoked token"),
        (status = 403, body = crate::error::ErrorBody, description = "the token may not record an event's action or actor type (the message names it); nothing appended"),
        (status = 409, body = crate::error::ErrorBody, description = "an action_label differs from the label its code is registered with; nothing appended"),
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
    let recorded_by = format!("{}{}", logbook_core::API_TOKEN_RECORDER, token.name);
    let parsed = parse_body(&bytes, &recorded_by, &token.grant)?;
    let labels = new_labels(&state, &org, &parsed).await?;
    let mutation = (!labels.is_empty() || key.is_some()).then(|| Mutation::Ingest {
        token: token.id,
        labels,
        idempotency: key.clone().map(|key| IdempotencyKey { key, request_hash }),
    });
    match state.log.append(&org, parsed.events, mutation).await {
        Ok(a) => Ok((StatusCode::CREATED, Json(IngestResponse { seqs: a.seqs().collect() })).into_response()),
        // A concurrent request with the same key won the race: answer what it stored.
        Err(AppendError::Rejected(MutationError::IdempotencyKeyTaken)) => {
            let key = key.unwrap_or_default();
            replay(&state, &token, &key, &request_hash)
                .await?
                .ok_or_else(|| ApiError::Internal("idempotency key taken but not found".into()))
        }
        Err(AppendError::Rejected(MutationError::ActionLabelConflict(code))) => Err(label_conflict(&code)),
        Err(e) => Err(e.into()),
    }
}

fn label_conflict(code: &str) -> ApiError {
    ApiError::Conflict(format!("action {code:?} is registered with another label; send its registered label or none"))
}

/// The labels this request registers: those of its service codes the log does not know yet.
/// Refuses a new code without a label (400) and a label that differs from the registered one
/// (409). The commit checks the second again, in its transaction, against a concurrent first.
async fn new_labels(
    state: &AppState,
    org: &logbook_store::Org,
    parsed: &ParsedBody,
) -> Result<Vec<ServiceActionLabel>, ApiError> {
    if parsed.first_use.is_empty() {
        return Ok(Vec::new());
    }
    let registered: BTreeMap<String, String> =
        state.log.store().service_actions(org.id).await?.into_iter().map(|a| (a.code, a.label)).collect();
    let mut new = Vec::new();
    for (code, &index) in &parsed.first_use {
        match (registered.get(code), parsed.labels.get(code)) {
            (Some(have), Some(given)) if have != given => return Err(label_conflict(code)),
            (Some(_), _) => {}
            (None, Some(label)) => new.push(ServiceActionLabel { code: code.clone(), label: label.clone() }),
            (None, None) => {
                let at = if parsed.single { String::new() } else { format!("events[{index}]: ") };
                return Err(ApiError::bad_request(
                    "action_label_required",
                    format!("{at}action {code:?} is new to this log: give its action_label (e.g. \"Invoice Paid\") with its first event"),
                ));
            }
        }
    }
    Ok(new)
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
