//! TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, one step of clock skew either way.
//! The step a code matched is returned so the caller can refuse its reuse.

use logbook_core::{Random, Timestamp};
use logbook_store::accounts::TotpSecret;
use totp_rs::{Algorithm, Secret, TOTP};

pub const STEP_SECONDS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the TOTP secret is malformed")]
    BadSecret,
}

fn totp(secret: &TotpSecret, account: &str) -> Result<TOTP, TotpError> {
    let bytes = Secret::Encoded(secret.0.clone()).to_bytes().map_err(|_| TotpError::BadSecret)?;
    TOTP::new(Algorithm::SHA1, 6, 1, STEP_SECONDS, bytes, Some("Logbook".into()), account.into())
        .map_err(|_| TotpError::BadSecret)
}

/// A new 160-bit secret, base32.
pub fn generate_secret(random: &dyn Random) -> TotpSecret {
    let mut b = [0u8; 20];
    random.fill(&mut b);
    TotpSecret(Secret::Raw(b.to_vec()).to_encoded().to_string())
}

/// The `otpauth://` URI an authenticator app scans.
pub fn provisioning_uri(secret: &TotpSecret, account: &str) -> Result<String, TotpError> {
    Ok(totp(secret, account)?.get_url())
}

/// The code for a time (for tests and for showing what the app should display).
pub fn code_at(secret: &TotpSecret, t: Timestamp) -> Result<String, TotpError> {
    Ok(totp(secret, "")?.generate(unix_seconds(t)))
}

fn unix_seconds(t: Timestamp) -> u64 {
    (t.as_micros() / 1_000_000).max(0) as u64
}

/// The time step `code` is valid for at `now` (±1 step), or `None`.
pub fn matching_step(secret: &TotpSecret, code: &str, now: Timestamp) -> Result<Option<u64>, TotpError> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret, "")?;
    let step = unix_seconds(now) / STEP_SECONDS;
    let mut found = None;
    for s in [step.saturating_sub(1), step, step + 1] {
        // Compare every candidate, so the time does not depend on which one matches.
        let expected = t.generate(s * STEP_SECONDS);
        let same = bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()));
        if same && found.is_none() {
            found = Some(s);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 (secret "12345678901234567890"), truncated to 6 digits.
    #[test]
    fn rfc6238_vectors() {
        let secret = TotpSecret(Secret::Raw(b"12345678901234567890".to_vec()).to_encoded().to_string());
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(&secret, Timestamp::from_micros(t * 1_000_000)).unwrap(), code, "t = {t}");
        }
    }

    #[test]
    fn codes_match_within_one_step_only() {
        let secret = TotpSecret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into());
        let now = Timestamp::from_micros(1_800_000_000 * 1_000_000);
        let code = code_at(&secret, now).unwrap();
        let step = 1_800_000_000 / 30;
        assert_eq!(matching_step(&secret, &code, now).unwrap(), Some(step));
        let later = |s: i64| Timestamp::from_micros(now.as_micros() + s * 1_000_000);
        assert_eq!(matching_step(&secret, &code, later(30)).unwrap(), Some(step), "one step late");
        assert_eq!(matching_step(&secret, &code, later(-30)).unwrap(), Some(step), "one step early");
        assert_eq!(matching_step(&secret, &code, later(90)).unwrap(), None);
        assert_eq!(matching_step(&secret, "12345", now).unwrap(), None);
        assert_eq!(matching_step(&secret, "abcdef", now).unwrap(), None);
    }
}
