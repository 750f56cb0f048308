//! The storage contract on PostgreSQL, plus what only PostgreSQL can show: append-only enforced
//! by the database, a role with only INSERT and SELECT on the audit tables, and refusal to start
//! on a non-durable server.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use logbook_store::contract::{LogWriter, SharedStore};
use logbook_store::{contract_tests, Store};
use logbook_store_postgres::PgStore;
use logbook_test_support::{fresh_database, PATIENCE};
use tokio_postgres::NoTls;

async fn fresh() -> Option<SharedStore> {
    let url = fresh_database().await?;
    Some(Arc::new(PgStore::connect(&url).await.expect("connect")))
}

contract_tests!(fresh);

async fn raw(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

#[tokio::test]
async fn the_database_itself_refuses_update_delete_and_truncate() {
    let Some(url) = fresh_database().await else { return };
    let store = PgStore::connect(&url).await.unwrap();
    let org =
        store.ensure_org(&logbook_core::OrgSlug::default_org(), logbook_core::Timestamp::from_micros(1)).await.unwrap();
    store.commit(org.id, LogWriter::new(org.id, &org.slug).batch(300)).await.unwrap();
    let signed_at = logbook_core::Timestamp::from_micros(1);
    let cp = logbook_store::StoredCheckpoint { size: 300, root: [0; 32], note: "n\n".into(), signed_at };
    store.add_checkpoint(org.id, &cp).await.unwrap();
    let cosignature = logbook_store::StoredCosignature {
        size: 300,
        witness: "w.example".into(),
        key_id: 1,
        line: "\u{2014} w.example AAAA\n".into(),
        cosigned_at: 1,
        received_at: signed_at,
    };
    store.add_cosignature(org.id, &cosignature).await.unwrap();
    let c = raw(&url).await;
    for sql in [
        "UPDATE events SET \"user\" = 'mallory' WHERE seq = 3",
        "DELETE FROM events WHERE seq = 299",
        "TRUNCATE events",
        "UPDATE tiles SET hashes = '\\x00'",
        "DELETE FROM tiles",
        "TRUNCATE checkpoints",
        "UPDATE cosignatures SET line = 'x'",
        "DELETE FROM cosignatures",
        "TRUNCATE cosignatures",
    ] {
        let err = c.batch_execute(sql).await.expect_err(sql).to_string();
        let detail = c.batch_execute("SELECT 1").await.map(|_| err.clone()).unwrap_or(err);
        assert!(detail.contains("db error"), "{sql}: {detail}");
    }
    let n: i64 = c.query_one("SELECT COUNT(*) FROM events", &[]).await.unwrap().get(0);
    assert_eq!(n, 300);
}

#[tokio::test]
async fn a_role_with_only_insert_and_select_runs_logbook_and_cannot_change_history() {
    let Some(url) = fresh_database().await else { return };
    // Schema made by the owner, as the README describes.
    drop(PgStore::connect(&url).await.unwrap());
    let owner = raw(&url).await;
    let role = format!("logbook_app_{}", std::process::id());
    let db = url.rsplit('/').next().unwrap().to_owned();
    owner
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role};
             CREATE ROLE {role} LOGIN;
             GRANT CONNECT ON DATABASE {db} TO {role};
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT, INSERT ON events, tiles, checkpoints, cosignatures TO {role};
             GRANT SELECT, INSERT, UPDATE ON orgs, api_tokens, idempotency_keys, search_progress TO {role};
             GRANT SELECT, INSERT ON event_search TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON users, sessions, session_views, invitations, protected_users, settings, sign_in_throttle, pending_sign_ins TO {role};
             GRANT SELECT ON logbook_migrations TO {role};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};"
        ))
        .await
        .unwrap();
    let app_url = url.replacen("postgres@", &format!("{role}@"), 1);
    let store = PgStore::connect(&app_url).await.expect("the restricted role can run Logbook");
    let org =
        store.ensure_org(&logbook_core::OrgSlug::default_org(), logbook_core::Timestamp::from_micros(1)).await.unwrap();
    let mut w = LogWriter::new(org.id, &org.slug);
    store.commit(org.id, w.batch(10)).await.unwrap();
    store.commit(org.id, w.batch(300)).await.unwrap();
    assert_eq!(store.log_head(org.id).await.unwrap().size, 310);
    // Account changes (rows that do change) and the search index work too.
    let mut batch = w.batch(1);
    batch.mutations.push(logbook_store::MutationEntry {
        first_seq: 310,
        count: 1,
        mutation: logbook_store::Mutation::Account(logbook_store::AccountMutation::CreateUser {
            id: logbook_core::UserId(7),
            email: "ada@example.com".into(),
            role: logbook_core::Role::Admin,
            password_hash: logbook_store::accounts::PasswordHash("h".into()),
            only_if_first: true,
        }),
    });
    store.commit(org.id, batch).await.unwrap();
    let mut batch = w.batch(1);
    batch.mutations.push(logbook_store::MutationEntry {
        first_seq: 311,
        count: 1,
        mutation: logbook_store::Mutation::Account(logbook_store::AccountMutation::CreateSession {
            user: logbook_core::UserId(7),
            token_hash: [1; 32],
            expires: logbook_core::Timestamp::from_micros(i64::MAX),
            totp_step: None,
            pending: None,
            attempt_lock: None,
            address: None,
            user_agent: None,
        }),
    });
    store.commit(org.id, batch).await.unwrap();
    logbook_store::AccountStore::touch_session(&store, &[1; 32], logbook_core::Timestamp::from_micros(5))
        .await
        .unwrap();
    while store.index_search_text(org.id, 1000).await.unwrap() > 0 {}
    assert_eq!(store.search_indexed(org.id).await.unwrap(), 312);
    // So does the sign-in throttle (counted, read and pruned).
    let t = logbook_core::Timestamp::from_micros;
    assert_eq!(
        logbook_store::AccountStore::count_sign_in_attempt(&store, org.id, "192.0.2.1", t(10), t(0), 5).await.unwrap(),
        Some(1)
    );
    assert_eq!(logbook_store::AccountStore::sign_in_failures(&store, org.id, "192.0.2.1", t(0)).await.unwrap(), 1);
    assert_eq!(logbook_store::AccountStore::prune_sign_in_failures(&store, t(11)).await.unwrap(), 1);
    // And the lockout's and the pending sign-ins' statements.
    let user = logbook_core::UserId(7);
    let attempt =
        logbook_store::AccountStore::count_login_attempt(&store, org.id, user, t(10), 1, t(20)).await.unwrap().unwrap();
    logbook_store::AccountStore::give_back_login_attempt(&store, org.id, user, &attempt).await.unwrap();
    logbook_store::AccountStore::add_pending_sign_in(&store, org.id, user, &[2; 32], t(10), t(20)).await.unwrap();
    assert_eq!(
        logbook_store::AccountStore::count_pending_attempt(&store, org.id, &[2; 32], t(11), 5).await.unwrap(),
        Some((user, 1))
    );

    // Even with the triggers gone, the role cannot change or remove an event.
    owner
        .batch_execute("DROP TRIGGER events_append_only ON events; DROP TRIGGER events_no_truncate ON events")
        .await
        .unwrap();
    let app = raw(&app_url).await;
    for sql in [
        "UPDATE events SET \"user\" = 'x'",
        "DELETE FROM events",
        "TRUNCATE events",
        "DELETE FROM tiles",
        "UPDATE checkpoints SET size = 0",
    ] {
        let err = app.batch_execute(sql).await.expect_err(sql);
        assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "{sql}: {err}");
    }
    drop(store);
    drop(app);
    owner.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}")).await.ok();
}

#[tokio::test]
async fn two_stores_starting_together_migrate_once() {
    let Some(url) = fresh_database().await else { return };
    let (a, b) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
    a.unwrap();
    b.unwrap();
    let c = raw(&url).await;
    let n: i64 = c.query_one("SELECT COUNT(*) FROM logbook_migrations", &[]).await.unwrap().get(0);
    assert_eq!(n, logbook_store_postgres::MIGRATION_COUNT as i64, "each migration applied once");
}

#[tokio::test]
async fn a_store_from_before_search_is_upgraded_and_backfilled() {
    let Some(url) = fresh_database().await else { return };
    let slug = logbook_core::OrgSlug::default_org();
    {
        let store = PgStore::connect(&url).await.unwrap();
        let org = store.ensure_org(&slug, logbook_core::Timestamp::from_micros(1)).await.unwrap();
        store.commit(org.id, LogWriter::new(org.id, &slug).batch(500)).await.unwrap();
    }
    // Back to version 2, as a store made before free-text search (and the sign-in throttle).
    let c = raw(&url).await;
    c.batch_execute(
        "DROP TABLE event_search; DROP TABLE search_progress; DROP TABLE sign_in_throttle; DROP TABLE pending_sign_ins;
         ALTER TABLE sessions DROP COLUMN address, DROP COLUMN user_agent;
         DROP TABLE service_actions; ALTER TABLE api_tokens DROP COLUMN actions;
         DROP TABLE cosignatures; DROP TABLE self_check;
         DELETE FROM logbook_migrations WHERE version >= 3",
    )
    .await
    .unwrap();
    let store = PgStore::connect(&url).await.unwrap();
    let org = store.org(&slug).await.unwrap().unwrap();
    logbook_store::contract::upgraded_search_finds_before_and_after_backfill(&store, org.id).await;
}

#[tokio::test]
async fn a_malformed_url_is_a_clear_error() {
    let err = PgStore::connect("postgres://[bad").await.unwrap_err().to_string();
    assert!(err.contains("malformed"), "{err}");
    assert!(!err.contains("[bad"), "the URL (which may hold a password) is not echoed: {err}");
}

#[tokio::test]
async fn the_log_lock_is_held_across_processes() {
    let Some(url) = fresh_database().await else { return };
    let a = PgStore::connect(&url).await.unwrap();
    let b = PgStore::connect(&url).await.unwrap();
    let org =
        a.ensure_org(&logbook_core::OrgSlug::default_org(), logbook_core::Timestamp::from_micros(1)).await.unwrap();
    let held = a.lock_log(org.id).await.unwrap();
    // A window in which the lock must not be granted (it never is, whatever the machine's load).
    let waiting = tokio::time::timeout(std::time::Duration::from_millis(300), b.lock_log(org.id)).await;
    assert!(waiting.is_err(), "a second process waits while the first holds the lock");
    held.unlock().await;
    let got = tokio::time::timeout(PATIENCE, b.lock_log(org.id)).await;
    got.expect("the lock passes on once released").unwrap().unlock().await;
    // Another log's lock is independent.
    let other = a
        .ensure_org(&logbook_core::OrgSlug::parse("acme").unwrap(), logbook_core::Timestamp::from_micros(1))
        .await
        .unwrap();
    let l1 = a.lock_log(org.id).await.unwrap();
    let l2 = tokio::time::timeout(PATIENCE, b.lock_log(other.id)).await.unwrap().unwrap();
    l1.unlock().await;
    l2.unlock().await;
}

/// A needle that only old events hold is found through the trigram index in one query, not by
/// walking every newer row (the path only a large log takes).
#[tokio::test]
async fn a_rare_needle_far_back_is_found_through_the_trigram_index() {
    let Some(url) = fresh_database().await else { return };
    let store = PgStore::connect(&url).await.unwrap();
    let slug = logbook_core::OrgSlug::default_org();
    let org = store.ensure_org(&slug, logbook_core::Timestamp::from_micros(1)).await.unwrap();
    let mut w = LogWriter::new(org.id, &slug);
    let total = 300_000u64;
    for start in (0..total).step_by(50_000) {
        let events: Vec<_> = (start..start + 50_000)
            .map(|s| {
                let user = if s == 5 || s == 76 { "vip.rare@example.com".to_owned() } else { LogWriter::user_of(s) };
                w.event_with(s, &user, LogWriter::action_of(s))
            })
            .collect();
        let tiles = w.edge.append_all(events.iter().map(|e| logbook_integrity::Hash(e.leaf_hash)));
        let batch = logbook_store::CommitBatch {
            base_size: start,
            events,
            tiles,
            mutations: Vec::new(),
            now: logbook_core::Timestamp::from_micros(w.time),
        };
        store.commit(org.id, batch).await.unwrap();
    }
    while store.index_search_text(org.id, 50_000).await.unwrap() > 0 {}
    let filter = logbook_store::EventFilter { text: Some("VIP.RARE".into()), ..Default::default() };
    let started = std::time::Instant::now();
    let page = store.query_events(org.id, &filter, u64::MAX, 50).await.unwrap();
    let took = started.elapsed();
    assert_eq!(page.rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [76, 5]);
    assert_eq!(page.next_before, None, "nothing older is left");
    let with_user = logbook_store::EventFilter {
        text: Some("rare@".into()),
        user: Some("vip.rare@example.com".into()),
        actions: vec![LogWriter::action_of(76).code().into()],
        ..Default::default()
    };
    let page = store.query_events(org.id, &with_user, u64::MAX, 50).await.unwrap();
    assert_eq!(page.rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [76], "other filters still apply");
    eprintln!("rare needle over {total} events: {took:?}");
}

#[tokio::test]
async fn a_database_error_says_why_and_keeps_the_driver_error() {
    let Some(url) = fresh_database().await else { return };
    let missing = format!("{}_missing", url);
    let err = PgStore::connect(&missing).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("connecting to PostgreSQL") && text.contains("does not exist"), "{text}");
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut found = false;
    while let Some(e) = cause {
        found |= e.downcast_ref::<tokio_postgres::Error>().is_some();
        cause = e.source();
    }
    assert!(found, "the driver's error is a source: {err:?}");
}

/// A read past its deadline is stopped by the server itself (`statement_timeout`), not only
/// abandoned by the client: here it waits for a lock that is never released, and no statement
/// is left waiting afterwards.
#[tokio::test]
async fn a_read_past_its_deadline_is_cancelled_by_the_server() {
    let Some(url) = fresh_database().await else { return };
    let store = PgStore::connect(&url).await.unwrap();
    let org =
        store.ensure_org(&logbook_core::OrgSlug::default_org(), logbook_core::Timestamp::from_micros(1)).await.unwrap();
    store.commit(org.id, LogWriter::new(org.id, &org.slug).batch(10)).await.unwrap();
    let locker = raw(&url).await;
    locker.batch_execute("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let filter = logbook_store::EventFilter::default();
    let deadline = std::time::Duration::from_millis(300);
    let got = tokio::time::timeout(PATIENCE, store.query_events_within(org.id, &filter, u64::MAX, 50, deadline)).await;
    assert!(matches!(got, Ok(Err(logbook_store::StoreError::Deadline))), "{got:?}");
    let waiting =
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
    logbook_test_support::wait_until("the server to cancel the read", || async {
        (locker.query_one(waiting, &[]).await.unwrap().get::<_, i64>(0) == 0).then_some(())
    })
    .await;
    locker.batch_execute("ROLLBACK").await.unwrap();
    // Without a deadline worth the name, the same read answers.
    let page = store.query_events_within(org.id, &filter, u64::MAX, 50, PATIENCE).await.unwrap();
    assert_eq!(page.rows.len(), 10);
}
