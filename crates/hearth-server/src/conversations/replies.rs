//! How conversations and messages look to clients: one type per object, used by REST replies
//! and channel replies and pushes alike.

use std::collections::BTreeMap;

use hearth_store::{Conversation, StoredMessage, Timestamp};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// A conversation as seed 002 shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationSummary {
    /// Conversation id.
    pub id: Uuid,
    /// Private (two people) or group.
    pub private: bool,
    /// Group name, if set.
    #[schema(required)]
    pub alias: Option<String>,
    /// Created.
    #[schema(value_type = String, format = DateTime)]
    pub inserted_at: Timestamp,
    /// Last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Present (and true) only on the person's assistant conversation, which the server can
    /// read: it is not end-to-end encrypted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub assistant: bool,
}

impl From<&Conversation> for ConversationSummary {
    fn from(conversation: &Conversation) -> Self {
        Self {
            id: conversation.id,
            private: conversation.private,
            alias: conversation.alias.clone(),
            inserted_at: conversation.inserted_at,
            updated_at: conversation.updated_at,
            assistant: conversation.assistant,
        }
    }
}

/// The caller's copy of one message; channel pushes carry the same shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Message {
    /// This copy's id.
    pub id: Uuid,
    /// Who sent it.
    pub sender: Uuid,
    /// Ciphertext for the caller (plain text in the assistant conversation).
    pub content: String,
    /// When it was sent.
    #[schema(value_type = String, format = DateTime)]
    pub inserted_at: Timestamp,
    /// When it was last edited (the send time if never).
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// The message group: the same message in every recipient's copy.
    pub message_group: Uuid,
}

impl From<&StoredMessage> for Message {
    fn from(message: &StoredMessage) -> Self {
        Self {
            id: message.id,
            sender: message.sender,
            content: message.content.clone(),
            inserted_at: message.inserted_at,
            updated_at: message.updated_at,
            message_group: message.message_group,
        }
    }
}

/// A page of the caller's copies of a conversation's messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    /// The messages.
    pub items: Vec<Message>,
    /// Null on the last page.
    #[schema(required)]
    pub page_token: Option<String>,
}

/// A conversation and its members: the reply to starting or changing one, and the
/// `new_conversation` push to each member.
#[derive(Debug, Clone, Serialize)]
pub struct Announcement {
    /// The conversation.
    pub conversation: ConversationSummary,
    /// Every member.
    pub user_ids: Vec<Uuid>,
}

/// What a member gets on joining `conversation:{id}`.
#[derive(Debug, Serialize)]
pub struct JoinView {
    /// The conversation.
    pub conversation: ConversationSummary,
    /// Each member's last read time (null before their first).
    pub read_times: BTreeMap<Uuid, Option<Timestamp>>,
    /// (+) Each member's delivery time (null before anything reached their devices): every
    /// message inserted at or before it has reached one of them.
    pub delivered_times: BTreeMap<Uuid, Option<Timestamp>>,
    /// The first page of the member's messages.
    pub messages: MessagePage,
    /// Each member's public key, as their client set it.
    pub public_keys: BTreeMap<Uuid, Value>,
    /// The member's own private key (null when none or when it did not open).
    pub private_key: Value,
    /// (+) Every member's identity (its public form, docs/e2e.md; null for a member without
    /// one), by member id.
    pub identity_keys: BTreeMap<Uuid, Value>,
}

/// A message as one recipient's push: `new_message` and `edit_message` on `user:{id}`.
#[derive(Debug, Serialize)]
pub struct Delivered<'a> {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The recipient's copy.
    pub message: &'a Message,
}

/// The caller's conversations, each with what is new in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    /// The conversations.
    pub items: Vec<ListedConversation>,
}

/// A conversation with what is new in it for the caller: what a conversation list shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedConversation {
    #[serde(flatten)]
    pub conversation: ConversationSummary,
    /// Messages from others that arrived after the caller last read the conversation.
    pub unread: i64,
    /// When the newest message was sent; `null` before the first.
    #[schema(value_type = Option<String>, format = DateTime, required)]
    pub last_message_at: Option<hearth_store::Timestamp>,
}

/// The private conversation of two people, if they have one.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrivateConversation {
    /// Null when the two users share no private conversation.
    #[schema(required)]
    pub conversation_id: Option<Uuid>,
}
