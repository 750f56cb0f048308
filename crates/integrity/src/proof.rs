//! Inclusion and consistency proofs (RFC 9162 §2.1.3 and §2.1.4), produced from stored tiles.
//!
//! Producing a proof is two steps so that the store can be asynchronous: [`tiles_for_inclusion`]
//! (or [`tiles_for_consistency`]) names the tiles to read, then [`prove_inclusion`] (or
//! [`prove_consistency`]) computes the proof from them. Checking needs only hashes.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tlog_tiles::{HashReader, Tile};

use crate::checkpoint::VerifiedCheckpoint;
use crate::tree::TileId;
use crate::{Hash, HASH_SIZE, TILE_HEIGHT};

/// Proof that the leaf `seq` is in the tree of `size` leaves with root `root`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub seq: u64,
    pub size: u64,
    #[serde(with = "hex_hash")]
    pub leaf_hash: Hash,
    /// Leaf to root, as in RFC 9162 §2.1.3.
    #[serde(with = "hex_hashes")]
    pub hashes: Vec<Hash>,
    #[serde(with = "hex_hash")]
    pub root: Hash,
}

/// Proof that the tree of `to` leaves extends the tree of `from` leaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// As in RFC 9162 §2.1.4.
    #[serde(with = "hex_hashes")]
    pub hashes: Vec<Hash>,
    #[serde(with = "hex_hash")]
    pub old_root: Hash,
    #[serde(with = "hex_hash")]
    pub new_root: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("seq {seq} is not below size {size}")]
    SeqOutOfRange { seq: u64, size: u64 },
    #[error("sizes must satisfy 1 <= from <= to (got from={from}, to={to})")]
    BadRange { from: u64, to: u64 },
    #[error("size {size} is beyond the log's {available} entries")]
    BeyondLog { size: u64, available: u64 },
    #[error("the proof does not verify")]
    Invalid,
    #[error("stored tree data is missing or inconsistent")]
    Tiles,
}

/// Proofs longer than this cannot be valid for any tree of at most 2^64 leaves.
const MAX_PROOF_HASHES: usize = 2 * 64;

impl InclusionProof {
    /// Checks the proof on its own terms: the hashes lead from `leaf_hash` to `root`.
    pub fn verify(&self) -> Result<(), ProofError> {
        check_inclusion(self.seq, self.size, self.leaf_hash, &self.hashes, self.root)
    }

    /// Checks the proof against a signed checkpoint: same size, same root, and the hashes lead
    /// there. This is the check that binds a proof to a size; [`InclusionProof::verify`] alone
    /// accepts any size that gives the tree the same shape along the path.
    pub fn verify_against(&self, checkpoint: &VerifiedCheckpoint) -> Result<(), ProofError> {
        if self.size != checkpoint.size || self.root != checkpoint.root {
            return Err(ProofError::Invalid);
        }
        self.verify()
    }
}

impl ConsistencyProof {
    pub fn verify(&self) -> Result<(), ProofError> {
        check_consistency(self.from, self.to, self.old_root, &self.hashes, self.new_root)
    }
}

pub fn check_inclusion(seq: u64, size: u64, leaf_hash: Hash, hashes: &[Hash], root: Hash) -> Result<(), ProofError> {
    if seq >= size {
        return Err(ProofError::SeqOutOfRange { seq, size });
    }
    if hashes.len() > MAX_PROOF_HASHES {
        return Err(ProofError::Invalid);
    }
    tlog_tiles::check_record(&hashes.to_vec(), size, root, seq, leaf_hash).map_err(|_| ProofError::Invalid)
}

pub fn check_consistency(
    from: u64,
    to: u64,
    old_root: Hash,
    hashes: &[Hash],
    new_root: Hash,
) -> Result<(), ProofError> {
    if from == 0 || from > to {
        return Err(ProofError::BadRange { from, to });
    }
    if hashes.len() > MAX_PROOF_HASHES {
        return Err(ProofError::Invalid);
    }
    tlog_tiles::check_tree(&hashes.to_vec(), to, new_root, from, old_root).map_err(|_| ProofError::Invalid)
}

/// Hash data of tiles read from a store, keyed by (level, index). A tile's data may be wider
/// than asked for; extra entries are never read.
#[derive(Debug, Default, Clone)]
pub struct TileSet(HashMap<(u8, u64), Vec<u8>>);

impl TileSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, id: TileId, data: Vec<u8>) {
        self.0.insert((id.level, id.index), data);
    }
}

impl HashReader for TileSet {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&x| {
                let t = Tile::from_index(TILE_HEIGHT, x);
                let data = self.0.get(&(t.level(), t.level_index())).ok_or(tlog_tiles::Error::IndexesNotInTree)?;
                let have = (data.len() / HASH_SIZE) as u32;
                // Stored data wider than a tile is damage, not something to index into.
                if have < t.width() || have > crate::TILE_WIDTH || data.len() % HASH_SIZE != 0 {
                    return Err(tlog_tiles::Error::InvalidTile);
                }
                Tile::new(TILE_HEIGHT, t.level(), t.level_index(), have, false).hash_at_index(data, x)
            })
            .collect()
    }
}

/// Records which stored hashes a proof computation asks for, then fails it.
struct Recorder(RefCell<Vec<u64>>);

impl HashReader for Recorder {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.0.borrow_mut().extend_from_slice(indexes);
        Err(tlog_tiles::Error::IndexesNotInTree)
    }
}

fn tiles_of(indexes: impl IntoIterator<Item = u64>) -> Vec<TileId> {
    let mut widest: HashMap<(u8, u64), u32> = HashMap::new();
    for x in indexes {
        let t = Tile::from_index(TILE_HEIGHT, x);
        let w = widest.entry((t.level(), t.level_index())).or_default();
        *w = (*w).max(t.width());
    }
    let mut out: Vec<_> = widest.into_iter().map(|((level, index), width)| TileId { level, index, width }).collect();
    out.sort();
    out
}

fn root_indexes(size: u64) -> Vec<u64> {
    tlog_tiles::sub_tree_index(0, size, Vec::new())
}

/// The tiles (with the least width each must have) needed to prove `seq` in a tree of `size`.
pub fn tiles_for_inclusion(seq: u64, size: u64) -> Result<Vec<TileId>, ProofError> {
    if seq >= size {
        return Err(ProofError::SeqOutOfRange { seq, size });
    }
    let rec = Recorder(RefCell::new(vec![tlog_tiles::stored_hash_index(0, seq)]));
    let _ = tlog_tiles::prove_record(size, seq, &rec);
    let mut idx = rec.0.into_inner();
    idx.extend(root_indexes(size));
    Ok(tiles_of(idx))
}

pub fn tiles_for_consistency(from: u64, to: u64) -> Result<Vec<TileId>, ProofError> {
    if from == 0 || from > to {
        return Err(ProofError::BadRange { from, to });
    }
    let rec = Recorder(RefCell::new(Vec::new()));
    let _ = tlog_tiles::prove_tree(to, from, &rec);
    let mut idx = rec.0.into_inner();
    idx.extend(root_indexes(from));
    idx.extend(root_indexes(to));
    Ok(tiles_of(idx))
}

pub fn root_at(size: u64, tiles: &TileSet) -> Result<Hash, ProofError> {
    tlog_tiles::tree_hash(size, tiles).map_err(|_| ProofError::Tiles)
}

pub fn prove_inclusion(seq: u64, size: u64, tiles: &TileSet) -> Result<InclusionProof, ProofError> {
    if seq >= size {
        return Err(ProofError::SeqOutOfRange { seq, size });
    }
    let hashes = tlog_tiles::prove_record(size, seq, tiles).map_err(|_| ProofError::Tiles)?;
    let leaf_hash = tiles.read_hashes(&[tlog_tiles::stored_hash_index(0, seq)]).map_err(|_| ProofError::Tiles)?[0];
    let root = root_at(size, tiles)?;
    let proof = InclusionProof { seq, size, leaf_hash, hashes, root };
    // Never hand out a proof that does not check: it would mean the stored tiles are bad.
    proof.verify().map_err(|_| ProofError::Tiles)?;
    Ok(proof)
}

pub fn prove_consistency(from: u64, to: u64, tiles: &TileSet) -> Result<ConsistencyProof, ProofError> {
    if from == 0 || from > to {
        return Err(ProofError::BadRange { from, to });
    }
    let hashes = tlog_tiles::prove_tree(to, from, tiles).map_err(|_| ProofError::Tiles)?;
    let proof = ConsistencyProof { from, to, hashes, old_root: root_at(from, tiles)?, new_root: root_at(to, tiles)? };
    proof.verify().map_err(|_| ProofError::Tiles)?;
    Ok(proof)
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::Hash;

    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::to_hex(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        crate::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

mod hex_hashes {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::Hash;

    pub fn serialize<S: Serializer>(hs: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(hs.iter().map(crate::to_hex))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter().map(|s| crate::from_hex(s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{TileRow, TreeEdge};
    use crate::{from_hex, record_hash};

    /// The eight leaves of the RFC 6962 reference tests (Certificate Transparency's
    /// merkle_tree_test, reproduced by transparency-dev/merkle and others).
    const LEAVES: [&str; 8] =
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

    /// Published roots of the trees of the first 1..=8 of those leaves.
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// Published inclusion proofs: (0-based leaf index, tree size, path).
    fn inclusion_vectors() -> Vec<(u64, u64, Vec<&'static str>)> {
        vec![
            (0, 1, vec![]),
            (
                0,
                8,
                vec![
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                vec![
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (2, 3, vec!["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
            (
                1,
                5,
                vec![
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ]
    }

    /// Published consistency proofs: (old size, new size, proof).
    fn consistency_vectors() -> Vec<(u64, u64, Vec<&'static str>)> {
        vec![
            (1, 1, vec![]),
            (
                1,
                8,
                vec![
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                vec![
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                vec![
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ]
    }

    fn h(s: &str) -> Hash {
        from_hex(s).unwrap()
    }

    fn leaf_hashes(n: usize) -> Vec<Hash> {
        LEAVES[..n].iter().map(|l| record_hash(&hex::decode(l).unwrap())).collect()
    }

    /// A store of tiles, answering like the real ones: stored rows by (level, index), widest
    /// row wins; level-0 partial tiles come from the leaf hashes.
    struct MemTiles {
        leaves: Vec<Hash>,
        rows: Vec<TileRow>,
    }

    impl MemTiles {
        fn build(leaves: Vec<Hash>, batch: usize) -> Self {
            let mut edge = TreeEdge::new();
            let mut rows = Vec::new();
            for chunk in leaves.chunks(batch) {
                rows.extend(edge.append_all(chunk.iter().copied()));
            }
            Self { leaves, rows }
        }

        fn read(&self, ids: &[TileId]) -> TileSet {
            let mut set = TileSet::new();
            for id in ids {
                let stored = self
                    .rows
                    .iter()
                    .filter(|r| r.id.level == id.level && r.id.index == id.index && r.id.width >= id.width)
                    .min_by_key(|r| r.id.width);
                let data = match stored {
                    Some(r) => r.hashes.clone(),
                    None => {
                        assert_eq!(id.level, 0, "missing tile {id:?}");
                        let start = id.index as usize * 256;
                        crate::tree::bytes_of(&self.leaves[start..start + id.width as usize])
                    }
                };
                set.insert(*id, data);
            }
            set
        }

        fn inclusion(&self, seq: u64, size: u64) -> InclusionProof {
            prove_inclusion(seq, size, &self.read(&tiles_for_inclusion(seq, size).unwrap())).unwrap()
        }

        fn consistency(&self, from: u64, to: u64) -> ConsistencyProof {
            prove_consistency(from, to, &self.read(&tiles_for_consistency(from, to).unwrap())).unwrap()
        }
    }

    #[test]
    fn roots_match_published_vectors() {
        for n in 1..=8 {
            let mut edge = TreeEdge::new();
            edge.append_all(leaf_hashes(n));
            assert_eq!(edge.root(), h(ROOTS[n - 1]), "size {n}");
        }
        assert_eq!(TreeEdge::new().root(), h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    }

    #[test]
    fn inclusion_proofs_match_published_vectors() {
        let tiles = MemTiles::build(leaf_hashes(8), 3);
        for (seq, size, path) in inclusion_vectors() {
            let p = tiles.inclusion(seq, size);
            let want: Vec<Hash> = path.iter().map(|s| h(s)).collect();
            assert_eq!(p.hashes, want, "seq {seq} size {size}");
            assert_eq!(p.root, h(ROOTS[size as usize - 1]));
            // And the published path verifies on its own.
            check_inclusion(seq, size, leaf_hashes(8)[seq as usize], &want, h(ROOTS[size as usize - 1])).unwrap();
        }
    }

    #[test]
    fn consistency_proofs_match_published_vectors() {
        let tiles = MemTiles::build(leaf_hashes(8), 1);
        for (from, to, path) in consistency_vectors() {
            let p = tiles.consistency(from, to);
            let want: Vec<Hash> = path.iter().map(|s| h(s)).collect();
            assert_eq!(p.hashes, want, "{from} -> {to}");
            check_consistency(from, to, h(ROOTS[from as usize - 1]), &want, h(ROOTS[to as usize - 1])).unwrap();
        }
    }

    #[test]
    fn every_mutation_of_a_valid_inclusion_proof_is_rejected() {
        let leaves: Vec<Hash> = (0..1000u32).map(|i| record_hash(&i.to_be_bytes())).collect();
        let tiles = MemTiles::build(leaves, 97);
        for (seq, size) in [(0, 1000), (513, 1000), (999, 1000), (300, 777), (255, 256), (256, 257)] {
            let p = tiles.inclusion(seq, size);
            p.verify().unwrap();
            for i in 0..p.hashes.len() {
                for bit in [0u8, 7] {
                    let mut q = p.clone();
                    q.hashes[i].0[(i * 5) % 32] ^= 1 << bit;
                    assert_eq!(q.verify(), Err(ProofError::Invalid), "flipped hash {i}");
                }
            }
            let mut q = p.clone();
            q.leaf_hash.0[0] ^= 1;
            assert!(q.verify().is_err(), "flipped leaf hash");
            let mut q = p.clone();
            q.root.0[31] ^= 1;
            assert!(q.verify().is_err(), "flipped root");
            for wrong_seq in [seq.wrapping_sub(1), seq + 1, seq ^ 2] {
                if wrong_seq != seq {
                    let q = InclusionProof { seq: wrong_seq, ..p.clone() };
                    assert!(q.verify().is_err(), "wrong seq {wrong_seq}");
                }
            }
            // A size that changes the tree's shape along the path fails on its own; any other
            // size fails against the signed checkpoint the proof is checked with.
            for wrong_size in [seq, size * 2, size * 8 + 3] {
                let q = InclusionProof { size: wrong_size, ..p.clone() };
                assert!(q.verify().is_err(), "wrong size {wrong_size}");
            }
            let cp = VerifiedCheckpoint { origin: "o".into(), size, root: p.root };
            p.verify_against(&cp).unwrap();
            for wrong_size in [size - 1, size + 1] {
                let q = InclusionProof { size: wrong_size, ..p.clone() };
                assert_eq!(q.verify_against(&cp), Err(ProofError::Invalid), "wrong size {wrong_size}");
            }
            let mut q = p.clone();
            q.hashes.push(q.hashes.last().copied().unwrap_or(p.root));
            assert!(q.verify().is_err(), "extra hash");
            if !p.hashes.is_empty() {
                let mut q = p.clone();
                q.hashes.pop();
                assert!(q.verify().is_err(), "missing hash");
            }
        }
    }

    #[test]
    fn every_mutation_of_a_valid_consistency_proof_is_rejected() {
        let leaves: Vec<Hash> = (0..1000u32).map(|i| record_hash(&i.to_be_bytes())).collect();
        let tiles = MemTiles::build(leaves, 256);
        for (from, to) in [(1, 1000), (256, 1000), (300, 777), (999, 1000), (512, 768)] {
            let p = tiles.consistency(from, to);
            p.verify().unwrap();
            for i in 0..p.hashes.len() {
                let mut q = p.clone();
                q.hashes[i].0[3] ^= 0x10;
                assert_eq!(q.verify(), Err(ProofError::Invalid), "flipped hash {i}");
            }
            let mut q = p.clone();
            q.old_root.0[0] ^= 1;
            assert!(q.verify().is_err());
            let mut q = p.clone();
            q.new_root.0[0] ^= 1;
            assert!(q.verify().is_err());
            assert!(ConsistencyProof { from: from + 1, ..p.clone() }.verify().is_err());
            assert!(ConsistencyProof { to: to * 2, ..p.clone() }.verify().is_err());
            assert!(ConsistencyProof { from: 0, ..p.clone() }.verify().is_err());
            let mut q = p.clone();
            q.hashes.push(p.new_root);
            assert!(q.verify().is_err(), "extra hash");
            let mut q = p.clone();
            q.hashes.pop();
            assert!(q.verify().is_err(), "missing hash");
        }
        assert_eq!(check_consistency(0, 5, EMPTY, &[], EMPTY), Err(ProofError::BadRange { from: 0, to: 5 }));
        assert_eq!(check_consistency(6, 5, EMPTY, &[], EMPTY), Err(ProofError::BadRange { from: 6, to: 5 }));
    }

    const EMPTY: Hash = crate::EMPTY_HASH;

    #[test]
    fn proofs_over_many_tiles_check_for_every_shape() {
        let n = 70_000u64;
        let leaves: Vec<Hash> = (0..n).map(|i| record_hash(&i.to_be_bytes())).collect();
        let tiles = MemTiles::build(leaves.clone(), 1000);
        for (seq, size) in [(0, n), (65_535, 65_536), (65_536, n), (12_345, 65_537), (69_999, n), (256, 513)] {
            let p = tiles.inclusion(seq, size);
            assert_eq!(p.leaf_hash, leaves[seq as usize]);
            let mut edge = TreeEdge::new();
            edge.append_all(leaves[..size as usize].iter().copied());
            assert_eq!(p.root, edge.root());
        }
        let c = tiles.consistency(65_536, n);
        c.verify().unwrap();
    }

    #[test]
    fn proof_json_uses_lowercase_hex_and_round_trips() {
        let tiles = MemTiles::build(leaf_hashes(8), 8);
        let p = tiles.inclusion(5, 8);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["seq"], 5);
        assert_eq!(json["size"], 8);
        assert_eq!(json["hashes"][0], "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b");
        assert_eq!(json["root"], ROOTS[7]);
        let back: InclusionProof = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
        let bad = serde_json::json!({"seq": 5, "size": 8, "leaf_hash": "zz", "hashes": [], "root": ROOTS[7]});
        assert!(serde_json::from_value::<InclusionProof>(bad).is_err());
    }
}

#[cfg(test)]
mod damage_tests {
    use super::*;

    #[test]
    fn stored_tile_data_wider_than_a_tile_is_an_error_not_a_panic() {
        let mut set = TileSet::new();
        let ids = tiles_for_inclusion(3, 10).unwrap();
        for id in &ids {
            set.insert(*id, vec![7u8; 257 * HASH_SIZE]);
        }
        assert_eq!(prove_inclusion(3, 10, &set), Err(ProofError::Tiles));
        let mut ragged = TileSet::new();
        for id in &ids {
            ragged.insert(*id, vec![7u8; 10 * HASH_SIZE + 5]);
        }
        assert_eq!(prove_inclusion(3, 10, &ragged), Err(ProofError::Tiles));
    }
}
