//! The session cookie and the tokens a browser presents: the `logbook_session` cookie as the
//! extractors find it in `Cookie` headers, the session token's hash (`Secret::from_presented`),
//! the CSRF token check (`MacKey::check_csrf`) and the pending sign-in token
//! (`MacKey::pending_user`, `pending_is_valid`).
//!
//! Input: up to four `Cookie` header values separated by 0xFF; the last part is also the
//! presented CSRF and pending-sign-in token. Checks: nothing panics; a found session token is
//! found again in a lone `logbook_session=<token>` header; only the exact CSRF token of the
//! session passes; a pending token is valid exactly when it is the one `pending_sign_in` makes
//! for the user and expiry it names, and it has not expired.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_accounts::tokens::MacKey;
use logbook_accounts::Secret;
use logbook_core::Timestamp;
use logbook_server::fuzzing::session_token;

fuzz_target!(|data: &[u8]| {
    let parts: Vec<&[u8]> = data.split(|&b| b == 0xff).take(4).collect();
    let key = MacKey::derive("fuzz installation secret");
    let token = session_token(&parts);
    if let Some(t) = &token {
        let again = format!("logbook_session={t}");
        assert_eq!(session_token(&[again.as_bytes()]).as_deref(), Some(t.as_str()), "{t:?}");
    }
    let session_hash = Secret::from_presented(token.as_deref().unwrap_or_default()).hash();
    let presented = String::from_utf8_lossy(parts.last().copied().unwrap_or_default());
    assert_eq!(key.check_csrf(&session_hash, &presented), presented == key.csrf_token(&session_hash));

    let now = Timestamp::from_micros(1_000_000);
    if let Some((user, expires)) = MacKey::pending_user(&presented) {
        let genuine = key.pending_sign_in(user, "$argon2id$fuzz", expires);
        assert_eq!(
            key.pending_is_valid(&presented, "$argon2id$fuzz", now),
            presented == genuine && now < expires,
            "{presented:?}"
        );
    } else {
        assert!(!key.pending_is_valid(&presented, "$argon2id$fuzz", now));
    }
});
