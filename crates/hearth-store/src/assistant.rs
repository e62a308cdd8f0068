//! The assistant: the free tier's daily allowance, the turns of assistant threads, each
//! person's assistant conversation and its replies, the images it made, and its knowledge base.
//!
//! [`AssistantStore`] is the area's part of the [`Store`](crate::Store) contract; the SQL below
//! is what both backends run for it (`sqlite/assistant.rs`, `postgres/assistant.rs`), but for
//! the knowledge base's full-text search, which each backend writes its own way, and turns,
//! which each batches its own way (`sqlite/turns.rs`, `postgres/turns.rs`).

use async_trait::async_trait;
use uuid::Uuid;

use crate::{Conversation, MessageDelivery, StoreResult, Timestamp};

/// What a free-tier allowance counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowanceKind {
    /// Text replies.
    Text,
    /// Generated images.
    Image,
}

impl AllowanceKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AllowanceKind::Text => "text",
            AllowanceKind::Image => "image",
        }
    }
}

/// One assistant turn to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantTurn {
    /// The turn's id.
    pub id: Uuid,
    /// Whose turn.
    pub user_id: Uuid,
    /// The thread it belongs to (a client's conversation id, or the assistant conversation's).
    pub thread: String,
    /// The knowledge-base topic it was asked under.
    pub topic: Option<String>,
    /// What the person asked.
    pub prompt: String,
    /// The reply, or the error the person was shown.
    pub reply: String,
    /// Who answered: a provider's name or `knowledge_base`; `None` when nobody did.
    pub provider: Option<String>,
    /// Whether a reply came (failed turns are kept for their attempt log, not used as context).
    pub answered: bool,
    /// The attempt log, JSON.
    pub attempts: String,
    /// When it was asked.
    pub inserted_at: Timestamp,
}

/// An image the assistant generated.
#[derive(Clone, PartialEq, Eq)]
pub struct AssistantImage {
    /// The image's id (in its URL).
    pub id: Uuid,
    /// Its owner: the only one it is served to.
    pub user_id: Uuid,
    /// `image/png`, `image/jpeg` or `image/webp`.
    pub content_type: String,
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// What was asked for.
    pub prompt: String,
    /// Who made it.
    pub provider: String,
    /// When.
    pub inserted_at: Timestamp,
}

impl std::fmt::Debug for AssistantImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssistantImage")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// A question and its answer in the knowledge base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnowledgeEntry {
    /// The topic (`[a-z0-9_-]`, e.g. `hearth`).
    pub topic: String,
    /// The question it answers.
    pub question: String,
    /// The answer.
    pub answer: String,
}

/// The assistant's rows.
#[async_trait]
pub trait AssistantStore: Send + Sync {
    /// Takes one unit of the user's free-tier allowance of `kind` for the UTC `day`
    /// (`YYYY-MM-DD`) if fewer than `limit` are used; returns how many are used after it, or
    /// `None` when none is left. Exact under concurrency: 100 racing takes against 20 left
    /// succeed exactly 20 times.
    async fn take_allowance(
        &self,
        user_id: Uuid,
        day: &str,
        kind: AllowanceKind,
        limit: u32,
    ) -> StoreResult<Option<u32>>;

    /// Gives back one unit taken by [`AssistantStore::take_allowance`] (the turn got no reply).
    async fn refund_allowance(&self, user_id: Uuid, day: &str, kind: AllowanceKind) -> StoreResult<()>;

    /// How much of the allowance of `kind` the user has used on `day`.
    async fn allowance_used(&self, user_id: Uuid, day: &str, kind: AllowanceKind) -> StoreResult<u32>;

    /// Stores an assistant turn.
    async fn record_assistant_turn(&self, turn: &AssistantTurn) -> StoreResult<()>;

    /// The newest `limit` turns of the user's `thread`, newest first.
    async fn assistant_turns(&self, user_id: Uuid, thread: &str, limit: u32) -> StoreResult<Vec<AssistantTurn>>;

    /// The user's assistant conversation, if it was made.
    async fn assistant_conversation(&self, user_id: Uuid) -> StoreResult<Option<Conversation>>;

    /// Makes the user's assistant conversation (id `id`, the user its only member) unless it
    /// exists; returns it and whether it was made now. Racing calls make one.
    async fn create_assistant_conversation(
        &self,
        id: Uuid,
        user_id: Uuid,
        now: Timestamp,
    ) -> StoreResult<(Conversation, bool)>;

    /// Stores an assistant reply (group `group_id`, sender [`ASSISTANT_SENDER`]) to the owner
    /// of the assistant conversation `conversation_id`. [`StoreError::NotFound`] when that is
    /// no assistant conversation.
    ///
    /// [`ASSISTANT_SENDER`]: crate::ASSISTANT_SENDER
    /// [`StoreError::NotFound`]: crate::StoreError::NotFound
    async fn post_assistant_reply(
        &self,
        group_id: Uuid,
        conversation_id: Uuid,
        content: &str,
        now: Timestamp,
    ) -> StoreResult<MessageDelivery>;

    /// Stores a generated image.
    async fn store_assistant_image(&self, image: &AssistantImage) -> StoreResult<()>;

    /// The image `id` if `user_id` owns it.
    async fn assistant_image(&self, id: Uuid, user_id: Uuid) -> StoreResult<Option<AssistantImage>>;

    /// Replaces the whole knowledge base with `entries`, in one transaction.
    async fn replace_knowledge(&self, entries: &[KnowledgeEntry]) -> StoreResult<()>;

    /// Entries of `topic` whose question contains any of `words` (full-text search with
    /// stemming: FTS5 on SQLite, `tsvector` on PostgreSQL), best match first. Words are plain
    /// letters and digits; anything else in them is ignored.
    async fn search_knowledge(&self, topic: &str, words: &[String], limit: u32) -> StoreResult<Vec<KnowledgeEntry>>;
}

/// Takes one unit of `($1, $2, $3)`'s allowance. The update happens only below the limit `$4`;
/// when it does not, nothing is returned.
pub(crate) const TAKE_ALLOWANCE: &str = "INSERT INTO assistant_usage (user_id, day, kind, used) VALUES ($1, $2, $3, 1) \
     ON CONFLICT (user_id, day, kind) DO UPDATE SET used = assistant_usage.used + 1 \
     WHERE assistant_usage.used < $4 \
     RETURNING used";

pub(crate) const REFUND_ALLOWANCE: &str = "UPDATE assistant_usage SET used = used - 1 \
     WHERE user_id = $1 AND day = $2 AND kind = $3 AND used > 0";

pub(crate) const ALLOWANCE_USED: &str =
    "SELECT used FROM assistant_usage WHERE user_id = $1 AND day = $2 AND kind = $3";

/// The latest `limit` turns of the assistant thread `$2` of user `$1`, newest first. The SQLite
/// backend also runs it outside sqlx (`sqlite/reads.rs`), so it decodes the columns by
/// position, in this order.
pub(crate) fn turns_of_thread(limit: u32) -> String {
    format!(
        "SELECT id, user_id, thread, topic, prompt, reply, provider, answered, attempts, inserted_at \
         FROM assistant_turns WHERE user_id = $1 AND thread = $2 ORDER BY inserted_at DESC, id DESC{}",
        crate::sql::limit(limit)
    )
}

/// A turn as [`turns_of_thread`] reads it.
pub(crate) type TurnRow = (Uuid, Uuid, String, Option<String>, String, String, Option<String>, bool, String, Timestamp);

/// A turn from its row.
pub(crate) fn turn(
    (id, user_id, thread, topic, prompt, reply, provider, answered, attempts, inserted_at): TurnRow,
) -> AssistantTurn {
    AssistantTurn { id, user_id, thread, topic, prompt, reply, provider, answered, attempts, inserted_at }
}

pub(crate) const ASSISTANT_CONVERSATION_OF_USER: &str = "SELECT id, private, alias, inserted_at, updated_at, assistant_of IS NOT NULL AS assistant \
     FROM conversations WHERE assistant_of = $1";

/// A second (racing) creation finds the owner's unique index taken: nothing is inserted and
/// nothing returned.
pub(crate) const INSERT_ASSISTANT_CONVERSATION: &str = "INSERT INTO conversations (id, private, alias, assistant_of, inserted_at, updated_at) \
     VALUES ($1, FALSE, NULL, $2, $3, $3) ON CONFLICT DO NOTHING \
     RETURNING id, private, alias, inserted_at, updated_at, assistant_of IS NOT NULL AS assistant";

pub(crate) const OWNER_OF_ASSISTANT_CONVERSATION: &str =
    "SELECT assistant_of FROM conversations WHERE id = $1 AND assistant_of IS NOT NULL";

/// The assistant's reply: its group id, which the server made, is its history key too.
pub(crate) const INSERT_REPLY_GROUP: &str = "INSERT INTO message_groups (id, conversation_id, sender_id, client_msg_id, inserted_at, updated_at, history_key) \
     VALUES ($1, $2, $3, NULL, $4, $4, $1)";

pub(crate) const INSERT_REPLY_COPY: &str = "INSERT INTO messages (id, message_group_id, recipient_id, content, inserted_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $5)";

pub(crate) const INSERT_IMAGE: &str = "INSERT INTO assistant_images (id, user_id, content_type, bytes, prompt, provider, inserted_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const IMAGE_OF_USER: &str = "SELECT id, user_id, content_type, bytes, prompt, provider, inserted_at \
     FROM assistant_images WHERE id = $1 AND user_id = $2";

/// An image as [`IMAGE_OF_USER`] reads it.
pub(crate) type ImageRow = (Uuid, Uuid, String, Vec<u8>, String, String, Timestamp);

/// An image from its row.
pub(crate) fn image((id, user_id, content_type, bytes, prompt, provider, inserted_at): ImageRow) -> AssistantImage {
    AssistantImage { id, user_id, content_type, bytes, prompt, provider, inserted_at }
}

pub(crate) const DELETE_KNOWLEDGE: &str = "DELETE FROM knowledge_entries";

pub(crate) const INSERT_KNOWLEDGE: &str = "INSERT INTO knowledge_entries (topic, question, answer) VALUES ($1, $2, $3)";

/// The words of a knowledge search as they may reach the search syntax: only letters and
/// digits, so no operator can be injected; words left empty are dropped.
pub(crate) fn search_words(words: &[String]) -> Vec<String> {
    words
        .iter()
        .map(|word| word.chars().filter(|c| c.is_alphanumeric()).collect::<String>())
        .filter(|word| !word.is_empty())
        .collect()
}

/// Knowledge entries from their rows `(topic, question, answer)`.
pub(crate) fn knowledge_entries(rows: Vec<(String, String, String)>) -> Vec<KnowledgeEntry> {
    rows.into_iter().map(|(topic, question, answer)| KnowledgeEntry { topic, question, answer }).collect()
}
