//! The SQLite backend: one file in WAL mode, foreign keys on, a busy timeout, and every write
//! on one connection of its own, with transactions started with `BEGIN IMMEDIATE`.
//!
//! SQLite has one writer at a time. Writers on several connections that contend for its lock
//! wait in SQLite's busy handler, which polls with sleeps of 1, 2, 5, … up to 100 ms: the lock
//! sits free while the next writer sleeps, so throughput drops and latency jumps by tens of
//! milliseconds under load. Writers queue instead for the one write connection in its pool,
//! which hands it to the next waiter as soon as the previous one commits. Reads use the other
//! pool and, in WAL mode, never wait for the writer.
//!
//! Sends and assistant turns, the busiest writes, are group-committed on that connection (see
//! `group_commit`), each batch in one blocking call (`sqlite/writer.rs`), and the WAL is
//! checkpointed beside the writer rather than inside its commits.

mod sends;
mod turns;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use crate::StoreResult;
use crate::send_batch::Sends;
use crate::turn_batch::Turns;

/// A store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    /// The one write connection.
    writer: SqlitePool,
    /// `send_message`, group-committed on the write connection.
    sends: Sends,
    /// `record_assistant_turn`, group-committed on the write connection.
    turns: Turns,
    /// Held while the store lives: the checkpoint task stops once every clone is gone.
    _alive: std::sync::Arc<()>,
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
        // Each connection is a thread of sqlx's; reads run in parallel only as far as there are
        // cores, and more threads only add switches between them (at 1 000 assistant requests
        // a second on 2 cores: 1.24 ms of CPU per request with 16 readers, 0.99 ms with 2).
        let cores = std::thread::available_parallelism().map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
        let readers = max_connections.clamp(1, cores.max(2));
        // A SQLite connection is a file handle in this process: it cannot go stale the way a
        // network connection can, so it is not pinged before each use (sqlx's default), which
        // would double the hops to the connection's thread for every query.
        let pool = SqlitePoolOptions::new()
            .max_connections(readers)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        // Checkpoints (copying the WAL back into the database file) run beside the writer
        // instead of inside its commits: see `checkpoint_beside_the_writer`.
        let writer_options = options.pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string());
        let writer =
            SqlitePoolOptions::new().max_connections(1).test_before_acquire(false).connect_with(writer_options).await?;
        let alive = std::sync::Arc::new(());
        tokio::spawn(checkpoint_beside_the_writer(pool.clone(), std::sync::Arc::downgrade(&alive)));
        // One worker: SQLite has one writer, and batches are what let it keep up.
        let sends = sends::start(writer.clone());
        let turns = turns::start(writer.clone());
        Ok(Self { pool, writer, sends, turns, _alive: alive })
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        Self::begin_write_on(&self.writer).await
    }

    async fn begin_write_on(writer: &SqlitePool) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        Ok(writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Where single-statement writes run.
    fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}

/// The WAL size (in pages) at which the writer checkpoints itself: a backstop only, far above
/// [`RESTART_AT_FRAMES`], for when the checkpoints beside it cannot keep up.
const WRITER_CHECKPOINT_PAGES: u32 = 262_144;

/// How often the WAL is copied into the database file beside the writer.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL frames past which a checkpoint also makes the WAL start over (see below): 256 MiB of
/// 4 KiB pages. A restart holds the write lock for a few milliseconds and, because another
/// connection changed the WAL's header, empties the writer's page cache, so the next batches
/// read their pages again: ≈ 25 ms of delay for the sends waiting then. At 16 384 frames that
/// came every ≈ 1.5 s at 5 000 sends/s and set the p99 (≈ 15–25 ms on disk); at 65 536, every
/// ≈ 6 s, it touches fewer than 1 % of sends (p99 ≈ 5–6 ms). A quiet server never gets here:
/// its WAL starts over by itself once a passive checkpoint has copied all of it.
const RESTART_AT_FRAMES: i64 = 65_536;

/// Passive passes made before a restart, at most, to bring the frames left uncopied down to
/// [`RESTART_LEFT_FRAMES`].
const CATCH_UP_PASSES: usize = 8;

/// Frames left uncopied below which a restart checkpoint goes ahead.
const RESTART_LEFT_FRAMES: i64 = 256;

/// A passive checkpoint: the WAL's size and the frames it left uncopied, or `None` if it
/// failed (and was logged).
async fn checkpoint_passive(pool: &SqlitePool) -> Option<(i64, i64)> {
    let result: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(pool).await;
    match result {
        Ok((_busy, wal_frames, copied)) => Some((wal_frames, wal_frames - copied)),
        Err(error) => {
            tracing::warn!(%error, "WAL checkpoint failed");
            None
        }
    }
}

/// Copies the WAL into the database file every [`CHECKPOINT_EVERY`] on a read connection, so
/// the writer's commits do not pay for it. A passive checkpoint waits for nobody, and a page
/// written by many commits in between is copied once.
///
/// Under a steady write load a passive checkpoint never catches up with the last frame, so the
/// WAL would never start over and would grow without end. Once it holds [`RESTART_AT_FRAMES`],
/// a `RESTART` checkpoint follows the passive ones: it takes the write lock between two write
/// transactions, copies the few frames they left, and lets the next write start the WAL from
/// its beginning. Stops when the store is dropped.
async fn checkpoint_beside_the_writer(pool: SqlitePool, store_alive: std::sync::Weak<()>) {
    let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if store_alive.strong_count() == 0 {
            return;
        }
        let Some((wal_frames, _left)) = checkpoint_passive(&pool).await else { continue };
        if wal_frames < RESTART_AT_FRAMES {
            continue;
        }
        // Before restarting, passive passes copy what the last one left, so the restart, which
        // holds the write lock while it works, has only a few frames left to copy. If they do
        // not catch up, the next tick tries again.
        let mut restart = false;
        for _ in 0..CATCH_UP_PASSES {
            match checkpoint_passive(&pool).await {
                Some((_, left)) if left <= RESTART_LEFT_FRAMES => {
                    restart = true;
                    break;
                }
                Some(_) => {}
                None => break,
            }
        }
        if restart && let Err(error) = sqlx::query("PRAGMA wal_checkpoint(RESTART)").execute(&pool).await {
            tracing::warn!(%error, "WAL checkpoint (restart) failed");
        }
    }
}

crate::queries::impl_store!(SqliteStore, Sqlite, "sqlite", "./migrations/sqlite", "", "");

impl SqliteStore {
    /// The knowledge base's full-text search: FTS5 `MATCH` of any of the words, ranked by bm25.
    async fn search_knowledge_rows(
        &self,
        topic: &str,
        words: &[String],
        limit: u32,
    ) -> crate::StoreResult<Vec<(String, String, String)>> {
        let query = words.iter().map(|word| format!("\"{word}\"")).collect::<Vec<_>>().join(" OR ");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT e.topic, e.question, e.answer FROM knowledge_search s JOIN knowledge_entries e ON e.id = s.rowid \
             WHERE knowledge_search MATCH $1 AND e.topic = $2 ORDER BY bm25(knowledge_search){}",
            crate::queries::limit(limit)
        )))
        .bind(query)
        .bind(topic)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, StatementStatus};

    /// How many times running `sql` five times, with its parameters bound anew each time, made
    /// SQLite prepare it again.
    fn reprepares(sql: &str) -> rusqlite::Result<i32> {
        let database = Connection::open_in_memory()?;
        database.execute_batch(
            "CREATE TABLE turns (thread TEXT, at INTEGER); CREATE INDEX turns_by ON turns (thread, at);",
        )?;
        let mut statement = database.prepare(sql)?;
        for run in 0..5 {
            let thread = format!("thread {run}");
            let parameters: Vec<&dyn rusqlite::ToSql> =
                if statement.parameter_count() == 2 { vec![&thread, &20] } else { vec![&thread] };
            statement.query(parameters.as_slice())?.next()?;
        }
        Ok(statement.get_status(StatementStatus::RePrepare))
    }

    /// Why `queries::limit` writes the number into the statement.
    #[test]
    fn a_bound_limit_makes_sqlite_prepare_the_statement_on_every_run() -> rusqlite::Result<()> {
        let bound = reprepares("SELECT at FROM turns WHERE thread = ?1 ORDER BY at DESC LIMIT ?2")?;
        let written = reprepares(&format!(
            "SELECT at FROM turns WHERE thread = ?1 ORDER BY at DESC{}",
            crate::queries::limit(20)
        ))?;
        assert_eq!((bound, written), (5, 0));
        Ok(())
    }
}
