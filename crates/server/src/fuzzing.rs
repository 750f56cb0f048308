//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), and nothing else: the pure
//! parsing and checking steps of the HTTP handlers and extractors, without a store or a
//! request. Each function is what the real code path calls; none is part of the crate's API.

use axum::http::{HeaderMap, HeaderValue};
use jiff::tz::TimeZone;
use logbook_core::{NewEvent, Timestamp};
use logbook_log::export::ExportFormat;
use logbook_store::Org;

pub use crate::cursor::CursorKey;
use crate::routes::query::{QueryParams, EXPORT_PARAMS, LIST_PARAMS};
use crate::ApiError;

/// The body of `POST /api/v1/events`, as `ingest` parses and validates it, for a token granted
/// every action (so that the fuzzer reaches the checks behind the grant's).
pub fn parse_event_body(bytes: &[u8], recorded_by: &str) -> Result<Vec<NewEvent>, ApiError> {
    let codes: Vec<&str> = logbook_core::Action::ALL.iter().map(|a| a.code()).collect();
    let grant = logbook_core::ActionGrant::parse(&format!("*,actor:system,{}", codes.join(",")))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    crate::routes::events::parse_body(bytes, recorded_by, &grant).map(|p| p.events)
}

/// The `Idempotency-Key` header as `ingest` reads it; `None` if `value` cannot be a header value.
pub fn idempotency_key(value: &[u8]) -> Option<Result<Option<String>, ApiError>> {
    let mut headers = HeaderMap::new();
    headers.insert("idempotency-key", HeaderValue::from_bytes(value).ok()?);
    Some(crate::routes::events::idempotency_key(&headers))
}

/// Which reading endpoint's parameters to check.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint {
    /// `GET /api/v1/events`
    List,
    /// `GET /api/v1/events/export`
    Export,
}

/// A query string as [`QueryParams::parse`] accepted it, with the digest its cursors are bound to.
#[derive(Debug)]
pub struct ParsedQuery {
    pub q: Option<String>,
    pub user: Option<String>,
    pub actions: Vec<String>,
    pub from: Option<(String, Timestamp)>,
    pub to: Option<(String, Timestamp)>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    pub format: Option<ExportFormat>,
    pub digest: [u8; 32],
}

/// The decoded pairs of a query string, checked as the reading endpoints check them.
pub fn parse_query(
    pairs: Vec<(String, String)>,
    tz: &TimeZone,
    endpoint: Endpoint,
    org: &Org,
) -> Result<ParsedQuery, ApiError> {
    let allowed = match endpoint {
        Endpoint::List => LIST_PARAMS,
        Endpoint::Export => EXPORT_PARAMS,
    };
    let p = QueryParams::parse(pairs, tz, allowed)?;
    let digest = p.filters.digest(org);
    let f = p.filters;
    Ok(ParsedQuery {
        q: f.q,
        user: f.user,
        actions: f.actions,
        from: f.from,
        to: f.to,
        limit: p.paging.limit,
        cursor: p.paging.cursor,
        format: p.encoding.format.map(ExportFormat::from),
        digest,
    })
}

/// The session token the extractors find in these `Cookie` header values (values that cannot
/// be header values are skipped, as a server would never receive them).
pub fn session_token(cookie_headers: &[&[u8]]) -> Option<String> {
    let mut headers = HeaderMap::new();
    for v in cookie_headers {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            headers.append(axum::http::header::COOKIE, v);
        }
    }
    crate::auth::session_token_in(&headers, crate::auth::SESSION_COOKIE)
}

/// The console's Audit Log page for this query string (`View::parse`): its own URL, and the
/// links it shows: "Refresh", then "Newer" and "Older" (to a page starting at `next`), which
/// the page shows only once the cursor has been accepted.
pub fn audit_log_page_links(pairs: Vec<(String, String)>, next: &str) -> (String, [Option<String>; 3]) {
    let v = crate::console::audit_log::View::parse(pairs);
    (v.url(v.cursor.as_deref(), &v.prev), [Some(v.url(None, &[])), v.newer_url(), Some(v.older_url(next))])
}
