//! `/admin/*`: administrators sign in with an SSH key (`POST /admin/challenge`, then
//! `POST /admin/session` with the challenge signed by `ssh-keygen -Y sign -n hearth-admin`),
//! and read the audit log (`GET /admin/audit`, `GET /admin/audit/verify`). Everything but the
//! sign-in needs `Authorization: Bearer <admin_token>`; the domain is `crate::admin`.

use axum::extract::State;
use hearth_store::Timestamp;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::{self, AdminLogin, AuditPage, AuditVerification, Challenge};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AdminAuth, ClientIp, Json, Query};
use crate::http::users::page_size;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(challenge))
        .routes(routes!(session))
        .routes(routes!(audit))
        .routes(routes!(verify_audit))
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

/// # GET /admin/audit/verify
///
/// Whether the audit log's hash chain holds: an edited or deleted entry breaks it.
#[utoipa::path(get, path = "/admin/audit/verify", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = AuditVerification), (status = 401, body = ErrorBody),
              (status = 403, description = "a person's access token", body = ErrorBody)))]
async fn verify_audit(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
) -> ApiResult<axum::Json<AuditVerification>> {
    tracing::debug!(fingerprint = %admin.fingerprint, "the audit log verified");
    Ok(axum::Json(admin::audit_verification(&*state.store).await?))
}
