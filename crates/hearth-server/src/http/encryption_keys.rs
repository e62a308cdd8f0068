//! `GET /api/encryption_keys` and `PUT /api/encryption_keys` (+): the caller's private keys of
//! every conversation, each wrapped by their own client and opaque here. A password change (or
//! an email change, which changes the key derivation's salt) makes the client re-wrap them all;
//! it reads them here and puts them back in one go, so history stays readable (docs/ARCHITECTURE.md).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::conversations::keys;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, replace))
}

/// The caller's private keys, by conversation id, as their client set them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct PrivateKeys {
    /// Conversation id → private key (any JSON value, as given to `set_encryption_keys` or
    /// when the conversation was started).
    #[schema(value_type = Object)]
    private_keys: BTreeMap<String, Value>,
}

/// # GET /api/encryption_keys
///
/// Every private key of the caller, one per conversation where they have keys.
#[utoipa::path(get, path = "/api/encryption_keys", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, body = PrivateKeys), (status = 401, body = ErrorBody)))]
async fn list(State(state): State<AppState>, auth: AuthUser) -> ApiResult<axum::Json<PrivateKeys>> {
    Ok(axum::Json(PrivateKeys { private_keys: keys::private_keys_of(&state, auth.user_id).await? }))
}

/// # PUT /api/encryption_keys
///
/// Replaces every private key of the caller at once. The keys must be exactly those of
/// `GET /api/encryption_keys` (one per conversation where the caller has keys): otherwise
/// 409 `keys_changed` and nothing changes.
#[utoipa::path(put, path = "/api/encryption_keys", tag = "conversations", security(("bearer" = [])),
    request_body = PrivateKeys,
    responses((status = 204, description = "replaced"), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn replace(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<PrivateKeys>,
) -> ApiResult<StatusCode> {
    keys::replace_all(&state, auth.user_id, &request.private_keys).await?;
    Ok(StatusCode::NO_CONTENT)
}
