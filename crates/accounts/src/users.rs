//! The management users: the first admin (setup link), the operator's, and those an admin
//! adds, changes and deletes.

use logbook_core::{Action, Actor, Role, Source, Timestamp, UserId};
use logbook_store::accounts::UserRecord;
use logbook_store::AccountMutation;

use crate::events::{event, user_actor};
use crate::permission::{Authorized, ManageUsers, ReadUsers};
use crate::session::Ending;
use crate::tokens::Secret;
use crate::{after, normalize_email, password, rfc3339, AccountError, Accounts, UserView};

pub(crate) fn view(u: &UserRecord, now: Timestamp) -> UserView {
    UserView {
        id: u.id,
        email: u.email.clone(),
        role: u.role,
        totp_enrolled: u.totp.is_some(),
        locked: u.locked_until.is_some_and(|t| t > now),
        created: rfc3339(u.created),
    }
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

impl Accounts {
    /// On a store without users: a one-time link that creates the first admin (valid for
    /// `setup_ttl`, in this process). `None` once any user exists.
    pub async fn setup_link(&self) -> Result<Option<String>, AccountError> {
        if self.log.store().user_count(self.org.id).await? > 0 {
            return Ok(None);
        }
        let secret = Secret::generate(self.random());
        let expires = after(self.now(), self.config.setup_ttl);
        *self.setup.lock() = Some((secret.hash(), expires));
        Ok(Some(format!("{}/setup?token={}", self.config.public_url.trim_end_matches('/'), secret.expose())))
    }

    pub fn setup_token_is_valid(&self, token: &str) -> bool {
        let now = self.now();
        let hash = Secret::from_presented(token).hash();
        matches!(*self.setup.lock(), Some((h, exp)) if h == hash && now < exp)
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
        *self.setup.lock() = None;
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
        let event = event(Action::ManagementUserAdded, actor, how.source)
            .target("management_user", id, &email)
            .details(how.details)
            .field("role", role.code())
            .field("method", how.method)
            .build();
        let m = AccountMutation::CreateUser { id, email, role, password_hash: hash, only_if_first: how.only_if_first };
        self.append(vec![event], m).await?;
        self.user_view(id).await
    }

    pub(crate) async fn user_view(&self, id: UserId) -> Result<UserView, AccountError> {
        let u = self.log.store().user(self.org.id, id).await?.ok_or(AccountError::NotFound("user"))?;
        Ok(view(&u, self.now()))
    }

    pub async fn list_users(&self, _: &Authorized<ReadUsers>) -> Result<Vec<UserView>, AccountError> {
        let now = self.now();
        Ok(self.log.store().users_of(self.org.id).await?.iter().map(|u| view(u, now)).collect())
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
        let e = event(Action::UserRoleUpdated, by.actor(), &by.source)
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
        let mut events = vec![event(Action::ManagementUserDeleted, by.actor(), &by.source)
            .target("management_user", id, &user.email)
            .details(format!("Deleted {} ({})", user.email, user.role))
            .field("role", user.role.code())
            .build()];
        for _ in self.log.store().sessions_of(id).await? {
            events.push(
                event(Action::Logout, user_actor(id, &user.email), &by.source)
                    .details(format!("Session ended: user deleted by {}", by.email()))
                    .field("reason", "user_deleted")
                    .build(),
            );
        }
        self.append(events, AccountMutation::DeleteUser { user: id }).await
    }

    /// Signs a user out everywhere: every session of theirs ends (each with its Logout,
    /// reason `signed_out_by_admin`), recorded as User Signed Out Everywhere with the count.
    /// An admin who names themselves is signed out too. Returns how many sessions ended.
    pub async fn sign_out_everywhere(&self, by: &Authorized<ManageUsers>, id: UserId) -> Result<usize, AccountError> {
        let user = self.log.store().user(self.org.id, id).await?.ok_or(AccountError::NotFound("user"))?;
        let ending = Ending {
            details: format!("Session ended: signed out everywhere by {}", by.email()),
            reason: "signed_out_by_admin",
            source: &by.source,
        };
        self.append_ending_sessions(&user, None, &ending, |n, end| {
            let e = event(Action::UserSignedOutEverywhere, by.actor(), &by.source)
                .target("management_user", id, &user.email)
                .details(format!("Signed {} out everywhere ({n} sessions ended)", user.email))
                .field("sessions", n)
                .build();
            (vec![e], AccountMutation::EndSessionsOf { user: id, end_sessions: end })
        })
        .await
    }
}
