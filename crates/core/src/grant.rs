//! What an API token may record: its allow-list of action codes.
//!
//! The platform's own codes ([`crate::is_reserved_action`]) and the actor type `system` are the
//! platform's; a token records them only when its grant names them. A grant is a list of
//! entries, written comma-separated:
//!
//! - `*`: every service code (`<service>.<noun>.<verb>`), never a platform code. A new token's
//!   default.
//! - `billing.*`, `login.*`: every code under that prefix, platform codes included.
//! - `billing.invoice.paid`, `login.success`, `logout`: that one code.
//! - `actor:system`: the token may name the actor type `system`.

use std::fmt;

use crate::{ActorKind, EventAction};

/// A token's allow-list, in the order written; [`fmt::Display`] writes it back as parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionGrant(Vec<Entry>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    AnyService,
    Prefix(String),
    Exact(String),
    SystemActor,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadGrant {
    #[error("the action list is empty")]
    Empty,
    #[error("an action list holds at most {MAX_ENTRIES} entries and {MAX_LEN} characters")]
    TooMany,
    #[error(
        "{0:?} is not an action pattern: use *, a code (billing.invoice.paid), a prefix (billing.*) or actor:system"
    )]
    Pattern(String),
}

const MAX_ENTRIES: usize = 64;
/// So that the grant fits in a field of the event that records it.
const MAX_LEN: usize = 1000;
const SYSTEM_ACTOR: &str = "actor:system";

fn valid_code_pattern(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.as_bytes()[0].is_ascii_lowercase()
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

impl Default for ActionGrant {
    /// Service codes only: no platform code, no `system` actor.
    fn default() -> Self {
        ActionGrant(vec![Entry::AnyService])
    }
}

impl ActionGrant {
    /// Parses a comma-separated list (spaces around entries are ignored).
    pub fn parse(list: &str) -> Result<Self, BadGrant> {
        let mut entries = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let entry = if raw == "*" {
                Entry::AnyService
            } else if raw == SYSTEM_ACTOR {
                Entry::SystemActor
            } else if let Some(prefix) = raw.strip_suffix(".*").filter(|p| valid_code_pattern(p)) {
                Entry::Prefix(prefix.to_owned())
            } else if valid_code_pattern(raw) {
                Entry::Exact(raw.to_owned())
            } else {
                return Err(BadGrant::Pattern(raw.chars().take(64).collect()));
            };
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        if entries.is_empty() {
            return Err(BadGrant::Empty);
        }
        let grant = ActionGrant(entries);
        if grant.0.len() > MAX_ENTRIES || grant.to_string().len() > MAX_LEN {
            return Err(BadGrant::TooMany);
        }
        Ok(grant)
    }

    /// Whether the token may record `action`.
    pub fn allows(&self, action: &EventAction) -> bool {
        let code = action.code();
        self.0.iter().any(|e| match e {
            Entry::AnyService => matches!(action, EventAction::Service(_)),
            Entry::Prefix(p) => code.strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with('.')),
            Entry::Exact(c) => c == code,
            Entry::SystemActor => false,
        })
    }

    /// Whether the token may name an actor of this type: every type but `system`, which only
    /// `actor:system` grants.
    pub fn allows_actor(&self, kind: ActorKind) -> bool {
        kind != ActorKind::System || self.0.contains(&Entry::SystemActor)
    }

    /// Whether the grant reaches any of the platform's own codes or its actor type (what the
    /// console points out next to a token).
    pub fn grants_platform(&self) -> bool {
        self.0.iter().any(|e| match e {
            Entry::AnyService => false,
            Entry::SystemActor => true,
            Entry::Prefix(p) | Entry::Exact(p) => crate::is_reserved_action(p),
        })
    }
}

impl std::str::FromStr for ActionGrant {
    type Err = BadGrant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ActionGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match e {
                Entry::AnyService => f.write_str("*")?,
                Entry::Prefix(p) => write!(f, "{p}.*")?,
                Entry::Exact(c) => f.write_str(c)?,
                Entry::SystemActor => f.write_str(SYSTEM_ACTOR)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, ServiceAction};

    fn service(code: &str) -> EventAction {
        EventAction::Service(ServiceAction::new(code).unwrap())
    }

    #[test]
    fn the_default_grants_service_codes_only() {
        let g = ActionGrant::default();
        assert!(g.allows(&service("billing.invoice.paid")));
        for a in Action::ALL {
            assert!(!g.allows(&(*a).into()), "{a}");
        }
        assert!(!g.allows_actor(ActorKind::System));
        assert!(g.allows_actor(ActorKind::Service));
        assert!(!g.grants_platform());
    }

    #[test]
    fn prefixes_and_codes_grant_what_they_name() {
        let g = ActionGrant::parse(" login.* , billing.invoice.paid").unwrap();
        assert!(g.allows(&Action::LoginSuccess.into()));
        assert!(g.allows(&Action::LoginFailed.into()));
        assert!(!g.allows(&Action::UserRoleUpdated.into()));
        assert!(!g.allows(&Action::Logout.into()), "login.* is not a prefix of logout");
        assert!(g.allows(&service("billing.invoice.paid")));
        assert!(!g.allows(&service("billing.invoice.voided")));
        assert!(g.grants_platform());
        assert_eq!(g.to_string(), "login.*,billing.invoice.paid");
        assert_eq!(ActionGrant::parse(&g.to_string()), Ok(g));
        assert!(ActionGrant::parse("*,actor:system").unwrap().allows_actor(ActorKind::System));
    }

    #[test]
    fn bad_lists_are_refused() {
        assert_eq!(ActionGrant::parse(" , "), Err(BadGrant::Empty));
        for bad in ["Login.*", "login.", "*.*", "login.**", "actor:user", "a b"] {
            assert!(matches!(ActionGrant::parse(bad), Err(BadGrant::Pattern(_))), "{bad}");
        }
    }
}
