//! Oversized bodies and headers: refused (413, 431) before they are read, and the server carries
//! on.

use std::time::Duration;

use logbook_test_support::on_both_stores;
use serde_json::Value;

use crate::helpers::{event, from_reqwest, raw_exchange, Hostile};

on_both_stores!(
    fixture = crate::helpers::hostile;
    oversized_bodies_are_refused_with_413,
    oversized_headers_are_refused_and_the_server_carries_on,
);

async fn oversized_bodies_are_refused_with_413(app: Hostile) {
    let bearer = format!("Authorization: Bearer {}\r\n", app.token);

    // Declared too large: refused before anything is read, so a client that waits for
    // `100 Continue` never sends the body.
    for (path, size, extra) in [
        ("/api/v1/events", 8 * 1024 * 1024 + 1_u64, bearer.as_str()),
        ("/api/v1/events", 1 << 40, bearer.as_str()),
        ("/api/v1/session", 64 * 1024 + 1, ""),
        ("/api/v1/protected-users/import", 4 * 1024 * 1024 + 1, ""),
    ] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {size}\r\nExpect: 100-continue\r\n{extra}\r\n"
        );
        let answer = app.raw(&format!("POST {path} ({size} bytes declared)"), req.as_bytes()).await;
        assert_eq!(answer.status, Some(413), "{path} {size}: {answer:?}");
        assert_eq!(answer.code(), "payload_too_large");
        assert!(!answer.head.contains("100 Continue"), "{answer:?}");
    }

    // The routes with large bodies read them only after authentication: a client without
    // credentials is refused at once, without the server waiting for (or holding) its body.
    for (path, size) in [
        ("/api/v1/events", 8 * 1024 * 1024),
        ("/api/v1/protected-users/import", 4 * 1024 * 1024),
        ("/protected-users/import", 4 * 1024 * 1024),
    ] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nContent-Length: {size}\r\n\r\n"
        );
        // The body never comes: a server that waited for it would answer 408 once the body-read
        // timeout passed (or nothing), never 401 or 303.
        let answer = app.raw(&format!("POST {path} (unauthenticated, body never sent)"), req.as_bytes()).await;
        assert!(matches!(answer.status, Some(401) | Some(303)), "{path}: {answer:?}");
    }

    // A client that sends the body without waiting still reads the 413 (the server reads and
    // discards a refused body of up to 16 MiB rather than resetting the connection).
    for (path, size) in [("/api/v1/session", 200 * 1024), ("/api/v1/events", 9 * 1024 * 1024)] {
        let resp = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&app.token)
            .header("content-type", "application/json")
            .body(vec![b' '; size])
            .send()
            .await
            .unwrap();
        let answer = from_reqwest(resp).await;
        app.record(&format!("POST {path} ({size} bytes sent)"), &answer);
        assert_eq!((answer.status, answer.code().as_str()), (Some(413), "payload_too_large"), "{answer:?}");
    }

    // Not declared (chunked): cut at the limit.
    let mut req =
        b"POST /api/v1/session HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..40 {
        req.extend_from_slice(format!("{:x}\r\n", 4096).as_bytes());
        req.extend_from_slice(&[b' '; 4096]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let answer = app.raw("POST /api/v1/session (chunked, 160 KiB)", &req).await;
    assert_eq!((answer.status, answer.code().as_str()), (Some(413), "payload_too_large"), "{answer:?}");

    // Ingestion really takes more than the small limit; the import too (its 20,000 rows are
    // read, then refused for their number, not their size).
    let big: Vec<Value> = (0..1000).map(|_| event()).collect();
    let body = serde_json::to_vec(&big).unwrap();
    assert!(body.len() > 64 * 1024);
    let answer = app.raw_post("/api/v1/events", "application/json", &bearer, &body).await;
    assert_eq!(answer.status, Some(201), "{answer:?}");
    let mut csv = String::from("email,name\n");
    for i in 0..20_000 {
        csv.push_str(&format!("user{i}@example.com,User {i}\n"));
    }
    let extra = format!("Cookie: {}\r\nX-CSRF-Token: {}\r\n", app.cookie, app.csrf);
    let answer = app.raw_post("/api/v1/protected-users/import", "text/csv", &extra, csv.as_bytes()).await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    assert!(answer.text().contains("at most 10000 rows"), "{answer:?}");

    // A console form: the same limit, answered with a page.
    let answer = app
        .raw(
            "POST /login (declared too large)",
            b"POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
        )
        .await;
    assert_eq!(answer.status, Some(413), "{answer:?}");
    assert!(answer.head.to_lowercase().contains("text/html"), "{answer:?}");
    app.healthz().await;
    app.finish().await;
}

async fn oversized_headers_are_refused_and_the_server_carries_on(app: Hostile) {
    // One 20 KiB header.
    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    let answer = app.raw_get(b"/healthz", big.as_bytes()).await;
    assert!(matches!(answer.status, Some(431) | None), "{answer:?}");
    // A 20 KiB cookie.
    let cookie = format!("Cookie: logbook_session={}\r\n", "b".repeat(20 * 1024));
    let answer = app.raw_get(b"/api/v1/session", cookie.as_bytes()).await;
    assert!(matches!(answer.status, Some(431) | None), "{answer:?}");
    // 200 small headers.
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = app.raw_get(b"/healthz", many.as_bytes()).await;
    assert!(matches!(answer.status, Some(431) | None), "{answer:?}");
    // Just under the limits: served.
    let fine: String = (0..50).map(|i| format!("X-H{i}: {}\r\n", "c".repeat(100))).collect();
    let answer = app.raw_get(b"/healthz", fine.as_bytes()).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    // A header that is not a header, and one with a NUL.
    let answer = app.raw_get(b"/healthz", b"no colon here\r\n").await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    let answer = app.raw_get(b"/healthz", b"X-Nul: a\0b\r\n").await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    // Many at once, then a normal client.
    let mut floods = Vec::new();
    for _ in 0..20 {
        let addr = app.addr;
        let big = big.clone();
        floods.push(tokio::spawn(async move {
            let req = format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\n{big}\r\n");
            raw_exchange(addr, req.into_bytes(), Duration::ZERO).await
        }));
    }
    for f in floods {
        let answer = f.await.unwrap();
        assert!(matches!(answer.status, Some(431) | None), "{answer:?}");
        app.record("GET /healthz (20 KiB header, concurrent)", &answer);
    }
    app.healthz().await;
    app.finish().await;
}
