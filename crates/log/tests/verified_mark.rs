//! The verified mark (issue 13 item 4) is computed from the bytes shown: an entry whose leaf, or
//! the signed tree beside it, was changed in the database is altered, in a full tile as in the
//! newest, partial one; the rest stay verified; entries after the checkpoint are not yet signed.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use logbook_core::{
    leaf, Action, Actor, ActorKind, ManualClock, NewEvent, OrgSlug, Outcome, SeededRandom, Source, Timestamp,
};
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_log::verified::Integrity;
use logbook_log::{LogConfig, LogService};
use logbook_store::Store;
use logbook_store_sqlite::SqliteStore;

fn event(i: u64) -> NewEvent {
    NewEvent {
        action: Action::LoginSuccess.into(),
        actor: Actor { kind: ActorKind::User, id: format!("u{i}"), email: None },
        target: None,
        details: format!("event {i}"),
        fields: Default::default(),
        outcome: Outcome::Success,
        source: Source { via: None, ip: Some([198, 51, 100, 7].into()), user_agent: None },
        recorded_by: "t".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mark_is_recomputed_from_the_bytes_shown() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_764_000_000_000_000)));
    let signer = Arc::new(CheckpointSigner::generate(&SeededRandom::new(7), "logbook.test").unwrap());
    let config = LogConfig {
        origin_prefix: "logbook.test".into(),
        checkpoint_interval: Duration::from_secs(3600),
        max_batch_events: 10_000,
        witness_dir: None,
        ..LogConfig::default()
    };
    let log = LogService::new(store.clone(), clock, Arc::new(SeededRandom::new(1)), signer, config);
    let org = log.org(&OrgSlug::default_org()).await.unwrap();
    // 1,000 signed events (three full level-0 tiles and a partial one), then 5 not yet signed.
    log.append(&org, (0..1000).map(event).collect(), None).await.unwrap();
    let mut signed = log.checkpointed();
    signed.wait_for(|m| m.get(&org.id) >= Some(&1000)).await.unwrap();
    log.append(&org, (1000..1005).map(event).collect(), None).await.unwrap();
    assert_eq!(store.latest_checkpoint(org.id).await.unwrap().unwrap().size, 1000);

    let marks = |rows: Vec<logbook_store::EventRow>| {
        let log = log.clone();
        let org = org.clone();
        async move { log.check_entries(&org, &rows).await.unwrap() }
    };
    let all = marks(store.events(org.id, 0..1005).await.unwrap()).await;
    assert!(all[..1000]
        .iter()
        .all(|c| c.integrity == Integrity::Verified && c.checkpoint.is_some_and(|c| c.0 == 1000)));
    assert!(all[1000..].iter().all(|c| c.integrity == Integrity::NotYetSigned));

    // As someone with the file: leaves changed in a full tile (10) and in the partial one (900),
    // their stored hash left; and at 20 the stored hash column changed along with the leaf.
    let db = rusqlite::Connection::open(dir.path().join(logbook_store_sqlite::FILE_NAME)).unwrap();
    for t in ["events", "tiles"] {
        db.execute_batch(&format!("DROP TRIGGER {t}_append_only_update")).unwrap();
    }
    let forge = |seq: u64, rehash: bool| {
        let bytes: Vec<u8> = db.query_row("SELECT leaf FROM events WHERE seq = ?1", [seq], |r| r.get(0)).unwrap();
        let mut e = leaf::decode(&bytes).unwrap();
        e.body.source.ip = Some([203, 0, 113, 66].into());
        let forged = leaf::encode(&e);
        let hash = logbook_integrity::record_hash(&forged).0.to_vec();
        db.execute("UPDATE events SET leaf = ?1 WHERE seq = ?2", rusqlite::params![forged, seq]).unwrap();
        if rehash {
            db.execute("UPDATE events SET leaf_hash = ?1 WHERE seq = ?2", rusqlite::params![hash, seq]).unwrap();
        }
    };
    forge(10, false);
    forge(900, false);
    forge(20, true);
    let rows = store.events(org.id, 0..1005).await.unwrap();
    let all = marks(rows.clone()).await;
    let altered: Vec<u64> = (0..1005).filter(|&s| all[s as usize].integrity == Integrity::Altered).collect();
    assert_eq!(altered, vec![10, 20, 900]);
    for s in [10, 20, 900] {
        let c = &all[s as usize];
        assert!(c.problem.as_deref().unwrap().contains("does not hash to the entry the server signed"), "{c:?}");
        assert_ne!(c.leaf_hash.0, [0; 32]);
        assert_eq!(c.checkpoint, None);
    }
    // One entry alone is marked as in a page.
    assert_eq!(marks(rows[900..901].to_vec()).await[0].integrity, Integrity::Altered);
    assert_eq!(marks(rows[899..900].to_vec()).await[0].integrity, Integrity::Verified);

    // A stored tree tile changed: the entries it holds can no longer be vouched for.
    let tile: Vec<u8> = db.query_row("SELECT hashes FROM tiles WHERE level = 0 AND idx = 1", [], |r| r.get(0)).unwrap();
    let mut bad = tile.clone();
    bad[3 * 32] ^= 1;
    db.execute("UPDATE tiles SET hashes = ?1 WHERE level = 0 AND idx = 1", [&bad]).unwrap();
    let all = marks(store.events(org.id, 0..1000).await.unwrap()).await;
    assert!(all[256..512].iter().all(|c| c.integrity == Integrity::Altered));
    assert!(all[512..900].iter().all(|c| c.integrity == Integrity::Verified));
    log.shutdown().await;
}
