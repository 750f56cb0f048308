//! The Settings page: time zone, session and lockout policy, and the integrity self-check.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use logbook_accounts::permission::ManageSettings;
use logbook_accounts::{AccountError, Authorized, SettingsPatch};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{csrf_field, flash, page, respond, Flash};
use super::{form_error, notice, see_other, Notice};
use crate::auth::{Page, PageForm};
use crate::AppState;
use logbook_log::fullcheck::FullCheckStatus;

async fn render_settings(
    state: &AppState,
    auth: &Authorized<ManageSettings>,
    message: Option<Flash>,
    status: StatusCode,
) -> Response {
    let csrf = state.accounts.csrf_token(auth);
    let s = match state.accounts.get_settings(auth).await {
        Ok(s) => s,
        Err(e) => return super::layout::api_error_page(e.into()),
    };
    let checkpoint = state.log.latest_checkpoint(&state.default_org).await.ok().flatten();
    let zones: Vec<String> = jiff::tz::db().available().map(|z| z.to_string()).collect();
    let body = html! {
        h1 { "Settings" }
        (flash(&message))
        form.panel method="post" action="/settings" {
            (csrf_field(&csrf))
            h2 { "Time zone" }
            label for="tz" { "Platform time zone (the audit log shows times in it)" }
            select id="tz" name="time_zone" {
                @for z in &zones { option value=(z) selected[*z == s.time_zone] { (z) } }
            }
            h2 { "Sessions" }
            div.row {
                div { label for="idle" { "Idle timeout (minutes)" } input id="idle" type="number" name="session_idle_minutes" min="1" max="1440" value=(s.session_idle_minutes) required; }
                div { label for="abs" { "Absolute limit (hours)" } input id="abs" type="number" name="session_absolute_hours" min="1" max="720" value=(s.session_absolute_hours) required; }
            }
            h2 { "Lockout" }
            div.row {
                div { label for="thr" { "Failed sign-ins before lockout" } input id="thr" type="number" name="lockout_threshold" min="1" max="1000" value=(s.lockout_threshold) required; }
                div { label for="lock" { "Lockout (minutes)" } input id="lock" type="number" name="lockout_minutes" min="1" max="1440" value=(s.lockout_minutes) required; }
            }
            div.actions { button type="submit" { "Save settings" } }
        }
        h2 id="integrity" { "Integrity" }
        (damaged_panel(&state.log.damaged_logs()))
        (self_check_panel(&state.log.self_check_status()))
        (full_check_panel(&state.log.self_check_status().full, state.full_self_check_interval))
        (witnesses_panel(state))
        div.panel {
            p { "Every entry of the audit log is part of a signed Merkle log. Anyone with the public key can verify it with " code { "logbook verify" } "." }
            p { strong { "Public key: " } code { (state.log.signer().verifier_key()) } }
            @match &checkpoint {
                Some(c) => {
                    p { strong { "Latest signed checkpoint: " } (c.size) " entries, signed " (c.signed_at.to_rfc3339()) }
                    pre.mono { (c.note) }
                }
                None => { p.muted { "No checkpoint signed yet." } }
            }
        }
    };
    respond(status, page(state, "Settings", auth, &csrf, "/settings", body))
}

/// The logs that do not extend their trusted checkpoints, if any (see `logbook_log::trust`).
fn damaged_panel(damaged: &[(logbook_core::OrgId, String)]) -> Markup {
    html! {
        @if !damaged.is_empty() {
            div.panel {
                p.error role="alert" {
                    strong { "The audit log does not extend its signed checkpoints. " }
                    "The stored log is smaller than, or differs from, a checkpoint Logbook signed before (kept in the store or in the witness directory): "
                    "entries were removed or changed outside Logbook. New events are refused and nothing is signed, so that the change cannot be covered up. "
                    "Reading and exporting still work. Run " code { "logbook verify" } " and restore the store from a backup that matches the witness copies."
                }
                ul { @for (_, why) in damaged { li.mono { (why) } } }
            }
        }
    }
}

/// The integrity alarms and where each witness stands, as the settings page shows them.
fn witnesses_panel(state: &AppState) -> Markup {
    let alarms = state.log.integrity_alarms();
    let witnesses = state.log.witness_status();
    let configured = state.log.witnesses();
    html! {
        div.panel id="witnesses" {
            h3 { "Witnesses" }
            @for a in &alarms {
                p.error role="alert" {
                    strong { "Integrity alarm. " }
                    (a.source) " reported at " (a.at) " for " (a.org) ": " (a.message)
                    ". Keep the witness's cosigned checkpoint, run " code { "logbook verify" }
                    " with it, and find out who changed the store."
                }
            }
            @if configured.is_empty() {
                p.muted {
                    "No witness is configured. A witness on another host cosigns each checkpoint only if it extends the one it cosigned before, so a rolled-back or rewritten log is caught even by someone who holds the database and the signing key. Configure one with "
                    code { "--witness URL=KEY" } "."
                }
            } @else {
                p.muted {
                    "Each new checkpoint is sent to " (configured.len()) " witness(es); a checkpoint counts as witnessed with "
                    (state.log.witness_quorum()) " cosignature(s)."
                }
                table {
                    thead { tr {
                        th { "Witness" } th { "URL" } th { "Organization" } th { "Last cosigned size" }
                        th { "Lag (entries)" } th { "Lag (seconds)" } th { "Last error" } th { "Alarm" }
                    } }
                    tbody {
                        @for w in &witnesses {
                            tr {
                                td { code { (w.name) } }
                                td { (w.url) }
                                td { (w.org) }
                                td { @match w.cosigned_size { Some(s) => { (s) } None => { "none yet" } } }
                                td { (w.lag_events) }
                                td { (format!("{:.0}", w.lag_seconds)) }
                                td { @match (&w.last_error, &w.last_error_at) {
                                    (Some(e), Some(at)) => { (at) ": " (e) }
                                    _ => { "—" }
                                } }
                                td { @match &w.alarm { Some(a) => { strong { "ALARM" } ": " (a) } None => { "none" } } }
                            }
                        }
                    }
                }
                @if witnesses.is_empty() { p.muted { "No checkpoint has been sent yet." } }
            }
        }
    }
}

/// The last integrity self-check, as the settings page shows it.
fn self_check_panel(status: &logbook_log::selfcheck::SelfCheckStatus) -> Markup {
    html! {
        div.panel {
            h3 { "Self-check" }
            p.muted {
                "In the background, the newest part of each organization's log (everything since the previous check, and at least the last "
                (logbook_log::selfcheck::RECENT_EVENTS) " entries) is recomputed and compared with its newest signed checkpoint."
            }
            @match &status.last {
                None => { p.muted { "No self-check has run yet." } }
                Some(run) => {
                    @if run.is_ok() {
                        p.notice role="status" {
                            "Passed: the log matches its newest signed checkpoint ("
                            (run.verified_size()) " entries)."
                        }
                    } @else {
                        p.error role="alert" {
                            strong { "Self-check FAILED. " }
                            "The stored audit log does not match its newest signed checkpoint: entries, tree tiles or checkpoints were changed or removed outside Logbook. Run "
                            code { "logbook verify" } " on the store and keep the witness copies of the checkpoints."
                        }
                        @if let Some(e) = &run.error { p.error { (e) } }
                    }
                    p { strong { "Last run: " } (run.at.to_rfc3339()) }
                    p {
                        strong { "Last passed: " }
                        @match status.last_success { Some(t) => { (t.to_rfc3339()) } None => { "never" } }
                    }
                    table {
                        thead { tr { th { "Organization" } th { "Checkpoint size" } th { "Entries re-read" } th { "Result" } } }
                        tbody {
                            @for o in &run.orgs {
                                tr {
                                    td { (o.org) }
                                    td { (o.size) }
                                    td { (o.from) "–" (o.size) }
                                    td {
                                        @if o.is_ok() { "intact" } @else {
                                            strong { "DAMAGED" }
                                            @if let Some(seq) = o.first_bad_seq { " — first bad seq " (seq) }
                                            ul { @for p in &o.problems { li { (p) } } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The scheduled full self-check: each log's last full run, its coverage and a run under way.
fn full_check_panel(status: &FullCheckStatus, interval: std::time::Duration) -> Markup {
    let percent = |checked: u64, size: u64| (checked.min(size) * 100).checked_div(size).unwrap_or(100);
    html! {
        div.panel #full-self-check {
            h3 { "Full self-check" }
            p.muted {
                @if interval.is_zero() { "Turned off (" code { "--full-self-check-interval 0" } "). " }
                @else { "Every " (interval.as_secs()) " seconds, " }
                "each organization's whole log is recomputed from its first entry and compared with its newest signed checkpoint, in the background and page by page; a run stopped by a restart continues where it stopped."
            }
            @if status.orgs.is_empty() { p.muted { "No full self-check has run yet." } }
            @else {
                table {
                    thead { tr { th { "Organization" } th { "Last full run" } th { "Coverage" } th { "Result" } th { "Under way" } } }
                    tbody {
                        @for o in &status.orgs {
                            tr {
                                td { (o.org) }
                                td {
                                    @match &o.last {
                                        Some(r) => {
                                            "started " (r.started.to_rfc3339()) ", finished " (r.finished.to_rfc3339())
                                            @if let Some(from) = r.resumed_from { " (resumed at seq " (from) " after a restart)" }
                                        }
                                        None => { "none yet" }
                                    }
                                }
                                td {
                                    @if let Some(r) = &o.last {
                                        (r.checked) " of " (r.size) " entries checked (" (percent(r.checked, r.size)) "%)"
                                    }
                                }
                                td {
                                    @match &o.last {
                                        Some(r) if r.is_ok() => { "intact" }
                                        Some(r) => {
                                            p.error role="alert" {
                                                strong { "Full self-check FAILED: DAMAGED" }
                                                @if let Some(seq) = r.first_bad_seq { " — first bad seq " (seq) }
                                                ". Run " code { "logbook verify" } " on the store and compare with the witness copies of the checkpoints."
                                            }
                                            ul { @for p in &r.problems { li { (p) } } }
                                        }
                                        None => {}
                                    }
                                }
                                td {
                                    @if let Some((next, size)) = o.progress { (next) " of " (size) " (" (percent(next, size)) "%)" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn settings(
    State(state): State<AppState>,
    Page(auth): Page<ManageSettings>,
    Query(n): Query<Notice>,
) -> Response {
    render_settings(&state, &auth, notice(&n), StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    time_zone: String,
    session_idle_minutes: String,
    session_absolute_hours: String,
    lockout_threshold: String,
    lockout_minutes: String,
}

fn number(field: &str, v: &str) -> Result<u32, AccountError> {
    v.trim().parse().map_err(|_| AccountError::Invalid(format!("{field} must be a whole number")))
}

pub async fn settings_save(State(state): State<AppState>, f: PageForm<ManageSettings, SettingsForm>) -> Response {
    let form = &f.form;
    let patch = (|| {
        Ok::<_, AccountError>(SettingsPatch {
            time_zone: Some(form.time_zone.clone()),
            session_idle_minutes: Some(number("Idle timeout", &form.session_idle_minutes)?),
            session_absolute_hours: Some(number("Absolute limit", &form.session_absolute_hours)?),
            lockout_threshold: Some(number("Failed sign-ins before lockout", &form.lockout_threshold)?),
            lockout_minutes: Some(number("Lockout", &form.lockout_minutes)?),
        })
    })();
    let result = match patch {
        Ok(p) => state.accounts.update_settings(&f.auth, &p).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => see_other("/settings?notice=saved"),
        Err(e) => match form_error(e) {
            Ok((status, m)) => render_settings(&state, &f.auth, Some(Flash::Error(m)), status).await,
            Err(page) => page,
        },
    }
}
