//! The current password, checked as every operation that asks for it checks it: changing the
//! password or the email, replacing the identity, deleting the account.

use uuid::Uuid;

use super::fields::Password;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Checks the user's current password (counting the attempt against the account's
/// limit, so a stolen access token does not allow unlimited guessing).
pub async fn verify_current_password(state: &AppState, user_id: Uuid, password: Password) -> ApiResult<()> {
    let user = state.store.user(user_id).await?.ok_or(ApiError::NotFound)?;
    state.attempts.check_account(&user.email)?;
    if state.passwords.verify(password.any(), Some(user.password_hash)).await {
        Ok(())
    } else {
        Err(ApiError::invalid("password", "is incorrect"))
    }
}
