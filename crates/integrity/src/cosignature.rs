//! Witness cosignatures: C2SP tlog-cosignature, Ed25519 (`cosignature/v1`).
//!
//! A witness that has checked a checkpoint is consistent with everything it saw of that log
//! before adds one more signature line to the checkpoint's note:
//!
//! ```text
//! — <witness name> base64(key ID (4) || timestamp (8, big-endian) || Ed25519 signature (64))
//! ```
//!
//! The Ed25519 signature is over
//!
//! ```text
//! cosignature/v1
//! time <timestamp, decimal seconds since the epoch>
//! <the checkpoint's note text: origin, size, root, any extension lines>
//! ```
//!
//! so a cosignature is bound to a moment and cannot be mistaken for the log's own signature
//! (which signs the note text alone). The key ID is the first four bytes of
//! SHA-256(name || "\n" || 0x04 || public key): the signature type 0x04 keeps a witness key and
//! a log key with the same name and the same bytes apart.
//!
//! Keys are written in signed-note form:
//!
//! - verifier key: `<name>+<key ID, 8 hex>+base64(0x04 || public key)`;
//! - secret: `PRIVATE+KEY+<name>+<key ID, 8 hex>+base64(0x04 || Ed25519 seed)`, with the same key
//!   ID as the verifier key. [`CosignatureSigner::from_secret`] also takes an ordinary signed-note
//!   Ed25519 secret (type 0x01, its key ID over 0x01), as other tools generate them, and uses it
//!   for cosignatures.

use std::fmt;

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use logbook_core::Random;
use signed_note::{is_key_name_valid, Note, Signature, VerifierList};

use crate::checkpoint::CheckpointError;

/// The signature type of an Ed25519 `cosignature/v1` key, hashed into its key ID.
pub const COSIGNATURE_V1_TYPE: u8 = 0x04;
/// The signature type of an ordinary signed-note Ed25519 key.
const NOTE_ED25519_TYPE: u8 = 0x01;
/// key ID (4) + timestamp (8) + Ed25519 signature (64).
const SIGNATURE_LEN: usize = 4 + 8 + 64;
/// Timestamps are at most 2^63 - 1.
const MAX_TIMESTAMP: u64 = i64::MAX as u64;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The key ID of an Ed25519 cosigner named `name` with `public` key.
pub fn cosignature_key_id(name: &str, public: &VerifyingKey) -> u32 {
    signed_note::key_id(name, &typed(COSIGNATURE_V1_TYPE, public.as_bytes()))
}

fn typed(kind: u8, key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(33);
    out.push(kind);
    out.extend_from_slice(key);
    out
}

/// The bytes an Ed25519 cosignature signs: the header line, the time line, then the note text
/// (`checkpoint_body`, which ends with a newline).
pub fn signed_message(checkpoint_body: &[u8], timestamp: u64) -> Vec<u8> {
    let mut msg = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    msg.extend_from_slice(checkpoint_body);
    msg
}

/// A witness's cosigning key. Its `Debug` never shows the secret.
pub struct CosignatureSigner {
    name: String,
    key_id: u32,
    signing: SigningKey,
    secret: String,
    verifier_key: String,
}

impl fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignatureSigner")
            .field("verifier_key", &self.verifier_key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl CosignatureSigner {
    /// A new Ed25519 cosigning key named `name` (conventionally a URL without its scheme that
    /// names the witness).
    pub fn generate(random: &dyn Random, name: &str) -> Result<Self, CheckpointError> {
        if !is_key_name_valid(name) {
            return Err(CheckpointError::BadKeyName);
        }
        let mut seed = [0u8; 32];
        random.fill(&mut seed);
        let signing = SigningKey::from_bytes(&seed);
        let secret = format!(
            "PRIVATE+KEY+{name}+{:08x}+{}",
            cosignature_key_id(name, &signing.verifying_key()),
            b64().encode(typed(COSIGNATURE_V1_TYPE, &seed))
        );
        Self::from_secret(&secret)
    }

    /// Loads a key from its secret: `PRIVATE+KEY+<name>+<id>+base64(0x04 || seed)` (what
    /// [`generate`](Self::generate) writes), or an ordinary signed-note Ed25519 secret
    /// (`0x01 || seed`, its key ID computed over type 0x01).
    pub fn from_secret(secret: &str) -> Result<Self, CheckpointError> {
        let secret = secret.trim();
        let mut parts = secret.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id16), Some(key64)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CheckpointError::BadSigningKey);
        };
        if !is_key_name_valid(name) {
            return Err(CheckpointError::BadKeyName);
        }
        let id = parse_key_id(id16).ok_or(CheckpointError::BadSigningKey)?;
        let raw = b64().decode(key64).map_err(|_| CheckpointError::BadSigningKey)?;
        let (kind, seed) = raw.split_first().ok_or(CheckpointError::BadSigningKey)?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| CheckpointError::BadSigningKey)?;
        if *kind != COSIGNATURE_V1_TYPE && *kind != NOTE_ED25519_TYPE {
            return Err(CheckpointError::BadSigningKey);
        }
        let signing = SigningKey::from_bytes(&seed);
        let public = signing.verifying_key();
        if id != signed_note::key_id(name, &typed(*kind, public.as_bytes())) {
            return Err(CheckpointError::BadSigningKey);
        }
        let key_id = cosignature_key_id(name, &public);
        let verifier_key =
            format!("{name}+{key_id:08x}+{}", b64().encode(typed(COSIGNATURE_V1_TYPE, public.as_bytes())));
        Ok(Self { name: name.to_owned(), key_id, signing, secret: secret.to_owned(), verifier_key })
    }

    /// The secret, for writing the key file. Handle with care.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `name+keyid+base64(0x04 || public key)`: what a log or a client needs to check this
    /// witness's cosignatures.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            public: self.signing.verifying_key(),
            key: self.verifier_key.clone(),
        }
    }

    /// One signature line (`— name base64…\n`) over `checkpoint_body` (a note's text, ending with
    /// a newline) at `timestamp` (seconds since the epoch, at most 2^63 - 1, as the format
    /// requires; a larger value is signed as 2^63 - 1).
    pub fn cosign(&self, checkpoint_body: &str, timestamp: u64) -> String {
        let timestamp = timestamp.min(MAX_TIMESTAMP);
        let sig = self.signing.sign(&signed_message(checkpoint_body.as_bytes(), timestamp));
        let mut raw = Vec::with_capacity(SIGNATURE_LEN);
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        format!("\u{2014} {} {}\n", self.name, b64().encode(raw))
    }
}

fn parse_key_id(id16: &str) -> Option<u32> {
    if id16.len() != 8 || !id16.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(id16, 16).ok()
}

/// Checks the cosignatures of one witness. Also a [`signed_note::Verifier`], so a note can be
/// opened with the log's key and witness keys together.
#[derive(Clone)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    public: VerifyingKey,
    key: String,
}

impl fmt::Debug for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CosignatureVerifier").field(&self.key).finish()
    }
}

impl CosignatureVerifier {
    /// From a verifier key `name+keyid+base64(0x04 || public key)`.
    pub fn new(verifier_key: &str) -> Result<Self, CheckpointError> {
        let key = verifier_key.trim();
        let mut parts = key.splitn(3, '+');
        let (Some(name), Some(id16), Some(key64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CheckpointError::BadVerifierKey);
        };
        if !is_key_name_valid(name) {
            return Err(CheckpointError::BadKeyName);
        }
        let id = parse_key_id(id16).ok_or(CheckpointError::BadVerifierKey)?;
        let raw = b64().decode(key64).map_err(|_| CheckpointError::BadVerifierKey)?;
        let (kind, public) = raw.split_first().ok_or(CheckpointError::BadVerifierKey)?;
        let public: [u8; 32] = public.try_into().map_err(|_| CheckpointError::BadVerifierKey)?;
        if *kind != COSIGNATURE_V1_TYPE || id != signed_note::key_id(name, &raw) {
            return Err(CheckpointError::BadVerifierKey);
        }
        let public = VerifyingKey::from_bytes(&public).map_err(|_| CheckpointError::BadVerifierKey)?;
        Ok(Self { name: name.to_owned(), key_id: id, public, key: key.to_owned() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier key this was made from.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Finds this witness's line among the signature lines of `note` (a whole signed note) and
    /// checks it; returns the cosignature's timestamp. Lines by other keys are ignored; a line
    /// with this witness's name and key ID that does not verify is an error.
    pub fn verify_note(&self, note: &str) -> Result<u64, CheckpointError> {
        let parsed = Note::from_bytes(note.as_bytes()).map_err(|_| CheckpointError::MalformedNote)?;
        let list = VerifierList::new(vec![Box::new(self.clone())]);
        match parsed.verify(&list) {
            Ok((verified, _)) => verified
                .first()
                .and_then(|s| timestamp_of(s.signature()))
                .ok_or_else(|| CheckpointError::BadCosignature(self.key.clone())),
            Err(signed_note::NoteError::UnverifiedNote) => Err(CheckpointError::MissingCosignature(self.key.clone())),
            Err(_) => Err(CheckpointError::BadCosignature(self.key.clone())),
        }
    }

    /// Checks one signature line (with or without its final newline) against a checkpoint body
    /// (a note's text, ending with a newline); returns the cosignature's timestamp.
    pub fn verify_line(&self, checkpoint_body: &str, line: &str) -> Result<u64, CheckpointError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let bad = || CheckpointError::BadCosignature(self.key.clone());
        let sig = Signature::from_bytes(line.as_bytes()).map_err(|_| bad())?;
        if sig.name() != self.name || sig.id() != self.key_id {
            return Err(bad());
        }
        if !self.check(checkpoint_body.as_bytes(), sig.signature()) {
            return Err(bad());
        }
        timestamp_of(sig.signature()).ok_or_else(bad)
    }

    /// `sig` is what follows the key ID: timestamp (8) || Ed25519 signature (64).
    fn check(&self, body: &[u8], sig: &[u8]) -> bool {
        let Some(timestamp) = timestamp_of(sig) else { return false };
        let Ok(ed) = <[u8; 64]>::try_from(&sig[8..]) else { return false };
        self.public.verify_strict(&signed_message(body, timestamp), &ed25519_dalek::Signature::from_bytes(&ed)).is_ok()
    }
}

/// The timestamp of a well-sized Ed25519 cosignature (after its key ID), if it is in range.
fn timestamp_of(sig: &[u8]) -> Option<u64> {
    if sig.len() != SIGNATURE_LEN - 4 {
        return None;
    }
    let t = u64::from_be_bytes(sig.get(..8)?.try_into().ok()?);
    (t <= MAX_TIMESTAMP).then_some(t)
}

impl signed_note::Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.check(msg, sig)
    }
}

#[cfg(test)]
#[path = "cosignature_tests.rs"]
mod tests;
