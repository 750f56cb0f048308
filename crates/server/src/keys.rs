//! The checkpoint signing key: read from a configured file, or generated at first start into the
//! data directory with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use logbook_core::Random;
use logbook_integrity::checkpoint::CheckpointSigner;

use crate::{Settings, StartError};

pub const KEY_FILE: &str = "checkpoint-signing.key";

pub fn default_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

pub fn load_or_create(settings: &Settings, random: &dyn Random) -> Result<CheckpointSigner, StartError> {
    let key_err = |m: String| StartError::Key(m);
    match &settings.signing_key_file {
        Some(path) => load(path),
        None => {
            let path = default_path(&settings.data_dir);
            if path.exists() {
                return load(&path);
            }
            let name = key_name(&settings.origin_prefix);
            let signer = CheckpointSigner::generate(random, &name).map_err(|e| key_err(e.to_string()))?;
            write_private(&path, signer.secret()).map_err(|e| key_err(format!("writing {}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), verifier_key = signer.verifier_key(), "generated a checkpoint signing key");
            Ok(signer)
        }
    }
}

/// A signed-note key name may not contain spaces or '+'.
fn key_name(origin_prefix: &str) -> String {
    origin_prefix.chars().map(|c| if c.is_whitespace() || c == '+' { '-' } else { c }).collect()
}

pub fn load(path: &Path) -> Result<CheckpointSigner, StartError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| StartError::Key(format!("reading {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the checkpoint signing key is readable by others; chmod 600 it");
            }
        }
    }
    // The error never echoes the file's content.
    CheckpointSigner::from_secret(&text).map_err(|e| StartError::Key(format!("{}: {e}", path.display())))
}

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
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
