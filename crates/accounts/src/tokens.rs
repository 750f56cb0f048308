//! The secrets of the accounts: session tokens, the CSRF token bound to a session, and the
//! short-lived tokens (pending TOTP step, invitation, setup link).
//!
//! Session, pending-sign-in and invitation tokens are 128 random bits; only their SHA-256 is
//! stored (a pending sign-in is a row, so that it works once and for a few codes). The CSRF
//! token is a MAC under a key every process of an installation shares (derived from the
//! checkpoint signing key), so any process can check it.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use logbook_core::Random;
use sha2::{Digest, Sha256};

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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl MacKey {
    /// Derives the key from an installation secret, with domain separation.
    pub fn derive(secret: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"logbook accounts mac key v1\n");
        h.update(secret.as_bytes());
        Self(h.finalize().into())
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
        constant_time_eq(self.csrf_token(session_hash).as_bytes(), presented.as_bytes())
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
}
