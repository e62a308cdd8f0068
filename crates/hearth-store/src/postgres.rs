//! The PostgreSQL backend.

mod sends;
mod turns;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::StoreResult;
use crate::send_batch::Sends;
use crate::turn_batch::Turns;

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

    /// None: a PostgreSQL read is a network round trip either way.
    fn inline_reads(&self) -> Option<&crate::sqlite::InlineReads> {
        None
    }
}

impl PostgresStore {
    /// The knowledge base's full-text search: the English `tsvector` of the question against
    /// any of the words, ranked by `ts_rank`.
    async fn search_knowledge_rows(
        &self,
        topic: &str,
        words: &[String],
        limit: u32,
    ) -> StoreResult<Vec<(String, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT topic, question, answer FROM knowledge_entries, to_tsquery('english', $1) AS query \
             WHERE topic = $2 AND search @@ query ORDER BY ts_rank(search, query) DESC, id LIMIT $3",
        )
        .bind(words.join(" | "))
        .bind(topic)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
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
