//! The secrets of the accounts: session tokens, the CSRF token bound to a session, and the
//! short-lived tokens (pending TOTP step, invitation, setup link, TOTP enrolment).
//!
//! Session, pending-sign-in and invitation tokens are 128 random bits; only their SHA-256 is
//! stored (a pending sign-in is a row, so that it works once and for a few codes). The CSRF
//! token and the TOTP enrolment token are MACs under a key every process of an installation
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

/// Requests and forms carry passwords, codes and tokens as a `Secret`, so that no `Debug` of
/// a request (a log line, a panic message) can show one.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

impl utoipa::PartialSchema for Secret {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Password)))
            .into()
    }
}

impl utoipa::ToSchema for Secret {}

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

    /// The public name of a session, to list and end it by: a MAC of the token's hash, so it
    /// reveals neither the token nor its hash, and nobody can make up the name of a session.
    pub fn session_id(&self, session_hash: &[u8; 32]) -> String {
        URL_SAFE_NO_PAD.encode(&self.mac(&[b"session-id", session_hash])[..16])
    }

    /// The token of a TOTP enrolment: the secret the server issued (base32, no `.`), bound to
    /// the user, their session and an expiry, so that the confirmation enrols that secret and no
    /// other. The secret is no news to whoever holds the token: the page shows it anyway.
    pub fn totp_enrolment(&self, user: UserId, session_hash: &[u8; 32], secret: &str, expires: Timestamp) -> String {
        let body = format!("{}.{}.{secret}", user.0, expires.as_micros());
        let tag = self.mac(&[b"totp-enrolment", session_hash, body.as_bytes()]);
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The secret an enrolment token carries, if the token is authentic, this user's and this
    /// session's, and not expired at `now`.
    pub fn totp_enrolment_secret(
        &self,
        token: &str,
        user: UserId,
        session_hash: &[u8; 32],
        now: Timestamp,
    ) -> Option<String> {
        let parts: Vec<&str> = token.split('.').collect();
        let [id, expires, secret, _tag] = parts[..] else { return None };
        let expires = Timestamp::from_micros(expires.parse().ok()?);
        if id.parse::<i64>().ok()? != user.0 || now >= expires {
            return None;
        }
        let expected = self.totp_enrolment(user, session_hash, secret, expires);
        bool::from(expected.as_bytes().ct_eq(token.as_bytes())).then(|| secret.to_owned())
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
    fn totp_enrolment_tokens_name_the_issued_secret_for_one_user_and_session() {
        let k = MacKey::derive("s");
        let (exp, now) = (Timestamp::from_micros(1_000), Timestamp::from_micros(999));
        let t = k.totp_enrolment(UserId(7), &[1; 32], "JBSWY3DPEHPK3PXP", exp);
        assert_eq!(k.totp_enrolment_secret(&t, UserId(7), &[1; 32], now).as_deref(), Some("JBSWY3DPEHPK3PXP"));
        assert_eq!(k.totp_enrolment_secret(&t, UserId(7), &[1; 32], exp), None, "expired");
        assert_eq!(k.totp_enrolment_secret(&t, UserId(8), &[1; 32], now), None, "another user");
        assert_eq!(k.totp_enrolment_secret(&t, UserId(7), &[2; 32], now), None, "another session");
        assert_eq!(MacKey::derive("x").totp_enrolment_secret(&t, UserId(7), &[1; 32], now), None, "another key");
        let chosen = t.replacen("JBSWY3DPEHPK3PXP", "KRSXG5CTMVRXEZLU", 1);
        assert_eq!(k.totp_enrolment_secret(&chosen, UserId(7), &[1; 32], now), None, "a secret the client chose");
        let later = t.replacen(".1000.", ".2000.", 1);
        assert_eq!(k.totp_enrolment_secret(&later, UserId(7), &[1; 32], exp), None, "an extended expiry");
        for bad in ["", "7.1000.X", "7.1000.X.tag.more", "x.1000.X.tag"] {
            assert_eq!(k.totp_enrolment_secret(bad, UserId(7), &[1; 32], now), None, "{bad:?}");
        }
    }
}
