//! `/auth/*`: registration, login, refresh, email confirmation, password reset by email,
//! and redeeming a device-link code. None of these need an access token.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hearth_store::{NewAccount, OneTimeKind, Redemption, RefreshOutcome, StoreError, Timestamp, User};
use hearth_vault::{RandomToken, TokenHash};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::fields::{self, Password};
use super::replies::{PendingSession, PublicUser, SessionReply, session_reply};
use crate::email::Letter;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ClientIp, Json};
use crate::realtime::hub::Envelope;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(confirm))
        .routes(routes!(request_password_reset))
        .routes(routes!(check_password_reset))
        .routes(routes!(reset_password))
        .routes(routes!(redeem_device_link))
}

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

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RegisterRequest {
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 8 to 1 024 characters.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    password: Password,
    /// 1 to 100 characters (after trimming) without control characters; the email's local
    /// part when left out.
    #[schema(min_length = 1, max_length = 100)]
    display_name: Option<String>,
    /// (+) A name for this device in the devices list (default: the user agent).
    device_name: Option<String>,
}

/// # POST /auth/register
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = SessionReply), (status = 409, description = "email taken", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(request): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, axum::Json<SessionReply>)> {
    let email = fields::email("email", &request.email)?;
    let display_name = match request.display_name.as_deref() {
        Some(name) => fields::display_name("display_name", name)?,
        None => email.clone(),
    };
    let password = request.password.checked("password")?;
    state.attempts.check_address(ip)?;
    let password_hash = state.passwords.hash(password).await.map_err(ApiError::internal)?;
    let now = Timestamp::now();
    let user = User {
        id: Uuid::now_v7(),
        email,
        display_name,
        password_hash,
        confirmed_at: None,
        inserted_at: now,
        updated_at: now,
    };
    let session = PendingSession::new(&state, request.device_name.as_deref(), &headers, now);
    state.store.create_account(&NewAccount { user: user.clone(), session: session.row.clone() }).await?;
    tracing::info!(user = %user.id, "account registered");
    send_email_confirmation(&state, &user).await?;
    let reply = session_reply(&state, &user, session.row.device_id, &session.refresh_token, now).await?;
    Ok((StatusCode::CREATED, axum::Json(reply)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct LoginRequest {
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(value_type = String, format = Password)]
    password: Password,
    /// (+) A name for this device in the devices list (default: the user agent).
    device_name: Option<String>,
}

/// # POST /auth/login
///
/// Wrong password and unknown email get the same answer after the same hashing work.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = SessionReply), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(request): Json<LoginRequest>,
) -> ApiResult<axum::Json<SessionReply>> {
    let email = fields::email("email", &request.email)?;
    state.attempts.check_address(ip)?;
    state.attempts.check_account(&email)?;
    let user = state.store.user_by_email(&email).await?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = state.passwords.verify(request.password.any(), stored_hash).await;
    let user = match user {
        Some(user) if verified => user,
        _ => return Err(ApiError::Unauthorized("Invalid email or password.")),
    };
    let now = Timestamp::now();
    let session = PendingSession::new(&state, request.device_name.as_deref(), &headers, now);
    state.store.create_session(user.id, &session.row).await?;
    tracing::info!(user = %user.id, device = %session.row.device_id, "logged in");
    Ok(axum::Json(session_reply(&state, &user, session.row.device_id, &session.refresh_token, now).await?))
}

// No Debug: it holds a token.
#[derive(Deserialize, ToSchema)]
pub(crate) struct TokenRequest {
    /// The token from the link or reply.
    #[schema(value_type = String)]
    token: String,
}

/// # POST /auth/refresh
///
/// The refresh token is spent and replaced; presenting a spent one again signs its device
/// session out (someone else holds a copy).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = SessionReply), (status = 401, body = ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    Json(request): Json<TokenRequest>,
) -> ApiResult<axum::Json<SessionReply>> {
    let now = Timestamp::now();
    let successor = RandomToken::generate();
    let outcome = state
        .store
        .rotate_refresh_token(
            &TokenHash::of(&request.token).0,
            &successor.hash().0,
            now.plus_secs(state.settings.auth.refresh_token_ttl_secs),
            now,
        )
        .await?;
    let device = match outcome {
        RefreshOutcome::Rotated { device } => device,
        RefreshOutcome::Reused { device_id } => {
            tracing::warn!(device = %device_id, "spent refresh token presented again; its session is revoked");
            // Its live sockets go too, as for any other revocation.
            state.pubsub.publish(Envelope::DisconnectDevices { devices: vec![device_id] }).await;
            return Err(ApiError::Unauthorized("Invalid refresh token."));
        }
        RefreshOutcome::Invalid => return Err(ApiError::Unauthorized("Invalid refresh token.")),
    };
    let user = state.store.user(device.user_id).await?.ok_or(ApiError::Unauthorized("Invalid refresh token."))?;
    Ok(axum::Json(session_reply(&state, &user, device.id, &successor, now).await?))
}

/// # POST /auth/confirm
#[utoipa::path(post, path = "/auth/confirm", tag = "auth", request_body = TokenRequest,
    responses((status = 204, description = "confirmed"), (status = 400, body = ErrorBody)))]
async fn confirm(State(state): State<AppState>, Json(request): Json<TokenRequest>) -> ApiResult<StatusCode> {
    redeem(&state, &request.token, &Redemption::ConfirmEmail).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Redeems a one-time token, mapping "no such live token" to [`invalid_token`].
pub async fn redeem(state: &AppState, token: &str, redemption: &Redemption) -> ApiResult<Uuid> {
    match state.store.redeem_one_time_token(&TokenHash::of(token).0, redemption, Timestamp::now()).await {
        Ok(user_id) => Ok(user_id),
        Err(StoreError::NotFound) => Err(invalid_token()),
        // The one rule a redemption enforces: re-wrapped private keys that are exactly the
        // user's (an email change that rekeys).
        Err(error @ StoreError::Rule(_)) => Err(super::encryption_keys::refused(error)),
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PasswordResetRequest {
    #[schema(format = Email, max_length = 254)]
    email: String,
}

/// # POST /auth/password/request
///
/// Always 204, at once: whether the account exists is neither said nor timed.
#[utoipa::path(post, path = "/auth/password/request", tag = "auth", request_body = PasswordResetRequest,
    responses((status = 204, description = "a link was sent if the account exists"),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn request_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(request): Json<PasswordResetRequest>,
) -> ApiResult<StatusCode> {
    let email = fields::email("email", &request.email)?;
    state.attempts.check_address(ip)?;
    state.attempts.check_account(&email)?;
    // The lookup, token and email happen after the reply so the reply's timing is the
    // same whether or not the account exists.
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
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
struct PasswordResetCheck {
    success: bool,
    user: PublicUser,
}

/// # POST /auth/password/confirm
///
/// Says whose a reset token is, without spending it.
#[utoipa::path(post, path = "/auth/password/confirm", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = PasswordResetCheck), (status = 400, body = ErrorBody)))]
async fn check_password_reset(
    State(state): State<AppState>,
    Json(request): Json<TokenRequest>,
) -> ApiResult<axum::Json<PasswordResetCheck>> {
    let hash = TokenHash::of(&request.token);
    let user_id = state
        .store
        .peek_one_time_token(&hash.0, OneTimeKind::PasswordReset, Timestamp::now())
        .await?
        .ok_or_else(invalid_token)?;
    let user = state.store.user(user_id).await?.ok_or_else(invalid_token)?;
    Ok(axum::Json(PasswordResetCheck { success: true, user: PublicUser::from(&user) }))
}

// No Debug: it holds a token.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ResetPasswordRequest {
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

/// # POST /auth/password/reset
///
/// Sets the new password and signs out every session of the account.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 204, description = "password changed"), (status = 400, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn reset_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(request): Json<ResetPasswordRequest>,
) -> ApiResult<StatusCode> {
    if !request.new_password.same_as(&request.new_password_confirmation) {
        return Err(ApiError::invalid("new_password_confirmation", "does not match new_password"));
    }
    let new_password = request.new_password.checked("new_password")?;
    state.attempts.check_address(ip)?;
    // Check the token before spending a hash on it.
    let hash = TokenHash::of(&request.token);
    state
        .store
        .peek_one_time_token(&hash.0, OneTimeKind::PasswordReset, Timestamp::now())
        .await?
        .ok_or_else(invalid_token)?;
    let password_hash = state.passwords.hash(new_password).await.map_err(ApiError::internal)?;
    let user_id = redeem(&state, &request.token, &Redemption::ResetPassword { password_hash }).await?;
    state.pubsub.publish(Envelope::DisconnectUser { user: user_id }).await;
    tracing::info!(user = %user_id, "password reset; all sessions signed out");
    Ok(StatusCode::NO_CONTENT)
}

// No Debug: it holds a token.
#[derive(Deserialize, ToSchema)]
pub(crate) struct DeviceLinkRedeemRequest {
    /// The code from `POST /api/devices/link` on a signed-in device.
    #[schema(value_type = String)]
    code: String,
    /// A name for the new device.
    device_name: Option<String>,
}

/// # POST /auth/device/link (+)
///
/// A new device redeems a 5-minute code made on a signed-in one and gets its own session.
#[utoipa::path(post, path = "/auth/device/link", tag = "auth", request_body = DeviceLinkRedeemRequest,
    responses((status = 200, body = SessionReply), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn redeem_device_link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(request): Json<DeviceLinkRedeemRequest>,
) -> ApiResult<axum::Json<SessionReply>> {
    state.attempts.check_address(ip)?;
    let now = Timestamp::now();
    let session = PendingSession::new(&state, request.device_name.as_deref(), &headers, now);
    let user_id = redeem(&state, &request.code, &Redemption::LinkDevice(session.row.clone())).await?;
    let user = state.store.user(user_id).await?.ok_or_else(invalid_token)?;
    tracing::info!(user = %user.id, device = %session.row.device_id, "device linked");
    Ok(axum::Json(session_reply(&state, &user, session.row.device_id, &session.refresh_token, now).await?))
}
