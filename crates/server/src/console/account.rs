//! The signed-in user's own account: password, TOTP and sessions.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use logbook_accounts::permission::OwnAccount;
use logbook_accounts::Secret;
use logbook_accounts::{AccountError, Caller};
use maud::html;
use serde::Deserialize;

use super::layout::{csrf_field, flash, page, respond, Flash};
use super::{form_error, notice, see_other, Empty, Notice};
use crate::auth::{clear_session_cookie, PageCaller, PageForm};
use crate::AppState;

async fn render_account(state: &AppState, caller: &Caller, message: Option<Flash>, status: StatusCode) -> Response {
    let csrf = state.accounts.csrf_token(caller);
    let enrolment = if caller.totp_enrolled() { None } else { state.accounts.begin_totp(caller).ok() };
    let sessions = match state.accounts.my_sessions(caller).await {
        Ok(s) => s,
        Err(e) => return super::layout::api_error_page(e.into()),
    };
    let time = |t: &str| t.get(..19).unwrap_or(t).replace('T', " ");
    let body = html! {
        h1 { "My account" }
        (flash(&message))
        div.grid2 {
            form.panel method="post" action="/account/password" {
                h2 { "Change password" }
                (csrf_field(&csrf))
                label for="cur" { "Current password" }
                input id="cur" type="password" name="current_password" autocomplete="current-password" required;
                label for="new" { "New password" }
                input id="new" type="password" name="new_password" autocomplete="new-password" minlength="8" maxlength="128" required;
                div.actions { button type="submit" { "Change password" } }
            }
            div.panel {
                h2 { "Two-step verification (TOTP)" }
                @match &enrolment {
                    None => {
                        p { span.badge.ok { "on" } " A code from your authenticator app is asked at sign-in." }
                        form method="post" action="/account/totp/remove" {
                            (csrf_field(&csrf))
                            label for="rm-pw" { "Password, to remove TOTP" }
                            input id="rm-pw" type="password" name="password" autocomplete="current-password" required;
                            div.actions { button.danger type="submit" { "Remove TOTP" } }
                        }
                    }
                    Some(e) => {
                        p { "Scan this code with an authenticator app, or enter the secret by hand, then type the code it shows." }
                        div.qr { (maud::PreEscaped(&e.qr_svg)) }
                        p.small { "Secret: " code { (e.secret) } }
                        form method="post" action="/account/totp" {
                            (csrf_field(&csrf))
                            input type="hidden" name="token" value=(e.token);
                            label for="totp-code" { "Code" }
                            input id="totp-code" type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
                            label for="totp-pw" { "Current password" }
                            input id="totp-pw" type="password" name="current_password" autocomplete="current-password" required;
                            div.actions { button type="submit" { "Turn on TOTP" } }
                        }
                    }
                }
            }
        }
        h2 { "Your sessions" }
        p.muted { "Every browser or client signed in to your account. End any you do not recognise, and change your password." }
        div.table-wrap {
            table {
                thead { tr { th { "Signed in (UTC)" } th { "Last seen (UTC)" } th { "Address" } th { "User agent" } th { span.skip { "Actions" } } } }
                tbody {
                    @for s in &sessions {
                        tr {
                            td.small { (time(&s.created)) @if s.current { " " span.badge.ok { "this session" } } }
                            td.small { (time(&s.last_seen)) }
                            td { (s.address.as_deref().unwrap_or("unknown")) }
                            td.small { (s.user_agent.as_deref().unwrap_or("unknown")) }
                            td {
                                form.inline method="post" action=(format!("/account/sessions/{}/end", s.id)) {
                                    (csrf_field(&csrf))
                                    button.danger type="submit" { @if s.current { "Sign out" } @else { "End" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if sessions.iter().any(|s| !s.current) {
            form method="post" action="/account/sessions/end-others" {
                (csrf_field(&csrf))
                div.actions { button.danger type="submit" { "End all other sessions" } }
            }
        }
    };
    respond(status, page(state, "My account", caller, &csrf, "/account", body))
}

pub async fn account(
    State(state): State<AppState>,
    PageCaller(caller): PageCaller,
    Query(n): Query<Notice>,
) -> Response {
    render_account(&state, &caller, notice(&n), StatusCode::OK).await
}

async fn account_result(state: &AppState, caller: &Caller, result: Result<(), AccountError>, key: &str) -> Response {
    match result {
        Ok(()) => see_other(&format!("/account?notice={key}")),
        Err(e) => match form_error(e) {
            Ok((status, m)) => render_account(state, caller, Some(Flash::Error(m)), status).await,
            Err(page) => page,
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    current_password: Secret,
    new_password: Secret,
}

pub async fn account_password(State(state): State<AppState>, f: PageForm<OwnAccount, PasswordForm>) -> Response {
    let r =
        state.accounts.change_password(&f.auth, f.form.current_password.expose(), f.form.new_password.expose()).await;
    account_result(&state, &f.auth, r, "password").await
}

#[derive(Debug, Deserialize)]
pub struct TotpConfirmForm {
    token: Secret,
    code: Secret,
    current_password: Secret,
}

pub async fn account_totp_confirm(State(state): State<AppState>, f: PageForm<OwnAccount, TotpConfirmForm>) -> Response {
    let r = state
        .accounts
        .enrol_totp(&f.auth, f.form.token.expose(), f.form.code.expose(), f.form.current_password.expose())
        .await;
    account_result(&state, &f.auth, r, "totp_on").await
}

#[derive(Debug, Deserialize)]
pub struct TotpRemoveForm {
    password: Secret,
}

pub async fn account_totp_remove(State(state): State<AppState>, f: PageForm<OwnAccount, TotpRemoveForm>) -> Response {
    let r = state.accounts.remove_totp(&f.auth, f.form.password.expose()).await;
    account_result(&state, &f.auth, r, "totp_off").await
}

/// Ends one of the caller's sessions; ending their own signs them out.
pub async fn account_session_end(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: PageForm<OwnAccount, Empty>,
) -> Response {
    match state.accounts.end_my_session(&f.auth, &id).await {
        Ok(true) => {
            let mut resp = see_other("/login");
            resp.headers_mut().insert(header::SET_COOKIE, clear_session_cookie(&state));
            resp
        }
        Ok(false) => see_other("/account?notice=session_ended"),
        Err(e) => account_result(&state, &f.auth, Err(e), "").await,
    }
}

pub async fn account_sessions_end_others(State(state): State<AppState>, f: PageForm<OwnAccount, Empty>) -> Response {
    let r = state.accounts.end_my_other_sessions(&f.auth).await.map(drop);
    account_result(&state, &f.auth, r, "sessions_ended").await
}
