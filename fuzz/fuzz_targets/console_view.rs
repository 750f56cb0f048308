//! The query string of the console's Audit Log page (`View::parse`: filters, page size,
//! cursor and the `prev` history of earlier cursors) and the links the page builds from it.
//!
//! Input: the query string (decoded as axum's `Query` decodes it). Checks: nothing panics;
//! every link (this page, "Newer", "Older") is a `/audit-log` URL, and following it shows a
//! page whose own URL is that link (the filters, cursor and history survive the round trip).
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_server::fuzzing::audit_log_page_links;

const NEXT: &str = "AQAAAAAAAAAqAAAAAAAAAAAAAAAAAAAAAA";

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else { return };
    for link in audit_log_page_links(pairs, NEXT).into_iter().flatten() {
        let q = match link.split_once('?') {
            Some((path, q)) => {
                assert_eq!(path, "/audit-log");
                q
            }
            None => {
                assert_eq!(link, "/audit-log");
                ""
            }
        };
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(q).expect("our own link decodes");
        let [again, ..] = audit_log_page_links(pairs, NEXT);
        assert_eq!(again.as_deref(), Some(link.as_str()), "a followed link shows the page it names");
    }
});
