//! One-time tokens: email confirmation, password reset, device links and email changes. Each is
//! random, stored hashed, spent once, and dies with the session that made it (if one did).

use hearth_store::{OneTimeKind, Redemption, StoreError, Timestamp, User};
use hearth_vault::{RandomToken, TokenHash};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::fields::{self, Password};
use super::replies::PublicUser;
use crate::email::Letter;
use crate::error::{ApiError, ApiResult};
use crate::events::Envelope;
use crate::state::AppState;

/// The answer to any unknown, expired or spent one-time token.
pub fn invalid_token() -> ApiError {
    ApiError::bad_request("invalid_token", "This link or code is invalid or has expired.")
}

/// Issues a one-time token of `kind` for the user and returns it for sending. `device_id` is
/// the session making it, if one is: revoking that session voids the token.
pub async fn issue_one_time_token(
    state: &AppState,
    user_id: Uuid,
    device_id: Option<Uuid>,
    kind: OneTimeKind,
    ttl_secs: i64,
) -> ApiResult<RandomToken> {
    let token = RandomToken::generate();
    let now = Timestamp::now();
    state
        .store
        .issue_one_time_token(&hearth_store::NewOneTimeToken {
            token_hash: token.hash().0,
            user_id,
            device_id,
            kind,
            created_at: now,
            expires_at: now.plus_secs(ttl_secs),
        })
        .await?;
    Ok(token)
}

/// Sends a fresh email-confirmation link to the user's address.
pub async fn send_email_confirmation(state: &AppState, user: &User) -> ApiResult<()> {
    let ttl = state.settings.auth.email_token_ttl_secs;
    let token = issue_one_time_token(state, user.id, None, OneTimeKind::EmailConfirm, ttl).await?;
    state.mailer.send_later(user.email.clone(), Letter::email_confirmation(&state.public_url, token.expose(), ttl));
    Ok(())
}

/// Redeems a one-time token, mapping "no such live token" to [`invalid_token`].
pub async fn redeem(state: &AppState, token: &str, redemption: &Redemption) -> ApiResult<Uuid> {
    match state.store.redeem_one_time_token(&TokenHash::of(token).0, redemption, Timestamp::now()).await {
        Ok(user_id) => Ok(user_id),
        Err(StoreError::NotFound) => Err(invalid_token()),
        // The one rule a redemption enforces: re-wrapped private keys that are exactly the
        // user's (an email change that rekeys).
        Err(error @ StoreError::Rule(_)) => Err(crate::conversations::keys::not_exactly_theirs(error)),
        Err(other) => Err(other.into()),
    }
}

/// A token from a link or a reply. No Debug: it is a bearer secret.
#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    /// The token from the link or reply.
    #[schema(value_type = String)]
    pub token: String,
}

/// Confirms the address an email-confirmation token was sent to.
pub async fn confirm_email(state: &AppState, request: &TokenRequest) -> ApiResult<()> {
    redeem(state, &request.token, &Redemption::ConfirmEmail).await.map(drop)
}

/// Asks for a password reset link.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordResetRequest {
    #[schema(format = Email, max_length = 254)]
    email: String,
}

/// Mails a reset link if the account exists. The answer is the same, at once, either way: the
/// look-up, token and email happen after it, so neither the reply nor its timing tells.
pub async fn request_password_reset(
    state: &AppState,
    client: std::net::IpAddr,
    request: PasswordResetRequest,
) -> ApiResult<()> {
    let email = fields::email("email", &request.email)?;
    state.attempts.check_address(client)?;
    state.attempts.check_account(&email)?;
    let state = state.clone();
    tokio::spawn(async move {
        let ttl = state.settings.auth.password_reset_ttl_secs;
        let result: ApiResult<()> = async {
            if let Some(user) = state.store.user_by_email(&email).await? {
                let token = issue_one_time_token(&state, user.id, None, OneTimeKind::PasswordReset, ttl).await?;
                state.mailer.send_later(user.email, Letter::password_reset(&state.public_url, token.expose(), ttl));
            }
            Ok(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "password reset request failed");
        }
    });
    Ok(())
}

/// Whose a live reset token is.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordResetCheck {
    success: bool,
    user: PublicUser,
}

/// Says whose a reset token is, without spending it.
pub async fn check_password_reset(state: &AppState, request: &TokenRequest) -> ApiResult<PasswordResetCheck> {
    let hash = TokenHash::of(&request.token);
    let user_id = state
        .store
        .peek_one_time_token(&hash.0, OneTimeKind::PasswordReset, Timestamp::now())
        .await?
        .ok_or_else(invalid_token)?;
    let user = state.store.user(user_id).await?.ok_or_else(invalid_token)?;
    Ok(PasswordResetCheck { success: true, user: PublicUser::from(&user) })
}

/// A new password for the account a reset token is for. No Debug: it holds a token.
#[derive(Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    #[schema(value_type = String)]
    token: String,
    /// Accepted for compatibility with seed 002's payload and ignored: a reset is for
    /// people who no longer know their password.
    #[schema(value_type = Option<String>, format = Password)]
    #[allow(dead_code)]
    password: Option<Password>,
    /// 8 to 1 024 characters.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    new_password: Password,
    /// The same again.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    new_password_confirmation: Password,
}

/// Sets the new password and signs out every session of the account. The account's identity
/// goes in the same transaction (its private key was wrapped under the forgotten password, so
/// it could never be opened again): the people who share a conversation with the account are
/// told, and its client makes a new one at the next sign-in. Conversation private keys stay
/// (they no longer open either; the reset page says history becomes unreadable).
pub async fn reset_password(
    state: &AppState,
    client: std::net::IpAddr,
    request: ResetPasswordRequest,
) -> ApiResult<()> {
    if !request.new_password.same_as(&request.new_password_confirmation) {
        return Err(ApiError::invalid("new_password_confirmation", "does not match new_password"));
    }
    let new_password = request.new_password.checked("new_password")?;
    state.attempts.check_address(client)?;
    // Check the token before spending a hash on it.
    let hash = TokenHash::of(&request.token);
    let owner = state
        .store
        .peek_one_time_token(&hash.0, OneTimeKind::PasswordReset, Timestamp::now())
        .await?
        .ok_or_else(invalid_token)?;
    // Whether there is an identity to announce the removal of (read before it goes).
    let had_identity = state.store.user(owner).await?.is_some_and(|user| user.identity_key.is_some());
    let password_hash = state.passwords.hash(new_password).await.map_err(ApiError::internal)?;
    let user_id = redeem(state, &request.token, &Redemption::ResetPassword { password_hash }).await?;
    state.pubsub.publish(Envelope::DisconnectUser { user: user_id }).await;
    tracing::info!(user = %user_id, identity_removed = had_identity, "password reset; all sessions signed out");
    if had_identity {
        super::identity::announce(state, user_id, None).await;
    }
    Ok(())
}
