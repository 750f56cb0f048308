//! The witness's own cosigning key: `witness.key` in its data directory, generated at first
//! start (file 0600, directory 0700, written durably), refused when its group or others may read
//! it, as the log's signing key is.

use std::path::{Path, PathBuf};

use logbook_core::Random;
use logbook_integrity::cosignature::CosignatureSigner;
use logbook_integrity::keys::{create_private_dir, write_private};

/// The key's file name inside the data directory.
pub const KEY_FILE: &str = "witness.key";

/// The key name when `--name` is not given at first start.
pub const DEFAULT_NAME: &str = "logbook-witness";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

pub fn path(dir: &Path) -> PathBuf {
    dir.join(KEY_FILE)
}

/// Reads the key, or generates it named `name` (default [`DEFAULT_NAME`]) when the directory
/// holds none. A `name` that differs from the existing key's is refused: the name is part of
/// every cosignature, and the logs that trust this witness know it by it.
pub fn load_or_create(dir: &Path, name: Option<&str>, random: &dyn Random) -> Result<CosignatureSigner, KeyError> {
    let file = path(dir);
    if file.exists() {
        let signer = load(dir)?;
        if let Some(name) = name.filter(|n| *n != signer.name()) {
            return Err(KeyError(format!(
                "the witness key in {} is named {:?}, not {name:?}; a witness keeps its name (leave out --name, \
                 or use another data directory for a new witness)",
                file.display(),
                signer.name()
            )));
        }
        return Ok(signer);
    }
    let signer = CosignatureSigner::generate(random, name.unwrap_or(DEFAULT_NAME))
        .map_err(|e| KeyError(format!("the witness name {:?}: {e}", name.unwrap_or(DEFAULT_NAME))))?;
    create_private_dir(dir).map_err(|e| KeyError(format!("creating {}: {e}", dir.display())))?;
    write_private(&file, signer.secret()).map_err(|e| KeyError(format!("writing {}: {e}", file.display())))?;
    tracing::info!(path = %file.display(), verifier_key = signer.verifier_key(), "generated the witness key");
    Ok(signer)
}

/// Reads the key, never generating one. Errors never echo the file's content.
pub fn load(dir: &Path) -> Result<CosignatureSigner, KeyError> {
    let file = path(dir);
    let text = std::fs::read_to_string(&file).map_err(|e| KeyError(format!("reading {}: {e}", file.display())))?;
    check_private(&file)?;
    CosignatureSigner::from_secret(&text).map_err(|e| KeyError(format!("{}: {e}", file.display())))
}

#[cfg(unix)]
fn check_private(file: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file)
        .map_err(|e| KeyError(format!("reading {}: {e}", file.display())))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError(format!(
            "the witness key {} has mode {mode:03o}: its group or others may read it, so it is refused; \
             make it readable by its owner only: chmod 600 {}",
            file.display(),
            file.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_file: &Path) -> Result<(), KeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn generated_once_private_named_and_then_read() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("w");
        let a = load_or_create(&dir, Some("witness.example/w1"), &logbook_core::OsRandom).unwrap();
        assert!(a.verifier_key().starts_with("witness.example/w1+"));
        let b = load_or_create(&dir, None, &logbook_core::OsRandom).unwrap();
        assert_eq!(a.verifier_key(), b.verifier_key());
        let e = load_or_create(&dir, Some("other"), &logbook_core::OsRandom).unwrap_err().to_string();
        assert!(e.contains("other") && e.contains("witness.example/w1"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path(&dir)), 0o600);
            assert_eq!(mode(&dir), 0o700);
            std::fs::set_permissions(path(&dir), std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = load(&dir).unwrap_err().to_string();
            assert!(e.contains("chmod 600") && !e.contains("PRIVATE"), "{e}");
        }
        assert_eq!(load_or_create(&tmp.path().join("x"), Some("a b"), &logbook_core::OsRandom).unwrap_err().to_string().contains("a b"), true);
    }
}
