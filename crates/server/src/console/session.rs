//! Signing in (password, then TOTP when enrolled) and out.
//!
//! The sign-in forms are accepted from this site only (`SameOrigin`), and a sign-in ends the
//! session the browser still presented (`PresentedSession`) before it sets the new cookie.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Form;
use logbook_accounts::permission::OwnAccount;
use logbook_accounts::Secret;
use logbook_accounts::SignIn;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{flash, public_page, respond, Flash};
use super::{form_error, notice, see_other, Empty, Notice};
use crate::auth::{clear_session_cookie, session_cookie, PageForm, PresentedSession, SameOrigin};
use crate::extract::RequestSource;
use crate::AppState;

/// Only same-site paths are followed after sign-in.
/// Where to go after signing in: a path on this site, or `/`. The value ends up in `Location`,
/// where a browser strips tabs and newlines and reads `\\` as `/`, so `/\t/evil.example` would
/// become `//evil.example`, another site. Accepted is only a path that parses as one (no scheme,
/// no authority) and that has no control or whitespace character, no `//` and no backslash,
/// neither as sent nor once percent-decoded.
fn safe_next(next: Option<&str>) -> String {
    fn plain_path(p: &str) -> bool {
        p.starts_with('/') && !p.contains("//") && !p.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    }
    let accepted = next.filter(|n| {
        let decoded = percent_encoding::percent_decode_str(n).decode_utf8();
        plain_path(n)
            && decoded.is_ok_and(|d| plain_path(&d))
            && n.parse::<axum::http::Uri>().is_ok_and(|u| u.scheme().is_none() && u.authority().is_none())
    });
    accepted.map_or_else(|| "/".into(), str::to_owned)
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
    password: Secret,
    next: Option<String>,
}

/// The answer to a sign-in: the session the browser had ends, then the new cookie is set.
async fn signed_in(
    state: &AppState,
    replaced: &PresentedSession,
    source: &logbook_core::Source,
    token: &Secret,
    next: &str,
) -> Response {
    if let PresentedSession(Some(old)) = replaced {
        if let Err(e) = state.accounts.end_replaced_session(old.expose(), source).await {
            return super::layout::api_error_page(e.into());
        }
    }
    let mut resp = see_other(next);
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(state, token));
    resp
}

pub async fn login(
    State(state): State<AppState>,
    _: SameOrigin,
    replaced: PresentedSession,
    RequestSource(source): RequestSource,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    match state.accounts.sign_in(&f.email, f.password.expose(), None, &source).await {
        Ok(SignIn::Done(s)) => signed_in(&state, &replaced, &source, &s.token, &next).await,
        Ok(SignIn::NeedsTotp { pending }) => respond(StatusCode::OK, totp_form(&next, &pending, None)),
        Err(e) => match form_error(e) {
            Ok((status, m)) => respond(status, login_form(&next, &f.email, Some(Flash::Error(m)))),
            Err(page) => page,
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct TotpForm {
    pending: Secret,
    code: Secret,
    next: Option<String>,
}

pub async fn login_totp(
    State(state): State<AppState>,
    _: SameOrigin,
    replaced: PresentedSession,
    RequestSource(source): RequestSource,
    Form(f): Form<TotpForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    match state.accounts.sign_in_totp(f.pending.expose(), f.code.expose(), &source).await {
        Ok(s) => signed_in(&state, &replaced, &source, &s.token, &next).await,
        Err(e) => match form_error(e) {
            Ok((status, m)) => respond(status, totp_form(&next, f.pending.expose(), Some(Flash::Error(m)))),
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

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_a_path_on_this_site_or_the_start_page() {
        for good in ["/audit-log", "/audit-log?user=bob%40example.com&action=login.failed", "/users/3", "/"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "/\t/evil.example",
            "/%09/evil.example",
            "/%0d/evil.example",
            "/%0a/evil.example",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "//evil.example",
            "/\\evil.example",
            "/%5Cevil.example",
            "https://evil.example",
            "evil.example",
            "/ /evil.example",
            "/%20/evil.example",
            "/%ff",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
