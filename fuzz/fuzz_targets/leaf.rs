//! The canonical leaf decoder (`logbook_core::leaf::decode` and `keys`): leaves are read back
//! from a store that someone may have written to directly, and from files given to `verify`.
//!
//! Checks: nothing panics; a leaf that decodes re-encodes to exactly the same bytes (one
//! encoding per event); `keys` agrees with `decode` on every leaf `decode` accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_core::leaf;

fuzz_target!(|data: &[u8]| {
    let keys = leaf::keys(data);
    if let Ok(event) = leaf::decode(data) {
        assert_eq!(leaf::encode(&event), data, "a decoded leaf must re-encode to the same bytes");
        let k = keys.expect("keys() must read every leaf decode() accepts");
        assert_eq!(k.org, event.org.as_str());
        assert_eq!(k.seq, event.seq);
        assert_eq!(k.time, event.time);
        assert_eq!(k.action, event.body.action.code());
        assert_eq!(k.user, event.body.actor.email.as_deref().unwrap_or(&event.body.actor.id));
    }
});
