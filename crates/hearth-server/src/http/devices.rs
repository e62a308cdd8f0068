//! The caller's devices over REST: the list, signing one out, and codes that link a new one.
//! The rules are the domain's (`crate::accounts::signin`).

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::signin::{self, DeviceList, LinkCode};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AuthUser, Path};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_devices)).routes(routes!(revoke_device)).routes(routes!(create_link_code))
}

/// # GET /api/devices (+)
#[utoipa::path(get, path = "/api/devices", tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = DeviceList), (status = 401, body = ErrorBody)))]
async fn list_devices(State(state): State<AppState>, auth: AuthUser) -> ApiResult<axum::Json<DeviceList>> {
    Ok(axum::Json(signin::devices(&state, auth).await?))
}

/// # DELETE /api/devices/{id} (+)
///
/// Signs a device out: its tokens stop working on their next use.
#[utoipa::path(delete, path = "/api/devices/{id}", tag = "devices", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Device id")),
    responses((status = 204, description = "revoked"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_device(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(device_id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    signin::revoke_device(&state, auth.user_id, device_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # POST /api/devices/link (+)
///
/// Makes a code, valid 5 minutes and once, that signs a new device in to this account.
#[utoipa::path(post, path = "/api/devices/link", tag = "devices", security(("bearer" = [])),
    responses((status = 201, body = LinkCode), (status = 401, body = ErrorBody)))]
async fn create_link_code(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<(StatusCode, axum::Json<LinkCode>)> {
    Ok((StatusCode::CREATED, axum::Json(signin::create_link_code(&state, auth).await?)))
}
