//! The user's device sessions: list, revoke, and make a code to link a new device.

use axum::extract::State;
use axum::http::StatusCode;
use hearth_store::{OneTimeKind, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::issue_one_time_token;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AuthUser, Path};
use crate::realtime::hub::Envelope;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_devices)).routes(routes!(revoke_device)).routes(routes!(create_link_code))
}

/// A signed-in device.
#[derive(Debug, Serialize, ToSchema)]
struct DeviceReply {
    id: Uuid,
    name: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    last_seen_at: Timestamp,
    /// Whether this is the device making the request.
    current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct DeviceList {
    items: Vec<DeviceReply>,
}

/// # GET /api/devices (+)
#[utoipa::path(get, path = "/api/devices", tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = DeviceList), (status = 401, body = ErrorBody)))]
async fn list_devices(State(state): State<AppState>, auth: AuthUser) -> ApiResult<axum::Json<DeviceList>> {
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
    Ok(axum::Json(DeviceList { items }))
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
    state.store.revoke_device(auth.user_id, device_id, Timestamp::now()).await?;
    state.pubsub.publish(Envelope::DisconnectDevices { devices: vec![device_id] }).await;
    tracing::info!(user = %auth.user_id, device = %device_id, "device signed out");
    Ok(StatusCode::NO_CONTENT)
}

/// A one-time code for adding a device.
#[derive(Serialize, ToSchema)]
struct LinkCode {
    /// Enter on the new device (`POST /auth/device/link`). Works once.
    code: String,
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
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
    let ttl = state.settings.auth.device_link_ttl_secs;
    let token = issue_one_time_token(&state, auth.user_id, Some(auth.device_id), OneTimeKind::DeviceLink, ttl).await?;
    let expires_at = Timestamp::now().plus_secs(ttl);
    Ok((StatusCode::CREATED, axum::Json(LinkCode { code: token.expose().to_owned(), expires_at })))
}
