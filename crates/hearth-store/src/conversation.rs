//! Conversations, their members and keys, and messages: rows of the real-time layer.
//!
//! Message content and keys are opaque to the server: ciphertext and JWKs written by
//! clients (DESIGN §6). Private-key blobs arrive here already sealed with the vault key.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::Timestamp;

/// A private (two people) or group conversation, or a person's assistant conversation.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Conversation {
    /// Conversation id (UUIDv7).
    pub id: Uuid,
    /// Private conversations have exactly two members, no alias, and cannot be left.
    pub private: bool,
    /// Group name.
    pub alias: Option<String>,
    /// Created.
    pub inserted_at: Timestamp,
    /// Last changed (alias, members).
    pub updated_at: Timestamp,
    /// A person's assistant conversation: readable by the server, its owner the only member,
    /// the assistant's replies sent by [`ASSISTANT_SENDER`].
    pub assistant: bool,
}

/// What is new for one member in one conversation.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConversationActivity {
    /// The conversation.
    pub conversation_id: Uuid,
    /// Messages from others, with a copy for this member, sent after the member's read time
    /// (all of them if the member never read it).
    pub unread: i64,
    /// When the newest message was sent, if any was.
    pub last_message_at: Option<Timestamp>,
}

/// The sender of the assistant's replies: a fixed id that is no user's.
pub const ASSISTANT_SENDER: Uuid = Uuid::from_u128(0x0000_0000_0000_0000_0000_0000_a551_0001);

/// One member's keys for one conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct EncryptionKeys {
    /// The public key as the client sent it (JSON text, e.g. a JWK).
    pub public_key: String,
    /// The private key as the client sent it (JSON text), sealed by the vault.
    pub sealed_private_key: Vec<u8>,
}

/// A conversation to create, with its creator's keys.
#[derive(Debug, Clone)]
pub struct NewConversation {
    /// New id.
    pub id: Uuid,
    /// Private or group.
    pub private: bool,
    /// Group name (always `None` for private conversations).
    pub alias: Option<String>,
    /// Who starts it; a member.
    pub creator: Uuid,
    /// Every member, the creator included, without duplicates.
    pub members: Vec<Uuid>,
    /// The creator's keys.
    pub creator_keys: EncryptionKeys,
    /// Now.
    pub now: Timestamp,
}

/// A message as one recipient sees it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredMessage {
    /// The per-recipient message id.
    pub id: Uuid,
    /// The group: one send, one row per recipient.
    pub message_group: Uuid,
    /// Who sent it.
    pub sender: Uuid,
    /// Ciphertext for this recipient.
    pub content: String,
    /// Sent.
    pub inserted_at: Timestamp,
    /// Last edited.
    pub updated_at: Timestamp,
}

/// A send: one ciphertext per member.
#[derive(Debug, Clone)]
pub struct NewMessageGroup {
    /// New group id (UUIDv7; also orders history).
    pub id: Uuid,
    /// Conversation.
    pub conversation_id: Uuid,
    /// Sender; must be a member.
    pub sender: Uuid,
    /// The client's own id for this send: a resend with the same id from the same sender in
    /// the same conversation returns the first send instead of storing it twice.
    pub client_msg_id: Option<String>,
    /// Ciphertext per recipient; the recipients must be exactly the current members.
    pub contents: BTreeMap<Uuid, String>,
    /// Now.
    pub now: Timestamp,
}

/// What a send (or edit) stored: each recipient's copy.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDelivery {
    /// Conversation.
    pub conversation_id: Uuid,
    /// Each recipient's message, by recipient.
    pub messages: BTreeMap<Uuid, StoredMessage>,
    /// False when this was a resend of an earlier `client_msg_id`: nothing new was stored.
    pub fresh: bool,
}

/// A sealed private key as rotation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedKeyRow {
    /// Conversation.
    pub conversation_id: Uuid,
    /// Member.
    pub user_id: Uuid,
    /// The sealed blob.
    pub sealed_private_key: Vec<u8>,
}

/// The place a private key is sealed for (the vault's associated data), so a blob copied
/// to another row does not open.
pub fn private_key_row(conversation_id: Uuid, user_id: Uuid) -> String {
    format!("{conversation_id}:{user_id}")
}
