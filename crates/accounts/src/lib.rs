//! The platform's accounts, and the audit events they cause.
//!
//! [`Accounts`] is the one place where management users, sessions, invitations, protected users
//! and settings change. Every change is appended to the log together with its event in one
//! transaction (a [`logbook_store::AccountMutation`] rides with the events through the
//! sequencer), so the change and its record commit together or not at all. Operations that need
//! a permission take an [`Authorized<P>`](permission::Authorized), which only a role check can
//! produce.
//!
//! The operations are in one file per resource, named as the server's routes name them:
//! `session` (signing in and out), `users` (management users, the first admin), `invitations`,
//! `protected_users`, `settings`, `account` (the caller's own), `audit_log` (who viewed it) and
//! `api_tokens` (the tokens services record with).
//! Their events are built with [`logbook_core::EventBuilder`] (see `events`).

pub mod mail;
pub mod password;
pub mod permission;
pub mod settings;
pub mod throttle;
pub mod tokens;
pub mod totp;

mod account;
mod api_tokens;
mod attempts;
mod audit_log;
mod events;
mod invitations;
mod protected_users;
mod session;
mod users;

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use logbook_core::{InvitationId, ProtectedUserId, Random, Role, Timestamp, UserId};
use logbook_log::{AppendError, LogService};
use logbook_store::{AccountMutation, Mutation, MutationError, Org, StoreError};
use serde::Serialize;

pub use account::TotpEnrolment;
pub use audit_log::LogRead;
pub use invitations::InvitationCreated;
pub use mail::{SmtpConfig, SmtpTls};
pub use permission::{Authorized, Caller, Forbidden, Permission};
pub use protected_users::{ImportReport, ImportRowError};
pub use session::{SessionView, SignIn, SignedIn, PENDING_SIGN_IN_ATTEMPTS};
pub use settings::{PlatformSettings, SettingsPatch};
pub use throttle::{AccountMetrics, SignInThrottle};
pub use tokens::Secret;

/// Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), and nothing else: the pure
/// parsing steps of operations that otherwise need a store. Not part of the crate's API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::protected_users::{parse_protected_csv, ParsedImport, MAX_IMPORT_ROWS};
}

/// How the accounts behave; the policy admins change at run time lives in [`PlatformSettings`].
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// The console's address as users reach it, for links (setup, invitations).
    pub public_url: String,
    pub invitation_ttl: Duration,
    pub setup_ttl: Duration,
    pub smtp: Option<SmtpConfig>,
    /// Password hashes computed at once (each takes 19 MiB and one core for tens of ms).
    pub hash_permits: usize,
    /// Sign-ins allowed to wait for a hash; more are answered "busy" (HTTP 429).
    pub hash_queue: usize,
    /// Failed sign-ins allowed per source address (shared by every process on the database).
    pub sign_in_throttle: SignInThrottle,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            setup_ttl: Duration::from_secs(24 * 3600),
            smtp: None,
            hash_permits: 2,
            hash_queue: 64,
            sign_in_throttle: SignInThrottle::default(),
        }
    }
}

/// What the accounts refuse, and why. The web layer maps each to a status; internal details
/// (`Append`, `Store`) are logged there and never sent.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Password(#[from] password::PasswordRejected),
    /// The one message for every failed sign-in, whatever the reason.
    #[error("the email, password or code is not correct")]
    SignInFailed,
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
    /// The request's address made too many failed sign-ins recently.
    #[error("too many failed sign-ins from this address; try again in {minutes} minutes")]
    Throttled { minutes: u64 },
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("this link is not valid: it may have expired or been used already")]
    InvalidLink,
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("the change could not be recorded: {0}")]
    Append(AppendError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<AppendError> for AccountError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Rejected(MutationError::EmailTaken) => {
                AccountError::Conflict("a user with this email address already exists".into())
            }
            AppendError::Rejected(MutationError::LastAdmin) => {
                AccountError::Conflict("the last admin cannot be deleted or given another role".into())
            }
            AppendError::Rejected(MutationError::Conflict) => {
                AccountError::Conflict("the record changed in the meantime; reload and try again".into())
            }
            AppendError::Rejected(MutationError::NotFound) => AccountError::NotFound("record"),
            e => AccountError::Append(e),
        }
    }
}

impl From<password::HashError> for AccountError {
    fn from(e: password::HashError) -> Self {
        match e {
            password::HashError::Busy => AccountError::Busy,
            password::HashError::Internal(m) => AccountError::Internal(m),
        }
    }
}

/// A management user as shown (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    pub totp_enrolled: bool,
    pub locked: bool,
    /// RFC 3339, UTC.
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    pub id: InvitationId,
    pub email: String,
    pub role: Role,
    pub invited_by: String,
    pub created: String,
    pub expires: String,
    /// `open`, `accepted`, `revoked` or `expired`.
    #[schema(value_type = String, pattern = "^(open|accepted|revoked|expired)$")]
    pub status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProtectedUserView {
    pub id: ProtectedUserId,
    pub email: String,
    pub name: String,
    pub added: String,
}

/// The accounts of one organization (the platform's own).
#[derive(Debug)]
pub struct Accounts {
    log: Arc<LogService>,
    org: Org,
    config: AccountsConfig,
    hasher: password::Hasher,
    mac: tokens::MacKey,
    totp_sealer: totp::TotpSealer,
    mailer: Option<mail::Mailer>,
    metrics: AccountMetrics,
    settings: Mutex<Option<(Instant, PlatformSettings)>>,
    setup: Mutex<Option<([u8; 32], Timestamp)>>,
}

/// Settings are read at most this often per process; a change made through another process
/// reaches this one within this time.
const SETTINGS_CACHE: Duration = Duration::from_secs(2);

impl Accounts {
    /// `mac_secret` must be the same for every process of an installation (the checkpoint
    /// signing key's secret is). The stored TOTP secrets are encrypted under a key derived from
    /// it: replacing it makes them unreadable.
    pub fn new(log: Arc<LogService>, org: Org, config: AccountsConfig, mac_secret: &str) -> Result<Self, AccountError> {
        let hasher = password::Hasher::new(&**log.random(), config.hash_permits, config.hash_queue)?;
        let mailer =
            config.smtp.clone().map(mail::Mailer::new).transpose().map_err(|e| AccountError::Invalid(e.to_string()))?;
        Ok(Self {
            log,
            org,
            config,
            hasher,
            mac: tokens::MacKey::derive(mac_secret),
            totp_sealer: totp::TotpSealer::derive(mac_secret.as_bytes()),
            mailer,
            metrics: AccountMetrics::default(),
            settings: Mutex::new(None),
            setup: Mutex::new(None),
        })
    }

    pub fn org(&self) -> &Org {
        &self.org
    }

    pub fn log(&self) -> &Arc<LogService> {
        &self.log
    }

    pub fn metrics(&self) -> &AccountMetrics {
        &self.metrics
    }

    fn now(&self) -> Timestamp {
        self.log.clock().now()
    }

    fn random(&self) -> &dyn Random {
        &**self.log.random()
    }

    /// A random id below 2^53, so it survives JSON numbers in every client.
    fn new_id(&self) -> i64 {
        let mut b = [0u8; 8];
        self.random().fill(&mut b);
        ((u64::from_be_bytes(b) >> 11) as i64).max(1)
    }

    /// The platform's settings (defaults until an admin changes them).
    pub async fn settings(&self) -> Result<PlatformSettings, AccountError> {
        if let Some((at, s)) = self.settings.lock().as_ref() {
            if at.elapsed() < SETTINGS_CACHE {
                return Ok(s.clone());
            }
        }
        let s = match self.log.store().settings_json(self.org.id).await? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| AccountError::Internal(format!("stored settings are unreadable: {e}")))?,
            None => PlatformSettings::default(),
        };
        *self.settings.lock() = Some((Instant::now(), s.clone()));
        Ok(s)
    }

    /// Appends the events of a change with the change, in one transaction.
    async fn append(&self, events: Vec<logbook_core::NewEvent>, m: AccountMutation) -> Result<(), AccountError> {
        self.log.append(&self.org, events, account(m)).await?;
        Ok(())
    }

    fn forget_settings(&self) {
        *self.settings.lock() = None;
    }

    /// The CSRF token of a session (for forms and for `X-CSRF-Token`).
    pub fn csrf_token(&self, caller: &Caller) -> String {
        self.mac.csrf_token(&caller.session)
    }

    pub fn check_csrf(&self, caller: &Caller, presented: &str) -> bool {
        self.mac.check_csrf(&caller.session, presented)
    }
}

/// Normalizes an email address (trimmed, lower case) and checks its shape.
pub fn normalize_email(raw: &str) -> Result<String, AccountError> {
    let e = raw.trim().to_lowercase();
    let shape_ok = (3..=254).contains(&e.len())
        && e.split('@').count() == 2
        && e.split('@').all(|p| !p.is_empty())
        && e.rsplit('@').next().is_some_and(|d| d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !e.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || logbook_core::is_format_character(c)
                || matches!(c, '<' | '>' | '"' | ',' | ';')
        });
    if shape_ok {
        Ok(e)
    } else {
        Err(AccountError::Invalid("the email address is not valid".into()))
    }
}

fn account(m: AccountMutation) -> Option<Mutation> {
    Some(Mutation::Account(m))
}

fn rfc3339(t: Timestamp) -> String {
    t.to_rfc3339()
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_micros(t.as_micros().saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(normalize_email("  Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@@example.com",
            "a b@example.com",
            "ada@example",
            "x<y@example.com",
            "ad\u{202E}a@example.com",
            "ada\u{200B}@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
