//! The Audit Log page: the table, its filters in the URL, keyset pages, CSV export of exactly
//! the filtered rows, and each entry's full record with its inclusion proof checked against the
//! latest signed checkpoint. Everything works without JavaScript.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use logbook_accounts::permission::ReadAuditLog;
use logbook_accounts::{Authorized, LogRead};
use logbook_core::{Action, Outcome};
use logbook_log::export::{ActionLabels, EventView};
use logbook_log::verified::{EntryCheck, Integrity};
use logbook_store::ServiceActionLabel;
use maud::{html, Markup};

use super::layout::{flash, page, respond, Flash};
use crate::auth::Page;
use crate::routes::query::{list_events, platform_time_zone, EventList, FromQueryPairs, ListQuery};
use crate::{ApiError, AppState};

/// Page sizes offered.
const PAGE_SIZES: [usize; 3] = [25, 50, 100];
/// How many earlier pages the "Previous" link remembers (in the URL).
const MAX_HISTORY: usize = 50;

/// The page's query string: the API's filters, plus `prev` (the cursors of earlier pages).
#[derive(Debug, Default, Clone)]
pub(crate) struct View {
    q: String,
    user: String,
    actions: Vec<String>,
    from: String,
    to: String,
    limit: usize,
    pub(crate) cursor: Option<String>,
    pub(crate) prev: Vec<String>,
}

fn enc(s: &str) -> String {
    super::urlencode(s)
}

impl View {
    pub(crate) fn parse(pairs: Vec<(String, String)>) -> Self {
        let mut v = View { limit: 50, ..Default::default() };
        for (k, val) in pairs {
            match k.as_str() {
                "q" => v.q = val,
                "user" => v.user = val,
                "action" => {
                    v.actions.extend(val.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned))
                }
                "from" => v.from = val,
                "to" => v.to = val,
                "limit" => v.limit = val.parse().ok().filter(|n| PAGE_SIZES.contains(n)).unwrap_or(50),
                "cursor" => v.cursor = Some(val).filter(|c| !c.is_empty()),
                "prev" => {
                    v.prev = val.split('~').filter(|c| !c.is_empty()).take(MAX_HISTORY).map(str::to_owned).collect()
                }
                _ => {}
            }
        }
        v.actions.sort();
        v.actions.dedup();
        v
    }

    /// The filters as the API takes them (for the query and the export link).
    fn filter_pairs(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for (k, v) in [("q", &self.q), ("user", &self.user), ("from", &self.from), ("to", &self.to)] {
            if !v.trim().is_empty() {
                p.push((k.to_owned(), v.clone()));
            }
        }
        for a in &self.actions {
            p.push(("action".to_owned(), a.clone()));
        }
        p
    }

    fn filters_query(&self) -> String {
        self.filter_pairs().iter().map(|(k, v)| format!("{k}={}", enc(v))).collect::<Vec<_>>().join("&")
    }

    /// This view's URL with another cursor and history.
    pub(crate) fn url(&self, cursor: Option<&str>, prev: &[String]) -> String {
        let mut q = self.filters_query();
        let mut add = |s: String| {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(&s);
        };
        if self.limit != 50 {
            add(format!("limit={}", self.limit));
        }
        if let Some(c) = cursor {
            add(format!("cursor={}", enc(c)));
        }
        if !prev.is_empty() {
            add(format!("prev={}", enc(&prev.join("~"))));
        }
        if q.is_empty() {
            "/audit-log".into()
        } else {
            format!("/audit-log?{q}")
        }
    }

    /// The page before this one (`None` on the first page).
    pub(crate) fn newer_url(&self) -> Option<String> {
        self.cursor.as_ref()?;
        Some(match self.prev.split_last() {
            Some((last, rest)) => self.url(Some(last), rest),
            None => self.url(None, &[]),
        })
    }

    /// The page after this one, remembering this one (a bounded history) for "Newer".
    pub(crate) fn older_url(&self, next: &str) -> String {
        let mut prev = self.prev.clone();
        if let Some(c) = &self.cursor {
            prev.push(c.clone());
        }
        let keep = prev.len().saturating_sub(MAX_HISTORY);
        self.url(Some(next), &prev[keep..])
    }
}

fn icon_download() -> Markup {
    html! {
        svg width="18" height="18" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true" {
            path d="M12 3v12M7 10l5 5 5-5M5 21h14" {}
        }
    }
}

fn icon_refresh() -> Markup {
    html! {
        svg width="18" height="18" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true" {
            path d="M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7" {}
        }
    }
}

/// `2026-11-26T10:03:04.123456+01:00` → `2026-11-26 10:03:04`.
fn short_time(local: &str) -> &str {
    local.get(..19).unwrap_or(local)
}

/// `services`: the service actions registered in the log, offered after the platform's.
fn filters_form(
    v: &View,
    users: &[String],
    services: &[ServiceActionLabel],
    zone: &str,
    now_utc: jiff::Timestamp,
) -> Markup {
    let preset = |hours: i64| {
        let from = now_utc.checked_sub(jiff::SignedDuration::from_hours(hours)).unwrap_or(now_utc);
        let mut p = v.clone();
        p.from = from.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        p.to = String::new();
        p.url(None, &[])
    };
    let selected_actions = v.actions.len();
    html! {
        form.panel.filters method="get" action="/audit-log" role="search" aria-label="Filter the audit log" {
            div.row {
                div.grow2 {
                    label for="q" { "Search" }
                    input id="q" type="search" name="q" value=(v.q) placeholder="User, action, details or target";
                }
                div {
                    label for="user" { "User" }
                    input id="user" type="text" name="user" value=(v.user) list="users-in-log" placeholder="All users" autocomplete="off";
                    datalist id="users-in-log" { @for u in users { option value=(u) {} } }
                }
                div {
                    label id="actions-label" { "Action" }
                    details.multi {
                        summary aria-labelledby="actions-label" {
                            @if selected_actions == 0 { "All actions" } @else { (selected_actions) " selected" }
                        }
                        fieldset.menu {
                            legend.skip { "Actions" }
                            @for (code, label) in Action::ALL.iter().map(|a| (a.code(), a.label())).chain(services.iter().map(|s| (s.code.as_str(), s.label.as_str()))) {
                                label.check {
                                    input type="checkbox" name="action" value=(code) checked[v.actions.iter().any(|x| x == code)];
                                    " " (label)
                                }
                            }
                        }
                    }
                }
            }
            div.row {
                div {
                    label for="from" { "From" }
                    input id="from" type=(date_input_type(&v.from)) name="from" value=(v.from);
                }
                div {
                    label for="to" { "To (inclusive)" }
                    input id="to" type=(date_input_type(&v.to)) name="to" value=(v.to);
                }
                div.fit {
                    label for="limit" { "Per page" }
                    select id="limit" name="limit" {
                        @for n in PAGE_SIZES { option value=(n) selected[n == v.limit] { (n) } }
                    }
                }
                div.fit.actions-inline {
                    button type="submit" { "Apply" }
                    a.button.secondary href="/audit-log" { "Clear" }
                }
            }
            p.presets.small {
                span.muted { "Dates are days in " (zone) ". Quick ranges: " }
                a href=(preset(24)) { "Last 24 hours" } " · "
                a href=(preset(24 * 7)) { "Last 7 days" } " · "
                a href=(preset(24 * 30)) { "Last 30 days" }
            }
        }
    }
}

/// A calendar for a day; a text field for an instant (e.g. from a quick range), so it is kept.
fn date_input_type(value: &str) -> &'static str {
    let is_day = value.is_empty() || (value.len() == 10 && value.as_bytes().get(4) == Some(&b'-'));
    if is_day {
        "date"
    } else {
        "text"
    }
}

fn table(list: &EventList, zone: &str) -> Markup {
    html! {
        div.table-wrap {
            table.log aria-describedby="results-summary" {
                thead {
                    tr {
                        th scope="col" { "Timestamp (" (zone) ")" }
                        th scope="col" { "User" }
                        th scope="col" { "Action" }
                        th scope="col" { "Details" }
                        th scope="col" { "Source" }
                        th scope="col" { "Integrity" }
                    }
                }
                tbody {
                    @for listed in &list.events {
                        @let e = &listed.event;
                        @let altered = listed.integrity == Integrity::Altered;
                        tr.failure[e.outcome == Outcome::Failure].altered[altered] data-seq=(e.seq) {
                            td.nowrap {
                                a.rowlink href=(format!("/audit-log/events/{}", e.seq)) title=(e.time_local) { (short_time(&e.time_local)) }
                            }
                            td { (e.user) }
                            td.nowrap {
                                (e.action_label)
                                @if e.outcome == Outcome::Failure { " " span.badge.fail { "failure" } }
                            }
                            td { (e.details) }
                            td.source.nowrap { (e.origin) }
                            td.nowrap { (integrity_badge(listed.integrity)) }
                        }
                    }
                }
            }
        }
    }
}

/// The mark of a row, re-computed from the bytes the row shows.
fn integrity_badge(i: Integrity) -> Markup {
    html! {
        @match i {
            Integrity::Verified => span.badge.ok title="This exact content is in the log the server signed" { "✓ Verified" },
            Integrity::Altered => span.badge.fail.altered title="This content differs from what the server signed: open the entry" { "✗ Altered" },
            Integrity::NotYetSigned => span.badge title="Not yet covered by a signed checkpoint" { "Pending" },
        }
    }
}

pub async fn audit_log(
    State(state): State<AppState>,
    Page(auth): Page<ReadAuditLog>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let view = View::parse(pairs);
    let csrf = state.accounts.csrf_token(&auth);
    let tz = match platform_time_zone(&state).await {
        Ok(tz) => tz,
        Err(e) => return super::layout::api_error_page(e),
    };
    let zone = tz.iana_name().unwrap_or("UTC").to_owned();
    let mut pairs = view.filter_pairs();
    pairs.push(("limit".into(), view.limit.to_string()));
    if let Some(c) = &view.cursor {
        pairs.push(("cursor".into(), c.clone()));
    }
    let listed = match ListQuery::from_pairs(pairs, &tz) {
        Ok(query) => {
            let recorded = query.filters.recorded();
            list_events(&state, &state.default_org, query).await.map(|list| (list, recorded))
        }
        Err(e) => Err(e),
    };
    let (result, status) = match listed {
        Ok((list, recorded)) => {
            // The same rule as the API's list: once per session and filter set, whichever page.
            if let Err(e) = state.accounts.record_view(&auth, LogRead::List(&recorded)).await {
                return super::layout::api_error_page(e.into());
            }
            (Ok(list), StatusCode::OK)
        }
        Err(ApiError::BadRequest { message, .. }) => (Err(message), StatusCode::BAD_REQUEST),
        Err(e) => return super::layout::api_error_page(e),
    };
    let users = state.log.store().users(state.default_org.id, "", 500).await.unwrap_or_default();
    let services = state.log.store().service_actions(state.default_org.id).await.unwrap_or_default();
    let now = state.log.clock().now().to_jiff();
    let body = html! {
        div.titlebar {
            h1 { "Audit Log" }
            div.tools {
                a.button.icon href=(view.url(None, &[])) title="Refresh: newest events first" aria-label="Refresh" { (icon_refresh()) }
                a.button.icon href=(format!("/api/v1/events/export?format=csv{}{}", if view.filters_query().is_empty() { "" } else { "&" }, view.filters_query()))
                    title="Download these results as CSV" aria-label="Download CSV" download { (icon_download()) }
            }
        }
        p.muted.small { "A read-only, tamper-evident record of sign-ins and administrative actions. Times are in " strong { (zone) } "." }
        (filters_form(&view, &users, &services, &zone, now))
        @match &result {
            Err(message) => { (flash(&Some(Flash::Error(message.clone())))) }
            Ok(list) => {
                p #results-summary.small.muted role="status" {
                    @if list.events.is_empty() { "No entries." }
                    @else { "Showing " (list.events.len()) " entr" (if list.events.len() == 1 { "y" } else { "ies" }) ", newest first" (if view.cursor.is_some() { " (earlier page)" } else { "" }) "." }
                }
                @if list.events.is_empty() {
                    div.panel.empty {
                        p { strong { "No entries match these filters." } }
                        p.muted { "Widen the date range, choose other actions, or " a href="/audit-log" { "clear all filters" } "." }
                    }
                } @else {
                    (table(list, &zone))
                }
                @if view.cursor.is_some() || list.next_cursor.is_some() { nav.pager aria-label="Pages" {
                    @if let Some(newer) = view.newer_url() {
                        a.button.secondary href=(newer) rel="prev" { "← Newer" }
                    }
                    @if let Some(next) = &list.next_cursor {
                        a.button.secondary href=(view.older_url(next)) rel="next" { "Older →" }
                    }
                } }
            }
        }
        script src="/assets/console.js" defer {}
    };
    respond(status, page(&state, "Audit Log", &auth, &csrf, "/audit-log", body))
}

/// One entry, every field, and whether its inclusion in the latest signed checkpoint checks out.
pub async fn event_page(
    State(state): State<AppState>,
    Page(auth): Page<ReadAuditLog>,
    Path(seq): Path<String>,
) -> Response {
    let Ok(seq) = seq.parse::<u64>() else {
        return super::layout::error_page(404, "Not found", "There is no such entry.");
    };
    match render_event(&state, &auth, seq).await {
        Ok(r) => r,
        Err(e) => super::layout::api_error_page(e),
    }
}

async fn render_event(state: &AppState, auth: &Authorized<ReadAuditLog>, seq: u64) -> Result<Response, ApiError> {
    let csrf = state.accounts.csrf_token(auth);
    let org = &state.default_org;
    let tz = platform_time_zone(state).await?;
    let rows = state.log.store().events(org.id, seq..seq.saturating_add(1)).await?;
    let Some(row) = rows.first() else {
        return Ok(super::layout::error_page(404, "Not found", "There is no such entry."));
    };
    state.accounts.record_view(auth, LogRead::Entry(seq)).await?;
    let labels = ActionLabels::load(&**state.log.store(), org).await?;
    let mut e = EventView::from_row(row, &tz, &labels).map_err(|e| ApiError::Internal(e.to_string()))?;
    // The mark is computed from the very bytes decoded above.
    let check = state.log.check_entries(org, std::slice::from_ref(row)).await?.into_iter().next();
    let Some(check) = check else {
        return Err(ApiError::Internal("no integrity result for the entry".into()));
    };
    e.leaf_hash = logbook_integrity::to_hex(&check.leaf_hash);
    let stored_hash = hex::encode(row.leaf_hash);
    let body = html! {
        p { a href="/audit-log" { "← Audit Log" } }
        h1 { (e.action_label) " · entry " (e.seq) }
        (proof_panel(seq, &check))
        div.panel {
            table.record {
                tbody {
                    @if tz.iana_name().unwrap_or("UTC") != "UTC" {
                        (field(format!("Timestamp ({})", tz.iana_name().unwrap_or("UTC")), &e.time_local))
                    }
                    (field("Timestamp (UTC)".into(), &e.time))
                    (field("User".into(), &e.user))
                    (field("Action".into(), &format!("{} ({})", e.action_label, e.action)))
                    (field("Details".into(), &e.details))
                    (field("Outcome".into(), match e.outcome { Outcome::Success => "success", Outcome::Failure => "failure" }))
                    (field("Actor".into(), &format!("{} {}{}", e.actor.kind.code(), e.actor.id, e.actor.email.as_ref().map(|m| format!(" <{m}>")).unwrap_or_default())))
                    @if let Some(t) = &e.target {
                        (field("Target".into(), &format!("{} {} {}", t.kind, t.id, t.display)))
                    }
                    (field("Source IP".into(), &e.source.ip.map(|i| i.to_string()).unwrap_or_default()))
                    @if let Some(via) = e.source.via {
                        (field("Via proxy".into(), &via.to_string()))
                    }
                    (field("User agent".into(), e.source.user_agent.as_deref().unwrap_or("")))
                    @for (k, v) in &e.fields { (field(format!("Field: {k}"), v)) }
                    (field("Source".into(), &e.origin))
                    (field("Recorded by".into(), &e.recorded_by))
                    (field("Sequence number".into(), &e.seq.to_string()))
                    (field("Event id".into(), &e.id))
                    tr { th scope="row" { "Leaf hash (of the content shown)" } td { code { (e.leaf_hash) } } }
                    @if stored_hash != e.leaf_hash {
                        tr.altered { th scope="row" { "Leaf hash (stored column)" } td { code { (stored_hash) } } }
                    }
                }
            }
        }
    };
    Ok(respond(StatusCode::OK, page(state, "Audit Log entry", auth, &csrf, "/audit-log", body)))
}

fn field(name: String, value: &str) -> Markup {
    html! { tr { th scope="row" { (name) } td { (value) } } }
}

/// The entry's mark and what it means, in plain words.
fn proof_panel(seq: u64, check: &EntryCheck) -> Markup {
    html! {
        @match (check.integrity, check.checkpoint) {
            (Integrity::Verified, Some((size, signed))) => {
                div.notice.verified role="status" {
                    p { strong { "✓ Verified" } " — this exact content is entry " (seq) " of the log the server signed (checkpoint of " (size) " entries, signed " (signed.to_rfc3339()) ")." }
                    p.small { "What this guarantees: the content shown above hashes to the entry at this position of the signed log (checked here with an inclusion proof and the log's public key), so nobody can change it — in the database or anywhere else — without it showing as altered. Anyone can check the same with " code { "logbook verify" } "." }
                }
            }
            (Integrity::Verified | Integrity::NotYetSigned, _) => {
                p.notice role="status" { "Not yet covered by a signed checkpoint; checkpoints are signed within about a second. Reload to verify." }
            }
            (Integrity::Altered, _) => {
                div.error.altered role="alert" {
                    p { strong { "✗ Altered" } " — " (check.problem.as_deref().unwrap_or("the content shown differs from what the server signed")) "." }
                    p { "The content of this entry differs from what the server signed: do not trust what is shown here. Run " code { "logbook verify" } " on the store, compare this entry with the witness copy of the checkpoints (or a copy of the log kept elsewhere), and contact the operator of this installation." }
                }
            }
        }
    }
}
