//! Signing in and out, and the sessions in between: every sign-in, failure, lock and logout is
//! recorded with its real reason, and every failure answered alike.

use logbook_core::{Action, Actor, NewEvent, Source, Timestamp, UserId};
use logbook_log::AppendError;
use logbook_store::accounts::{EndSessions, SessionRecord, TotpSecret, UserRecord};
use logbook_store::{AccountMutation, MutationError};
use serde::Serialize;

use crate::attempts::{Attempt, Failure};
use crate::events::{event, typed_identifier, user_actor};
use crate::permission::Caller;
use crate::tokens::Secret;
use crate::users::view;
use crate::{account, after, normalize_email, rfc3339, totp, AccountError, Accounts, UserView};

/// One of a user's sessions, as shown to them: never its token nor the token's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// The session's public name, to end it with (a MAC of the token's hash).
    pub id: String,
    /// When the sign-in happened (RFC 3339, UTC).
    pub created: String,
    /// The last request seen, to within a minute.
    pub last_seen: String,
    /// The absolute end, whatever the activity.
    pub expires: String,
    /// The address the sign-in came from, if known.
    pub address: Option<String>,
    /// The sign-in's user agent, if sent.
    pub user_agent: Option<String>,
    /// Whether this is the session of the request that asks.
    pub current: bool,
}

/// Why a change ends sessions: each ended one gets a Logout event with these details and
/// `reason` field (and its public id as `session`), from the request that caused it.
pub(crate) struct Ending<'a> {
    pub details: String,
    pub reason: &'static str,
    pub source: &'a Source,
}

/// Attempts at a change that ends sessions, when sessions start or end meanwhile.
const ENDING_ATTEMPTS: usize = 5;

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
    /// TOTP is enrolled: the code comes next, with this token (valid 5 minutes, for at most
    /// [`PENDING_SIGN_IN_ATTEMPTS`] codes, once).
    NeedsTotp {
        pending: String,
    },
}

const PENDING_SIGN_IN: std::time::Duration = std::time::Duration::from_secs(300);
/// Codes one pending sign-in may try; then it is void, and the password step comes again.
pub const PENDING_SIGN_IN_ATTEMPTS: u32 = 5;
/// A session's last activity is written at most this often.
const TOUCH_EVERY_MICROS: i64 = 60_000_000;

impl Accounts {
    /// Checks email and password (and the TOTP code when enrolled and given). Every failure is
    /// recorded with its real reason and answered with the same [`AccountError::SignInFailed`].
    /// The attempt is counted against the address and the account before the password is
    /// checked (see `attempts.rs`); a locked account is refused without checking it.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        totp_code: Option<&str>,
        source: &Source,
    ) -> Result<SignIn, AccountError> {
        let mut attempt = self.begin_attempt(source).await?;
        let user = match normalize_email(email) {
            Ok(e) => self.log.store().user_by_email(self.org.id, &e).await?,
            Err(_) => None,
        };
        let Some(user) = user else {
            self.hasher.verify(password, None).await?;
            let f = sign_in_failure(typed_identifier(email), None, "Unknown user", "unknown_user");
            self.record_failed_attempt(f, &attempt, source).await?;
            return Err(AccountError::SignInFailed);
        };
        if !self.count_against(&mut attempt, user.id).await? {
            return self.refuse_locked(&user, password, &attempt, source).await;
        }
        if !self.hasher.verify(password, Some(&user.password_hash)).await? {
            self.record_sign_in_failure(&user, "Invalid password", "invalid_password", &attempt, source).await?;
            return Err(AccountError::SignInFailed);
        }
        match (self.totp_secret_of(&user)?, totp_code) {
            (None, _) => self.start_session(&user, None, None, &attempt, source).await.map(SignIn::Done),
            (Some(_), None) => {
                // The password was right: its counts are given back, and the code is the next
                // attempt, with a token that works once for a few codes (kept in the database).
                self.give_back(&attempt).await?;
                let pending = Secret::generate(self.random());
                let now = self.now();
                let expires = after(now, PENDING_SIGN_IN);
                self.log.store().add_pending_sign_in(self.org.id, user.id, &pending.hash(), now, expires).await?;
                Ok(SignIn::NeedsTotp { pending: pending.expose().to_owned() })
            }
            (Some(secret), Some(code)) => {
                self.finish_totp(&user, &secret, code, None, &attempt, source).await.map(SignIn::Done)
            }
        }
    }

    /// The TOTP step of a sign-in that passed its password step: at most
    /// [`PENDING_SIGN_IN_ATTEMPTS`] codes per pending token, which a right code consumes; the
    /// code counts against the address and the account like a password, and a locked account
    /// is refused.
    pub async fn sign_in_totp(&self, pending: &str, code: &str, source: &Source) -> Result<SignedIn, AccountError> {
        let mut attempt = self.begin_attempt(source).await?;
        let pending = Secret::from_presented(pending).hash();
        let store = self.log.store();
        let tried = store.count_pending_attempt(self.org.id, &pending, self.now(), PENDING_SIGN_IN_ATTEMPTS).await?;
        let Some((id, _)) = tried else {
            let actor = typed_identifier("(pending sign-in)");
            let details = "Failed verification (sign-in expired, already completed or out of codes)";
            let f = sign_in_failure(actor, None, details, "failed_verification");
            self.record_failed_attempt(f, &attempt, source).await?;
            return Err(AccountError::SignInFailed);
        };
        let Some(user) = store.user(self.org.id, id).await? else { return Err(AccountError::SignInFailed) };
        let Some(secret) = self.totp_secret_of(&user)? else { return Err(AccountError::SignInFailed) };
        if !self.count_against(&mut attempt, user.id).await? {
            return self.refuse_locked(&user, "", &attempt, source).await;
        }
        self.finish_totp(&user, &secret, code, Some(pending), &attempt, source).await
    }

    /// Refuses a locked account, recording it; with a password, hashes it against the dummy
    /// first, so that a locked account answers in the time a wrong password takes.
    async fn refuse_locked<T>(
        &self,
        user: &UserRecord,
        password: &str,
        attempt: &Attempt,
        source: &Source,
    ) -> Result<T, AccountError> {
        if !password.is_empty() {
            self.hasher.verify(password, None).await?;
        }
        self.record_sign_in_failure(user, "Account locked", "locked", attempt, source).await?;
        Err(AccountError::SignInFailed)
    }

    async fn record_sign_in_failure(
        &self,
        user: &UserRecord,
        details: &str,
        reason: &'static str,
        attempt: &Attempt,
        source: &Source,
    ) -> Result<(), AccountError> {
        let f = sign_in_failure(user_actor(user.id, &user.email), Some((user.id, &user.email)), details, reason);
        self.record_failed_attempt(f, attempt, source).await
    }

    async fn finish_totp(
        &self,
        user: &UserRecord,
        secret: &TotpSecret,
        code: &str,
        pending: Option<[u8; 32]>,
        attempt: &Attempt,
        source: &Source,
    ) -> Result<SignedIn, AccountError> {
        let step = totp::matching_step(secret, code, self.now()).map_err(|e| AccountError::Internal(e.to_string()))?;
        let Some(step) = step else {
            let details = "Failed verification (wrong TOTP code)";
            self.record_sign_in_failure(user, details, "failed_verification", attempt, source).await?;
            return Err(AccountError::SignInFailed);
        };
        let refused = match self.start_session(user, Some(step), pending, attempt, source).await {
            Err(AccountError::Append(AppendError::Rejected(reason))) => reason,
            other => return other,
        };
        let (details, reason) = match refused {
            MutationError::TotpReplay => ("Failed verification (TOTP code already used)", "failed_verification"),
            MutationError::Locked => ("Account locked", "locked"),
            _ => ("Failed verification (sign-in already completed)", "failed_verification"),
        };
        self.record_sign_in_failure(user, details, reason, attempt, source).await?;
        Err(AccountError::SignInFailed)
    }

    /// Starts the session of a sign-in whose password (and code) were right. The commit refuses
    /// a locked account (a lock another attempt set meanwhile; the lock this attempt set, by
    /// reaching the threshold, it lifts), a used TOTP step and a used pending sign-in; it resets
    /// the account's failures, and the address's count is given back.
    async fn start_session(
        &self,
        user: &UserRecord,
        totp_step: Option<u64>,
        pending: Option<[u8; 32]>,
        attempt: &Attempt,
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
        let attempt_lock = attempt.login.and_then(|(_, l)| l.lock);
        let m = AccountMutation::CreateSession {
            user: user.id,
            token_hash,
            expires,
            totp_step,
            pending,
            attempt_lock,
            address: source.ip.map(|ip| ip.to_string()),
            user_agent: source.user_agent.clone(),
        };
        self.log.append(&self.org, vec![e], account(m)).await.map_err(|e| match e {
            // The caller records these refusals as failed sign-ins.
            e @ AppendError::Rejected(MutationError::TotpReplay | MutationError::Locked | MutationError::NotFound) => {
                AccountError::Append(e)
            }
            e => AccountError::from(e),
        })?;
        self.give_back_address(attempt).await;
        let mut user = user.clone();
        user.failed_logins = 0;
        user.locked_until = None;
        Ok(SignedIn { csrf_token: self.mac.csrf_token(&token_hash), token, user: view(&user, self.now()) })
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
        if let Some((details, reason)) = self.expiry_reason(&session, now).await? {
            self.end_session(&session, &user, details, reason, source).await?;
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

    /// The details and reason of an expired session's Logout, if it expired.
    async fn expiry_reason(
        &self,
        s: &SessionRecord,
        now: Timestamp,
    ) -> Result<Option<(&'static str, &'static str)>, AccountError> {
        let settings = self.settings().await?;
        Ok(if now >= s.expires {
            Some(("Session expired (absolute limit)", "Session expired (absolute limit)"))
        } else if now >= after(s.last_seen, settings.idle_timeout()) {
            Some(("Session expired (idle timeout)", "Session expired (idle timeout)"))
        } else {
            None
        })
    }

    async fn end_session(
        &self,
        s: &SessionRecord,
        user: &UserRecord,
        details: &str,
        reason: &str,
        source: &Source,
    ) -> Result<(), AccountError> {
        let e = event(Action::Logout, user_actor(user.id, &user.email), source)
            .details(details)
            .field("reason", reason)
            .field("session", self.mac.session_id(&s.token_hash))
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

    /// Ends the session a browser still presented when it signed in again (a new sign-in
    /// replaces it, so a session cookie planted in the browser, or forgotten there, does not
    /// live on beside the new one). Nothing happens if that session is over already.
    pub async fn end_replaced_session(&self, token: &str, source: &Source) -> Result<(), AccountError> {
        let hash = Secret::from_presented(token).hash();
        let Some((session, user)) = self.log.store().session(&hash).await? else { return Ok(()) };
        if user.org != self.org.id {
            return Ok(());
        }
        let details = "Session ended: replaced by a new sign-in in the same browser";
        self.end_session(&session, &user, details, "new_sign_in", source).await
    }

    /// The user's sessions, oldest first; `current` marks the caller's.
    pub(crate) async fn session_views(
        &self,
        user: UserId,
        current: &[u8; 32],
    ) -> Result<Vec<SessionView>, AccountError> {
        let sessions = self.log.store().sessions_of(user).await?;
        Ok(sessions
            .into_iter()
            .map(|s| SessionView {
                id: self.mac.session_id(&s.token_hash),
                created: rfc3339(s.created),
                last_seen: rfc3339(s.last_seen),
                expires: rfc3339(s.expires),
                address: s.address,
                user_agent: s.user_agent,
                current: &s.token_hash == current,
            })
            .collect())
    }

    /// The session of `user` whose public id is `id`.
    pub(crate) async fn session_by_id(&self, user: UserId, id: &str) -> Result<Option<SessionRecord>, AccountError> {
        let sessions = self.log.store().sessions_of(user).await?;
        Ok(sessions.into_iter().find(|s| self.mac.session_id(&s.token_hash) == id))
    }

    /// Commits a change that also ends every session of `user` but `keep`, each with its
    /// Logout event (see [`Ending`]); `change` builds the change's own events, given how many
    /// sessions end, and its mutation, given the sessions to end. The sessions are read first,
    /// and the commit refuses them if they changed meanwhile (see [`EndSessions`]): then they
    /// are read again. Returns how many ended.
    pub(crate) async fn append_ending_sessions(
        &self,
        user: &UserRecord,
        keep: Option<[u8; 32]>,
        ending: &Ending<'_>,
        change: impl Fn(usize, EndSessions) -> (Vec<NewEvent>, AccountMutation),
    ) -> Result<usize, AccountError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sessions = self.log.store().sessions_of(user.id).await?;
            let ended: Vec<[u8; 32]> = sessions.iter().map(|s| s.token_hash).filter(|h| Some(*h) != keep).collect();
            let (mut events, m) = change(ended.len(), EndSessions { keep, ended: ended.clone() });
            for h in &ended {
                events.push(
                    event(Action::Logout, user_actor(user.id, &user.email), ending.source)
                        .details(ending.details.clone())
                        .field("reason", ending.reason)
                        .field("session", self.mac.session_id(h))
                        .build(),
                );
            }
            if events.is_empty() {
                return Ok(0);
            }
            match self.log.append(&self.org, events, account(m)).await {
                Ok(_) => return Ok(ended.len()),
                Err(AppendError::Rejected(MutationError::Conflict)) if attempts < ENDING_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
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
            if let Some((details, reason)) = self.expiry_reason(s, now).await? {
                self.end_session(s, &user, details, reason, &Source::default()).await?;
                ended += 1;
            }
        }
        Ok(ended)
    }
}

/// A failed sign-in, as [`Accounts::record_failed_attempt`] records it.
fn sign_in_failure<'a>(
    actor: Actor,
    account: Option<(UserId, &'a str)>,
    details: &'a str,
    reason: &'static str,
) -> Failure<'a> {
    Failure { action: Action::LoginFailed, actor, account, details, reason, what: "failed sign-ins" }
}
