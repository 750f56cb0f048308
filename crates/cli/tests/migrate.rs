//! `logbook migrate-store` copies a SQLite store to PostgreSQL and proves the copy has the same
//! roots; the copy then serves, with the same tokens.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_keeps_roots_checkpoints_and_tokens() {
    // `None` once the skip has been reported (or a failure where PostgreSQL is required).
    let Some(pg) = fresh_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    append_range(dir.path(), 0..3000, 700).await;
    let o = run(&["admin", "create-token", "--data-dir", d, "--name", "svc", "--actions", "logout"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_owned();
    append_range(dir.path(), 3000..3500, 100).await;

    let sqlite = format!("sqlite://{}", db_path(dir.path()).display());
    let o = run(&["migrate-store", "--from", &sqlite, "--to", &pg, "--data-dir", d]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("default: 3501 events"), "{}", stdout(&o));
    assert!(stdout(&o).contains("roots match"), "{}", stdout(&o));

    let o = run(&["verify", "--database-url", &pg, "--data-dir", d]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    // Copying again into the now non-empty destination is refused, clearly.
    let o = run(&["migrate-store", "--from", &sqlite, "--to", &pg, "--data-dir", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already holds 3501 events"), "{}", stderr(&o));

    // The copy serves, continues the same log, and knows the same token.
    let server = start(&["--database-url", &pg, "--data-dir", d]);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/events", server.base))
        .bearer_auth(&token)
        .json(
            &serde_json::json!({"action": "logout", "actor": {"type": "user", "id": "u"}, "details": "after the move"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["seqs"], serde_json::json!([3501]));
    terminate(server);
    let o = run(&["verify", "--database-url", &pg, "--data-dir", d]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}
