//! Members' conversation keys: public keys as their clients set them, private keys sealed by
//! the vault for their row (opaque to the server: each client wrapped its own first).

use std::collections::BTreeMap;

use hearth_store::{EncryptionKeys, IDENTITY_KEY_RULE, StoreError, Timestamp, private_key_row};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::vault::private_key_context;

/// Largest public or private key (JSON text) accepted.
pub const MAX_KEY_BYTES: usize = 16 * 1024;

/// Stored key text (JSON written by the client) back as JSON; text that is not JSON is
/// returned as a string rather than lost.
pub fn key_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Checks a key pair's size and seals the private key for its row.
pub fn seal(
    state: &AppState,
    conversation_id: Uuid,
    user_id: Uuid,
    public_key: &Value,
    private_key: &Value,
) -> ApiResult<EncryptionKeys> {
    let public_key = public_key.to_string();
    let private_key = private_key.to_string();
    if public_key.len() > MAX_KEY_BYTES || private_key.len() > MAX_KEY_BYTES {
        return Err(ApiError::refused("key_too_large", format!("keys must be at most {MAX_KEY_BYTES} bytes")));
    }
    let row = private_key_row(conversation_id, user_id);
    let sealed_private_key = state.vault.seal(private_key.as_bytes(), private_key_context(&row));
    Ok(EncryptionKeys { public_key, sealed_private_key })
}

/// The member's own private key of a conversation, opened; null when there is none or it
/// does not open (logged: the vault's keys and the database disagree).
pub async fn own_private_key(state: &AppState, conversation_id: Uuid, user_id: Uuid) -> ApiResult<Value> {
    let Some(sealed) = state.store.sealed_private_key(conversation_id, user_id).await? else {
        return Ok(Value::Null);
    };
    let row = private_key_row(conversation_id, user_id);
    match state.vault.open(&sealed, private_key_context(&row)) {
        Ok(plain) => Ok(key_json(&String::from_utf8_lossy(&plain))),
        Err(error) => {
            tracing::error!(%error, conversation = %conversation_id, "a sealed private key did not open");
            Ok(Value::Null)
        }
    }
}

/// Every private key of the user, by conversation id.
pub async fn private_keys_of(state: &AppState, user_id: Uuid) -> ApiResult<BTreeMap<String, Value>> {
    let mut private_keys = BTreeMap::new();
    for (conversation_id, sealed) in state.store.sealed_private_keys_of(user_id).await? {
        let row = private_key_row(conversation_id, user_id);
        let plain = state.vault.open(&sealed, private_key_context(&row)).map_err(ApiError::internal)?;
        private_keys.insert(conversation_id.to_string(), key_json(&String::from_utf8_lossy(&plain)));
    }
    Ok(private_keys)
}

/// A full set of private keys of a user (re-wrapped by their client), checked (conversation
/// ids, set, at most [`MAX_KEY_BYTES`]) and sealed for their rows; problems are 422s naming
/// `private_keys`.
pub fn seal_all(
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

/// Replaces every private key of the user at once (409 `keys_changed` unless the set is
/// exactly theirs).
pub async fn replace_all(state: &AppState, user_id: Uuid, private_keys: &BTreeMap<String, Value>) -> ApiResult<()> {
    let sealed = seal_all(state, user_id, private_keys)?;
    state.store.replace_private_keys(user_id, &sealed, Timestamp::now()).await.map_err(not_exactly_theirs)
}

/// The answer to a store refusing a set of private keys that is not exactly the user's (their
/// identity's private key among them, when re-keying).
pub fn not_exactly_theirs(error: StoreError) -> ApiError {
    match error {
        StoreError::Rule(IDENTITY_KEY_RULE) => ApiError::Conflict {
            code: "keys_changed",
            message: "Send identity_private_key re-wrapped exactly when your account has an identity: read GET /api/me again.",
        },
        StoreError::Rule(_) => ApiError::Conflict {
            code: "keys_changed",
            message: "Send one key for each of your conversations: read GET /api/encryption_keys again.",
        },
        other => other.into(),
    }
}
