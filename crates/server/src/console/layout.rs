//! The console's page shell, shared pieces and error pages. Markup is built with `maud`, which
//! escapes every interpolated value.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use logbook_accounts::permission::{ManageApiTokens, ManageSettings, ReadAuditLog, ReadProtectedUsers, ReadUsers};
use logbook_accounts::Caller;
use maud::{html, Markup, DOCTYPE};

use crate::{ApiError, AppState};

pub const STYLE: &str = include_str!("style.css");
pub const SCRIPT: &str = include_str!("console.js");

/// The navigation entries, each shown only to roles that may open it.
fn nav(caller: &Caller, current: &str) -> Markup {
    let items: [(&str, &str, bool); 6] = [
        ("/audit-log", "Audit Log", caller.may::<ReadAuditLog>()),
        ("/users", "Management users", caller.may::<ReadUsers>()),
        ("/protected-users", "Protected users", caller.may::<ReadProtectedUsers>()),
        ("/api-tokens", "API tokens", caller.may::<ManageApiTokens>()),
        ("/settings", "Settings", caller.may::<ManageSettings>()),
        ("/account", "My account", true),
    ];
    html! {
        nav aria-label="Main" {
            @for (href, label, shown) in items {
                @if shown {
                    a href=(href) aria-current=[(href == current).then_some("page")] { (label) }
                }
            }
        }
    }
}

pub fn logo() -> Markup {
    html! {
        svg width="20" height="20" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true" {
            path d="M4 4h12l4 4v12H4z" {}
            path d="M8 10h8M8 14h8M8 18h5" {}
        }
    }
}

/// For those who may manage settings (admins): an alert above every page while the last
/// integrity self-check failed, or once an integrity alarm was raised (a witness refused a
/// checkpoint as inconsistent with what it cosigned).
fn integrity_banner(state: &AppState, caller: &Caller, current: &str) -> Markup {
    // The settings page shows the details itself.
    if !caller.may::<ManageSettings>() || current == "/settings" {
        return html! {};
    }
    let alarms = state.log.integrity_alarms();
    let status = state.log.self_check_status();
    let failed_full = status.full.orgs.iter().filter_map(|o| o.last.as_ref()).find(|r| !r.is_ok());
    let self_check_failed_at = match (&status.last, failed_full) {
        (Some(run), _) if !run.is_ok() => Some(run.at),
        (_, Some(full)) => Some(full.finished),
        _ => None,
    };
    html! {
        @if !state.log.damaged_logs().is_empty() {
            p.error.banner role="alert" {
                strong { "The audit log does not match its signed checkpoints. " }
                "Entries were removed or changed outside Logbook; new events are refused until it is dealt with. "
                a href="/settings#integrity" { "See Settings" } "."
            }
        }
        @if let Some(at) = self_check_failed_at {
            p.error.banner role="alert" {
                strong { "Integrity self-check failed. " }
                "At " (at.to_rfc3339()) " the audit log did not match its newest signed checkpoint. "
                a href="/settings#integrity" { "See Settings" } "."
            }
        }
        @if let Some(a) = alarms.first() {
            p.error.banner role="alert" {
                strong { "Integrity alarm. " }
                "At " (a.at) ", " (a.source) " reported for " (a.org) ": " (a.message) ". "
                @if alarms.len() > 1 { (alarms.len() - 1) " more. " }
                a href="/settings#integrity" { "See Settings" } "."
            }
        }
    }
}

/// A page of the signed-in console.
pub fn page(state: &AppState, title: &str, caller: &Caller, csrf: &str, current: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(csrf);
                title { (title) " · Logbook" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                a.skip href="#content" { "Skip to content" }
                header.top {
                    a.brand href="/" { (logo()) "Logbook" }
                    (nav(caller, current))
                    div.who {
                        span { (caller.email()) " · " (caller.role().label()) }
                        form.inline method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main id="content" { (integrity_banner(state, caller, current)) (body) }
            }
        }
    }
}

/// A page for people who are not signed in (sign-in, setup, invitation).
pub fn public_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Logbook" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                main.narrow id="content" {
                    p.brand { (logo()) " " strong { "Logbook" } }
                    (body)
                }
            }
        }
    }
}

/// A message above a page's content.
#[derive(Debug, Clone)]
pub enum Flash {
    Notice(String),
    Error(String),
}

pub fn flash(f: &Option<Flash>) -> Markup {
    html! {
        @match f {
            Some(Flash::Notice(m)) => { p.notice role="status" { (m) } }
            Some(Flash::Error(m)) => { p.error role="alert" { (m) } }
            None => {}
        }
    }
}

pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// An HTML response; every console page is `no-store` (set by the common headers).
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut resp = (status, Html(markup.into_string())).into_response();
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    resp.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

pub fn error_page(status: u16, title: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(
        status,
        public_page(
            title,
            html! {
                h1 { (title) }
                p { (message) }
                p { a href="/" { "Back to the console" } }
            },
        ),
    )
}

/// An [`ApiError`] as a page: the same status and the same client-safe message.
pub fn api_error_page(e: ApiError) -> Response {
    let resp = e.into_response();
    let status = resp.status();
    let message = match status {
        StatusCode::INTERNAL_SERVER_ERROR => "Something went wrong on our side. It has been logged; please try again.",
        StatusCode::SERVICE_UNAVAILABLE => {
            "The log cannot take changes right now. Nothing was changed; please try again."
        }
        StatusCode::TOO_MANY_REQUESTS => "Too many requests at once. Please wait a moment and try again.",
        _ => "The request could not be completed.",
    };
    error_page(status.as_u16(), status.canonical_reason().unwrap_or("Error"), message)
}
