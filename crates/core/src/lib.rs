//! Logbook's domain model.
//!
//! Everything here is pure: no I/O, no global clock, no global randomness. The clock and the
//! random source are traits ([`Clock`], [`Random`]) handed in by the caller, so tests control
//! time and identifiers.

mod action;
mod event;
mod ids;
pub mod keys;
pub mod leaf;
mod random;
mod role;
mod time;

pub use action::{Action, UnknownAction};
pub use event::is_format_character;
pub use event::{Actor, ActorKind, Event, EventBuilder, EventError, NewEvent, Outcome, Source, Target, LIMITS};
pub use ids::{ApiTokenId, EventId, InvalidOrgSlug, InvitationId, OrgId, OrgSlug, ProtectedUserId, UserId};
pub use random::{OsRandom, Random, SeededRandom};
pub use role::{Role, UnknownRole};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
