//! Reading the log: `GET /api/v1/events` (one page), `GET /api/v1/events/export` (every matching
//! event, streamed) and `GET /api/v1/users-in-log` (what the User filter offers). Each read is
//! recorded: a list or users read as `audit_log.viewed`, once per session and filter set
//! (`Accounts::record_view`), an export as `audit_log.exported`, every time.
//!
//! The handlers only authenticate and say who is asking; everything else is in functions that
//! take the organization, so the extractor can change without touching them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::tz::TimeZone;
use logbook_core::{Actor, EventAction, Source, Timestamp};
use logbook_log::export::{parse_from, parse_to, seq_range, ActionLabels, EventView, ExportEncoder, ExportFormat};
use logbook_log::verified::Integrity;
use logbook_store::{EventFilter, Org};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

use logbook_accounts::permission::ReadAuditLog;
use logbook_accounts::LogRead;

use crate::auth::Auth;
use crate::export_limit::ExportSlot;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

/// Page size when the request names none.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page.
pub const MAX_LIMIT: usize = 500;
/// Most actions one query may name.
pub const MAX_ACTIONS: usize = 32;
/// Longest search text, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Rows per store read while exporting: the most an export holds in memory at once.
const EXPORT_PAGE: usize = 1000;

/// The platform's time zone: day bounds of `from`/`to` and the `time_local` of every event.
/// One place, so that the settings table can become its source without touching the handlers.
pub async fn platform_time_zone(state: &AppState) -> Result<TimeZone, ApiError> {
    Ok(state.accounts.settings().await?.time_zone())
}

/// The filters of the audit log, as both reads take them from the query string (checked by
/// [`QueryParams::parse`], which also takes repeated `action`s).
#[derive(Debug, Default, Clone, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filters {
    /// Case-insensitive substring of the user, action label, details or target (at most 200
    /// characters; a needle of one or two characters is answered by a bounded scan, so its
    /// pages may hold fewer events than `limit` and still have a `next_cursor`).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Exactly this user (the User column: email or identifier).
    #[param(max_length = 320)]
    pub user: Option<String>,
    /// An action code; repeat the parameter (or separate codes with commas) for several.
    #[param(rename = "action", value_type = Option<Vec<String>>, style = Form, explode)]
    pub actions: Vec<String>,
    /// RFC 3339 instant (inclusive), or `YYYY-MM-DD`: from the start of that day in the
    /// platform's time zone.
    #[param(value_type = Option<String>)]
    pub from: Option<(String, Timestamp)>,
    /// RFC 3339 instant (inclusive), or `YYYY-MM-DD`: through the end of that day in the
    /// platform's time zone.
    #[param(value_type = Option<String>)]
    pub to: Option<(String, Timestamp)>,
}

/// Paging of `GET /api/v1/events`.
#[derive(Debug, Default, Clone, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Events per page: 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page, with the same filters.
    pub cursor: Option<String>,
}

/// How the export is encoded.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// RFC 4180 with a header.
    #[default]
    Csv,
    Ndjson,
}

impl From<Format> for ExportFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Csv => ExportFormat::Csv,
            Format::Ndjson => ExportFormat::Ndjson,
        }
    }
}

/// The export's own parameter.
#[derive(Debug, Default, Clone, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Encoding {
    /// `csv` (the default) or `ndjson`.
    #[param(inline)]
    pub format: Option<Format>,
}

/// The query of `GET /api/v1/events`, checked.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub filters: Filters,
    pub paging: Paging,
}

/// The query of `GET /api/v1/events/export`, checked.
#[derive(Debug, Default, Clone)]
pub struct ExportQuery {
    pub filters: Filters,
    pub encoding: Encoding,
}

// The derive cannot nest: a route's parameters are those of its parts.
impl IntoParams for ListQuery {
    fn into_params(parameter_in: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut params = Filters::into_params(&parameter_in);
        params.extend(Paging::into_params(&parameter_in));
        params
    }
}

impl IntoParams for ExportQuery {
    fn into_params(parameter_in: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut params = Filters::into_params(&parameter_in);
        params.extend(Encoding::into_params(&parameter_in));
        params
    }
}

/// A query string read as the platform's time zone says (day bounds): the reads' parameters.
pub trait FromQueryPairs: Sized {
    fn from_pairs(pairs: Vec<(String, String)>, tz: &TimeZone) -> Result<Self, ApiError>;
}

impl FromQueryPairs for ListQuery {
    fn from_pairs(pairs: Vec<(String, String)>, tz: &TimeZone) -> Result<Self, ApiError> {
        let p = QueryParams::parse(pairs, tz, LIST_PARAMS)?;
        Ok(ListQuery { filters: p.filters, paging: p.paging })
    }
}

impl FromQueryPairs for ExportQuery {
    fn from_pairs(pairs: Vec<(String, String)>, tz: &TimeZone) -> Result<Self, ApiError> {
        let p = QueryParams::parse(pairs, tz, EXPORT_PARAMS)?;
        Ok(ExportQuery { filters: p.filters, encoding: p.encoding })
    }
}

/// The checked query of a read (a JSON 400 when it is not acceptable).
pub struct Checked<T>(pub T);

impl<T: FromQueryPairs> FromRequestParts<AppState> for Checked<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ApiQuery(pairs) = ApiQuery::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        let tz = platform_time_zone(state).await?;
        T::from_pairs(pairs, &tz).map(Checked)
    }
}

/// The query string of a read, checked.
#[derive(Debug, Default)]
pub(crate) struct QueryParams {
    pub(crate) filters: Filters,
    pub(crate) paging: Paging,
    pub(crate) encoding: Encoding,
}

/// The parameters `GET /api/v1/events` takes beyond the filters.
pub(crate) const LIST_PARAMS: &[&str] = &["limit", "cursor"];
/// The parameters `GET /api/v1/events/export` takes beyond the filters.
pub(crate) const EXPORT_PARAMS: &[&str] = &["format"];

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

fn echo(s: &str) -> String {
    s.chars().take(64).collect()
}

impl QueryParams {
    /// Reads the pairs of the query string; `allowed` names the parameters this endpoint takes
    /// beyond the filters. An unknown or repeated parameter is an error, not silently ignored.
    pub(crate) fn parse(pairs: Vec<(String, String)>, tz: &TimeZone, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut p = QueryParams::default();
        let f = &mut p.filters;
        let mut seen = std::collections::HashSet::new();
        for (k, v) in pairs {
            if k != "action" && !seen.insert(k.clone()) {
                return Err(bad("bad_query", format!("{:?} is given more than once", echo(&k))));
            }
            let v_trimmed = v.trim();
            match k.as_str() {
                "q" => {
                    if v.chars().any(char::is_control) {
                        return Err(bad("bad_query", "q must not contain control characters"));
                    }
                    if v.chars().count() > MAX_QUERY_CHARS {
                        return Err(bad("bad_query", format!("q is longer than {MAX_QUERY_CHARS} characters")));
                    }
                    // Inner spaces are part of the needle; surrounding ones are an accident.
                    f.q = Some(v_trimmed.to_owned()).filter(|s| !s.is_empty());
                }
                "user" => {
                    if v.chars().any(char::is_control) || v.chars().count() > 320 {
                        return Err(bad(
                            "bad_query",
                            "user must be at most 320 characters, without control characters",
                        ));
                    }
                    f.user = Some(v).filter(|s| !s.is_empty());
                }
                "action" => {
                    for code in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                        // The platform's codes and any well-formed service code (one the log does
                        // not hold simply matches nothing).
                        let a = EventAction::from_code(code).map_err(|e| bad("unknown_action", e.to_string()))?;
                        if !f.actions.iter().any(|x| x == a.code()) {
                            f.actions.push(a.code().to_owned());
                        }
                    }
                    if f.actions.len() > MAX_ACTIONS {
                        return Err(bad("bad_query", format!("at most {MAX_ACTIONS} actions")));
                    }
                }
                "from" | "to" if !v_trimmed.is_empty() => {
                    let t = if k == "from" { parse_from(v_trimmed, tz) } else { parse_to(v_trimmed, tz) }
                        .map_err(|e| bad("bad_time", format!("{k}: {e}")))?;
                    let bound = Some((v_trimmed.to_owned(), t));
                    if k == "from" {
                        f.from = bound;
                    } else {
                        f.to = bound;
                    }
                }
                "from" | "to" => {}
                "limit" if allowed.contains(&"limit") => {
                    let n: usize = v_trimmed
                        .parse()
                        .map_err(|_| bad("bad_limit", format!("limit must be a whole number from 1 to {MAX_LIMIT}")))?;
                    if n == 0 || n > MAX_LIMIT {
                        return Err(bad("bad_limit", format!("limit must be a whole number from 1 to {MAX_LIMIT}")));
                    }
                    p.paging.limit = Some(n);
                }
                "cursor" if allowed.contains(&"cursor") => {
                    p.paging.cursor = Some(v_trimmed.to_owned()).filter(|s| !s.is_empty());
                }
                "format" if allowed.contains(&"format") => {
                    p.encoding.format = Some(match v_trimmed {
                        "csv" | "" => Format::Csv,
                        "ndjson" => Format::Ndjson,
                        other => {
                            return Err(bad(
                                "bad_format",
                                format!("format must be csv or ndjson, not {:?}", echo(other)),
                            ))
                        }
                    });
                }
                other => {
                    let mut names = vec!["q", "user", "action", "from", "to"];
                    names.extend_from_slice(allowed);
                    return Err(bad(
                        "bad_query",
                        format!("unknown parameter {:?}; this endpoint takes {}", echo(other), names.join(", ")),
                    ));
                }
            }
        }
        if let (Some((_, f)), Some((_, t))) = (&p.filters.from, &p.filters.to) {
            if f >= t {
                return Err(bad("bad_range", "from must be before to"));
            }
        }
        Ok(p)
    }
}

impl Filters {
    /// What `audit_log.viewed` records of these filters (name → value as given, the actions
    /// joined by commas); the console's list and the API's record the same.
    pub(crate) fn recorded(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("q", self.q.clone()),
            ("user", self.user.clone()),
            ("from", self.from.as_ref().map(|b| b.0.clone())),
            ("to", self.to.as_ref().map(|b| b.0.clone())),
            ("action", Some(self.actions.join(",")).filter(|a| !a.is_empty())),
        ] {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        }
        m
    }

    /// What a cursor is bound to: the organization and every filter, in a fixed encoding.
    pub(crate) fn digest(&self, org: &Org) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        field(&org.id.0.to_be_bytes());
        field(self.q.as_deref().unwrap_or("\u{0}none").as_bytes());
        field(self.user.as_deref().unwrap_or("\u{0}none").as_bytes());
        let mut actions = self.actions.clone();
        actions.sort();
        field(actions.join(",").as_bytes());
        for bound in [&self.from, &self.to] {
            match bound {
                Some((_, t)) => field(&t.as_micros().to_be_bytes()),
                None => field(b"none"),
            }
        }
        h.finalize().into()
    }

    async fn filter(&self, state: &AppState, org: &Org) -> Result<EventFilter, ApiError> {
        let seqs = seq_range(&**state.log.store(), org, self.from.as_ref().map(|b| b.1), self.to.as_ref().map(|b| b.1))
            .await?;
        Ok(EventFilter { user: self.user.clone(), actions: self.actions.clone(), seqs, text: self.q.clone() })
    }
}

/// One entry of a page: the event as decoded from its stored bytes, and whether those bytes are
/// what the server signed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedEvent {
    #[serde(flatten)]
    pub event: EventView,
    /// Re-computed from the bytes shown: `verified` — this exact content is in the log the
    /// server signed, at this position (its SHA-256 leaf hash, `leaf_hash`, is the one the
    /// inclusion proof covers, the proof verifies against the newest signed checkpoint, and the
    /// stored columns agree); `altered` — the content shown differs from what was signed: do not
    /// trust it, run `logbook verify`; `not_yet_signed` — appended after the newest checkpoint
    /// (one follows within about a second).
    pub integrity: Integrity,
}

/// One page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// Newest first. Each event: `seq`, `id`, `time` (RFC 3339, UTC), `time_local` (RFC 3339
    /// with the platform zone's offset), `user`, `actor` {type, id, email}, `action`,
    /// `action_label`, `target` {type, id, display} (when there is one), `details`, `fields`,
    /// `outcome`, `source` {ip, user_agent}, `recorded_by`, `origin` (the name of the API token
    /// that recorded it, or `platform`), `leaf_hash` (hex, the hash of the content shown), and
    /// `integrity` (`verified`, `altered` or `not_yet_signed`).
    pub events: Vec<ListedEvent>,
    /// Pass as `cursor` (with the same filters) for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// The IANA name of the platform's time zone that `time_local` and date bounds use.
    pub time_zone: String,
}

fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name().unwrap_or("UTC").to_owned()
}

/// One page of events, newest first, matching every given filter. Pagination is by keyset: a
/// page is as fast at any depth, and events appended meanwhile never shift later pages. The read
/// is recorded in the log (`audit_log.viewed`, with its filters) once per session and filter set.
#[utoipa::path(get, path = "/api/v1/events", tag = "query",
    params(ListQuery),
    security(("session" = [])),
    responses(
        (status = 200, body = EventList),
        (status = 400, description = "a bad parameter or cursor: `bad_query`, `bad_time`, `bad_range`, `bad_limit`, `unknown_action`, `bad_cursor`"),
        (status = 503, description = "`query_timeout`: the query ran longer than the server's `query_timeout` and was stopped; narrow the filters")))]
pub async fn list(
    State(state): State<AppState>,
    Auth(reader): Auth<ReadAuditLog>,
    Checked(query): Checked<ListQuery>,
) -> Result<Json<EventList>, ApiError> {
    let org = state.default_org.clone();
    let recorded = query.filters.recorded();
    let list = list_events(&state, &org, query).await?;
    // Recorded once the read succeeded, once per session and filter set (not per page).
    state.accounts.record_view(&reader, LogRead::List(&recorded)).await?;
    Ok(Json(list))
}

pub(crate) async fn list_events(state: &AppState, org: &Org, query: ListQuery) -> Result<EventList, ApiError> {
    let tz = platform_time_zone(state).await?;
    let digest = query.filters.digest(org);
    let before = match &query.paging.cursor {
        Some(c) => state.cursor_key.decode(c, &digest)?,
        None => u64::MAX,
    };
    let limit = query.paging.limit.unwrap_or(DEFAULT_LIMIT);
    let filter = query.filters.filter(state, org).await?;
    let page = state.log.store().query_events_within(org.id, &filter, before, limit, state.query_timeout).await?;
    let labels = ActionLabels::load(&**state.log.store(), org).await?;
    let checks = state.log.check_entries(org, &page.rows).await?;
    let events = page
        .rows
        .iter()
        .zip(checks)
        .map(|(r, check)| {
            let mut event = EventView::from_row(r, &tz, &labels).map_err(|e| ApiError::Internal(e.to_string()))?;
            // The hash of the bytes shown, not the stored column beside them.
            event.leaf_hash = logbook_integrity::to_hex(&check.leaf_hash);
            Ok(ListedEvent { event, integrity: check.integrity })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let next_cursor = page.next_before.map(|b| state.cursor_key.encode(b, &digest));
    Ok(EventList { events, next_cursor, time_zone: zone_name(&tz) })
}

/// Every event the filters select, newest first, streamed as CSV (RFC 4180, the columns of
/// `logbook export`, cells a spreadsheet would run as formulas prefixed with `'`) or NDJSON.
/// The export is itself recorded in the log (`audit_log.exported`, with its filters) before the
/// first byte is sent; it covers the events stored at that moment.
#[utoipa::path(get, path = "/api/v1/events/export", tag = "query",
    params(ExportQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "the events, streamed", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"))),
        (status = 400, description = "a bad parameter: `bad_query`, `bad_time`, `bad_range`, `bad_format`, `unknown_action`"),
        (status = 429, description = "`too_many_exports`: the user's or the server's exports at once are at their limit (`export_max_per_user`, `export_max_concurrent`); retry after `Retry-After` seconds")))]
pub async fn export(
    State(state): State<AppState>,
    Auth(reader): Auth<ReadAuditLog>,
    Checked(query): Checked<ExportQuery>,
) -> Result<Response, ApiError> {
    let org = state.default_org.clone();
    // Before anything is read or recorded: a refused export costs nothing.
    let slot = state
        .exports
        .start(&reader.user().to_string())
        .map_err(|busy| ApiError::TooManyExports { mine: busy == crate::export_limit::ExportBusy::User })?;
    let who = Exporter { actor: reader.actor(), source: reader.source().clone(), recorded_by: "logbook".into() };
    export_events(&state, &org, query, who, slot).await
}

/// Who asks for an export: what its audit event records.
#[derive(Debug)]
struct Exporter {
    actor: Actor,
    source: Source,
    recorded_by: String,
}

/// `slot` is held by the task that reads the store and by the streamed body, so the export
/// counts against the limits until both have ended.
async fn export_events(
    state: &AppState,
    org: &Org,
    query: ExportQuery,
    who: Exporter,
    slot: Arc<ExportSlot>,
) -> Result<Response, ApiError> {
    let tz = platform_time_zone(state).await?;
    let params = &query.filters;
    let format = ExportFormat::from(query.encoding.format.unwrap_or_default());
    let mut filter = params.filter(state, org).await?;
    // The export covers what is stored now, not its own audit event nor later appends.
    let head = state.log.store().log_head(org.id).await?.size;
    filter.seqs.end = filter.seqs.end.min(head);
    filter.seqs.start = filter.seqs.start.min(filter.seqs.end);

    let event = logbook_log::export::ExportRecord {
        format,
        time_zone: zone_name(&tz),
        search: params.q.clone(),
        user: params.user.clone(),
        actions: params.actions.clone(),
        from: params.from.as_ref().map(|(s, _)| s.clone()),
        to: params.to.as_ref().map(|(s, _)| s.clone()),
    }
    .event(org, who.actor, who.source, who.recorded_by);
    // Recorded before any byte leaves: an export cut short is still on record.
    state.log.append_read_record(org, vec![event], None).await?;

    let labels = ActionLabels::load(&**state.log.store(), org).await?;
    let mut enc = ExportEncoder::new(format, tz, labels).map_err(|e| ApiError::Internal(e.to_string()))?;
    let first = enc.take().map_err(|e| ApiError::Internal(e.to_string()))?;
    // Two chunks in flight at most: a slow client slows the reads, memory stays flat.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let store = state.log.store().clone();
    let org_id = org.id;
    let reading = slot.clone();
    tokio::spawn(async move {
        let _slot = reading;
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        let mut before = u64::MAX;
        loop {
            let chunk = async {
                let page = store.query_events(org_id, &filter, before, EXPORT_PAGE).await?;
                for row in &page.rows {
                    enc.row(row)?;
                }
                Ok::<_, logbook_log::export::ExportError>((enc.take()?, page.next_before))
            }
            .await;
            match chunk {
                Ok((bytes, next)) => {
                    if tx.send(Ok(bytes)).await.is_err() {
                        return; // the client went away
                    }
                    match next {
                        Some(n) => before = n,
                        None => return,
                    }
                }
                Err(e) => {
                    // The status is already sent: breaking the body tells the client the export
                    // is incomplete.
                    tracing::error!(error = %e, "export failed midway");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            }
        }
    });
    // The body holds the slot until hyper drops it: sent to the end, or its client gone (the
    // receiver dropped with it is what tells the reading task to stop).
    let stream = futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        rx.recv().await.map(|item| (item, (rx, slot)))
    });
    let (content_type, ext) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8; header=present", "csv"),
        ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let filename =
        format!("audit-log-{}-{}.{ext}", org.slug, state.log.clock().now().to_jiff().strftime("%Y%m%dT%H%M%SZ"));
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsersParams {
    /// Only users starting with this (case-sensitive, as stored).
    #[serde(default)]
    #[param(max_length = 320)]
    prefix: String,
    /// At most this many: 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsersInLog {
    /// Distinct User column values, sorted.
    pub users: Vec<String>,
}

/// The users that appear in the log, for the User filter: distinct, sorted, by prefix. The read
/// is recorded in the log (`audit_log.viewed`, with the prefix) once per session and prefix.
#[utoipa::path(get, path = "/api/v1/users-in-log", tag = "query",
    params(UsersParams),
    security(("session" = [])),
    responses(
        (status = 200, body = UsersInLog),
        (status = 400, description = "`bad_query` or `bad_limit`")))]
pub async fn users_in_log(
    State(state): State<AppState>,
    Auth(reader): Auth<ReadAuditLog>,
    ApiQuery(params): ApiQuery<UsersParams>,
) -> Result<Json<UsersInLog>, ApiError> {
    let org = state.default_org.clone();
    let prefix = params.prefix.clone();
    let users = list_users(&state, &org, params).await?;
    state.accounts.record_view(&reader, LogRead::Users(&prefix)).await?;
    Ok(Json(users))
}

async fn list_users(state: &AppState, org: &Org, params: UsersParams) -> Result<UsersInLog, ApiError> {
    let limit = params.limit.unwrap_or(20);
    if limit == 0 || limit > 100 {
        return Err(bad("bad_limit", "limit must be a whole number from 1 to 100"));
    }
    if params.prefix.chars().count() > 320 || params.prefix.chars().any(char::is_control) {
        return Err(bad("bad_query", "prefix must be at most 320 characters, without control characters"));
    }
    let users = state.log.store().users(org.id, &params.prefix, limit).await?;
    Ok(UsersInLog { users })
}
