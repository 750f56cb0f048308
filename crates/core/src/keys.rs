//! Keys derived from the installation's one secret (the checkpoint signing key's secret).
//!
//! Every purpose gets its own key through HKDF-SHA256 (RFC 5869) with a distinct `info` label,
//! so a key says nothing usable about the secret or about any other derived key. Short-lived
//! values (query cursors, CSRF and pending-sign-in tokens) are MACed with these keys: changing
//! their labels only ends the tokens in flight. One key protects stored data: the TOTP secrets
//! are encrypted under [`label::TOTP_SECRETS`]'s, so changing that label, or the installation
//! secret, makes every enrolled TOTP secret unreadable (its users must enrol again).

use hkdf::Hkdf;
use sha2::Sha256;

/// Derived key labels. One per purpose; never reuse one for another purpose.
pub mod label {
    /// The MAC key of the query API's keyset cursors.
    pub const QUERY_CURSOR: &str = "logbook query cursor key v2";
    /// The MAC key of the accounts' CSRF and pending-sign-in tokens.
    pub const ACCOUNTS_MAC: &str = "logbook accounts mac key v2";
    /// The encryption key of the stored TOTP secrets (XChaCha20-Poly1305). Never change it:
    /// secrets sealed under the old key would no longer open.
    pub const TOTP_SECRETS: &str = "logbook totp secret encryption key v1";
    /// The MAC key that seals the full self-check's saved state in the store, so that whoever
    /// can write the database cannot move its progress past an edited entry.
    pub const SELF_CHECK_STATE: &str = "logbook self-check state mac key v1";
}

/// The 256-bit key for `label`, derived from `secret` with HKDF-SHA256 (no salt: the secret is
/// already uniformly random key material).
pub fn derive(secret: &[u8], label: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 255 × 32 byte limit, so `expand` cannot fail.
    if Hkdf::<Sha256>::new(None, secret).expand(label.as_bytes(), &mut key).is_err() {
        unreachable!("HKDF-SHA256 refused a 32-byte output");
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_give_different_keys() {
        let a = derive(b"secret", label::QUERY_CURSOR);
        let b = derive(b"secret", label::ACCOUNTS_MAC);
        assert_ne!(a, b);
        assert_ne!(derive(b"secret", label::TOTP_SECRETS), a);
        assert_ne!(derive(b"secret", label::TOTP_SECRETS), b);
        assert_eq!(a, derive(b"secret", label::QUERY_CURSOR), "deterministic");
        assert_ne!(a, derive(b"other secret", label::QUERY_CURSOR));
    }

    #[test]
    fn matches_rfc_5869_expansion() {
        // RFC 5869 test case 3 (no salt, no info) with a 32-byte prefix of its OKM.
        let ikm = [0x0b; 22];
        let okm = derive(&ikm, "");
        assert_eq!(hex::encode(okm), "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d");
    }
}
