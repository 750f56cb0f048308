//! Proofs answered from stored tiles.

use logbook_integrity::proof::{
    prove_consistency, prove_inclusion, tiles_for_consistency, tiles_for_inclusion, ConsistencyProof, InclusionProof,
    ProofError, TileSet,
};
use logbook_integrity::tree::TileId;
use logbook_store::{Org, StoreError};

use crate::{LogService, ProofRequestError};

impl LogService {
    async fn tile_set(&self, org: &Org, ids: &[TileId]) -> Result<TileSet, StoreError> {
        let data = self.store().read_tiles(org.id, ids).await?;
        let mut set = TileSet::new();
        for (id, d) in ids.iter().zip(data) {
            set.insert(*id, d);
        }
        Ok(set)
    }

    async fn check_size(&self, org: &Org, size: u64) -> Result<(), ProofRequestError> {
        let available = self.store().log_head(org.id).await?.size;
        if size > available {
            return Err(ProofError::BeyondLog { size, available }.into());
        }
        Ok(())
    }

    /// Size to prove against when none is given: the latest signed checkpoint's.
    pub async fn default_size(&self, org: &Org) -> Result<u64, ProofRequestError> {
        Ok(self.latest_checkpoint(org).await?.ok_or(ProofRequestError::NoCheckpoint)?.size)
    }

    pub async fn inclusion_proof(
        &self,
        org: &Org,
        seq: u64,
        size: Option<u64>,
    ) -> Result<InclusionProof, ProofRequestError> {
        let size = match size {
            Some(s) => s,
            None => self.default_size(org).await?,
        };
        let ids = tiles_for_inclusion(seq, size)?;
        self.check_size(org, size).await?;
        let set = self.tile_set(org, &ids).await?;
        Ok(prove_inclusion(seq, size, &set)?)
    }

    pub async fn consistency_proof(
        &self,
        org: &Org,
        from: u64,
        to: Option<u64>,
    ) -> Result<ConsistencyProof, ProofRequestError> {
        let to = match to {
            Some(s) => s,
            None => self.default_size(org).await?,
        };
        let ids = tiles_for_consistency(from, to)?;
        self.check_size(org, to).await?;
        let set = self.tile_set(org, &ids).await?;
        Ok(prove_consistency(from, to, &set)?)
    }
}
