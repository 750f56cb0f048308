//! Query cursors (`CursorKey::decode`): base64url of version, `before` and a truncated
//! HMAC-SHA256 tag bound to the filters.
//!
//! Input: byte 0 picks the filter digest, the rest is the presented cursor. Checks: nothing
//! panics; a cursor this key accepts re-encodes to exactly the presented text (no second
//! spelling of a cursor is accepted) and is refused under any other filter digest; and a cursor
//! made by `encode` for a `before` taken from the input decodes back to it, for that digest only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_server::fuzzing::CursorKey;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let key = CursorKey::derive("PRIVATE+KEY+fuzz");
    let digest = [sel; 32];
    let other = [sel.wrapping_add(1); 32];

    let text = String::from_utf8_lossy(rest);
    if let Ok(before) = key.decode(&text, &digest) {
        assert_eq!(key.encode(before, &digest), text, "an accepted cursor re-encodes equal");
        assert!(key.decode(&text, &other).is_err(), "a cursor is bound to its filters");
    }

    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(rest) {
        *d = *s;
    }
    let before = u64::from_be_bytes(b);
    let c = key.encode(before, &digest);
    assert_eq!(key.decode(&c, &digest).ok(), Some(before));
    assert!(key.decode(&c, &other).is_err());
});
