//! The store's files are their owner's only, whatever the umask (the test process's is the usual
//! 022, which would leave them readable by everyone): the data directory 0700, the database and
//! its WAL and shared-memory files 0600; looser ones Logbook made earlier are tightened at open.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use logbook_core::{OrgSlug, Timestamp};
use logbook_store::Store;
use logbook_store_sqlite::{SqliteStore, FILE_NAME};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn set_mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn sibling(db: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

#[tokio::test]
async fn a_new_store_is_created_owner_only() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data").join("logbook");
    let store = SqliteStore::open(&dir).await.unwrap();
    store.ensure_org(&OrgSlug::parse("acme").unwrap(), Timestamp::from_micros(0)).await.unwrap();
    let db = dir.join(FILE_NAME);
    assert_eq!(mode(&dir), 0o700, "the data directory");
    assert_eq!(mode(&t.path().join("data")), 0o700, "a parent it created");
    assert_eq!(mode(&db), 0o600, "the database");
    for suffix in ["-wal", "-shm"] {
        assert!(sibling(&db, suffix).exists(), "{suffix} exists while the store is open");
        assert_eq!(mode(&sibling(&db, suffix)), 0o600, "{suffix}");
    }

    // A database named by a URL: its missing directory is made 0700 too.
    let elsewhere = t.path().join("by-url").join("x.db");
    let _store = SqliteStore::open_file(&elsewhere).await.unwrap();
    assert_eq!(mode(&elsewhere), 0o600);
    assert_eq!(mode(elsewhere.parent().unwrap()), 0o700);
}

#[tokio::test]
async fn looser_files_of_an_existing_store_are_tightened_at_open() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let db = dir.join(FILE_NAME);
    drop(SqliteStore::open(&dir).await.unwrap());
    set_mode(&dir, 0o755);
    set_mode(&db, 0o644);
    let _store = SqliteStore::open(&dir).await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&sibling(&db, "-wal")), 0o600);

    // A shared directory that only holds a database named by a URL is left as it is.
    let shared = t.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o755);
    let _other = SqliteStore::open_file(&shared.join("x.db")).await.unwrap();
    assert_eq!(mode(&shared), 0o755);
    assert_eq!(mode(&shared.join("x.db")), 0o600);
}
