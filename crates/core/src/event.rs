use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{Action, EventAction, EventId, OrgSlug, Timestamp};

/// Who acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person with an account (a management user of the platform, or a user of a service
    /// that records through the API).
    User,
    /// Someone not (yet) known, e.g. the identifier typed at a failed sign-in.
    Anonymous,
    /// A machine: another service of the platform.
    Service,
    /// An API token acting on its own behalf.
    ApiToken,
    /// Logbook or the platform itself (expiry jobs, set-up).
    System,
}

impl ActorKind {
    pub const fn code(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Anonymous => "anonymous",
            ActorKind::Service => "service",
            ActorKind::ApiToken => "api_token",
            ActorKind::System => "system",
        }
    }

    pub fn from_code(s: &str) -> Option<Self> {
        Some(match s {
            "user" => ActorKind::User,
            "anonymous" => ActorKind::Anonymous,
            "service" => ActorKind::Service,
            "api_token" => ActorKind::ApiToken,
            "system" => ActorKind::System,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorKind,
    pub id: String,
    /// The email at the time of the event (a snapshot: later changes do not rewrite history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Actor {
    /// What the User column shows: the email, or else the identifier.
    pub fn display(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.id)
    }

    pub fn system() -> Self {
        Actor { kind: ActorKind::System, id: "system".into(), email: None }
    }
}

/// What was acted on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub display: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Success,
    Failure,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Source {
    /// An IPv4 or IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The proxy the request reached Logbook through, when `ip` is the client's address as a
    /// trusted proxy reported it (`trusted_proxies`); absent for a direct connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub via: Option<IpAddr>,
}

/// An event as submitted for appending: everything but the fields the log assigns
/// (`org`, `seq`, `id`, `time`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// One of the platform's actions, or a service's own code.
    pub action: EventAction,
    pub actor: Actor,
    pub target: Option<Target>,
    /// A short sentence a person can read, e.g. "Role changed from Auditor to Admin".
    pub details: String,
    /// Structured details: old/new values, method, reason.
    pub fields: BTreeMap<String, String>,
    pub outcome: Outcome,
    pub source: Source,
    /// How the event reached Logbook, set by Logbook itself and never by the submitter:
    /// `console`, `cli`, or `api-token:<name>` ([`API_TOKEN_RECORDER`]; see [`origin`]).
    pub recorded_by: String,
}

/// How [`NewEvent::recorded_by`] names an API token: `api-token:<name>`.
pub const API_TOKEN_RECORDER: &str = "api-token:";

/// Where an event came from, as the console's Source column and the CSV's Recorded By show it:
/// the name of the API token that submitted it, or `platform` for everything the platform
/// recorded itself (console, API, `logbook` commands). No token may be named `platform`.
pub fn origin(recorded_by: &str) -> &str {
    recorded_by.strip_prefix(API_TOKEN_RECORDER).unwrap_or(PLATFORM_ORIGIN)
}

/// The [`origin`] of the platform's own events.
pub const PLATFORM_ORIGIN: &str = "platform";

/// An event in a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub org: OrgSlug,
    /// Position in the organization's log: gapless from 0, and the leaf index in its Merkle tree.
    pub seq: u64,
    pub id: EventId,
    /// Assigned by the server; non-decreasing along `seq`.
    pub time: Timestamp,
    pub body: NewEvent,
}

/// Size limits on what an event may carry. Generous for real use, small enough that a hostile
/// submitter cannot bloat the log.
#[derive(Debug)]
pub struct Limits {
    pub identifier: usize,
    pub details: usize,
    pub fields: usize,
    pub field_key: usize,
    pub field_value: usize,
    pub user_agent: usize,
}

pub const LIMITS: Limits =
    Limits { identifier: 320, details: 2000, fields: 32, field_key: 64, field_value: 1000, user_agent: 512 };

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("{field} is required")]
    Missing { field: &'static str },
    #[error("{field} is longer than {max} characters")]
    TooLong { field: String, max: usize },
    #[error("{field} contains a control character")]
    ControlCharacter { field: String },
    #[error("{field} contains an invisible formatting character (such as a bidi override, a zero-width space or a byte-order mark)")]
    FormatCharacter { field: String },
    #[error("at most {max} fields are allowed")]
    TooManyFields { max: usize },
    #[error("field name {0:?} must be 1-64 characters of a-z, 0-9, '_' and '.'")]
    BadFieldName(String),
    #[error("target type {0:?} must be 1-64 characters of a-z, 0-9 and '_'")]
    BadTargetType(String),
}

/// Names the field a problem is in; built into a string only when there is a problem.
#[derive(Clone, Copy)]
enum Field<'a> {
    Named(&'static str),
    Structured(&'a str),
}

impl Field<'_> {
    fn name(self) -> String {
        match self {
            Field::Named(n) => n.to_owned(),
            Field::Structured(k) => format!("fields.{k}"),
        }
    }
}

/// One pass over the bytes for the common (ASCII) case; characters are counted only when the
/// text is not ASCII. Validation runs on every appended event.
fn check_text(field: Field<'_>, value: &str, max: usize, required: bool) -> Result<(), EventError> {
    if required && value.trim().is_empty() {
        return Err(EventError::Missing {
            field: match field {
                Field::Named(n) => n,
                Field::Structured(_) => "a field",
            },
        });
    }
    let ascii = value.is_ascii();
    let chars = if ascii { value.len() } else { value.chars().count() };
    if chars > max {
        return Err(EventError::TooLong { field: field.name(), max });
    }
    let control =
        if ascii { value.bytes().any(|b| b < 0x20 || b == 0x7f) } else { value.chars().any(char::is_control) };
    if control {
        return Err(EventError::ControlCharacter { field: field.name() });
    }
    if !ascii && value.chars().any(is_format_character) {
        return Err(EventError::FormatCharacter { field: field.name() });
    }
    Ok(())
}

/// Checks the label a service registers for its own action code: 1-64 characters, no control
/// or format character.
pub fn check_action_label(label: &str) -> Result<(), EventError> {
    check_text(Field::Named("action_label"), label, 64, true)
}

/// A Unicode format character (general category Cf): bidi overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069), zero-width characters (U+200B–U+200D, U+2060), the byte-order mark (U+FEFF),
/// the soft hyphen and the like. They are invisible, and a bidi override reorders what is shown
/// after it, so a value holding one can read as something else in the console, a CSV or a SIEM
/// (`eve@example.com` shown as another address, a file name reversed). Events refuse them.
pub fn is_format_character(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};
    c.general_category() == GeneralCategory::Format
}

/// Builds the events Logbook records itself (sign-ins, account changes, API tokens, exports),
/// so every crate that records one gives it the same shape: a successful outcome unless told
/// otherwise, no target, details or fields unless given.
#[derive(Clone, Debug)]
#[must_use]
pub struct EventBuilder(NewEvent);

impl EventBuilder {
    /// `action` by `actor`, recorded by `recorded_by` (see [`NewEvent::recorded_by`]), from an
    /// unknown source.
    pub fn new(action: Action, actor: Actor, recorded_by: impl Into<String>) -> Self {
        Self(NewEvent {
            action: action.into(),
            actor,
            target: None,
            details: String::new(),
            fields: BTreeMap::new(),
            outcome: Outcome::Success,
            source: Source::default(),
            recorded_by: recorded_by.into(),
        })
    }

    /// Where the request came from.
    pub fn source(mut self, source: Source) -> Self {
        self.0.source = source;
        self
    }

    pub fn target(mut self, kind: &str, id: impl ToString, display: &str) -> Self {
        self.0.target = Some(Target { kind: kind.into(), id: id.to_string(), display: display.into() });
        self
    }

    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.0.details = details.into();
        self
    }

    pub fn field(mut self, key: &str, value: impl ToString) -> Self {
        self.0.fields.insert(key.into(), value.to_string());
        self
    }

    pub fn failed(mut self) -> Self {
        self.0.outcome = Outcome::Failure;
        self
    }

    pub fn build(self) -> NewEvent {
        self.0
    }
}

impl NewEvent {
    /// See [`EventBuilder::new`].
    pub fn builder(action: Action, actor: Actor, recorded_by: impl Into<String>) -> EventBuilder {
        EventBuilder::new(action, actor, recorded_by)
    }

    /// Checks everything a submitter controls. Called before anything is appended.
    pub fn validate(&self) -> Result<(), EventError> {
        let l = &LIMITS;
        check_text(Field::Named("actor.id"), &self.actor.id, l.identifier, true)?;
        if let Some(email) = &self.actor.email {
            check_text(Field::Named("actor.email"), email, l.identifier, false)?;
        }
        if let Some(t) = &self.target {
            let type_ok = !t.kind.is_empty()
                && t.kind.len() <= 64
                && t.kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !type_ok {
                return Err(EventError::BadTargetType(t.kind.chars().take(64).collect()));
            }
            check_text(Field::Named("target.id"), &t.id, l.identifier, true)?;
            check_text(Field::Named("target.display"), &t.display, l.identifier, false)?;
        }
        check_text(Field::Named("details"), &self.details, l.details, false)?;
        if self.fields.len() > l.fields {
            return Err(EventError::TooManyFields { max: l.fields });
        }
        for (k, v) in &self.fields {
            let key_ok = !k.is_empty()
                && k.len() <= l.field_key
                && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
            if !key_ok {
                return Err(EventError::BadFieldName(k.chars().take(64).collect()));
            }
            check_text(Field::Structured(k), v, l.field_value, false)?;
        }
        if let Some(ua) = &self.source.user_agent {
            check_text(Field::Named("source.user_agent"), ua, l.user_agent, false)?;
        }
        check_text(Field::Named("recorded_by"), &self.recorded_by, l.identifier, true)?;
        Ok(())
    }
}

impl Event {
    /// What the User column shows.
    pub fn user(&self) -> &str {
        self.body.actor.display()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} {} {}",
            self.seq,
            self.time,
            self.user(),
            self.body.action.platform_label().unwrap_or(self.body.action.code())
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> NewEvent {
        NewEvent {
            action: Action::UserRoleUpdated.into(),
            actor: Actor { kind: ActorKind::User, id: "u-1".into(), email: Some("ada@example.com".into()) },
            target: Some(Target {
                kind: "management_user".into(),
                id: "u-2".into(),
                display: "bob@example.com".into(),
            }),
            details: "Role changed from Auditor to Admin".into(),
            fields: [("old_role".to_string(), "auditor".to_string()), ("new_role".into(), "admin".into())].into(),
            outcome: Outcome::Success,
            source: Source {
                via: None,
                ip: Some("203.0.113.7".parse().unwrap()),
                user_agent: Some("Mozilla/5.0".into()),
            },
            recorded_by: "console".into(),
        }
    }

    #[test]
    fn the_builder_makes_the_same_event() {
        let built = NewEvent::builder(
            Action::UserRoleUpdated,
            Actor { kind: ActorKind::User, id: "u-1".into(), email: Some("ada@example.com".into()) },
            "console",
        )
        .source(Source { via: None, ip: Some("203.0.113.7".parse().unwrap()), user_agent: Some("Mozilla/5.0".into()) })
        .target("management_user", "u-2", "bob@example.com")
        .details("Role changed from Auditor to Admin")
        .field("old_role", "auditor")
        .field("new_role", "admin")
        .build();
        assert_eq!(built, sample());
        let failed = EventBuilder::new(Action::LoginFailed, Actor::system(), "cli").failed().build();
        assert_eq!((failed.outcome, failed.target, failed.source), (Outcome::Failure, None, Source::default()));
    }

    #[test]
    fn valid_event_passes() {
        sample().validate().unwrap();
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let mut e = sample();
        e.actor.id = " ".into();
        assert_eq!(e.validate(), Err(EventError::Missing { field: "actor.id" }));

        let mut e = sample();
        e.details = "x".repeat(2001);
        assert!(matches!(e.validate(), Err(EventError::TooLong { .. })));

        let mut e = sample();
        e.details = "line\nbreak".into();
        assert!(matches!(e.validate(), Err(EventError::ControlCharacter { .. })));

        // Invisible format characters are refused in every text field: a bidi override, a
        // zero-width space, a byte-order mark.
        for c in ['\u{202E}', '\u{200B}', '\u{FEFF}', '\u{2066}'] {
            let mut e = sample();
            e.details = format!("Role changed{c} from Auditor to Admin");
            assert_eq!(e.validate(), Err(EventError::FormatCharacter { field: "details".into() }), "{c:?}");
            let mut e = sample();
            e.actor.email = Some(format!("ada{c}@example.com"));
            assert!(matches!(e.validate(), Err(EventError::FormatCharacter { .. })), "{c:?}");
            let mut e = sample();
            e.fields.insert("new_role".into(), format!("ad{c}min"));
            assert!(matches!(e.validate(), Err(EventError::FormatCharacter { .. })), "{c:?}");
            let mut e = sample();
            e.source.user_agent = Some(format!("curl{c}"));
            assert!(matches!(e.validate(), Err(EventError::FormatCharacter { .. })), "{c:?}");
        }
        assert!(!is_format_character('é') && !is_format_character(' ') && !is_format_character('\u{00E9}'));

        // Non-ASCII text counts characters, not bytes, and finds non-ASCII control characters.
        let mut e = sample();
        e.details = "é".repeat(2000);
        e.validate().unwrap();
        e.details.push('é');
        assert!(matches!(e.validate(), Err(EventError::TooLong { .. })));
        let mut e = sample();
        e.details = "naïve\u{85}".into();
        assert!(matches!(e.validate(), Err(EventError::ControlCharacter { .. })));
        let mut e = sample();
        e.fields.insert("reason".into(), "a\tb".into());
        assert_eq!(e.validate(), Err(EventError::ControlCharacter { field: "fields.reason".into() }));

        let mut e = sample();
        e.fields.insert("Bad Key".into(), "v".into());
        assert!(matches!(e.validate(), Err(EventError::BadFieldName(_))));

        let mut e = sample();
        e.fields = (0..33).map(|i| (format!("k{i}"), "v".to_string())).collect();
        assert_eq!(e.validate(), Err(EventError::TooManyFields { max: 32 }));

        let mut e = sample();
        e.target.as_mut().unwrap().kind = "Drop Table".into();
        assert!(matches!(e.validate(), Err(EventError::BadTargetType(_))));
    }
}
