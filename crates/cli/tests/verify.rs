//! `logbook verify` against real stores of 10,000 events, damaged directly in the SQLite file
//! (append-only triggers dropped first), as someone with access to the file would.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use logbook_core::leaf;

/// A named way of damaging the database.
type Change<'a> = (&'a str, Box<dyn Fn(&rusqlite::Connection) + 'a>);

const N: u64 = 10_000;
const EARLY: u64 = 5_000;

struct Base {
    dir: PathBuf,
    early: PathBuf,
    last: PathBuf,
}

/// One store for the whole file, built once; each test works on a copy.
fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let early = rt.block_on(append_range(&dir, 0..EARLY, 700));
        let last = rt.block_on(append_range(&dir, EARLY..N, 700));
        let cps = dir.join("saved");
        std::fs::create_dir_all(&cps).unwrap();
        std::fs::write(cps.join("early.checkpoint"), early).unwrap();
        std::fs::write(cps.join("last.checkpoint"), last).unwrap();
        Base { dir, early: cps.join("early.checkpoint"), last: cps.join("last.checkpoint") }
    })
}

fn copy() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&base().dir, t.path());
    t
}

fn verify(dir: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&args);
    (o.status.code().unwrap_or(-1), format!("{}{}", stdout(&o), stderr(&o)))
}

fn assert_first_bad(dir: &Path, extra: &[&str], seq: u64, what: &str) {
    let (code, out) = verify(dir, extra);
    assert_eq!(code, 1, "{what}: expected exit 1\n{out}");
    assert!(out.contains(&format!("first bad seq {seq}\n")), "{what}: expected first bad seq {seq}\n{out}");
}

#[test]
fn an_intact_store_verifies() {
    let b = base();
    let (code, out) =
        verify(&b.dir, &["--checkpoint", b.early.to_str().unwrap(), "--checkpoint", b.last.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("default: intact — 10000 events"), "{out}");
}

#[test]
fn a_single_changed_byte_in_any_column_of_any_event_names_its_seq() {
    let t = copy();
    let db = attacker(t.path());
    for seq in [0u64, 1, 255, 256, 4_095, 5_000, 7_777, 9_999] {
        let (time, action, user, leaf_bytes, hash): (i64, String, String, Vec<u8>, Vec<u8>) = db
            .query_row("SELECT time_us, action, user, leaf, leaf_hash FROM events WHERE seq = ?1", [seq], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        let flip_text = |s: &str, at: usize| {
            let mut b = s.as_bytes().to_vec();
            let n = b.len();
            b[at % n] ^= 0x01;
            String::from_utf8(b).unwrap()
        };
        let flip_blob = |b: &[u8], at: usize| {
            let mut b = b.to_vec();
            let n = b.len();
            b[at % n] ^= 0x20;
            b
        };
        let restore = |db: &rusqlite::Connection| {
            db.execute(
                "UPDATE events SET time_us = ?2, action = ?3, user = ?4, leaf = ?5, leaf_hash = ?6 WHERE seq = ?1",
                rusqlite::params![seq, time, action, user, leaf_bytes, hash],
            )
            .unwrap();
        };
        let changes: Vec<Change<'_>> = vec![
            (
                "time",
                Box::new(|db| {
                    db.execute(
                        "UPDATE events SET time_us = ?2 WHERE seq = ?1",
                        rusqlite::params![seq, time ^ (1 << 20)],
                    )
                    .unwrap();
                }),
            ),
            (
                "action",
                Box::new(|db| {
                    db.execute(
                        "UPDATE events SET action = ?2 WHERE seq = ?1",
                        rusqlite::params![seq, flip_text(&action, 2)],
                    )
                    .unwrap();
                }),
            ),
            (
                "user",
                Box::new(|db| {
                    db.execute(
                        "UPDATE events SET user = ?2 WHERE seq = ?1",
                        rusqlite::params![seq, flip_text(&user, 0)],
                    )
                    .unwrap();
                }),
            ),
            (
                "leaf hash",
                Box::new(|db| {
                    db.execute(
                        "UPDATE events SET leaf_hash = ?2 WHERE seq = ?1",
                        rusqlite::params![seq, flip_blob(&hash, 31)],
                    )
                    .unwrap();
                }),
            ),
            (
                "leaf: details",
                Box::new(|db| {
                    let at = leaf_bytes.windows(12).position(|w| w == b"event number").unwrap() + 6;
                    db.execute(
                        "UPDATE events SET leaf = ?2 WHERE seq = ?1",
                        rusqlite::params![seq, flip_blob(&leaf_bytes, at)],
                    )
                    .unwrap();
                }),
            ),
            (
                "leaf: id",
                Box::new(|db| {
                    db.execute(
                        "UPDATE events SET leaf = ?2 WHERE seq = ?1",
                        rusqlite::params![seq, flip_blob(&leaf_bytes, 20)],
                    )
                    .unwrap();
                }),
            ),
            (
                "leaf: last byte",
                Box::new(|db| {
                    db.execute(
                        "UPDATE events SET leaf = ?2 WHERE seq = ?1",
                        rusqlite::params![seq, flip_blob(&leaf_bytes, leaf_bytes.len() - 1)],
                    )
                    .unwrap();
                }),
            ),
        ];
        for (what, change) in changes {
            change(&db);
            assert_first_bad(t.path(), &[], seq, &format!("{what} of seq {seq}"));
            restore(&db);
        }
    }
    let (code, out) = verify(t.path(), &[]);
    assert_eq!(code, 0, "restored store is intact again: {out}");
}

fn forged_row(seq: u64, base_leaf: &[u8]) -> (i64, String, String, Vec<u8>, Vec<u8>) {
    let mut e = leaf::decode(base_leaf).unwrap();
    e.seq = seq;
    e.body.details = "forged".into();
    let l = leaf::encode(&e);
    let h = logbook_integrity::record_hash(&l).0.to_vec();
    (e.time.as_micros(), e.body.action.code().into(), e.user().into(), l, h)
}

fn insert(db: &rusqlite::Connection, seq: u64, row: &(i64, String, String, Vec<u8>, Vec<u8>)) {
    db.execute(
        "INSERT INTO events (org, seq, time_us, action, user, leaf, leaf_hash) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![seq, row.0, row.1, row.2, row.3, row.4],
    )
    .unwrap();
}

fn leaf_of(db: &rusqlite::Connection, seq: u64) -> Vec<u8> {
    db.query_row("SELECT leaf FROM events WHERE seq = ?1", [seq], |r| r.get(0)).unwrap()
}

#[test]
fn deleted_inserted_and_reordered_events_are_named() {
    let t = copy();
    let db = attacker(t.path());
    db.execute("DELETE FROM events WHERE seq = 5000", []).unwrap();
    assert_first_bad(t.path(), &[], 5000, "deleted event");

    let t = copy();
    let db = attacker(t.path());
    db.execute("DELETE FROM events WHERE seq = 9999", []).unwrap();
    assert_first_bad(t.path(), &[], 9999, "deleted last event");

    let t = copy();
    let db = attacker(t.path());
    let forged = forged_row(N, &leaf_of(&db, N - 1));
    insert(&db, N, &forged);
    assert_first_bad(t.path(), &[], N, "event appended behind the log's back");

    let t = copy();
    let db = attacker(t.path());
    for seq in (3000..N).rev() {
        db.execute("UPDATE events SET seq = seq + 1 WHERE seq = ?1", [seq]).unwrap();
    }
    let forged = forged_row(3000, &leaf_of(&db, 2999));
    insert(&db, 3000, &forged);
    assert_first_bad(t.path(), &[], 3000, "event inserted in the middle");

    let t = copy();
    let db = attacker(t.path());
    db.execute_batch(
        "UPDATE events SET seq = -1 WHERE seq = 7000;
         UPDATE events SET seq = 7000 WHERE seq = 7001;
         UPDATE events SET seq = 7001 WHERE seq = -1;",
    )
    .unwrap();
    assert_first_bad(t.path(), &[], 7000, "two events swapped");
}

#[test]
fn truncation_to_an_earlier_checkpoint_is_caught_by_a_saved_checkpoint() {
    let t = copy();
    let db = attacker(t.path());
    // A careful attacker removes the events, the tree rows and the checkpoints that would show.
    let tile = EARLY / 256;
    db.execute_batch(&format!(
        "DELETE FROM events WHERE seq >= {EARLY};
         DELETE FROM tiles WHERE level = 0 AND idx >= {tile};
         DELETE FROM tiles WHERE level = 1 AND width > {tile};
         DELETE FROM checkpoints WHERE size > {EARLY};"
    ))
    .unwrap();
    // What the store alone says is consistent: this is why checkpoints are kept elsewhere.
    let (code, out) = verify(t.path(), &[]);
    assert_eq!(code, 0, "{out}");
    let b = base();
    assert_first_bad(t.path(), &["--checkpoint", b.last.to_str().unwrap()], EARLY, "truncated log");
    let (_, out) = verify(t.path(), &["--checkpoint", b.last.to_str().unwrap()]);
    assert!(out.contains("truncated"), "{out}");
}

#[test]
fn a_store_rewritten_with_another_key_is_caught_by_the_public_key_and_a_saved_checkpoint() {
    let b = base();
    let forged = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(append_range(forged.path(), 0..N, 1000));
    let key_file = b.dir.join("checkpoint-signing.key");
    let public = {
        let signer =
            logbook_integrity::checkpoint::CheckpointSigner::from_secret(&std::fs::read_to_string(key_file).unwrap())
                .unwrap();
        signer.verifier_key().to_owned()
    };
    let (code, out) = verify(forged.path(), &["--public-key", &public, "--checkpoint", b.last.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not validly signed"), "{out}");
    assert!(out.contains("first bad seq 0"), "{out}");
}

#[test]
fn a_changed_tree_tile_or_checkpoint_is_detected() {
    let t = copy();
    let db = attacker(t.path());
    let mut hashes: Vec<u8> =
        db.query_row("SELECT hashes FROM tiles WHERE level = 0 AND idx = 10", [], |r| r.get(0)).unwrap();
    hashes[32 * 17 + 3] ^= 1;
    db.execute("UPDATE tiles SET hashes = ?1 WHERE level = 0 AND idx = 10", [hashes]).unwrap();
    assert_first_bad(t.path(), &[], 10 * 256 + 17, "changed tile");

    let t = copy();
    let db = attacker(t.path());
    db.execute("UPDATE checkpoints SET note = replace(note, '\n5000\n', '\n5001\n') WHERE size = 5000", []).unwrap();
    let (code, out) = verify(t.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint of size 5000"), "{out}");
}

#[test]
fn usage_and_io_errors_exit_2_with_a_clear_message() {
    let empty = tempfile::tempdir().unwrap();
    let o = run(&["verify", "--data-dir", empty.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("error:"), "{}", stderr(&o));

    let o = run(&["verify", "--database-url", "mysql://x/y", "--public-key", "k+00000000+AA"]);
    assert_eq!(o.status.code(), Some(2));

    let o = run(&["serve", "--database-url", "ftp://nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unsupported database URL scheme \"ftp\""), "{}", stderr(&o));

    let o = run(&[
        "serve",
        "--data-dir",
        empty.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--origin-prefix",
        "my log",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("origin prefix"), "{}", stderr(&o));

    let o = run(&["verify", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));

    let b = base();
    let o = run(&["verify", "--data-dir", b.dir.to_str().unwrap(), "--checkpoint", "/nonexistent/cp"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/cp"), "{}", stderr(&o));
}
