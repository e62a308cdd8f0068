//! The PostgreSQL backend.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::StoreResult;

/// A store in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://…`).
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new().max_connections(max_connections.max(1)).connect_with(options).await?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
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
