//! The check behind every authenticated request: a well-signed, unexpired access token
//! whose device session is still live.
//!
//! The session is looked up in the store on every request (one indexed read), so a
//! revocation — device sign-out, sign out everywhere, a password change or reset — takes
//! effect on the very next request, on every instance sharing the database.

use std::sync::Arc;

use hearth_store::Store;

use super::{AccessTokens, AuthUser};
use crate::error::ApiError;

/// Verifies access tokens against live sessions.
#[derive(Debug, Clone)]
pub struct Sessions {
    tokens: AccessTokens,
    store: Arc<dyn Store>,
}

impl Sessions {
    /// Sessions checked against `store`.
    pub fn new(tokens: AccessTokens, store: Arc<dyn Store>) -> Self {
        Self { tokens, store }
    }

    /// The token issuer.
    pub fn tokens(&self) -> &AccessTokens {
        &self.tokens
    }

    /// The user and device of a valid token on a live session.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser, ApiError> {
        if crate::admin::is_admin_token(token) {
            return Err(ApiError::Unauthorized(
                "An admin token is not an access token: it works on /admin only; sign in as a person here.",
            ));
        }
        let claims = self.tokens.verify(token).ok_or(ApiError::Unauthorized("Invalid or expired access token."))?;
        let device = self.store.device(claims.device).await?;
        match device {
            Some(device) if device.user_id == claims.sub && device.revoked_at.is_none() => {
                Ok(AuthUser { user_id: claims.sub, device_id: claims.device })
            }
            _ => Err(ApiError::Unauthorized("This session has been signed out.")),
        }
    }
}
