use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What happened. Codes are stable (`noun.verb`) and part of every leaf; labels are what the
/// console shows. New actions are added at the end of the table; a code is never renamed or
/// reused.
macro_rules! actions {
    ($($variant:ident => $code:literal, $label:literal;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $($variant,)*
        }

        impl Action {
            /// Every action, in catalogue order.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            pub const fn code(self) -> &'static str {
                match self {
                    $(Action::$variant => $code,)*
                }
            }

            pub const fn label(self) -> &'static str {
                match self {
                    $(Action::$variant => $label,)*
                }
            }

            pub fn from_code(code: &str) -> Result<Self, UnknownAction> {
                match code {
                    $($code => Ok(Action::$variant),)*
                    _ => Err(UnknownAction(truncate(code))),
                }
            }
        }
    };
}

actions! {
    // The nine actions of the platform's own console.
    LoginSuccess => "login.success", "Login Success";
    LoginFailed => "login.failed", "Login Failed";
    Logout => "logout", "Logout";
    ProtectedUserAdded => "protected_user.added", "Protected Users Added";
    ProtectedUserRemoved => "protected_user.removed", "Protected Users Removed";
    UserRoleUpdated => "user.role_updated", "User Role Updated";
    UserInvited => "user.invited", "User Invited";
    ManagementUserAdded => "management_user.added", "Management Users Added";
    ManagementUserDeleted => "management_user.deleted", "Management Users Deleted";
    // What compliance asks for beyond them (OWASP logging vocabulary, PCI DSS 10.2).
    AuditLogViewed => "audit_log.viewed", "Audit Log Viewed";
    AuditLogExported => "audit_log.exported", "Audit Log Exported";
    SettingsUpdated => "settings.updated", "Settings Updated";
    PasswordChanged => "password.changed", "Password Changed";
    TotpEnrolled => "totp.enrolled", "TOTP Enrolled";
    TotpRemoved => "totp.removed", "TOTP Removed";
    AccountLocked => "account.locked", "Account Locked";
    InvitationRevoked => "invitation.revoked", "Invitation Revoked";
    ApiTokenCreated => "api_token.created", "API Token Created";
    ApiTokenRevoked => "api_token.revoked", "API Token Revoked";
    CheckpointKeyRotated => "checkpoint_key.rotated", "Checkpoint Key Rotated";
    // `logbook demo`'s record of a run: fabricated events were added (how many, which seqs).
    DemoEventsAdded => "demo.events_added", "Demo Events Added";
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {0:?}")]
pub struct UnknownAction(pub String);

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Action {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_code(s)
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Action::from_code(&code).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_catalogue_codes_and_labels() {
        let seed: Vec<_> = Action::ALL[..9].iter().map(|a| (a.code(), a.label())).collect();
        assert_eq!(
            seed,
            [
                ("login.success", "Login Success"),
                ("login.failed", "Login Failed"),
                ("logout", "Logout"),
                ("protected_user.added", "Protected Users Added"),
                ("protected_user.removed", "Protected Users Removed"),
                ("user.role_updated", "User Role Updated"),
                ("user.invited", "User Invited"),
                ("management_user.added", "Management Users Added"),
                ("management_user.deleted", "Management Users Deleted"),
            ]
        );
    }

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for a in Action::ALL {
            assert_eq!(Action::from_code(a.code()), Ok(*a));
            assert!(seen.insert(a.code()), "duplicate code {}", a.code());
        }
        assert_eq!(Action::from_code("user.hacked"), Err(UnknownAction("user.hacked".into())));
    }
}
