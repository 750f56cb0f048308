//! The audit events of the accounts, built with the platform's one [`EventBuilder`].

use logbook_core::{Action, Actor, ActorKind, EventBuilder, Source, UserId, LIMITS};

/// Who the platform's own events say recorded them.
pub const RECORDED_BY: &str = "logbook";

/// An event of the accounts: recorded by Logbook itself, from the request's source.
pub fn event(action: Action, actor: Actor, source: &Source) -> EventBuilder {
    EventBuilder::new(action, actor, RECORDED_BY).source(source.clone())
}

pub fn user_actor(id: UserId, email: &str) -> Actor {
    Actor { kind: ActorKind::User, id: id.to_string(), email: Some(email.into()) }
}

/// The actor of a failed sign-in for an unknown account: what was typed, made safe to store
/// (no control or invisible format characters, bounded), since it is attacker-controlled: an
/// identifier the event would refuse must not keep the failure out of the log.
pub fn typed_identifier(raw: &str) -> Actor {
    let mut id: String = raw
        .trim()
        .chars()
        .filter(|&c| !c.is_control() && !logbook_core::is_format_character(c))
        .take(LIMITS.identifier)
        .collect();
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
        assert_eq!(typed_identifier("ad\u{202E}min\u{200B}@example.com").id, "admin@example.com");
        assert_eq!(typed_identifier("").id, "(empty)");
        assert_eq!(typed_identifier(&"x".repeat(5000)).id.len(), LIMITS.identifier);
        let e = event(Action::LoginFailed, typed_identifier(&"é".repeat(900)), &Source::default()).build();
        e.validate().unwrap();
    }
}
