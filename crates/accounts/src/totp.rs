//! TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, one step of clock skew either way.
//! The step a code matched is returned so the caller can refuse its reuse.
//!
//! Secrets are kept sealed ([`TotpSealer`]): XChaCha20-Poly1305 under a key derived (HKDF,
//! label [`logbook_core::keys::label::TOTP_SECRETS`]) from the installation's secret, a fresh
//! random 192-bit nonce per sealing, and the organization and user as associated data, so a
//! database dump or backup alone yields no usable secret, and a sealed secret copied to another
//! user's row does not open there.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use logbook_core::{OrgId, Random, Timestamp, UserId};
use logbook_store::accounts::{SealedTotp, TotpSecret, UserRecord};

use crate::AccountError;
use totp_rs::{Algorithm, Secret, TOTP};

pub const STEP_SECONDS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the TOTP secret is malformed")]
    BadSecret,
    /// The stored secret does not open with this installation's key for this user: the
    /// installation secret (the checkpoint signing key) was replaced, or the row was altered.
    #[error("the stored TOTP secret cannot be decrypted with this installation's key (was the checkpoint signing key replaced?)")]
    Sealed,
}

/// The prefix of a sealed secret's stored form: `v1:` then base64url(nonce ‖ ciphertext ‖ tag).
/// A plain secret (stored before sealing) is base32, upper case, so it never starts with it.
const SEALED_V1: &str = "v1:";
const NONCE_LEN: usize = 24;

/// Seals and opens stored TOTP secrets (see the module's doc).
pub struct TotpSealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for TotpSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSealer(<redacted>)")
    }
}

/// What a sealed secret is bound to: its purpose, organization and user.
fn associated_data(org: OrgId, user: UserId) -> [u8; 36] {
    let mut ad = [0u8; 36];
    ad[..20].copy_from_slice(b"logbook totp secret\0");
    ad[20..28].copy_from_slice(&org.0.to_be_bytes());
    ad[28..].copy_from_slice(&user.0.to_be_bytes());
    ad
}

impl TotpSealer {
    /// The sealer of the installation whose secret is `installation_secret`.
    pub fn derive(installation_secret: &[u8]) -> Self {
        let key = logbook_core::keys::derive(installation_secret, logbook_core::keys::label::TOTP_SECRETS);
        Self { cipher: XChaCha20Poly1305::new(&key.into()) }
    }

    /// The stored form of `secret` for this user, under a fresh nonce.
    pub fn seal(&self, org: OrgId, user: UserId, secret: &TotpSecret, random: &dyn Random) -> SealedTotp {
        let mut nonce = [0u8; NONCE_LEN];
        random.fill(&mut nonce);
        let ad = associated_data(org, user);
        let payload = Payload { msg: secret.0.as_bytes(), aad: &ad };
        let Ok(sealed) = self.cipher.encrypt(XNonce::from_slice(&nonce), payload) else {
            // Encryption fails only for a message beyond 256 GiB.
            unreachable!("XChaCha20-Poly1305 refused a TOTP secret")
        };
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        SealedTotp(format!("{SEALED_V1}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// The secret stored for this user; a plain one from before sealing is taken as it is.
    pub fn open(&self, org: OrgId, user: UserId, stored: &SealedTotp) -> Result<TotpSecret, TotpError> {
        let Some(encoded) = stored.0.strip_prefix(SEALED_V1) else {
            return Ok(TotpSecret(stored.0.clone()));
        };
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| TotpError::Sealed)?;
        if bytes.len() < NONCE_LEN {
            return Err(TotpError::Sealed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let ad = associated_data(org, user);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &ad })
            .map_err(|_| TotpError::Sealed)?;
        String::from_utf8(plain).map(TotpSecret).map_err(|_| TotpError::Sealed)
    }

    /// Whether `stored` is a plain secret that an earlier version stored unsealed.
    pub fn is_plain(stored: &SealedTotp) -> bool {
        !stored.0.starts_with(SEALED_V1)
    }
}

fn totp(secret: &TotpSecret, account: &str) -> Result<TOTP, TotpError> {
    let bytes = Secret::Encoded(secret.0.clone()).to_bytes().map_err(|_| TotpError::BadSecret)?;
    TOTP::new(Algorithm::SHA1, 6, 1, STEP_SECONDS, bytes, Some("Logbook".into()), account.into())
        .map_err(|_| TotpError::BadSecret)
}

impl crate::Accounts {
    /// The stored form of `secret` for `user` of this organization.
    pub fn seal_totp(&self, user: UserId, secret: &TotpSecret) -> SealedTotp {
        self.totp_sealer.seal(self.org.id, user, secret, self.random())
    }

    /// The user's TOTP secret, if enrolled. One that does not open is an internal error: the
    /// installation secret was replaced or the row altered, and no code can be checked.
    pub(crate) fn totp_secret_of(&self, user: &UserRecord) -> Result<Option<TotpSecret>, AccountError> {
        let Some(stored) = &user.totp else { return Ok(None) };
        match self.totp_sealer.open(self.org.id, user.id, stored) {
            Ok(secret) => Ok(Some(secret)),
            Err(e) => {
                tracing::error!(user = user.id.0, "{e}");
                Err(AccountError::Internal(e.to_string()))
            }
        }
    }

    /// Seals every TOTP secret an earlier version stored in plain (at start: see
    /// `Application::build`); returns how many. Several processes may run it at once: each
    /// secret is replaced only from its plain form, once.
    pub async fn seal_plain_totp_secrets(&self) -> Result<usize, AccountError> {
        let store = self.log.store();
        let mut sealed = 0;
        for user in store.users_of(self.org.id).await? {
            let Some(plain) = user.totp.as_ref().filter(|s| TotpSealer::is_plain(s)) else { continue };
            let secret = TotpSecret(plain.0.clone());
            if store.reseal_totp(self.org.id, user.id, plain, &self.seal_totp(user.id, &secret)).await? {
                sealed += 1;
            }
        }
        if sealed > 0 {
            tracing::info!(sealed, "encrypted the TOTP secrets stored in plain by an earlier version");
        }
        Ok(sealed)
    }
}

/// A new 160-bit secret, base32.
pub fn generate_secret(random: &dyn Random) -> TotpSecret {
    let mut b = [0u8; 20];
    random.fill(&mut b);
    TotpSecret(Secret::Raw(b.to_vec()).to_encoded().to_string())
}

/// The `otpauth://` URI an authenticator app scans.
pub fn provisioning_uri(secret: &TotpSecret, account: &str) -> Result<String, TotpError> {
    Ok(totp(secret, account)?.get_url())
}

/// The code for a time (for tests and for showing what the app should display).
pub fn code_at(secret: &TotpSecret, t: Timestamp) -> Result<String, TotpError> {
    Ok(totp(secret, "")?.generate(unix_seconds(t)))
}

fn unix_seconds(t: Timestamp) -> u64 {
    (t.as_micros() / 1_000_000).max(0) as u64
}

/// The time step `code` is valid for at `now` (±1 step), or `None`.
pub fn matching_step(secret: &TotpSecret, code: &str, now: Timestamp) -> Result<Option<u64>, TotpError> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret, "")?;
    let step = unix_seconds(now) / STEP_SECONDS;
    let mut found = None;
    for s in [step.saturating_sub(1), step, step + 1] {
        // Compare every candidate, so the time does not depend on which one matches.
        let expected = t.generate(s * STEP_SECONDS);
        let same = bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()));
        if same && found.is_none() {
            found = Some(s);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 (secret "12345678901234567890"), truncated to 6 digits.
    #[test]
    fn rfc6238_vectors() {
        let secret = TotpSecret(Secret::Raw(b"12345678901234567890".to_vec()).to_encoded().to_string());
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(&secret, Timestamp::from_micros(t * 1_000_000)).unwrap(), code, "t = {t}");
        }
    }

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_key() {
        let random = logbook_core::SeededRandom::new(1);
        let sealer = TotpSealer::derive(b"installation secret");
        let secret = TotpSecret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into());
        let (org, ada, bob) = (OrgId(1), UserId(7), UserId(8));
        let sealed = sealer.seal(org, ada, &secret, &random);
        assert!(!sealed.0.contains(&secret.0) && !TotpSealer::is_plain(&sealed), "{}", sealed.0);
        assert_ne!(sealer.seal(org, ada, &secret, &random), sealed, "a fresh nonce each time");
        assert_eq!(sealer.open(org, ada, &sealed).unwrap(), secret);
        assert_eq!(sealer.open(org, bob, &sealed), Err(TotpError::Sealed), "moved to another user");
        assert_eq!(sealer.open(OrgId(2), ada, &sealed), Err(TotpError::Sealed), "to another organization");
        assert_eq!(TotpSealer::derive(b"another").open(org, ada, &sealed), Err(TotpError::Sealed), "another key");
        let mut flipped = sealed.0.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = SealedTotp(String::from_utf8(flipped).unwrap());
        assert_eq!(sealer.open(org, ada, &flipped), Err(TotpError::Sealed), "altered");
        for bad in ["v1:", "v1:!!", "v1:AAAA"] {
            assert_eq!(sealer.open(org, ada, &SealedTotp(bad.into())), Err(TotpError::Sealed), "{bad}");
        }
        let plain = SealedTotp(secret.0.clone());
        assert!(TotpSealer::is_plain(&plain));
        assert_eq!(sealer.open(org, ada, &plain).unwrap(), secret, "a secret stored before sealing");
        assert_eq!(format!("{sealer:?}"), "TotpSealer(<redacted>)");
    }

    #[test]
    fn codes_match_within_one_step_only() {
        let secret = TotpSecret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into());
        let now = Timestamp::from_micros(1_800_000_000 * 1_000_000);
        let code = code_at(&secret, now).unwrap();
        let step = 1_800_000_000 / 30;
        assert_eq!(matching_step(&secret, &code, now).unwrap(), Some(step));
        let later = |s: i64| Timestamp::from_micros(now.as_micros() + s * 1_000_000);
        assert_eq!(matching_step(&secret, &code, later(30)).unwrap(), Some(step), "one step late");
        assert_eq!(matching_step(&secret, &code, later(-30)).unwrap(), Some(step), "one step early");
        assert_eq!(matching_step(&secret, &code, later(90)).unwrap(), None);
        assert_eq!(matching_step(&secret, "12345", now).unwrap(), None);
        assert_eq!(matching_step(&secret, "abcdef", now).unwrap(), None);
    }
}
