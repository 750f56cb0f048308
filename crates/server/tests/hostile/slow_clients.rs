//! Slow clients are cut off once the read timeouts pass while others are served; the connection
//! cap holds and idle connections are reaped.

use std::time::{Duration, Instant};

use logbook_test_support::{on_both_stores, within, Backend, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{event, parse_answer, raw_exchange, raw_exchange_on, Hostile};

on_both_stores!(fixture = slow_timeouts; slow_clients_are_cut_off_while_others_are_served);
on_both_stores!(fixture = capped; the_connection_cap_holds_and_idle_connections_are_reaped);

/// The slow-client test's read timeouts: long beside what answering a normal request takes on
/// the busiest machine, so that "served while the slow ones are still connected" is an order
/// of events the test can rely on.
const SLOW_TIMEOUT: Duration = Duration::from_secs(5);
/// The connection-cap test's header-read timeout (it checks only lower bounds against it).
const CAP_TIMEOUT: Duration = Duration::from_secs(2);
/// A cut-off comes long before this; a slow client left alone would take far longer (its
/// request is over 100 bytes at one byte per second).
const CUT_OFF_BY: Duration = Duration::from_secs(40);
/// What the server's timers may lag behind ours (both start as the connection is made).
const SLACK: Duration = Duration::from_millis(500);

async fn slow_timeouts(backend: Backend) -> Option<Hostile> {
    Hostile::spawn(backend, |s| {
        s.header_read_timeout = SLOW_TIMEOUT;
        s.body_read_timeout = SLOW_TIMEOUT;
    })
    .await
}

async fn capped(backend: Backend) -> Option<Hostile> {
    Hostile::spawn(backend, |s| {
        s.header_read_timeout = CAP_TIMEOUT;
        s.max_connections = 4;
    })
    .await
}

async fn slow_clients_are_cut_off_while_others_are_served(app: Hostile) {
    let timeout = SLOW_TIMEOUT;
    let started = Instant::now();
    // Ten clients send their headers one byte per second; one sends its body that way. Each
    // says when it is connected.
    let (connected_tx, mut connected) = tokio::sync::mpsc::channel::<()>(16);
    let mut slow = Vec::new();
    for _ in 0..10 {
        let (addr, connected_tx) = (app.addr, connected_tx.clone());
        slow.push(tokio::spawn(async move {
            let req =
                format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\n\r\n", "0123456789".repeat(6));
            let stream = TcpStream::connect(addr).await.unwrap();
            connected_tx.send(()).await.unwrap();
            (raw_exchange_on(stream, req.into_bytes(), Duration::from_secs(1)).await, Instant::now())
        }));
    }
    let body_client = {
        let (addr, token, connected_tx) = (app.addr, app.token.clone(), connected_tx.clone());
        tokio::spawn(async move {
            let body = serde_json::to_vec(&event()).unwrap();
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut rd, mut wr) = stream.into_split();
            let head = format!(
                "POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            wr.write_all(head.as_bytes()).await.unwrap();
            connected_tx.send(()).await.unwrap();
            let writer = tokio::spawn(async move {
                for b in body {
                    if wr.write_all(&[b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            let mut raw = Vec::new();
            let _ = tokio::time::timeout(PATIENCE, rd.read_to_end(&mut raw)).await;
            writer.abort();
            (parse_answer(&raw), Instant::now())
        })
    };
    drop(connected_tx);
    for _ in 0..11 {
        within("the slow clients to connect", connected.recv()).await.unwrap();
    }
    // Meanwhile, normal clients are served: answered while every slow client is still
    // connected (none has been cut off yet).
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        slowest = slowest.max(app.healthz().await);
    }
    assert!(
        slow.iter().all(|s| !s.is_finished()) && !body_client.is_finished(),
        "normal clients were served only once slow ones were cut off (slowest {slowest:?})"
    );
    for s in slow {
        let (answer, ended) = s.await.unwrap();
        let after = ended - started;
        // Cut off without an answer once the header-read timeout passed, long before the
        // request line and headers were complete (they would have taken 110 s).
        assert_eq!(answer.status, None, "{answer:?}");
        assert!(after >= timeout - SLACK && after < CUT_OFF_BY, "cut off after {after:?}");
        app.record("slow headers", &answer);
    }
    let (answer, ended) = body_client.await.unwrap();
    app.record("slow body", &answer);
    assert_eq!((answer.status, answer.code().as_str()), (Some(408), "request_timeout"), "{answer:?}");
    let after = ended - started;
    assert!(after >= timeout - SLACK && after < CUT_OFF_BY, "answered after {after:?}");
    app.healthz().await;
    app.finish().await;
}

async fn the_connection_cap_holds_and_idle_connections_are_reaped(app: Hostile) {
    let timeout = CAP_TIMEOUT;
    // A keep-alive connection left idle after a request is closed after the timeout too (so the
    // client's pooled connection from the set-up, idle for longer, is gone by then with its
    // permit).
    let started = Instant::now();
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    within("the idle keep-alive connection to be closed", conn.read_to_end(&mut raw)).await.unwrap();
    let closed_after = started.elapsed();
    let answer = parse_answer(&raw);
    app.record("GET /healthz (keep-alive)", &answer);
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert!(closed_after >= timeout - SLACK && closed_after < CUT_OFF_BY, "{closed_after:?}");
    // Four connections that say nothing take every permit (the server accepts connections in
    // the order they were made, so these four before the fifth)…
    let idle_since = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // …so the fifth is served only once the server has closed them (header-read timeout).
    let answer = raw_exchange(
        app.addr,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        Duration::ZERO,
    )
    .await;
    let waited = idle_since.elapsed();
    app.record("GET /healthz behind the cap", &answer);
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert!(waited >= timeout - SLACK && waited < CUT_OFF_BY, "waited {waited:?}");
    for mut c in idle {
        let mut buf = [0u8; 64];
        let n = within("an idle connection to be closed", c.read(&mut buf)).await.unwrap_or(0);
        assert_eq!(n, 0, "an idle connection was answered");
    }
    app.healthz().await;
    app.finish().await;
}
