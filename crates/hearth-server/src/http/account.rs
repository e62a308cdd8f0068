//! The signed-in user's own account: who am I, sign out everywhere, email and password
//! changes, profile, and deleting the account.

use axum::extract::State;
use axum::http::StatusCode;
use hearth_store::{OneTimeKind, ProfileUpdate, Redemption, Rekey, Theme, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{issue_one_time_token, redeem, send_email_confirmation};
use super::fields::{self, Password};
use super::replies::UserWithProfile;
use crate::email::Letter;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json};
use crate::realtime::hub::Envelope;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(signout_all))
        .routes(routes!(request_email_confirmation))
        .routes(routes!(request_email_change))
        .routes(routes!(change_password))
        .routes(routes!(change_email))
        .routes(routes!(update_profile))
        .routes(routes!(delete_account))
}

/// # GET /api/me (+)
#[utoipa::path(get, path = "/api/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = UserWithProfile), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, auth: AuthUser) -> ApiResult<axum::Json<UserWithProfile>> {
    let user = state.store.user(auth.user_id).await?.ok_or(ApiError::NotFound)?;
    let profile = state.store.profile(auth.user_id).await?;
    Ok(axum::Json(UserWithProfile::new(&user, profile)))
}

/// # POST /api/signout_all
///
/// Revokes every device session of the user, this one included.
#[utoipa::path(post, path = "/api/signout_all", tag = "account", security(("bearer" = [])),
    responses((status = 204, description = "signed out everywhere"), (status = 401, body = ErrorBody)))]
async fn signout_all(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    state.store.revoke_all_devices(auth.user_id, Timestamp::now()).await?;
    state.pubsub.publish(Envelope::DisconnectUser { user: auth.user_id }).await;
    tracing::info!(user = %auth.user_id, "signed out everywhere");
    Ok(StatusCode::NO_CONTENT)
}

/// # POST /api/token/email_confirm
///
/// Sends a new confirmation link to the account's address.
#[utoipa::path(post, path = "/api/token/email_confirm", tag = "account", security(("bearer" = [])),
    responses((status = 204, description = "link sent"), (status = 401, body = ErrorBody)))]
async fn request_email_confirmation(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    let user = state.store.user(auth.user_id).await?.ok_or(ApiError::NotFound)?;
    send_email_confirmation(&state, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # POST /api/token/email_change
///
/// Sends an email-change token to the account's current address.
#[utoipa::path(post, path = "/api/token/email_change", tag = "account", security(("bearer" = [])),
    responses((status = 204, description = "token sent"), (status = 401, body = ErrorBody)))]
async fn request_email_change(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    let user = state.store.user(auth.user_id).await?.ok_or(ApiError::NotFound)?;
    let ttl = state.settings.auth.email_token_ttl_secs;
    let token = issue_one_time_token(&state, user.id, Some(auth.device_id), OneTimeKind::EmailChange, ttl).await?;
    state.mailer.send_later(user.email, Letter::email_change(&state.public_url, token.expose(), ttl));
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the user's current password (counting the attempt against the account's
/// limit, so a stolen access token does not allow unlimited guessing).
async fn verify_current_password(state: &AppState, user_id: uuid::Uuid, password: Password) -> ApiResult<()> {
    let user = state.store.user(user_id).await?.ok_or(ApiError::NotFound)?;
    state.attempts.check_account(&user.email)?;
    if state.passwords.verify(password.any(), Some(user.password_hash)).await {
        Ok(())
    } else {
        Err(ApiError::invalid("password", "is incorrect"))
    }
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct ChangePasswordRequest {
    /// Current password.
    #[schema(value_type = String, format = Password)]
    password: Password,
    /// 8 to 1 024 characters.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    new_password: Password,
    /// The same again.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    new_password_confirmation: Password,
    /// (+) Every private key of the caller, re-wrapped for the new password, as
    /// `PUT /api/encryption_keys` takes them: replaced in the same transaction, so history stays
    /// readable; a set that is not exactly the caller's is 409 `keys_changed` and changes nothing.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    private_keys: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// # PATCH /api/password
///
/// Changes the password and signs out every session, this one included. With
/// `private_keys`, the re-wrapped private keys replace the old ones in the same transaction.
#[utoipa::path(patch, path = "/api/password", tag = "account", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "changed; all sessions signed out"), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    if !request.new_password.same_as(&request.new_password_confirmation) {
        return Err(ApiError::invalid("new_password_confirmation", "does not match new_password"));
    }
    let new_password = request.new_password.checked("new_password")?;
    let private_keys = request
        .private_keys
        .as_ref()
        .map(|keys| super::encryption_keys::sealed(&state, auth.user_id, keys))
        .transpose()?;
    verify_current_password(&state, auth.user_id, request.password).await?;
    let password_hash = state.passwords.hash(new_password).await.map_err(ApiError::internal)?;
    state
        .store
        .replace_password(auth.user_id, &password_hash, private_keys.as_deref(), Timestamp::now())
        .await
        .map_err(super::encryption_keys::refused)?;
    state.pubsub.publish(Envelope::DisconnectUser { user: auth.user_id }).await;
    tracing::info!(user = %auth.user_id, "password changed; all sessions signed out");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct ChangeEmailRequest {
    /// The email-change token sent to the current address.
    #[schema(value_type = String)]
    token: String,
    /// The new address.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// Current password.
    #[schema(value_type = String, format = Password)]
    password: Password,
    /// (+) For a client whose keys derive from the email (DESIGN §6): the new password (its
    /// `auth_secret` for the new address), given together with `private_keys`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 1024)]
    new_password: Option<Password>,
    /// (+) Every private key of the caller, re-wrapped for the new address, as
    /// `PUT /api/encryption_keys` takes them. With `new_password`, both are replaced in the
    /// email change's transaction and every session is signed out.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    private_keys: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// # PATCH /api/email
///
/// Moves the account to a new address (unconfirmed until its link is used). With
/// `new_password` and `private_keys` (+), the account's secret and private keys change with it
/// and every session is signed out.
#[utoipa::path(patch, path = "/api/email", tag = "account", security(("bearer" = [])),
    request_body = ChangeEmailRequest,
    responses((status = 204, description = "changed"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, description = "too many password attempts on the account", body = ErrorBody)))]
async fn change_email(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<ChangeEmailRequest>,
) -> ApiResult<StatusCode> {
    let email = fields::email("email", &request.email)?;
    let rekey = match (request.new_password, &request.private_keys) {
        (None, None) => None,
        (Some(new_password), Some(keys)) => {
            let new_password = new_password.checked("new_password")?;
            let private_keys = super::encryption_keys::sealed(&state, auth.user_id, keys)?;
            Some((new_password, private_keys))
        }
        (None, Some(_)) => return Err(ApiError::invalid("new_password", "is needed with private_keys")),
        (Some(_), None) => return Err(ApiError::invalid("private_keys", "are needed with new_password")),
    };
    verify_current_password(&state, auth.user_id, request.password).await?;
    let rekey = match rekey {
        Some((new_password, private_keys)) => {
            let password_hash = state.passwords.hash(new_password).await.map_err(ApiError::internal)?;
            Some(Rekey { password_hash, private_keys })
        }
        None => None,
    };
    let rekeyed = rekey.is_some();
    let redemption = Redemption::ChangeEmail { user_id: auth.user_id, email, rekey };
    redeem(&state, &request.token, &redemption).await?;
    if rekeyed {
        state.pubsub.publish(Envelope::DisconnectUser { user: auth.user_id }).await;
    }
    let user = state.store.user(auth.user_id).await?.ok_or(ApiError::NotFound)?;
    tracing::info!(user = %auth.user_id, rekeyed, "email changed");
    send_email_confirmation(&state, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ProfileRequest {
    hidden: Option<bool>,
    /// `day` or `night`.
    #[schema(value_type = Option<ThemeName>)]
    theme: Option<String>,
    /// 0.7–1.4.
    #[schema(minimum = 0.7, maximum = 1.4)]
    magnification: Option<f64>,
    /// At most 20 strings of at most 200 characters.
    #[schema(value_type = Option<Vec<Recent>>, max_items = 20)]
    recents: Option<Vec<String>>,
}

/// A colour theme.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Describes the field in the OpenAPI document only.
enum ThemeName {
    Day,
    Night,
}

/// One of `recents`: at most 200 characters (a path such as `/chat/<id>`).
#[derive(ToSchema)]
#[schema(max_length = 200)]
#[allow(dead_code)] // Describes the field's items in the OpenAPI document only.
struct Recent(String);

/// A user's profile as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
struct ProfileReply {
    hidden: bool,
    #[schema(value_type = ThemeName)]
    theme: Theme,
    magnification: f64,
    recents: Vec<String>,
}

impl ProfileRequest {
    fn validate(self) -> ApiResult<ProfileUpdate> {
        let mut problems = std::collections::BTreeMap::<String, Vec<String>>::new();
        let theme = match self.theme.as_deref() {
            None => None,
            Some(text) => match Theme::parse(text) {
                Some(theme) => Some(theme),
                None => {
                    problems.entry("theme".into()).or_default().push("must be \"day\" or \"night\"".into());
                    None
                }
            },
        };
        if let Some(m) = self.magnification
            && !(0.7..=1.4).contains(&m)
        {
            problems.entry("magnification".into()).or_default().push("must be between 0.7 and 1.4".into());
        }
        if let Some(recents) = &self.recents {
            if recents.len() > 20 {
                problems.entry("recents".into()).or_default().push("must have at most 20 entries".into());
            }
            if recents.iter().any(|r| r.chars().count() > 200) {
                problems.entry("recents".into()).or_default().push("entries must be at most 200 characters".into());
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::Invalid(problems));
        }
        Ok(ProfileUpdate { hidden: self.hidden, theme, magnification: self.magnification, recents: self.recents })
    }
}

/// # PATCH /api/profile
///
/// Changes any of the profile fields given; the others stay.
#[utoipa::path(patch, path = "/api/profile", tag = "account", security(("bearer" = [])),
    request_body = ProfileRequest,
    responses((status = 200, body = ProfileReply), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_profile(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<ProfileRequest>,
) -> ApiResult<axum::Json<ProfileReply>> {
    let update = request.validate()?;
    let profile = state.store.update_profile(auth.user_id, &update).await?;
    if let Some(hidden) = update.hidden {
        crate::realtime::presence::hidden_changed(&state, auth.user_id, hidden).await;
    }
    Ok(axum::Json(ProfileReply {
        hidden: profile.hidden,
        theme: profile.theme,
        magnification: profile.magnification,
        recents: profile.recents,
    }))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct DeleteAccountRequest {
    /// Current password, to confirm.
    #[schema(value_type = String, format = Password)]
    password: Password,
}

/// # DELETE /api/account (+)
///
/// Deletes the account and everything that belongs to it. Needs the password.
#[utoipa::path(delete, path = "/api/account", tag = "account", security(("bearer" = [])),
    request_body = DeleteAccountRequest,
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, description = "too many password attempts on the account", body = ErrorBody)))]
async fn delete_account(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<DeleteAccountRequest>,
) -> ApiResult<StatusCode> {
    verify_current_password(&state, auth.user_id, request.password).await?;
    state.store.delete_user(auth.user_id).await?;
    state.pubsub.publish(Envelope::DisconnectUser { user: auth.user_id }).await;
    tracing::info!(user = %auth.user_id, "account deleted");
    Ok(StatusCode::NO_CONTENT)
}
