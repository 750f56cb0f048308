//! The checkpoint signing key of a server: where [`Settings`] says it is. The file handling
//! itself is `logbook_integrity::keys`, shared with every command of the binary.

use logbook_core::Random;
use logbook_integrity::checkpoint::CheckpointSigner;
pub use logbook_integrity::keys::{default_path, load, SigningKeyFile, KEY_FILE};

use crate::{Settings, StartError};

/// Reads the key the settings name, or generates it at the default location at first start.
pub fn load_or_create(settings: &Settings, random: &dyn Random) -> Result<CheckpointSigner, StartError> {
    settings.signing_key().load_or_create(random).map_err(|e| StartError::Key(e.to_string()))
}
