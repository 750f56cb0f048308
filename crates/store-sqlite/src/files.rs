//! The store's files are its owner's only: the data directory 0700, the database and its WAL and
//! shared-memory siblings 0600, whatever the process's umask.
//!
//! A new database file is created 0600 before SQLite opens it (SQLite gives the `-wal` and `-shm`
//! files it creates later the database file's mode). Files that Logbook made earlier with looser
//! modes — the database, its siblings, the data directory `open` is given — are tightened at
//! open, with an info line saying so. A directory that only holds a database named by a
//! `sqlite://` URL is created 0700 when missing, but left as it is when it exists: it may be
//! shared with files that are not Logbook's.

use std::io;
use std::path::{Path, PathBuf};

/// The database file and the siblings SQLite keeps beside it in WAL mode.
fn database_files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [db.to_owned(), with("-wal"), with("-shm")]
}

/// Creates `dir` and its missing parents 0700.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)?;
    // The umask may have taken bits away, never added any; set exactly 0700 anyway.
    restrict(dir, 0o700)
}

/// The data directory: created 0700, or tightened to 0700 if it exists with looser modes.
pub(crate) fn private_data_dir(dir: &Path) -> io::Result<()> {
    create_private_dir(dir)?;
    tighten(dir, 0o700)
}

/// Creates the database file 0600 if it does not exist yet (SQLite would create it with the
/// umask's mode), and tightens an existing one and its siblings to 0600.
pub(crate) fn before_open(db: &Path) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    if !db.exists() {
        opts.open(db)?;
        restrict(db, 0o600)?;
    }
    after_open(db)
}

/// Tightens the database and whichever of its siblings exist to 0600 (after open, SQLite has
/// created them).
pub(crate) fn after_open(db: &Path) -> io::Result<()> {
    for f in database_files(db) {
        match tighten(&f, 0o600) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// Removes every permission bit beyond `mode` that `path` has, saying so.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let had = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if had & !mode != 0 {
        restrict(path, had & mode)?;
        tracing::info!(path = %path.display(), from = format!("{had:03o}"), to = format!("{:03o}", had & mode),
            "tightened the mode of a store file: it is its owner's only");
    }
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}
