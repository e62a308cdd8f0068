//! The PostgreSQL backend: a pool of connections, each of which can write; sends and
//! assistant turns are group-committed by a few workers at once (`sends.rs`, `turns.rs`).
//! Each area runs the shared SQL in a module of its own (`accounts.rs`, `sessions.rs`, …).

mod accounts;
mod admin;
mod assistant;
mod conversations;
mod provider_keys;
mod rooms;
mod sends;
mod sessions;
mod turns;

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::send_batch::Sends;
use crate::turn_batch::Turns;
use crate::{Store, StoreResult};

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
    /// `record_assistant_turn`, group-committed.
    turns: Turns,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://…`).
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let max_connections = max_connections.max(1);
        let pool = PgPoolOptions::new().max_connections(max_connections).connect_with(options).await?;
        let workers = SEND_WORKERS.min(max_connections.div_ceil(2)) as usize;
        let sends = sends::start(pool.clone(), workers);
        let turns = turns::start(pool.clone(), workers);
        Ok(Self { pool, sends, turns })
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

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> StoreResult<usize> {
        let migrator = sqlx::migrate!("./migrations/postgres");
        let applied: i64 = sqlx::query_scalar(crate::sql::APPLIED_MIGRATIONS).fetch_one(&self.pool).await.unwrap_or(0);
        migrator.run(&self.pool).await?;
        // Rows from before the directory's search key get theirs (Rust's lowercase, which SQL's
        // lower() does not match on SQLite); a no-op once done.
        let missing: Vec<(uuid::Uuid, String)> =
            sqlx::query_as(crate::accounts::USERS_WITHOUT_NAME_KEY).fetch_all(&self.pool).await?;
        for (id, display_name) in missing {
            let key = crate::accounts::display_name_key(&display_name);
            sqlx::query(crate::accounts::SET_NAME_KEY).bind(id).bind(key).execute(self.writer()).await?;
        }
        Ok(crate::sql::pending(&migrator, applied))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query(crate::sql::PING).execute(&self.pool).await?;
        Ok(())
    }
}
