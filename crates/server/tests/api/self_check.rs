//! The integrity self-check reports damage in the metrics and to admins, and recovery.

use std::time::Duration;

use logbook_store::Store;
use logbook_test_support::{wait_until, Backend, Session, TestApp};

use crate::helpers::{Users, ADMIN, PASSWORD};

/// The value of a metric without labels in `/metrics`.
async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn page_text(app: &TestApp, s: &Session, path: &str) -> String {
    let resp = app.http.get(format!("{}{path}", app.base)).header("cookie", &s.cookie).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

/// Waits until `/metrics` shows `name` at `value` (the self-check runs in the background).
async fn wait_metric(app: &TestApp, name: &str, value: f64) {
    wait_until(&format!("{name} to become {value}"), || async {
        (metric(app, name).await == Some(value)).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_check_reports_damage_in_metrics_and_to_admins() {
    let app = crate::helpers::admin_with(Backend::Sqlite, |s| {
        s.self_check_interval = Duration::from_millis(100);
        s.checkpoint_interval = Duration::from_millis(50);
    })
    .await
    .unwrap();
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, analyst) = app.user(&admin, "ann@example.com", "analyst").await;
    let org = app.org().await;
    let size = app.store.log_head(org.id).await.unwrap().size;
    assert!(size >= 3, "setup, sign-in and the new user are in the log");

    // Healthy: the check passes and covers the whole log once its checkpoint is signed.
    wait_metric(&app, "logbook_self_check_verified_size", size as f64).await;
    assert_eq!(metric(&app, "logbook_self_check_ok").await, Some(1.0));
    assert_eq!(metric(&app, "logbook_self_check_failures_total").await, Some(0.0));
    assert!(metric(&app, "logbook_self_check_last_success_timestamp_seconds").await.unwrap() > 1.7e9);
    let settings = page_text(&app, &admin, "/settings").await;
    assert!(settings.contains("Self-check") && settings.contains("Passed: the log matches"), "{settings}");
    assert!(!page_text(&app, &admin, "/account").await.contains("Integrity self-check failed"));

    // An attacker with the file changes one byte of the first event.
    let db = rusqlite::Connection::open(app.dir().join(logbook_store_sqlite::FILE_NAME)).unwrap();
    db.execute_batch("DROP TRIGGER events_append_only_update").unwrap();
    let leaf: Vec<u8> = db.query_row("SELECT leaf FROM events WHERE seq = 1", [], |r| r.get(0)).unwrap();
    let mut bad = leaf.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    db.execute("UPDATE events SET leaf = ?1 WHERE seq = 1", [&bad]).unwrap();

    wait_metric(&app, "logbook_self_check_ok", 0.0).await;
    assert!(metric(&app, "logbook_self_check_failures_total").await.unwrap() >= 1.0);
    let settings = page_text(&app, &admin, "/settings").await;
    assert!(settings.contains("Self-check FAILED"), "{settings}");
    assert!(settings.contains("DAMAGED") && settings.contains("first bad seq 1"), "{settings}");
    assert!(settings.contains("role=\"alert\""), "{settings}");
    let account = page_text(&app, &admin, "/account").await;
    assert!(account.contains("Integrity self-check failed"), "admins see the banner on every page: {account}");
    let account = page_text(&app, &analyst, "/account").await;
    assert!(!account.contains("Integrity self-check failed"), "only admins see it");

    // Restored: the next run passes again.
    db.execute("UPDATE events SET leaf = ?1 WHERE seq = 1", [&leaf]).unwrap();
    wait_metric(&app, "logbook_self_check_ok", 1.0).await;
    assert!(!page_text(&app, &admin, "/account").await.contains("Integrity self-check failed"));
}

/// `/metrics` as name → value, for the metrics without labels.
async fn metrics(app: &TestApp) -> std::collections::HashMap<String, f64> {
    let text = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_self_check_shows_its_runs_and_coverage_and_raises_the_alarm() {
    // Only the full check runs (the continuous one is off), every second, on the system clock.
    let app = TestApp::builder(Backend::Sqlite)
        .settings(|s| {
            s.self_check_interval = Duration::ZERO;
            s.full_self_check_interval = Duration::from_secs(1);
        })
        .spawn()
        .await
        .unwrap();
    app.set_up_admin(ADMIN, PASSWORD).await;
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let org = app.org().await;
    let size = app.size().await;
    app.checkpoint_covering(&org, size).await;

    // A passed run that covered the whole log it was checked against.
    let m = wait_until("a full self-check run to pass", || async {
        let m = metrics(&app).await;
        let passed = m.get("logbook_full_self_check_ok") == Some(&1.0)
            && m.get("logbook_full_self_check_log_size").is_some_and(|s| *s >= size as f64)
            && m.get("logbook_full_self_check_checked_events") == m.get("logbook_full_self_check_log_size");
        passed.then_some(m)
    })
    .await;
    assert!(m["logbook_full_self_check_runs_total"] >= 1.0);
    assert_eq!(m["logbook_full_self_check_failures_total"], 0.0);
    assert_eq!(m["logbook_full_self_check_first_bad_seq"], -1.0);
    assert!(m["logbook_full_self_check_last_success_timestamp_seconds"] > 1.7e9);
    assert!(m["logbook_full_self_check_last_start_timestamp_seconds"] > 1.7e9);
    assert!(m["logbook_full_self_check_last_end_timestamp_seconds"] > 1.7e9);
    let settings = page_text(&app, &admin, "/settings").await;
    assert!(settings.contains("Full self-check") && settings.contains("Every 1 seconds"), "{settings}");
    assert!(settings.contains("intact") && settings.contains("entries checked (100%)"), "{settings}");
    assert!(settings.contains("started ") && settings.contains(", finished "), "{settings}");

    // The oldest entry edited in the database: the full check finds it and raises the alarm.
    let db = rusqlite::Connection::open(app.dir().join(logbook_store_sqlite::FILE_NAME)).unwrap();
    db.execute_batch("DROP TRIGGER events_append_only_update").unwrap();
    let leaf: Vec<u8> = db.query_row("SELECT leaf FROM events WHERE seq = 0", [], |r| r.get(0)).unwrap();
    let mut e = logbook_core::leaf::decode(&leaf).unwrap();
    e.body.details = "forged".into();
    db.execute("UPDATE events SET leaf = ?1 WHERE seq = 0", [logbook_core::leaf::encode(&e)]).unwrap();
    wait_metric(&app, "logbook_full_self_check_first_bad_seq", 0.0).await;
    let m = metrics(&app).await;
    assert_eq!((m["logbook_full_self_check_ok"], m["logbook_self_check_ok"]), (0.0, 0.0));
    assert!(m["logbook_full_self_check_failures_total"] >= 1.0 && m["logbook_self_check_failures_total"] >= 1.0);
    let settings = page_text(&app, &admin, "/settings").await;
    assert!(settings.contains("Full self-check FAILED") && settings.contains("first bad seq 0"), "{settings}");
    let account = page_text(&app, &admin, "/account").await;
    assert!(account.contains("Integrity self-check failed"), "the admins' banner: {account}");
}
