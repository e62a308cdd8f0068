//! Signing up and in: new accounts, password sign-in, refresh-token rotation and linking a new
//! device with a code; each starts a device session. And the device sessions themselves: the
//! list, signing one out, and the codes that link a new one.

use std::net::IpAddr;

use hearth_store::{NewAccount, OneTimeKind, Redemption, RefreshOutcome, Timestamp, User};
use hearth_vault::{RandomToken, TokenHash};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::fields::{self, Password};
use super::replies::{PendingSession, SessionReply, session_reply};
use super::tokens::{invalid_token, issue_one_time_token, redeem, send_email_confirmation};
use crate::admin::accounts::refuse_if_disabled;
use crate::admin::invites;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::events::Envelope;
use crate::metrics::LoginRefusal;
use crate::state::AppState;

/// Where a sign-in comes from: the client's address (for attempt limits) and user agent (to
/// name the device when the client does not).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The client's address.
    pub address: IpAddr,
    /// Its `User-Agent`, if any.
    pub user_agent: Option<&'a str>,
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
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
    /// An invite code, needed when the server takes new accounts by invitation
    /// (`accounts.registration = "invite"`); ignored otherwise.
    #[schema(value_type = Option<String>)]
    invite: Option<String>,
}

/// Makes an account and its first device session, and mails the confirmation link.
pub async fn register(state: &AppState, origin: Origin<'_>, request: RegisterRequest) -> ApiResult<SessionReply> {
    let email = fields::email("email", &request.email)?;
    let display_name = match request.display_name.as_deref() {
        Some(name) => fields::display_name("display_name", name)?,
        // The address's local part, never the whole address: a display name is shown to
        // everyone in the directory, an address only to contacts (`directory.show_emails`).
        None => fields::default_display_name(&email),
    };
    let password = request.password.checked("password")?;
    let invite = invites::admission(state, request.invite.as_deref())?;
    state.attempts.check_address(origin.address)?;
    let password_hash = state.passwords.hash(password).await.map_err(ApiError::internal)?;
    let now = Timestamp::now();
    if let Some(code_hash) = &invite {
        invites::spend(state, code_hash, now).await?;
    }
    let user = User {
        id: Uuid::now_v7(),
        email,
        display_name,
        password_hash,
        confirmed_at: None,
        inserted_at: now,
        updated_at: now,
        // The client publishes one next (`PUT /api/identity_key`).
        identity_key: None,
    };
    let session = PendingSession::new(state, request.device_name.as_deref(), origin.user_agent, now);
    let created = state.store.create_account(&NewAccount { user: user.clone(), session: session.row.clone() }).await;
    if let Err(error) = created {
        // The use goes back: the code made no account (the address was taken, …).
        if let Some(code_hash) = &invite {
            state.store.return_invite_use(code_hash).await?;
        }
        return Err(error.into());
    }
    tracing::info!(user = %user.id, invited = invite.is_some(), "account registered");
    send_email_confirmation(state, &user).await?;
    session_reply(state, &user, session.row.device_id, &session.refresh_token, now).await
}

/// A password sign-in.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(value_type = String, format = Password)]
    password: Password,
    /// (+) A name for this device in the devices list (default: the user agent).
    device_name: Option<String>,
}

/// Signs in with a password. A wrong password and an unknown email get the same answer after
/// the same hashing work. Each attempt, and why it was refused, is counted for `/metrics`.
pub async fn login(state: &AppState, origin: Origin<'_>, request: LoginRequest) -> ApiResult<SessionReply> {
    let result = try_login(state, origin, request).await;
    let refused = result.as_ref().err().map(|error| match error {
        ApiError::Invalid(_) => LoginRefusal::Invalid,
        ApiError::Unauthorized(_) => LoginRefusal::WrongCredentials,
        ApiError::TooManyRequests { .. } => LoginRefusal::RateLimited,
        _ => LoginRefusal::Failed,
    });
    state.metrics.login(refused);
    result
}

async fn try_login(state: &AppState, origin: Origin<'_>, request: LoginRequest) -> ApiResult<SessionReply> {
    let email = fields::email("email", &request.email)?;
    state.attempts.check_address(origin.address)?;
    state.attempts.check_account(&email)?;
    let user = state.store.user_by_email(&email).await?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = state.passwords.verify(request.password.any(), stored_hash).await;
    let user = match user {
        Some(user) if verified => user,
        _ => return Err(ApiError::Unauthorized("Invalid email or password.")),
    };
    // Told only to whom knows the password.
    refuse_if_disabled(state, user.id).await?;
    let now = Timestamp::now();
    let session = PendingSession::new(state, request.device_name.as_deref(), origin.user_agent, now);
    state.store.create_session(user.id, &session.row).await?;
    revoke_if_disabled_since(state, user.id, session.row.device_id, now).await?;
    tracing::info!(user = %user.id, device = %session.row.device_id, "logged in");
    session_reply(state, &user, session.row.device_id, &session.refresh_token, now).await
}

/// Spends a refresh token for a new pair. A spent one presented again signs its device session
/// out (someone else holds a copy).
pub async fn refresh(state: &AppState, refresh_token: &str) -> ApiResult<SessionReply> {
    let now = Timestamp::now();
    let successor = RandomToken::generate();
    let outcome = state
        .store
        .rotate_refresh_token(
            &TokenHash::of(refresh_token).0,
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
    // Disabling deletes the account's refresh tokens; this is one rotated as it happened.
    revoke_if_disabled_since(state, user.id, device.id, now).await?;
    session_reply(state, &user, device.id, &successor, now).await
}

/// Revokes the device session just made or rotated if the account was disabled meanwhile (a
/// disabling that raced with it, whose revocation may have come first), and refuses.
async fn revoke_if_disabled_since(state: &AppState, user_id: Uuid, device_id: Uuid, now: Timestamp) -> ApiResult<()> {
    if let Err(refused) = refuse_if_disabled(state, user_id).await {
        state.store.revoke_device(user_id, device_id, now).await?;
        state.pubsub.publish(Envelope::DisconnectDevices { devices: vec![device_id] }).await;
        return Err(refused);
    }
    Ok(())
}

/// A new device redeeming a link code. No Debug: it holds a token.
#[derive(Deserialize, ToSchema)]
pub struct DeviceLinkRedeemRequest {
    /// The code from `POST /api/devices/link` on a signed-in device.
    #[schema(value_type = String)]
    code: String,
    /// A name for the new device.
    device_name: Option<String>,
}

/// Signs a new device in with a code made on a signed-in one.
pub async fn redeem_device_link(
    state: &AppState,
    origin: Origin<'_>,
    request: DeviceLinkRedeemRequest,
) -> ApiResult<SessionReply> {
    state.attempts.check_address(origin.address)?;
    let now = Timestamp::now();
    let session = PendingSession::new(state, request.device_name.as_deref(), origin.user_agent, now);
    let user_id = redeem(state, &request.code, &Redemption::LinkDevice(session.row.clone())).await?;
    let user = state.store.user(user_id).await?.ok_or_else(invalid_token)?;
    tracing::info!(user = %user.id, device = %session.row.device_id, "device linked");
    session_reply(state, &user, session.row.device_id, &session.refresh_token, now).await
}

/// A signed-in device.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceReply {
    id: Uuid,
    name: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    last_seen_at: Timestamp,
    /// Whether this is the device making the request.
    current: bool,
}

/// The caller's signed-in devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    items: Vec<DeviceReply>,
}

/// The caller's devices, the one asking marked `current`.
pub async fn devices(state: &AppState, auth: AuthUser) -> ApiResult<DeviceList> {
    let devices = state.store.devices(auth.user_id).await?;
    let items = devices
        .into_iter()
        .map(|d| DeviceReply {
            current: d.id == auth.device_id,
            id: d.id,
            name: d.name,
            created_at: d.created_at,
            last_seen_at: d.last_seen_at,
        })
        .collect();
    Ok(DeviceList { items })
}

/// Signs one of the caller's devices out: its tokens stop working on their next use and its
/// sockets close.
pub async fn revoke_device(state: &AppState, user_id: Uuid, device_id: Uuid) -> ApiResult<()> {
    state.store.revoke_device(user_id, device_id, Timestamp::now()).await?;
    state.pubsub.publish(Envelope::DisconnectDevices { devices: vec![device_id] }).await;
    tracing::info!(user = %user_id, device = %device_id, "device signed out");
    Ok(())
}

/// A one-time code for adding a device.
#[derive(Serialize, ToSchema)]
pub struct LinkCode {
    /// Enter on the new device (`POST /auth/device/link`). Works once.
    code: String,
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
}

/// A code, valid for `auth.device_link_ttl_secs` and once, that signs a new device in to the
/// account; it dies with the session that made it.
pub async fn create_link_code(state: &AppState, auth: AuthUser) -> ApiResult<LinkCode> {
    let ttl = state.settings.auth.device_link_ttl_secs;
    let token = issue_one_time_token(state, auth.user_id, Some(auth.device_id), OneTimeKind::DeviceLink, ttl).await?;
    let expires_at = Timestamp::now().plus_secs(ttl);
    Ok(LinkCode { code: token.expose().to_owned(), expires_at })
}
