//! Exhaustive tamper test (issue 6): a SQLite store of 10,007 events built through the real
//! append path, then, like an attacker with the file (append-only triggers dropped), one bit
//! flipped in every byte position of every stored column of a sample of events, of a sample of
//! tree tile rows, and of every stored checkpoint. After each flip the full audit that
//! `logbook verify` runs ([`audit_org`]) must report damage and name exactly the expected first
//! bad seq; the byte is then restored, and the store must be intact again at the end.
//!
//! Not covered, by design: a checkpoint's `signed_us` column (when it was stored; the signed
//! note carries no time), asserted undetected below so that the gap is explicit.
//!
//! The default run samples 6 events (first, middle of a tile, both sides of the 255/256 tile
//! boundary, middle of the log, last), every byte of 3 entries (first, middle, last) of 5 tile
//! rows of levels 0 and 1, and every byte of every checkpoint. The long form:
//!
//! ```text
//! LOGBOOK_TAMPER_SAMPLE=40 LOGBOOK_TAMPER_ALL_TILE_BYTES=1 \
//!   cargo test -p logbook-log --test tamper -- --nocapture
//! ```
//!
//! adds 40 more events spread evenly over the log and flips every byte of every entry of the
//! sampled tile rows (about 27,000 more audits).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logbook_core::{
    Action, Actor, ActorKind, ManualClock, NewEvent, OrgSlug, Outcome, SeededRandom, Source, Target, Timestamp,
};
use logbook_integrity::audit::Report;
use logbook_integrity::checkpoint::{CheckpointSigner, CheckpointVerifier};
use logbook_log::audit::audit_org;
use logbook_log::{LogConfig, LogService};
use logbook_store::{Org, Store};
use logbook_store_sqlite::SqliteStore;
use rusqlite::params;

const N: u64 = 10_007;

/// A small deterministic generator (xorshift64*), so the store is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn event(i: u64, rng: &mut Rng) -> NewEvent {
    let actions = [Action::LoginSuccess, Action::LoginFailed, Action::Logout];
    let user = rng.below(50);
    NewEvent {
        action: actions[rng.below(3) as usize].into(),
        actor: Actor {
            kind: ActorKind::User,
            id: format!("u{user}"),
            email: (!user.is_multiple_of(3)).then(|| format!("user{user}@example.com")),
        },
        target: i.is_multiple_of(4).then(|| Target { kind: "user".into(), id: format!("t{i}"), display: "Bob".into() }),
        details: format!("event number {i}"),
        fields: [("method".to_string(), "password".to_string()), ("n".to_string(), i.to_string())].into(),
        outcome: if i.is_multiple_of(7) { Outcome::Failure } else { Outcome::Success },
        source: Source {
            via: None,
            ip: Some([198, 51, 100, (i % 250) as u8].into()),
            user_agent: Some("tamper-test".into()),
        },
        recorded_by: "test".into(),
    }
}

/// The service with a checkpoint interval of an hour: each session signs one checkpoint at its
/// first commit and one at shutdown.
fn service(store: Arc<SqliteStore>, clock: Arc<ManualClock>) -> Arc<LogService> {
    let signer = Arc::new(CheckpointSigner::generate(&SeededRandom::new(7), "logbook.test").unwrap());
    let config = LogConfig {
        origin_prefix: "logbook.test".into(),
        checkpoint_interval: Duration::from_secs(3600),
        max_batch_events: 10_000,
        witness_dir: None,
        ..LogConfig::default()
    };
    LogService::new(store, clock, Arc::new(SeededRandom::new(1)), signer, config)
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    db: rusqlite::Connection,
    org: Org,
    origin: String,
    verifier: CheckpointVerifier,
}

async fn build() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_764_000_000_000_000)));
    let mut rng = Rng(0x5EED_1234_5678_9ABC);
    let slug = OrgSlug::default_org();
    let mut next = 0u64;
    // Two sessions (mid-log and the end): four checkpoints.
    for end in [5_000, N] {
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let log = service(store, clock.clone());
        let org = log.org(&slug).await.unwrap();
        while next < end {
            let k = (1 + rng.below(600)).min(end - next);
            let events = (next..next + k).map(|i| event(i, &mut rng)).collect();
            let a = log.append(&org, events, None).await.unwrap();
            assert_eq!(a.first_seq, next);
            next += k;
            clock.advance_micros(1 + rng.below(5_000_000) as i64);
        }
        log.shutdown().await;
    }
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let org = store.org(&slug).await.unwrap().unwrap();
    let verifier = CheckpointSigner::generate(&SeededRandom::new(7), "logbook.test").unwrap().verifier();
    let db = rusqlite::Connection::open(dir.path().join(logbook_store_sqlite::FILE_NAME)).unwrap();
    // Thousands of one-row changes: no need to wait for the disk on each.
    db.pragma_update(None, "synchronous", "OFF").unwrap();
    for t in ["events", "tiles", "checkpoints"] {
        for op in ["update", "delete"] {
            db.execute_batch(&format!("DROP TRIGGER {t}_append_only_{op}")).unwrap();
        }
    }
    let origin = logbook_log::origin("logbook.test", &slug);
    Fixture { _dir: dir, store, db, org, origin, verifier }
}

impl Fixture {
    /// The real audit, over the whole log.
    async fn audit(&self) -> Report {
        audit_org(self.store.clone(), &self.org, &self.origin, &self.verifier, &[]).await.unwrap()
    }
}

/// Flips and counts, per kind of stored value.
#[derive(Default)]
struct Tally {
    flips: BTreeMap<&'static str, u64>,
    misses: Vec<String>,
}

impl Tally {
    fn check(&mut self, kind: &'static str, what: String, report: &Report, want: Option<u64>, mention: Option<&str>) {
        *self.flips.entry(kind).or_default() += 1;
        let named = mention.is_none_or(|m| report.findings.iter().any(|f| f.problem.contains(m)));
        if report.is_intact() || report.first_bad_seq() != want || !named {
            self.misses.push(format!(
                "{what}: expected first bad seq {want:?}{}, got {:?} {:?}",
                mention.map(|m| format!(" and a finding naming {m:?}")).unwrap_or_default(),
                report.first_bad_seq(),
                report.findings.iter().take(3).map(|f| f.to_string()).collect::<Vec<_>>()
            ));
        }
    }
}

/// The text with the lowest bit of byte `at` flipped. Used on ASCII and on UTF-8 continuation
/// and 3-byte lead bytes only, where it keeps the text valid UTF-8 (which SQLite's TEXT and the
/// store's `String`s require: a flip that makes it invalid is refused by the reader, which is
/// a louder failure than a finding).
fn flip_text(s: &str, at: usize) -> String {
    let mut b = s.as_bytes().to_vec();
    b[at] ^= 0x01;
    String::from_utf8(b).expect("a low-bit flip keeps this text valid UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flipped_bit_anywhere_is_detected_and_names_the_first_bad_seq() {
    let started = Instant::now();
    let f = build().await;
    let built = started.elapsed();
    let clean = f.audit().await;
    assert!(clean.is_intact(), "{:?}", clean.findings);
    assert_eq!(clean.size, N);
    let t0 = Instant::now();
    let _ = f.audit().await;
    let one_audit = t0.elapsed();

    let mut tally = Tally::default();

    // ---- Events: every byte of every stored column.
    let mut seqs = vec![0, 128, 255, 256, N / 2, N - 1];
    let extra: u64 = std::env::var("LOGBOOK_TAMPER_SAMPLE").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    seqs.extend((0..extra).map(|k| (k * 2 + 1) * N / (2 * extra)));
    seqs.sort();
    seqs.dedup();
    for &seq in &seqs {
        let (time, action, user, leaf, hash): (i64, String, String, Vec<u8>, Vec<u8>) =
            f.db.query_row("SELECT time_us, action, user, leaf, leaf_hash FROM events WHERE seq = ?1", [seq], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        for byte in 0..8 {
            f.db.execute("UPDATE events SET time_us = ?2 WHERE seq = ?1", params![seq, time ^ (1i64 << (8 * byte))])
                .unwrap();
            let r = f.audit().await;
            tally.check("event time_us", format!("seq {seq} time byte {byte}"), &r, Some(seq), None);
        }
        f.db.execute("UPDATE events SET time_us = ?2 WHERE seq = ?1", params![seq, time]).unwrap();
        for (col, value) in [("action", &action), ("user", &user)] {
            for at in 0..value.len() {
                f.db.execute(
                    &format!("UPDATE events SET {col} = ?2 WHERE seq = ?1"),
                    params![seq, flip_text(value, at)],
                )
                .unwrap();
                let r = f.audit().await;
                let kind = if col == "action" { "event action" } else { "event user" };
                tally.check(kind, format!("seq {seq} {col} byte {at}"), &r, Some(seq), None);
            }
            f.db.execute(&format!("UPDATE events SET {col} = ?2 WHERE seq = ?1"), params![seq, value]).unwrap();
        }
        for (col, value) in [("leaf", &leaf), ("leaf_hash", &hash)] {
            for at in 0..value.len() {
                let mut b = value.clone();
                b[at] ^= 0x01;
                f.db.execute(&format!("UPDATE events SET {col} = ?2 WHERE seq = ?1"), params![seq, b]).unwrap();
                let r = f.audit().await;
                let kind = if col == "leaf" { "event leaf" } else { "event leaf_hash" };
                tally.check(kind, format!("seq {seq} {col} byte {at}"), &r, Some(seq), None);
            }
            f.db.execute(&format!("UPDATE events SET {col} = ?2 WHERE seq = ?1"), params![seq, value]).unwrap();
        }
    }

    // ---- Tile rows. An entry of a level-0 tile is one event's leaf hash; an entry of a
    // level-1 tile is the root of 256 of them: the auditor names the first seq under the entry.
    let all_tile_bytes = std::env::var("LOGBOOK_TAMPER_ALL_TILE_BYTES").is_ok_and(|v| v == "1");
    let last_full = N / 256 - 1;
    let level1: Vec<(u64, u32)> =
        f.db.prepare("SELECT idx, width FROM tiles WHERE level = 1 ORDER BY width")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    assert!(level1.len() >= 2, "several partial level-1 rows: {level1:?}");
    let (w_narrow, w_wide) = (level1[0].1, level1[level1.len() - 1].1);
    let rows: Vec<(u8, u64, u32)> =
        vec![(0, 0, 256), (0, last_full / 2, 256), (0, last_full, 256), (1, 0, w_narrow), (1, 0, w_wide)];
    for &(level, idx, width) in &rows {
        let hashes: Vec<u8> =
            f.db.query_row(
                "SELECT hashes FROM tiles WHERE level = ?1 AND idx = ?2 AND width = ?3",
                params![level, idx, width],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hashes.len(), 32 * width as usize);
        let w = u64::from(width);
        let mut entries: Vec<u64> = if all_tile_bytes { (0..w).collect() } else { vec![0, w / 2, w - 1] };
        entries.dedup();
        for entry in entries {
            for at in entry as usize * 32..(entry as usize + 1) * 32 {
                let mut b = hashes.clone();
                b[at] ^= 0x01;
                f.db.execute(
                    "UPDATE tiles SET hashes = ?4 WHERE level = ?1 AND idx = ?2 AND width = ?3",
                    params![level, idx, width, b],
                )
                .unwrap();
                let r = f.audit().await;
                let first = (idx * 256 + entry) << (8 * u32::from(level));
                let kind = if level == 0 { "tile level 0" } else { "tile level 1" };
                tally.check(kind, format!("tile {level}/{idx} width {width} byte {at}"), &r, Some(first), None);
            }
        }
        f.db.execute(
            "UPDATE tiles SET hashes = ?4 WHERE level = ?1 AND idx = ?2 AND width = ?3",
            params![level, idx, width, hashes],
        )
        .unwrap();
    }

    // ---- Every stored checkpoint: every byte of its note, and of its root column. A damaged
    // checkpoint is not an event: its finding has no seq of its own ("the stored checkpoint of
    // size S …"). What else follows is exact: if it was the newest one, the events after the
    // previous checkpoint are no longer covered by any signed checkpoint, and that is the first
    // bad seq; otherwise the report names no seq.
    let cps: Vec<(u64, Vec<u8>, String)> =
        f.db.prepare("SELECT size, root, note FROM checkpoints ORDER BY size")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    assert!(cps.len() >= 3, "several checkpoints: {:?}", cps.iter().map(|c| c.0).collect::<Vec<_>>());
    assert_eq!(cps.last().unwrap().0, N);
    for (k, (size, root, note)) in cps.iter().enumerate() {
        let want = (k == cps.len() - 1).then(|| cps[k - 1].0);
        let mention = format!("stored checkpoint of size {size} ");
        for at in 0..note.len() {
            f.db.execute("UPDATE checkpoints SET note = ?2 WHERE size = ?1", params![size, flip_text(note, at)])
                .unwrap();
            let r = f.audit().await;
            tally.check("checkpoint note", format!("checkpoint {size} note byte {at}"), &r, want, Some(&mention));
        }
        f.db.execute("UPDATE checkpoints SET note = ?2 WHERE size = ?1", params![size, note]).unwrap();
        for at in 0..root.len() {
            let mut b = root.clone();
            b[at] ^= 0x01;
            f.db.execute("UPDATE checkpoints SET root = ?2 WHERE size = ?1", params![size, b]).unwrap();
            let r = f.audit().await;
            tally.check("checkpoint root", format!("checkpoint {size} root byte {at}"), &r, want, Some(&mention));
        }
        f.db.execute("UPDATE checkpoints SET root = ?2 WHERE size = ?1", params![size, root]).unwrap();
        for byte in 0..8 {
            let moved = size ^ (1u64 << (8 * byte));
            f.db.execute("UPDATE checkpoints SET size = ?2 WHERE size = ?1", params![size, moved]).unwrap();
            let r = f.audit().await;
            let mention = format!("stored checkpoint of size {moved} ");
            tally.check("checkpoint size", format!("checkpoint {size} size byte {byte}"), &r, want, Some(&mention));
            f.db.execute("UPDATE checkpoints SET size = ?2 WHERE size = ?1", params![moved, size]).unwrap();
        }
        // Undetectable by design, and so not counted: `signed_us`, when the checkpoint was
        // stored, is bookkeeping shown on the Settings page; a C2SP checkpoint carries no time,
        // so nothing signed covers it. Asserted here so that the gap is explicit.
        let signed: i64 =
            f.db.query_row("SELECT signed_us FROM checkpoints WHERE size = ?1", [size], |r| r.get(0)).unwrap();
        f.db.execute("UPDATE checkpoints SET signed_us = ?2 WHERE size = ?1", params![size, signed ^ 1]).unwrap();
        assert!(f.audit().await.is_intact(), "signed_us is not covered by the signature");
        f.db.execute("UPDATE checkpoints SET signed_us = ?2 WHERE size = ?1", params![size, signed]).unwrap();
    }

    let after = f.audit().await;
    assert!(after.is_intact(), "every byte was restored: {:?}", after.findings);
    assert_eq!(after.root, clean.root);

    let total: u64 = tally.flips.values().sum();
    println!(
        "tamper: {N} events ({} checkpoints), built in {built:.1?}, one audit {one_audit:.1?}; \
         {total} flips checked in {:.1?}:",
        cps.len(),
        started.elapsed() - built
    );
    for (kind, n) in &tally.flips {
        println!("  {kind:>16}: {n}");
    }
    println!("  events sampled: {seqs:?}; tile rows: {rows:?}; all tile bytes: {all_tile_bytes}");
    assert!(
        tally.misses.is_empty(),
        "{} of {total} flips missed or misnamed:\n{}",
        tally.misses.len(),
        tally.misses.join("\n")
    );
}
