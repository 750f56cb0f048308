//! The session cookie and the tokens a browser presents: the `logbook_session` cookie as the
//! extractors find it in `Cookie` headers, the session token's hash (`Secret::from_presented`),
//! the CSRF token check (`MacKey::check_csrf`) and the TOTP enrolment token
//! (`MacKey::totp_enrolment_secret`). (A pending sign-in token is a random secret looked up by
//! its hash, like the session token.)
//!
//! Input: up to four `Cookie` header values separated by 0xFF; the last part is also the
//! presented CSRF and TOTP enrolment token. Checks: nothing panics; a found session token is
//! found again in a lone `logbook_session=<token>` header; only the exact CSRF token of the
//! session passes; an enrolment token yields its secret exactly when it is the one
//! `totp_enrolment` makes for the user, session, secret and expiry it names, and it has not
//! expired.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_accounts::tokens::MacKey;
use logbook_accounts::Secret;
use logbook_core::{Timestamp, UserId};
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
    let fields: Vec<&str> = presented.split('.').collect();
    let user = UserId(fields.first().and_then(|f| f.parse().ok()).unwrap_or(7));
    let named = match fields[..] {
        [_, expires, secret, _] => expires.parse().ok().map(|e| (Timestamp::from_micros(e), secret)),
        _ => None,
    };
    let expected = named
        .filter(|(expires, secret)| {
            now < *expires && presented == key.totp_enrolment(user, &session_hash, secret, *expires)
        })
        .map(|(_, secret)| secret.to_owned());
    assert_eq!(key.totp_enrolment_secret(&presented, user, &session_hash, now), expected, "{presented:?}");
});
