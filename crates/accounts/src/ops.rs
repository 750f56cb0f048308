//! The operations of [`Accounts`]: each validates, builds its events, and appends them with its
//! mutation, so the change and its record commit together.

use std::collections::{BTreeMap, HashSet};

use logbook_core::{Action, Actor, InvitationId, NewEvent, ProtectedUserId, Role, Source, Timestamp, UserId};
use logbook_log::AppendError;
use logbook_store::accounts::{InvitationRecord, SessionRecord, TotpSecret, UserRecord};
use logbook_store::{AccountMutation, Mutation, MutationError};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::events::{typed_identifier, user_actor, EventBuilder};
use crate::permission::{
    Authorized, Caller, ManageProtectedUsers, ManageSettings, ManageUsers, ReadAuditLog, ReadProtectedUsers, ReadUsers,
};
use crate::settings::SettingsPatch;
use crate::tokens::{MacKey, Secret};
use crate::{
    after, normalize_email, password, rfc3339, totp, AccountError, Accounts, InvitationView, PlatformSettings,
    ProtectedUserView, UserView,
};

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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitationCreated {
    pub invitation: InvitationView,
    /// Shown to the inviting admin whether or not it was mailed.
    pub link: String,
    pub mailed: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TotpEnrolment {
    /// Base32; the confirmation sends it back with a code.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ImportRowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub email: String,
    pub error: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub added: u64,
    pub errors: Vec<ImportRowError>,
}

const PENDING_SIGN_IN: std::time::Duration = std::time::Duration::from_secs(300);
/// A session's last activity is written at most this often.
const TOUCH_EVERY_MICROS: i64 = 60_000_000;
pub const MAX_IMPORT_ROWS: usize = 10_000;
const NAME_MAX: usize = 200;

/// The rows of a protected-users CSV import, checked, before anything is looked up or stored.
#[derive(Debug)]
pub struct ParsedImport {
    /// (line, normalized email, name) of each acceptable row, emails distinct.
    pub valid: Vec<(u64, String, String)>,
    pub errors: Vec<ImportRowError>,
}

/// Reads a protected-users CSV (header `email,name`, in any order and case) and checks every
/// row: the pure part of [`Accounts::import_protected`], kept apart so it can be fuzzed.
pub fn parse_protected_csv(csv_text: &[u8]) -> Result<ParsedImport, AccountError> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(true).flexible(true).trim(csv::Trim::All).from_reader(csv_text);
    let headers = reader.headers().map_err(|e| AccountError::Invalid(format!("the file is not valid CSV: {e}")))?;
    let col = |name: &str| headers.iter().position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name));
    let (Some(email_col), Some(name_col)) = (col("email"), col("name")) else {
        return Err(AccountError::Invalid("the first line must be the header: email,name".into()));
    };
    let mut errors = Vec::new();
    let mut valid: Vec<(u64, String, String)> = Vec::new();
    let mut seen = HashSet::new();
    let mut lines = LineCounter { text: csv_text, at: 0, line: 1 };
    let mut line = 1;
    for record in reader.records() {
        let start = match &record {
            Ok(r) => r.position(),
            Err(e) => e.position(),
        };
        line = start.map_or(line + 1, |p| lines.line_at(p.byte()));
        if valid.len() + errors.len() >= MAX_IMPORT_ROWS {
            return Err(AccountError::Invalid(format!("at most {MAX_IMPORT_ROWS} rows can be imported at once")));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(ImportRowError { line, email: String::new(), error: format!("not valid CSV: {e}") });
                continue;
            }
        };
        let raw_email = record.get(email_col).unwrap_or_default();
        let shown: String = raw_email.chars().take(254).collect();
        let checked =
            normalize_email(raw_email).and_then(|e| Ok((e, check_name(record.get(name_col).unwrap_or_default())?)));
        match checked {
            Err(e) => errors.push(ImportRowError { line, email: shown, error: e.to_string() }),
            Ok((email, _)) if !seen.insert(email.clone()) => {
                errors.push(ImportRowError { line, email, error: "listed twice in the file".into() })
            }
            Ok((email, name)) => valid.push((line, email, name)),
        }
    }
    Ok(ParsedImport { valid, errors })
}

/// The file's own line numbers: counts line breaks (`\r\n`, `\r` or `\n`) up to a record's
/// first byte, moving forward only. Counting records instead would be wrong after a blank line
/// or a quoted cell that spans lines, and the CSV reader's own line count ignores a lone `\r`.
struct LineCounter<'a> {
    text: &'a [u8],
    at: usize,
    line: u64,
}

impl LineCounter<'_> {
    /// The line of the record the reader says starts at `byte`. The reader's position may be
    /// the blank lines it skipped before the record, so those are passed over too (a record
    /// never starts with a line break).
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut end = usize::try_from(byte).unwrap_or(usize::MAX).min(self.text.len());
        while self.text.get(end).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            end += 1;
        }
        while self.at < end {
            match self.text[self.at] {
                b'\n' => self.line += 1,
                b'\r' if self.text.get(self.at + 1) != Some(&b'\n') => self.line += 1,
                _ => {}
            }
            self.at += 1;
        }
        self.line
    }
}

fn view(u: &UserRecord, now: Timestamp) -> UserView {
    UserView {
        id: u.id,
        email: u.email.clone(),
        role: u.role,
        totp_enrolled: u.totp.is_some(),
        locked: u.locked_until.is_some_and(|t| t > now),
        created: rfc3339(u.created),
    }
}

fn invitation_view(i: &InvitationRecord, now: Timestamp) -> InvitationView {
    let status = if i.accepted.is_some() {
        "accepted"
    } else if i.revoked.is_some() {
        "revoked"
    } else if now >= i.expires {
        "expired"
    } else {
        "open"
    };
    InvitationView {
        id: i.id,
        email: i.email.clone(),
        role: i.role,
        invited_by: i.invited_by.clone(),
        created: rfc3339(i.created),
        expires: rfc3339(i.expires),
        status,
    }
}

fn check_name(name: &str) -> Result<String, AccountError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > NAME_MAX || n.chars().any(char::is_control) {
        return Err(AccountError::Invalid(format!(
            "the name must be 1 to {NAME_MAX} characters, without control characters"
        )));
    }
    Ok(n.to_owned())
}

/// How a management user came to be, for their Management Users Added event.
struct HowAdded<'a> {
    /// `None`: the new user is the actor (setup link, accepted invitation).
    actor: Option<Actor>,
    source: &'a Source,
    details: String,
    method: &'static str,
    only_if_first: bool,
}

fn account(m: AccountMutation) -> Option<Mutation> {
    Some(Mutation::Account(m))
}

impl Accounts {
    async fn append(&self, events: Vec<NewEvent>, m: AccountMutation) -> Result<(), AccountError> {
        self.log.append(&self.org, events, account(m)).await?;
        Ok(())
    }

    // ---- First admin -------------------------------------------------------------------

    /// On a store without users: a one-time link that creates the first admin (valid for
    /// `setup_ttl`, in this process). `None` once any user exists.
    pub async fn setup_link(&self) -> Result<Option<String>, AccountError> {
        if self.log.store().user_count(self.org.id).await? > 0 {
            return Ok(None);
        }
        let secret = Secret::generate(self.random());
        let expires = after(self.now(), self.config.setup_ttl);
        *self.setup.lock().unwrap_or_else(|p| p.into_inner()) = Some((secret.hash(), expires));
        Ok(Some(format!("{}/setup?token={}", self.config.public_url.trim_end_matches('/'), secret.expose())))
    }

    pub fn setup_token_is_valid(&self, token: &str) -> bool {
        let now = self.now();
        let hash = Secret::from_presented(token).hash();
        matches!(*self.setup.lock().unwrap_or_else(|p| p.into_inner()), Some((h, exp)) if h == hash && now < exp)
    }

    /// Creates the first admin with the setup link's token.
    pub async fn complete_setup(
        &self,
        token: &str,
        email: &str,
        password: &str,
        source: &Source,
    ) -> Result<UserView, AccountError> {
        if !self.setup_token_is_valid(token) {
            return Err(AccountError::InvalidLink);
        }
        let how = HowAdded {
            actor: None,
            source,
            details: "First admin, created with the setup link".into(),
            method: "setup_link",
            only_if_first: true,
        };
        let user = match self.create_user(email, Role::Admin, password, how).await {
            Err(AccountError::Conflict(_)) => return Err(AccountError::InvalidLink),
            other => other?,
        };
        *self.setup.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(user)
    }

    /// `logbook admin create`: a user added by the operator, recorded with the system actor.
    pub async fn create_user_as_operator(
        &self,
        email: &str,
        role: Role,
        password: &str,
    ) -> Result<UserView, AccountError> {
        let how = HowAdded {
            actor: Some(Actor::system()),
            source: &Source::default(),
            details: format!("Added from the command line as {role}"),
            method: "command_line",
            only_if_first: false,
        };
        self.create_user(email, role, password, how).await
    }

    /// Validates, hashes and adds a management user, with its Management Users Added event.
    async fn create_user(
        &self,
        email: &str,
        role: Role,
        password: &str,
        how: HowAdded<'_>,
    ) -> Result<UserView, AccountError> {
        let email = normalize_email(email)?;
        password::check_policy(password, &email)?;
        let hash = self.hasher.hash(password, self.random()).await?;
        let id = UserId(self.new_id());
        let actor = how.actor.unwrap_or_else(|| user_actor(id, &email));
        let event = EventBuilder::new(Action::ManagementUserAdded, actor, how.source)
            .target("management_user", id, &email)
            .details(how.details)
            .field("role", role.code())
            .field("method", how.method)
            .build();
        let m = AccountMutation::CreateUser { id, email, role, password_hash: hash, only_if_first: how.only_if_first };
        self.append(vec![event], m).await?;
        self.user_view(id).await
    }

    async fn user_view(&self, id: UserId) -> Result<UserView, AccountError> {
        let u = self.log.store().user(self.org.id, id).await?.ok_or(AccountError::NotFound("user"))?;
        Ok(view(&u, self.now()))
    }

    // ---- Signing in and out ------------------------------------------------------------

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
            let e = EventBuilder::new(Action::LoginFailed, user_actor(user.id, &user.email), source)
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
        let e = EventBuilder::new(Action::LoginSuccess, user_actor(user.id, &user.email), source)
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
            let mut b = EventBuilder::new(Action::LoginFailed, actor, source).field("reason", reason_code).failed();
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
                EventBuilder::new(Action::AccountLocked, actor, source)
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
        let e = EventBuilder::new(Action::Logout, user_actor(user.id, &user.email), source)
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
        let e = EventBuilder::new(Action::Logout, caller.actor(), &caller.source)
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

    // ---- Management users --------------------------------------------------------------

    pub async fn list_users(&self, _: &Authorized<ReadUsers>) -> Result<Vec<UserView>, AccountError> {
        let now = self.now();
        Ok(self.log.store().users_of(self.org.id).await?.iter().map(|u| view(u, now)).collect())
    }

    pub async fn me(&self, caller: &Caller) -> Result<UserView, AccountError> {
        self.user_view(caller.user).await
    }

    pub async fn add_user(
        &self,
        by: &Authorized<ManageUsers>,
        email: &str,
        role: Role,
        password: &str,
    ) -> Result<UserView, AccountError> {
        let shown = email.trim().to_lowercase();
        let how = HowAdded {
            actor: Some(by.actor()),
            source: &by.source,
            details: format!("Added {shown} as {role}"),
            method: "direct",
            only_if_first: false,
        };
        self.create_user(email, role, password, how).await
    }

    pub async fn set_role(
        &self,
        by: &Authorized<ManageUsers>,
        id: UserId,
        role: Role,
    ) -> Result<UserView, AccountError> {
        let user = self.log.store().user(self.org.id, id).await?.ok_or(AccountError::NotFound("user"))?;
        if user.role == role {
            return Ok(view(&user, self.now()));
        }
        let e = EventBuilder::new(Action::UserRoleUpdated, by.actor(), &by.source)
            .target("management_user", id, &user.email)
            .details(format!("Role changed from {} to {role}", user.role))
            .field("old_role", user.role.code())
            .field("new_role", role.code())
            .build();
        self.append(vec![e], AccountMutation::SetUserRole { user: id, from: user.role, to: role }).await?;
        self.user_view(id).await
    }

    /// Deletes a user; their sessions end at once, each with its Logout.
    pub async fn delete_user(&self, by: &Authorized<ManageUsers>, id: UserId) -> Result<(), AccountError> {
        let user = self.log.store().user(self.org.id, id).await?.ok_or(AccountError::NotFound("user"))?;
        let mut events = vec![EventBuilder::new(Action::ManagementUserDeleted, by.actor(), &by.source)
            .target("management_user", id, &user.email)
            .details(format!("Deleted {} ({})", user.email, user.role))
            .field("role", user.role.code())
            .build()];
        for _ in self.log.store().sessions_of(id).await? {
            events.push(
                EventBuilder::new(Action::Logout, user_actor(id, &user.email), &by.source)
                    .details(format!("Session ended: user deleted by {}", by.email()))
                    .field("reason", "user_deleted")
                    .build(),
            );
        }
        self.append(events, AccountMutation::DeleteUser { user: id }).await
    }

    // ---- Invitations -------------------------------------------------------------------

    pub async fn invite(
        &self,
        by: &Authorized<ManageUsers>,
        email: &str,
        role: Role,
    ) -> Result<InvitationCreated, AccountError> {
        let email = normalize_email(email)?;
        if self.log.store().user_by_email(self.org.id, &email).await?.is_some() {
            return Err(AccountError::Conflict("a user with this email address already exists".into()));
        }
        let secret = Secret::generate(self.random());
        let id = InvitationId(self.new_id());
        let expires = after(self.now(), self.config.invitation_ttl);
        let mailed_to = if self.mailer.is_some() { "sent by email" } else { "link shown to the inviter" };
        let e = EventBuilder::new(Action::UserInvited, by.actor(), &by.source)
            .target("invitation", id, &email)
            .details(format!("Invited {email} as {role} ({mailed_to})"))
            .field("role", role.code())
            .field("expires", rfc3339(expires))
            .build();
        let m = AccountMutation::CreateInvitation {
            id,
            email: email.clone(),
            role,
            token_hash: secret.hash(),
            invited_by: by.email().to_owned(),
            expires,
        };
        self.append(vec![e], m).await?;
        let link = format!("{}/invite?token={}", self.config.public_url.trim_end_matches('/'), secret.expose());
        let mailed = match &self.mailer {
            Some(m) => match m.send_invitation(&email, by.email(), role.label(), &link).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, invitation = %id, "the invitation could not be mailed; the link is shown to the admin");
                    false
                }
            },
            None => false,
        };
        let inv = self.log.store().invitation(self.org.id, id).await?.ok_or(AccountError::NotFound("invitation"))?;
        Ok(InvitationCreated { invitation: invitation_view(&inv, self.now()), link, mailed })
    }

    pub async fn list_invitations(&self, _: &Authorized<ReadUsers>) -> Result<Vec<InvitationView>, AccountError> {
        let now = self.now();
        Ok(self.log.store().invitations(self.org.id).await?.iter().map(|i| invitation_view(i, now)).collect())
    }

    pub async fn revoke_invitation(&self, by: &Authorized<ManageUsers>, id: InvitationId) -> Result<(), AccountError> {
        let inv = self.log.store().invitation(self.org.id, id).await?.ok_or(AccountError::NotFound("invitation"))?;
        if !inv.is_open(self.now()) {
            return Err(AccountError::Conflict("the invitation is no longer open".into()));
        }
        let e = EventBuilder::new(Action::InvitationRevoked, by.actor(), &by.source)
            .target("invitation", id, &inv.email)
            .details(format!("Revoked the invitation of {} as {}", inv.email, inv.role))
            .build();
        self.append(vec![e], AccountMutation::RevokeInvitation { id }).await
    }

    /// The open invitation a link's token names (for the accept page).
    pub async fn open_invitation(&self, token: &str) -> Result<InvitationView, AccountError> {
        let hash = Secret::from_presented(token).hash();
        let inv = self.log.store().invitation_by_hash(&hash).await?;
        match inv {
            Some(i) if i.org == self.org.id && i.is_open(self.now()) => Ok(invitation_view(&i, self.now())),
            _ => Err(AccountError::InvalidLink),
        }
    }

    pub async fn accept_invitation(
        &self,
        token: &str,
        password: &str,
        source: &Source,
    ) -> Result<UserView, AccountError> {
        let hash = Secret::from_presented(token).hash();
        let inv = self.log.store().invitation_by_hash(&hash).await?;
        let Some(inv) = inv.filter(|i| i.org == self.org.id && i.is_open(self.now())) else {
            return Err(AccountError::InvalidLink);
        };
        password::check_policy(password, &inv.email)?;
        let password_hash = self.hasher.hash(password, self.random()).await?;
        let id = UserId(self.new_id());
        let e = EventBuilder::new(Action::ManagementUserAdded, user_actor(id, &inv.email), source)
            .target("management_user", id, &inv.email)
            .details(format!("Accepted the invitation from {} as {}", inv.invited_by, inv.role))
            .field("role", inv.role.code())
            .field("method", "invitation")
            .field("invited_by", &inv.invited_by)
            .build();
        match self.append(vec![e], AccountMutation::AcceptInvitation { id: inv.id, user: id, password_hash }).await {
            Err(AccountError::NotFound(_)) => return Err(AccountError::InvalidLink),
            other => other?,
        }
        self.user_view(id).await
    }

    // ---- Protected users ---------------------------------------------------------------

    pub async fn list_protected(
        &self,
        _: &Authorized<ReadProtectedUsers>,
        search: Option<&str>,
        after_email: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ProtectedUserView>, AccountError> {
        let search = search.map(str::trim).filter(|s| !s.is_empty());
        let rows = self.log.store().protected_users(self.org.id, search, after_email, limit.clamp(1, 500)).await?;
        Ok(rows
            .into_iter()
            .map(|p| ProtectedUserView { id: p.id, email: p.email, name: p.name, added: rfc3339(p.added) })
            .collect())
    }

    fn protected_added(&self, by: &Caller, id: ProtectedUserId, email: &str, name: &str, method: &str) -> NewEvent {
        EventBuilder::new(Action::ProtectedUserAdded, by.actor(), &by.source)
            .target("protected_user", id, email)
            .details(format!("Added {name} <{email}> to protected users"))
            .field("name", name)
            .field("method", method)
            .build()
    }

    pub async fn add_protected(
        &self,
        by: &Authorized<ManageProtectedUsers>,
        email: &str,
        name: &str,
    ) -> Result<ProtectedUserView, AccountError> {
        let email = normalize_email(email)?;
        let name = check_name(name)?;
        let id = ProtectedUserId(self.new_id());
        let e = self.protected_added(by, id, &email, &name, "single");
        match self
            .append(vec![e], AccountMutation::AddProtectedUser { id, email: email.clone(), name: name.clone() })
            .await
        {
            Err(AccountError::Conflict(_)) => {
                return Err(AccountError::Conflict("this email address is already a protected user".into()))
            }
            other => other?,
        }
        Ok(ProtectedUserView { id, email, name, added: rfc3339(self.now()) })
    }

    pub async fn remove_protected(
        &self,
        by: &Authorized<ManageProtectedUsers>,
        id: ProtectedUserId,
    ) -> Result<(), AccountError> {
        let p =
            self.log.store().protected_user(self.org.id, id).await?.ok_or(AccountError::NotFound("protected user"))?;
        let e = EventBuilder::new(Action::ProtectedUserRemoved, by.actor(), &by.source)
            .target("protected_user", id, &p.email)
            .details(format!("Removed {} <{}> from protected users", p.name, p.email))
            .field("name", &p.name)
            .build();
        self.append(vec![e], AccountMutation::RemoveProtectedUser { id }).await
    }

    /// Bulk import of a CSV with the header `email,name`: adds every valid row (one event
    /// each) and reports the rest by line.
    pub async fn import_protected(
        &self,
        by: &Authorized<ManageProtectedUsers>,
        csv_text: &[u8],
    ) -> Result<ImportReport, AccountError> {
        let ParsedImport { valid, mut errors } = parse_protected_csv(csv_text)?;
        let emails: Vec<String> = valid.iter().map(|(_, e, _)| e.clone()).collect();
        let existing: HashSet<String> =
            self.log.store().protected_emails(self.org.id, &emails).await?.into_iter().collect();
        let mut added = 0;
        // Appended concurrently, so the sequencer commits many rows per transaction.
        for chunk in valid.chunks(256) {
            let mut tasks = tokio::task::JoinSet::new();
            for (line, email, name) in chunk {
                if existing.contains(email) {
                    errors.push(ImportRowError {
                        line: *line,
                        email: email.clone(),
                        error: "already a protected user".into(),
                    });
                    continue;
                }
                let id = ProtectedUserId(self.new_id());
                let e = self.protected_added(by, id, email, name, "csv_import");
                let m = AccountMutation::AddProtectedUser { id, email: email.clone(), name: name.clone() };
                let (log, org, line, email) = (self.log.clone(), self.org.clone(), *line, email.clone());
                tasks.spawn(async move { (line, email, log.append(&org, vec![e], account(m)).await) });
            }
            while let Some(done) = tasks.join_next().await {
                let (line, email, result) = done.map_err(|e| AccountError::Internal(e.to_string()))?;
                match result {
                    Ok(_) => added += 1,
                    Err(AppendError::Rejected(MutationError::EmailTaken)) => {
                        errors.push(ImportRowError { line, email, error: "already a protected user".into() })
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        errors.sort_by_key(|e| e.line);
        Ok(ImportReport { added, errors })
    }

    // ---- Settings ----------------------------------------------------------------------

    pub async fn get_settings(&self, _: &Authorized<ManageSettings>) -> Result<PlatformSettings, AccountError> {
        self.settings().await
    }

    pub async fn update_settings(
        &self,
        by: &Authorized<ManageSettings>,
        patch: &SettingsPatch,
    ) -> Result<PlatformSettings, AccountError> {
        self.forget_settings();
        let current = self.settings().await?;
        let (next, changes) = current.apply(patch)?;
        if changes.is_empty() {
            return Ok(current);
        }
        let details: Vec<String> =
            changes.iter().map(|(f, old, new)| format!("{f} changed from {old} to {new}")).collect();
        let mut b = EventBuilder::new(Action::SettingsUpdated, by.actor(), &by.source)
            .target("settings", "platform", "Platform settings")
            .details(details.join("; "));
        for (f, old, new) in &changes {
            b = b.field(&format!("old.{f}"), old).field(&format!("new.{f}"), new);
        }
        let json = serde_json::to_string(&next).map_err(|e| AccountError::Internal(e.to_string()))?;
        self.append(vec![b.build()], AccountMutation::PutSettings { json }).await?;
        self.forget_settings();
        Ok(next)
    }

    // ---- Own account -------------------------------------------------------------------

    pub async fn change_password(&self, caller: &Caller, current: &str, new: &str) -> Result<(), AccountError> {
        let user = self.log.store().user(self.org.id, caller.user).await?.ok_or(AccountError::NotFound("user"))?;
        if !self.hasher.verify(current, Some(&user.password_hash)).await? {
            return Err(AccountError::Invalid("the current password is not correct".into()));
        }
        password::check_policy(new, &user.email)?;
        let password_hash = self.hasher.hash(new, self.random()).await?;
        let e = EventBuilder::new(Action::PasswordChanged, caller.actor(), &caller.source)
            .target("management_user", user.id, &user.email)
            .details("Password changed by the user")
            .build();
        self.append(vec![e], AccountMutation::SetPassword { user: user.id, password_hash }).await
    }

    /// A new secret to enrol; nothing is stored until [`Accounts::confirm_totp`].
    pub fn begin_totp(&self, caller: &Caller) -> Result<TotpEnrolment, AccountError> {
        let secret = totp::generate_secret(self.random());
        let uri = totp::provisioning_uri(&secret, &caller.email).map_err(|e| AccountError::Internal(e.to_string()))?;
        let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| AccountError::Internal(e.to_string()))?;
        let qr_svg = qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build();
        Ok(TotpEnrolment { secret: secret.0, otpauth_uri: uri, qr_svg })
    }

    pub async fn confirm_totp(&self, caller: &Caller, secret: &str, code: &str) -> Result<(), AccountError> {
        if caller.totp_enrolled {
            return Err(AccountError::Conflict("TOTP is already enrolled; remove it first".into()));
        }
        let secret = TotpSecret(secret.trim().to_uppercase());
        match totp::matching_step(&secret, code, self.now()) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(AccountError::Invalid("the code does not match; check the device's clock".into())),
            Err(_) => return Err(AccountError::Invalid("the secret is not valid base32".into())),
        }
        let e = EventBuilder::new(Action::TotpEnrolled, caller.actor(), &caller.source)
            .target("management_user", caller.user, &caller.email)
            .details("TOTP enrolled")
            .build();
        self.append(vec![e], AccountMutation::SetTotp { user: caller.user, secret: Some(secret) }).await
    }

    pub async fn remove_totp(&self, caller: &Caller, password: &str) -> Result<(), AccountError> {
        let user = self.log.store().user(self.org.id, caller.user).await?.ok_or(AccountError::NotFound("user"))?;
        if user.totp.is_none() {
            return Err(AccountError::Conflict("TOTP is not enrolled".into()));
        }
        if !self.hasher.verify(password, Some(&user.password_hash)).await? {
            return Err(AccountError::Invalid("the password is not correct".into()));
        }
        let e = EventBuilder::new(Action::TotpRemoved, caller.actor(), &caller.source)
            .target("management_user", user.id, &user.email)
            .details("TOTP removed by the user")
            .build();
        self.append(vec![e], AccountMutation::SetTotp { user: user.id, secret: None }).await
    }

    // ---- The audit log's own reads -----------------------------------------------------

    /// Records that the caller opened the audit log with these filters, once per session and
    /// filter set. Returns whether it recorded.
    pub async fn record_view(
        &self,
        caller: &Authorized<ReadAuditLog>,
        filters: &BTreeMap<String, String>,
    ) -> Result<bool, AccountError> {
        let mut h = Sha256::new();
        for (k, v) in filters {
            h.update((k.len() as u64).to_be_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
        let digest: [u8; 32] = h.finalize().into();
        // The details name the filters, not their values: a searched word in the details would
        // make every later search for it find this record. The values are in the fields.
        let names: Vec<&str> = filters.keys().map(String::as_str).collect();
        let details = if names.is_empty() {
            "Opened the audit log".to_string()
        } else {
            format!("Opened the audit log filtered by {}", names.join(", "))
        };
        let mut b = EventBuilder::new(Action::AuditLogViewed, caller.actor(), &caller.source).details(details);
        for (k, v) in filters.iter().take(16) {
            b = b.field(&format!("filter.{k}"), v.chars().take(500).collect::<String>());
        }
        let m = AccountMutation::RecordView { token_hash: caller.session, digest };
        match self.log.append(&self.org, vec![b.build()], account(m)).await {
            Ok(_) => Ok(true),
            Err(AppendError::Rejected(MutationError::AlreadyRecorded | MutationError::NotFound)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_csv_rows_are_checked_before_any_lookup() {
        let csv = "\u{feff}Name , EMAIL\nAda Lovelace,  Ada@Example.COM \nNobody,not-an-email\nAda again,ada@example.com\n,bob@example.com\nGrace,grace@example.com\n";
        let p = parse_protected_csv(csv.as_bytes()).unwrap();
        assert_eq!(
            p.valid,
            vec![
                (2, "ada@example.com".to_owned(), "Ada Lovelace".to_owned()),
                (6, "grace@example.com".to_owned(), "Grace".to_owned())
            ]
        );
        let errors: Vec<_> = p.errors.iter().map(|e| (e.line, e.email.as_str())).collect();
        assert_eq!(errors, vec![(3, "not-an-email"), (4, "ada@example.com"), (5, "bob@example.com")]);
        assert!(parse_protected_csv(b"mail,name\nx@y.z,X\n").is_err(), "no email column");
    }

    /// The reported line is the file's line, whatever the line endings, after blank lines and
    /// quoted cells that span lines. (The fuzzing session found the record count used instead.)
    #[test]
    fn protected_csv_lines_are_the_file_lines() {
        let lines = [
            "email,name",
            "",
            "a@example.com,One",
            "\"bad",
            "email\",Two",
            "",
            "",
            "also bad,Three",
            "b@example.com,Four",
            "",
        ];
        for eol in ["\n", "\r\n", "\r"] {
            let p = parse_protected_csv(lines.join(eol).as_bytes()).unwrap();
            let errors: Vec<_> = p.errors.iter().map(|e| (e.line, e.email.clone())).collect();
            let bad = format!("bad{eol}email");
            assert_eq!(errors, vec![(4, bad), (8, "also bad".to_owned())], "line endings {eol:?}");
            let valid: Vec<_> = p.valid.iter().map(|(l, e, _)| (*l, e.as_str())).collect();
            assert_eq!(valid, vec![(3, "a@example.com"), (9, "b@example.com")], "line endings {eol:?}");
        }
    }
}
