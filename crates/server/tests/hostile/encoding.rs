//! Invalid UTF-8 anywhere and path tricks: always a 4xx, never a file.

use logbook_test_support::on_both_stores;

use crate::helpers::{event, Hostile};

on_both_stores!(
    fixture = crate::helpers::hostile;
    invalid_utf8_anywhere_is_a_4xx,
    path_tricks_answer_4xx_and_never_serve_a_file,
);

async fn invalid_utf8_anywhere_is_a_4xx(app: Hostile) {
    let bearer = format!("Authorization: Bearer {}\r\n", app.token);
    let session = format!("Cookie: {}\r\nX-CSRF-Token: {}\r\n", app.cookie, app.csrf);

    // JSON bodies.
    let bad_json: &[&[u8]] = &[
        b"{\"email\": \"\xff\xfe\", \"password\": \"x\"}",
        b"{\"email\": \"a@example.com\", \"password\": \"\xc3\x28\"}",
        b"\xef\xbb\xbf\xff{}",
        b"{\"email\": \"\\ud800\", \"password\": \"x\"}",
    ];
    for body in bad_json {
        let answer = app.raw_post("/api/v1/session", "application/json", "", body).await;
        assert!(matches!(answer.status, Some(400) | Some(401)), "{answer:?}");
    }
    let answer = app.raw_post("/api/v1/events", "application/json", &bearer, b"{\"action\": \"\xff\"}").await;
    assert_eq!((answer.status, answer.code().as_str()), (Some(400), "malformed_json"), "{answer:?}");
    let answer = app
        .raw_post("/api/v1/users", "application/json", &session, b"{\"email\": \"\xff@x\", \"role\": \"admin\"}")
        .await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    let answer =
        app.raw_post("/api/v1/protected-users/import", "text/csv", &session, b"email,name\n\xff@x,\xfe\n").await;
    assert!(answer.is_4xx() || answer.status == Some(200), "{answer:?}");
    if answer.status == Some(200) {
        assert_eq!(answer.json()["added"], 0, "{answer:?}");
    }

    // Query strings: raw bytes are not a URI; encoded ones are read lossily or refused.
    let answer = app.raw_get(b"/api/v1/events?q=\xff\xfe", session.as_bytes()).await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    for target in [
        "/api/v1/events?q=%FF%FE",
        "/api/v1/events?user=%C3%28&action=%FF",
        "/api/v1/events?from=%FF",
        "/api/v1/events?cursor=%FF%00",
        "/api/v1/proof/inclusion?seq=%FF",
        "/api/v1/checkpoint?org=%FF",
        "/audit-log?q=%FF&from=%C3%28",
        "/login?next=%FF%2F%2Fevil.example",
    ] {
        let answer = app.raw_get(target.as_bytes(), session.as_bytes()).await;
        assert!(answer.status.is_some_and(|s| s < 500), "{target}: {answer:?}");
        if target.starts_with("/api/v1/events?") || target.starts_with("/api/v1/proof") {
            assert!(matches!(answer.status, Some(200) | Some(400)), "{target}: {answer:?}");
        }
    }
    let answer = app.raw_get(b"/api/v1/events?q=%FF", b"").await;
    assert_eq!(answer.status, Some(401), "{answer:?}");

    // Form bodies.
    for body in [&b"email=%FF%FE&password=%C3%28"[..], b"email=\xff\xfe&password=\xc3\x28", b"email&password", b"\xff"]
    {
        let answer = app.raw_post("/login", "application/x-www-form-urlencoded", "", body).await;
        assert!(answer.is_4xx(), "{answer:?}");
    }
    let answer = app
        .raw_post("/protected-users/add", "application/x-www-form-urlencoded", &session, b"email=\xff&name=%FF")
        .await;
    assert!(answer.is_4xx(), "{answer:?}");

    // Cookies and other header values.
    for cookie in [&b"logbook_session=\xff\xfe"[..], b"logbook_session=%FF%00", b"\xff=\xff; logbook_session"] {
        let mut extra = b"Cookie: ".to_vec();
        extra.extend_from_slice(cookie);
        extra.extend_from_slice(b"\r\n");
        let answer = app.raw_get(b"/api/v1/session", &extra).await;
        assert_eq!(answer.status, Some(401), "{answer:?}");
        let answer = app.raw_get(b"/audit-log", &extra).await;
        assert_eq!(answer.status, Some(303), "{answer:?}");
    }
    let answer = app.raw_get(b"/api/v1/events", b"Authorization: Bearer \xff\xfe\r\n").await;
    assert_eq!(answer.status, Some(401), "{answer:?}");
    let answer = app.raw_post("/api/v1/events", "application/json", "Authorization: Bearer \u{ff}\r\n", b"{}").await;
    assert_eq!(answer.status, Some(401), "{answer:?}");
    let answer = app.raw_get(b"/healthz", b"User-Agent: \xff\xfe\r\nIdempotency-Key: \xff\r\n").await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    let mut extra = bearer.clone().into_bytes();
    extra.extend_from_slice(b"Idempotency-Key: \xff\xfe\r\nUser-Agent: \xc3\x28\r\n");
    let mut req =
        b"POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
            .to_vec();
    let body = serde_json::to_vec(&event()).unwrap();
    req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    req.extend_from_slice(&extra);
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(&body);
    let answer = app.raw("POST /api/v1/events (Idempotency-Key not UTF-8)", &req).await;
    assert_eq!(answer.status, Some(400), "{answer:?}");

    // Paths.
    for target in [&b"/\xff"[..], b"/api/v1/users/\xff", b"/api/v1/\xc3\x28"] {
        let answer = app.raw_get(target, session.as_bytes()).await;
        assert_eq!(answer.status, Some(400), "{answer:?}");
    }
    for (method, target) in [
        ("DELETE", "/api/v1/users/%FF"),
        ("DELETE", "/api/v1/invitations/%C3%28"),
        ("DELETE", "/api/v1/protected-users/%FF%FE"),
        ("PATCH", "/api/v1/users/%FF"),
        ("GET", "/audit-log/events/%FF"),
        ("POST", "/users/%FF/delete"),
        ("GET", "/%FF"),
    ] {
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{session}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        let answer = app.raw(&format!("{method} {target}"), req.as_bytes()).await;
        assert!(answer.is_4xx(), "{method} {target}: {answer:?}");
    }
    app.healthz().await;
    app.finish().await;
}

async fn path_tricks_answer_4xx_and_never_serve_a_file(app: Hostile) {
    let long = format!("/{}", "a".repeat(8 * 1024));
    let longer = format!("/api/v1/{}", "b/".repeat(10 * 1024));
    let mut targets: Vec<Vec<u8>> = [
        "/../../../../etc/passwd",
        "/assets/../../../../etc/passwd",
        "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/assets/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/%2e%2e/%2e%2e/Cargo.toml",
        "/assets/..%2f..%2f..%2fCargo.toml",
        "/assets/..%5c..%5cCargo.toml",
        "/assets/%252e%252e/%252e%252e/etc/passwd",
        "/assets/style.css/../../Cargo.toml",
        "/assets/style.css%00.txt",
        "/assets/%00",
        "/api/v1/events/../../../etc/passwd",
        "/api/v1/events%2F..%2F..%2Fhealthz",
        "/api%2Fv1%2Fevents",
        "//api/v1/events",
        "///etc/passwd",
        "/.git/config",
        "/Cargo.toml",
        "/crates/server/src/lib.rs",
        "/checkpoint-signing.key",
        "/api/v1/users/..%2f..%2fsetup",
        "/api/v1/users/%2e%2e",
        "/audit-log/events/..%2f..%2f..%2fetc%2fpasswd",
        "/audit-log/events/-1",
        "/audit-log/events/99999999999999999999999",
        "/api/v1/proof/inclusion?seq=-1",
        "/api/v1/proof/consistency?from=18446744073709551615&to=1",
        "http://evil.example/../etc/passwd",
        "*",
    ]
    .iter()
    .map(|t| t.as_bytes().to_vec())
    .collect();
    targets.push(long.into_bytes());
    targets.push(longer.into_bytes());
    targets.push(b"/assets/\0/etc/passwd".to_vec());
    targets.push(b"/assets/..\\..\\Cargo.toml".to_vec());
    targets.push(b"/etc/passwd\r\nX-Injected: 1".to_vec());
    for target in &targets {
        for cookie in [String::new(), format!("Cookie: {}\r\n", app.cookie)] {
            let answer = app.raw_get(target, cookie.as_bytes()).await;
            let shown = String::from_utf8_lossy(&target[..target.len().min(60)]).into_owned();
            // A console page without a session sends to the sign-in page instead.
            let to_sign_in = cookie.is_empty()
                && answer.status == Some(303)
                && answer.head.to_lowercase().contains("\r\nlocation: /login?next=");
            assert!(answer.is_4xx() || to_sign_in, "{shown}: {answer:?}");
            let text = answer.text();
            for leak in ["root:", "[workspace]", "[package]", "fn main", "repositoryformatversion", "PRIVATE+KEY"] {
                assert!(!text.contains(leak), "{shown} served a file: {text}");
            }
            assert!(!answer.head.contains("X-Injected"), "{answer:?}");
        }
    }
    app.healthz().await;
    app.finish().await;
}
