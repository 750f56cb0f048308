//! Management users, through the API: every seed action recorded with who, what and details;
//! nothing recorded for what was refused; a change whose event cannot be stored is not made.

use std::sync::atomic::Ordering;

use logbook_core::Event;

use logbook_test_support::{on_both_stores, Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{find, Users, ADMIN, PASSWORD};

on_both_stores!(
    fixture = crate::helpers::admin;
    every_seed_action_is_recorded_with_who_what_and_details,
    refused_requests_record_nothing,
    a_change_whose_event_cannot_be_stored_is_not_made,
);

async fn every_seed_action_is_recorded_with_who_what_and_details(app: TestApp) {
    let start = app.count().await;
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (status, _) = app
        .call(Method::POST, "/api/v1/session", None, Some(json!({"email": ADMIN, "password": "wrong password!"})))
        .await;
    assert_eq!(status, 401);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"email": "ghost@example.com", "password": "whatever it is"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (401, Some("the email, password or code is not correct")),
        "one generic message"
    );

    let (status, inv) = app
        .call(
            Method::POST,
            "/api/v1/invitations",
            Some(&admin),
            Some(json!({"email": "bob@example.com", "role": "auditor"})),
        )
        .await;
    assert_eq!(status, 201, "{inv}");
    let link = inv["link"].as_str().unwrap();
    assert!(link.contains("/invite?token="), "{link}");
    assert_eq!(inv["mailed"], false);
    let token = link.split("token=").nth(1).unwrap();
    let (status, bob) = app
        .call(Method::POST, "/api/v1/invitations/accept", None, Some(json!({"token": token, "password": PASSWORD})))
        .await;
    assert_eq!(status, 201, "{bob}");
    let (status, _) = app
        .call(Method::POST, "/api/v1/invitations/accept", None, Some(json!({"token": token, "password": PASSWORD})))
        .await;
    assert_eq!(status, 400, "an invitation works once");
    let bob_id = bob["id"].as_i64().unwrap();

    let (status, body) = app
        .call(Method::PATCH, &format!("/api/v1/users/{bob_id}"), Some(&admin), Some(json!({"role": "analyst"})))
        .await;
    assert_eq!((status, body["role"].as_str()), (200, Some("analyst")));

    let bob_session = app.sign_in("bob@example.com", PASSWORD).await;
    let (status, p) = app
        .call(
            Method::POST,
            "/api/v1/protected-users",
            Some(&bob_session),
            Some(json!({"email": "Ceo@Example.com", "name": "Grace Hopper"})),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    let (status, _) =
        app.call(Method::DELETE, &format!("/api/v1/protected-users/{}", p["id"]), Some(&bob_session), None).await;
    assert_eq!(status, 204);

    let (carol_id, _) = app.user(&admin, "carol@example.com", "auditor").await;
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/users/{carol_id}"), Some(&admin), None).await;
    assert_eq!(status, 204);
    let (status, _) = app.call(Method::DELETE, "/api/v1/session", Some(&bob_session), None).await;
    assert_eq!(status, 204);
    let (status, _) = app.call(Method::GET, "/api/v1/session", Some(&bob_session), None).await;
    assert_eq!(status, 401, "signed out means signed out");

    let events = app.events().await;
    let check = |action: &str, label: &str, user: &str, target: Option<&str>, details: &str| {
        let e = find(&events, start, action);
        assert_eq!(e.body.action.platform_label().unwrap(), label, "{action}");
        assert_eq!(e.user(), user, "{action}: user");
        assert_eq!(e.body.target.as_ref().map(|t| t.display.as_str()), target, "{action}: target");
        assert!(e.body.details.contains(details), "{action}: {:?} should contain {details:?}", e.body.details);
        assert_eq!(e.body.source.user_agent.as_deref(), Some(logbook_test_support::USER_AGENT), "{action}: source");
        assert!(e.body.source.ip.is_some(), "{action}: source ip");
        e
    };
    check("login.success", "Login Success", ADMIN, None, "Method: password");
    let failed: Vec<&Event> = events[start..].iter().filter(|e| e.body.action.code() == "login.failed").collect();
    assert_eq!(failed.len(), 2);
    assert_eq!((failed[0].user(), failed[0].body.details.as_str()), (ADMIN, "Invalid password"));
    assert_eq!((failed[1].user(), failed[1].body.details.as_str()), ("ghost@example.com", "Unknown user"));
    check("user.invited", "User Invited", ADMIN, Some("bob@example.com"), "Invited bob@example.com as Auditor");
    let added = check(
        "management_user.added",
        "Management Users Added",
        "bob@example.com",
        Some("bob@example.com"),
        "Accepted the invitation from admin@example.com as Auditor",
    );
    assert_eq!(added.body.fields["method"], "invitation");
    let role = check(
        "user.role_updated",
        "User Role Updated",
        ADMIN,
        Some("bob@example.com"),
        "Role changed from Auditor to Analyst",
    );
    assert_eq!((role.body.fields["old_role"].as_str(), role.body.fields["new_role"].as_str()), ("auditor", "analyst"));
    check("protected_user.added", "Protected Users Added", "bob@example.com", Some("ceo@example.com"), "Grace Hopper");
    check(
        "protected_user.removed",
        "Protected Users Removed",
        "bob@example.com",
        Some("ceo@example.com"),
        "Grace Hopper",
    );
    check(
        "management_user.deleted",
        "Management Users Deleted",
        ADMIN,
        Some("carol@example.com"),
        "Deleted carol@example.com",
    );
    let logouts: Vec<&Event> = events[start..].iter().filter(|e| e.body.action.code() == "logout").collect();
    assert_eq!(logouts.len(), 2, "carol's session ended with her deletion, bob signed out");
    assert_eq!((logouts[0].user(), logouts[0].body.fields["reason"].as_str()), ("carol@example.com", "user_deleted"));
    assert_eq!((logouts[1].user(), logouts[1].body.details.as_str()), ("bob@example.com", "Signed out"));
    for e in &events[start..] {
        let text = format!("{:?}", e.body);
        assert!(!text.contains(PASSWORD) && !text.contains("wrong password!"), "no password in any event: {text}");
        assert!(!text.contains(&admin.csrf) && !text.contains(token), "no token in any event");
    }
}

async fn refused_requests_record_nothing(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, analyst) = app.user(&admin, "ann@example.com", "analyst").await;
    let before = app.count().await;
    // (method, path, session, body, send the CSRF token, expected status)
    type Attempt<'a> = (Method, &'a str, Option<&'a Session>, Value, bool, u16);
    let attempts: Vec<Attempt> = vec![
        // Missing permission.
        (
            Method::POST,
            "/api/v1/users",
            Some(&analyst),
            json!({"email": "x@example.com", "role": "admin", "password": PASSWORD}),
            true,
            403,
        ),
        (Method::PATCH, "/api/v1/settings", Some(&analyst), json!({"time_zone": "Europe/Berlin"}), true, 403),
        // Bad CSRF token, and none at all.
        (
            Method::POST,
            "/api/v1/protected-users",
            Some(&admin),
            json!({"email": "p@example.com", "name": "P"}),
            false,
            403,
        ),
        // Bad input.
        (
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            json!({"email": "not-an-email", "role": "admin", "password": PASSWORD}),
            true,
            400,
        ),
        (
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            json!({"email": "y@example.com", "role": "root", "password": PASSWORD}),
            true,
            400,
        ),
        (
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            json!({"email": "y@example.com", "role": "admin", "password": "password1"}),
            true,
            400,
        ),
        (Method::POST, "/api/v1/users", Some(&admin), json!({"email": "y@example.com"}), true, 400),
        (
            Method::POST,
            "/api/v1/protected-users",
            Some(&admin),
            json!({"email": "p@example.com", "name": ""}),
            true,
            400,
        ),
        (Method::PATCH, "/api/v1/settings", Some(&admin), json!({"time_zone": "Mars/Olympus"}), true, 400),
        (Method::PATCH, "/api/v1/users/123", Some(&admin), json!({"role": "admin"}), true, 404),
        (Method::DELETE, "/api/v1/users/abc", Some(&admin), json!(null), true, 400),
        // Anonymous.
        (Method::POST, "/api/v1/invitations", None, json!({"email": "z@example.com", "role": "admin"}), true, 401),
    ];
    for (method, path, session, body, csrf, expected) in attempts {
        let body = (!body.is_null()).then_some(body);
        let (status, answer) = app.call_with(method.clone(), path, session, body, csrf).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert!(answer["error"]["code"].is_string(), "a JSON error: {answer}");
    }
    let (status, body) = {
        let wrong = Session { cookie: admin.cookie.clone(), csrf: "forged".into() };
        app.call(
            Method::POST,
            "/api/v1/protected-users",
            Some(&wrong),
            Some(json!({"email": "p@example.com", "name": "P"})),
        )
        .await
    };
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("csrf")));
    let (_, me) = app.call(Method::GET, "/api/v1/session", Some(&admin), None).await;
    let (status, body) =
        app.call(Method::DELETE, &format!("/api/v1/users/{}", me["user"]["id"]), Some(&admin), None).await;
    assert_eq!(status, 409, "the last admin cannot be deleted: {body}");
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", me["user"]["id"]),
            Some(&admin),
            Some(json!({"role": "auditor"})),
        )
        .await;
    assert_eq!(status, 409, "nor demoted");
    assert_eq!(app.count().await, before, "no event for any refused request");
}

async fn a_change_whose_event_cannot_be_stored_is_not_made(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let before = app.count().await;
    app.store.fail_before_commit.store(1, Ordering::SeqCst);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"email": "eve@example.com", "role": "admin", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.to_string().contains("injected"), "internal details are not sent: {body}");
    let (_, users) = app.call(Method::GET, "/api/v1/users", Some(&admin), None).await;
    assert!(!users.to_string().contains("eve@example.com"), "the user was not added");
    assert_eq!(app.count().await, before, "and nothing was recorded");
    app.store.fail_before_commit.store(1, Ordering::SeqCst);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/protected-users",
            Some(&admin),
            Some(json!({"email": "p@example.com", "name": "P"})),
        )
        .await;
    assert_eq!(status, 503);
    let (_, page) = app.call(Method::GET, "/api/v1/protected-users", Some(&admin), None).await;
    assert_eq!(page["protected_users"].as_array().unwrap().len(), 0);
    // Once the store works again, so does the change.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/protected-users",
            Some(&admin),
            Some(json!({"email": "p@example.com", "name": "P"})),
        )
        .await;
    assert_eq!(status, 201);
}
