//! `conversation:{id}`: joining (members only) with the conversation, read times, the first
//! page of the member's messages, everyone's public keys and the member's own private key.

use std::collections::BTreeMap;

use hearth_store::{Conversation, MessageDelivery, NewMessageGroup, StoredMessage, Timestamp, private_key_row};
use hearth_vault::SealContext;
use phoenix_channels::server::Reply;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::events::{conversation_topic, parse, publish, seal_keys, store_error, user_topic};
use super::hub::Envelope;
use super::socket::Session;
use super::system::check_alias;
use crate::state::AppState;

/// Messages in the join reply and the default page of `GET /api/messages`.
pub const FIRST_PAGE: u32 = 50;

/// Where private keys are sealed (the vault's associated data).
pub fn private_key_context(row: &str) -> SealContext<'_> {
    SealContext { table: "encryption_keys", row, column: "private_key" }
}

/// A conversation as seed 002 shows it; an assistant conversation also says
/// `"assistant": true` (readable by the server, not end-to-end encrypted).
pub fn conversation_json(conversation: &Conversation) -> Value {
    let mut json = json!({
        "id": conversation.id,
        "private": conversation.private,
        "alias": conversation.alias,
        "inserted_at": conversation.inserted_at,
        "updated_at": conversation.updated_at,
    });
    if conversation.assistant {
        json["assistant"] = Value::Bool(true);
    }
    json
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
pub(crate) fn key_json(text: &str) -> Value {
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

/// Largest ciphertext for one recipient.
pub const MAX_CIPHERTEXT_BYTES: usize = 64 * 1024;

/// The refusal of an event from someone who is not (or no longer) a member.
const NOT_A_MEMBER: &str = "you are not a member of this conversation";

/// Events on `conversation:{id}`. Every event needs the sender to be a member now.
pub async fn handle_in(session: &mut Session, conversation_id: Uuid, event: &str, payload: Value) -> Reply {
    let me = session.auth.user_id;
    if event == "send_message" {
        // The hottest path: the store checks membership inside the send's own transaction,
        // so it skips the read every other event makes first.
        return send_message(&session.state, conversation_id, session.auth, payload)
            .await
            .unwrap_or_else(|refusal| refusal);
    }
    let members = match session.state.store.member_ids(conversation_id).await {
        Ok(members) => members,
        Err(error) => return store_error(error),
    };
    if !members.contains(&me) {
        return Reply::error(NOT_A_MEMBER);
    }
    let event_context = Event { state: &session.state, conversation_id, me, members };
    let result = match event {
        "edit_message" => event_context.edit_message(payload).await,
        "delete_message" => event_context.delete_message(payload).await,
        "start_typing" | "finish_typing" => event_context.typing(event).await,
        "read_conversation" => event_context.read().await,
        "change_alias" => event_context.change_alias(payload).await,
        "modify_conversation" => event_context.modify(payload).await,
        "leave_conversation" => event_context.leave().await,
        "set_encryption_keys" => event_context.set_keys(payload).await,
        _ => Err(Reply::error(format!("unknown event {event:?}"))),
    };
    result.unwrap_or_else(|refusal| refusal)
}

/// One event on one conversation by one member.
struct Event<'a> {
    state: &'a AppState,
    conversation_id: Uuid,
    me: Uuid,
    members: Vec<Uuid>,
}

#[derive(Deserialize)]
pub(crate) struct SendMessage {
    encrypted_messages: BTreeMap<Uuid, String>,
    client_msg_id: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct EditMessage {
    message_group_id: Uuid,
    encrypted_messages: BTreeMap<Uuid, String>,
}

#[derive(Deserialize)]
pub(crate) struct DeleteMessage {
    message_group_id: Uuid,
}

#[derive(Deserialize)]
pub(crate) struct ChangeAlias {
    alias: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ModifyConversation {
    new_members: Vec<Uuid>,
    alias: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct SetKeys {
    public_key: Value,
    private_key: Value,
}

fn check_ciphertexts(contents: &BTreeMap<Uuid, String>) -> Result<(), Reply> {
    if contents.values().any(|c| c.len() > MAX_CIPHERTEXT_BYTES) {
        return Err(Reply::error(format!("each encrypted message must be at most {MAX_CIPHERTEXT_BYTES} bytes")));
    }
    Ok(())
}

/// Pushes each recipient their own copy on their `user:{id}` topic.
pub(super) async fn deliver(state: &AppState, event: &str, delivery: &MessageDelivery) {
    for (recipient, message) in &delivery.messages {
        let payload = json!({ "conversation_id": delivery.conversation_id, "message": message_json(message) });
        publish(state, user_topic(*recipient), event, payload).await;
    }
}

async fn send_message(
    state: &AppState,
    conversation_id: Uuid,
    auth: crate::extract::AuthUser,
    payload: Value,
) -> Result<Reply, Reply> {
    let me = auth.user_id;
    let request: SendMessage = parse(payload)?;
    check_ciphertexts(&request.encrypted_messages)?;
    if request.client_msg_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > 100) {
        return Err(Reply::error("client_msg_id must be 1 to 100 characters"));
    }
    let message = NewMessageGroup {
        id: Uuid::now_v7(),
        conversation_id,
        sender: me,
        client_msg_id: request.client_msg_id,
        contents: request.encrypted_messages,
        now: Timestamp::now(),
    };
    // The reply is sent only after this commit: an acknowledged message is stored.
    let delivery = state.store.send_message(&message).await.map_err(|error| match error {
        hearth_store::StoreError::NotFound => Reply::error(NOT_A_MEMBER),
        other => store_error(other),
    })?;
    if delivery.fresh {
        deliver(state, "new_message", &delivery).await;
    }
    let mine = delivery.messages.get(&me);
    // Only a conversation where the sender is alone can be their assistant conversation: the
    // look-up is skipped for every other send.
    if let (true, 1, Some(prompt)) = (delivery.fresh, delivery.messages.len(), mine) {
        match state.store.conversation(conversation_id).await {
            Ok(Some(conversation)) if conversation.assistant => {
                let prompt = super::assistant::Prompt {
                    conversation_id,
                    user_id: me,
                    device_id: auth.device_id,
                    group: prompt.message_group,
                    text: prompt.content.clone(),
                };
                super::assistant::answer(state.clone(), prompt);
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "could not tell whether a conversation is the assistant's"),
        }
    }
    Ok(Reply::ok(json!({ "message": mine.map(message_json).unwrap_or(Value::Null) })))
}

impl Event<'_> {
    fn topic(&self) -> String {
        conversation_topic(self.conversation_id)
    }

    async fn edit_message(&self, payload: Value) -> Result<Reply, Reply> {
        let request: EditMessage = parse(payload)?;
        check_ciphertexts(&request.encrypted_messages)?;
        let delivery = self
            .state
            .store
            .edit_message(request.message_group_id, self.me, &request.encrypted_messages, Timestamp::now())
            .await
            .map_err(store_error)?;
        deliver(self.state, "edit_message", &delivery).await;
        Ok(Reply::ok(json!({})))
    }

    async fn delete_message(&self, payload: Value) -> Result<Reply, Reply> {
        let request: DeleteMessage = parse(payload)?;
        let group = request.message_group_id;
        // Only the sender may delete; the store says which conversation the group was in
        // (the sender's right does not depend on the channel the request came through).
        let conversation_id = self.state.store.delete_message(group, self.me).await.map_err(store_error)?;
        let members = if conversation_id == self.conversation_id {
            self.members.clone()
        } else {
            self.state.store.member_ids(conversation_id).await.map_err(store_error)?
        };
        let payload = json!({ "message_group_id": group });
        publish(self.state, conversation_topic(conversation_id), "delete_message", payload.clone()).await;
        for member in members {
            let to_user = json!({ "conversation_id": conversation_id, "message_group_id": group });
            publish(self.state, user_topic(member), "delete_message", to_user).await;
        }
        Ok(Reply::ok(payload))
    }

    async fn typing(&self, event: &str) -> Result<Reply, Reply> {
        publish(self.state, self.topic(), event, json!({ "user_id": self.me })).await;
        Ok(Reply::ok(json!({})))
    }

    async fn read(&self) -> Result<Reply, Reply> {
        let now = Timestamp::now();
        self.state.store.mark_read(self.conversation_id, self.me, now).await.map_err(store_error)?;
        publish(self.state, self.topic(), "read_conversation", json!({ "user_id": self.me, "read_at": now })).await;
        Ok(Reply::ok(json!({})))
    }

    async fn change_alias(&self, payload: Value) -> Result<Reply, Reply> {
        let request: ChangeAlias = parse(payload)?;
        let alias = check_alias(request.alias.as_deref())?;
        let conversation = self
            .state
            .store
            .set_alias(self.conversation_id, alias.as_deref(), Timestamp::now())
            .await
            .map_err(store_error)?;
        let payload = json!({ "conversation_id": self.conversation_id, "alias": conversation.alias });
        publish(self.state, self.topic(), "update_alias", payload).await;
        Ok(Reply::ok(json!({ "conversation": conversation_json(&conversation) })))
    }

    /// The assistant conversation keeps its one member: nobody is added, its owner cannot leave.
    async fn refuse_if_assistant(&self) -> Result<(), Reply> {
        let conversation = self.state.store.conversation(self.conversation_id).await.map_err(store_error)?;
        if conversation.is_some_and(|conversation| conversation.assistant) {
            return Err(Reply::error("the assistant conversation has no other members and cannot be left"));
        }
        Ok(())
    }

    async fn modify(&self, payload: Value) -> Result<Reply, Reply> {
        let request: ModifyConversation = parse(payload)?;
        self.refuse_if_assistant().await?;
        let alias = check_alias(request.alias.as_deref())?;
        let now = Timestamp::now();
        let mut conversation =
            self.state.store.add_members(self.conversation_id, &request.new_members, now).await.map_err(store_error)?;
        if request.alias.is_some() {
            conversation =
                self.state.store.set_alias(self.conversation_id, alias.as_deref(), now).await.map_err(store_error)?;
        }
        let members = self.state.store.member_ids(self.conversation_id).await.map_err(store_error)?;
        let announcement = json!({ "conversation": conversation_json(&conversation), "user_ids": members });
        for member in &members {
            publish(self.state, user_topic(*member), "new_conversation", announcement.clone()).await;
        }
        super::presence::introduce(self.state, &members).await;
        Ok(Reply::ok(announcement))
    }

    async fn leave(&self) -> Result<Reply, Reply> {
        self.refuse_if_assistant().await?;
        self.state.store.leave_conversation(self.conversation_id, self.me).await.map_err(store_error)?;
        publish(self.state, self.topic(), "leave_conversation", json!({ "user_id": self.me })).await;
        // The channel ends on every socket of the member, this one included (after the reply,
        // which the socket sends first): none of them hears the conversation any more.
        self.state.pubsub.publish(Envelope::CloseTopic { user: self.me, topic: self.topic() }).await;
        Ok(Reply::ok(json!({})))
    }

    async fn set_keys(&self, payload: Value) -> Result<Reply, Reply> {
        let request: SetKeys = parse(payload)?;
        let keys = seal_keys(self.state, self.conversation_id, self.me, &request.public_key, &request.private_key)?;
        self.state
            .store
            .set_encryption_keys(self.conversation_id, self.me, &keys, Timestamp::now())
            .await
            .map_err(store_error)?;
        let payload = json!({ "user_id": self.me, "public_key": request.public_key });
        publish(self.state, self.topic(), "set_encryption_keys", payload).await;
        Ok(Reply::ok(json!({})))
    }
}
