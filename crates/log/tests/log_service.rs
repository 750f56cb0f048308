//! The log service on a real (SQLite) store.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use logbook_core::{
    Action, ActionGrant, Actor, ActorKind, ManualClock, NewEvent, OrgSlug, Outcome, SeededRandom, Source, Timestamp,
};
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_log::audit::audit_org;
use logbook_log::{AppendError, LogConfig, LogService};
use logbook_store::Store;
use logbook_store_sqlite::SqliteStore;
use logbook_test_support::within;

fn event(i: usize) -> NewEvent {
    NewEvent {
        action: Action::LoginSuccess.into(),
        actor: Actor {
            kind: ActorKind::User,
            id: format!("u{}", i % 5),
            email: Some(format!("user{}@example.com", i % 5)),
        },
        target: None,
        details: "Method: password".into(),
        fields: [("method".to_string(), "password".to_string())].into(),
        outcome: Outcome::Success,
        source: Source { via: None, ip: Some([198, 51, 100, 7].into()), user_agent: Some("test".into()) },
        recorded_by: "test".into(),
    }
}

struct Fixture {
    log: Arc<LogService>,
    clock: Arc<ManualClock>,
    store: Arc<SqliteStore>,
}

async fn fixture(dir: &Path, witness: Option<&Path>, interval: Duration) -> Fixture {
    let store = Arc::new(SqliteStore::open(dir).await.unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_764_000_000_000_000)));
    let signer = Arc::new(CheckpointSigner::generate(&SeededRandom::new(7), "logbook.test").unwrap());
    let config = LogConfig {
        origin_prefix: "logbook.test".into(),
        checkpoint_interval: interval,
        max_batch_events: 10_000,
        witness_dir: witness.map(Path::to_owned),
        ..LogConfig::default()
    };
    let log = LogService::new(store.clone(), clock.clone(), Arc::new(SeededRandom::new(1)), signer, config);
    Fixture { log, clock, store }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_gapless_and_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), None, Duration::from_secs(1)).await;
    let org = f.log.org(&OrgSlug::default_org()).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let log = f.log.clone();
        let org = org.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..20 {
                let a = log.append(&org, vec![event(t * 100 + i)], None).await.unwrap();
                seqs.push(a.first_seq);
            }
            seqs
        }));
    }
    let mut all: Vec<u64> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (0..1280).collect::<Vec<_>>(), "every append got its own seq, none missing");
    let commits = f.log.metrics().commits.get();
    assert!(commits < 1280, "64 concurrent appenders should share commits, got {commits} commits for 1280 events");
    let head = f.store.log_head(org.id).await.unwrap();
    assert_eq!(head.size, 1280);
}

#[tokio::test]
async fn time_never_goes_backwards_even_when_the_clock_does() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), None, Duration::from_secs(1)).await;
    let org = f.log.org(&OrgSlug::default_org()).await.unwrap();
    f.log.append(&org, vec![event(0)], None).await.unwrap();
    f.clock.advance_micros(-60_000_000);
    f.log.append(&org, vec![event(1)], None).await.unwrap();
    let rows = f.store.events(org.id, 0..2).await.unwrap();
    assert!(rows[1].time >= rows[0].time, "{:?} then {:?}", rows[0].time, rows[1].time);
}

#[tokio::test]
async fn invalid_or_empty_submissions_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), None, Duration::from_secs(1)).await;
    let org = f.log.org(&OrgSlug::default_org()).await.unwrap();
    let mut bad = event(0);
    bad.details = "x".repeat(5000);
    assert!(matches!(f.log.append(&org, vec![event(1), bad], None).await, Err(AppendError::Invalid(_))));
    assert!(matches!(f.log.append(&org, vec![], None).await, Err(AppendError::Empty)));
    assert_eq!(f.store.log_head(org.id).await.unwrap().size, 0);
}

#[tokio::test]
async fn checkpoints_witness_proofs_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let witness = tempfile::tempdir().unwrap();
    let slug = OrgSlug::default_org();
    let (first_cp, verifier) = {
        let f = fixture(dir.path(), Some(witness.path()), Duration::from_millis(50)).await;
        let org = f.log.org(&slug).await.unwrap();
        for chunk in 0..10 {
            let events = (0..100).map(|i| event(chunk * 100 + i)).collect();
            f.log.append(&org, events, None).await.unwrap();
        }
        // A checkpoint follows within the interval, without a further append; the service says
        // when it has signed, stored and witnessed it.
        wait_for_checkpoint(&f, &org, 1000).await;
        let cp = f.log.latest_checkpoint(&org).await.unwrap().filter(|c| c.size == 1000);
        let cp = cp.expect("a checkpoint of size 1000");
        let verifier = f.log.signer().verifier();
        let v = verifier.verify(&cp.note).unwrap();
        assert_eq!((v.origin.as_str(), v.size), ("logbook.test/default", 1000));
        let witnessed = std::fs::read_to_string(witness.path().join("default.checkpoint")).unwrap();
        assert_eq!(witnessed, cp.note, "the witness holds the newest checkpoint");

        for seq in [0, 255, 256, 999] {
            let p = f.log.inclusion_proof(&org, seq, None).await.unwrap();
            p.verify_against(&v).unwrap();
        }
        // Appends after the last checkpoint are covered by the one signed at shutdown.
        f.log.append(&org, vec![event(5000)], None).await.unwrap();
        f.log.shutdown().await;
        assert!(matches!(f.log.append(&org, vec![event(1)], None).await, Err(AppendError::ShuttingDown)));
        assert_eq!(f.log.latest_checkpoint(&org).await.unwrap().unwrap().size, 1001);
        (v, verifier)
    };

    // A new process on the same store carries on from the stored edge.
    let f = fixture(dir.path(), Some(witness.path()), Duration::from_millis(50)).await;
    f.log.start_all().await.unwrap();
    let org = f.log.org(&slug).await.unwrap();
    let a = f.log.append(&org, (0..300).map(event).collect(), None).await.unwrap();
    assert_eq!(a.seqs(), 1001..1301);
    f.log.shutdown().await;
    let latest = verifier.verify(&f.log.latest_checkpoint(&org).await.unwrap().unwrap().note).unwrap();
    assert_eq!(latest.size, 1301);
    let c = f.log.consistency_proof(&org, first_cp.size, Some(latest.size)).await.unwrap();
    assert_eq!((c.old_root, c.new_root), (first_cp.root, latest.root));
    c.verify().unwrap();

    let report = audit_org(f.store.clone(), &org, &f.log.origin(&slug), &verifier, &[]).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.findings);
    assert_eq!(report.size, 1301);
}

#[tokio::test]
async fn a_refused_domain_change_takes_only_its_own_events_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), None, Duration::from_secs(1)).await;
    let org = f.log.org(&OrgSlug::default_org()).await.unwrap();
    let admin = Actor { kind: ActorKind::User, id: "admin".into(), email: None };
    f.log
        .create_api_token(&org, "billing", ActionGrant::default(), admin.clone(), Source::default(), "test")
        .await
        .unwrap();
    let dup = f.log.create_api_token(&org, "billing", ActionGrant::default(), admin.clone(), Source::default(), "test");
    let other = f.log.append(&org, vec![event(1)], None);
    let (dup, other) = tokio::join!(dup, other);
    assert!(matches!(dup, Err(logbook_log::tokens::TokenError::NameTaken)), "{dup:?}");
    other.unwrap();
    let rows = f.store.events(org.id, 0..10).await.unwrap();
    let actions: Vec<_> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["api_token.created", "login.success"], "no event for the refused token");
}

#[tokio::test]
async fn api_tokens_authenticate_until_revoked_and_are_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), None, Duration::from_secs(1)).await;
    let org = f.log.org(&OrgSlug::default_org()).await.unwrap();
    let admin = Actor::system();
    let (token, secret) = f
        .log
        .create_api_token(&org, "svc", ActionGrant::default(), admin.clone(), Source::default(), "cli")
        .await
        .unwrap();
    assert!(secret.expose().starts_with("lbk_"));
    assert!(!format!("{secret:?}").contains(secret.expose()));
    assert_eq!(f.log.authenticate(secret.expose()).await.unwrap().unwrap().id, token.id);
    assert!(f.log.authenticate("lbk_wrong").await.unwrap().is_none());
    f.log.revoke_api_token(&org, "svc", admin, Source::default(), "cli").await.unwrap();
    assert!(f.log.authenticate(secret.expose()).await.unwrap().is_none());
    f.log.shutdown().await;
    let needle = secret.expose().as_bytes();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!raw.windows(needle.len()).any(|w| w == needle), "the token itself is never stored");
    }
}

#[tokio::test]
async fn a_head_moved_onto_a_tree_that_does_not_extend_the_signed_one_damages_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let slug = OrgSlug::default_org();
    let f = fixture(dir.path(), None, Duration::from_millis(20)).await;
    let org = f.log.org(&slug).await.unwrap();
    f.log.append(&org, (0..10).map(event).collect(), None).await.unwrap();
    wait_for_checkpoint(&f, &org, 10).await;

    // While it runs, someone with the file empties the log, and a process that never saw the
    // signed checkpoint writes another history in its place.
    let db = rusqlite::Connection::open(dir.path().join(logbook_store_sqlite::FILE_NAME)).unwrap();
    for t in ["events", "tiles", "checkpoints"] {
        db.execute_batch(&format!("DROP TRIGGER {t}_append_only_delete; DELETE FROM {t};")).unwrap();
    }
    let other = fixture(dir.path(), None, Duration::from_secs(3600)).await;
    // (Same seed and clock as the first process: without this it would write the same leaves.)
    other.clock.advance_micros(1_000_000);
    other.log.append(&org, (100..130).map(event).collect(), None).await.unwrap();
    other.log.shutdown().await;
    let forged = f.store.latest_checkpoint(org.id).await.unwrap().unwrap();
    assert_eq!(forged.size, 30);

    // The next append finds the head moved, reloads, and finds that the tree does not extend
    // the checkpoint this process signed: refused, and nothing more is signed.
    let refused = f.log.append(&org, vec![event(1)], None).await;
    assert!(matches!(&refused, Err(AppendError::Damaged(why)) if why.contains("checkpoint of size 10")), "{refused:?}");
    assert!(matches!(f.log.append(&org, vec![event(2)], None).await, Err(AppendError::Damaged(_))));
    assert_eq!(f.log.damaged_logs().len(), 1);
    assert!(f.log.healthy().await.is_err(), "not ready");
    assert_eq!(f.log.metrics().logs_damaged.get(), 1);
    f.log.shutdown().await;
    assert_eq!(
        f.store.latest_checkpoint(org.id).await.unwrap().unwrap(),
        forged,
        "nothing signed, not even at shutdown"
    );
    assert_eq!(f.store.log_head(org.id).await.unwrap().size, 30, "nothing appended on top of it");
}

#[tokio::test]
async fn the_self_check_compares_the_store_with_the_witness_directory() {
    let dir = tempfile::tempdir().unwrap();
    let witness = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), Some(witness.path()), Duration::from_millis(20)).await;
    let org = f.log.org(&OrgSlug::default_org()).await.unwrap();
    f.log.append(&org, (0..10).map(event).collect(), None).await.unwrap();
    wait_for_checkpoint(&f, &org, 10).await;
    let run = f.log.self_check().await;
    assert!(run.is_ok(), "{run:?}");

    // The checkpoint rows are deleted: the store alone would look merely unsigned.
    let db = rusqlite::Connection::open(dir.path().join(logbook_store_sqlite::FILE_NAME)).unwrap();
    db.execute_batch("DROP TRIGGER checkpoints_append_only_delete; DELETE FROM checkpoints;").unwrap();
    let run = f.log.self_check().await;
    assert!(!run.is_ok(), "{run:?}");
    let problems = run.orgs[0].problems.join("; ");
    assert!(problems.contains("the witness directory holds the checkpoint of size 10"), "{problems}");
}

/// Waits until the service has signed, stored and (with a witness directory) witnessed a
/// checkpoint of `size` events: the event itself, not a guess at how long it takes.
async fn wait_for_checkpoint(f: &Fixture, org: &logbook_store::Org, size: u64) {
    let mut done = f.log.checkpointed();
    within(&format!("a checkpoint of size {size}"), done.wait_for(|m| m.get(&org.id).is_some_and(|s| *s >= size)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_check_passes_on_a_healthy_log_and_names_damage_in_its_newest_part() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path(), None, Duration::from_millis(20)).await;
    let org = f.log.org(&OrgSlug::default_org()).await.unwrap();
    let m = f.log.metrics().clone();
    assert_eq!(f.log.self_check_status(), Default::default());

    let empty = f.log.self_check().await;
    assert!(empty.is_ok(), "{empty:?}");
    assert_eq!(empty.verified_size(), 0);

    f.log.append(&org, (0..600).map(event).collect(), None).await.unwrap();
    wait_for_checkpoint(&f, &org, 600).await;
    let run = f.log.self_check().await;
    assert!(run.is_ok(), "{run:?}");
    assert_eq!((run.orgs[0].from, run.orgs[0].size), (0, 600));
    f.log.append(&org, (600..1000).map(event).collect(), None).await.unwrap();
    wait_for_checkpoint(&f, &org, 1000).await;
    let run = f.log.self_check().await;
    assert!(run.is_ok(), "{run:?}");
    assert_eq!((run.orgs[0].size, m.self_check_ok.get(), m.self_check_verified_size.get()), (1000, 1, 1000));
    let status = f.log.self_check_status();
    assert_eq!(status.last_success, Some(run.at));

    // An attacker with the file.
    let db = rusqlite::Connection::open(dir.path().join(logbook_store_sqlite::FILE_NAME)).unwrap();
    for t in ["events", "tiles", "checkpoints"] {
        for op in ["update", "delete"] {
            db.execute_batch(&format!("DROP TRIGGER {t}_append_only_{op}")).unwrap();
        }
    }
    let leaf: Vec<u8> = db.query_row("SELECT leaf FROM events WHERE seq = 700", [], |r| r.get(0)).unwrap();
    let mut bad = leaf.clone();
    bad[30] ^= 0x01;
    db.execute("UPDATE events SET leaf = ?1 WHERE seq = 700", [&bad]).unwrap();
    let run = f.log.self_check().await;
    assert!(!run.is_ok());
    assert_eq!(run.orgs[0].first_bad_seq, Some(700), "{run:?}");
    assert_eq!((m.self_check_ok.get(), m.self_check_failures.get()), (0, 1));
    assert_eq!(f.log.self_check_status().last_success, status.last_success);
    db.execute("UPDATE events SET leaf = ?1 WHERE seq = 700", [&leaf]).unwrap();
    assert!(f.log.self_check().await.is_ok());
    assert_eq!(m.self_check_ok.get(), 1);

    // A tree tile: entry 5 of level-0 tile 1 is the leaf hash of seq 261.
    let tile: Vec<u8> = db.query_row("SELECT hashes FROM tiles WHERE level = 0 AND idx = 1", [], |r| r.get(0)).unwrap();
    let mut bad = tile.clone();
    bad[5 * 32 + 9] ^= 0x40;
    db.execute("UPDATE tiles SET hashes = ?1 WHERE level = 0 AND idx = 1", [&bad]).unwrap();
    assert_eq!(f.log.self_check().await.orgs[0].first_bad_seq, Some(261));
    db.execute("UPDATE tiles SET hashes = ?1 WHERE level = 0 AND idx = 1", [&tile]).unwrap();

    // The newest checkpoint's note, then the checkpoint itself removed.
    let note: String = db.query_row("SELECT note FROM checkpoints WHERE size = 1000", [], |r| r.get(0)).unwrap();
    db.execute("UPDATE checkpoints SET note = replace(note, '\n1000\n', '\n1001\n') WHERE size = 1000", []).unwrap();
    let run = f.log.self_check().await;
    assert!(run.orgs[0].problems[0].contains("not validly signed"), "{run:?}");
    db.execute("UPDATE checkpoints SET note = ?1 WHERE size = 1000", [&note]).unwrap();
    assert!(f.log.self_check().await.is_ok());
    db.execute("DELETE FROM checkpoints WHERE size = 1000", []).unwrap();
    let run = f.log.self_check().await;
    assert!(run.orgs[0].problems[0].contains("checkpoints were removed"), "{run:?}");
    assert_eq!(m.self_check_failures.get(), 4);
    f.log.shutdown().await;
}
