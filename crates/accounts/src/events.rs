//! The audit events of the accounts: one builder, so every event has the same shape.

use logbook_core::{Action, Actor, ActorKind, NewEvent, Outcome, Source, Target, UserId, LIMITS};

/// Who the platform's own events say recorded them.
pub const RECORDED_BY: &str = "logbook";

pub struct EventBuilder(NewEvent);

impl EventBuilder {
    pub fn new(action: Action, actor: Actor, source: &Source) -> Self {
        Self(NewEvent {
            action,
            actor,
            target: None,
            details: String::new(),
            fields: Default::default(),
            outcome: Outcome::Success,
            source: source.clone(),
            recorded_by: RECORDED_BY.into(),
        })
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

pub fn user_actor(id: UserId, email: &str) -> Actor {
    Actor { kind: ActorKind::User, id: id.to_string(), email: Some(email.into()) }
}

/// The actor of a failed sign-in for an unknown account: what was typed, made safe to store
/// (no control characters, bounded), since it is attacker-controlled.
pub fn typed_identifier(raw: &str) -> Actor {
    let mut id: String = raw.trim().chars().filter(|c| !c.is_control()).take(LIMITS.identifier).collect();
    if id.is_empty() {
        id = "(empty)".into();
    }
    Actor { kind: ActorKind::Anonymous, id, email: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_identifiers_are_stored_safely() {
        assert_eq!(typed_identifier("  eve@example.com ").id, "eve@example.com");
        assert_eq!(typed_identifier("a\nb\u{0}c").id, "abc");
        assert_eq!(typed_identifier("").id, "(empty)");
        assert_eq!(typed_identifier(&"x".repeat(5000)).id.len(), LIMITS.identifier);
        let e = EventBuilder::new(Action::LoginFailed, typed_identifier(&"é".repeat(900)), &Source::default()).build();
        e.validate().unwrap();
    }
}
