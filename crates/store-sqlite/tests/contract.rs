//! The storage contract on SQLite, plus what only SQLite can show: its own refusal to change
//! or delete audit data.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use logbook_store::contract::{LogWriter, SharedStore};
use logbook_store::{contract_tests, Store};
use logbook_store_sqlite::SqliteStore;

async fn fresh() -> Option<SharedStore> {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    Some(Arc::new(SqliteStore::open(&dir).await.expect("open")))
}

contract_tests!(fresh);

#[tokio::test]
async fn the_database_itself_refuses_update_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let org =
        store.ensure_org(&logbook_core::OrgSlug::default_org(), logbook_core::Timestamp::from_micros(1)).await.unwrap();
    let mut w = LogWriter::new(org.id, &org.slug);
    store.commit(org.id, w.batch(300)).await.unwrap();
    store
        .add_checkpoint(
            org.id,
            &logbook_store::StoredCheckpoint {
                size: 300,
                root: [0; 32],
                note: "n\n".into(),
                signed_at: logbook_core::Timestamp::from_micros(1),
            },
        )
        .await
        .unwrap();
    store
        .add_cosignature(
            org.id,
            &logbook_store::StoredCosignature {
                size: 300,
                witness: "w.example".into(),
                key_id: 1,
                line: "\u{2014} w.example AAAA\n".into(),
                cosigned_at: 1,
                received_at: logbook_core::Timestamp::from_micros(1),
            },
        )
        .await
        .unwrap();

    // Straight through SQLite, as someone with the file would try.
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    for sql in [
        "UPDATE events SET user = 'mallory' WHERE seq = 3",
        "DELETE FROM events WHERE seq = 299",
        "DELETE FROM events",
        "UPDATE tiles SET hashes = x'00'",
        "DELETE FROM tiles",
        "UPDATE checkpoints SET size = 1",
        "DELETE FROM checkpoints",
        "UPDATE cosignatures SET line = 'x'",
        "DELETE FROM cosignatures",
    ] {
        let err = conn.execute(sql, []).expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 300);
}

#[tokio::test]
async fn reopening_keeps_everything_and_does_not_migrate_twice() {
    let dir = tempfile::tempdir().unwrap();
    let slug = logbook_core::OrgSlug::default_org();
    {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let org = store.ensure_org(&slug, logbook_core::Timestamp::from_micros(1)).await.unwrap();
        store.commit(org.id, LogWriter::new(org.id, &slug).batch(10)).await.unwrap();
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let org = store.org(&slug).await.unwrap().unwrap();
    assert_eq!(store.log_head(org.id).await.unwrap().size, 10);
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_store_from_before_search_is_upgraded_and_backfilled() {
    let dir = tempfile::tempdir().unwrap();
    let slug = logbook_core::OrgSlug::default_org();
    {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let org = store.ensure_org(&slug, logbook_core::Timestamp::from_micros(1)).await.unwrap();
        store.commit(org.id, LogWriter::new(org.id, &slug).batch(500)).await.unwrap();
        // Back to version 2, as a store made before free-text search (and the sign-in throttle).
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        conn.execute_batch(
            "DROP TABLE event_search; DROP TABLE search_progress; DROP TABLE sign_in_throttle; DROP TABLE pending_sign_ins;
             ALTER TABLE sessions DROP COLUMN address; ALTER TABLE sessions DROP COLUMN user_agent;
             DROP TABLE service_actions; ALTER TABLE api_tokens DROP COLUMN actions;
             DROP TABLE cosignatures; DROP TABLE self_check;
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let org = store.org(&slug).await.unwrap().unwrap();
    logbook_store::contract::upgraded_search_finds_before_and_after_backfill(&store, org.id).await;
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, 9, "every later migration applied");
}

#[tokio::test]
async fn a_storage_error_says_why_and_keeps_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = SqliteStore::open(&file.join("data")).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("storage backend error: creating "), "{text}");
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut found = false;
    while let Some(e) = cause {
        found |= e.downcast_ref::<std::io::Error>().is_some();
        cause = e.source();
    }
    assert!(found, "the I/O error is a source: {err:?}");

    // A driver error keeps rusqlite's error as its source.
    let err = SqliteStore::open_file(dir.path()).await.unwrap_err();
    let source = std::error::Error::source(&err).expect("a source");
    assert!(source.downcast_ref::<rusqlite::Error>().is_some(), "{err:?}");
}
