//! Signing in and out, and the sessions in between: every sign-in, failure, lock and logout is
//! recorded with its real reason, and every failure answered alike.

use logbook_core::{Action, Actor, Source, Timestamp};
use logbook_log::AppendError;
use logbook_store::accounts::{SessionRecord, TotpSecret, UserRecord};
use logbook_store::{AccountMutation, MutationError};

use crate::events::{event, typed_identifier, user_actor};
use crate::permission::Caller;
use crate::tokens::{MacKey, Secret};
use crate::users::view;
use crate::{account, after, normalize_email, totp, AccountError, Accounts, UserView};

/// A started session.
#[derive(Debug)]
pub struct SignedIn {
    /// The cookie's value. Never logged.
    pub token: Secret,
    pub csrf_token: String,
    pub user: UserView,
}

/// What a correct password leads to.
#[derive(Debug)]
pub enum SignIn {
    Done(SignedIn),
    /// TOTP is enrolled: the code comes next, with this token (valid 5 minutes).
    NeedsTotp {
        pending: String,
    },
}

const PENDING_SIGN_IN: std::time::Duration = std::time::Duration::from_secs(300);
/// A session's last activity is written at most this often.
const TOUCH_EVERY_MICROS: i64 = 60_000_000;

impl Accounts {
    /// Checks email and password (and the TOTP code when enrolled and given). Every failure is
    /// recorded with its real reason and answered with the same [`AccountError::SignInFailed`].
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        totp_code: Option<&str>,
        source: &Source,
    ) -> Result<SignIn, AccountError> {
        self.check_address(source).await?;
        let now = self.now();
        let user = match normalize_email(email) {
            Ok(e) => self.log.store().user_by_email(self.org.id, &e).await?,
            Err(_) => None,
        };
        let Some(user) = user else {
            self.hasher.verify(password, None).await?;
            self.record_failure(None, email, "Unknown user", source).await?;
            return Err(AccountError::SignInFailed);
        };
        if user.locked_until.is_some_and(|t| t > now) {
            self.hasher.verify(password, None).await?;
            self.count_address_failure(source).await;
            let e = event(Action::LoginFailed, user_actor(user.id, &user.email), source)
                .details("Account locked")
                .field("reason", "locked")
                .failed()
                .build();
            self.log.append(&self.org, vec![e], None).await?;
            return Err(AccountError::SignInFailed);
        }
        if !self.hasher.verify(password, Some(&user.password_hash)).await? {
            self.record_failure(Some(&user), email, "Invalid password", source).await?;
            return Err(AccountError::SignInFailed);
        }
        match (&user.totp, totp_code) {
            (None, _) => self.start_session(&user, None, source).await.map(SignIn::Done),
            (Some(_), None) => Ok(SignIn::NeedsTotp {
                pending: self.mac.pending_sign_in(user.id, &user.password_hash.0, after(now, PENDING_SIGN_IN)),
            }),
            (Some(secret), Some(code)) => self.finish_totp(&user, secret, code, source).await.map(SignIn::Done),
        }
    }

    /// The TOTP step of a sign-in that passed its password step.
    pub async fn sign_in_totp(&self, pending: &str, code: &str, source: &Source) -> Result<SignedIn, AccountError> {
        self.check_address(source).await?;
        let Some((id, _)) = MacKey::pending_user(pending) else { return Err(AccountError::SignInFailed) };
        let user = self.log.store().user(self.org.id, id).await?;
        let Some(user) = user.filter(|u| self.mac.pending_is_valid(pending, &u.password_hash.0, self.now())) else {
            return Err(AccountError::SignInFailed);
        };
        let Some(secret) = user.totp.clone() else { return Err(AccountError::SignInFailed) };
        self.finish_totp(&user, &secret, code, source).await
    }

    async fn finish_totp(
        &self,
        user: &UserRecord,
        secret: &TotpSecret,
        code: &str,
        source: &Source,
    ) -> Result<SignedIn, AccountError> {
        let step = totp::matching_step(secret, code, self.now()).map_err(|e| AccountError::Internal(e.to_string()))?;
        let Some(step) = step else {
            self.record_failure(Some(user), &user.email, "Failed verification (wrong TOTP code)", source).await?;
            return Err(AccountError::SignInFailed);
        };
        match self.start_session(user, Some(step), source).await {
            Err(AccountError::Append(AppendError::Rejected(MutationError::TotpReplay))) => {
                self.record_failure(Some(user), &user.email, "Failed verification (TOTP code already used)", source)
                    .await?;
                Err(AccountError::SignInFailed)
            }
            other => other,
        }
    }

    async fn start_session(
        &self,
        user: &UserRecord,
        totp_step: Option<u64>,
        source: &Source,
    ) -> Result<SignedIn, AccountError> {
        let settings = self.settings().await?;
        let token = Secret::generate(self.random());
        let token_hash = token.hash();
        let method = if totp_step.is_some() { "password + TOTP" } else { "password" };
        let e = event(Action::LoginSuccess, user_actor(user.id, &user.email), source)
            .details(format!("Method: {method}"))
            .field("method", method)
            .build();
        let expires = after(self.now(), settings.absolute_timeout());
        let m = AccountMutation::CreateSession { user: user.id, token_hash, expires, totp_step };
        self.log.append(&self.org, vec![e], account(m)).await.map_err(|e| match e {
            e @ AppendError::Rejected(MutationError::TotpReplay) => AccountError::Append(e),
            e => AccountError::from(e),
        })?;
        let mut user = user.clone();
        user.failed_logins = 0;
        user.locked_until = None;
        Ok(SignedIn { csrf_token: self.mac.csrf_token(&token_hash), token, user: view(&user, self.now()) })
    }

    /// Records a failed sign-in; for a known user, counts it and locks the account at the
    /// threshold (recording that too).
    async fn record_failure(
        &self,
        user: Option<&UserRecord>,
        typed: &str,
        reason: &str,
        source: &Source,
    ) -> Result<(), AccountError> {
        let reason_code = match reason {
            "Unknown user" => "unknown_user",
            "Invalid password" => "invalid_password",
            _ => "failed_verification",
        };
        let counted = self.count_address_failure(source).await;
        let failed = |actor: Actor| {
            let mut b = event(Action::LoginFailed, actor, source).field("reason", reason_code).failed();
            match counted {
                Some(c) if c.reached_limit => {
                    b = b.details(format!(
                        "{reason}; {} failed sign-ins from this address, further sign-ins from it refused for {} minutes",
                        c.failures,
                        self.config.sign_in_throttle.minutes()
                    ));
                }
                _ => b = b.details(reason),
            }
            if let Some(c) = counted {
                b = b.field("address_failures", c.failures);
            }
            b
        };
        let Some(user) = user else {
            self.log.append(&self.org, vec![failed(typed_identifier(typed)).build()], None).await?;
            return Ok(());
        };
        let settings = self.settings().await?;
        let actor = user_actor(user.id, &user.email);
        let failures = user.failed_logins.saturating_add(1);
        let mut events = vec![failed(actor.clone()).field("consecutive_failures", failures).build()];
        let lock_until = (failures >= settings.lockout_threshold).then(|| after(self.now(), settings.lockout()));
        if lock_until.is_some() {
            events.push(
                event(Action::AccountLocked, actor, source)
                    .target("management_user", user.id, &user.email)
                    .details(format!(
                        "Locked for {} minutes after {failures} consecutive failed sign-ins",
                        settings.lockout_minutes
                    ))
                    .field("minutes", settings.lockout_minutes)
                    .build(),
            );
        }
        self.append(events, AccountMutation::RecordLoginFailure { user: user.id, lock_until }).await.or_else(
            |e| match e {
                // Deleted meanwhile: the failure event is still worth keeping.
                AccountError::NotFound(_) => Ok(()),
                e => Err(e),
            },
        )
    }

    /// The caller behind a session token, if the session is alive. A session found past its
    /// idle or absolute limit is ended (and its Logout recorded) here.
    pub async fn authenticate(&self, token: &str, source: &Source) -> Result<Option<Caller>, AccountError> {
        let hash = Secret::from_presented(token).hash();
        let Some((session, user)) = self.log.store().session(&hash).await? else { return Ok(None) };
        if user.org != self.org.id {
            return Ok(None);
        }
        let now = self.now();
        if let Some(reason) = self.expiry_reason(&session, now).await? {
            self.end_session(&session, &user, reason, source).await?;
            return Ok(None);
        }
        if now.as_micros() - session.last_seen.as_micros() >= TOUCH_EVERY_MICROS {
            self.log.store().touch_session(&hash, now).await?;
        }
        Ok(Some(Caller {
            user: user.id,
            email: user.email,
            role: user.role,
            totp_enrolled: user.totp.is_some(),
            session: hash,
            source: source.clone(),
        }))
    }

    async fn expiry_reason(&self, s: &SessionRecord, now: Timestamp) -> Result<Option<&'static str>, AccountError> {
        let settings = self.settings().await?;
        Ok(if now >= s.expires {
            Some("Session expired (absolute limit)")
        } else if now >= after(s.last_seen, settings.idle_timeout()) {
            Some("Session expired (idle timeout)")
        } else {
            None
        })
    }

    async fn end_session(
        &self,
        s: &SessionRecord,
        user: &UserRecord,
        reason: &str,
        source: &Source,
    ) -> Result<(), AccountError> {
        let e = event(Action::Logout, user_actor(user.id, &user.email), source)
            .details(reason)
            .field("reason", reason)
            .build();
        match self.append(vec![e], AccountMutation::EndSession { token_hash: s.token_hash }).await {
            // Ended already (another request or process got there first): recorded once.
            Err(AccountError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    /// Signs the caller out.
    pub async fn sign_out(&self, caller: &Caller) -> Result<(), AccountError> {
        let e = event(Action::Logout, caller.actor(), &caller.source)
            .details("Signed out")
            .field("reason", "signed_out")
            .build();
        match self.append(vec![e], AccountMutation::EndSession { token_hash: caller.session }).await {
            Err(AccountError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    /// Ends the sessions past their limits (run periodically); returns how many it ended.
    pub async fn end_expired_sessions(&self) -> Result<usize, AccountError> {
        let now = self.now();
        let settings = self.settings().await?;
        let idle_since = Timestamp::from_micros(now.as_micros() - settings.idle_timeout().as_micros() as i64);
        let expired = self.log.store().expired_sessions(self.org.id, idle_since, now, 500).await?;
        let mut ended = 0;
        for s in &expired {
            let Some(user) = self.log.store().user(self.org.id, s.user).await? else { continue };
            if let Some(reason) = self.expiry_reason(s, now).await? {
                self.end_session(s, &user, reason, &Source::default()).await?;
                ended += 1;
            }
        }
        Ok(ended)
    }
}
