//! The checkpoint signing key a store is served with.
//!
//! The data directory's default key file is generated at first use. That is right for a new
//! store and wrong for one that already holds signed checkpoints: a command run with the key
//! elsewhere (another data directory, a key file setting it did not see) would generate a stray
//! key and sign with it, and every later check would report the log as damaged. So a key is
//! generated only while the store holds no checkpoint at all.

use logbook_core::Random;
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_integrity::keys::{KeyError, SigningKeyFile};
use logbook_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("reading the store's checkpoints: {0}")]
    Store(#[from] StoreError),
    #[error(
        "there is no checkpoint signing key at {path}, but the store already holds checkpoints signed by {signer} \
         (organization {org}, size {size}): a new key would sign checkpoints nobody trusts. Give the key that signed \
         them with --signing-key-file (LOGBOOK_SIGNING_KEY_FILE), or the data directory that holds it with --data-dir"
    )]
    WouldReplace { path: String, signer: String, org: String, size: u64 },
}

/// Loads the key of `file`; generates the default one only for a store without checkpoints.
pub async fn load_or_create(
    store: &dyn Store,
    file: &SigningKeyFile,
    random: &dyn Random,
) -> Result<CheckpointSigner, SigningKeyError> {
    if file.is_configured() || file.path().exists() {
        return Ok(file.load()?);
    }
    for org in store.orgs().await? {
        if let Some(checkpoint) = store.latest_checkpoint(org.id).await? {
            return Err(SigningKeyError::WouldReplace {
                path: file.path().display().to_string(),
                signer: signer_name(&checkpoint.note),
                org: org.slug.to_string(),
                size: checkpoint.size,
            });
        }
    }
    Ok(file.load_or_create(random)?)
}

/// The key name on a signed note's first signature line (`— name base64`).
fn signer_name(note: &str) -> String {
    note.lines()
        .find_map(|l| l.strip_prefix("\u{2014} "))
        .and_then(|l| l.split(' ').next())
        .map_or_else(|| "another key".to_owned(), |name| format!("the key {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signer_is_named_from_the_note() {
        let note = "logbook.local/default\n3\nq80=\n\n\u{2014} logbook.local AbCdEf==\n";
        assert_eq!(signer_name(note), "the key \"logbook.local\"");
        assert_eq!(signer_name("no signature"), "another key");
    }
}
