//! The query string of the console's Audit Log page (`View::parse`: filters, page size,
//! cursor and the `prev` history of earlier cursors) and the links the page builds from it.
//!
//! Input: the query string (decoded as axum's `Query` decodes it). Checks: nothing panics;
//! every link the page shows ("Refresh", and with an accepted cursor "Newer" and "Older") is a
//! `/audit-log` URL, and following it shows a page whose own URL is that link (the filters,
//! cursor and history survive the round trip).
//!
//! "Newer" and "Older" are rendered only after `CursorKey::decode` accepted the cursor, so only
//! cursors in the base64url alphabet reach them; a cursor with `~` (the `prev` separator) would
//! not round-trip, but never gets that far (fuzz/README.md, findings).
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_server::fuzzing::audit_log_page_links;

const NEXT: &str = "AQAAAAAAAAAqAAAAAAAAAAAAAAAAAAAAAA";

fn query_of(link: &str) -> &str {
    match link.split_once('?') {
        Some((path, q)) => {
            assert_eq!(path, "/audit-log");
            q
        }
        None => {
            assert_eq!(link, "/audit-log");
            ""
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else { return };
    // The cursor the page would use (the last non-empty `cursor`), as `View::parse` reads it.
    let cursor = pairs.iter().filter(|(k, _)| k == "cursor").last().map(|(_, v)| v.as_str()).unwrap_or("");
    let accepted_alphabet = cursor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let (_, [refresh, newer, older]) = audit_log_page_links(pairs, NEXT);
    let shown = if accepted_alphabet { vec![refresh, newer, older] } else { vec![refresh] };
    for link in shown.into_iter().flatten() {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(query_of(&link)).expect("our own link decodes");
        let (again, _) = audit_log_page_links(pairs, NEXT);
        assert_eq!(again, link, "a followed link shows the page it names");
    }
});
