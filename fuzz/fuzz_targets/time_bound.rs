//! The `from`/`to` bounds of queries and exports (`logbook_log::export::parse_from` and
//! `parse_to`): an RFC 3339 instant, or a date meaning whole days in the platform's zone.
//!
//! Input: byte 0 picks the time zone, the rest is the bound. Checks: nothing panics (the
//! end-of-day and +1 µs arithmetic included); an instant `to` is exactly 1 µs after the same
//! `from`; a date's `from` is not after its `to`, and a day lasts at most 26 hours.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_log::export::{parse_from, parse_to};

const ZONES: [&str; 6] =
    ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "Pacific/Kiritimati"];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let Ok(s) = std::str::from_utf8(rest) else { return };
    let tz = jiff::tz::TimeZone::get(ZONES[usize::from(sel) % ZONES.len()]).expect("bundled zone");
    let (from, to) = (parse_from(s, &tz), parse_to(s, &tz));
    let (Ok(f), Ok(t)) = (from, to) else { return };
    let (f, t) = (f.as_micros(), t.as_micros());
    if s.parse::<jiff::Timestamp>().is_ok() {
        assert_eq!(t, f + 1, "an instant `to` ends 1 µs after the instant");
    } else {
        assert!(f <= t && t - f <= 26 * 3_600_000_000, "{s:?} in {tz:?}: {f}..{t}");
    }
});
