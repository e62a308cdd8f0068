//! The SQLite backend: one file in WAL mode, foreign keys on, a busy timeout, and every write
//! on one connection of its own, with transactions started with `BEGIN IMMEDIATE`.
//!
//! SQLite has one writer at a time. Writers on several connections that contend for its lock
//! wait in SQLite's busy handler, which polls with sleeps of 1, 2, 5, … up to 100 ms: the lock
//! sits free while the next writer sleeps, so throughput drops and latency jumps by tens of
//! milliseconds under load. Writers queue instead for the one write connection in its pool,
//! which hands it to the next waiter as soon as the previous one commits. Reads use the other
//! pool and, in WAL mode, never wait for the writer.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use crate::StoreResult;

/// A store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    /// The one write connection.
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`).
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool =
            SqlitePoolOptions::new().max_connections(max_connections.max(1)).connect_with(options.clone()).await?;
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        Ok(Self { pool, writer })
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Where single-statement writes run.
    fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}

crate::queries::impl_store!(SqliteStore, Sqlite, "sqlite", "./migrations/sqlite", "", "");
