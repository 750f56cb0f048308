//! Logbook's integrity math.
//!
//! - [`tree`]: the RFC 6962 / RFC 9162 Merkle tree of one log, kept as C2SP tlog-tiles
//!   (height 8, 256 hashes a tile). The sequencer holds only the right edge in memory.
//! - [`proof`]: inclusion and consistency proofs, produced from stored tiles and checked with
//!   nothing but hashes.
//! - [`checkpoint`]: C2SP tlog-checkpoint in a C2SP signed note, Ed25519.
//! - [`cosignature`]: C2SP tlog-cosignature, a witness's Ed25519 `cosignature/v1` line on a
//!   checkpoint.
//! - [`witness_protocol`]: the request and answers of C2SP tlog-witness `add-checkpoint`.
//! - [`keys`]: the signing key's file, read or generated at first use.
//! - [`audit`]: recomputes a whole log from its stored events and compares every stored tile
//!   and checkpoint, naming the first bad `seq`.
//!
//! The hashing, the tile arithmetic, the proofs and the note format come from the maintained
//! `tlog_tiles` and `signed_note` crates (ports of Go's `golang.org/x/mod/sumdb`); this crate
//! adds the tile bookkeeping a database-backed log needs and pins it to published vectors.

pub mod audit;
pub mod checkpoint;
pub mod cosignature;
pub mod keys;
pub mod proof;
pub mod tree;
pub mod witness_protocol;

pub use tlog_tiles::{node_hash, record_hash, Hash, EMPTY_HASH, HASH_SIZE};

/// Tile height used everywhere (C2SP tlog-tiles).
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u32 = 1 << TILE_HEIGHT;

/// Lowercase hex of a hash, as every interface of Logbook shows it.
pub fn to_hex(h: &Hash) -> String {
    hex::encode(h.0)
}

/// Parses 64 hex digits (either case) into a hash.
pub fn from_hex(s: &str) -> Option<Hash> {
    let mut out = [0u8; HASH_SIZE];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(Hash(out))
}

#[cfg(test)]
mod hex_tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let h = Hash(std::array::from_fn(|i| i as u8 * 8));
        let s = to_hex(&h);
        assert_eq!(s.len(), 64);
        assert!(s.starts_with("0008101820"), "{s}");
        assert_eq!(s, s.to_lowercase());
        assert_eq!(from_hex(&s), Some(h));
        assert_eq!(from_hex(&s.to_uppercase()), Some(h), "either case");
        assert_eq!(from_hex(&s[..62]), None, "too short");
        assert_eq!(from_hex(&format!("{s}00")), None, "too long");
        assert_eq!(from_hex(&s.replacen('0', "g", 1)), None, "not hex");
    }
}
