//! What channel event handlers share: parsing payloads into typed requests (errors name
//! fields, never values), turning failures into error replies, sealing private keys, and
//! publishing to topics.

use hearth_store::{EncryptionKeys, StoreError, private_key_row};
use phoenix_channels::server::Reply;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::conversation::private_key_context;
use super::hub::Envelope;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest public or private key (JSON text) accepted.
pub const MAX_KEY_BYTES: usize = 16 * 1024;

/// A payload as a typed request, or an error reply saying which field is wrong.
pub fn parse<T: DeserializeOwned>(payload: Value) -> Result<T, Reply> {
    let bytes = serde_json::to_vec(&payload).expect("a JSON value serializes");
    crate::extract::parse_json(&bytes).map_err(|error| match error {
        ApiError::Invalid(fields) => {
            let problems: Vec<String> =
                fields.iter().map(|(field, problems)| format!("{field}: {}", problems.join(", "))).collect();
            Reply::error(format!("invalid payload: {}", problems.join("; ")))
        }
        _ => Reply::error("invalid payload"),
    })
}

/// The error reply for a store failure; internal failures are logged, not described.
pub fn store_error(error: StoreError) -> Reply {
    match error {
        StoreError::NotFound => Reply::error("not found"),
        StoreError::Rule(rule) => Reply::error(rule),
        StoreError::Conflict("private_conversation") => {
            Reply::error("a private conversation with this user already exists")
        }
        StoreError::Conflict(what) => Reply::error(format!("{what} already exists")),
        other => {
            tracing::error!(error = %other, "channel event failed");
            Reply::error("temporarily unavailable")
        }
    }
}

/// Checks a key's size and seals the private key for its row.
pub fn seal_keys(
    state: &AppState,
    conversation_id: Uuid,
    user_id: Uuid,
    public_key: &Value,
    private_key: &Value,
) -> Result<EncryptionKeys, Reply> {
    let public_key = public_key.to_string();
    let private_key = private_key.to_string();
    if public_key.len() > MAX_KEY_BYTES || private_key.len() > MAX_KEY_BYTES {
        return Err(Reply::error(format!("keys must be at most {MAX_KEY_BYTES} bytes")));
    }
    let row = private_key_row(conversation_id, user_id);
    let sealed_private_key = state.vault.seal(private_key.as_bytes(), private_key_context(&row));
    Ok(EncryptionKeys { public_key, sealed_private_key })
}

/// Publishes `event` with `payload` to everyone who joined `topic`.
pub async fn publish(state: &AppState, topic: String, event: &str, payload: Value) {
    state.pubsub.publish(Envelope::Broadcast { topic, event: event.to_owned(), payload }).await;
}

/// The `user:{id}` topic of a user.
pub fn user_topic(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

/// The `conversation:{id}` topic.
pub fn conversation_topic(conversation_id: Uuid) -> String {
    format!("conversation:{conversation_id}")
}
