//! `GET /api/encryption_keys` and `PUT /api/encryption_keys` (+): the caller's private keys of
//! every conversation, each wrapped by their own client and opaque here. A password change (or
//! an email change, which changes the key derivation's salt) makes the client re-wrap them all;
//! it reads them here and puts them back in one go, so history stays readable (DESIGN §6).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use hearth_store::{StoreError, Timestamp, private_key_row};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json};
use crate::realtime::conversation::{key_json, private_key_context};
use crate::realtime::events::MAX_KEY_BYTES;
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
    let mut private_keys = BTreeMap::new();
    for (conversation_id, sealed) in state.store.sealed_private_keys_of(auth.user_id).await? {
        let row = private_key_row(conversation_id, auth.user_id);
        let plain = state.vault.open(&sealed, private_key_context(&row)).map_err(ApiError::internal)?;
        private_keys.insert(conversation_id.to_string(), key_json(&String::from_utf8_lossy(&plain)));
    }
    Ok(axum::Json(PrivateKeys { private_keys }))
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
    let sealed = sealed(&state, auth.user_id, &request.private_keys)?;
    match state.store.replace_private_keys(auth.user_id, &sealed, Timestamp::now()).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(error) => Err(refused(error)),
    }
}

/// The private keys of a request, checked (conversation ids, set, at most [`MAX_KEY_BYTES`])
/// and sealed for their rows; problems are 422s naming `private_keys`.
pub(super) fn sealed(
    state: &AppState,
    user_id: Uuid,
    private_keys: &BTreeMap<String, Value>,
) -> ApiResult<Vec<(Uuid, Vec<u8>)>> {
    const FIELD: &str = "private_keys";
    let mut sealed = Vec::with_capacity(private_keys.len());
    for (conversation, private_key) in private_keys {
        let conversation_id: Uuid =
            conversation.parse().map_err(|_| ApiError::invalid(FIELD, "keys must be conversation ids"))?;
        let text = private_key.to_string();
        if private_key.is_null() || text.len() > MAX_KEY_BYTES {
            return Err(ApiError::invalid(
                FIELD,
                format!("each private key must be set and at most {MAX_KEY_BYTES} bytes"),
            ));
        }
        let row = private_key_row(conversation_id, user_id);
        sealed.push((conversation_id, state.vault.seal(text.as_bytes(), private_key_context(&row))));
    }
    Ok(sealed)
}

/// The answer to a store refusing a set of private keys that is not exactly the caller's.
pub(super) fn refused(error: StoreError) -> ApiError {
    match error {
        StoreError::Rule(_) => ApiError::Conflict {
            code: "keys_changed",
            message: "Send one key for each of your conversations: read GET /api/encryption_keys again.",
        },
        other => other.into(),
    }
}
