//! The witness directory: a copy of each new checkpoint outside the database.
//!
//! A checkpoint only protects against someone who can rewrite the database if a copy of it
//! lives where they cannot reach. Each new checkpoint of organization `org` replaces
//! `<dir>/<org>.checkpoint` atomically (write a temporary file, fsync it, rename it over the old
//! one, fsync the directory), so the file is always one whole, signed checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};

use logbook_core::OrgSlug;

pub fn path(dir: &Path, org: &OrgSlug) -> PathBuf {
    dir.join(format!("{org}.checkpoint"))
}

pub async fn publish(dir: &Path, org: &OrgSlug, note: &str) -> std::io::Result<()> {
    let dir = dir.to_owned();
    let target = path(&dir, org);
    let note = note.to_owned();
    tokio::task::spawn_blocking(move || write_atomically(&dir, &target, note.as_bytes()))
        .await
        .map_err(std::io::Error::other)?
}

pub fn write_atomically(dir: &Path, target: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint");
    // Unique per process and call: processes sharing a witness directory never write into each
    // other's temporary file.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, target)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let org = OrgSlug::parse("acme").unwrap();
        publish(dir.path(), &org, "one\n").await.unwrap();
        publish(dir.path(), &org, "two\n").await.unwrap();
        assert_eq!(std::fs::read_to_string(path(dir.path(), &org)).unwrap(), "two\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("acme.checkpoint")], "no temporary file left behind");
    }
}
