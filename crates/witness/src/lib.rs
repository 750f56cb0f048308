//! A witness for transparency logs: C2SP tlog-witness over C2SP tlog-cosignature (Ed25519,
//! `cosignature/v1`).
//!
//! A witness is told which logs to watch (origin and the log's checkpoint verifier key,
//! `logbook witness add-log`). A log sends it every new checkpoint with a consistency proof from
//! the last one the witness cosigned (`POST /add-checkpoint`); the witness checks the log's
//! signature and the proof, stores the new size and root, and only then answers with its
//! cosignature. Since the stored size never goes back and every step was proven to extend the
//! last, a log that forks or rolls back cannot get both views cosigned by the same witness: one
//! of them is refused (409 or 422), which is what a client that requires the cosignature relies on.
//!
//! - [`key`]: the witness's own key file (`witness.key`, generated at first start);
//! - [`state`]: its SQLite state (`witness.db`), updated by compare-and-swap;
//! - [`witness`]: the checks of one request, in the order the spec gives, and the answer;
//! - [`http`]: the routes and the listener.
//!
//! The witness needs none of the log service: it is a separate program mode of `logbook`
//! (`logbook witness serve`) meant for another host.

pub mod http;
pub mod key;
pub mod state;
pub mod witness;

pub use witness::{Refusal, Witness};

/// Why a witness could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Key(#[from] key::KeyError),
    #[error(transparent)]
    State(#[from] state::StateError),
}
