//! Typed calls for the end-to-end encrypted flow (docs/phoenix.md and docs/ARCHITECTURE.md): thin wrappers that
//! build the payloads `system:general` and `conversation:{id}` expect and read their replies.
//! Keys and message contents are opaque text to the server; [`crate::e2e`] makes them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ChannelError, Socket};
use crate::api::{Conversation, Message, MessagePage};

/// The topic every user joins: presence, renaming oneself and starting conversations.
pub const SYSTEM_TOPIC: &str = "system:general";

/// A user's own topic (`new_conversation`, `new_message`, `edit_message`,
/// `delete_message`); only that user may join it.
pub fn user_topic(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

/// A conversation's topic; only its members may join it.
pub fn conversation_topic(conversation_id: Uuid) -> String {
    format!("conversation:{conversation_id}")
}

/// A conversation just started, as its reply and every member's `new_conversation` say.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NewConversation {
    /// The conversation.
    pub conversation: Conversation,
    /// Its members.
    pub user_ids: Vec<Uuid>,
}

/// The reply to joining `conversation:{id}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JoinedConversation {
    /// The conversation.
    pub conversation: Conversation,
    /// The newest page of the member's own copies of the messages.
    pub messages: MessagePage,
    /// Each member's public JWK text, for the members who set keys.
    #[serde(deserialize_with = "key_texts")]
    pub public_keys: BTreeMap<Uuid, String>,
    /// The member's own wrapped private key ([`crate::e2e::unwrap_private_key`]), if set.
    #[serde(deserialize_with = "key_text")]
    pub private_key: Option<String>,
    /// When each member last read the conversation.
    pub read_times: BTreeMap<Uuid, Option<DateTime<Utc>>>,
    /// When each member's devices last received the conversation: every message inserted at
    /// or before it reached one of them (absent from servers before delivery receipts).
    #[serde(default)]
    pub delivered_times: BTreeMap<Uuid, Option<DateTime<Utc>>>,
    /// Each member's published identity key (null for a member whose client made none yet).
    #[serde(default)]
    pub identity_keys: BTreeMap<Uuid, Option<Value>>,
}

/// A message delivered on the recipient's `user:{id}` topic (`new_message`, `edit_message`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeliveredMessage {
    /// The conversation it is in.
    pub conversation_id: Uuid,
    /// The recipient's own copy.
    pub message: Message,
}

#[derive(Serialize)]
struct Keys<'a> {
    public_key: &'a str,
    private_key: &'a str,
}

impl Socket {
    /// `start_private_conversation` on [`SYSTEM_TOPIC`] (joined first): the conversation
    /// `conversation_id` (chosen by the caller, so the key is wrapped and signed for it from
    /// the start; a new `Uuid::now_v7()`) with `other_user_id`, with the caller's public key
    /// and wrapped private key ([`crate::trust::Keyring::start_conversation`] makes all three).
    pub async fn start_private_conversation(
        &self,
        conversation_id: Uuid,
        other_user_id: Uuid,
        public_key: &str,
        wrapped_private_key: &str,
    ) -> Result<NewConversation, ChannelError> {
        let payload = json!({
            "conversation_id": conversation_id,
            "other_user_id": other_user_id,
            "public_key": public_key,
            "private_key": wrapped_private_key,
        });
        typed(self.push(SYSTEM_TOPIC, "start_private_conversation", payload).await?)
    }

    /// `start_group_conversation` on [`SYSTEM_TOPIC`] (joined first): a group of the caller
    /// and `user_ids` (the caller may be among them; repeats count once), named `alias` if
    /// given (at most 100 characters), with the caller's public key and wrapped private key
    /// for `conversation_id`, chosen by the caller as for
    /// [`start_private_conversation`](Self::start_private_conversation). Every member receives
    /// `new_conversation` on their user topic.
    pub async fn start_group_conversation(
        &self,
        conversation_id: Uuid,
        user_ids: &[Uuid],
        alias: Option<&str>,
        public_key: &str,
        wrapped_private_key: &str,
    ) -> Result<NewConversation, ChannelError> {
        let payload = json!({
            "conversation_id": conversation_id,
            "user_ids": user_ids,
            "alias": alias,
            "public_key": public_key,
            "private_key": wrapped_private_key,
        });
        typed(self.push(SYSTEM_TOPIC, "start_group_conversation", payload).await?)
    }

    /// `start_assistant_conversation` on [`SYSTEM_TOPIC`] (joined first): the caller's
    /// conversation with the assistant, made on first use (and then announced as
    /// `new_conversation`), the same one afterwards. It is not end-to-end encrypted (its
    /// [`Conversation::assistant`] is true): prompts are sent as plain text with
    /// [`send_prompt`](Self::send_prompt), and the reply streams as
    /// [`AssistantDelta`](super::AssistantDelta)s on its topic before it arrives as an
    /// ordinary `new_message`.
    pub async fn start_assistant_conversation(&self) -> Result<NewConversation, ChannelError> {
        typed(self.push(SYSTEM_TOPIC, "start_assistant_conversation", json!({})).await?)
    }

    /// A prompt in the (joined) assistant conversation: a `send_message` whose one copy, for
    /// the caller, is the plain text. The reply is the caller's stored prompt.
    pub async fn send_prompt(&self, conversation_id: Uuid, me: Uuid, prompt: &str) -> Result<Message, ChannelError> {
        self.send_message(conversation_id, None, &BTreeMap::from([(me, prompt.to_owned())])).await
    }

    /// `modify_conversation` on a joined group: adds `new_members` and, if given, renames it.
    /// Every member (old and new) receives the conversation with its members as
    /// `new_conversation`; the reply is the same. New members set their own keys when they
    /// join; until then nobody can send (every message needs a copy for each member).
    /// Private and assistant conversations refuse it.
    pub async fn add_members(
        &self,
        conversation_id: Uuid,
        new_members: &[Uuid],
        alias: Option<&str>,
    ) -> Result<NewConversation, ChannelError> {
        let mut payload = json!({ "new_members": new_members });
        if let Some(alias) = alias {
            payload["alias"] = json!(alias);
        }
        typed(self.push(&conversation_topic(conversation_id), "modify_conversation", payload).await?)
    }

    /// `change_alias` on a joined group: renames it (`None` or blank removes the name). The
    /// joined members see `update_alias` with `{conversation_id, alias}`; the reply is the
    /// renamed conversation. Private conversations refuse it.
    pub async fn change_alias(&self, conversation_id: Uuid, alias: Option<&str>) -> Result<Conversation, ChannelError> {
        let reply = self.push(&conversation_topic(conversation_id), "change_alias", json!({ "alias": alias })).await?;
        typed(reply.get("conversation").cloned().unwrap_or(Value::Null))
    }

    /// `leave_conversation`: the caller leaves a group. The joined members see
    /// `leave_conversation` with `{user_id}`; the server then closes the caller's channel on
    /// the conversation (`phx_close`), so it is not rejoined after a reconnect. Private and
    /// assistant conversations cannot be left.
    pub async fn leave_conversation(&self, conversation_id: Uuid) -> Result<(), ChannelError> {
        self.push(&conversation_topic(conversation_id), "leave_conversation", json!({})).await.map(drop)
    }

    /// `set_hidden` on [`SYSTEM_TOPIC`] (joined first): a hidden user is shown to nobody in
    /// presence (their partners see them leave) but keeps working normally.
    pub async fn set_hidden(&self, hidden: bool) -> Result<(), ChannelError> {
        self.push(SYSTEM_TOPIC, "set_hidden", json!({ "hidden": hidden })).await.map(drop)
    }

    /// `set_display_name` on [`SYSTEM_TOPIC`] (joined first): 1 to 100 characters without
    /// control characters. Everyone on the topic receives `set_display_name` with
    /// `{user_id, display_name}`.
    pub async fn set_display_name(&self, display_name: &str) -> Result<(), ChannelError> {
        self.push(SYSTEM_TOPIC, "set_display_name", json!({ "display_name": display_name })).await.map(drop)
    }

    /// Joins `conversation:{id}` (members only).
    pub async fn join_conversation(&self, conversation_id: Uuid) -> Result<JoinedConversation, ChannelError> {
        typed(self.join(&conversation_topic(conversation_id), json!({})).await?)
    }

    /// `set_encryption_keys` on the joined conversation: the caller's public JWK and private
    /// key wrapped for this conversation ([`crate::e2e::wrap_private_key`]).
    pub async fn set_encryption_keys(
        &self,
        conversation_id: Uuid,
        public_jwk: &str,
        wrapped_private_key: &str,
    ) -> Result<(), ChannelError> {
        let payload = serde_json::to_value(Keys { public_key: public_jwk, private_key: wrapped_private_key })
            .expect("keys serialize");
        self.push(&conversation_topic(conversation_id), "set_encryption_keys", payload).await.map(drop)
    }

    /// `send_message` on the joined conversation: one ciphertext per current member (the
    /// sender included), as [`crate::trust::Keyring::seal`] makes them, under the message
    /// group id the sender chose (inside the ciphertexts too; `None` lets the server choose,
    /// for plain text). The reply is the sender's own stored copy; each member receives theirs
    /// as `new_message` on their user topic.
    pub async fn send_message(
        &self,
        conversation_id: Uuid,
        message_group_id: Option<Uuid>,
        encrypted_messages: &BTreeMap<Uuid, String>,
    ) -> Result<Message, ChannelError> {
        let mut payload = json!({ "encrypted_messages": encrypted_messages });
        if let Some(id) = message_group_id {
            payload["message_group_id"] = json!(id);
            // A resend after a lost reply is recognised by the server, not stored twice.
            payload["client_msg_id"] = json!(id);
        }
        let reply = self.push(&conversation_topic(conversation_id), "send_message", payload).await?;
        typed(reply.get("message").cloned().unwrap_or(Value::Null))
    }

    /// `edit_message` (the sender only): new ciphertexts for every current member, as for
    /// [`send_message`](Self::send_message). Each member receives theirs as `edit_message` on
    /// their user topic.
    pub async fn edit_message(
        &self,
        conversation_id: Uuid,
        message_group_id: Uuid,
        encrypted_messages: &BTreeMap<Uuid, String>,
    ) -> Result<(), ChannelError> {
        let payload = json!({ "message_group_id": message_group_id, "encrypted_messages": encrypted_messages });
        self.push(&conversation_topic(conversation_id), "edit_message", payload).await.map(drop)
    }

    /// `delete_message` (the sender only): every member receives `delete_message` on their
    /// user topic.
    pub async fn delete_message(&self, conversation_id: Uuid, message_group_id: Uuid) -> Result<(), ChannelError> {
        let payload = json!({ "message_group_id": message_group_id });
        self.push(&conversation_topic(conversation_id), "delete_message", payload).await.map(drop)
    }

    /// `start_typing` (`typing: true`) or `finish_typing`: broadcast to the conversation's
    /// joined members as `{user_id}`.
    pub async fn typing(&self, conversation_id: Uuid, typing: bool) -> Result<(), ChannelError> {
        let event = if typing { "start_typing" } else { "finish_typing" };
        self.push(&conversation_topic(conversation_id), event, json!({})).await.map(drop)
    }

    /// `read_conversation`: marks the conversation read now; joined members see
    /// `{user_id, read_at}`.
    pub async fn read_conversation(&self, conversation_id: Uuid) -> Result<(), ChannelError> {
        self.push(&conversation_topic(conversation_id), "read_conversation", json!({})).await.map(drop)
    }

    /// `delivered_conversation` on `user:{me}` (joined first): this device received the
    /// conversation's messages up to now, a delivery receipt; the conversation's joined members
    /// see `{user_id, delivered_at}`. Send it when a `new_message` arrives from someone else,
    /// and at sign-in for each conversation with unread messages.
    pub async fn delivered_conversation(&self, me: Uuid, conversation_id: Uuid) -> Result<(), ChannelError> {
        let payload = json!({ "conversation_id": conversation_id });
        self.push(&user_topic(me), "delivered_conversation", payload).await.map(drop)
    }
}

/// A reply as its type; a reply of another shape is a protocol error, reported as refused.
pub(super) fn typed<T: DeserializeOwned>(value: Value) -> Result<T, ChannelError> {
    serde_json::from_value(value)
        .map_err(|error| ChannelError::Refused { reason: format!("unexpected reply from the server: {error}") })
}

/// Key text: stored as the client sent it, so a string stays a string; any other JSON
/// value (an object JWK from another client) is kept as its JSON text.
pub(super) fn as_key_text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text),
        other => Some(other.to_string()),
    }
}

fn key_texts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<Uuid, String>, D::Error> {
    let keys = BTreeMap::<Uuid, Value>::deserialize(deserializer)?;
    Ok(keys.into_iter().filter_map(|(user, key)| Some((user, as_key_text(key)?))).collect())
}

fn key_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(as_key_text(Value::deserialize(deserializer)?))
}
