//! Signing up and in over REST: registration, login, refresh, email confirmation, password
//! reset and device links. The rules are the domain's (`crate::accounts`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::SessionReply;
use crate::accounts::signin::{self, DeviceLinkRedeemRequest, LoginRequest, Origin, RegisterRequest};
use crate::accounts::tokens::{self, PasswordResetCheck, PasswordResetRequest, ResetPasswordRequest, TokenRequest};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ClientIp, Json};
use crate::settings::Registration;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(registration))
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(confirm))
        .routes(routes!(request_password_reset))
        .routes(routes!(check_password_reset))
        .routes(routes!(reset_password))
        .routes(routes!(redeem_device_link))
}

/// Where a request comes from, for the domain's sign-in rules.
fn origin(ClientIp(address): ClientIp, headers: &HeaderMap) -> Origin<'_> {
    Origin { address, user_agent: headers.get(header::USER_AGENT).and_then(|value| value.to_str().ok()) }
}

/// Who may sign up here, so that a sign-up form can ask for an invite code before it is
/// refused for want of one.
#[derive(Debug, Serialize, ToSchema)]
struct RegistrationPolicy {
    /// `open`: anyone; `invite`: `POST /auth/register` needs `invite`; `closed`: nobody.
    #[schema(value_type = String, pattern = "^(open|invite|closed)$")]
    registration: Registration,
}

/// # GET /auth/registration
///
/// The server's `accounts.registration` policy.
#[utoipa::path(get, path = "/auth/registration", tag = "auth", responses((status = 200, body = RegistrationPolicy)))]
async fn registration(State(state): State<AppState>) -> axum::Json<RegistrationPolicy> {
    axum::Json(RegistrationPolicy { registration: state.settings.accounts.registration })
}

/// # POST /auth/register
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = SessionReply),
              (status = 403, description = "sign-up closed, or an invite code missing, unknown, used up or expired", body = ErrorBody),
              (status = 409, description = "email taken", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    Json(request): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, axum::Json<SessionReply>)> {
    let reply = signin::register(&state, origin(client, &headers), request).await?;
    Ok((StatusCode::CREATED, axum::Json(reply)))
}

/// # POST /auth/login
///
/// Wrong password and unknown email get the same answer after the same hashing work.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = SessionReply), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    Json(request): Json<LoginRequest>,
) -> ApiResult<axum::Json<SessionReply>> {
    Ok(axum::Json(signin::login(&state, origin(client, &headers), request).await?))
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
    Ok(axum::Json(signin::refresh(&state, &request.token).await?))
}

/// # POST /auth/confirm
#[utoipa::path(post, path = "/auth/confirm", tag = "auth", request_body = TokenRequest,
    responses((status = 204, description = "confirmed"), (status = 400, body = ErrorBody)))]
async fn confirm(State(state): State<AppState>, Json(request): Json<TokenRequest>) -> ApiResult<StatusCode> {
    tokens::confirm_email(&state, &request).await?;
    Ok(StatusCode::NO_CONTENT)
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
    tokens::request_password_reset(&state, ip, request).await?;
    Ok(StatusCode::NO_CONTENT)
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
    Ok(axum::Json(tokens::check_password_reset(&state, &request).await?))
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
    tokens::reset_password(&state, ip, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # POST /auth/device/link (+)
///
/// A new device redeems a 5-minute code made on a signed-in one and gets its own session.
#[utoipa::path(post, path = "/auth/device/link", tag = "auth", request_body = DeviceLinkRedeemRequest,
    responses((status = 200, body = SessionReply), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn redeem_device_link(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    Json(request): Json<DeviceLinkRedeemRequest>,
) -> ApiResult<axum::Json<SessionReply>> {
    Ok(axum::Json(signin::redeem_device_link(&state, origin(client, &headers), request).await?))
}
