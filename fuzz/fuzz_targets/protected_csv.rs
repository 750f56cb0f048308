//! The protected-users CSV import (`Accounts::import_protected`, its pure part
//! `parse_protected_csv`): a file an admin uploads, header `email,name`.
//!
//! Checks: nothing panics; at most 10,000 rows are reported; every accepted row has a
//! normalized email (normalizing it again changes nothing), distinct from the others, and a
//! trimmed name of 1-200 characters without control characters; lines are 2 or more and the
//! accepted rows are in file order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_accounts::fuzzing::{parse_protected_csv, MAX_IMPORT_ROWS};
use logbook_accounts::normalize_email;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse_protected_csv(data) else { return };
    assert!(parsed.valid.len() + parsed.errors.len() <= MAX_IMPORT_ROWS);
    let mut seen = std::collections::HashSet::new();
    let mut last_line = 1;
    for (line, email, name) in &parsed.valid {
        assert!(*line > last_line, "accepted rows in file order");
        last_line = *line;
        assert_eq!(normalize_email(email).ok().as_deref(), Some(email.as_str()), "normalized email");
        assert!(seen.insert(email.clone()), "an email is accepted once");
        assert!(!name.is_empty() && name.trim() == name && name.chars().count() <= 200);
        assert!(!name.chars().any(char::is_control));
    }
    for e in &parsed.errors {
        assert!(e.line >= 2);
    }
});
