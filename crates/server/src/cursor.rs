//! Keyset cursors for the query API: opaque to clients, authenticated, bound to their filters.
//!
//! A cursor is base64url(version ‖ before ‖ tag), where `before` is the exclusive upper `seq` of
//! the next page and `tag` is HMAC-SHA256(key, version ‖ before ‖ filter digest), truncated to
//! 128 bits. A changed byte, or the cursor of one filter used with another, fails the tag: the
//! client gets 400 `bad_cursor`, never a page of some other query.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use logbook_core::keys;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::ApiError;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;

/// The cursor MAC key. Never logged: its `Debug` is redacted.
pub struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(<redacted>)")
    }
}

/// HMAC-SHA256 (RFC 2104) over the concatenated parts, with the `hmac` crate.
pub fn hmac_sha256(key: &[u8], message: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail; the fallback is unreachable.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
    for m in message {
        mac.update(m);
    }
    mac.finalize().into_bytes().into()
}

impl CursorKey {
    /// Derives the key from the checkpoint signing key's secret, with a label of its own (HKDF)
    /// so the derived key says nothing usable about the signing key and serves no other purpose.
    pub fn derive(signing_secret: &str) -> Self {
        Self(keys::derive(signing_secret.as_bytes(), keys::label::QUERY_CURSOR))
    }

    fn tag(&self, body: &[u8], filter_digest: &[u8; 32]) -> [u8; 32] {
        hmac_sha256(&self.0, &[body, filter_digest])
    }

    pub fn encode(&self, before: u64, filter_digest: &[u8; 32]) -> String {
        let mut bytes = Vec::with_capacity(1 + 8 + TAG_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&before.to_be_bytes());
        let tag = self.tag(&bytes, filter_digest);
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The `before` of a cursor made by [`CursorKey::encode`] for the same filter digest.
    pub fn decode(&self, cursor: &str, filter_digest: &[u8; 32]) -> Result<u64, ApiError> {
        let bad = || {
            ApiError::bad_request(
                "bad_cursor",
                "the cursor is not valid for this query (altered, or made for other filters); start again without it",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| bad())?;
        if bytes.len() != 1 + 8 + TAG_LEN || bytes[0] != VERSION {
            return Err(bad());
        }
        let (body, tag) = bytes.split_at(9);
        let want = self.tag(body, filter_digest);
        // Constant time: how much of a forged tag matched must not show in the timing.
        if !bool::from(tag.ct_eq(&want[..TAG_LEN])) {
            return Err(bad());
        }
        let mut before = [0u8; 8];
        before.copy_from_slice(&body[1..9]);
        Ok(u64::from_be_bytes(before))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn hmac_matches_rfc_4231_case_6_long_key() {
        let mac = hmac_sha256(&[0xaa; 131], &[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        assert_eq!(hex::encode(mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    #[test]
    fn cursors_round_trip_and_refuse_changes() {
        let key = CursorKey::derive("PRIVATE+KEY+test");
        let digest = [7u8; 32];
        let c = key.encode(12345, &digest);
        assert_eq!(key.decode(&c, &digest).unwrap(), 12345);
        assert!(key.decode(&c, &[8u8; 32]).is_err(), "another filter");
        assert!(CursorKey::derive("PRIVATE+KEY+other").decode(&c, &digest).is_err(), "another key");
        let mut bytes = URL_SAFE_NO_PAD.decode(&c).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            assert!(key.decode(&URL_SAFE_NO_PAD.encode(&bytes), &digest).is_err(), "byte {i}");
            bytes[i] ^= 1;
        }
        for junk in ["", "x", "!!!!", &c[..c.len() - 1]] {
            assert!(key.decode(junk, &digest).is_err(), "{junk:?}");
        }
    }
}
