//! The batches of writes (sends, assistant turns, the last checkpoint pass) run from `BEGIN` to
//! `COMMIT` on a thread of their own, the writer thread, with rusqlite on the write
//! connection's SQLite handle.
//!
//! sqlx runs every SQLite statement on the connection's worker thread and hands each result
//! back to an async task, which then sends the next statement; a batch of four statements and a
//! commit made five such round trips while the database's one write lock was held. So batches
//! run with rusqlite on the same SQLite connection, which sqlx lends through its locked handle:
//! while the handle is locked, sqlx's own worker makes no call on the connection. Everything
//! else still writes through sqlx on that same connection, so SQLite keeps one writer.
//!
//! Borrowing the connection costs hand-offs between threads: taking it from the pool, waking
//! sqlx's worker to unlock the handle, waking it again to lock it back, and the ping sqlx makes
//! on the worker when a connection goes back to the pool. Made for every batch, at 2 000
//! assistant requests a second those hand-offs cost more CPU than the SQL: 0.46–0.50 ms of
//! CPU per request with the turns stored, 0.40–0.43 ms with the turns handed over but no SQL
//! run, 0.29–0.32 ms with no turn stored at all (bench/RESULTS.md). So the writer thread
//! keeps the connection while batches keep coming, [`IDLE_HOLD`] after the last one and
//! [`MAX_HOLD`] at most, and its statements stay prepared meanwhile. A write through sqlx
//! waits for it that long at most.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sqlx::SqlitePool;
use tokio::sync::oneshot;

use crate::{StoreError, StoreResult};

/// How long the writer thread keeps the connection after its last batch, for the next one.
const IDLE_HOLD: Duration = Duration::from_millis(2);

/// How long the writer thread keeps the connection at most, however busy, before giving writes
/// through sqlx their turn.
const MAX_HOLD: Duration = Duration::from_millis(10);

/// Work for the writer thread: given the connection, or why it could not be had.
type Job = Box<dyn FnOnce(StoreResult<&Connection>) + Send>;

/// The writer thread's queue. Clones share the thread, which ends once every clone is gone.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread for `pool`, the pool of the one write connection, borrowing it
    /// through `runtime`.
    pub(super) fn start(pool: SqlitePool, runtime: tokio::runtime::Handle) -> StoreResult<Self> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || serve(&queue, &pool, &runtime))
            .map_err(sqlx::Error::Io)?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the write connection, in a transaction of its own making. A panic in
    /// `work` is raised again here.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, outcome) = oneshot::channel();
        let job: Job = Box::new(move |database| {
            let result = catch_unwind(AssertUnwindSafe(|| database.and_then(work)));
            // A caller that gave up no longer waits; the work is done all the same.
            let _ = reply.send(result);
        });
        self.jobs.send(job).map_err(|_| StoreError::WriterStopped)?;
        match outcome.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => Err(StoreError::WriterStopped),
        }
    }
}

/// The writer thread: waits for a job, borrows the connection, and runs jobs on it until none
/// has come for [`IDLE_HOLD`] or it has held it for [`MAX_HOLD`].
fn serve(queue: &mpsc::Receiver<Job>, pool: &SqlitePool, runtime: &tokio::runtime::Handle) {
    // Taking the connection needs the runtime (sqlx's timers), as does giving it back (sqlx
    // pings it in a task of the runtime).
    let _context = runtime.enter();
    while let Ok(first) = queue.recv() {
        let mut connection = match on_the_runtime(|| runtime.block_on(pool.acquire())) {
            Ok(connection) => connection,
            Err(error) => {
                first(Err(error));
                continue;
            }
        };
        let borrowed: &mut sqlx::SqliteConnection = &mut connection;
        let mut handle = match on_the_runtime(move || runtime.block_on({ borrowed }.lock_handle())) {
            Ok(handle) => handle,
            Err(error) => {
                first(Err(error));
                continue;
            }
        };
        // SAFETY: `handle` keeps sqlx's worker off the connection until it is dropped, after
        // `database`; dropping `database` finalizes the statements it prepared and leaves the
        // connection open (`from_handle` does not own it).
        #[expect(unsafe_code, reason = "rusqlite wraps the raw handle that sqlx lends while it is locked")]
        let database = unsafe { Connection::from_handle(handle.as_raw_handle().as_ptr()) };
        match database {
            Ok(database) => {
                hold(&database, first, queue);
                drop(database);
            }
            Err(error) => first(Err(error.into())),
        }
        drop(handle);
        // Back to the pool, through a task of the runtime (dropped if it has shut down).
        let _ = catch_unwind(AssertUnwindSafe(|| drop(connection)));
    }
}

/// Runs `wait`, a wait on the runtime for sqlx. Once the runtime has shut down that panics:
/// then the writer has stopped, for this job and the next.
fn on_the_runtime<T>(wait: impl FnOnce() -> Result<T, sqlx::Error>) -> StoreResult<T> {
    match catch_unwind(AssertUnwindSafe(wait)) {
        Ok(result) => Ok(result?),
        Err(_) => Err(StoreError::WriterStopped),
    }
}

/// Runs `first` and the jobs that follow it closely on `database`.
fn hold(database: &Connection, first: Job, queue: &mpsc::Receiver<Job>) {
    let since = Instant::now();
    let mut job = first;
    loop {
        job(Ok(database));
        if since.elapsed() >= MAX_HOLD {
            return;
        }
        match queue.recv_timeout(IDLE_HOLD) {
            Ok(next) => job = next,
            Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    async fn writer_pool() -> Result<(crate::testing::TestDatabase, SqlitePool), Box<dyn std::error::Error>> {
        let database = crate::testing::TestDatabase::sqlite();
        let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&database.url)?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        sqlx::query("CREATE TABLE written (who TEXT)").execute(&pool).await?;
        Ok((database, pool))
    }

    fn insert(database: &Connection, who: &str) -> StoreResult<()> {
        database.prepare_cached("INSERT INTO written (who) VALUES (?1)")?.execute([who])?;
        Ok(())
    }

    /// While jobs keep coming the writer thread keeps the connection, but a write through
    /// sqlx still gets it ([`MAX_HOLD`]); without that bound it would wait for ever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_through_sqlx_gets_its_turn_while_batches_keep_coming() -> Result<(), Box<dyn std::error::Error>> {
        let (_database, pool) = writer_pool().await?;
        let writer = Writer::start(pool.clone(), tokio::runtime::Handle::current())?;
        let stop = Arc::new(AtomicBool::new(false));
        // Many submitters, so jobs are always queued when the one before them ends.
        let busy: Vec<_> = (0..32)
            .map(|_| {
                let (writer, stop) = (writer.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut jobs = 0_u64;
                    while !stop.load(Ordering::Relaxed) {
                        writer.run(|database| insert(database, "batch")).await?;
                        jobs += 1;
                    }
                    Ok::<_, StoreError>(jobs)
                })
            })
            .collect();
        // Let the writer thread take the connection first.
        while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM written").fetch_one(&pool).await? < 100 {}
        let through_sqlx = tokio::time::timeout(
            Duration::from_secs(20),
            sqlx::query("INSERT INTO written (who) VALUES ('sqlx')").execute(&pool),
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        let mut batches = 0;
        for task in busy {
            batches += task.await??;
        }
        assert!(through_sqlx.is_ok(), "the write through sqlx never got the connection");
        through_sqlx??;
        assert!(batches > 0);
        Ok(())
    }

    /// A job that panics fails its caller (the panic is raised there); the writer thread
    /// and the connection go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_that_panics_fails_only_its_caller() -> Result<(), Box<dyn std::error::Error>> {
        let (_database, pool) = writer_pool().await?;
        let writer = Writer::start(pool.clone(), tokio::runtime::Handle::current())?;
        let panicking = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .run(|database| {
                        insert(database, "before the panic")?;
                        assert!(!database.is_autocommit(), "unlucky");
                        Ok(())
                    })
                    .await
            }
        });
        let failed = panicking.await.err().ok_or("the caller did not panic")?;
        assert!(failed.is_panic());
        writer.run(|database| insert(database, "after")).await?;
        drop(writer);
        let rows: Vec<String> = sqlx::query_scalar("SELECT who FROM written").fetch_all(&pool).await?;
        // No transaction was open, so the first insert stands: the job's own work, not undone.
        assert_eq!(rows, ["before the panic", "after"]);
        Ok(())
    }
}
