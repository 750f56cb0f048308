//! The checkpoint signing key on disk: read from a configured file, or generated at first use
//! into the data directory with mode 0600 (the directory, if this creates it, 0700).
//!
//! A key file that its group or others may read is refused, not warned about: the key is the
//! installation's secret (checkpoint signatures, and every key derived from it, among them the
//! one that encrypts TOTP secrets), and a warning in a log nobody reads protects nothing.
//!
//! Every process and every command that signs or checks checkpoints goes through
//! [`SigningKeyFile`], so a configured key file is never silently replaced by a generated one.

use std::io::Write;
use std::path::{Path, PathBuf};

use logbook_core::Random;

use crate::checkpoint::CheckpointSigner;

/// The key's file name inside the data directory, when no key file is configured.
pub const KEY_FILE: &str = "checkpoint-signing.key";

/// `<data_dir>/checkpoint-signing.key`.
pub fn default_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

/// Where the signing key is, and whether it may be generated there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyFile {
    path: PathBuf,
    /// Only the default location is generated at first use: a configured file must exist.
    generate: bool,
    /// The name of a generated key (the origin prefix, made a valid note key name).
    key_name: String,
}

impl SigningKeyFile {
    /// The configured file if there is one, otherwise `<data_dir>/checkpoint-signing.key`.
    pub fn resolve(configured: Option<&Path>, data_dir: &Path, origin_prefix: &str) -> Self {
        match configured {
            Some(path) => Self { path: path.to_owned(), generate: false, key_name: key_name(origin_prefix) },
            None => Self { path: default_path(data_dir), generate: true, key_name: key_name(origin_prefix) },
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a configured file (as opposed to the data directory's default one).
    pub fn is_configured(&self) -> bool {
        !self.generate
    }

    /// Reads the key; generates and writes it first when this is the default location and no key
    /// is there yet. A configured file that does not exist is an error.
    pub fn load_or_create(&self, random: &dyn Random) -> Result<CheckpointSigner, KeyError> {
        if !self.generate || self.path.exists() {
            return load(&self.path);
        }
        let signer = CheckpointSigner::generate(random, &self.key_name).map_err(|e| KeyError(e.to_string()))?;
        write_private(&self.path, signer.secret())
            .map_err(|e| KeyError(format!("writing {}: {e}", self.path.display())))?;
        tracing::info!(path = %self.path.display(), verifier_key = signer.verifier_key(), "generated a checkpoint signing key");
        Ok(signer)
    }

    /// Reads the key, never generating one.
    pub fn load(&self) -> Result<CheckpointSigner, KeyError> {
        load(&self.path)
    }
}

/// A signed-note key name may not contain spaces or '+'.
fn key_name(origin_prefix: &str) -> String {
    origin_prefix.chars().map(|c| if c.is_whitespace() || c == '+' { '-' } else { c }).collect()
}

/// Reads a signing key file, refusing one that its group or others may access. The error never
/// echoes the file's content.
pub fn load(path: &Path) -> Result<CheckpointSigner, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyError(format!("reading {}: {e}", path.display())))?;
    check_private(path)?;
    CheckpointSigner::from_secret(&text).map_err(|e| KeyError(format!("{}: {e}", path.display())))
}

/// Refuses a key file with any permission bit for its group or others (checked after reading, so
/// a missing file is reported as such).
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| KeyError(format!("reading {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError(format!(
            "the checkpoint signing key {} has mode {mode:03o}: its group or others may read it, so it is refused; \
             make it readable by its owner only: chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

/// Creates `dir` (and its missing parents) readable by its owner only. An existing directory is
/// left as it is: it may be shared, and the key file's own mode is what is checked.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Writes a new file readable by its owner only, and makes it durable (file and directory).
/// Fails if the file exists. (Also the witness's key file.)
pub fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_default_location_is_generated_once_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKeyFile::resolve(None, dir.path(), "logbook example");
        assert_eq!(key.path(), dir.path().join(KEY_FILE));
        let a = key.load_or_create(&logbook_core::OsRandom).unwrap();
        assert!(a.verifier_key().starts_with("logbook-example+"), "{}", a.verifier_key());
        let b = key.load_or_create(&logbook_core::OsRandom).unwrap();
        assert_eq!(a.verifier_key(), b.verifier_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_configured_file_is_never_generated() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("elsewhere.key");
        let key = SigningKeyFile::resolve(Some(&missing), dir.path(), "logbook.local");
        assert!(key.is_configured());
        assert!(key.load_or_create(&logbook_core::OsRandom).is_err());
        assert!(!missing.exists());
        assert!(!dir.path().join(KEY_FILE).exists(), "no stray key in the data directory");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_its_group_or_others_may_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKeyFile::resolve(None, &dir.path().join("data"), "logbook.local");
        let made = key.load_or_create(&logbook_core::OsRandom).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("data")), 0o700, "the directory it created");
        for loose in [0o640, 0o604, 0o660, 0o644, 0o601] {
            std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(loose)).unwrap();
            let e = key.load_or_create(&logbook_core::OsRandom).unwrap_err().to_string();
            assert!(e.contains(&key.path().display().to_string()) && e.contains("chmod 600"), "{loose:o}: {e}");
            assert!(key.load().is_err(), "{loose:o}");
        }
        std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(key.load().unwrap().verifier_key(), made.verifier_key(), "owner-only modes are fine");
    }

    #[test]
    fn errors_never_echo_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "PRIVATE+KEY+not-a-real-secret-zzz").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let e = load(&path).unwrap_err().to_string();
        assert!(!e.contains("not-a-real-secret"), "{e}");
    }
}
