//! The query string of `GET /api/v1/events` and `GET /api/v1/events/export`: decoded as
//! axum's `Query` decodes it (`serde_urlencoded`), then checked by `QueryParams::parse`
//! (which also parses the `from`/`to` dates) and, for a list, the cursor it carries.
//!
//! Input: byte 0 picks the endpoint and the platform time zone, the rest is the query string.
//! Checks: nothing panics; what is accepted obeys the documented limits (limit 1-500, at most
//! 32 distinct actions (the platform's or well-formed service codes), `q` at most 200 characters without control characters, trimmed,
//! `from` before `to`); a cursor that the key accepts re-encodes to the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_core::{EventAction, OrgId, OrgSlug, Timestamp};
use logbook_server::fuzzing::{parse_query, CursorKey, Endpoint};
use logbook_store::Org;

const ZONES: [&str; 4] = ["UTC", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Apia"];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let Ok(query) = std::str::from_utf8(rest) else { return };
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else { return };
    let endpoint = if sel & 1 == 0 { Endpoint::List } else { Endpoint::Export };
    let tz = jiff::tz::TimeZone::get(ZONES[usize::from(sel >> 1) % ZONES.len()]).expect("bundled zone");
    let org = Org { id: OrgId(1), slug: OrgSlug::parse("acme").expect("slug"), created: Timestamp::from_micros(0) };
    let Ok(p) = parse_query(pairs, &tz, endpoint, &org) else { return };

    if let Some(n) = p.limit {
        assert!((1..=500).contains(&n));
    }
    assert!(p.actions.len() <= 32);
    for (i, a) in p.actions.iter().enumerate() {
        assert_eq!(EventAction::from_code(a).map(|x| x.code().to_owned()), Ok(a.clone()), "only the platform's or service codes");
        assert!(!p.actions[..i].contains(a), "no duplicate actions");
    }
    if let Some(q) = &p.q {
        assert!(!q.is_empty() && q.trim() == q && q.chars().count() <= 200 && !q.chars().any(char::is_control));
    }
    if let Some(u) = &p.user {
        assert!(!u.is_empty() && u.chars().count() <= 320 && !u.chars().any(char::is_control));
    }
    if let (Some((_, f)), Some((_, t))) = (&p.from, &p.to) {
        assert!(f < t, "from must be before to");
    }
    if matches!(endpoint, Endpoint::Export) {
        assert!(p.limit.is_none() && p.cursor.is_none());
    } else {
        assert!(p.format.is_none());
    }
    if let Some(c) = &p.cursor {
        let key = CursorKey::derive("PRIVATE+KEY+fuzz");
        if let Ok(before) = key.decode(c, &p.digest) {
            assert_eq!(&key.encode(before, &p.digest), c, "an accepted cursor re-encodes equal");
        }
    }
});
