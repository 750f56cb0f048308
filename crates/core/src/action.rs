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
    UserSignedOutEverywhere => "user.signed_out_everywhere", "User Signed Out Everywhere";
    // `logbook demo`'s record of a run: fabricated events were added (how many, which seqs).
    DemoEventsAdded => "demo.events_added", "Demo Events Added";
}

impl Action {
    /// The first dot-separated part of the code (`login` of `login.success`, `logout`).
    pub fn namespace(self) -> &'static str {
        let code = self.code();
        code.split_once('.').map_or(code, |(ns, _)| ns)
    }
}

/// Whether `namespace` belongs to the platform: the namespace of any code of the catalogue
/// above (so a code the platform adds later reserves its namespace by being added), and
/// `logbook` itself. This, with [`Action::from_code`], is the one place that decides what a
/// service may not call its own.
pub fn is_platform_namespace(namespace: &str) -> bool {
    namespace == "logbook" || Action::ALL.iter().any(|a| a.namespace() == namespace)
}

/// Whether `code` is the platform's own: a code of the catalogue, or any code in one of its
/// namespaces. An API token may record such a code only when it is granted it.
pub fn is_reserved_action(code: &str) -> bool {
    Action::from_code(code).is_ok() || is_platform_namespace(code.split_once('.').map_or(code, |(ns, _)| ns))
}

/// A code a service defines for its own events: `<service>.<noun>.<verb>`, three parts of 1-32
/// characters `a-z`, `0-9`, `_` (each starting with a letter), the first not a platform
/// namespace (e.g. `billing.invoice.paid`). Its label is registered with the log the first time
/// it is recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAction(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadServiceAction {
    #[error("unknown action {0:?}: a service's own code is <service>.<noun>.<verb>, three parts of 1-32 characters a-z, 0-9 and '_', each starting with a letter (e.g. billing.invoice.paid)")]
    Syntax(String),
    #[error("action {0:?} is in a namespace the platform reserves for its own events; a service records its events under its own name")]
    Reserved(String),
}

fn valid_segment(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn service_syntax(code: &str) -> bool {
    let parts: Vec<_> = code.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| valid_segment(p))
}

impl ServiceAction {
    /// A code a service submits: well formed and not in a platform namespace.
    pub fn new(code: &str) -> Result<Self, BadServiceAction> {
        if !service_syntax(code) {
            return Err(BadServiceAction::Syntax(truncate(code)));
        }
        if is_reserved_action(code) {
            return Err(BadServiceAction::Reserved(code.to_owned()));
        }
        Ok(Self(code.to_owned()))
    }

    pub fn code(&self) -> &str {
        &self.0
    }

    /// The service: the code's first part.
    pub fn service(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }
}

impl fmt::Display for ServiceAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The action of an event: one of the platform's catalogue, or a service's own code.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventAction {
    Platform(Action),
    Service(ServiceAction),
}

impl EventAction {
    /// A stored code: the platform's, or a well-formed service code. Only the syntax of a
    /// service code is checked, so a namespace the platform takes later does not make events
    /// already in the log unreadable (the platform's codes are found first).
    pub fn from_code(code: &str) -> Result<Self, UnknownAction> {
        Action::from_code(code).map(EventAction::Platform).or_else(|e| {
            if service_syntax(code) {
                Ok(EventAction::Service(ServiceAction(code.to_owned())))
            } else {
                Err(e)
            }
        })
    }

    /// A submitted code: the platform's (which the submitter must be granted), or a service's
    /// own ([`ServiceAction::new`]).
    pub fn submitted(code: &str) -> Result<Self, BadServiceAction> {
        match Action::from_code(code) {
            Ok(a) => Ok(EventAction::Platform(a)),
            Err(_) => ServiceAction::new(code).map(EventAction::Service),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            EventAction::Platform(a) => a.code(),
            EventAction::Service(s) => s.code(),
        }
    }

    /// The platform's label; a service code's label is registered in the store, not here.
    pub fn platform_label(&self) -> Option<&'static str> {
        match self {
            EventAction::Platform(a) => Some(a.label()),
            EventAction::Service(_) => None,
        }
    }

    pub fn platform(&self) -> Option<Action> {
        match self {
            EventAction::Platform(a) => Some(*a),
            EventAction::Service(_) => None,
        }
    }
}

impl From<Action> for EventAction {
    fn from(a: Action) -> Self {
        EventAction::Platform(a)
    }
}

impl PartialEq<Action> for EventAction {
    fn eq(&self, other: &Action) -> bool {
        matches!(self, EventAction::Platform(a) if a == other)
    }
}

impl fmt::Display for EventAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
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

    #[test]
    fn every_platform_code_and_namespace_is_reserved() {
        for a in Action::ALL {
            assert!(is_reserved_action(a.code()), "{a}");
            assert!(is_platform_namespace(a.namespace()), "{a}");
            assert!(ServiceAction::new(&format!("{}.thing.done", a.namespace())).is_err(), "{a}");
            assert_eq!(EventAction::submitted(a.code()), Ok(EventAction::Platform(*a)));
        }
    }

    #[test]
    fn service_codes_are_three_lower_case_parts_outside_the_platform() {
        let ok = ServiceAction::new("billing.invoice.paid").unwrap();
        assert_eq!((ok.code(), ok.service()), ("billing.invoice.paid", "billing"));
        for bad in ["billing.paid", "Billing.invoice.paid", "billing.invoice.paid.twice", "billing..paid", "1x.a.b", ""]
        {
            assert!(matches!(ServiceAction::new(bad), Err(BadServiceAction::Syntax(_))), "{bad}");
        }
        for reserved in ["login.sso.success", "user.role.updated", "logbook.thing.done", "api_token.x.y"] {
            assert!(matches!(ServiceAction::new(reserved), Err(BadServiceAction::Reserved(_))), "{reserved}");
        }
        assert_eq!(
            EventAction::from_code("billing.invoice.paid"),
            Ok(EventAction::Service(ok)),
            "stored service codes read back"
        );
        assert!(EventAction::from_code("billing.paid").is_err());
    }
}
