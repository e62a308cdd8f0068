//! The PostgreSQL backend.

mod sends;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::StoreResult;
use crate::send_batch::Sends;

/// Transactions storing sends at once. Two keep one batch committing while the next is being
/// written; more make smaller batches, and PostgreSQL then spends more CPU per send (on this
/// 2-core machine at 5 000 sends/s: 0.84 cores with four, 0.67 with two, for the same latency).
const SEND_WORKERS: u32 = 2;

/// A store in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// `send_message`, group-committed.
    sends: Sends,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://…`).
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let max_connections = max_connections.max(1);
        let pool = PgPoolOptions::new().max_connections(max_connections).connect_with(options).await?;
        let workers = SEND_WORKERS.min(max_connections.div_ceil(2)) as usize;
        let sends = sends::start(pool.clone(), workers);
        Ok(Self { pool, sends })
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
        Self::begin_write_on(&self.pool).await
    }

    async fn begin_write_on(pool: &PgPool) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
        Ok(pool.begin().await?)
    }

    /// Where single-statement writes run (any connection: PostgreSQL has many writers).
    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

crate::queries::impl_store!(
    PostgresStore,
    Postgres,
    "postgres",
    "./migrations/postgres",
    " FOR SHARE",
    " FOR NO KEY UPDATE"
);
