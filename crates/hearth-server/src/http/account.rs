//! The signed-in user's own account over REST: who am I, sign out everywhere, email and
//! password changes, profile, and deleting the account. The rules are the domain's
//! (`crate::accounts`).

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::{
    self, ChangeEmailRequest, ChangePasswordRequest, DeleteAccountRequest, ProfileReply, ProfileRequest,
    UserWithProfile,
};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json};
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
    Ok(axum::Json(accounts::me(&state, auth.user_id).await?))
}

/// # POST /api/signout_all
///
/// Revokes every device session of the user, this one included.
#[utoipa::path(post, path = "/api/signout_all", tag = "account", security(("bearer" = [])),
    responses((status = 204, description = "signed out everywhere"), (status = 401, body = ErrorBody)))]
async fn signout_all(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    accounts::signout_all(&state, auth.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # POST /api/token/email_confirm
///
/// Sends a new confirmation link to the account's address.
#[utoipa::path(post, path = "/api/token/email_confirm", tag = "account", security(("bearer" = [])),
    responses((status = 204, description = "link sent"), (status = 401, body = ErrorBody)))]
async fn request_email_confirmation(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    accounts::request_email_confirmation(&state, auth.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # POST /api/token/email_change
///
/// Sends an email-change token to the account's current address.
#[utoipa::path(post, path = "/api/token/email_change", tag = "account", security(("bearer" = [])),
    responses((status = 204, description = "token sent"), (status = 401, body = ErrorBody)))]
async fn request_email_change(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    accounts::request_email_change(&state, auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # PATCH /api/password
///
/// Changes the password and signs out every session, this one included. With
/// `private_keys` (and `identity_private_key` (+) when the account has an identity), the
/// re-wrapped private keys replace the old ones in the same transaction.
#[utoipa::path(patch, path = "/api/password", tag = "account", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "changed; all sessions signed out"), (status = 401, body = ErrorBody),
              (status = 409, description = "`keys_changed`: the re-wrapped keys are not exactly the caller's", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    accounts::change_password(&state, auth.user_id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # PATCH /api/email
///
/// Moves the account to a new address (unconfirmed until its link is used). With
/// `new_password` and `private_keys` (+) (and `identity_private_key` when the account has an
/// identity), the account's secret and private keys change with it and every session is
/// signed out.
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
    accounts::change_email(&state, auth.user_id, request).await?;
    Ok(StatusCode::NO_CONTENT)
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
    Ok(axum::Json(accounts::update_profile(&state, auth.user_id, &update).await?))
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
    accounts::delete_account(&state, auth.user_id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}
