//! hearth's storage.
//!
//! One [`Store`] trait, implemented for SQLite ([`SqliteStore`]) and PostgreSQL
//! ([`PostgresStore`]) with sqlx. Both run the same SQL (written once in `queries.rs`), each
//! with its own migrations under `migrations/<backend>/`, and the same contract tests
//! (`tests/contract.rs`) run against both. Nothing here knows about HTTP.

mod assistant;
mod conversation;
mod group_commit;
mod model;
mod postgres;
mod provider_keys;
mod queries;
mod send_batch;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod testing;
mod timestamp;
mod turn_batch;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

pub use assistant::{AllowanceKind, AssistantImage, AssistantTurn, KnowledgeEntry};
pub use conversation::*;
pub use model::*;
pub use postgres::PostgresStore;
pub use provider_keys::{KeyOwner, NewProviderKey, StoredProviderKey};
pub use sqlite::SqliteStore;
pub use timestamp::Timestamp;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; names the rule (e.g. `"email"`).
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The row to act on does not exist (or is not the caller's).
    #[error("not found")]
    NotFound,
    /// `database.url` names no backend hearth knows.
    #[error("unsupported database url (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// The change breaks a rule of the data (e.g. the recipients of a message are not exactly
    /// the conversation's members); names the rule for the error reply.
    #[error("{0}")]
    Rule(&'static str),
    /// A stored value could not be read back (e.g. an unknown theme).
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite refused or failed a statement run through rusqlite (`sqlite/writer.rs`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The task that stores sends has stopped (the store is shutting down).
    #[error("the store's writer has stopped")]
    WriterStopped,
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `sqlite://path` or `postgres://…`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
}

/// Opens the store `url` names and applies pending migrations.
pub async fn connect(options: &ConnectOptions) -> StoreResult<Arc<dyn Store>> {
    let store = open(options).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens the store `url` names without migrating.
pub async fn open(options: &ConnectOptions) -> StoreResult<Arc<dyn Store>> {
    let url = options.url.as_str();
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, options.max_connections).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url, options.max_connections).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// Everything hearth keeps. Multi-row writes are single transactions.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Applies pending migrations; returns how many ran.
    async fn migrate(&self) -> StoreResult<usize>;

    /// Which backend this is (`"sqlite"` or `"postgres"`).
    fn backend(&self) -> &'static str;

    /// Cheap round trip, for health checks.
    async fn ping(&self) -> StoreResult<()>;

    // --- accounts ---

    /// Creates a user, their default profile and first device session.
    /// [`StoreError::Conflict`]`("email")` if the address is taken.
    async fn create_account(&self, account: &NewAccount) -> StoreResult<()>;

    /// A user by id.
    async fn user(&self, id: Uuid) -> StoreResult<Option<User>>;

    /// A user by (lowercased) email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;

    /// Users ordered by id, starting after `after`, at most `limit`.
    async fn list_users(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<UserSummary>>;

    /// Sets the display name.
    async fn set_display_name(&self, user_id: Uuid, display_name: &str, now: Timestamp) -> StoreResult<()>;

    /// Sets a new password hash and revokes every session and outstanding one-time token; with
    /// `private_keys`, replaces the user's sealed private keys in the same transaction, as
    /// [`Store::replace_private_keys`] does (and refuses, changing nothing, as it does).
    async fn replace_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        private_keys: Option<&[(Uuid, Vec<u8>)]>,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Deletes the user and everything that belongs to them.
    async fn delete_user(&self, user_id: Uuid) -> StoreResult<()>;

    /// The user's profile.
    async fn profile(&self, user_id: Uuid) -> StoreResult<Profile>;

    /// Applies a profile change and returns the whole profile.
    async fn update_profile(&self, user_id: Uuid, update: &ProfileUpdate) -> StoreResult<Profile>;

    // --- device sessions ---

    /// Creates a device session with its first refresh token.
    async fn create_session(&self, user_id: Uuid, session: &NewSession) -> StoreResult<()>;

    /// A device session, revoked or not.
    async fn device(&self, device_id: Uuid) -> StoreResult<Option<Device>>;

    /// The user's live (unrevoked) device sessions, oldest first.
    async fn devices(&self, user_id: Uuid) -> StoreResult<Vec<Device>>;

    /// Revokes one of the user's sessions and voids the one-time tokens it made;
    /// [`StoreError::NotFound`] if it is not theirs or already revoked. (A replayed refresh
    /// token, [`Store::rotate_refresh_token`], revokes its session the same way.)
    async fn revoke_device(&self, user_id: Uuid, device_id: Uuid, now: Timestamp) -> StoreResult<()>;

    /// Revokes every session of the user and voids every outstanding one-time token.
    async fn revoke_all_devices(&self, user_id: Uuid, now: Timestamp) -> StoreResult<()>;

    /// Spends a refresh token and stores its successor, detecting reuse.
    async fn rotate_refresh_token(
        &self,
        presented: &[u8; 32],
        successor: &[u8; 32],
        successor_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<RefreshOutcome>;

    // --- one-time tokens ---

    /// Stores a one-time token, deleting the user's unspent tokens of the kinds it replaces
    /// ([`OneTimeKind::replaces`]).
    async fn issue_one_time_token(&self, token: &NewOneTimeToken) -> StoreResult<()>;

    /// The owner of a live (unspent, unexpired) token of `kind`, without spending it.
    async fn peek_one_time_token(
        &self,
        hash: &[u8; 32],
        kind: OneTimeKind,
        now: Timestamp,
    ) -> StoreResult<Option<Uuid>>;

    /// Spends a live token of the redemption's kind and performs the redemption, in one
    /// transaction; returns the token's owner. Exactly one of any number of concurrent
    /// redemptions of the same token succeeds; the rest get [`StoreError::NotFound`].
    async fn redeem_one_time_token(
        &self,
        hash: &[u8; 32],
        redemption: &Redemption,
        now: Timestamp,
    ) -> StoreResult<Uuid>;

    // --- conversations ---

    /// Creates a conversation with its members and the creator's keys.
    /// [`StoreError::Conflict`]`("private_conversation")` if the two people already share a
    /// private conversation; [`StoreError::NotFound`] if a member does not exist.
    async fn create_conversation(&self, conversation: &NewConversation) -> StoreResult<Conversation>;

    /// A conversation by id.
    async fn conversation(&self, id: Uuid) -> StoreResult<Option<Conversation>>;

    /// The user's conversations, oldest first.
    async fn conversations_of(&self, user_id: Uuid) -> StoreResult<Vec<Conversation>>;

    /// What is new for the user in each of their conversations, in the order of
    /// [`Store::conversations_of`]: how many messages from others (with a copy for the user)
    /// arrived after their read time, and when the last message arrived.
    async fn conversation_activity(&self, user_id: Uuid) -> StoreResult<Vec<ConversationActivity>>;

    /// The members of a conversation, in the order they joined.
    async fn member_ids(&self, conversation_id: Uuid) -> StoreResult<Vec<Uuid>>;

    /// Everyone who shares at least one conversation with the user (not the user).
    async fn conversation_partners(&self, user_id: Uuid) -> StoreResult<Vec<UserSummary>>;

    /// The private conversation between two users, if there is one.
    async fn private_conversation_between(&self, a: Uuid, b: Uuid) -> StoreResult<Option<Uuid>>;

    /// Members' last read times (`None`: never read).
    async fn read_times(&self, conversation_id: Uuid) -> StoreResult<Vec<(Uuid, Option<Timestamp>)>>;

    /// Records that the member has read the conversation up to now.
    /// [`StoreError::NotFound`] if they are not a member.
    async fn mark_read(&self, conversation_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<()>;

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
    /// [`StoreError::Rule`] unless the recipients are exactly the current members. A resend
    /// with an earlier `client_msg_id` returns the earlier delivery (`fresh: false`). Sends
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
        contents: &std::collections::BTreeMap<Uuid, String>,
        now: Timestamp,
    ) -> StoreResult<MessageDelivery>;

    /// Deletes every copy of a message group; returns its conversation.
    /// [`StoreError::NotFound`] unless `sender` sent it and is still a member of its
    /// conversation.
    async fn delete_message(&self, message_group: Uuid, sender: Uuid) -> StoreResult<Uuid>;

    /// The recipient's copies, newest first, older than the group `before` (exclusive).
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

    // --- the assistant ---

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

    /// Gives back one unit taken by [`Store::take_allowance`] (the turn got no reply).
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

    // --- provider keys (stored only by redeeming a configure link: Redemption::StoreProviderKey) ---

    /// The owner's keys, oldest first.
    async fn provider_keys(&self, owner: KeyOwner) -> StoreResult<Vec<StoredProviderKey>>;

    /// Deletes one of the owner's keys. [`StoreError::NotFound`] if the owner has no key `id`
    /// (another owner's key is not found, and stays).
    async fn delete_provider_key(&self, owner: KeyOwner, id: Uuid) -> StoreResult<()>;

    /// Deletes the owner's keys for `provider`; returns how many there were.
    async fn delete_provider_keys_of(&self, owner: KeyOwner, provider: &str) -> StoreResult<u64>;

    /// Records how requests with keys went, in one transaction: a success (`true`) sets the
    /// key's `last_used_at` to `now` and clears its failures; a failure counts one more
    /// (`last_used_at` stays). Unknown ids are ignored.
    async fn record_key_outcomes(&self, outcomes: &[(Uuid, bool)], now: Timestamp) -> StoreResult<()>;

    /// Every owner's keys ordered by id, after `after`, at most `limit` (for re-sealing under a
    /// new master key).
    async fn all_provider_keys(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<StoredProviderKey>>;

    /// Replaces a key's sealed blob and master version if the blob is still `old`; false if it
    /// changed meanwhile or the key is gone.
    async fn replace_sealed_provider_key(
        &self,
        id: Uuid,
        old: &[u8],
        new: &[u8],
        master_version: u32,
    ) -> StoreResult<bool>;

    /// How many keys are sealed under each master version, by version ascending.
    async fn provider_key_versions(&self) -> StoreResult<Vec<(u32, u64)>>;
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] naming `what`.
fn on_unique(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(error),
    }
}

/// Maps a foreign-key violation (a referenced row, e.g. a user, does not exist) to
/// [`StoreError::NotFound`].
fn on_foreign_key(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::Database(error),
    }
}
