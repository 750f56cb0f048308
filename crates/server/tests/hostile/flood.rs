//! A flood of wrong sign-ins: refused (401/429) while others are served.

use std::sync::Arc;
use std::time::{Duration, Instant};

use logbook_test_support::{on_both_stores, PATIENCE};
use serde_json::json;

use crate::helpers::{from_reqwest, Hostile, READER, READER_PASSWORD, VICTIM, WRONG_PASSWORD};

on_both_stores!(fixture = flood; a_sign_in_flood_is_refused_while_others_are_served);

/// The flood comes from one address over 300 connections at once: without the per-address
/// connection cap (shown in `transport.rs`), so that every attempt reaches the sign-in limits.
async fn flood(backend: logbook_test_support::Backend) -> Option<Hostile> {
    Hostile::spawn(backend, |s| s.max_connections_per_address = 0).await
}

async fn a_sign_in_flood_is_refused_while_others_are_served(app: Hostile) {
    let app = Arc::new(app);
    let url = format!("{}/api/v1/session", app.base);
    let started = Instant::now();
    let mut flood = Vec::new();
    for i in 0..300 {
        let client = app.http.clone();
        let url = url.clone();
        // Half against an existing account, half against addresses that do not exist.
        let email = if i % 2 == 0 { VICTIM.to_owned() } else { format!("nobody{i}@example.com") };
        flood.push(tokio::spawn(async move {
            let resp =
                client.post(&url).json(&json!({"email": email, "password": WRONG_PASSWORD})).send().await.unwrap();
            from_reqwest(resp).await
        }));
    }
    // Meanwhile: liveness answers quickly, and another user signs in (from another address, so
    // that no per-address throttle confuses them with the flood; retrying after a 429 like a
    // person would).
    let mut slowest = Duration::ZERO;
    let mut during_flood = 0;
    for _ in 0..10 {
        slowest = slowest.max(app.healthz().await);
        if flood.iter().any(|f| !f.is_finished()) {
            during_flood += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut other = reqwest::Client::builder().local_address(Some("127.0.0.2".parse().unwrap())).build().unwrap();
    if other.get(format!("{}/healthz", app.base)).send().await.is_err() {
        // Not Linux: only 127.0.0.1 is a loopback address.
        other = reqwest::Client::new();
    }
    let mut signed_in = None;
    let mut tries = 0;
    while started.elapsed() < PATIENCE {
        tries += 1;
        let resp = other.post(&url).json(&json!({"email": READER, "password": READER_PASSWORD})).send().await.unwrap();
        let answer = from_reqwest(resp).await;
        app.record("POST /api/v1/session (the reader, during the flood)", &answer);
        match answer.status {
            Some(200) => {
                signed_in = Some(answer);
                break;
            }
            Some(429) => tokio::time::sleep(Duration::from_millis(500)).await,
            _ => panic!("{answer:?}"),
        }
    }
    let signed_in =
        signed_in.unwrap_or_else(|| panic!("the reader could not sign in during the flood ({tries} tries)"));
    assert_eq!(signed_in.json()["user"]["email"], READER);
    let (mut refused, mut busy) = (0, 0);
    for f in flood {
        let answer = f.await.unwrap();
        match answer.status {
            Some(401) => {
                assert_eq!(answer.code(), "sign_in_failed");
                refused += 1;
            }
            Some(429) => {
                assert!(["too_many_requests", "too_many_attempts"].contains(&answer.code().as_str()), "{answer:?}");
                busy += 1;
            }
            _ => panic!("{answer:?}"),
        }
        app.record("POST /api/v1/session (flood)", &answer);
    }
    assert_eq!(refused + busy, 300);
    eprintln!(
        "flood: {refused} × 401, {busy} × 429 in {:?}; slowest /healthz {slowest:?}, {during_flood} of 10 during the flood; reader signed in after {tries} tries",
        started.elapsed()
    );
    // Liveness was answered while sign-ins of the flood were still waiting for theirs (an order
    // of events, not a time: a busy machine slows both alike).
    assert!(during_flood > 0, "/healthz was answered only after the whole flood (slowest {slowest:?})");
    app.healthz().await;
    Arc::into_inner(app).unwrap().finish().await;
}
