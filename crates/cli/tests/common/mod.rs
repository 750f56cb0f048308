//! Shared by the binary's tests: building real stores, running `logbook`.

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use logbook_core::{Action, Actor, ActorKind, NewEvent, OrgSlug, OsRandom, Outcome, Source, SystemClock};
use logbook_log::{LogConfig, LogService};
use logbook_server::{keys, Settings};
use logbook_store_sqlite::SqliteStore;

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_logbook"));
    c.env("LOGBOOK_LOG", "warn").env_remove("LOGBOOK_DATA_DIR").env_remove("LOGBOOK_DATABASE_URL");
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run logbook")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn event(i: u64) -> NewEvent {
    let actions = [
        Action::LoginSuccess,
        Action::LoginFailed,
        Action::Logout,
        Action::UserRoleUpdated,
        Action::ProtectedUserAdded,
    ];
    let action = actions[(i % actions.len() as u64) as usize];
    NewEvent {
        action,
        actor: Actor {
            kind: ActorKind::User,
            id: format!("u{}", i % 13),
            email: Some(format!("user{}@example.com", i % 13)),
        },
        target: (i % 3 == 0).then(|| logbook_core::Target {
            kind: "management_user".into(),
            id: format!("t{i}"),
            display: format!("t{i}@example.com"),
        }),
        details: format!("event number {i}"),
        fields: [("n".to_string(), i.to_string())].into(),
        outcome: if action == Action::LoginFailed { Outcome::Failure } else { Outcome::Success },
        source: Source {
            ip: Some([203, 0, 113, (i % 250) as u8].into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
        },
        recorded_by: "test".into(),
    }
}

async fn service(dir: &Path) -> (Arc<LogService>, logbook_store::Org) {
    let settings = Settings::new(dir.to_owned());
    let signer = keys::load_or_create(&settings, &OsRandom).unwrap();
    let store = Arc::new(SqliteStore::open(dir).await.unwrap());
    let log = LogService::new(store, Arc::new(SystemClock), Arc::new(OsRandom), Arc::new(signer), LogConfig::default());
    let org = log.org(&OrgSlug::default_org()).await.unwrap();
    (log, org)
}

/// Appends events `range` in batches through the real append path, then shuts down (which
/// signs a checkpoint of exactly the final size) and returns that checkpoint.
pub async fn append_range(dir: &Path, range: std::ops::Range<u64>, batch: u64) -> String {
    let (log, org) = service(dir).await;
    let mut i = range.start;
    while i < range.end {
        let k = batch.min(range.end - i);
        log.append(&org, (i..i + k).map(event).collect(), None).await.unwrap();
        i += k;
    }
    log.shutdown().await;
    log.latest_checkpoint(&org).await.unwrap().unwrap().note
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("logbook.db")
}

/// Opens the database file directly, as an attacker with the file would, and removes the
/// append-only triggers.
pub fn attacker(dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(db_path(dir)).unwrap();
    for t in ["events", "tiles", "checkpoints"] {
        for op in ["update", "delete"] {
            c.execute_batch(&format!("DROP TRIGGER IF EXISTS {t}_append_only_{op}")).unwrap();
        }
    }
    c
}
