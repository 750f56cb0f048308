//! `logbook admin create-token --actions` (issue 12, item 4): the token may record what the
//! list names, the default is service codes only, a bad list is refused, and the grant is on
//! record in the `api_token.created` event. On SQLite, and on PostgreSQL when available.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// Runs the commands against the store that `global` names.
fn create_token_grants_what_it_lists(global: &[&str]) {
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(global);
        run(&all)
    };
    let o = run(&["admin", "create-token", "--name", "sso", "--actions", "login.*, actor:system"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).trim().starts_with("lbk_"), "the secret on stdout");
    assert!(stderr(&o).contains("allowed to record: login.*,actor:system"), "{}", stderr(&o));
    let o = run(&["admin", "create-token", "--name", "svc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("allowed to record: *"), "the default is service codes only: {}", stderr(&o));
    let o = run(&["admin", "create-token", "--name", "bad", "--actions", "Login.*"]);
    assert!(!o.status.success(), "a bad list is refused");
    assert!(stderr(&o).contains("Login.*"), "{}", stderr(&o));

    let listed = stdout(&run(&["admin", "list-tokens"]));
    assert!(listed.lines().any(|l| l.starts_with("sso\t") && l.ends_with("actions login.*,actor:system")), "{listed}");
    assert!(listed.lines().any(|l| l.starts_with("svc\t") && l.ends_with("actions *")), "{listed}");
    assert!(!listed.contains("bad\t"), "{listed}");

    // The grant is recorded with the token's creation.
    let o = run(&["export", "--format", "ndjson", "--action", "api_token.created"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let created: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let grant = |name: &str| {
        created.iter().find(|e| e["target"]["id"] == name).map(|e| e["fields"]["actions"].clone()).unwrap()
    };
    assert_eq!(grant("sso"), "login.*,actor:system");
    assert_eq!(grant("svc"), "*");
}

#[test]
fn create_token_actions_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    create_token_grants_what_it_lists(&["--data-dir", dir.path().to_str().unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_token_actions_on_postgres() {
    // `None` once the skip has been reported (or a failure where PostgreSQL is required).
    let Some(url) = fresh_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || create_token_grants_what_it_lists(&["--database-url", &url, "--data-dir", &d]))
        .await
        .unwrap();
}
