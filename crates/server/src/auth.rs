//! Who is calling: the session cookie, the CSRF check, and the permission extractors.
//!
//! A handler that takes [`Auth<P>`] (JSON API) or [`Page<P>`] / [`PageForm<P, T>`] (console)
//! cannot run unless the caller's session is alive and their current role holds `P`; state-
//! changing requests must also carry the session's CSRF token (`X-CSRF-Token` for the API, a
//! `csrf` form field for the console). The accounts service takes the resulting
//! [`Authorized<P>`], so the check cannot be skipped.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use cookie::{Cookie, SameSite};
use logbook_accounts::{Authorized, Caller, Permission, Secret};
use logbook_core::{Source, LIMITS};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::client_addr::ClientAddr;
use crate::{ApiError, AppState};

/// The session cookie's name over plain HTTP.
pub const SESSION_COOKIE: &str = "logbook_session";
/// Its name when the public URL is https: a browser accepts a `__Host-` cookie only from the
/// host itself, `Secure`, with `Path=/` and no `Domain`, so a neighbouring subdomain (or a
/// plain-HTTP answer) cannot plant one (cookie tossing).
pub const SECURE_SESSION_COOKIE: &str = "__Host-logbook_session";

/// The session cookie's name for this server.
pub(crate) fn session_cookie_name(state: &AppState) -> &'static str {
    if state.secure_cookies {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// Where a request came from, for the events it causes.
pub fn request_source(parts: &Parts) -> Source {
    let (ip, via) = match parts.extensions.get::<ClientAddr>() {
        Some(c) => (Some(c.ip), c.via),
        None => (parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip()), None),
    };
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().filter(|c| !c.is_control()).take(LIMITS.user_agent).collect::<String>())
        .filter(|ua| !ua.is_empty());
    Source { ip, user_agent, via }
}

fn session_token(parts: &Parts, state: &AppState) -> Option<String> {
    session_token_in(&parts.headers, session_cookie_name(state))
}

/// The session token in the request's `Cookie` headers (the cookie called `name`), if any.
pub(crate) fn session_token_in(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The session token a request presents, valid or not: a sign-in ends the session it replaces
/// (`Accounts::end_replaced_session`).
#[derive(Debug)]
pub struct PresentedSession(pub Option<Secret>);

impl FromRequestParts<AppState> for PresentedSession {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(PresentedSession(session_token(parts, state).map(|t| Secret::from_presented(&t))))
    }
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(state: &AppState, token: &Secret) -> HeaderValue {
    let c = Cookie::build((session_cookie_name(state), token.expose().to_owned()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.secure_cookies)
        .build();
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that clears it.
pub fn clear_session_cookie(state: &AppState) -> HeaderValue {
    let c = Cookie::build((session_cookie_name(state), ""))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.secure_cookies)
        .max_age(cookie::time::Duration::ZERO)
        .build();
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn caller(parts: &Parts, state: &AppState) -> Result<Option<Caller>, ApiError> {
    let Some(token) = session_token(parts, state) else { return Ok(None) };
    Ok(state.accounts.authenticate(&token, &request_source(parts)).await?)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A signed-in caller of the JSON API. State-changing methods need `X-CSRF-Token`.
#[derive(Debug)]
pub struct SessionCaller(pub Caller);

impl FromRequestParts<AppState> for SessionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = caller(parts, state).await?.ok_or(ApiError::SignInRequired)?;
        if !is_safe(&parts.method) {
            let presented = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !state.accounts.check_csrf(&caller, presented) {
                return Err(ApiError::CsrfFailed);
            }
        }
        Ok(SessionCaller(caller))
    }
}

/// A JSON API caller whose current role holds `P`.
#[derive(Debug)]
pub struct Auth<P>(pub Authorized<P>);

impl<P: Permission> FromRequestParts<AppState> for Auth<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let SessionCaller(caller) = SessionCaller::from_request_parts(parts, state).await?;
        Ok(Auth(caller.authorize::<P>()?))
    }
}

/// Why a console page cannot be shown.
#[derive(Debug)]
pub enum PageRejection {
    /// Not signed in: go to the sign-in page, then come back.
    SignIn {
        next: String,
    },
    Forbidden(String),
    CsrfFailed,
    /// A sign-in, set-up or invitation form posted from another site.
    CrossSite,
    BadForm(String),
    Error(ApiError),
}

impl IntoResponse for PageRejection {
    fn into_response(self) -> Response {
        match self {
            PageRejection::SignIn { next } => {
                let next = crate::console::urlencode(&next);
                Redirect::to(&format!("/login?next={next}")).into_response()
            }
            PageRejection::Forbidden(why) => crate::console::layout::error_page(403, "Not allowed", &why),
            PageRejection::CsrfFailed => crate::console::layout::error_page(
                403,
                "Form expired",
                "The form was not accepted (its security token is missing or out of date). Go back, reload the page and try again.",
            ),
            PageRejection::CrossSite => crate::console::layout::error_page(
                403,
                "Cross-site request refused",
                "This form was sent from another site, so it was not accepted. Open this site's own page and submit the form there.",
            ),
            PageRejection::BadForm(why) => crate::console::layout::error_page(400, "Bad request", &why),
            PageRejection::Error(e) => crate::console::layout::api_error_page(e),
        }
    }
}

async fn page_caller(parts: &Parts, state: &AppState) -> Result<Caller, PageRejection> {
    match caller(parts, state).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => {
            let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            Err(PageRejection::SignIn { next: if is_safe(&parts.method) { next.to_owned() } else { "/".into() } })
        }
        Err(e) => Err(PageRejection::Error(e)),
    }
}

/// A signed-in caller of a console page (any role).
#[derive(Debug)]
pub struct PageCaller(pub Caller);

impl FromRequestParts<AppState> for PageCaller {
    type Rejection = PageRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(PageCaller(page_caller(parts, state).await?))
    }
}

/// A console page for callers whose role holds `P`.
#[derive(Debug)]
pub struct Page<P>(pub Authorized<P>);

impl<P: Permission> FromRequestParts<AppState> for Page<P> {
    type Rejection = PageRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = page_caller(parts, state).await?;
        caller.authorize::<P>().map(Page).map_err(|f| PageRejection::Forbidden(f.to_string()))
    }
}

/// A console form that needs no session (sign-in, its TOTP step, the first admin, accepting an
/// invitation) sent from this site, so that another site cannot sign a browser in to an account
/// of its choosing (login CSRF). A browser says where a form comes from: `Sec-Fetch-Site` must
/// be `same-origin` (or `none`: typed or bookmarked), and `Origin` must be the public URL's
/// origin or the request's own (`Host`). A client that sends neither (not a browser) passes;
/// there is no browser to attack.
#[derive(Debug)]
pub struct SameOrigin;

impl FromRequestParts<AppState> for SameOrigin {
    type Rejection = PageRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let single = |name: &str| {
            let mut values = parts.headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (None, _) => Ok(None),
                (Some(v), None) => v.to_str().map(|v| Some(v.trim())).map_err(|_| PageRejection::CrossSite),
                // Sent twice: not what a browser does.
                (Some(_), Some(_)) => Err(PageRejection::CrossSite),
            }
        };
        let fetch_site = single("sec-fetch-site")?;
        if let Some(site) = fetch_site {
            if !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none") {
                return Err(PageRejection::CrossSite);
            }
        }
        let origin = single("origin")?;
        // A browser that says `Sec-Fetch-Site: same-origin` may still send `Origin: null`: the
        // Fetch standard serializes the origin of a POST as `null` under some referrer policies
        // (`no-referrer`, which the console's pages set). The page cannot forge the former, so
        // it decides; a `null` origin from a browser that does not send it is refused below.
        let origin = origin.filter(|o| !(fetch_site.is_some() && *o == "null"));
        if let Some(origin) = origin {
            // The public URL's origin; or, where no public URL is configured (it then names the
            // listening address) or a proxy keeps the `Host` the browser used, the origin of
            // this very request: a page of another site cannot send our `Host`.
            let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).or(parts.uri.host());
            let same_host = host.is_some_and(|h| {
                origin.split_once("://").is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(h))
            });
            if !origin.eq_ignore_ascii_case(&state.public_origin) && !same_host {
                return Err(PageRejection::CrossSite);
            }
        }
        Ok(SameOrigin)
    }
}

/// The origin (`scheme://host[:port]`, the port only if not the scheme's default) of a URL, as
/// a browser sends it in `Origin`; `None` if the URL has no scheme or host.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let host = authority.host().to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    Some(match authority.port_u16() {
        Some(p) if Some(p) != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: T,
}

/// A console form post: the caller, their permission `P`, and the form, whose `csrf` field
/// has been checked against the session.
#[derive(Debug)]
pub struct PageForm<P, T> {
    pub auth: Authorized<P>,
    pub form: T,
}

impl<P: Permission, T: DeserializeOwned + Send> FromRequest<AppState> for PageForm<P, T> {
    type Rejection = PageRejection;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Page(auth) = Page::<P>::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        // Small forms were read by `routes::read_body`; the import form is read here, after the
        // permission check, under the same time limit.
        let read = tokio::time::timeout(state.body_read_timeout, Form::<WithCsrf<T>>::from_request(req, state));
        let Form(WithCsrf { csrf, form }) = match read.await {
            Err(_) => return Err(PageRejection::Error(ApiError::RequestTimeout)),
            Ok(Err(e)) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(PageRejection::Error(ApiError::PayloadTooLarge))
            }
            Ok(Err(e)) => return Err(PageRejection::BadForm(e.body_text())),
            Ok(Ok(f)) => f,
        };
        if !state.accounts.check_csrf(&auth, &csrf) {
            return Err(PageRejection::CsrfFailed);
        }
        Ok(PageForm { auth, form })
    }
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn the_origin_of_the_public_url_is_what_a_browser_sends() {
        assert_eq!(origin_of("https://Logbook.example.com/").as_deref(), Some("https://logbook.example.com"));
        assert_eq!(origin_of("https://logbook.example.com:443/x").as_deref(), Some("https://logbook.example.com"));
        assert_eq!(origin_of("http://127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(origin_of("http://[::1]:80").as_deref(), Some("http://[::1]"));
        assert_eq!(origin_of("logbook.example.com"), None);
    }
}
