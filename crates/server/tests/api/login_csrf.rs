//! Login CSRF and cookie tossing: the forms that need no session are accepted from this site
//! only, the cookie is `__Host-` over https, and a sign-in ends the session the browser had.

use logbook_test_support::{on_both_stores, Session, TestApp};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN, PASSWORD};

on_both_stores!(
    fixture = crate::helpers::admin;
    cross_site_posts_to_the_sign_in_forms_are_refused,
    the_cookie_has_its_plain_name_over_http,
    a_new_sign_in_ends_the_session_the_browser_had,
);

on_both_stores!(fixture = https_admin; the_cookie_is_host_prefixed_over_https);

const PUBLIC_URL: &str = "https://logbook.example.com";

async fn https_admin(backend: logbook_test_support::Backend) -> Option<TestApp> {
    crate::helpers::admin_with(backend, |s| s.public_url = Some(PUBLIC_URL.into())).await
}

/// The forms that need no session, each with a body its handler reads.
const FORMS: [(&str, &str); 4] = [
    ("/login", "email=admin%40example.com&password=correct+horse+battery+staple&next=%2F"),
    ("/login/totp", "pending=nope&code=123456"),
    ("/setup", "token=nope&email=x%40example.com&password=correct+horse+battery+staple"),
    ("/invite", "token=nope&password=correct+horse+battery+staple"),
];

async fn post_form(app: &TestApp, path: &str, body: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req =
        app.http.post(app.url(path)).header("content-type", "application/x-www-form-urlencoded").body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn cross_site_posts_to_the_sign_in_forms_are_refused(app: TestApp) {
    let own = app.base.clone();
    for (path, body) in FORMS {
        let start = app.count().await;
        for headers in [
            vec![("sec-fetch-site", "cross-site")],
            vec![("sec-fetch-site", "same-site")],
            vec![("origin", "https://evil.example")],
            vec![("origin", "null")],
            vec![("sec-fetch-site", "same-origin"), ("origin", "https://evil.example")],
            vec![("sec-fetch-site", "cross-site"), ("origin", own.as_str())],
        ] {
            let resp = post_form(&app, path, body, &headers).await;
            assert_eq!(resp.status(), 403, "{path} {headers:?}");
            assert!(resp.headers().get("set-cookie").is_none());
            assert!(resp.text().await.unwrap().contains("Cross-site request refused"), "{path}: a clear page");
        }
        assert_eq!(app.count().await, start, "{path}: refused before anything is checked or recorded");
        // Same-origin, and a client that sends neither header, reach the handler.
        for headers in [
            vec![("sec-fetch-site", "same-origin"), ("origin", own.as_str())],
            vec![("sec-fetch-site", "none")],
            // What Chromium sends from a page served with `Referrer-Policy: no-referrer`.
            vec![("sec-fetch-site", "same-origin"), ("origin", "null")],
            vec![("origin", own.as_str())],
            vec![],
        ] {
            let resp = post_form(&app, path, body, &headers).await;
            assert_ne!(resp.status(), 403, "{path} {headers:?}");
            if path == "/login" {
                assert_eq!(resp.status(), 303, "signed in");
                assert!(resp.headers()["set-cookie"].to_str().unwrap().starts_with("logbook_session="));
            }
        }
    }
}

async fn the_cookie_has_its_plain_name_over_http(app: TestApp) {
    let resp = app
        .http
        .post(app.url("/api/v1/session"))
        .json(&json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("logbook_session=") && !cookie.contains("Secure"), "{cookie}");
}

async fn the_cookie_is_host_prefixed_over_https(app: TestApp) {
    let login = |headers: Vec<(&'static str, &'static str)>| {
        let app = &app;
        async move { post_form(app, FORMS[0].0, FORMS[0].1, &headers).await }
    };
    let resp = login(vec![("origin", PUBLIC_URL), ("sec-fetch-site", "same-origin")]).await;
    assert_eq!(resp.status(), 303, "the public URL's origin is this site");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-logbook_session="), "{cookie}");
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(attributes.contains(&"Secure") && attributes.contains(&"Path=/") && attributes.contains(&"HttpOnly"));
    assert!(!cookie.to_ascii_lowercase().contains("domain"), "{cookie}");
    let session = Session { cookie: cookie.split(';').next().unwrap().to_owned(), csrf: String::new() };
    let (status, _) = app.call(Method::GET, "/api/v1/session", Some(&session), None).await;
    assert_eq!(status, 200, "the __Host- cookie is the session");
    // A cookie under the plain name (one a neighbouring site could set) is not read.
    let token = session.cookie.split_once('=').unwrap().1;
    let tossed = Session { cookie: format!("logbook_session={token}"), csrf: String::new() };
    let (status, _) = app.call(Method::GET, "/api/v1/session", Some(&tossed), None).await;
    assert_eq!(status, 401);
    let api = app.sign_in(ADMIN, PASSWORD).await;
    assert!(api.cookie.starts_with("__Host-logbook_session="), "the API's sign-in too");
    let resp = login(vec![("origin", "http://logbook.example.com")]).await;
    assert_eq!(resp.status(), 403, "the same host over http is another origin");
    let resp = login(vec![("origin", "https://evil.example")]).await;
    assert_eq!(resp.status(), 403);
    // The request's own origin (its `Host`: the address the browser used) is this site too.
    let own = app.base.clone();
    let resp = post_form(&app, FORMS[0].0, FORMS[0].1, &[("origin", own.as_str())]).await;
    assert_eq!(resp.status(), 303);
}

async fn a_new_sign_in_ends_the_session_the_browser_had(app: TestApp) {
    let old = app.sign_in(ADMIN, PASSWORD).await;
    let kept = app.sign_in(ADMIN, PASSWORD).await;
    let start = app.count().await;
    let resp = post_form(&app, FORMS[0].0, FORMS[0].1, &[("cookie", old.cookie.as_str())]).await;
    assert_eq!(resp.status(), 303);
    let new = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert_ne!(new, old.cookie);
    let alive = |cookie: String| {
        let app = &app;
        async move {
            let s = Session { cookie, csrf: String::new() };
            app.call(Method::GET, "/api/v1/session", Some(&s), None).await.0
        }
    };
    assert_eq!(alive(old.cookie.clone()).await, 401, "the old session ended");
    assert_eq!(alive(new.clone()).await, 200);
    assert_eq!(alive(kept.cookie.clone()).await, 200, "another browser's session stays");
    let events = app.events().await;
    let kinds: Vec<(&str, Option<&str>)> = events[start..]
        .iter()
        .map(|e| (e.body.action.code(), e.body.fields.get("reason").map(String::as_str)))
        .collect();
    assert_eq!(kinds, [("login.success", None), ("logout", Some("new_sign_in"))]);

    // The API's sign-in as well.
    let start = app.count().await;
    let resp = app
        .http
        .post(app.url("/api/v1/session"))
        .header("cookie", &new)
        .json(&json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(alive(new).await, 401);
    let events = app.events().await;
    assert_eq!(events.last().unwrap().body.fields["reason"], "new_sign_in");
    assert_eq!(events.len() - start, 2);
    // A failed sign-in leaves the session alone.
    let resp = app
        .http
        .post(app.url("/api/v1/session"))
        .header("cookie", &kept.cookie)
        .json(&json!({"email": ADMIN, "password": "wrong wrong wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(alive(kept.cookie.clone()).await, 200);
}
