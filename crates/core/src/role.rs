use std::fmt;

use serde::{Deserialize, Serialize};

/// The role of a management user. What each role may do is decided in one place, the
/// permission types of the accounts crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Manages protected users; reads and exports the audit log.
    Analyst,
    /// Reads and exports the audit log; reads user lists.
    Auditor,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown role {0:?} (expected admin, analyst or auditor)")]
pub struct UnknownRole(pub String);

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Analyst, Role::Auditor];

    pub const fn code(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
        }
    }

    /// As shown in the console and in event details.
    pub const fn label(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Analyst => "Analyst",
            Role::Auditor => "Auditor",
        }
    }

    pub fn from_code(s: &str) -> Result<Self, UnknownRole> {
        Role::ALL.into_iter().find(|r| r.code() == s).ok_or_else(|| UnknownRole(s.chars().take(32).collect()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::from_code(r.code()), Ok(r));
        }
        assert!(Role::from_code("root").is_err());
        assert!(Role::from_code("Admin").is_err(), "codes are exact");
    }
}
