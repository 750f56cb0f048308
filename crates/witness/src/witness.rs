//! The add-checkpoint decision, without HTTP: the checks of C2SP tlog-witness in its order, then
//! the compare-and-swap of the stored state, then the cosignature.

use std::path::Path;
use std::sync::Arc;

use logbook_core::{Clock, Random};
use logbook_integrity::checkpoint::{CheckpointError, CheckpointVerifier};
use logbook_integrity::cosignature::CosignatureSigner;
use logbook_integrity::proof::check_consistency;
use logbook_integrity::witness_protocol::{AddCheckpointRequest, WitnessProtocolError};
use signed_note::Note;

use crate::state::{Advance, LogState, State, StateError};

/// Why a checkpoint was not cosigned. Each maps to the status the spec names ([`status`](Self::status)).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("malformed request: {0}")]
    Malformed(#[from] WitnessProtocolError),
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(CheckpointError),
    #[error("this witness does not witness the log {0:?}")]
    UnknownLog(String),
    #[error("no valid signature by the log's key")]
    BadSignature,
    #[error("the old size {old} is larger than the checkpoint's size {size}")]
    OldSizeTooLarge { old: u64, size: u64 },
    /// The old size is not what the witness holds, or a checkpoint of the size the witness holds
    /// has another root. The body names the witness's size.
    #[error("the witness holds size {size}")]
    Conflict { size: u64 },
    #[error("the consistency proof does not verify")]
    BadProof,
    #[error("the witness's state cannot be read or written")]
    State(#[from] StateError),
}

impl Refusal {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::MalformedCheckpoint(_) | Refusal::OldSizeTooLarge { .. } => 400,
            Refusal::BadSignature => 403,
            Refusal::UnknownLog(_) => 404,
            Refusal::Conflict { .. } => 409,
            Refusal::BadProof => 422,
            Refusal::State(_) => 500,
        }
    }
}

/// A witness: its key, its state and its clock.
#[derive(Debug)]
pub struct Witness {
    signer: CosignatureSigner,
    state: State,
    clock: Arc<dyn Clock>,
}

impl Witness {
    /// Opens the witness in `dir`: reads or generates its key (named `name` at first start) and
    /// opens its state.
    pub fn open(
        dir: &Path,
        name: Option<&str>,
        clock: Arc<dyn Clock>,
        random: &dyn Random,
    ) -> Result<Self, crate::OpenError> {
        let signer = crate::key::load_or_create(dir, name, random)?;
        let state = State::open(dir)?;
        Ok(Self { signer, state, clock })
    }

    pub fn from_parts(signer: CosignatureSigner, state: State, clock: Arc<dyn Clock>) -> Self {
        Self { signer, state, clock }
    }

    pub fn signer(&self) -> &CosignatureSigner {
        &self.signer
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    fn now_micros(&self) -> i64 {
        self.clock.now().as_micros()
    }

    /// Handles one add-checkpoint body; returns the cosignature line(s) to answer with 200.
    /// Blocking (SQLite with a durable commit): call it off the async threads.
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<String, Refusal> {
        let req = AddCheckpointRequest::parse(body)?;
        let note = Note::from_bytes(req.checkpoint.as_bytes())
            .map_err(|_| Refusal::MalformedCheckpoint(CheckpointError::MalformedNote))?;
        let text = std::str::from_utf8(note.text())
            .map_err(|_| Refusal::MalformedCheckpoint(CheckpointError::MalformedNote))?;
        let origin = text.split('\n').next().unwrap_or_default();
        let log = self.state.log(origin)?.ok_or_else(|| Refusal::UnknownLog(origin.to_owned()))?;
        let verifier = CheckpointVerifier::new(&log.key).map_err(|_| StateError::Corrupt)?;
        let cp = verifier.verify(&req.checkpoint).map_err(|e| match e {
            CheckpointError::BadSignature(_) => Refusal::BadSignature,
            other => Refusal::MalformedCheckpoint(other),
        })?;
        if req.old_size > cp.size {
            return Err(Refusal::OldSizeTooLarge { old: req.old_size, size: cp.size });
        }
        if req.old_size != log.size {
            return Err(Refusal::Conflict { size: log.size });
        }
        self.check_extends(&log, &req, cp.size, cp.root)?;
        let now = self.now_micros();
        match self.state.advance(origin, log.size, log.root.as_ref(), cp.size, &cp.root, &req.checkpoint, now)? {
            Advance::Done => {}
            Advance::Moved { size } => return Err(Refusal::Conflict { size }),
        }
        tracing::debug!(origin, size = cp.size, "cosigned");
        let seconds = u64::try_from(now.div_euclid(1_000_000)).unwrap_or(0);
        Ok(self.signer.cosign(text, seconds))
    }

    /// The checkpoint (`size`, `root`) is consistent with what the witness holds for `log`.
    fn check_extends(
        &self,
        log: &LogState,
        req: &AddCheckpointRequest,
        size: u64,
        root: logbook_integrity::Hash,
    ) -> Result<(), Refusal> {
        if log.size == 0 {
            // Nothing to be consistent with yet: any checkpoint of the log is a start.
            return Ok(());
        }
        let old_root = log.root.ok_or(StateError::Corrupt)?;
        if size == log.size {
            if root != old_root {
                tracing::warn!(origin = %log.origin, size, "a checkpoint of the size this witness holds with another root: a fork");
                return Err(Refusal::Conflict { size: log.size });
            }
            return if req.proof.is_empty() { Ok(()) } else { Err(Refusal::BadProof) };
        }
        check_consistency(log.size, size, old_root, &req.proof, root).map_err(|_| {
            tracing::warn!(
                origin = %log.origin, from = log.size, to = size,
                "a signed checkpoint that is not a consistent extension of the one this witness holds: a fork or a bad proof"
            );
            Refusal::BadProof
        })
    }
}
