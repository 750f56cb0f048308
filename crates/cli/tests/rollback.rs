//! The attack of someone who can write the database but not read the signing key: replace the
//! store of a stopped `logbook serve` by another valid store signed with the same key (smaller,
//! or different), delete its checkpoint rows, start again. Logbook must not sign the forged tree
//! nor touch the witness directory, must refuse appends while still serving reads, and `verify`
//! must name the witness directory's checkpoint. On SQLite and PostgreSQL; and a consistent
//! rewrite of one middle event (its leaf and every tile recomputed) on SQLite.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{attacker, bin, fresh_database, start_with_env, stderr, stdout, terminate};
use serde_json::{json, Value};

/// Where a store lives: a data directory's SQLite file, or a PostgreSQL database.
#[derive(Clone)]
struct StoreAt {
    data_dir: PathBuf,
    database_url: Option<String>,
}

impl StoreAt {
    fn env(&self, key: &Path, witness_dir: &Path) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("LOGBOOK_DATA_DIR", self.data_dir.display().to_string()),
            ("LOGBOOK_SIGNING_KEY_FILE", key.display().to_string()),
            ("LOGBOOK_WITNESS_DIR", witness_dir.display().to_string()),
        ];
        if let Some(url) = &self.database_url {
            env.push(("LOGBOOK_DATABASE_URL", url.clone()));
        }
        env
    }
}

async fn new_store(root: &Path, name: &str, postgres: bool) -> Option<StoreAt> {
    let data_dir = root.join(name);
    std::fs::create_dir_all(&data_dir).unwrap();
    let database_url = if postgres { Some(fresh_database().await?) } else { None };
    Some(StoreAt { data_dir, database_url })
}

fn logbook(env: &[(&'static str, String)], args: &[&str]) -> Output {
    bin().args(args).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output().unwrap()
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn events(n: usize, who: &str) -> Value {
    let one = |i: usize| {
        json!({"action": "login.failed", "actor": {"type": "anonymous", "id": format!("{who}{i}@example.com")},
               "details": "Invalid password", "outcome": "failure"})
    };
    Value::Array((0..n).map(one).collect())
}

/// Runs `serve`, appends `batches` of events through the API, stops it (a final checkpoint).
async fn populate(env: &[(&'static str, String)], batches: &[usize], who: &str) {
    let token = logbook(env, &["admin", "create-token", "--name", "sso", "--actions", "login.*"]);
    assert!(token.status.success(), "{}", stderr(&token));
    let token = stdout(&token).trim().to_owned();
    let server = start_with_env(&[], &borrowed(env));
    let http = reqwest::Client::new();
    for &n in batches {
        let r = http
            .post(format!("{}/api/v1/events", server.base))
            .bearer_auth(&token)
            .json(&events(n, who))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    terminate(server);
}

/// What the store holds as checkpoints (none after the attacker deleted them).
async fn stored_checkpoints(store: &StoreAt) -> i64 {
    match &store.database_url {
        None => attacker(&store.data_dir).query_row("SELECT count(*) FROM checkpoints", [], |r| r.get(0)).unwrap(),
        Some(url) => {
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            c.query_one("SELECT count(*) FROM checkpoints", &[]).await.unwrap().get(0)
        }
    }
}

/// The attacker deletes every checkpoint row of the store.
async fn delete_checkpoints(store: &StoreAt) {
    match &store.database_url {
        None => {
            attacker(&store.data_dir).execute("DELETE FROM checkpoints", []).unwrap();
        }
        Some(url) => {
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            c.batch_execute(
                "ALTER TABLE checkpoints DISABLE TRIGGER USER; DELETE FROM checkpoints; ALTER TABLE checkpoints ENABLE TRIGGER USER;",
            )
            .await
            .unwrap();
        }
    }
    assert_eq!(stored_checkpoints(store).await, 0);
}

/// The real installation: its key and witness directory, its store populated with 1,001 service
/// events (and the token's creation).
struct Installation {
    _root: tempfile::TempDir,
    key: PathBuf,
    witness: PathBuf,
    store: StoreAt,
}

async fn installation(postgres: bool) -> Option<Installation> {
    let root = tempfile::tempdir().unwrap();
    let store = new_store(root.path(), "real", postgres).await?;
    let key = root.path().join("signing.key");
    let witness = root.path().join("witness");
    write_key(&key);
    populate(&store.env(&key, &witness), &[1000, 1], "real").await;
    Some(Installation { _root: root, key, witness, store })
}

/// A checkpoint signing key in a file of its own, mode 0600.
fn write_key(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let signer =
        logbook_integrity::checkpoint::CheckpointSigner::generate(&logbook_core::OsRandom, "logbook.local").unwrap();
    std::fs::write(path, signer.secret()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn witness_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

fn newest_witnessed_size(dir: &Path) -> u64 {
    let note = std::fs::read_to_string(dir.join("default.checkpoint")).unwrap();
    note.lines().nth(1).unwrap().parse().unwrap()
}

/// Starts `serve` on the forged store with the real key and witness directory and checks that it
/// is served read-only: appends refused with `log_damaged`, not ready, the metric raised, nothing
/// signed, the witness directory untouched; `--refuse-damaged` does not start at all; a one-shot
/// command that appends is refused; `verify` exits 1 naming the witness directory's checkpoint.
async fn assert_refused(real: &Installation, forged: &StoreAt, what: &str) {
    let env = forged.env(&real.key, &real.witness);
    let before = witness_files(&real.witness);
    let good = newest_witnessed_size(&real.witness);

    let server = start_with_env(&[], &borrowed(&env));
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(r.status(), 503, "{what}: not ready");
    let metrics = http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "logbook_logs_damaged 1"), "{what}: {metrics}");
    // Reads still work, for those who must examine what is there.
    let r = http.get(format!("{}/api/v1/public-key", server.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(format!("{}/api/v1/checkpoint", server.base)).send().await.unwrap();
    assert_eq!(r.status(), 404, "{what}: no checkpoint was signed for the forged tree");
    terminate(server);
    assert_eq!(stored_checkpoints(forged).await, 0, "{what}: not even at shutdown");
    assert_eq!(witness_files(&real.witness), before, "{what}: the witness directory is untouched");

    // A one-shot command that appends is refused too, and signs nothing.
    let o = logbook(&env, &["admin", "create-token", "--name", "other"]);
    assert!(!o.status.success(), "{what}: {}", stdout(&o));
    assert!(stderr(&o).contains("damaged"), "{what}: {}", stderr(&o));
    assert_eq!(stored_checkpoints(forged).await, 0);
    assert_eq!(witness_files(&real.witness), before);

    // With --refuse-damaged, serve does not start, and says why.
    let o = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--refuse-damaged"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(!o.status.success(), "{what}");
    let err = stderr(&o);
    assert!(err.contains(&format!("checkpoint of size {good} from the witness directory")), "{what}: {err}");

    // verify reads the configured witness directory and names the checkpoint the store fails.
    let o = logbook(&env, &["verify"]);
    assert_eq!(o.status.code(), Some(1), "{what}: {}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&format!("witness directory's checkpoint of size {good}")), "{what}: {}", stdout(&o));
}

async fn a_rolled_back_or_forked_store_is_refused(postgres: bool) {
    let Some(real) = installation(postgres).await else { return };
    let good = newest_witnessed_size(&real.witness);
    assert_eq!(good, 1002, "the token's creation and 1,001 events are witnessed");
    let root = tempfile::tempdir().unwrap();

    // Smaller: another store of the same organization and key, with one event.
    let Some(smaller) = new_store(root.path(), "smaller", postgres).await else { return };
    // (Made with witness directories of their own: the real one would refuse them.)
    let o =
        logbook(&smaller.env(&real.key, &root.path().join("elsewhere-1")), &["admin", "create-token", "--name", "x"]);
    assert!(o.status.success(), "{}", stderr(&o));
    delete_checkpoints(&smaller).await;
    assert_refused(&real, &smaller, "a smaller store").await;

    // Different and larger: 2,000 other events.
    let Some(other) = new_store(root.path(), "other", postgres).await else { return };
    populate(&other.env(&real.key, &root.path().join("elsewhere-2")), &[1000, 1000], "other").await;
    delete_checkpoints(&other).await;
    assert_refused(&real, &other, "a different, larger store").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_or_forked_store_is_refused_on_sqlite() {
    a_rolled_back_or_forked_store_is_refused(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_or_forked_store_is_refused_on_postgres() {
    a_rolled_back_or_forked_store_is_refused(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistent_rewrite_of_a_middle_event_is_refused() {
    let real = installation(false).await.unwrap();
    let db = attacker(&real.store.data_dir);
    // Event 500's leaf changed, its hash and every tile recomputed: the store alone is consistent.
    let leaf: Vec<u8> = db.query_row("SELECT leaf FROM events WHERE seq = 500", [], |r| r.get(0)).unwrap();
    let at = leaf.windows(4).position(|w| w == b"real").unwrap();
    let mut forged = leaf.clone();
    forged[at..at + 4].copy_from_slice(b"evil");
    let hash = logbook_integrity::record_hash(&forged);
    db.execute(
        "UPDATE events SET leaf = ?1, leaf_hash = ?2, user = replace(user, 'real', 'evil') WHERE seq = 500",
        rusqlite::params![forged, hash.0.to_vec()],
    )
    .unwrap();
    let mut stmt = db.prepare("SELECT leaf_hash FROM events ORDER BY seq").unwrap();
    let hashes: Vec<Vec<u8>> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    drop(stmt);
    let mut edge = logbook_integrity::tree::TreeEdge::new();
    let rows = edge.append_all(hashes.iter().map(|h| logbook_integrity::Hash(h.as_slice().try_into().unwrap())));
    db.execute("DELETE FROM tiles", []).unwrap();
    for r in rows {
        db.execute(
            "INSERT INTO tiles (org, level, idx, width, hashes) VALUES (1, ?1, ?2, ?3, ?4)",
            rusqlite::params![r.id.level, r.id.index, r.id.width, r.hashes],
        )
        .unwrap();
    }
    db.execute("DELETE FROM checkpoints", []).unwrap();
    drop(db);
    // The store alone shows no changed entry: only that no checkpoint covers it any more.
    let mut no_witness = real.store.env(&real.key, &real.witness);
    no_witness.retain(|(k, _)| *k != "LOGBOOK_WITNESS_DIR");
    let o = logbook(&no_witness, &["verify"]);
    assert!(stdout(&o).contains("not covered by any signed checkpoint"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("seq 500"), "{}", stdout(&o));

    assert_refused(&real, &real.store, "a consistent rewrite").await;
    // And the log names where the change lies, from the witness directory's history: after the
    // token's creation (size 1), before the checkpoint of the first 1,000 events (size 1001).
    let env = real.store.env(&real.key, &real.witness);
    let o = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--refuse-damaged"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(stderr(&o).contains("reproduces the checkpoint of size 1 but not the one of size 1001"), "{}", stderr(&o));
}
