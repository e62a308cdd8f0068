//! The assistant's rows: the free tier's daily allowance, the turns of assistant threads, the
//! images it made, and its knowledge base.

use uuid::Uuid;

use crate::Timestamp;

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
