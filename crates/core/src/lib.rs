//! Logbook's domain model.
//!
//! Everything here is pure: no I/O, no global clock, no global randomness. The clock and the
//! random source are traits ([`Clock`], [`Random`]) handed in by the caller, so tests control
//! time and identifiers.

mod action;
mod event;
mod grant;
mod ids;
pub mod keys;
pub mod leaf;
mod random;
mod role;
mod time;

pub use action::{
    is_platform_namespace, is_reserved_action, Action, BadServiceAction, EventAction, ServiceAction, UnknownAction,
};
pub use event::{check_action_label, is_format_character};
pub use event::{origin, API_TOKEN_RECORDER, PLATFORM_ORIGIN};
pub use event::{Actor, ActorKind, Event, EventBuilder, EventError, NewEvent, Outcome, Source, Target, LIMITS};
pub use grant::{ActionGrant, BadGrant};
pub use ids::{ApiTokenId, EventId, InvalidOrgSlug, InvitationId, OrgId, OrgSlug, ProtectedUserId, UserId};
pub use random::{OsRandom, Random, SeededRandom};
pub use role::{Role, UnknownRole};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
