//! The signed-in user's own account: password and TOTP.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use logbook_accounts::permission::OwnAccount;
use logbook_accounts::Secret;
use logbook_accounts::{AccountError, Caller};
use maud::html;
use serde::Deserialize;

use super::layout::{csrf_field, flash, page, respond, Flash};
use super::{form_error, notice, see_other, Notice};
use crate::auth::{PageCaller, PageForm};
use crate::AppState;

async fn render_account(state: &AppState, caller: &Caller, message: Option<Flash>, status: StatusCode) -> Response {
    let csrf = state.accounts.csrf_token(caller);
    let enrolment = if caller.totp_enrolled() { None } else { state.accounts.begin_totp(caller).ok() };
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
