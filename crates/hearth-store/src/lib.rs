//! hearth's storage.
//!
//! One [`Store`] trait, implemented for SQLite ([`SqliteStore`]) and PostgreSQL
//! ([`PostgresStore`]) with sqlx. Both run the same SQL (written once in `queries.rs`), each
//! with its own migrations under `migrations/<backend>/`, and the same contract tests
//! (`tests/contract.rs`) run against both. Nothing here knows about HTTP.

mod model;
mod postgres;
mod queries;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod testing;
mod timestamp;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

pub use model::*;
pub use postgres::PostgresStore;
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
    /// A stored value could not be read back (e.g. an unknown theme).
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
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

    /// Sets a new password hash and revokes every session and outstanding one-time token.
    async fn replace_password(&self, user_id: Uuid, password_hash: &str, now: Timestamp) -> StoreResult<()>;

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

    /// Revokes one of the user's sessions; [`StoreError::NotFound`] if it is not theirs or
    /// already revoked.
    async fn revoke_device(&self, user_id: Uuid, device_id: Uuid, now: Timestamp) -> StoreResult<()>;

    /// Revokes every session of the user.
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

    /// Stores a one-time token.
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
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] naming `what`.
fn on_unique(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(error),
    }
}
