//! The witness's state: one SQLite file, `witness.db` in the data directory. Per log (its origin):
//! the log's verifier key, and the newest checkpoint this witness cosigned (size, root, note).
//!
//! Every write is `BEGIN IMMEDIATE … COMMIT` with `synchronous=FULL` in WAL mode: the commit is
//! on disk before the caller goes on, and [`State::advance`] re-reads the row inside its
//! transaction and writes only if it still holds what the caller checked against (a
//! compare-and-swap). So neither two concurrent requests, nor two witness processes on one
//! directory, nor a crash between the check and the write can make the stored size go back.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use logbook_integrity::Hash;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// The file name inside the data directory.
pub const STATE_FILE: &str = "witness.db";

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE logs (
        origin TEXT PRIMARY KEY NOT NULL,
        key TEXT NOT NULL,
        size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
        root BLOB CHECK (root IS NULL OR length(root) = 32),
        checkpoint TEXT,
        added_at INTEGER NOT NULL,
        updated_at INTEGER
    ) STRICT;",
];

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the witness state {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("the log {0} is already added with another key; remove it first or use another origin")]
    KeyConflict(String),
    #[error("a stored size or root is not valid")]
    Corrupt,
}

/// What the witness holds for one log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogState {
    pub origin: String,
    /// The log's checkpoint verifier key (signed-note form).
    pub key: String,
    /// The size of the newest checkpoint cosigned, 0 before the first.
    pub size: u64,
    /// Its root; `None` before the first.
    pub root: Option<Hash>,
    /// Its signed note as received.
    pub checkpoint: Option<String>,
}

/// The outcome of [`State::advance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// Stored: the row held what the caller expected.
    Done,
    /// Not stored: the row moved on since the caller read it; this is what it holds now.
    Moved { size: u64 },
}

/// The open state file. One connection behind a mutex: the witness's writes are tiny and the
/// lock is never held across an await (callers run on a blocking thread).
#[derive(Debug)]
pub struct State {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for sql in MIGRATIONS.iter().skip(applied) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len())?;
    tx.commit()
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl State {
    /// Opens (creating and migrating) `<dir>/witness.db`. The directory must exist.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let path = dir.join(STATE_FILE);
        let err = |source| StateError::Sqlite { path: path.clone(), source };
        let mut conn = Connection::open(&path).map_err(err)?;
        configure(&conn).map_err(err)?;
        migrate(&mut conn).map_err(err)?;
        Ok(Self { path, conn: Mutex::new(conn) })
    }

    fn sqlite(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite { path: self.path.clone(), source }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-done transaction behind (rusqlite rolls
        // back on drop), so the connection stays usable.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a log. Adding it again with the same key changes nothing; another key is
    /// refused (a witness that silently took a new key would cosign whatever its holder signs).
    pub fn add_log(&self, origin: &str, key: &str, now_micros: i64) -> Result<bool, StateError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.sqlite(e))?;
        let existing: Option<String> = tx
            .query_row("SELECT key FROM logs WHERE origin = ?1", [origin], |r| r.get(0))
            .optional()
            .map_err(|e| self.sqlite(e))?;
        match existing {
            Some(k) if k == key => Ok(false),
            Some(_) => Err(StateError::KeyConflict(origin.to_owned())),
            None => {
                tx.execute("INSERT INTO logs (origin, key, added_at) VALUES (?1, ?2, ?3)", params![origin, key, now_micros])
                    .map_err(|e| self.sqlite(e))?;
                tx.commit().map_err(|e| self.sqlite(e))?;
                Ok(true)
            }
        }
    }

    /// What the witness holds for `origin`, if it witnesses that log.
    pub fn log(&self, origin: &str) -> Result<Option<LogState>, StateError> {
        let conn = self.lock();
        read(&conn, origin).map_err(|e| self.sqlite(e))?.map(|r| r.into_state(origin)).transpose()
    }

    /// Every log, by origin.
    pub fn logs(&self) -> Result<Vec<LogState>, StateError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT origin, key, size, root, checkpoint FROM logs ORDER BY origin")
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, Row { key: r.get(1)?, size: r.get(2)?, root: r.get(3)?, checkpoint: r.get(4)? }))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (origin, row) = row.map_err(|e| self.sqlite(e))?;
            out.push(row.into_state(&origin)?);
        }
        Ok(out)
    }

    /// Stores `new_size`/`new_root`/`checkpoint` for `origin` if, inside one IMMEDIATE
    /// transaction, the row still holds `expected_size` and `expected_root`; commits (durably)
    /// before returning [`Advance::Done`].
    pub fn advance(
        &self,
        origin: &str,
        expected_size: u64,
        expected_root: Option<&Hash>,
        new_size: u64,
        new_root: &Hash,
        checkpoint: &str,
        now_micros: i64,
    ) -> Result<Advance, StateError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.sqlite(e))?;
        let current = read(&tx, origin).map_err(|e| self.sqlite(e))?.ok_or(StateError::Corrupt)?.into_state(origin)?;
        if current.size != expected_size || current.root.as_ref() != expected_root || new_size < current.size {
            return Ok(Advance::Moved { size: current.size });
        }
        tx.execute(
            "UPDATE logs SET size = ?2, root = ?3, checkpoint = ?4, updated_at = ?5 WHERE origin = ?1",
            params![origin, to_i64(new_size), &new_root.0[..], checkpoint, now_micros],
        )
        .map_err(|e| self.sqlite(e))?;
        tx.commit().map_err(|e| self.sqlite(e))?;
        Ok(Advance::Done)
    }
}

struct Row {
    key: String,
    size: i64,
    root: Option<Vec<u8>>,
    checkpoint: Option<String>,
}

impl Row {
    fn into_state(self, origin: &str) -> Result<LogState, StateError> {
        let size = u64::try_from(self.size).map_err(|_| StateError::Corrupt)?;
        let root = match self.root {
            Some(r) => Some(Hash(r.try_into().map_err(|_| StateError::Corrupt)?)),
            None => None,
        };
        Ok(LogState { origin: origin.to_owned(), key: self.key, size, root, checkpoint: self.checkpoint })
    }
}

fn read(conn: &Connection, origin: &str) -> rusqlite::Result<Option<Row>> {
    conn.query_row("SELECT key, size, root, checkpoint FROM logs WHERE origin = ?1", [origin], |r| {
        Ok(Row { key: r.get(0)?, size: r.get(1)?, root: r.get(2)?, checkpoint: r.get(3)? })
    })
    .optional()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_log_is_added_once_and_advances_only_from_what_was_checked() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        assert!(state.add_log("o", "k", 1).unwrap());
        assert!(!state.add_log("o", "k", 2).unwrap(), "same key: nothing changes");
        assert!(matches!(state.add_log("o", "other", 3), Err(StateError::KeyConflict(_))));
        let s = state.log("o").unwrap().unwrap();
        assert_eq!((s.size, s.root, s.checkpoint), (0, None, None));
        assert_eq!(state.log("nope").unwrap(), None);

        let r5 = Hash([5; 32]);
        assert_eq!(state.advance("o", 0, None, 5, &r5, "cp5", 4).unwrap(), Advance::Done);
        // A second writer that checked against size 0 loses.
        assert_eq!(state.advance("o", 0, None, 3, &Hash([3; 32]), "cp3", 5).unwrap(), Advance::Moved { size: 5 });
        // Same size, other root expected: refused.
        assert_eq!(state.advance("o", 5, Some(&Hash([9; 32])), 6, &r5, "x", 6).unwrap(), Advance::Moved { size: 5 });
        // Never backwards, even when the expectation matches.
        assert_eq!(state.advance("o", 5, Some(&r5), 4, &r5, "x", 6).unwrap(), Advance::Moved { size: 5 });
        drop(state);

        let again = State::open(dir.path()).unwrap();
        let s = again.log("o").unwrap().unwrap();
        assert_eq!((s.size, s.root, s.checkpoint.as_deref()), (5, Some(r5), Some("cp5")));
        assert_eq!(again.logs().unwrap().len(), 1);
    }
}
