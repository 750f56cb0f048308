//! The role × route matrix: every API route, console page and form, for anonymous, auditor,
//! analyst and admin.

use logbook_test_support::{on_both_stores, Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Users, ADMIN, PASSWORD};

on_both_stores!(fixture = crate::helpers::admin; every_route_checks_the_current_role);

/// Every route, for anonymous, auditor, analyst and admin: 401 without a session, 403 without
/// the permission, through to the handler otherwise.
async fn every_route_checks_the_current_role(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, auditor) = app.user(&admin, "aud@example.com", "auditor").await;
    let (_, analyst) = app.user(&admin, "ana@example.com", "analyst").await;
    let body = |v: Value| Some(v);
    // (method, path, body, [auditor, analyst, admin] allowed)
    let routes: Vec<(Method, &str, Option<Value>, [bool; 3])> = vec![
        (Method::GET, "/api/v1/session", None, [true, true, true]),
        (Method::GET, "/api/v1/users", None, [true, false, true]),
        (Method::POST, "/api/v1/users", body(json!({"email": "bad"})), [false, false, true]),
        (Method::PATCH, "/api/v1/users/1", body(json!({"role": "auditor"})), [false, false, true]),
        (Method::DELETE, "/api/v1/users/1", None, [false, false, true]),
        (Method::GET, "/api/v1/invitations", None, [true, false, true]),
        (Method::POST, "/api/v1/invitations", body(json!({"email": "bad", "role": "auditor"})), [false, false, true]),
        (Method::DELETE, "/api/v1/invitations/1", None, [false, false, true]),
        (Method::GET, "/api/v1/protected-users", None, [true, true, true]),
        (Method::POST, "/api/v1/protected-users", body(json!({"email": "bad", "name": "x"})), [false, true, true]),
        (Method::DELETE, "/api/v1/protected-users/1", None, [false, true, true]),
        (Method::GET, "/api/v1/settings", None, [false, false, true]),
        (Method::GET, "/api/v1/witnesses", None, [false, false, true]),
        (Method::PATCH, "/api/v1/settings", body(json!({"lockout_minutes": 0})), [false, false, true]),
        (
            Method::PUT,
            "/api/v1/account/password",
            body(json!({"current_password": "x", "new_password": "y"})),
            [true, true, true],
        ),
        (
            Method::POST,
            "/api/v1/account/totp/confirm",
            body(json!({"token": "!", "code": "1", "current_password": "x"})),
            [true, true, true],
        ),
        (Method::DELETE, "/api/v1/account/totp", body(json!({"password": "x"})), [true, true, true]),
        (Method::GET, "/api/v1/account/sessions", None, [true, true, true]),
        (Method::DELETE, "/api/v1/account/sessions/not-a-session", None, [true, true, true]),
        (Method::DELETE, "/api/v1/account/sessions", None, [true, true, true]),
        (Method::POST, "/api/v1/users/1/sign-out", None, [false, false, true]),
    ];
    let sessions = [&auditor, &analyst, &admin];
    for (method, path, b, allowed) in &routes {
        let (status, answer) = app.call(method.clone(), path, None, b.clone()).await;
        assert_eq!(status, 401, "anonymous {method} {path}: {answer}");
        for (i, session) in sessions.iter().enumerate() {
            let (status, answer) = app.call(method.clone(), path, Some(session), b.clone()).await;
            if allowed[i] {
                assert!(status != 401 && status != 403, "role {i} {method} {path} should pass: {status} {answer}");
            } else {
                assert_eq!(status, 403, "role {i} {method} {path}: {answer}");
            }
        }
    }
    // The import takes CSV, not JSON.
    let import = |s: &Session| {
        app.http
            .post(format!("{}/api/v1/protected-users/import", app.base))
            .header("cookie", &s.cookie)
            .header("x-csrf-token", &s.csrf)
            .body("email,name\n")
            .send()
    };
    assert_eq!(import(&auditor).await.unwrap().status(), 403);
    assert_eq!(import(&analyst).await.unwrap().status(), 200);

    // Console pages: anonymous is sent to sign in, a missing permission is 403.
    let pages: [(&str, [bool; 3]); 7] = [
        ("/audit-log", [true, true, true]),
        ("/audit-log/events/0", [true, true, true]),
        ("/users", [true, false, true]),
        ("/protected-users", [true, true, true]),
        ("/settings", [false, false, true]),
        ("/api-tokens", [false, false, true]),
        ("/account", [true, true, true]),
    ];
    for (path, allowed) in pages {
        let resp = app.http.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "anonymous {path}");
        assert!(resp.headers()["location"].to_str().unwrap().starts_with("/login?next="), "{path}");
        for (i, s) in sessions.iter().enumerate() {
            let resp = app.http.get(format!("{}{path}", app.base)).header("cookie", &s.cookie).send().await.unwrap();
            assert_eq!(resp.status(), if allowed[i] { 200 } else { 403 }, "role {i} {path}");
        }
    }

    // Console forms: anonymous is sent to sign in, a missing permission is 403, and the others
    // reach the handler (which answers a page or a redirect).
    let forms: [(&str, &str, [bool; 3]); 14] = [
        ("/users/invite", "email=bad&role=auditor", [false, false, true]),
        ("/users/add", "email=bad&role=auditor&password=x", [false, false, true]),
        ("/users/1/role", "role=auditor", [false, false, true]),
        ("/users/1/delete", "", [false, false, true]),
        ("/users/1/sign-out", "", [false, false, true]),
        ("/invitations/1/revoke", "", [false, false, true]),
        ("/protected-users/add", "email=bad&name=x", [false, true, true]),
        ("/protected-users/1/remove", "", [false, true, true]),
        (
            "/settings",
            "time_zone=UTC&session_idle_minutes=x&session_absolute_hours=1&lockout_threshold=1&lockout_minutes=1",
            [false, false, true],
        ),
        ("/account/password", "current_password=x&new_password=y", [true, true, true]),
        ("/account/sessions/not-a-session/end", "", [true, true, true]),
        ("/account/sessions/end-others", "", [true, true, true]),
        ("/api-tokens", "name=bad%20name&actions=*", [false, false, true]),
        ("/api-tokens/nobody/revoke", "", [false, false, true]),
    ];
    for (path, body, allowed) in forms {
        let post = |s: Option<&Session>| {
            let mut req = app
                .http
                .post(format!("{}{path}", app.base))
                .header("content-type", "application/x-www-form-urlencoded");
            let mut body = body.to_owned();
            if let Some(s) = s {
                req = req.header("cookie", &s.cookie);
                body = format!("csrf={}&{body}", s.csrf);
            }
            req.body(body).send()
        };
        let resp = post(None).await.unwrap();
        assert_eq!(resp.status(), 303, "anonymous {path}");
        for (i, s) in sessions.iter().enumerate() {
            let status = post(Some(s)).await.unwrap().status().as_u16();
            if allowed[i] {
                assert!(status != 403 && status != 401, "role {i} POST {path}: {status}");
            } else {
                assert_eq!(status, 403, "role {i} POST {path}");
            }
        }
    }

    // A role change bites on the very next request.
    let (_, me) = app.call(Method::GET, "/api/v1/session", Some(&analyst), None).await;
    let id = me["user"]["id"].as_i64().unwrap();
    let (status, _) =
        app.call(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&admin), body(json!({"role": "auditor"}))).await;
    assert_eq!(status, 200);
    let (status, _) = app.call(Method::DELETE, "/api/v1/protected-users/1", Some(&analyst), None).await;
    assert_eq!(status, 403, "demoted: no longer allowed");
    let (status, _) = app.call(Method::GET, "/api/v1/users", Some(&analyst), None).await;
    assert_eq!(status, 200, "and now allowed what auditors may");
}
