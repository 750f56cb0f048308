//! Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519.
//!
//! ```text
//! logbook.example/default        <- origin: names the log
//! 10000                          <- size
//! 7Bq3…base64 root…=             <- root hash
//!
//! — logbook.example Az3grl…signature…
//! ```

use std::fmt;

use base64::Engine as _;
use logbook_core::Random;
use signed_note::{Note, Signer as _, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::Checkpoint;

use crate::Hash;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("the signing key is malformed")]
    BadSigningKey,
    #[error("the verifier key is malformed")]
    BadVerifierKey,
    #[error("key name must be non-empty, without spaces or '+'")]
    BadKeyName,
    #[error("not a signed note")]
    MalformedNote,
    #[error("not a checkpoint")]
    MalformedCheckpoint,
    #[error("no valid signature by {0}")]
    BadSignature(String),
    #[error("no cosignature by {0}")]
    MissingCosignature(String),
    #[error("invalid cosignature by {0}")]
    BadCosignature(String),
}

/// A checkpoint whose signature has been checked.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Signs checkpoints. Its `Debug` never shows the key.
pub struct CheckpointSigner {
    signer: StandardSigner,
    secret: String,
    verifier_key: String,
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("verifier_key", &self.verifier_key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

impl CheckpointSigner {
    /// A new Ed25519 key named `name` (conventionally the log origin's host part).
    pub fn generate(random: &dyn Random, name: &str) -> Result<Self, CheckpointError> {
        if !valid_name(name) {
            return Err(CheckpointError::BadKeyName);
        }
        let mut seed = [0u8; 32];
        random.fill(&mut seed);
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let mut public = vec![1u8]; // algorithm byte: Ed25519
        public.extend_from_slice(signing.verifying_key().as_bytes());
        let mut private = vec![1u8];
        private.extend_from_slice(&seed);
        let secret = format!(
            "PRIVATE+KEY+{name}+{:08x}+{}",
            signed_note::key_id(name, &public),
            base64::engine::general_purpose::STANDARD.encode(private)
        );
        Self::from_secret(&secret)
    }

    /// Loads a key in signed-note form: `PRIVATE+KEY+<name>+<id>+<base64>`.
    pub fn from_secret(secret: &str) -> Result<Self, CheckpointError> {
        let secret = secret.trim();
        let signer = StandardSigner::new(secret).map_err(|_| CheckpointError::BadSigningKey)?;
        let (_, _, _, _, key64) = split5(secret).ok_or(CheckpointError::BadSigningKey)?;
        let raw =
            base64::engine::general_purpose::STANDARD.decode(key64).map_err(|_| CheckpointError::BadSigningKey)?;
        let seed: [u8; 32] = raw.get(1..).and_then(|s| s.try_into().ok()).ok_or(CheckpointError::BadSigningKey)?;
        let vk = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let verifier_key = signed_note::new_ed25519_verifier_key(signer.name(), &vk);
        Ok(Self { signer, secret: secret.to_owned(), verifier_key })
    }

    /// The secret in signed-note form, for writing the key file. Handle with care.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `name+keyid+base64key`: what anyone needs to check checkpoints.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    pub fn name(&self) -> &str {
        self.signer.name()
    }

    pub fn verifier(&self) -> CheckpointVerifier {
        // The key was derived just above, so it parses.
        CheckpointVerifier::new(&self.verifier_key).unwrap_or_else(|_| unreachable!("own verifier key parses"))
    }

    /// The signed note for a tree of `size` leaves with `root`, for the log named `origin`.
    pub fn sign(&self, origin: &str, size: u64, root: &Hash) -> Result<String, CheckpointError> {
        let body = Checkpoint::new(origin, size, *root, "").map_err(|_| CheckpointError::MalformedCheckpoint)?;
        let mut note = Note::new(&body.to_bytes(), &[]).map_err(|_| CheckpointError::MalformedCheckpoint)?;
        note.add_sigs(&[&self.signer]).map_err(|_| CheckpointError::BadSigningKey)?;
        String::from_utf8(note.to_bytes()).map_err(|_| CheckpointError::MalformedNote)
    }
}

fn split5(s: &str) -> Option<(&str, &str, &str, &str, &str)> {
    let mut it = s.splitn(5, '+');
    Some((it.next()?, it.next()?, it.next()?, it.next()?, it.next()?))
}

/// Checks checkpoints against one public key.
pub struct CheckpointVerifier {
    key: String,
    list: VerifierList,
}

impl fmt::Debug for CheckpointVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CheckpointVerifier").field(&self.key).finish()
    }
}

impl CheckpointVerifier {
    pub fn new(verifier_key: &str) -> Result<Self, CheckpointError> {
        let key = verifier_key.trim();
        let v = StandardVerifier::new(key).map_err(|_| CheckpointError::BadVerifierKey)?;
        Ok(Self { key: key.to_owned(), list: VerifierList::new(vec![Box::new(v)]) })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Parses a signed checkpoint and checks its signature.
    pub fn verify(&self, note: &str) -> Result<VerifiedCheckpoint, CheckpointError> {
        let note = Note::from_bytes(note.as_bytes()).map_err(|_| CheckpointError::MalformedNote)?;
        note.verify(&self.list).map_err(|_| CheckpointError::BadSignature(self.key.clone()))?;
        let cp = Checkpoint::from_bytes(note.text()).map_err(|_| CheckpointError::MalformedCheckpoint)?;
        Ok(VerifiedCheckpoint { origin: cp.origin().to_owned(), size: cp.size(), root: *cp.hash() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_core::SeededRandom;

    #[test]
    fn signs_and_verifies_and_rejects_tampering() {
        let signer = CheckpointSigner::generate(&SeededRandom::new(1), "logbook.example").unwrap();
        let root = crate::record_hash(b"x");
        let note = signer.sign("logbook.example/default", 42, &root).unwrap();
        let lines: Vec<_> = note.lines().collect();
        assert_eq!(lines[0], "logbook.example/default");
        assert_eq!(lines[1], "42");
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("\u{2014} logbook.example "));

        let v = signer.verifier();
        assert_eq!(
            v.verify(&note).unwrap(),
            VerifiedCheckpoint { origin: "logbook.example/default".into(), size: 42, root }
        );

        let forged = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(v.verify(&forged), Err(CheckpointError::BadSignature(_))));

        let other = CheckpointSigner::generate(&SeededRandom::new(2), "logbook.example").unwrap();
        assert!(other.verifier().verify(&note).is_err());
        assert!(v.verify("garbage").is_err());
    }

    #[test]
    fn key_round_trips_through_its_secret_and_debug_hides_it() {
        let signer = CheckpointSigner::generate(&SeededRandom::new(3), "k").unwrap();
        let again = CheckpointSigner::from_secret(signer.secret()).unwrap();
        assert_eq!(again.verifier_key(), signer.verifier_key());
        assert!(signer.verifier_key().starts_with("k+"));
        let dbg = format!("{signer:?}");
        assert!(!dbg.contains(signer.secret()), "{dbg}");
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
        assert_eq!(CheckpointSigner::from_secret("PRIVATE+KEY+x+00+AAAA").unwrap_err(), CheckpointError::BadSigningKey);
        assert_eq!(CheckpointSigner::generate(&SeededRandom::new(3), "a b").unwrap_err(), CheckpointError::BadKeyName);
    }
}
