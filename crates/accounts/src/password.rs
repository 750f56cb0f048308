//! Passwords: the policy (length, strength) and Argon2id hashing with a bound on how many
//! hashes run at once, so a flood of sign-ins cannot exhaust memory (19 MiB each).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use logbook_core::Random;
use logbook_store::accounts::PasswordHash;
use tokio::sync::Semaphore;

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    #[error("the password must be {MIN_LENGTH} to {MAX_LENGTH} characters long")]
    Length,
    #[error("the password is too easy to guess{0}")]
    Weak(String),
}

/// Checks length, then strength with zxcvbn (which embeds common-password and dictionary
/// lists), also against the user's own email. Score 3 of 4 is "safely unguessable".
pub fn check_policy(password: &str, email: &str) -> Result<(), PasswordRejected> {
    let n = password.chars().count();
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&n) {
        return Err(PasswordRejected::Length);
    }
    let local = email.split('@').next().unwrap_or_default();
    let entropy = zxcvbn::zxcvbn(password, &[email, local, "logbook"]);
    if (entropy.score() as u8) < 3 {
        let hint = entropy
            .feedback()
            .and_then(|f| f.warning().map(|w| format!(": {w}")))
            .unwrap_or_else(|| ": use a longer passphrase".into());
        return Err(PasswordRejected::Weak(hint));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// Argon2id with m = 19456 KiB, t = 2, p = 1 (the OWASP minimum), at most `permits` at once
/// and at most `max_waiting` queued; beyond that, callers are turned away with `Busy`.
#[derive(Debug, Clone)]
pub struct Hasher {
    argon: Argon2<'static>,
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    /// Verified against when the email is unknown, so both failures take the same time.
    dummy: Arc<str>,
}

impl Hasher {
    pub fn new(random: &dyn Random, permits: usize, max_waiting: usize) -> Result<Self, HashError> {
        let params = Params::new(19_456, 2, 1, None).map_err(|e| HashError::Internal(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut salt = [0u8; 16];
        random.fill(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Internal(e.to_string()))?;
        let dummy = argon
            .hash_password(b"not a real password", &salt)
            .map_err(|e| HashError::Internal(e.to_string()))?
            .to_string();
        Ok(Self {
            argon,
            permits: Arc::new(Semaphore::new(permits.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            dummy: dummy.into(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(HashError::Busy);
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let permit = permit.map_err(|e| HashError::Internal(e.to_string()))?;
        let argon = self.argon.clone();
        let out = tokio::task::spawn_blocking(move || {
            let out = f(&argon);
            drop(permit);
            out
        })
        .await
        .map_err(|e| HashError::Internal(e.to_string()))?;
        Ok(out)
    }

    pub async fn hash(&self, password: &str, random: &dyn Random) -> Result<PasswordHash, HashError> {
        let mut salt = [0u8; 16];
        random.fill(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Internal(e.to_string()))?;
        let password = password.to_owned();
        self.run(move |argon| {
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|h| PasswordHash(h.to_string()))
                .map_err(|e| HashError::Internal(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches `stored`; with `None`, checks against a dummy hash and
    /// answers false, taking the same time.
    pub async fn verify(&self, password: &str, stored: Option<&PasswordHash>) -> Result<bool, HashError> {
        let (phc, real) = match stored {
            Some(h) => (h.0.clone(), true),
            None => (self.dummy.to_string(), false),
        };
        let password = password.to_owned();
        let matched = self
            .run(move |argon| {
                argon2::PasswordHash::new(&phc)
                    .map(|h| argon.verify_password(password.as_bytes(), &h).is_ok())
                    .unwrap_or(false)
            })
            .await?;
        Ok(real && matched)
    }
}

#[cfg(test)]
mod tests {
    use logbook_core::SeededRandom;

    use super::*;

    #[test]
    fn policy_refuses_short_long_and_common_passwords() {
        assert_eq!(check_policy("short", "a@example.com"), Err(PasswordRejected::Length));
        assert_eq!(check_policy(&"x".repeat(129), "a@example.com"), Err(PasswordRejected::Length));
        assert!(matches!(check_policy("password1", "a@example.com"), Err(PasswordRejected::Weak(_))));
        assert!(matches!(check_policy("qwertyuiop", "a@example.com"), Err(PasswordRejected::Weak(_))));
        assert!(matches!(check_policy("ada.lovelace", "ada.lovelace@example.com"), Err(PasswordRejected::Weak(_))));
        check_policy("correct horse battery staple", "a@example.com").unwrap();
        check_policy("Tr0ub4dor&3-extended-edition", "a@example.com").unwrap();
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let random = SeededRandom::new(1);
        let h = Hasher::new(&random, 2, 8).unwrap();
        let a = h.hash("correct horse battery staple", &random).await.unwrap();
        let b = h.hash("correct horse battery staple", &random).await.unwrap();
        assert!(a.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", a.0);
        assert_ne!(a, b, "a unique salt each time");
        assert!(h.verify("correct horse battery staple", Some(&a)).await.unwrap());
        assert!(!h.verify("correct horse battery stapler", Some(&a)).await.unwrap());
        assert!(!h.verify("not a real password", None).await.unwrap(), "the dummy never matches");
    }

    #[tokio::test]
    async fn a_flood_is_turned_away_instead_of_queued_without_bound() {
        let random = SeededRandom::new(2);
        let h = Hasher::new(&random, 1, 2).unwrap();
        let attempts: Vec<_> = (0..12).map(|_| h.verify("x", None)).collect();
        let results = futures_lite(attempts).await;
        assert!(results.contains(&Err(HashError::Busy)), "{results:?}");
        assert!(results.contains(&Ok(false)));
    }

    async fn futures_lite<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
        // Polls all at once, like a burst of concurrent requests.
        let mut handles = Vec::new();
        for f in fs {
            handles.push(Box::pin(f));
        }
        let mut out = Vec::new();
        let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
        std::future::poll_fn(|cx| {
            let mut all = true;
            for slot in pending.iter_mut() {
                if let Some(f) = slot {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => {
                            out.push(v);
                            *slot = None;
                        }
                        std::task::Poll::Pending => all = false,
                    }
                }
            }
            if all {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        out
    }
}
