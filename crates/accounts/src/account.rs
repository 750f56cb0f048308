//! The caller's own account: who they are, their password, their TOTP, their sessions.
//!
//! A new password or TOTP ends every other session of the user (each recorded as a Logout,
//! reason `password_changed` or `mfa_changed`): whoever held one of them under the old
//! credentials is out.
//!
//! Every change here asks for the current password, and that check is an attempt like a
//! sign-in (`attempts.rs`): counted against the address and the account before it is made,
//! refused while the account is locked, and recorded when wrong (the action's own code, outcome
//! failure), so a stolen session cannot be used to guess the password.

use logbook_core::Action;
use logbook_store::accounts::{TotpSecret, UserRecord};
use logbook_store::AccountMutation;
use serde::Serialize;

use crate::attempts::Failure;
use crate::events::event;
use crate::permission::Caller;
use crate::session::{Ending, SessionView};
use crate::{after, password, totp, AccountError, Accounts, UserView};

/// A TOTP change ends the user's other sessions.
fn mfa_changed(caller: &Caller) -> Ending<'_> {
    Ending { details: "Session ended: TOTP was changed".into(), reason: "mfa_changed", source: &caller.source }
}

/// How long a TOTP enrolment may take between showing the secret and confirming it.
const TOTP_ENROLMENT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpEnrolment {
    /// Base32, to type into an authenticator app by hand.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
    /// Sent back with the code and the current password ([`Accounts::enrol_totp`]): it names
    /// the secret issued here, for this session, for 30 minutes, so no other can be enrolled.
    pub token: String,
}

/// The secret (also inside the URI, the QR code and the token) never reaches a log line.
impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(<redacted>)")
    }
}

impl Accounts {
    pub async fn me(&self, caller: &Caller) -> Result<UserView, AccountError> {
        self.user_view(caller.user).await
    }

    pub async fn change_password(&self, caller: &Caller, current: &str, new: &str) -> Result<(), AccountError> {
        let user = self.check_current_password(caller, current, Action::PasswordChanged).await?;
        password::check_policy(new, &user.email)?;
        let password_hash = self.hasher.hash(new, self.random()).await?;
        let ending = Ending {
            details: "Session ended: the password was changed".into(),
            reason: "password_changed",
            source: &caller.source,
        };
        self.append_ending_sessions(&user, Some(caller.session), &ending, |_, end| {
            let e = event(Action::PasswordChanged, caller.actor(), &caller.source)
                .target("management_user", user.id, &user.email)
                .details("Password changed by the user")
                .build();
            let m = AccountMutation::SetPassword {
                user: user.id,
                password_hash: password_hash.clone(),
                end_sessions: Some(end),
            };
            (vec![e], m)
        })
        .await
        .map(drop)
    }

    /// A new secret to enrol, and the token that names it; nothing is stored until
    /// [`Accounts::enrol_totp`].
    pub fn begin_totp(&self, caller: &Caller) -> Result<TotpEnrolment, AccountError> {
        let secret = totp::generate_secret(self.random());
        let uri = totp::provisioning_uri(&secret, &caller.email).map_err(|e| AccountError::Internal(e.to_string()))?;
        let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| AccountError::Internal(e.to_string()))?;
        let qr_svg = qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build();
        let expires = after(self.now(), TOTP_ENROLMENT);
        let token = self.mac.totp_enrolment(caller.user, &caller.session, &secret.0, expires);
        Ok(TotpEnrolment { secret: secret.0, otpauth_uri: uri, qr_svg, token })
    }

    /// Enrols the secret [`Accounts::begin_totp`] issued (named by its `token`), once a code
    /// from it matches and the current password is right.
    pub async fn enrol_totp(
        &self,
        caller: &Caller,
        token: &str,
        code: &str,
        current_password: &str,
    ) -> Result<(), AccountError> {
        if caller.totp_enrolled {
            return Err(AccountError::Conflict("TOTP is already enrolled; remove it first".into()));
        }
        let Some(secret) = self.mac.totp_enrolment_secret(token, caller.user, &caller.session, self.now()) else {
            return Err(AccountError::Invalid("this enrolment has expired; start again".into()));
        };
        let user = self.check_current_password(caller, current_password, Action::TotpEnrolled).await?;
        let secret = TotpSecret(secret);
        match totp::matching_step(&secret, code, self.now()) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(AccountError::Invalid("the code does not match; check the device's clock".into())),
            Err(_) => return Err(AccountError::Internal("an issued TOTP secret is not valid base32".into())),
        }
        let sealed = self.seal_totp(caller.user, &secret);
        self.append_ending_sessions(&user, Some(caller.session), &mfa_changed(caller), |_, end| {
            let e = event(Action::TotpEnrolled, caller.actor(), &caller.source)
                .target("management_user", caller.user, &caller.email)
                .details("TOTP enrolled")
                .build();
            (
                vec![e],
                AccountMutation::SetTotp { user: caller.user, secret: Some(sealed.clone()), end_sessions: Some(end) },
            )
        })
        .await
        .map(drop)
    }

    pub async fn remove_totp(&self, caller: &Caller, password: &str) -> Result<(), AccountError> {
        let user = self.log.store().user(self.org.id, caller.user).await?.ok_or(AccountError::NotFound("user"))?;
        if user.totp.is_none() {
            return Err(AccountError::Conflict("TOTP is not enrolled".into()));
        }
        self.check_current_password(caller, password, Action::TotpRemoved).await?;
        self.append_ending_sessions(&user, Some(caller.session), &mfa_changed(caller), |_, end| {
            let e = event(Action::TotpRemoved, caller.actor(), &caller.source)
                .target("management_user", user.id, &user.email)
                .details("TOTP removed by the user")
                .build();
            (vec![e], AccountMutation::SetTotp { user: user.id, secret: None, end_sessions: Some(end) })
        })
        .await
        .map(drop)
    }

    /// The caller's sessions, oldest first, theirs marked `current`.
    pub async fn my_sessions(&self, caller: &Caller) -> Result<Vec<SessionView>, AccountError> {
        self.session_views(caller.user, &caller.session).await
    }

    /// Ends one of the caller's sessions (the current one too, if named), by its public id;
    /// another user's session is not found. Returns whether it was the current one.
    pub async fn end_my_session(&self, caller: &Caller, id: &str) -> Result<bool, AccountError> {
        let s = self.session_by_id(caller.user, id).await?.ok_or(AccountError::NotFound("session"))?;
        let e = event(Action::Logout, caller.actor(), &caller.source)
            .details("Session ended by the user")
            .field("reason", "ended_by_user")
            .field("session", self.mac.session_id(&s.token_hash))
            .build();
        match self.append(vec![e], AccountMutation::EndSession { token_hash: s.token_hash }).await {
            Err(AccountError::NotFound(_)) => Err(AccountError::NotFound("session")),
            other => other.map(|()| s.token_hash == caller.session),
        }
    }

    /// Ends every session of the caller but the current one; returns how many.
    pub async fn end_my_other_sessions(&self, caller: &Caller) -> Result<usize, AccountError> {
        let user = self.log.store().user(self.org.id, caller.user).await?.ok_or(AccountError::NotFound("user"))?;
        let ending = Ending {
            details: "Session ended by the user (signed out everywhere else)".into(),
            reason: "ended_by_user",
            source: &caller.source,
        };
        self.append_ending_sessions(&user, Some(caller.session), &ending, |_, end| {
            (vec![], AccountMutation::EndSessionsOf { user: user.id, end_sessions: end })
        })
        .await
    }

    /// Checks the caller's current password before `action`, as an attempt (see the module's
    /// doc); a wrong one, or a locked account, is recorded as `action` failed.
    async fn check_current_password(
        &self,
        caller: &Caller,
        password: &str,
        action: Action,
    ) -> Result<UserRecord, AccountError> {
        let user = self.log.store().user(self.org.id, caller.user).await?.ok_or(AccountError::NotFound("user"))?;
        let mut attempt = self.begin_attempt(&caller.source).await?;
        let failure = |details, reason| Failure {
            action,
            actor: caller.actor(),
            account: Some((user.id, &user.email)),
            details,
            reason,
            what: "failed sign-ins or password checks",
        };
        if !self.count_against(&mut attempt, user.id).await? {
            let f = failure("Refused: the account is locked", "locked");
            self.record_failed_attempt(f, &attempt, &caller.source).await?;
            let minutes = self.settings().await?.lockout_minutes;
            return Err(AccountError::Invalid(format!(
                "the account is locked after too many wrong passwords; try again in up to {minutes} minutes"
            )));
        }
        if !self.hasher.verify(password, Some(&user.password_hash)).await? {
            let f = failure("The current password is not correct", "invalid_password");
            self.record_failed_attempt(f, &attempt, &caller.source).await?;
            return Err(AccountError::Invalid("the current password is not correct".into()));
        }
        self.give_back(&attempt).await?;
        Ok(user)
    }
}
