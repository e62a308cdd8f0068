//! `conversation:{id}`: joining (members only) with the conversation, read times, the first
//! page of the member's messages, everyone's public keys and the member's own private key.

use hearth_store::{Conversation, StoredMessage, Timestamp, private_key_row};
use hearth_vault::SealContext;
use phoenix_channels::server::Reply;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::socket::Session;
use crate::state::AppState;

/// Messages in the join reply and the default page of `GET /api/messages`.
pub const FIRST_PAGE: u32 = 50;

/// Where private keys are sealed (the vault's associated data).
pub fn private_key_context(row: &str) -> SealContext<'_> {
    SealContext { table: "encryption_keys", row, column: "private_key" }
}

/// A conversation as seed 002 shows it.
pub fn conversation_json(conversation: &Conversation) -> Value {
    json!({
        "id": conversation.id,
        "private": conversation.private,
        "alias": conversation.alias,
        "inserted_at": conversation.inserted_at,
        "updated_at": conversation.updated_at,
    })
}

/// A message as one recipient sees it.
pub fn message_json(message: &StoredMessage) -> Value {
    json!({
        "id": message.id,
        "sender": message.sender,
        "content": message.content,
        "inserted_at": message.inserted_at,
        "updated_at": message.updated_at,
        "message_group": message.message_group,
    })
}

/// The listing name page tokens of a conversation's history are bound to.
fn listing(conversation_id: Uuid) -> String {
    format!("messages:{conversation_id}")
}

/// One page of the recipient's history, newest first: `{"items": […], "page_token": …}`.
pub async fn messages_page(
    state: &AppState,
    conversation_id: Uuid,
    recipient: Uuid,
    before: Option<Uuid>,
    size: u32,
) -> Result<Value, hearth_store::StoreError> {
    let mut messages = state.store.messages_page(conversation_id, recipient, before, size + 1).await?;
    let page_token = if messages.len() > size as usize {
        messages.truncate(size as usize);
        messages.last().map(|last| state.page_tokens.encode(&listing(conversation_id), last.message_group.as_bytes()))
    } else {
        None
    };
    Ok(json!({ "items": messages.iter().map(message_json).collect::<Vec<_>>(), "page_token": page_token }))
}

/// The `before` cursor inside a history page token.
pub fn page_cursor(state: &AppState, conversation_id: Uuid, token: &str) -> Result<Uuid, crate::ApiError> {
    let cursor = state.page_tokens.decode(&listing(conversation_id), token)?;
    Uuid::from_slice(&cursor)
        .map_err(|_| crate::ApiError::bad_request("invalid_page_token", "The page token is invalid."))
}

/// Stored key text (JSON written by the client) back as JSON; text that is not JSON is
/// returned as a string rather than lost.
fn key_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Joins `conversation:{id}` if the user is a member.
pub async fn join(session: &Session, conversation_id: Uuid) -> Result<Value, String> {
    let state = &session.state;
    let user = session.auth.user_id;
    let unavailable = |error: hearth_store::StoreError| {
        tracing::error!(%error, "conversation join failed");
        "temporarily unavailable".to_owned()
    };
    let members = state.store.member_ids(conversation_id).await.map_err(unavailable)?;
    // Not a member and no such conversation get the same answer.
    let not_found = || "conversation not found".to_owned();
    if !members.contains(&user) {
        return Err(not_found());
    }
    let conversation = state.store.conversation(conversation_id).await.map_err(unavailable)?.ok_or_else(not_found)?;
    let read_times: Map<String, Value> = state
        .store
        .read_times(conversation_id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|(member, read_at)| (member.to_string(), read_at.map_or(Value::Null, |t: Timestamp| json!(t))))
        .collect();
    let public_keys: Map<String, Value> = state
        .store
        .public_keys(conversation_id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|(member, key)| (member.to_string(), key_json(&key)))
        .collect();
    let private_key = match state.store.sealed_private_key(conversation_id, user).await.map_err(unavailable)? {
        None => Value::Null,
        Some(sealed) => {
            let row = private_key_row(conversation_id, user);
            match state.vault.open(&sealed, private_key_context(&row)) {
                Ok(plain) => key_json(&String::from_utf8_lossy(&plain)),
                Err(error) => {
                    tracing::error!(%error, conversation = %conversation_id, "a sealed private key did not open");
                    Value::Null
                }
            }
        }
    };
    let messages = messages_page(state, conversation_id, user, None, FIRST_PAGE).await.map_err(unavailable)?;
    Ok(json!({
        "conversation": conversation_json(&conversation),
        "read_times": read_times,
        "messages": messages,
        "public_keys": public_keys,
        "private_key": private_key,
    }))
}

/// Events on `conversation:{id}`.
pub async fn handle_in(_session: &mut Session, _conversation_id: Uuid, event: &str, _payload: Value) -> Reply {
    Reply::error(format!("unknown event {event:?}"))
}
