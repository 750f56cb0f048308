//! Two `logbook serve` processes on one PostgreSQL database: appends through both form one
//! gapless log with one consistent series of checkpoints, and killing one mid-load loses no
//! acknowledged event.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::io::Write as _;

use common::*;
use logbook_store_postgres::PgStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_one_gapless_log_and_a_kill_loses_nothing() {
    // `None` once the skip has been reported (or a failure where PostgreSQL is required).
    let Some(url) = fresh_database().await else { return };
    let keys = tempfile::tempdir().unwrap();
    let dir = keys.path().to_str().unwrap();
    let o = run(&[
        "admin",
        "create-token",
        "--database-url",
        &url,
        "--data-dir",
        dir,
        "--name",
        "svc",
        "--actions",
        "login.*",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_owned();

    let mut create = bin()
        .args(["admin", "create", "--database-url", &url, "--data-dir", dir, "--email", ADMIN, "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    create.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    assert!(create.wait().unwrap().success());

    let args = ["--database-url", url.as_str(), "--data-dir", dir];
    let mut a = start(&args);
    let b = start(&args);

    // Sessions live in the database: signed in through one process, signed in on both.
    // A generous bound: a request to the killed process fails at once (connection refused).
    let http = reqwest::Client::builder().timeout(logbook_test_support::PATIENCE).build().unwrap();
    let cookie = sign_in(&http, &a.base).await.expect("sign-in through a");
    let me = http.get(format!("{}/api/v1/session", b.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(me.status(), 200, "a session made by one process works on the other");

    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(vec![a.base.clone(), b.base.clone()], &token, &acked, &stop, "mp");
    // Sign-ins through both processes, beside the appends.
    let signed_in = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sign_ins = {
        let (http, bases, stop, signed_in) =
            (http.clone(), [a.base.clone(), b.base.clone()], stop.clone(), signed_in.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                if sign_in(&http, &bases[i % 2]).await.is_some() {
                    signed_in.fetch_add(1, Ordering::SeqCst);
                }
                i += 1;
            }
        })
    };
    // Both processes take appends and sign-ins before one of them is killed (the load goes to
    // both in turn)…
    let acknowledged = || acked.acked.lock().unwrap().len();
    wait_until("appends and sign-ins through both processes", || async {
        (acknowledged() >= 200 && signed_in.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    a.child.kill().unwrap(); // SIGKILL, mid-load
    a.child.wait().unwrap();
    // …and the survivor takes more after the kill.
    let at_kill = acknowledged();
    wait_until("appends through the surviving process", || async { (acknowledged() >= at_kill + 100).then_some(()) })
        .await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    sign_ins.await.unwrap();
    let me = http.get(format!("{}/api/v1/session", b.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(me.status(), 200, "the session made through the killed process still works");
    terminate(b);

    let through_b = acked.acked.lock().unwrap().len();
    assert!(through_b > 100, "both processes took appends: {through_b} acknowledged");
    let store = PgStore::connect(&url).await.unwrap();
    let size = check_acknowledged(&store, &acked).await;
    let org = logbook_store::Store::org(&store, &logbook_core::OrgSlug::default_org()).await.unwrap().unwrap();
    let events = logbook_store::Store::events(&store, org.id, 0..size).await.unwrap();
    let logins = events
        .iter()
        .map(|r| logbook_core::leaf::decode(&r.leaf).unwrap())
        .filter(|e| e.body.action == logbook_core::Action::LoginSuccess && e.user() == ADMIN)
        .count() as u64;
    let acknowledged_logins = signed_in.load(Ordering::SeqCst) + 1;
    assert!(acknowledged_logins > 2, "sign-ins went through: {acknowledged_logins}");
    assert!(logins >= acknowledged_logins, "every acknowledged sign-in is recorded: {logins} < {acknowledged_logins}");
    let o = run(&["verify", "--database-url", &url, "--data-dir", dir]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&format!("intact — {size} events")), "{}", stdout(&o));
    eprintln!("two processes: {through_b} acknowledged events, log size {size}");
}

const ADMIN: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery staple";

/// Signs in through `base`; the session cookie, or `None` if the process did not answer.
async fn sign_in(http: &reqwest::Client, base: &str) -> Option<String> {
    let resp = http
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    Some(resp.headers().get("set-cookie")?.to_str().ok()?.split(';').next()?.to_owned())
}
