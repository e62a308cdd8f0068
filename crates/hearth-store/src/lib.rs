//! hearth's storage.
//!
//! One [`Store`] trait, implemented for SQLite ([`SqliteStore`]) and PostgreSQL
//! ([`PostgresStore`]) with sqlx, each with its own migrations under `migrations/<backend>/`.
//! Nothing here knows about HTTP.
//!
//! The store reads as areas: accounts, sessions and one-time tokens, conversations and
//! messages, the assistant, provider keys, administrators, rooms. Each area has a module here
//! with its part of the contract (e.g. [`AccountStore`]) and the SQL both backends run for it,
//! and a module per backend that runs it (`sqlite/accounts.rs`, `postgres/accounts.rs`). The
//! contract tests (`tests/contract/`, one module per area) run against both backends.

mod accounts;
mod admin;
mod assistant;
pub mod backup;
mod conversations;
mod group_commit;
mod model;
mod postgres;
mod provider_keys;
mod rooms;
mod send_batch;
mod sessions;
mod sql;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod testing;
mod timestamp;
mod turn_batch;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use accounts::{AccountStore, IDENTITY_KEY_RULE};
pub use admin::{
    AdminAccount, AdminSession, AdminStore, AuditChain, AuditEntry, Invite, NewAuditEntry, ROLE_ANALYST, ROLE_OPERATOR,
};
pub use assistant::{AllowanceKind, AssistantImage, AssistantStore, AssistantTurn, KnowledgeEntry};
use async_trait::async_trait;
pub use conversations::{
    ASSISTANT_SENDER, Conversation, ConversationActivity, ConversationStore, EncryptionKeys, MessageDelivery,
    NewConversation, NewMessageGroup, SealedKeyRow, StoredMessage, private_key_row,
};
pub use model::*;
pub use postgres::PostgresStore;
pub use provider_keys::{KeyOwner, NewProviderKey, ProviderKeyStore, StoredProviderKey};
pub use rooms::{
    AdminRoom, NewRoom, NewRoomMessage, Room, RoomMember, RoomMessage, RoomModerator, RoomOfUser, RoomStore,
};
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
    /// The database refused or failed (counted in [`database_failures`]).
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// SQLite refused or failed a statement run through rusqlite (`sqlite/writer.rs`; counted
    /// in [`database_failures`]).
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// The task that stores sends has stopped (the store is shutting down).
    #[error("the store's writer has stopped")]
    WriterStopped,
    /// A backup or a restore cannot be made; says why, for a person (`backup`).
    #[error("{0}")]
    Backup(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        DATABASE_FAILURES.fetch_add(1, Ordering::Relaxed);
        Self::Database(error)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        DATABASE_FAILURES.fetch_add(1, Ordering::Relaxed);
        Self::Sqlite(error)
    }
}

/// See [`database_failures`]. Process-wide rather than a field of a store: an error is counted
/// where it is converted, which knows nothing of the store it came from.
static DATABASE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// How many times, since the process started, a database refused or failed a statement, a
/// connection or a transaction: every [`StoreError::Database`] and [`StoreError::Sqlite`]
/// made. A unique or foreign-key violation that the store answers as
/// [`StoreError::Conflict`] or [`StoreError::NotFound`] is an answer, not a failure, and is not
/// counted. `/metrics` reports it.
pub fn database_failures() -> u64 {
    DATABASE_FAILURES.load(Ordering::Relaxed)
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
    AccountStore
    + SessionStore
    + ConversationStore
    + AssistantStore
    + ProviderKeyStore
    + AdminStore
    + RoomStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Applies pending migrations; returns how many ran.
    async fn migrate(&self) -> StoreResult<usize>;

    /// Which backend this is (`"sqlite"` or `"postgres"`).
    fn backend(&self) -> &'static str;

    /// Cheap round trip, for health checks.
    async fn ping(&self) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_database_error_made_is_counted() {
        let before = database_failures();
        let failure: StoreError = sqlx::Error::PoolClosed.into();
        assert!(matches!(failure, StoreError::Database(_)));
        let failure: StoreError = rusqlite::Error::InvalidQuery.into();
        assert!(matches!(failure, StoreError::Sqlite(_)));
        // Other tests of this process may fail statements meanwhile: at least these two.
        assert!(database_failures() >= before + 2);
    }
}
