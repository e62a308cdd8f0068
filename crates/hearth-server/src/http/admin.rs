//! `/admin/*`: administrators sign in with an SSH key (`POST /admin/challenge`, then
//! `POST /admin/session` with the challenge signed by `ssh-keygen -Y sign -n hearth-admin`) or
//! with a one-time link (`POST /admin/links`, then `POST /admin/links/redeem`), control
//! accounts, moderate rooms, make invites, and read the audit log. Everything but signing in
//! needs `Authorization: Bearer <admin_token>`; the domain is `crate::admin`. No route reads an
//! end-to-end conversation: the server holds those as ciphertext only.

use axum::extract::State;
use axum::http::StatusCode;
use hearth_store::Timestamp;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use uuid::Uuid;

use crate::admin::accounts::{self, AdminUserPage, Role};
use crate::admin::invites::{self, CreatedInvite, InviteRequest};
use crate::admin::links::{self, AdminLink};
use crate::admin::providers::{self, ProvidersReport};
use crate::admin::rooms::{self, AdminPostPage, AdminRoomPage};
use crate::admin::{self, AdminLogin, AuditPage, AuditVerification, Challenge};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AdminAuth, ClientIp, Json, Path, PathParam, Query};
use crate::http::users::page_size;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(challenge))
        .routes(routes!(session))
        .routes(routes!(audit))
        .routes(routes!(verify_audit))
        .routes(routes!(users))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(delete_user))
        .routes(routes!(set_role))
        .routes(routes!(create_invite))
        .routes(routes!(providers))
        .routes(routes!(rooms))
        .routes(routes!(room_messages))
        .routes(routes!(delete_room_message))
        .routes(routes!(create_link))
        .routes(routes!(redeem_link))
}

/// # POST /admin/challenge
///
/// A challenge to sign with `ssh-keygen -Y sign -n hearth-admin -f KEY`: single use, valid 60
/// seconds.
#[utoipa::path(post, path = "/admin/challenge", tag = "admin",
    responses((status = 200, body = Challenge), (status = 429, description = "too many attempts from this address", body = ErrorBody)))]
async fn challenge(State(state): State<AppState>, ClientIp(client): ClientIp) -> ApiResult<axum::Json<Challenge>> {
    // Challenges and sign-ins are open to anyone, and each writes a row: counted with the
    // other sign-in attempts of the address.
    state.attempts.check_address(client)?;
    Ok(axum::Json(state.admins.challenge(&*state.store, Timestamp::now()).await?))
}

/// A signed challenge.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    /// The text `POST /admin/challenge` gave, exactly.
    #[schema(min_length = 1, max_length = 2048)]
    challenge: String,
    /// The armored SSH signature (`-----BEGIN SSH SIGNATURE-----` …) of the challenge, in the
    /// namespace `hearth-admin`.
    #[schema(min_length = 1, max_length = 16384)]
    signature: String,
}

/// # POST /admin/session
///
/// An admin token for 15 minutes, for a challenge signed by a key listed in
/// `admin.allowed_signers`. Every attempt is audited.
#[utoipa::path(post, path = "/admin/session", tag = "admin", request_body = SessionRequest,
    responses((status = 200, body = AdminLogin),
              (status = 401, description = "bad signature, key not listed, challenge used, expired or foreign", body = ErrorBody),
              (status = 422, body = ErrorBody),
              (status = 429, description = "too many attempts from this address", body = ErrorBody)))]
async fn session(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(request): Json<SessionRequest>,
) -> ApiResult<axum::Json<AdminLogin>> {
    state.attempts.check_address(client)?;
    let login = state.admins.sign_in(&*state.store, &request.challenge, &request.signature, Timestamp::now());
    Ok(axum::Json(login.await?))
}

#[derive(Debug, Deserialize, IntoParams)]
struct AuditQuery {
    /// Token from the previous page; absent for the first (newest) page.
    page_token: Option<String>,
    /// Items per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

/// # GET /admin/audit
///
/// The audit log, newest first: every administrator's sign-in (accepted or refused) and
/// action.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, description = "bad page_token", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn audit(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Query(query): Query<AuditQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    tracing::debug!(fingerprint = %admin.fingerprint, "the audit log read");
    let size = page_size(query.page_size.as_deref())?;
    let page = admin::audit_page(&*state.store, &state.page_tokens, query.page_token.as_deref(), size);
    Ok(axum::Json(page.await?))
}

#[derive(Debug, Deserialize, IntoParams)]
struct VerifyQuery {
    /// The `seq` of the newest entry from an earlier verification (with `known_hash`): the
    /// chain must still hold that entry at that place.
    #[param(value_type = Option<i64>, minimum = 1)]
    known_seq: Option<String>,
    /// That entry's `hash` (64 hexadecimal digits).
    #[param(min_length = 64, max_length = 64, pattern = "^[0-9a-fA-F]{64}$")]
    known_hash: Option<String>,
}

/// # GET /admin/audit/verify
///
/// Whether the audit log's hash chain holds: an edited or deleted entry breaks it. Deleting
/// the newest entries leaves a chain that holds, so give the newest entry of an earlier
/// verification (`known_seq`, `known_hash`) to learn whether that happened since.
#[utoipa::path(get, path = "/admin/audit/verify", tag = "admin", security(("bearer" = [])), params(VerifyQuery),
    responses((status = 200, body = AuditVerification), (status = 401, body = ErrorBody),
              (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn verify_audit(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Query(query): Query<VerifyQuery>,
) -> ApiResult<axum::Json<AuditVerification>> {
    tracing::debug!(fingerprint = %admin.fingerprint, "the audit log verified");
    let known = admin::known_audit_entry(query.known_seq.as_deref(), query.known_hash.as_deref())?;
    Ok(axum::Json(admin::audit_verification(&*state.store, known.as_ref()).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
struct UsersQuery {
    /// Finds accounts whose email or display name contains this (case-insensitively).
    #[param(max_length = 320)]
    query: Option<String>,
    /// Token from the previous page; absent for the first page.
    page_token: Option<String>,
    /// Items per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

/// # GET /admin/users
///
/// Every account, by id: email, display name, created, last seen, live devices, disabled,
/// roles.
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("bearer" = [])), params(UsersQuery),
    responses((status = 200, body = AdminUserPage), (status = 400, description = "bad page_token", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn users(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Query(query): Query<UsersQuery>,
) -> ApiResult<axum::Json<AdminUserPage>> {
    let size = page_size(query.page_size.as_deref())?;
    let page = accounts::list(&state, query.query.as_deref(), query.page_token.as_deref(), size);
    Ok(axum::Json(page.await?))
}

/// Why an action is taken, kept in the audit log.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReasonRequest {
    /// 1 to 1 000 characters.
    #[schema(min_length = 1, max_length = 1000)]
    reason: Option<String>,
}

/// # POST /admin/users/{id}/disable
///
/// Disables an account: every session revoked, its sockets closed, sign-in refused until it
/// is enabled. Audited with the reason.
#[utoipa::path(post, path = "/admin/users/{id}/disable", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the account")), request_body = ReasonRequest,
    responses((status = 204, description = "disabled"), (status = 401, body = ErrorBody),
              (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn disable_user(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<Uuid>,
    Json(request): Json<ReasonRequest>,
) -> ApiResult<StatusCode> {
    accounts::disable(&state, &admin, id, request.reason.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # POST /admin/users/{id}/enable
///
/// Lets a disabled account sign in again. Audited.
#[utoipa::path(post, path = "/admin/users/{id}/enable", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the account")),
    responses((status = 204, description = "enabled"), (status = 401, body = ErrorBody),
              (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn enable_user(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    accounts::enable(&state, &admin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # DELETE /admin/users/{id}
///
/// Deletes an account and everything of it (memberships, messages, sealed keys, images), as
/// `DELETE /api/account` does. Audited with the reason.
#[utoipa::path(delete, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the account")), request_body = ReasonRequest,
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody),
              (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn delete_user(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<Uuid>,
    Json(request): Json<ReasonRequest>,
) -> ApiResult<StatusCode> {
    accounts::delete(&state, &admin, id, request.reason.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A role granted or taken back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleRequest {
    role: Role,
    /// True to grant, false to take back.
    granted: bool,
}

/// # POST /admin/users/{id}/roles
///
/// Grants (`"granted": true`) or takes back a role: `analyst` or `operator`. Audited.
#[utoipa::path(post, path = "/admin/users/{id}/roles", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the account")), request_body = RoleRequest,
    responses((status = 204, description = "done"), (status = 401, body = ErrorBody),
              (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_role(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<Uuid>,
    Json(request): Json<RoleRequest>,
) -> ApiResult<StatusCode> {
    accounts::set_role(&state, &admin, id, request.role, request.granted).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # POST /admin/invites
///
/// An invite code for `accounts.registration = "invite"`: good for `uses` sign-ups (default 1)
/// until it expires (default in 7 days). The code is shown this once and kept hashed. Audited.
#[utoipa::path(post, path = "/admin/invites", tag = "admin", security(("bearer" = [])), request_body = InviteRequest,
    responses((status = 201, body = CreatedInvite), (status = 401, body = ErrorBody),
              (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn create_invite(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Json(request): Json<InviteRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedInvite>)> {
    let invite = invites::create(&state, &admin, &request).await?;
    Ok((StatusCode::CREATED, axum::Json(invite)))
}

/// # GET /admin/providers
///
/// The AI providers in the order they are tried, and the health of the free tier's keys for
/// each: counts only, never a key.
#[utoipa::path(get, path = "/admin/providers", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = ProvidersReport), (status = 401, body = ErrorBody),
              (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 503, description = "the keyguard is not reachable", body = ErrorBody)))]
async fn providers(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
) -> ApiResult<axum::Json<ProvidersReport>> {
    Ok(axum::Json(providers::report(&state).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
struct RoomsQuery {
    /// Finds rooms whose name or topic contains this (case-insensitively).
    #[param(max_length = 200)]
    query: Option<String>,
    /// Token from the previous page; absent for the first page.
    page_token: Option<String>,
    /// Items per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

/// # GET /admin/rooms
///
/// Every room, public and private, by id: name, topic, visibility, member count, moderators,
/// created, last post time.
#[utoipa::path(get, path = "/admin/rooms", tag = "admin", security(("bearer" = [])), params(RoomsQuery),
    responses((status = 200, body = AdminRoomPage), (status = 400, description = "bad page_token", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn rooms(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Query(query): Query<RoomsQuery>,
) -> ApiResult<axum::Json<AdminRoomPage>> {
    let size = page_size(query.page_size.as_deref())?;
    let page = rooms::list(&state, query.query.as_deref(), query.page_token.as_deref(), size);
    Ok(axum::Json(page.await?))
}

#[derive(Debug, Deserialize, IntoParams)]
struct MessagesQuery {
    /// Token from the previous page; absent for the first (newest) page.
    page_token: Option<String>,
    /// Items per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

/// # GET /admin/rooms/{id}/messages
///
/// A page of a room's posts, newest first, in the shape of `GET /api/rooms/{id}/messages`.
/// Audited (`room.read`).
#[utoipa::path(get, path = "/admin/rooms/{id}/messages", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the room"), MessagesQuery),
    responses((status = 200, body = AdminPostPage), (status = 400, description = "bad page_token", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn room_messages(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<Uuid>,
    Query(query): Query<MessagesQuery>,
) -> ApiResult<axum::Json<AdminPostPage>> {
    let size = page_size(query.page_size.as_deref())?;
    let page = rooms::messages(&state, &admin, id, query.page_token.as_deref(), size);
    Ok(axum::Json(page.await?))
}

/// A room's post, as its path names it.
#[derive(Debug, Deserialize)]
struct RoomPost {
    id: Uuid,
    message_id: Uuid,
}

impl PathParam for RoomPost {
    const EXPECTED: &'static str = "must be a UUID";
}

/// # DELETE /admin/rooms/{id}/messages/{message_id}
///
/// Deletes a room's post, whoever sent it; the room's members get `delete_post`. Audited with
/// the reason.
#[utoipa::path(delete, path = "/admin/rooms/{id}/messages/{message_id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the room"), ("message_id" = Uuid, Path, description = "the post")),
    request_body = ReasonRequest,
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody),
              (status = 403, description = "a person's access token", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn delete_room_message(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(post): Path<RoomPost>,
    Json(request): Json<ReasonRequest>,
) -> ApiResult<StatusCode> {
    rooms::delete_message(&state, &admin, post.id, post.message_id, request.reason.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # POST /admin/links
///
/// A one-time link that opens the admin page signed in as the caller (the same key), for 60
/// seconds. The code is in the URL's fragment, which browsers never send to a server. Audited.
#[utoipa::path(post, path = "/admin/links", tag = "admin", security(("bearer" = [])),
    responses((status = 201, body = AdminLink), (status = 401, body = ErrorBody),
              (status = 403, description = "a person's access token", body = ErrorBody)))]
async fn create_link(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
) -> ApiResult<(StatusCode, axum::Json<AdminLink>)> {
    Ok((StatusCode::CREATED, axum::Json(links::create(&state, &admin, Timestamp::now()).await?)))
}

/// A link's code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RedeemRequest {
    /// The part of the link after `#`.
    #[schema(min_length = 1, max_length = 172)]
    code: String,
}

/// # POST /admin/links/redeem
///
/// Spends a link from `POST /admin/links`: an admin token for 15 minutes, as `POST
/// /admin/session` gives, for the administrator who asked for the link. Used, expired and
/// unknown codes are refused alike. Every attempt is audited.
#[utoipa::path(post, path = "/admin/links/redeem", tag = "admin", request_body = RedeemRequest,
    responses((status = 200, body = AdminLogin),
              (status = 401, description = "used, expired or unknown code, or a key no longer listed", body = ErrorBody),
              (status = 422, body = ErrorBody),
              (status = 429, description = "too many attempts from this address", body = ErrorBody)))]
async fn redeem_link(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(request): Json<RedeemRequest>,
) -> ApiResult<axum::Json<AdminLogin>> {
    // Open to anyone, like signing in: counted with the address's other sign-in attempts.
    state.attempts.check_address(client)?;
    Ok(axum::Json(links::redeem(&state, &request.code, Timestamp::now()).await?))
}
