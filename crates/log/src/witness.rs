//! The witness directory: every checkpoint also kept outside the database, with its history.
//!
//! A checkpoint only protects against someone who can rewrite the database if a copy of it
//! lives where they cannot reach. Per organization `org` the directory holds:
//!
//! - `<org>.checkpoints`: the history, one JSON line per checkpoint (`{"size":…,"note":"…"}`),
//!   only ever appended to (and fsynced) — an auditor can check the log against every checkpoint
//!   it ever signed, and a torn last line (a crash mid-write) is skipped by readers and never
//!   glued to the next line;
//! - `<org>.checkpoint`: the newest checkpoint alone (what `logbook verify --checkpoint` takes),
//!   replaced atomically (temporary file, fsync, rename, fsync of the directory).
//!
//! Neither is ever given a checkpoint that does not extend the newest one there: the caller
//! ([`crate::sequencer`]) proves the consistency of the new tree with the directory's newest
//! checkpoint before it signs ([`crate::trust`]), and [`publish`] refuses, under a lock shared by
//! every process writing the directory, a checkpoint whose predecessor there is not the one that
//! was checked.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use logbook_core::OrgSlug;
use logbook_integrity::checkpoint::{CheckpointVerifier, VerifiedCheckpoint};
use logbook_integrity::Hash;
use serde::{Deserialize, Serialize};

/// The newest checkpoint of `org`, alone.
pub fn path(dir: &Path, org: &OrgSlug) -> PathBuf {
    dir.join(format!("{org}.checkpoint"))
}

/// Every checkpoint of `org`, one JSON line each.
pub fn history_path(dir: &Path, org: &OrgSlug) -> PathBuf {
    dir.join(format!("{org}.checkpoints"))
}

fn lock_path(dir: &Path, org: &OrgSlug) -> PathBuf {
    dir.join(format!(".{org}.lock"))
}

#[derive(Debug, Serialize, Deserialize)]
struct HistoryLine {
    size: u64,
    note: String,
}

/// A checkpoint read back from the directory, its signature checked.
#[derive(Debug, Clone, PartialEq)]
pub struct WitnessedCheckpoint {
    pub size: u64,
    pub root: Hash,
    pub note: String,
}

impl WitnessedCheckpoint {
    fn read(note: &str, verifier: &CheckpointVerifier, origin: &str) -> Option<Self> {
        match verifier.verify(note) {
            Ok(VerifiedCheckpoint { origin: o, size, root }) if o == origin => {
                Some(Self { size, root, note: note.to_owned() })
            }
            _ => None,
        }
    }
}

/// Why a checkpoint was not written.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The directory's newest checkpoint is not the one the new tree was checked against (another
    /// process wrote a newer one meanwhile, or someone put one there): nothing was written.
    #[error("the witness directory's newest checkpoint (size {found}) is not the one the new checkpoint was checked against (size {checked})")]
    NotChecked { found: u64, checked: u64 },
}

/// The newest validly signed checkpoint of `origin` in the directory: the newest file, or when
/// that is missing or not a valid checkpoint of this log, the history's largest. `None` if there
/// is none. Reads the history only in that case, so it stays cheap however long the history grows
/// (see [`newest_in_history`] for the thorough read done at start).
pub fn newest(
    dir: &Path,
    org: &OrgSlug,
    verifier: &CheckpointVerifier,
    origin: &str,
) -> std::io::Result<Option<WitnessedCheckpoint>> {
    match std::fs::read_to_string(path(dir, org)) {
        Ok(note) => {
            if let Some(c) = WitnessedCheckpoint::read(&note, verifier, origin) {
                return Ok(Some(c));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    newest_in_history(dir, org, verifier, origin)
}

/// The largest validly signed checkpoint of `origin` in the history.
pub fn newest_in_history(
    dir: &Path,
    org: &OrgSlug,
    verifier: &CheckpointVerifier,
    origin: &str,
) -> std::io::Result<Option<WitnessedCheckpoint>> {
    Ok(history(dir, org, verifier, origin)?.into_iter().max_by_key(|c| c.size))
}

/// Every validly signed checkpoint of `origin` in the history, in the order written.
pub fn history(
    dir: &Path,
    org: &OrgSlug,
    verifier: &CheckpointVerifier,
    origin: &str,
) -> std::io::Result<Vec<WitnessedCheckpoint>> {
    let file = match File::open(history_path(dir, org)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        // A torn or foreign line is skipped: only signed checkpoints of this log count.
        let Ok(entry) = serde_json::from_slice::<HistoryLine>(&line) else { continue };
        if let Some(c) = WitnessedCheckpoint::read(&entry.note, verifier, origin) {
            if c.size == entry.size {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// Writes `note` (size `size`) to the history and as the newest checkpoint, provided the
/// directory's newest checkpoint is still `checked` — the one the caller proved the new tree
/// extends (`None`: the directory had none). A directory already holding a checkpoint at least as
/// large is left as it is (another process wrote it). Blocking: call from `spawn_blocking`.
pub fn publish(
    dir: &Path,
    org: &OrgSlug,
    verifier: &CheckpointVerifier,
    origin: &str,
    note: &str,
    size: u64,
    checked: Option<u64>,
) -> Result<bool, PublishError> {
    create_dir(dir)?;
    // One writer at a time across processes sharing the directory; released when `lock` drops.
    let lock = OpenOptions::new().create(true).truncate(false).write(true).open(lock_path(dir, org))?;
    lock.lock()?;
    let newest = newest(dir, org, verifier, origin)?;
    let found = newest.as_ref().map(|c| c.size);
    if found.is_some_and(|f| f >= size) {
        return Ok(false);
    }
    if found != checked {
        return Err(PublishError::NotChecked { found: found.unwrap_or(0), checked: checked.unwrap_or(0) });
    }
    append_history(dir, org, size, note)?;
    write_atomically(dir, &path(dir, org), note.as_bytes())?;
    Ok(true)
}

fn create_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        if let Some(parent) = dir.parent() {
            File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

fn append_history(dir: &Path, org: &OrgSlug, size: u64, note: &str) -> std::io::Result<()> {
    let target = history_path(dir, org);
    let new = !target.exists();
    let mut f = OpenOptions::new().create(true).append(true).read(true).open(&target)?;
    let mut line = serde_json::to_vec(&HistoryLine { size, note: note.to_owned() }).map_err(std::io::Error::other)?;
    line.push(b'\n');
    // After a torn write the file does not end with a newline: start on a line of our own, so the
    // torn line stays the only damaged one.
    let len = f.metadata()?.len();
    if len > 0 {
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.insert(0, b'\n');
        }
    }
    f.write_all(&line)?;
    f.sync_all()?;
    if new {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

pub fn write_atomically(dir: &Path, target: &Path, data: &[u8]) -> std::io::Result<()> {
    create_dir(dir)?;
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint");
    // Unique per process and call: processes sharing a witness directory never write into each
    // other's temporary file.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, target)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use logbook_core::SeededRandom;
    use logbook_integrity::checkpoint::CheckpointSigner;

    use super::*;

    const ORIGIN: &str = "logbook.local/acme";

    fn note(signer: &CheckpointSigner, size: u64) -> String {
        signer.sign(ORIGIN, size, &logbook_integrity::record_hash(&size.to_be_bytes())).unwrap()
    }

    #[test]
    fn keeps_every_checkpoint_and_the_newest_alone() {
        let dir = tempfile::tempdir().unwrap();
        let org = OrgSlug::parse("acme").unwrap();
        let signer = CheckpointSigner::generate(&SeededRandom::new(1), "logbook.local").unwrap();
        let v = signer.verifier();
        assert_eq!(newest(dir.path(), &org, &v, ORIGIN).unwrap(), None);
        assert!(publish(dir.path(), &org, &v, ORIGIN, &note(&signer, 3), 3, None).unwrap());
        assert!(publish(dir.path(), &org, &v, ORIGIN, &note(&signer, 7), 7, Some(3)).unwrap());
        assert_eq!(std::fs::read_to_string(path(dir.path(), &org)).unwrap(), note(&signer, 7));
        let sizes: Vec<_> = history(dir.path(), &org, &v, ORIGIN).unwrap().iter().map(|c| c.size).collect();
        assert_eq!(sizes, vec![3, 7]);
        assert_eq!(newest(dir.path(), &org, &v, ORIGIN).unwrap().unwrap().size, 7);

        // Never replaced by a smaller one, nor by one checked against another predecessor.
        assert!(!publish(dir.path(), &org, &v, ORIGIN, &note(&signer, 5), 5, Some(3)).unwrap());
        let err = publish(dir.path(), &org, &v, ORIGIN, &note(&signer, 9), 9, Some(3)).unwrap_err();
        assert!(matches!(err, PublishError::NotChecked { found: 7, checked: 3 }), "{err}");
        assert_eq!(newest(dir.path(), &org, &v, ORIGIN).unwrap().unwrap().size, 7);

        let mut names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [".acme.lock", "acme.checkpoint", "acme.checkpoints"], "no temporary file left behind");
    }

    #[test]
    fn a_torn_line_and_foreign_checkpoints_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let org = OrgSlug::parse("acme").unwrap();
        let signer = CheckpointSigner::generate(&SeededRandom::new(1), "logbook.local").unwrap();
        let other = CheckpointSigner::generate(&SeededRandom::new(2), "logbook.local").unwrap();
        let v = signer.verifier();
        publish(dir.path(), &org, &v, ORIGIN, &note(&signer, 3), 3, None).unwrap();
        // A crash mid-append, then a line signed by another key.
        let mut f = OpenOptions::new().append(true).open(history_path(dir.path(), &org)).unwrap();
        f.write_all(br#"{"size":4,"note":"logbook.lo"#).unwrap();
        drop(f);
        append_history(dir.path(), &org, 100, &note(&other, 100)).unwrap();
        publish(dir.path(), &org, &v, ORIGIN, &note(&signer, 8), 8, Some(3)).unwrap();
        let sizes: Vec<_> = history(dir.path(), &org, &v, ORIGIN).unwrap().iter().map(|c| c.size).collect();
        assert_eq!(sizes, vec![3, 8]);
        // The newest file was removed: the history still says what the newest was.
        std::fs::remove_file(path(dir.path(), &org)).unwrap();
        assert_eq!(newest(dir.path(), &org, &v, ORIGIN).unwrap().unwrap().size, 8);
    }
}
