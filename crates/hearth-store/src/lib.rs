//! hearth's storage.
//!
//! One [`Store`] trait, implemented for SQLite ([`SqliteStore`]) and PostgreSQL
//! ([`PostgresStore`]) with sqlx, each with its own migrations under `migrations/<backend>/`.
//! Nothing here knows about HTTP.
//!
//! The store reads as areas: accounts, sessions and one-time tokens, conversations and
//! messages, the assistant, provider keys. Each area has a module here with its part of the
//! contract (e.g. [`AccountStore`]) and the SQL both backends run for it, and a module per
//! backend that runs it (`sqlite/accounts.rs`, `postgres/accounts.rs`). The contract tests
//! (`tests/contract/`, one module per area) run against both backends.

mod accounts;
mod assistant;
mod conversations;
mod group_commit;
mod model;
mod postgres;
mod provider_keys;
mod send_batch;
mod sessions;
mod sql;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod testing;
mod timestamp;
mod turn_batch;

use std::sync::Arc;

pub use accounts::{AccountStore, IDENTITY_KEY_RULE};
pub use assistant::{AllowanceKind, AssistantImage, AssistantStore, AssistantTurn, KnowledgeEntry};
use async_trait::async_trait;
pub use conversations::{
    ASSISTANT_SENDER, Conversation, ConversationActivity, ConversationStore, EncryptionKeys, MessageDelivery,
    NewConversation, NewMessageGroup, SealedKeyRow, StoredMessage, private_key_row,
};
pub use model::*;
pub use postgres::PostgresStore;
pub use provider_keys::{KeyOwner, NewProviderKey, ProviderKeyStore, StoredProviderKey};
pub use sessions::SessionStore;
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

/// Everything hearth keeps, by area: each supertrait is one area's part of the contract, and
/// every method of every area can be called on a `Store` (or a `dyn Store`) directly. Multi-row
/// writes are single transactions.
#[async_trait]
pub trait Store:
    AccountStore + SessionStore + ConversationStore + AssistantStore + ProviderKeyStore + Send + Sync + std::fmt::Debug
{
    /// Applies pending migrations; returns how many ran.
    async fn migrate(&self) -> StoreResult<usize>;

    /// Which backend this is (`"sqlite"` or `"postgres"`).
    fn backend(&self) -> &'static str;

    /// Cheap round trip, for health checks.
    async fn ping(&self) -> StoreResult<()>;
}
