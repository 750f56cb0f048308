//! Invitations: an admin invites an address with a role; the link creates the account once,
//! while the invitation is open.

use logbook_core::{Action, InvitationId, Role, Source, Timestamp, UserId};
use logbook_store::accounts::InvitationRecord;
use logbook_store::AccountMutation;
use serde::Serialize;

use crate::events::{event, user_actor};
use crate::permission::{Authorized, ManageUsers, ReadUsers};
use crate::tokens::Secret;
use crate::{after, normalize_email, password, rfc3339, AccountError, Accounts, InvitationView, UserView};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitationCreated {
    pub invitation: InvitationView,
    /// Shown to the inviting admin whether or not it was mailed.
    pub link: String,
    pub mailed: bool,
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

impl Accounts {
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
        let e = event(Action::UserInvited, by.actor(), &by.source)
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
        let e = event(Action::InvitationRevoked, by.actor(), &by.source)
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
        let e = event(Action::ManagementUserAdded, user_actor(id, &inv.email), source)
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
}
