//! API tokens from the console: an admin lists, creates (with what each may record) and
//! revokes the tokens services record with. The tokens themselves, and the events recording
//! each change (the grant included), are the log service's (`logbook_log::tokens`).

use logbook_core::ActionGrant;
use logbook_log::tokens::{TokenError, TokenSecret};
use logbook_store::ApiToken;

use crate::events::RECORDED_BY;
use crate::permission::{Authorized, ManageApiTokens};
use crate::{AccountError, Accounts};

impl From<TokenError> for AccountError {
    fn from(e: TokenError) -> Self {
        match e {
            e @ TokenError::BadName => AccountError::Invalid(e.to_string()),
            e @ TokenError::NameTaken => AccountError::Conflict(e.to_string()),
            TokenError::NotFound => AccountError::NotFound("API token"),
            TokenError::Append(e) => e.into(),
            TokenError::Store(e) => e.into(),
        }
    }
}

impl Accounts {
    /// Every token of the organization, active and revoked, oldest first.
    pub async fn api_tokens(&self, _: &Authorized<ManageApiTokens>) -> Result<Vec<ApiToken>, AccountError> {
        Ok(self.log.store().api_tokens(self.org.id).await?)
    }

    /// Creates a token allowed to record what `actions` lists (an [`ActionGrant`]); the secret
    /// is returned once. Recorded as `api_token.created` by the admin, with the grant.
    pub async fn create_api_token(
        &self,
        caller: &Authorized<ManageApiTokens>,
        name: &str,
        actions: &str,
    ) -> Result<(ApiToken, TokenSecret), AccountError> {
        let grant = ActionGrant::parse(actions).map_err(|e| AccountError::Invalid(e.to_string()))?;
        let source = caller.source().clone();
        Ok(self.log.create_api_token(&self.org, name.trim(), grant, caller.actor(), source, RECORDED_BY).await?)
    }

    /// Revokes the active token `name`: it stops working at once. Recorded as
    /// `api_token.revoked` by the admin.
    pub async fn revoke_api_token(&self, caller: &Authorized<ManageApiTokens>, name: &str) -> Result<(), AccountError> {
        let source = caller.source().clone();
        Ok(self.log.revoke_api_token(&self.org, name, caller.actor(), source, RECORDED_BY).await?)
    }
}
