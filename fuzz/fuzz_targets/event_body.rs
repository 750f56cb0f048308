//! The ingestion body of `POST /api/v1/events` (JSON: one event or an array of up to 1,000,
//! each checked by `EventInput::into_event` and `NewEvent::validate`), and its
//! `Idempotency-Key` header.
//!
//! Checks: nothing panics; every accepted event passes `validate` and survives the canonical
//! leaf encoding unchanged (encode, decode, compare), so whatever the API accepts the log can
//! store and an auditor can read back; at most 1,000 events; an accepted idempotency key is
//! 1-255 visible ASCII characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_core::{leaf, EventId, OrgSlug, Timestamp};
use logbook_server::fuzzing::{idempotency_key, parse_event_body};

fuzz_target!(|data: &[u8]| {
    if data.len() <= 300 {
        if let Some(Ok(Some(key))) = idempotency_key(data) {
            assert!((1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()), "{key:?}");
        }
    }
    let Ok(events) = parse_event_body(data, "api-token:fuzz") else { return };
    assert!(!events.is_empty() && events.len() <= 1000);
    let org = OrgSlug::parse("acme").expect("valid slug");
    for (i, e) in events.iter().enumerate() {
        assert!(e.validate().is_ok(), "an accepted event must validate");
        assert_eq!(e.recorded_by, "api-token:fuzz", "recorded_by is set by the server");
        let mut bytes = Vec::new();
        leaf::encode_parts(
            &org,
            i as u64,
            EventId::from_random_bytes([9; 16]),
            Timestamp::from_micros(1),
            e,
            &mut bytes,
        );
        let back = leaf::decode(&bytes).expect("an accepted event must decode from its leaf");
        assert_eq!(&back.body, e, "the leaf must carry the accepted event unchanged");
    }
});
