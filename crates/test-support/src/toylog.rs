//! A transparency log in memory for witness tests: RFC 6962 hashes and proofs from `tlog_tiles`
//! (not from Logbook's sequencer), checkpoints signed with a real Logbook checkpoint key, and
//! add-checkpoint requests built from them. [`ToyLog::fork`] makes another tree under the same
//! origin and key: what a log that forks or rolls back would sign.

use logbook_core::SeededRandom;
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_integrity::witness_protocol::AddCheckpointRequest;
use logbook_integrity::Hash;
use tlog_tiles::{prove_tree, stored_hash_count, stored_hashes, tree_hash, HashReader};

/// Every stored hash of the tree (`tlog_tiles`'s layout).
#[derive(Debug, Default, Clone)]
struct Hashes(Vec<Hash>);

impl HashReader for Hashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| self.0.get(i as usize).copied().ok_or(tlog_tiles::Error::IndexesNotInTree))
            .collect()
    }
}

#[derive(Debug)]
pub struct ToyLog {
    pub origin: String,
    signer: CheckpointSigner,
    hashes: Hashes,
    size: u64,
    tag: String,
}

impl ToyLog {
    /// An empty log named `origin`, its key generated from `seed`.
    pub fn new(origin: &str, seed: u64) -> Self {
        let name = origin.split('/').next().unwrap_or(origin);
        let signer = CheckpointSigner::generate(&SeededRandom::new(seed), name).unwrap();
        Self { origin: origin.to_owned(), signer, hashes: Hashes::default(), size: 0, tag: "main".into() }
    }

    /// The same origin and key, the same first `at` leaves, then leaves of its own (`tag`).
    pub fn fork(&self, at: u64, tag: &str) -> Self {
        assert!(at <= self.size, "a fork at {at} of a log of {}", self.size);
        Self {
            origin: self.origin.clone(),
            signer: CheckpointSigner::from_secret(self.signer.secret()).unwrap(),
            hashes: Hashes(self.hashes.0[..stored_hash_count(at) as usize].to_vec()),
            size: at,
            tag: tag.to_owned(),
        }
    }

    /// The log's signing key, for tests that misuse it.
    pub fn secret(&self) -> &str {
        self.signer.secret()
    }

    pub fn verifier_key(&self) -> &str {
        self.signer.verifier_key()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `n` leaves.
    pub fn grow(&mut self, n: u64) {
        for _ in 0..n {
            let data = format!("{} leaf {}", self.tag, self.size);
            let new = stored_hashes(self.size, data.as_bytes(), &self.hashes).unwrap();
            self.hashes.0.extend(new);
            self.size += 1;
        }
    }

    pub fn root(&self) -> Hash {
        tree_hash(self.size, &self.hashes).unwrap()
    }

    /// The signed checkpoint note of the current tree.
    pub fn checkpoint(&self) -> String {
        self.signer.sign(&self.origin, self.size, &self.root()).unwrap()
    }

    /// The consistency proof from `from` to the current size (empty from 0 or from the size).
    pub fn proof(&self, from: u64) -> Vec<Hash> {
        if from == 0 || from >= self.size {
            return vec![];
        }
        prove_tree(self.size, from, &self.hashes).unwrap()
    }

    /// The add-checkpoint request of the current checkpoint from `old`.
    pub fn request(&self, old: u64) -> AddCheckpointRequest {
        AddCheckpointRequest { old_size: old, proof: self.proof(old), checkpoint: self.checkpoint() }
    }
}
