//! Sessions and sign-ins: expiry and deletion end sessions with a Logout event, lockout, TOTP
//! codes that work once, and the per-address throttle shared across processes.

use logbook_core::{Clock, Timestamp};

use logbook_test_support::{on_both_stores, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{find, Users, ADMIN, PASSWORD};

on_both_stores!(
    fixture = crate::helpers::admin;
    sessions_end_by_expiry_and_deletion_with_a_logout,
    lockout_after_repeated_failures_is_recorded,
    totp_codes_work_once_and_wrong_codes_are_failed_verification,
    sign_ins_are_throttled_per_address_across_processes,
    the_console_sign_in_goes_only_to_a_path_on_this_site,
);

async fn sessions_end_by_expiry_and_deletion_with_a_logout(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, idle) = app.user(&admin, "idle@example.com", "auditor").await;
    let start = app.count().await;
    // 29 minutes of quiet: still alive (the default idle timeout is 30 minutes).
    app.manual_clock().advance_micros(29 * 60 * 1_000_000);
    assert_eq!(app.call(Method::GET, "/api/v1/session", Some(&admin), None).await.0, 200);
    app.manual_clock().advance_micros(2 * 60 * 1_000_000);
    assert_eq!(
        app.call(Method::GET, "/api/v1/session", Some(&admin), None).await.0,
        200,
        "activity kept the admin's alive"
    );
    assert_eq!(app.call(Method::GET, "/api/v1/session", Some(&idle), None).await.0, 401, "idle for 31 minutes");
    assert_eq!(app.accounts.end_expired_sessions().await.unwrap(), 0, "already ended, once");
    let events = app.events().await;
    let logout = find(&events, start, "logout");
    assert_eq!((logout.user(), logout.body.details.as_str()), ("idle@example.com", "Session expired (idle timeout)"));

    // The background sweep ends sessions nobody uses any more.
    let (_, quiet) = app.user(&admin, "quiet@example.com", "auditor").await;
    let from = app.count().await;
    // 31 + 23 × 29 = 698 minutes: the admin, active, is still within the 12-hour limit.
    for _ in 0..23 {
        app.manual_clock().advance_micros(29 * 60 * 1_000_000);
        assert_eq!(app.call(Method::GET, "/api/v1/session", Some(&admin), None).await.0, 200);
    }
    assert_eq!(app.accounts.end_expired_sessions().await.unwrap(), 1, "quiet's idle session");
    assert_eq!(app.call(Method::GET, "/api/v1/session", Some(&quiet), None).await.0, 401);
    // 727 minutes: the admin's session reaches its absolute limit, whatever the activity.
    app.manual_clock().advance_micros(29 * 60 * 1_000_000);
    assert_eq!(app.call(Method::GET, "/api/v1/session", Some(&admin), None).await.0, 401, "absolute limit");
    let events = app.events().await;
    let reasons: Vec<&str> =
        events[from..].iter().filter(|e| e.body.action.code() == "logout").map(|e| e.body.details.as_str()).collect();
    assert_eq!(reasons, ["Session expired (idle timeout)", "Session expired (absolute limit)"]);
}

async fn lockout_after_repeated_failures_is_recorded(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, _) = app.user(&admin, "dan@example.com", "auditor").await;
    let start = app.count().await;
    for _ in 0..10 {
        let (status, _) = app
            .call(
                Method::POST,
                "/api/v1/session",
                None,
                Some(json!({"email": "dan@example.com", "password": "nope nope nope"})),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, body) = app
        .call(Method::POST, "/api/v1/session", None, Some(json!({"email": "dan@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("sign_in_failed")),
        "locked: the right password fails too, same message"
    );
    let events = app.events().await;
    let locked = find(&events, start, "account.locked");
    assert_eq!(locked.body.target.as_ref().unwrap().display, "dan@example.com");
    assert!(locked.body.details.contains("after 10 consecutive failed sign-ins"), "{}", locked.body.details);
    let last = events.last().unwrap();
    assert_eq!((last.body.action.code(), last.body.details.as_str()), ("login.failed", "Account locked"));
    app.manual_clock().advance_micros(31 * 60 * 1_000_000);
    app.sign_in("dan@example.com", PASSWORD).await;
}

async fn totp_codes_work_once_and_wrong_codes_are_failed_verification(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (status, enrol) = app.call(Method::POST, "/api/v1/account/totp", Some(&admin), None).await;
    assert_eq!(status, 200);
    assert!(enrol["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    assert!(enrol["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = logbook_store::accounts::TotpSecret(enrol["secret"].as_str().unwrap().to_owned());
    let code = |t: Timestamp| logbook_accounts::totp::code_at(&secret, t).unwrap();
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/account/totp/confirm",
            Some(&admin),
            Some(json!({"token": enrol["token"], "code": "000000", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 400, "a wrong code does not enrol");
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/account/totp/confirm",
            Some(&admin),
            Some(
                json!({"token": enrol["token"], "code": code(app.manual_clock().now()), "current_password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(status, 204);
    app.manual_clock().advance_micros(60 * 1_000_000);

    let start = app.count().await;
    let (status, body) =
        app.call(Method::POST, "/api/v1/session", None, Some(json!({"email": ADMIN, "password": PASSWORD}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("totp_required")));
    let pending = body["error"]["pending"].as_str().unwrap().to_owned();
    let step = |code: String| json!({"email": "", "password": "", "pending": pending, "totp": code});
    let (status, _) = app.call(Method::POST, "/api/v1/session", None, Some(step("123456".into()))).await;
    assert_eq!(status, 401);
    let good = code(app.manual_clock().now());
    let (status, _) = app.call(Method::POST, "/api/v1/session", None, Some(step(good.clone()))).await;
    assert_eq!(status, 200);
    let (status, _) = app.call(Method::POST, "/api/v1/session", None, Some(step(good.clone()))).await;
    assert_eq!(status, 401, "a pending sign-in completes once");
    let (status, body) =
        app.call(Method::POST, "/api/v1/session", None, Some(json!({"email": ADMIN, "password": PASSWORD}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("totp_required")));
    let again = json!({"email": "", "password": "", "pending": body["error"]["pending"], "totp": good});
    let (status, _) = app.call(Method::POST, "/api/v1/session", None, Some(again)).await;
    assert_eq!(status, 401, "the same code does not work twice");
    let events = app.events().await;
    let kinds: Vec<(&str, &str)> =
        events[start..].iter().map(|e| (e.body.action.code(), e.body.details.as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("login.failed", "Failed verification (wrong TOTP code)"),
            ("login.success", "Method: password + TOTP"),
            ("login.failed", "Failed verification (sign-in expired, already completed or out of codes)"),
            ("login.failed", "Failed verification (TOTP code already used)"),
        ]
    );
}

/// A client whose connections come from `ip` (any 127.x.y.z address reaches the server).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(ip.parse().unwrap()))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn try_sign_in(http: &reqwest::Client, base: &str, email: &str, password: &str) -> reqwest::Response {
    http.post(format!("{base}/api/v1/session"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn sign_ins_are_throttled_per_address_across_processes(app: TestApp) {
    let limit = logbook_accounts::SignInThrottle::default().max_failures;
    let attacker = client_from("127.0.0.2");
    let start = app.count().await;
    for i in 1..=limit {
        let resp = try_sign_in(&attacker, &app.base, &format!("ghost{i}@example.com"), "not the password").await;
        assert_eq!(resp.status(), 401, "failure {i} of {limit} is an ordinary failed sign-in");
    }
    let events = app.events().await;
    assert_eq!(events.len() - start, limit as usize, "every failure is recorded");
    let last = events.last().unwrap();
    assert_eq!(last.body.action.code(), "login.failed");
    assert!(
        last.body.details.starts_with(
            "Unknown user; 30 failed sign-ins from this address, further sign-ins from it refused for 15 minutes"
        ),
        "the failure that reaches the limit says so: {}",
        last.body.details
    );
    assert_eq!(last.body.fields.get("address_failures").map(String::as_str), Some("30"));

    // Over the limit, even the right password is refused, before any hashing, and not recorded.
    let resp = try_sign_in(&attacker, &app.base, ADMIN, PASSWORD).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "900");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    let form = attacker
        .post(format!("{}/login", app.base))
        .form(&[("email", ADMIN), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 429, "the console's sign-in form is refused too");
    assert!(form.text().await.unwrap().contains("too many failed sign-ins from this address"));
    assert_eq!(app.count().await, start + limit as usize, "refusals are counted in /metrics, not logged one by one");

    // Another address is not affected.
    let resp = try_sign_in(&client_from("127.0.0.3"), &app.base, ADMIN, PASSWORD).await;
    assert_eq!(resp.status(), 200);

    // A second process on the same database refuses the address too: the counter is stored.
    let other = app.second_process().await;
    let resp = try_sign_in(&attacker, &other, ADMIN, PASSWORD).await;
    assert_eq!(resp.status(), 429, "the other process shares the count");

    let (_, metrics) = app.call(Method::GET, "/metrics", None, None).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("logbook_sign_ins_throttled_total 2"), "{metrics}");

    // After the window the address may try again.
    app.manual_clock().advance_micros(16 * 60 * 1_000_000);
    let resp = try_sign_in(&attacker, &app.base, ADMIN, PASSWORD).await;
    assert_eq!(resp.status(), 200, "the window is over");
}

/// Issue 12, item 2: `next` after a console sign-in is a path on this site, whatever a link
/// smuggles into it (a tab or newline a browser strips, an encoded `//`, a backslash, a URL).
async fn the_console_sign_in_goes_only_to_a_path_on_this_site(app: TestApp) {
    let cases = [
        ("/audit-log?action=login.failed", "/audit-log?action=login.failed"),
        ("/\t/evil.example", "/"),
        ("/%09/evil.example", "/"),
        ("/%0d/evil.example", "/"),
        ("/%0a/evil.example", "/"),
        ("/%2F%2Fevil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
    ];
    for (next, expected) in cases {
        let resp = app
            .http
            .post(app.url("/login"))
            .form(&[("email", ADMIN), ("password", PASSWORD), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{next:?}");
        assert_eq!(resp.headers()["location"], expected, "{next:?}");
    }
}
