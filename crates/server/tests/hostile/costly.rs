//! Costly reads: exports are limited (in all and per user) and answered 429 beyond the limit, an
//! export whose client went away stops, and a list or search that runs past its deadline is
//! stopped and answered 503.

use std::time::Duration;

use logbook_core::{Action, Role};
use logbook_test_support::{on_both_stores, wait_until, Backend};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{event, from_reqwest, Hostile, READER};

on_both_stores!(fixture = export_limits; exports_beyond_the_limits_get_429_and_a_gone_client_frees_its_slot);
on_both_stores!(fixture = no_time_for_queries; a_query_past_its_deadline_is_stopped_with_503);

async fn export_limits(backend: Backend) -> Option<Hostile> {
    Hostile::spawn(backend, |s| {
        s.export_max_concurrent = 2;
        s.export_max_per_user = 1;
    })
    .await
}

async fn no_time_for_queries(backend: Backend) -> Option<Hostile> {
    Hostile::spawn(backend, |s| s.query_timeout = Duration::ZERO).await
}

/// Appends `n` events through the API, `per_request` at a time, each with `padding` bytes of
/// structured fields.
async fn ingest(app: &Hostile, n: usize, per_request: usize, padding: usize) {
    let fields: serde_json::Map<String, Value> =
        (0..padding.div_ceil(1000)).map(|i| (format!("pad{i:02}"), json!("x".repeat(1000)))).collect();
    for start in (0..n).step_by(per_request) {
        let batch: Vec<Value> = (start..(start + per_request).min(n))
            .map(|i| {
                let mut e = event();
                e["actor"]["id"] = json!(format!("user{i}@example.com"));
                e["fields"] = Value::Object(fields.clone());
                e
            })
            .collect();
        let resp = app.http.post(app.url("/api/v1/events")).bearer_auth(&app.token).json(&batch).send().await.unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
}

/// `GET path` with `cookie` on a connection that reads almost nothing: its receive buffer is
/// tiny and the test never reads it, so the server's writes stall once the kernel's buffers
/// are full, and the export stays in progress until the connection is closed.
async fn stalled_export(app: &Hostile, cookie: &str) -> TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut conn = socket.connect(app.addr).await.unwrap();
    let req =
        format!("GET /api/v1/events/export?format=ndjson HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    conn
}

async fn exports_in_progress(app: &Hostile) -> u64 {
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("logbook_exports_in_progress "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no exports gauge in {metrics}"))
}

/// What the kernel may buffer on the server's side of one connection: its largest send buffer.
fn largest_send_buffer() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        .unwrap_or(4 << 20)
}

async fn export(app: &Hostile, cookie: &str) -> crate::helpers::Answer {
    let resp =
        app.http.get(app.url("/api/v1/events/export?format=ndjson")).header("cookie", cookie).send().await.unwrap();
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let answer = from_reqwest(resp).await;
    app.record("GET /api/v1/events/export", &answer);
    if answer.status == Some(429) {
        assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok()), "a 429 says when to retry: {answer:?}");
    }
    answer
}

async fn exports_beyond_the_limits_get_429_and_a_gone_client_frees_its_slot(app: Hostile) {
    // Twice what the kernel can buffer for a connection, so a client that does not read keeps
    // its export in progress (about 34 KB an event).
    let per_event = 33_000;
    let n = (2 * largest_send_buffer() / per_event + 1).max(200);
    ingest(&app, n, 100, 32_000).await;
    let ada = app.cookie.clone();
    app.accounts.create_user_as_operator("bob@example.com", Role::Auditor, "bob's long passphrase 1").await.unwrap();
    app.accounts.create_user_as_operator("cy@example.com", Role::Analyst, "cy's long passphrase 22").await.unwrap();
    let bob = app.sign_in("bob@example.com", "bob's long passphrase 1").await.cookie;
    let cy = app.sign_in("cy@example.com", "cy's long passphrase 22").await.cookie;

    let first = stalled_export(&app, &ada).await;
    wait_until("the first export to be in progress", || async { (exports_in_progress(&app).await == 1).then_some(()) })
        .await;
    // Its slot is taken before its record is appended: wait for the record too, so the size
    // below does not race it.
    wait_until("the first export's record", || async {
        let exported =
            app.events().await.iter().filter(|e| e.body.action.code() == Action::AuditLogExported.code()).count();
        (exported == 1).then_some(())
    })
    .await;
    // The same user again: refused before anything is read or recorded.
    let size = app.size().await;
    let again = export(&app, &ada).await;
    assert_eq!((again.status, again.code().as_str()), (Some(429), "too_many_exports"), "{READER} again");
    assert!(again.json()["error"]["message"].as_str().unwrap().contains("you already have"), "{again:?}");
    assert_eq!(app.size().await, size, "a refused export is not recorded as an export");
    // Another user may, up to the server's limit…
    let second = stalled_export(&app, &bob).await;
    wait_until("the second export to be in progress", || async {
        (exports_in_progress(&app).await == 2).then_some(())
    })
    .await;
    // …beyond which everyone waits.
    let third = export(&app, &cy).await;
    assert_eq!((third.status, third.code().as_str()), (Some(429), "too_many_exports"), "{third:?}");
    assert!(third.json()["error"]["message"].as_str().unwrap().contains("the server is running"), "{third:?}");

    // The first client goes away: its export stops (the body and the store reads end) and its
    // slot comes back.
    drop(first);
    wait_until("the abandoned export to end", || async { (exports_in_progress(&app).await == 1).then_some(()) }).await;
    let third = export(&app, &cy).await;
    assert_eq!(third.status, Some(200), "{:?}", third.head);
    assert!(third.text().lines().count() > n, "every event");
    drop(second);
    wait_until("every export to end", || async { (exports_in_progress(&app).await == 0).then_some(()) }).await;
    app.finish().await;
}

async fn a_query_past_its_deadline_is_stopped_with_503(app: Hostile) {
    // Enough rows that any search does more than a few thousand steps of work.
    ingest(&app, 2_000, 1_000, 0).await;
    // A needle of two characters has no trigram: the store scans the rows for it.
    for path in ["/api/v1/events?q=zz", "/api/v1/events?q=zz&limit=10"] {
        let resp = app.http.get(app.url(path)).header("cookie", &app.cookie).send().await.unwrap();
        let answer = from_reqwest(resp).await;
        app.record(&format!("GET {path}"), &answer);
        assert_eq!((answer.status, answer.code().as_str()), (Some(503), "query_timeout"), "{path}: {answer:?}");
        assert!(answer.text().contains("narrow the filters"), "{answer:?}");
    }
    // The console's list says so too, as a page.
    let resp = app.http.get(app.url("/audit-log?q=zz")).header("cookie", &app.cookie).send().await.unwrap();
    let answer = from_reqwest(resp).await;
    app.record("GET /audit-log?q=zz", &answer);
    assert_eq!(answer.status, Some(503), "{answer:?}");
    // Not `finish`: these 503s are the point.
    app.app.stop().await;
}
