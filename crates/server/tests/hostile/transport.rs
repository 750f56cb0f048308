//! Who the client is behind a reverse proxy, and what the transport promises: the headers that
//! name the client are believed from a trusted proxy only (so nobody else can pick the address
//! an event records or a sign-in throttle counts), one address cannot hold every connection,
//! and HTTPS installations tell browsers never to use plain HTTP.

use std::net::SocketAddr;

use logbook_core::Action;
use logbook_test_support::{on_both_stores, wait_until, Backend, TestApp};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{from_reqwest, raw_exchange_on, Hostile, WRONG_PASSWORD};

on_both_stores!(fixture = behind_a_proxy; a_trusted_proxy_names_the_client_and_the_throttle_counts_each_client);
on_both_stores!(fixture = proxy_not_trusted; the_headers_of_an_untrusted_peer_are_ignored);
on_both_stores!(fixture = capped_per_address; one_address_cannot_hold_every_connection);
on_both_stores!(https_installations_send_hsts_and_others_do_not);

/// Failures allowed per address in these tests.
const MAX_FAILURES: u32 = 2;

async fn behind_a_proxy(backend: Backend) -> Option<Hostile> {
    Hostile::spawn(backend, |s| {
        // The tests' client connects from 127.0.0.1: it plays the proxy.
        s.trusted_proxies = "127.0.0.0/8".parse().unwrap();
        s.sign_in_throttle.max_failures = MAX_FAILURES;
    })
    .await
}

async fn proxy_not_trusted(backend: Backend) -> Option<Hostile> {
    Hostile::spawn(backend, |s| {
        s.trusted_proxies = "10.0.0.0/8".parse().unwrap();
        s.sign_in_throttle.max_failures = MAX_FAILURES;
    })
    .await
}

/// A wrong sign-in sent with `X-Forwarded-For: forwarded`; its status and error code.
async fn wrong_sign_in(app: &Hostile, email: &str, forwarded: &str) -> (u16, String) {
    let resp = app
        .http
        .post(app.url("/api/v1/session"))
        .header("x-forwarded-for", forwarded)
        .json(&json!({"email": email, "password": WRONG_PASSWORD}))
        .send()
        .await
        .unwrap();
    let answer = from_reqwest(resp).await;
    app.record("POST /api/v1/session (forwarded)", &answer);
    (answer.status.unwrap(), answer.code())
}

/// The source of the newest `login.failed` event.
async fn last_failure_source(app: &Hostile) -> logbook_core::Source {
    let events = app.events().await;
    let e = events.iter().rev().find(|e| e.body.action == Action::LoginFailed).expect("a login.failed event");
    e.body.source.clone()
}

async fn a_trusted_proxy_names_the_client_and_the_throttle_counts_each_client(app: Hostile) {
    // The left entry was written by the client itself: only the right-most address that is not
    // a trusted proxy counts.
    let (status, _) = wrong_sign_in(&app, "nobody@example.com", "203.0.113.9, 198.51.100.7").await;
    assert_eq!(status, 401);
    let source = last_failure_source(&app).await;
    assert_eq!(source.ip, Some("198.51.100.7".parse().unwrap()), "the client's address is recorded");
    assert_eq!(source.via, Some("127.0.0.1".parse().unwrap()), "and the proxy it came through");
    // The API shows both.
    let resp =
        app.http.get(app.url("/api/v1/events?action=login.failed")).header("cookie", &app.cookie).send().await.unwrap();
    let answer = from_reqwest(resp).await;
    app.record("GET /api/v1/events", &answer);
    let listed = &answer.json()["events"][0]["source"];
    assert_eq!((listed["ip"].as_str(), listed["via"].as_str()), (Some("198.51.100.7"), Some("127.0.0.1")), "{listed}");

    // The throttle counts that client, not the proxy everyone shares.
    assert_eq!(wrong_sign_in(&app, "nobody@example.com", "198.51.100.7").await.0, 401);
    let refused = wrong_sign_in(&app, "nobody@example.com", "198.51.100.7").await;
    assert_eq!(refused, (429, "too_many_attempts".to_owned()));
    assert_eq!(
        wrong_sign_in(&app, "nobody@example.com", "198.51.100.8").await.0,
        401,
        "another client is not throttled"
    );
    // A direct request (no header) is the proxy's own: its address, no proxy.
    let resp = app
        .http
        .post(app.url("/api/v1/session"))
        .json(&json!({"email": "nobody@example.com", "password": WRONG_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let source = last_failure_source(&app).await;
    assert_eq!((source.ip, source.via), (Some("127.0.0.1".parse().unwrap()), None));
    app.finish().await;
}

async fn the_headers_of_an_untrusted_peer_are_ignored(app: Hostile) {
    assert_eq!(wrong_sign_in(&app, "nobody@example.com", "198.51.100.7").await.0, 401);
    let source = last_failure_source(&app).await;
    assert_eq!(source.ip, Some("127.0.0.1".parse().unwrap()), "the peer's address, not the header's");
    assert_eq!(source.via, None);
    // Changing the header does not get a client out of its throttle.
    assert_eq!(wrong_sign_in(&app, "nobody@example.com", "198.51.100.8").await.0, 401);
    let refused = wrong_sign_in(&app, "nobody@example.com", "198.51.100.9").await;
    assert_eq!(refused, (429, "too_many_attempts".to_owned()));
    // Nor does the other header.
    let resp = app
        .http
        .post(app.url("/api/v1/session"))
        .header("forwarded", "for=198.51.100.10")
        .json(&json!({"email": "nobody@example.com", "password": WRONG_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    app.finish().await;
}

/// Connections per address in the cap test.
const PER_ADDRESS: usize = 2;

async fn capped_per_address(backend: Backend) -> Option<Hostile> {
    Hostile::spawn(backend, |s| {
        s.max_connections_per_address = PER_ADDRESS;
        s.trusted_proxies = "127.0.0.3/32".parse().unwrap();
        // Idle connections stay open for the whole test (it never waits for this).
        s.header_read_timeout = std::time::Duration::from_secs(600);
    })
    .await
}

/// A connection from `local` (a loopback address other than the harness client's 127.0.0.1,
/// so that its pooled connections do not count).
async fn connect_from(local: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends a keep-alive `GET /healthz` and reads its answer; the connection stays open.
async fn healthz_on(conn: &mut TcpStream) -> bool {
    if conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\nok\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"HTTP/1.1 200")
}

const CLOSE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

async fn one_address_cannot_hold_every_connection(app: Hostile) {
    // The address's connections, each served and then held open.
    let mut held = Vec::new();
    for _ in 0..PER_ADDRESS {
        let mut c = connect_from("127.0.0.2", app.addr).await;
        assert!(healthz_on(&mut c).await, "a connection within the limit is served");
        held.push(c);
    }
    // One more from that address is closed unanswered (the server accepts in order, so the
    // held ones were counted before it)…
    let answer = raw_exchange_on(connect_from("127.0.0.2", app.addr).await, CLOSE.to_vec(), Default::default()).await;
    app.record("GET /healthz beyond the per-address limit", &answer);
    assert_eq!(answer.status, None, "{answer:?}");
    // …while other addresses are served,
    app.healthz().await;
    // and a trusted proxy, which carries many clients, is not limited.
    let mut proxy = Vec::new();
    for _ in 0..=PER_ADDRESS {
        let mut c = connect_from("127.0.0.3", app.addr).await;
        assert!(healthz_on(&mut c).await, "the proxy's connection is served");
        proxy.push(c);
    }
    // Once one of the address's connections closes, it may open another.
    drop(held.pop());
    let a = &app;
    wait_until("a connection from the capped address to be served again", move || async move {
        let answer = raw_exchange_on(connect_from("127.0.0.2", a.addr).await, CLOSE.to_vec(), Default::default()).await;
        a.record("GET /healthz after one closed", &answer);
        (answer.status == Some(200)).then_some(())
    })
    .await;
    drop((held, proxy));
    app.finish().await;
}

const HSTS: &str = "max-age=31536000; includeSubDomains";

async fn https_installations_send_hsts_and_others_do_not(plain: TestApp) {
    for path in ["/healthz", "/api/v1/events", "/"] {
        let resp = plain.http.get(plain.url(path)).send().await.unwrap();
        assert!(resp.headers().get("strict-transport-security").is_none(), "{path} over http: {:?}", resp.headers());
    }
    let backend = plain.backend;
    plain.stop().await;
    let https = TestApp::builder(backend)
        .settings(|s| s.public_url = Some("https://logbook.example.com".into()))
        .spawn()
        .await
        .unwrap();
    for path in ["/healthz", "/api/v1/events", "/"] {
        let resp = https.http.get(https.url(path)).send().await.unwrap();
        assert_eq!(
            resp.headers().get("strict-transport-security").and_then(|v| v.to_str().ok()),
            Some(HSTS),
            "{path} behind https"
        );
    }
    https.stop().await;
}
