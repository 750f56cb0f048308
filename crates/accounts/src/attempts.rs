//! Every password or TOTP code the accounts check — at sign-in, and behind a session (changing
//! the password, enrolling or removing TOTP) — is an attempt, counted as a failure *before* it is
//! checked: against its source address (the throttle, `throttle.rs`) and against its account (the
//! lockout). Each count is one SQL statement that also refuses the attempt when the limit is
//! reached, and the attempt that reaches the lockout threshold locks the account in that same
//! statement. So concurrent guesses, from every process on the database, cannot get past either
//! limit together: at most the threshold are ever checked. (Checking first and counting after,
//! every guess that arrived before the first failure was counted got checked.) A right password
//! or code gives its counts back; a wrong one is recorded with them.

use logbook_core::{Action, Actor, NewEvent, Source, Timestamp, UserId};
use logbook_store::accounts::LoginAttempt;

use crate::events::event;
use crate::throttle::Counted;
use crate::{after, AccountError, Accounts};

/// A password or code about to be checked, already counted.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// The throttle's key and window, when the address was counted.
    address: Option<(String, Timestamp)>,
    pub(crate) counted: Option<Counted>,
    /// The account it was counted against, once known.
    pub(crate) login: Option<(UserId, LoginAttempt)>,
}

/// How a failed attempt is recorded: a Login Failed event at sign-in, the action's own code
/// (outcome failure) behind a session.
#[derive(Debug)]
pub(crate) struct Failure<'a> {
    pub action: Action,
    pub actor: Actor,
    /// The account, for the lock's event: id and email.
    pub account: Option<(UserId, &'a str)>,
    pub details: &'a str,
    pub reason: &'static str,
    /// What the lock's event says the failures were.
    pub what: &'static str,
}

impl Accounts {
    /// Counts an attempt from `source`'s address; refused with `Throttled` when the address
    /// already has its limit of failures (then nothing is counted, and nothing hashed).
    pub(crate) async fn begin_attempt(&self, source: &Source) -> Result<Attempt, AccountError> {
        self.check_address(source).await?;
        let address = self.count_address_attempt(source).await?;
        let counted = address.as_ref().map(|(_, _, c)| *c);
        Ok(Attempt { address: address.map(|(key, since, _)| (key, since)), counted, login: None })
    }

    /// Counts the attempt against `user`'s account too. `false`: the account is locked, nothing
    /// was counted, and the password or code must not be checked.
    pub(crate) async fn count_against(&self, attempt: &mut Attempt, user: UserId) -> Result<bool, AccountError> {
        let settings = self.settings().await?;
        let now = self.now();
        let lock_until = after(now, settings.lockout());
        let counted = self
            .log
            .store()
            .count_login_attempt(self.org.id, user, now, settings.lockout_threshold, lock_until)
            .await?;
        attempt.login = counted.map(|c| (user, c));
        Ok(counted.is_some())
    }

    /// The password or code was right: the address's count is given back.
    pub(crate) async fn give_back_address(&self, attempt: &Attempt) {
        let Some((key, since)) = &attempt.address else { return };
        if let Err(e) = self.log.store().give_back_sign_in_attempt(self.org.id, key, *since).await {
            tracing::warn!(error = %e, "giving back a sign-in attempt to its address failed");
        }
    }

    /// The password or code was right: both counts are given back (a lock this attempt set
    /// included). A sign-in instead gives the account's back by starting its session.
    pub(crate) async fn give_back(&self, attempt: &Attempt) -> Result<(), AccountError> {
        self.give_back_address(attempt).await;
        if let Some((user, login)) = &attempt.login {
            self.log.store().give_back_login_attempt(self.org.id, *user, login).await?;
        }
        Ok(())
    }

    /// Records a failed attempt with what it counted: the address's failures (and that the
    /// address is now refused, when this one reached its limit), the account's consecutive
    /// failures, and the lock when this attempt set it.
    pub(crate) async fn record_failed_attempt(
        &self,
        f: Failure<'_>,
        attempt: &Attempt,
        source: &Source,
    ) -> Result<(), AccountError> {
        let mut b = event(f.action, f.actor.clone(), source).field("reason", f.reason).failed();
        if let Some((id, email)) = f.account.filter(|_| f.action != Action::LoginFailed) {
            b = b.target("management_user", id, email);
        }
        b = match attempt.counted {
            Some(c) if c.reached_limit && f.action == Action::LoginFailed => b.details(format!(
                "{}; {} failed sign-ins from this address, further sign-ins from it refused for {} minutes",
                f.details,
                c.failures,
                self.config.sign_in_throttle.minutes()
            )),
            _ => b.details(f.details),
        };
        if let Some(c) = attempt.counted {
            b = b.field("address_failures", c.failures);
        }
        if let Some((_, login)) = &attempt.login {
            b = b.field("consecutive_failures", login.failures);
        }
        let mut events: Vec<NewEvent> = vec![b.build()];
        if let (Some((_, login)), Some((id, email))) = (&attempt.login, f.account) {
            if login.lock.is_some() {
                let minutes = self.settings().await?.lockout_minutes;
                events.push(
                    event(Action::AccountLocked, f.actor, source)
                        .target("management_user", id, email)
                        .details(format!(
                            "Locked for {minutes} minutes after {} consecutive {}",
                            login.failures, f.what
                        ))
                        .field("minutes", minutes)
                        .build(),
                );
            }
        }
        self.log.append(&self.org, events, None).await?;
        Ok(())
    }
}
