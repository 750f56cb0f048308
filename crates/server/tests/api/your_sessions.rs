//! Seeing and ending sessions: a new password or TOTP ends every other session of the user,
//! the user lists theirs (address, user agent, the current one marked) and ends one or all
//! others, and an admin signs a user out everywhere; each ending is recorded.

use logbook_core::{Clock, Event};
use logbook_test_support::{on_both_stores, Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{find, Users, ADMIN, PASSWORD};

on_both_stores!(
    fixture = crate::helpers::admin;
    a_password_change_ends_the_other_sessions_but_the_current_one,
    totp_enrolment_and_removal_end_the_other_sessions,
    the_session_list_shows_address_user_agent_and_the_current_one,
    sessions_end_one_at_a_time_or_all_others,
    a_user_cannot_end_another_users_session,
    an_admin_signs_a_user_out_everywhere,
    the_account_page_lists_and_ends_sessions,
);

/// Signs in through the API with this user agent.
async fn sign_in_as(app: &TestApp, email: &str, agent: &str) -> Session {
    let resp = app
        .http
        .post(app.url("/api/v1/session"))
        .header("user-agent", agent)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    Session { cookie, csrf: body["csrf_token"].as_str().unwrap().to_owned() }
}

async fn alive(app: &TestApp, s: &Session) -> bool {
    let (status, _) = app.call(Method::GET, "/api/v1/session", Some(s), None).await;
    assert!(status == 200 || status == 401, "{status}");
    status == 200
}

/// The Logout events after `from`: (user, reason).
fn logouts(events: &[Event], from: usize) -> Vec<(String, String)> {
    events[from..]
        .iter()
        .filter(|e| e.body.action.code() == "logout")
        .map(|e| (e.user().to_owned(), e.body.fields["reason"].clone()))
        .collect()
}

async fn sessions_of(app: &TestApp, s: &Session) -> Vec<Value> {
    let (status, body) = app.call(Method::GET, "/api/v1/account/sessions", Some(s), None).await;
    assert_eq!(status, 200, "{body}");
    body["sessions"].as_array().unwrap().clone()
}

/// The public id of a session, as its own list shows it.
async fn own_id(app: &TestApp, s: &Session) -> String {
    let listed = sessions_of(app, s).await;
    let current = listed.iter().find(|v| v["current"] == true).expect("the current session is listed");
    current["id"].as_str().unwrap().to_owned()
}

async fn a_password_change_ends_the_other_sessions_but_the_current_one(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, bob) = app.user(&admin, "bob@example.com", "auditor").await;
    let laptop = app.sign_in("bob@example.com", PASSWORD).await;
    let phone = app.sign_in("bob@example.com", PASSWORD).await;
    let start = app.count().await;
    let new = "a brand new passphrase for bob";
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/account/password",
            Some(&laptop),
            Some(json!({"current_password": PASSWORD, "new_password": new})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert!(alive(&app, &laptop).await, "the session that changed it stays");
    assert!(!alive(&app, &bob).await && !alive(&app, &phone).await, "the others end");
    assert!(alive(&app, &admin).await, "another user's sessions stay");
    let events = app.events().await;
    assert_eq!(events[start].body.action.code(), "password.changed");
    assert_eq!(logouts(&events, start), vec![("bob@example.com".into(), "password_changed".into()); 2]);
    let logout = find(&events, start, "logout");
    assert_eq!(logout.body.details, "Session ended: the password was changed");
    assert!(!logout.body.fields["session"].is_empty(), "the session's public id");
    app.sign_in("bob@example.com", new).await;
}

async fn totp_enrolment_and_removal_end_the_other_sessions(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let other = app.sign_in(ADMIN, PASSWORD).await;
    let (status, enrol) = app.call(Method::POST, "/api/v1/account/totp", Some(&admin), None).await;
    assert_eq!(status, 200);
    let secret = logbook_store::accounts::TotpSecret(enrol["secret"].as_str().unwrap().to_owned());
    let code = || logbook_accounts::totp::code_at(&secret, app.manual_clock().now()).unwrap();
    let start = app.count().await;
    let confirm = json!({"token": enrol["token"], "code": code(), "current_password": PASSWORD});
    let (status, body) = app.call(Method::POST, "/api/v1/account/totp/confirm", Some(&admin), Some(confirm)).await;
    assert_eq!(status, 204, "{body}");
    assert!(alive(&app, &admin).await && !alive(&app, &other).await, "enrolment ends the others");
    let events = app.events().await;
    assert_eq!(events[start].body.action.code(), "totp.enrolled");
    assert_eq!(logouts(&events, start), [("admin@example.com".into(), "mfa_changed".into())]);

    app.manual_clock().advance_micros(60 * 1_000_000);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"email": ADMIN, "password": PASSWORD, "totp": code()})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, bob) = app.user(&admin, "bob@example.com", "auditor").await;
    let start = app.count().await;
    let (status, body) =
        app.call(Method::DELETE, "/api/v1/account/totp", Some(&admin), Some(json!({"password": PASSWORD}))).await;
    assert_eq!(status, 204, "{body}");
    assert!(alive(&app, &admin).await && alive(&app, &bob).await);
    assert_eq!(sessions_of(&app, &admin).await.len(), 1, "the TOTP sign-in ended");
    let events = app.events().await;
    assert_eq!(events[start].body.action.code(), "totp.removed");
    assert_eq!(logouts(&events, start), [("admin@example.com".into(), "mfa_changed".into())]);
}

async fn the_session_list_shows_address_user_agent_and_the_current_one(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, _) = app.user(&admin, "bob@example.com", "auditor").await;
    app.manual_clock().advance_micros(1_000_000);
    let a = sign_in_as(&app, "bob@example.com", "Agent A/1.0").await;
    app.manual_clock().advance_micros(1_000_000);
    let b = sign_in_as(&app, "bob@example.com", "Agent B/2.0").await;
    let listed = sessions_of(&app, &a).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    let agents: Vec<&str> = listed.iter().map(|s| s["user_agent"].as_str().unwrap()).collect();
    assert_eq!(agents, [logbook_test_support::USER_AGENT, "Agent A/1.0", "Agent B/2.0"], "oldest first");
    assert!(listed.iter().all(|s| s["address"] == "127.0.0.1"), "{listed:?}");
    let current: Vec<bool> = listed.iter().map(|s| s["current"].as_bool().unwrap()).collect();
    assert_eq!(current, [false, true, false]);
    assert!(listed.iter().all(|s| s["created"].is_string() && s["last_seen"].is_string() && s["expires"].is_string()));
    assert_eq!(sessions_of(&app, &b).await[2]["current"], true, "the current one is the asker's");
    let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(ids.iter().all(|id| !id.is_empty()) && ids[0] != ids[1] && ids[1] != ids[2]);
    // Neither the token nor its hash, in any encoding, is in the list.
    let text = serde_json::to_string(&listed).unwrap();
    for s in [&a, &b] {
        let token = s.cookie.split_once('=').unwrap().1;
        let hash = Sha256::digest(token.as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        use base64::Engine as _;
        for shown in [
            token.to_owned(),
            hex.clone(),
            hex[..16].to_owned(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash[..16]),
            base64::engine::general_purpose::STANDARD.encode(hash),
        ] {
            assert!(!text.contains(&shown), "{shown} in {text}");
        }
    }
}

async fn sessions_end_one_at_a_time_or_all_others(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, bob) = app.user(&admin, "bob@example.com", "auditor").await;
    let second = app.sign_in("bob@example.com", PASSWORD).await;
    let third = app.sign_in("bob@example.com", PASSWORD).await;
    let fourth = app.sign_in("bob@example.com", PASSWORD).await;
    let start = app.count().await;
    let id = own_id(&app, &second).await;
    let (status, body) = app.call(Method::DELETE, &format!("/api/v1/account/sessions/{id}"), Some(&bob), None).await;
    assert_eq!(status, 204, "{body}");
    assert!(!alive(&app, &second).await && alive(&app, &bob).await && alive(&app, &third).await);
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/account/sessions/{id}"), Some(&bob), None).await;
    assert_eq!(status, 404, "ended already");
    let (status, body) = app.call_with(Method::DELETE, "/api/v1/account/sessions", Some(&bob), None, false).await;
    assert_eq!(status, 403, "needs the CSRF token: {body}");
    let (status, body) = app.call(Method::DELETE, "/api/v1/account/sessions", Some(&bob), None).await;
    assert_eq!((status, body["ended"].as_u64()), (200, Some(2)), "{body}");
    assert!(!alive(&app, &third).await && !alive(&app, &fourth).await && alive(&app, &bob).await);
    assert!(alive(&app, &admin).await, "another user's sessions stay");
    let events = app.events().await;
    assert_eq!(logouts(&events, start), vec![("bob@example.com".into(), "ended_by_user".into()); 3]);

    // Ending the current one signs out and clears the cookie.
    let own = own_id(&app, &bob).await;
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/account/sessions/{own}")))
        .header("cookie", &bob.cookie)
        .header("x-csrf-token", &bob.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert!(!alive(&app, &bob).await);
}

async fn a_user_cannot_end_another_users_session(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, bob) = app.user(&admin, "bob@example.com", "auditor").await;
    let bobs = own_id(&app, &bob).await;
    let start = app.count().await;
    for id in [bobs.as_str(), "not-a-session", "AAAAAAAAAAAAAAAAAAAAAA"] {
        let (status, body) =
            app.call(Method::DELETE, &format!("/api/v1/account/sessions/{id}"), Some(&admin), None).await;
        assert_eq!(status, 404, "{id}: {body}");
    }
    let console = app
        .http
        .post(app.url(&format!("/account/sessions/{bobs}/end")))
        .header("cookie", &admin.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}", admin.csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), 404);
    assert!(alive(&app, &bob).await && alive(&app, &admin).await);
    assert_eq!(app.count().await, start, "nothing ended, nothing recorded");
}

async fn an_admin_signs_a_user_out_everywhere(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (bob_id, bob) = app.user(&admin, "bob@example.com", "auditor").await;
    let bob2 = app.sign_in("bob@example.com", PASSWORD).await;
    let (_, auditor) = app.user(&admin, "aud@example.com", "auditor").await;
    let (_, analyst) = app.user(&admin, "ana@example.com", "analyst").await;
    let path = format!("/api/v1/users/{bob_id}/sign-out");
    for s in [&auditor, &analyst, &bob] {
        let (status, _) = app.call(Method::POST, &path, Some(s), None).await;
        assert_eq!(status, 403);
    }
    assert!(alive(&app, &bob).await && alive(&app, &bob2).await, "refused: nothing ended");
    let start = app.count().await;
    let (status, body) = app.call(Method::POST, &path, Some(&admin), None).await;
    assert_eq!((status, body["ended"].as_u64()), (200, Some(2)), "{body}");
    assert!(!alive(&app, &bob).await && !alive(&app, &bob2).await);
    assert!(alive(&app, &admin).await && alive(&app, &auditor).await);
    let events = app.events().await;
    let e = find(&events, start, "user.signed_out_everywhere");
    assert_eq!(e.user(), ADMIN);
    let target = e.body.target.as_ref().unwrap();
    assert_eq!((target.id.as_str(), target.display.as_str()), (bob_id.to_string().as_str(), "bob@example.com"));
    assert_eq!(e.body.fields["sessions"], "2");
    assert_eq!(logouts(&events, start), vec![("bob@example.com".into(), "signed_out_by_admin".into()); 2]);
    let (status, _) = app.call(Method::POST, "/api/v1/users/424242/sign-out", Some(&admin), None).await;
    assert_eq!(status, 404);

    // The console's action on the users page, with its CSRF field.
    let bob = app.sign_in("bob@example.com", PASSWORD).await;
    let page = app.http.get(app.url("/users")).header("cookie", &admin.cookie).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("action=\"/users/{bob_id}/sign-out\"")), "the action is on the page");
    let post = |csrf: &str| {
        app.http
            .post(app.url(&format!("/users/{bob_id}/sign-out")))
            .header("cookie", &admin.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}"))
            .send()
    };
    assert_eq!(post("forged").await.unwrap().status(), 403, "the CSRF field is checked");
    assert!(alive(&app, &bob).await);
    let resp = post(&admin.csrf).await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/users?notice=signed_out");
    assert!(!alive(&app, &bob).await);
    let events = app.events().await;
    assert_eq!(events.last().unwrap().body.action.code(), "logout");
    assert_eq!(events[events.len() - 2].body.action.code(), "user.signed_out_everywhere");
}

async fn the_account_page_lists_and_ends_sessions(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, bob) = app.user(&admin, "bob@example.com", "auditor").await;
    let other = sign_in_as(&app, "bob@example.com", "Agent Other/3.0").await;
    let third = app.sign_in("bob@example.com", PASSWORD).await;
    let html =
        app.http.get(app.url("/account")).header("cookie", &bob.cookie).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Your sessions") && html.contains("Agent Other/3.0") && html.contains("127.0.0.1"));
    assert!(html.contains("this session") && html.contains("End all other sessions"));
    let id = own_id(&app, &other).await;
    assert!(html.contains(&format!("action=\"/account/sessions/{id}/end\"")));
    let post = |path: String| {
        app.http
            .post(app.url(&path))
            .header("cookie", &bob.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={}", bob.csrf))
            .send()
    };
    let resp = post(format!("/account/sessions/{id}/end")).await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.headers()["location"].to_str().unwrap()),
        (303, "/account?notice=session_ended")
    );
    assert!(!alive(&app, &other).await && alive(&app, &third).await);
    let resp = post("/account/sessions/end-others".into()).await.unwrap();
    assert_eq!(resp.headers()["location"], "/account?notice=sessions_ended");
    assert!(!alive(&app, &third).await && alive(&app, &bob).await);
    let own = own_id(&app, &bob).await;
    let resp = post(format!("/account/sessions/{own}/end")).await.unwrap();
    assert_eq!(resp.headers()["location"], "/login", "ending one's own signs out");
    assert!(!alive(&app, &bob).await);
}
