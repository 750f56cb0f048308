//! API tokens: how the platform's other services authenticate to record events.
//!
//! A token is `lbk_` followed by 32 random bytes in base64url. Only its SHA-256 is stored (a
//! random 256-bit secret needs no slow hash), so the database never holds a usable token.
//! Creating and revoking a token are themselves audited, in the same transaction.
//!
//! Each token carries its grant ([`ActionGrant`]): which action codes it may record. The
//! platform's own codes and the actor type `system` are refused unless granted; a new token's
//! default grant is `*`, every service code (`<service>.<noun>.<verb>`). The grant is recorded
//! in the `api_token.created` event (details and field `actions`).

use std::fmt;

use base64::Engine as _;
use logbook_core::{Action, ActionGrant, Actor, EventBuilder, Source, PLATFORM_ORIGIN};
use logbook_store::{ApiToken, Mutation, Org, StoreError};
use sha2::{Digest, Sha256};

use crate::{AppendError, LogService};

pub const PREFIX: &str = "lbk_";

/// A token secret. Shown once, never logged: its `Debug` is redacted.
pub struct TokenSecret(String);

impl TokenSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A token's name is shown as the Source of the events it records, so it may not be the word
/// that names the platform itself there.
fn valid_name(name: &str) -> bool {
    !name.eq_ignore_ascii_case(PLATFORM_ORIGIN)
        && !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token name must be 1-64 characters of letters, digits, '-', '_' and '.', and not \"platform\"")]
    BadName,
    #[error("a token with that name already exists")]
    NameTaken,
    #[error("no active token with that name")]
    NotFound,
    #[error(transparent)]
    Append(AppendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AppendError> for TokenError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Rejected(logbook_store::MutationError::NameTaken) => TokenError::NameTaken,
            AppendError::Rejected(logbook_store::MutationError::NotFound) => TokenError::NotFound,
            e => TokenError::Append(e),
        }
    }
}

/// The audit event of a change to the token `name`.
fn token_event(
    action: Action,
    name: &str,
    what: &str,
    actor: Actor,
    source: Source,
    recorded_by: &str,
) -> EventBuilder {
    EventBuilder::new(action, actor, recorded_by)
        .source(source)
        .target("api_token", name, name)
        .details(format!("API token {name:?} {what}"))
}

impl LogService {
    /// Creates a token for `org` that may record what `grant` allows; the creation, with the
    /// grant, is recorded as done by `actor`.
    pub async fn create_api_token(
        &self,
        org: &Org,
        name: &str,
        grant: ActionGrant,
        actor: Actor,
        source: Source,
        recorded_by: &str,
    ) -> Result<(ApiToken, TokenSecret), TokenError> {
        if !valid_name(name) {
            return Err(TokenError::BadName);
        }
        let mut raw = [0u8; 32];
        self.random().fill(&mut raw);
        let secret = TokenSecret(format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)));
        let what = format!("created, allowed to record: {grant}");
        let event = token_event(Action::ApiTokenCreated, name, &what, actor, source, recorded_by)
            .field("actions", &grant)
            .build();
        self.append(
            org,
            vec![event],
            Some(Mutation::CreateApiToken { name: name.into(), token_hash: hash(secret.expose()), grant }),
        )
        .await?;
        // Read back by hash rather than trusting the commit's output, which a commit that
        // failed after landing cannot give.
        let token = self
            .store()
            .api_token_by_hash(&hash(secret.expose()))
            .await?
            .ok_or_else(|| StoreError::Corrupt("created token not found".into()))?;
        Ok((token, secret))
    }

    pub async fn revoke_api_token(
        &self,
        org: &Org,
        name: &str,
        actor: Actor,
        source: Source,
        recorded_by: &str,
    ) -> Result<(), TokenError> {
        let token = self
            .store()
            .api_tokens(org.id)
            .await?
            .into_iter()
            .find(|t| t.name == name && t.revoked.is_none())
            .ok_or(TokenError::NotFound)?;
        let event = token_event(Action::ApiTokenRevoked, name, "revoked", actor, source, recorded_by).build();
        self.append(org, vec![event], Some(Mutation::RevokeApiToken { id: token.id })).await?;
        Ok(())
    }

    /// The active token a presented secret belongs to, if any.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<ApiToken>, StoreError> {
        if !presented.starts_with(PREFIX) || presented.len() > 100 {
            return Ok(None);
        }
        Ok(self.store().api_token_by_hash(&hash(presented)).await?.filter(|t| t.revoked.is_none()))
    }
}
