//! Signing in (password, then TOTP when enrolled) and out.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Form;
use logbook_accounts::permission::OwnAccount;
use logbook_accounts::SignIn;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{flash, public_page, respond, Flash};
use super::{form_error, notice, see_other, Empty, Notice};
use crate::auth::{clear_session_cookie, session_cookie, PageForm};
use crate::extract::RequestSource;
use crate::AppState;

/// Only same-site paths are followed after sign-in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".into(),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    #[serde(flatten)]
    notice: Notice,
}

fn login_form(next: &str, email: &str, message: Option<Flash>) -> Markup {
    public_page(
        "Sign in",
        html! {
            h1 { "Sign in" }
            (flash(&message))
            form.panel method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="email" { "Email" }
                input id="email" type="email" name="email" value=(email) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input id="password" type="password" name="password" autocomplete="current-password" required;
                div.actions { button type="submit" { "Sign in" } }
            }
        },
    )
}

fn totp_form(next: &str, pending: &str, message: Option<Flash>) -> Markup {
    public_page(
        "Verification code",
        html! {
            h1 { "Verification code" }
            (flash(&message))
            form.panel method="post" action="/login/totp" {
                input type="hidden" name="next" value=(next);
                input type="hidden" name="pending" value=(pending);
                label for="code" { "Code from your authenticator app" }
                input id="code" type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required autofocus;
                div.actions { button type="submit" { "Verify" } a href="/login" { "Start over" } }
            }
        },
    )
}

pub async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    respond(StatusCode::OK, login_form(&safe_next(q.next.as_deref()), "", notice(&q.notice)))
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

fn signed_in(state: &AppState, token: &logbook_accounts::Secret, next: &str) -> Response {
    let mut resp = see_other(next);
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(state, token));
    resp
}

pub async fn login(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    match state.accounts.sign_in(&f.email, &f.password, None, &source).await {
        Ok(SignIn::Done(s)) => signed_in(&state, &s.token, &next),
        Ok(SignIn::NeedsTotp { pending }) => respond(StatusCode::OK, totp_form(&next, &pending, None)),
        Err(e) => match form_error(e) {
            Ok((status, m)) => respond(status, login_form(&next, &f.email, Some(Flash::Error(m)))),
            Err(page) => page,
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct TotpForm {
    pending: String,
    code: String,
    next: Option<String>,
}

pub async fn login_totp(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    Form(f): Form<TotpForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    match state.accounts.sign_in_totp(&f.pending, &f.code, &source).await {
        Ok(s) => signed_in(&state, &s.token, &next),
        Err(e) => match form_error(e) {
            Ok((status, m)) => respond(status, totp_form(&next, &f.pending, Some(Flash::Error(m)))),
            Err(page) => page,
        },
    }
}

pub async fn logout(State(state): State<AppState>, f: PageForm<OwnAccount, Empty>) -> Response {
    if let Err(e) = state.accounts.sign_out(&f.auth).await {
        if let Err(page) = form_error(e) {
            return page;
        }
    }
    let mut resp = see_other("/login");
    resp.headers_mut().insert(header::SET_COOKIE, clear_session_cookie(&state));
    resp
}
