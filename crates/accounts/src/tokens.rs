//! The secrets of the accounts: session tokens, the CSRF token bound to a session, and the
//! short-lived tokens (pending TOTP step, invitation, setup link).
//!
//! Session and invitation tokens are 128 random bits; only their SHA-256 is stored. The CSRF
//! token and the pending-sign-in token are MACs under a key every process of an installation
//! shares (derived from the checkpoint signing key), so any process can check them.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use logbook_core::{keys, Random, Timestamp, UserId};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// A secret token as handed to a browser or a person. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn generate(random: &dyn Random) -> Self {
        let mut b = [0u8; 16];
        random.fill(&mut b);
        Self(URL_SAFE_NO_PAD.encode(b))
    }

    pub fn from_presented(s: &str) -> Self {
        Self(s.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The installation's MAC key.
#[derive(Clone)]
pub struct MacKey([u8; 32]);

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(<redacted>)")
    }
}

impl MacKey {
    /// Derives the key from an installation secret, under a label of its own (HKDF).
    pub fn derive(secret: &str) -> Self {
        Self(keys::derive(secret.as_bytes(), keys::label::ACCOUNTS_MAC))
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_key());
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// The CSRF token of a session: whoever can read it already holds the session cookie.
    pub fn csrf_token(&self, session_hash: &[u8; 32]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(&[b"csrf", session_hash]))
    }

    pub fn check_csrf(&self, session_hash: &[u8; 32], presented: &str) -> bool {
        // Constant time: how much of a forged token matched must not show in the timing.
        bool::from(self.csrf_token(session_hash).as_bytes().ct_eq(presented.as_bytes()))
    }

    /// After a correct password, the token that carries the sign-in to its TOTP step. Bound to
    /// the user and their current password hash, valid until `expires`.
    pub fn pending_sign_in(&self, user: UserId, password_hash: &str, expires: Timestamp) -> String {
        let body = format!("{}.{}", user.0, expires.as_micros());
        let tag = self.mac(&[b"pending", body.as_bytes(), password_hash.as_bytes()]);
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The user a pending sign-in token names, if it is authentic; the caller still checks
    /// the expiry and the password hash by calling [`MacKey::pending_is_valid`].
    pub fn pending_user(token: &str) -> Option<(UserId, Timestamp)> {
        let mut parts = token.splitn(3, '.');
        let user = parts.next()?.parse().ok()?;
        let expires = parts.next()?.parse().ok()?;
        parts.next()?;
        Some((UserId(user), Timestamp::from_micros(expires)))
    }

    pub fn pending_is_valid(&self, token: &str, password_hash: &str, now: Timestamp) -> bool {
        let Some((user, expires)) = Self::pending_user(token) else { return false };
        now < expires
            && bool::from(self.pending_sign_in(user, password_hash, expires).as_bytes().ct_eq(token.as_bytes()))
    }
}

#[cold]
fn unreachable_key() -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot happen.
    panic!("HMAC rejected a 32-byte key")
}

#[cfg(test)]
mod tests {
    use logbook_core::SeededRandom;

    use super::*;

    #[test]
    fn secrets_are_128_bits_and_redacted() {
        let r = SeededRandom::new(3);
        let s = Secret::generate(&r);
        assert_eq!(URL_SAFE_NO_PAD.decode(s.expose()).unwrap().len(), 16);
        assert_ne!(s, Secret::generate(&r));
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert!(!format!("{:?}", MacKey::derive("k")).contains('k'.to_string().repeat(2).as_str()));
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session_and_key() {
        let k = MacKey::derive("installation secret");
        let t = k.csrf_token(&[1; 32]);
        assert!(k.check_csrf(&[1; 32], &t));
        assert!(!k.check_csrf(&[2; 32], &t));
        assert!(!MacKey::derive("other").check_csrf(&[1; 32], &t));
        assert!(!k.check_csrf(&[1; 32], ""));
    }

    #[test]
    fn pending_sign_ins_expire_and_die_with_a_password_change() {
        let k = MacKey::derive("s");
        let exp = Timestamp::from_micros(1_000);
        let t = k.pending_sign_in(UserId(7), "hash-1", exp);
        assert_eq!(MacKey::pending_user(&t), Some((UserId(7), exp)));
        assert!(k.pending_is_valid(&t, "hash-1", Timestamp::from_micros(999)));
        assert!(!k.pending_is_valid(&t, "hash-1", exp), "expired");
        assert!(!k.pending_is_valid(&t, "hash-2", Timestamp::from_micros(0)), "password changed");
        let forged = t.replacen("7.", "8.", 1);
        assert!(!k.pending_is_valid(&forged, "hash-1", Timestamp::from_micros(0)));
    }
}
