//! Conversations, their members and keys, and messages: the rows of the real-time layer.
//!
//! Message content and keys are opaque to the server: ciphertext and JWKs written by
//! clients (docs/ARCHITECTURE.md). Private-key blobs arrive here already sealed with the vault key.
//!
//! [`ConversationStore`] is the area's part of the [`Store`](crate::Store) contract; the SQL
//! below is what both backends run for it (`sqlite/conversations.rs`,
//! `postgres/conversations.rs`), but for the row locks, which only PostgreSQL takes, and sends,
//! which each backend batches its own way (`sqlite/sends.rs`, `postgres/sends.rs`).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use uuid::Uuid;

use crate::{StoreError, StoreResult, Timestamp, UserSummary};

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
    /// Where the message sits in its conversation's history: its group's
    /// [`NewMessageGroup::history_key`]. History pages are ordered, and continued, by it.
    pub history_key: Uuid,
}

/// A send: one ciphertext per member.
#[derive(Debug, Clone)]
pub struct NewMessageGroup {
    /// New group id (a UUIDv7), or the one the client chose.
    pub id: Uuid,
    /// Where the group sits in its conversation's history: a UUIDv7 the server makes as it
    /// stores the send (`id` itself when the server made that), so that no id a client chooses
    /// moves its message in anyone's history.
    pub history_key: Uuid,
    /// Whether the client chose `id` (so it may be in use already): such an id is looked up,
    /// and one that a stored group, or an earlier send stored in the same batch, has is
    /// refused with [`StoreError::Conflict`]`("message_group_id")`. A UUIDv7 the server just
    /// made is new by construction and skips the look-up.
    pub client_chose_id: bool,
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

/// Conversations, their members and keys, and messages.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Creates a conversation with its members and the creator's keys.
    /// [`StoreError::Conflict`]`("private_conversation")` if the two people already share a
    /// private conversation; [`StoreError::NotFound`] if a member does not exist.
    async fn create_conversation(&self, conversation: &NewConversation) -> StoreResult<Conversation>;

    /// A conversation by id.
    async fn conversation(&self, id: Uuid) -> StoreResult<Option<Conversation>>;

    /// The user's conversations, oldest first.
    async fn conversations_of(&self, user_id: Uuid) -> StoreResult<Vec<Conversation>>;

    /// What is new for the user in each of their conversations, in the order of
    /// [`ConversationStore::conversations_of`]: how many messages from others (with a copy
    /// for the user) arrived after their read time, and when the last message arrived.
    async fn conversation_activity(&self, user_id: Uuid) -> StoreResult<Vec<ConversationActivity>>;

    /// The members of a conversation, in the order they joined.
    async fn member_ids(&self, conversation_id: Uuid) -> StoreResult<Vec<Uuid>>;

    /// Everyone who shares at least one conversation with the user (not the user).
    async fn conversation_partners(&self, user_id: Uuid) -> StoreResult<Vec<UserSummary>>;

    /// The public form of each member's identity (`None` for a member without one), in the
    /// order they joined.
    async fn member_identity_keys(&self, conversation_id: Uuid) -> StoreResult<Vec<(Uuid, Option<String>)>>;

    /// The private conversation between two users, if there is one.
    async fn private_conversation_between(&self, a: Uuid, b: Uuid) -> StoreResult<Option<Uuid>>;

    /// Members' last read times (`None`: never read).
    async fn read_times(&self, conversation_id: Uuid) -> StoreResult<Vec<(Uuid, Option<Timestamp>)>>;

    /// Records that the member has read the conversation up to now.
    /// [`StoreError::NotFound`] if they are not a member.
    async fn mark_read(&self, conversation_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<()>;

    /// Members' delivery times (`None`: nothing received yet): every message group inserted at
    /// or before a member's time has reached one of their devices.
    async fn delivered_times(&self, conversation_id: Uuid) -> StoreResult<Vec<(Uuid, Option<Timestamp>)>>;

    /// Records that the member's device has received the conversation up to `now`; a time
    /// earlier than the one recorded changes nothing. [`StoreError::NotFound`] if they are not
    /// a member.
    async fn mark_delivered(&self, conversation_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<()>;

    /// Sets or clears a group's alias. [`StoreError::Rule`] for a private conversation.
    async fn set_alias(&self, conversation_id: Uuid, alias: Option<&str>, now: Timestamp) -> StoreResult<Conversation>;

    /// Adds members to a group (members already in it are ignored). [`StoreError::Rule`] for
    /// a private conversation; [`StoreError::NotFound`] for an unknown user.
    async fn add_members(&self, conversation_id: Uuid, users: &[Uuid], now: Timestamp) -> StoreResult<Conversation>;

    /// Removes a member from a group, with their keys. [`StoreError::Rule`] for a private
    /// conversation; [`StoreError::NotFound`] if they are not a member.
    async fn leave_conversation(&self, conversation_id: Uuid, user_id: Uuid) -> StoreResult<()>;

    /// Sets (or replaces) a member's keys. [`StoreError::NotFound`] if not a member.
    async fn set_encryption_keys(
        &self,
        conversation_id: Uuid,
        user_id: Uuid,
        keys: &EncryptionKeys,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Every member's public key, for members who have set keys.
    async fn public_keys(&self, conversation_id: Uuid) -> StoreResult<Vec<(Uuid, String)>>;

    /// The member's sealed private key, if set.
    async fn sealed_private_key(&self, conversation_id: Uuid, user_id: Uuid) -> StoreResult<Option<Vec<u8>>>;

    /// Every sealed private key of `user_id`, by conversation (ordered by conversation id).
    async fn sealed_private_keys_of(&self, user_id: Uuid) -> StoreResult<Vec<(Uuid, Vec<u8>)>>;

    /// Replaces all of `user_id`'s sealed private keys at once (after a password change the
    /// client re-wraps every one). `keys` must name exactly the conversations where the user has
    /// a key, each once: otherwise [`StoreError::Rule`] and nothing changes.
    async fn replace_private_keys(&self, user_id: Uuid, keys: &[(Uuid, Vec<u8>)], now: Timestamp) -> StoreResult<()>;

    /// Stores a send: [`StoreError::NotFound`] if the sender is not a member;
    /// [`StoreError::Rule`] unless the recipients are exactly the current members;
    /// [`StoreError::Conflict`]`("message_group_id")` if the client chose a group id that is
    /// in use (nothing is stored). A resend with an earlier `client_msg_id` returns the earlier
    /// delivery (`fresh: false`), whatever group id it carries. Sends
    /// that arrive together are committed together (group commit); each has its own outcome,
    /// the one it would have had alone, and returns once it is committed.
    async fn send_message(&self, message: &NewMessageGroup) -> StoreResult<MessageDelivery>;

    /// Replaces every copy of a message group with new ciphertext. [`StoreError::NotFound`]
    /// unless `sender` sent it and is still a member of its conversation; [`StoreError::Rule`] unless the recipients are exactly the
    /// current members.
    async fn edit_message(
        &self,
        message_group: Uuid,
        sender: Uuid,
        contents: &BTreeMap<Uuid, String>,
        now: Timestamp,
    ) -> StoreResult<MessageDelivery>;

    /// Deletes every copy of a message group; returns its conversation.
    /// [`StoreError::NotFound`] unless `sender` sent it and is still a member of its
    /// conversation.
    async fn delete_message(&self, message_group: Uuid, sender: Uuid) -> StoreResult<Uuid>;

    /// The recipient's copies, newest first (by [`StoredMessage::history_key`]), before the
    /// history key `before` (exclusive).
    async fn messages_page(
        &self,
        conversation_id: Uuid,
        recipient: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<StoredMessage>>;

    /// Sealed private keys ordered by (conversation, user), after `after`, at most `limit`
    /// (for re-sealing under a new vault key).
    async fn sealed_private_keys(&self, after: Option<(Uuid, Uuid)>, limit: u32) -> StoreResult<Vec<SealedKeyRow>>;

    /// Replaces a sealed private key if it is still `old` (false if it changed meanwhile).
    async fn replace_sealed_private_key(
        &self,
        conversation_id: Uuid,
        user_id: Uuid,
        old: &[u8],
        new: &[u8],
    ) -> StoreResult<bool>;
}

/// What a send whose client-chosen group id is in use conflicts on.
pub(crate) const MESSAGE_GROUP_ID: &str = "message_group_id";

/// The rule a send or edit breaks when its recipients are not the conversation's members.
pub(crate) const RECIPIENTS_RULE: &str = "encrypted_messages must name exactly the conversation's members";

/// The rule replacing a user's private keys breaks when the keys are not those they have.
pub(crate) const PRIVATE_KEYS_RULE: &str = "the keys must be exactly those of your conversations, each once";

pub(crate) const INSERT_CONVERSATION: &str = "INSERT INTO conversations (id, private, alias, private_pair, inserted_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $5) RETURNING id, private, alias, inserted_at, updated_at, assistant_of IS NOT NULL AS assistant";

pub(crate) const CONVERSATION_BY_ID: &str = "SELECT id, private, alias, inserted_at, updated_at, assistant_of IS NOT NULL AS assistant \
     FROM conversations WHERE id = $1";

pub(crate) const CONVERSATIONS_OF_USER: &str = "SELECT c.id, c.private, c.alias, c.inserted_at, c.updated_at, c.assistant_of IS NOT NULL AS assistant \
     FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id \
     WHERE m.user_id = $1 ORDER BY c.inserted_at, c.id";

/// Counted over the member's own copies: a message sent before they joined has none, so it
/// was never theirs to read.
pub(crate) const ACTIVITY_OF_USER: &str = "SELECT c.id AS conversation_id, \
       (SELECT COUNT(*) FROM message_groups g \
          JOIN messages copy ON copy.message_group_id = g.id AND copy.recipient_id = $1 \
         WHERE g.conversation_id = c.id AND g.sender_id <> $1 \
           AND (m.read_at IS NULL OR g.inserted_at > m.read_at)) AS unread, \
       (SELECT MAX(g.inserted_at) FROM message_groups g WHERE g.conversation_id = c.id) AS last_message_at \
     FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id \
     WHERE m.user_id = $1 ORDER BY c.inserted_at, c.id";

pub(crate) const MEMBER_IDS: &str =
    "SELECT user_id FROM conversation_members WHERE conversation_id = $1 ORDER BY joined_at, user_id";

pub(crate) const PARTNERS_OF_USER: &str = "SELECT DISTINCT u.id, u.email, u.display_name, u.identity_key \
     FROM conversation_members mine \
     JOIN conversation_members theirs ON theirs.conversation_id = mine.conversation_id \
     JOIN users u ON u.id = theirs.user_id \
     WHERE mine.user_id = $1 AND theirs.user_id <> $1 ORDER BY u.id";

pub(crate) const MEMBER_IDENTITY_KEYS: &str = "SELECT m.user_id, u.identity_key \
     FROM conversation_members m JOIN users u ON u.id = m.user_id \
     WHERE m.conversation_id = $1 ORDER BY m.joined_at, m.user_id";

pub(crate) const CONVERSATION_OF_PRIVATE_PAIR: &str = "SELECT id FROM conversations WHERE private_pair = $1";

pub(crate) const READ_TIMES: &str = "SELECT user_id, read_at FROM conversation_members WHERE conversation_id = $1 \
     ORDER BY joined_at, user_id";

// Reading implies receiving: the delivery time moves forward with the read time.
pub(crate) const MARK_READ: &str = "UPDATE conversation_members SET read_at = $3, \
     delivered_at = CASE WHEN delivered_at IS NULL OR delivered_at < $3 THEN $3 ELSE delivered_at END \
     WHERE conversation_id = $1 AND user_id = $2";

pub(crate) const DELIVERED_TIMES: &str = "SELECT user_id, delivered_at FROM conversation_members \
     WHERE conversation_id = $1 ORDER BY joined_at, user_id";

// Never backwards: a late receipt from a slow device must not undo a newer one.
pub(crate) const MARK_DELIVERED: &str = "UPDATE conversation_members \
     SET delivered_at = CASE WHEN delivered_at IS NULL OR delivered_at < $3 THEN $3 ELSE delivered_at END \
     WHERE conversation_id = $1 AND user_id = $2";

pub(crate) const SET_GROUP_ALIAS: &str = "UPDATE conversations SET alias = $2, updated_at = $3 WHERE id = $1 AND NOT private \
     RETURNING id, private, alias, inserted_at, updated_at, assistant_of IS NOT NULL AS assistant";

pub(crate) const IS_PRIVATE: &str = "SELECT private FROM conversations WHERE id = $1";

pub(crate) const INSERT_MEMBER: &str =
    "INSERT INTO conversation_members (conversation_id, user_id, joined_at) VALUES ($1, $2, $3)";

pub(crate) const INSERT_MEMBER_UNLESS_ONE: &str = "INSERT INTO conversation_members (conversation_id, user_id, joined_at) VALUES ($1, $2, $3) \
     ON CONFLICT (conversation_id, user_id) DO NOTHING";

/// Records that `$2` took part in `$1`: kept after they leave, so deleting the user finds
/// their messages there.
pub(crate) const INSERT_PARTICIPANT: &str = "INSERT INTO conversation_participants (conversation_id, user_id) VALUES ($1, $2) \
     ON CONFLICT (conversation_id, user_id) DO NOTHING";

pub(crate) const TOUCH_CONVERSATION: &str = "UPDATE conversations SET updated_at = $2 WHERE id = $1";

/// The member's keys go with the membership (`ON DELETE CASCADE`).
pub(crate) const DELETE_MEMBER: &str = "DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2";

pub(crate) const INSERT_ENCRYPTION_KEYS: &str = "INSERT INTO encryption_keys (conversation_id, user_id, public_key, private_key, inserted_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $5)";

/// Only members have a row to reference: anyone else breaks the foreign key.
pub(crate) const UPSERT_ENCRYPTION_KEYS: &str = "INSERT INTO encryption_keys (conversation_id, user_id, public_key, private_key, inserted_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $5) \
     ON CONFLICT (conversation_id, user_id) DO UPDATE \
     SET public_key = excluded.public_key, private_key = excluded.private_key, updated_at = excluded.updated_at";

pub(crate) const PUBLIC_KEYS: &str =
    "SELECT user_id, public_key FROM encryption_keys WHERE conversation_id = $1 ORDER BY user_id";

pub(crate) const SEALED_PRIVATE_KEY: &str =
    "SELECT private_key FROM encryption_keys WHERE conversation_id = $1 AND user_id = $2";

pub(crate) const SEALED_PRIVATE_KEYS_OF_USER: &str =
    "SELECT conversation_id, private_key FROM encryption_keys WHERE user_id = $1";

pub(crate) const CONVERSATIONS_WITH_KEYS_OF_USER: &str =
    "SELECT conversation_id FROM encryption_keys WHERE user_id = $1";

pub(crate) const SET_SEALED_PRIVATE_KEY: &str = "UPDATE encryption_keys SET private_key = $3, updated_at = $4 \
     WHERE conversation_id = $1 AND user_id = $2";

/// Sealed private keys after `($2, $3)` (all of them when `$1`), at most `limit`.
pub(crate) fn sealed_private_keys_after(limit: u32) -> String {
    format!(
        "SELECT conversation_id, user_id, private_key FROM encryption_keys \
         WHERE $1 OR (conversation_id, user_id) > ($2, $3) \
         ORDER BY conversation_id, user_id{}",
        crate::sql::limit(limit)
    )
}

/// Replaces the sealed private key of `($1, $2)` with `$4` if it is still `$3`.
pub(crate) const SWAP_SEALED_PRIVATE_KEY: &str = "UPDATE encryption_keys SET private_key = $4 \
     WHERE conversation_id = $1 AND user_id = $2 AND private_key = $3";

/// The members of `$1`, in no order (for checking recipients).
pub(crate) const MEMBERS: &str = "SELECT user_id FROM conversation_members WHERE conversation_id = $1";

/// Touches the group `$1` if `$2` sent it and is still a member of its conversation, whatever
/// channel the request came through: someone who left cannot rewrite the past.
pub(crate) const TOUCH_OWN_MESSAGE_GROUP: &str = "UPDATE message_groups SET updated_at = $3 WHERE id = $1 AND sender_id = $2 \
     AND EXISTS (SELECT 1 FROM conversation_members m \
                 WHERE m.conversation_id = message_groups.conversation_id AND m.user_id = $2) \
     RETURNING conversation_id, inserted_at";

/// Copies of people who have left since the group `$1` was sent.
pub(crate) const DELETE_COPIES_OF_FORMER_MEMBERS: &str = "DELETE FROM messages WHERE message_group_id = $1 AND recipient_id NOT IN \
     (SELECT user_id FROM conversation_members WHERE conversation_id = $2)";

/// A recipient's copy, new or replaced: those who joined since get one, dated when the message
/// was sent.
pub(crate) const UPSERT_COPY: &str = "INSERT INTO messages (id, message_group_id, recipient_id, content, inserted_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (message_group_id, recipient_id) DO UPDATE \
     SET content = excluded.content, updated_at = excluded.updated_at";

/// The copies go with the group (`ON DELETE CASCADE`). As for an edit, the sender must still
/// be a member of the group's conversation.
pub(crate) const DELETE_OWN_MESSAGE_GROUP: &str = "DELETE FROM message_groups WHERE id = $1 AND sender_id = $2 \
     AND EXISTS (SELECT 1 FROM conversation_members m \
                 WHERE m.conversation_id = message_groups.conversation_id AND m.user_id = $2) \
     RETURNING conversation_id";

/// The recipient `$2`'s copies in `$1` before the history key `$3`, newest first, at most
/// `limit`. The max UUID sorts after every real key on both backends (bytewise), so it stands
/// for "from the newest".
pub(crate) fn messages_before(limit: u32) -> String {
    format!(
        "SELECT m.id, m.message_group_id AS message_group, g.sender_id AS sender, m.content, \
         m.inserted_at, m.updated_at, g.history_key \
         FROM message_groups g JOIN messages m ON m.message_group_id = g.id \
         WHERE g.conversation_id = $1 AND m.recipient_id = $2 AND g.history_key < $3 \
         ORDER BY g.history_key DESC{}",
        crate::sql::limit(limit)
    )
}

pub(crate) const CONVERSATION_OF_GROUP: &str = "SELECT conversation_id FROM message_groups WHERE id = $1";

/// Every copy of the group `$1`, as [`MessageRow`]s.
pub(crate) const COPIES_OF_GROUP: &str = "SELECT m.recipient_id, m.id, m.message_group_id, g.sender_id, m.content, m.inserted_at, m.updated_at, \
     g.history_key FROM messages m JOIN message_groups g ON g.id = m.message_group_id \
     WHERE m.message_group_id = $1";

/// A message row with its recipient:
/// `(recipient_id, id, message_group, sender, content, inserted_at, updated_at, history_key)`.
pub(crate) type MessageRow = (Uuid, Uuid, Uuid, Uuid, String, Timestamp, Timestamp, Uuid);

/// The delivery of a group in `conversation_id`, from its [`MessageRow`]s.
pub(crate) fn delivery(conversation_id: Uuid, rows: Vec<MessageRow>, fresh: bool) -> MessageDelivery {
    let messages = rows
        .into_iter()
        .map(|(recipient, id, message_group, sender, content, inserted_at, updated_at, history_key)| {
            (recipient, StoredMessage { id, message_group, sender, content, inserted_at, updated_at, history_key })
        })
        .collect();
    MessageDelivery { conversation_id, messages, fresh }
}

/// A sealed key row from `(conversation_id, user_id, private_key)`.
pub(crate) fn sealed_key_row((conversation_id, user_id, sealed_private_key): (Uuid, Uuid, Vec<u8>)) -> SealedKeyRow {
    SealedKeyRow { conversation_id, user_id, sealed_private_key }
}

/// Checks a conversation to create against the rules; returns its `private_pair` (the two
/// members' textual ids sorted and joined by `:`) when it is private.
pub(crate) fn check_new_conversation(conversation: &NewConversation) -> StoreResult<Option<String>> {
    let members = &conversation.members;
    if conversation.private && (members.len() != 2 || conversation.alias.is_some()) {
        return Err(StoreError::Rule("a private conversation has exactly two members and no alias"));
    }
    let distinct: BTreeSet<Uuid> = members.iter().copied().collect();
    if distinct.len() != members.len() || !distinct.contains(&conversation.creator) {
        return Err(StoreError::Rule("a conversation's members are distinct and include its creator"));
    }
    Ok(conversation.private.then(|| {
        let pair: Vec<String> = distinct.iter().map(Uuid::to_string).collect();
        pair.join(":")
    }))
}

/// The `private_pair` of the private conversation between `a` and `b`.
pub(crate) fn private_pair(a: Uuid, b: Uuid) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("{lo}:{hi}")
}

/// [`StoreError::Rule`] unless the recipients are exactly the members.
pub(crate) fn check_recipients(members: &BTreeSet<Uuid>, contents: &BTreeMap<Uuid, String>) -> StoreResult<()> {
    if contents.keys().eq(members.iter()) { Ok(()) } else { Err(StoreError::Rule(RECIPIENTS_RULE)) }
}

/// [`StoreError::Rule`] unless `keys` name exactly the conversations in `stored` (where the
/// user has a key), each once.
pub(crate) fn check_private_keys(mut stored: Vec<Uuid>, keys: &[(Uuid, Vec<u8>)]) -> StoreResult<()> {
    stored.sort();
    let mut given: Vec<Uuid> = keys.iter().map(|(conversation_id, _)| *conversation_id).collect();
    given.sort();
    if given == stored { Ok(()) } else { Err(StoreError::Rule(PRIVATE_KEYS_RULE)) }
}

/// Why a group's alias was not set: the conversation is private (`Some(true)`) or does not
/// exist. Whether a conversation can be private never changes, so a read after the failed
/// update tells.
pub(crate) fn alias_refused(private: Option<bool>) -> StoreError {
    match private {
        Some(true) => StoreError::Rule("a private conversation has no alias"),
        _ => StoreError::NotFound,
    }
}
