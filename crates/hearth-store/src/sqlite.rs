//! The SQLite backend: one file in WAL mode, foreign keys on, a busy timeout, and every write
//! on one connection of its own, with transactions started with `BEGIN IMMEDIATE`.
//!
//! SQLite has one writer at a time. Writers on several connections that contend for its lock
//! wait in SQLite's busy handler, which polls with sleeps of 1, 2, 5, … up to 100 ms: the lock
//! sits free while the next writer sleeps, so throughput drops and latency jumps by tens of
//! milliseconds under load. Writers queue instead for the one write connection in its pool,
//! which hands it to the next waiter as soon as the previous one commits. Reads use the other
//! pool and, in WAL mode, never wait for the writer; the two that every request makes (the
//! session check and an assistant thread's turns) skip sqlx and run on the calling thread
//! (`sqlite/reads.rs`).
//!
//! Sends and assistant turns, the busiest writes, are group-committed on that connection (see
//! `group_commit`), each batch in one call on the writer thread, which keeps the connection
//! while batches keep coming (`sqlite/writer.rs`), and the WAL is checkpointed beside the
//! writer rather than inside its commits.

mod accounts;
mod admin;
mod assistant;
mod conversations;
mod provider_keys;
mod reads;
mod rooms;
mod sends;
mod sessions;
mod turns;
mod writer;

use reads::InlineReads;
use writer::Writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use crate::send_batch::Sends;
use crate::turn_batch::Turns;
use crate::{Store, StoreResult};

/// A store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    /// The reads every request makes, on the calling thread (none for a database in memory).
    reads: Option<std::sync::Arc<InlineReads>>,
    /// The one write connection.
    writer: SqlitePool,
    /// `send_message`, group-committed on the write connection.
    sends: Sends,
    /// `record_assistant_turn`, group-committed on the write connection.
    turns: Turns,
    /// Held while the store lives: the checkpoint thread stops once every clone is gone.
    _alive: Option<std::sync::mpsc::Sender<()>>,
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
        let batches = Writer::start(writer.clone(), tokio::runtime::Handle::current())?;
        let file = database_file(&pool).await?;
        let alive = match &file {
            Some(path) => Some(start_checkpoints(path, batches.clone())?),
            None => None,
        };
        let reads = file.map(|path| std::sync::Arc::new(InlineReads::new(&path)));
        // One worker each: SQLite has one writer, and batches are what let it keep up.
        let sends = sends::start(batches.clone());
        let turns = turns::start(batches);
        Ok(Self { pool, reads, writer, sends, turns, _alive: alive })
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

    fn inline_reads(&self) -> Option<&InlineReads> {
        self.reads.as_deref()
    }
}

/// The file the database of `pool` lives in, or `None` for a database in memory, which has no
/// WAL to checkpoint.
async fn database_file(pool: &SqlitePool) -> StoreResult<Option<std::path::PathBuf>> {
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'").fetch_one(pool).await?;
    Ok((!file.is_empty()).then(|| file.into()))
}

/// Starts the checkpoints of the database at `path` (see [`checkpoint_beside_the_writer`]) on a
/// connection and a thread of their own, with the last pass before the WAL starts over on
/// `writer`; they run until the returned sender is dropped.
fn start_checkpoints(path: &std::path::Path, writer: Writer) -> StoreResult<std::sync::mpsc::Sender<()>> {
    let database = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // NORMAL, as on the other connections: the WAL is synced before each checkpoint and the
    // database file after it (the connection's setting decides what its checkpoints sync).
    database.pragma_update(None, "synchronous", "NORMAL")?;
    database.busy_timeout(Duration::from_secs(10))?;
    let (alive, store_dropped) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn({
            let runtime = tokio::runtime::Handle::current();
            move || checkpoint_beside_the_writer(database, &store_dropped, &runtime, &writer)
        })
        .map_err(sqlx::Error::Io)?;
    Ok(alive)
}

/// The WAL size (in pages) at which the writer checkpoints itself: a backstop only, far above
/// [`RESTART_AT_FRAMES`], for when the checkpoints beside it cannot keep up.
const WRITER_CHECKPOINT_PAGES: u32 = 262_144;

/// How often the WAL is copied into the database file beside the writer.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL frames past which the checkpoints make the WAL start over (see
/// [`checkpoint_beside_the_writer`]): 256 MiB of 4 KiB pages, every ≈ 4–6 s at 5 000 sends/s.
/// Until then the WAL only grows; a quiet server never gets here, as its WAL starts over by
/// itself once a passive checkpoint has copied all of it.
#[cfg(not(test))]
const RESTART_AT_FRAMES: i64 = 65_536;
/// Small enough for a test to pass it many times over in a second.
#[cfg(test)]
const RESTART_AT_FRAMES: i64 = 512;

/// Passive passes made before the last one on the write connection, at most, to bring the
/// frames left uncopied down to [`LAST_PASS_FRAMES`].
const CATCH_UP_PASSES: usize = 8;

/// Frames left uncopied below which the last pass, which holds the write connection while it
/// works, goes ahead.
const LAST_PASS_FRAMES: i64 = 256;

/// A passive checkpoint: the WAL's size and the frames it left uncopied, or `None` if it
/// failed (and was logged).
fn checkpoint_passive(database: &rusqlite::Connection) -> Option<(i64, i64)> {
    let result = database
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?)));
    match result {
        Ok((wal_frames, copied)) => Some((wal_frames, wal_frames - copied)),
        Err(error) => {
            tracing::warn!(%error, "WAL checkpoint failed");
            None
        }
    }
}

/// Copies the WAL into the database file every [`CHECKPOINT_EVERY`], so the writer's commits
/// do not pay for it. A passive checkpoint waits for nobody, and a page written by many
/// commits in between is copied once.
///
/// It runs on a connection and a thread of its own: a checkpoint mostly waits for the disk
/// (at 5 000 sends/s, ≈ 4 400 frames every 250 ms took 15–35 ms, 6–9 ms of it on the CPU), and
/// on one of the read pool's connections, as it did before, the reads queued behind it waited
/// that long too.
///
/// Under a steady write load a passive checkpoint never reaches the WAL's last frame, as the
/// writer adds more while it copies, so the WAL would never start over and would grow without
/// end. Once it holds [`RESTART_AT_FRAMES`], passive passes copy nearly all of it, and the last
/// few frames are copied on the write connection itself (`writer`, through `runtime`), between
/// two of its transactions, where nothing is added meanwhile. The writer's next transaction
/// then starts the WAL over by itself: SQLite does so when a write begins on a WAL copied to its
/// end that no reader is still reading. Before, a `RESTART` checkpoint on this connection did
/// that instead, and held sends back far longer: it waited for the write lock and for the
/// readers (sends stalled 19–47 ms), and because it changed the WAL's header under the writer,
/// the writer's page cache was emptied and the next batch took ≈ 35 ms to read its pages
/// again. If a reader still holds an old snapshot, the WAL does not start over and the next
/// tick tries again. Stops as soon as the store is dropped (`store_dropped` disconnects).
fn checkpoint_beside_the_writer(
    database: rusqlite::Connection,
    store_dropped: &std::sync::mpsc::Receiver<()>,
    runtime: &tokio::runtime::Handle,
    writer: &Writer,
) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = store_dropped.recv_timeout(CHECKPOINT_EVERY) {
        let Some((wal_frames, _)) = checkpoint_passive(&database) else { continue };
        if wal_frames < RESTART_AT_FRAMES {
            continue;
        }
        let caught_up =
            (0..CATCH_UP_PASSES).map_while(|_| checkpoint_passive(&database)).any(|(_, left)| left <= LAST_PASS_FRAMES);
        if caught_up {
            // A task of the runtime: spawned while the runtime shuts down, it is cancelled
            // quietly instead of failing (and warning) for want of the runtime.
            let writer = writer.clone();
            let last_pass = runtime.spawn(async move { writer.run(|database| Ok(checkpoint_passive(database))).await });
            if let Ok(Err(error)) = futures::executor::block_on(last_pass) {
                tracing::warn!(%error, "WAL checkpoint on the write connection failed");
            }
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<usize> {
        let migrator = sqlx::migrate!("./migrations/sqlite");
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
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query(crate::sql::PING).execute(&self.pool).await?;
        Ok(())
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

    /// Why `sql::limit` writes the number into the statement.
    #[test]
    fn a_bound_limit_makes_sqlite_prepare_the_statement_on_every_run() -> rusqlite::Result<()> {
        let bound = reprepares("SELECT at FROM turns WHERE thread = ?1 ORDER BY at DESC LIMIT ?2")?;
        let written =
            reprepares(&format!("SELECT at FROM turns WHERE thread = ?1 ORDER BY at DESC{}", crate::sql::limit(20)))?;
        assert_eq!((bound, written), (5, 0));
        Ok(())
    }

    /// The file of a test database.
    fn file_of(database: &crate::testing::TestDatabase) -> std::path::PathBuf {
        database.url.trim_start_matches("sqlite://").into()
    }

    /// Whether the database file at `path` read alone, without its WAL, has the table `name`:
    /// only once a checkpoint has copied it there. A copy taken while a checkpoint writes may
    /// not open; that counts as not yet.
    fn in_the_database_file(path: &std::path::Path, name: &str) -> bool {
        let copy = path.with_extension("copy");
        let found = std::fs::copy(path, &copy).ok().and_then(|_| {
            let database = Connection::open(&copy).ok()?;
            database
                .query_row("SELECT count(*) FROM sqlite_schema WHERE name = ?1", [name], |row| row.get::<_, i64>(0))
                .ok()
        });
        for leftover in ["copy", "copy-wal", "copy-shm"] {
            let _ = std::fs::remove_file(path.with_extension(leftover));
        }
        found == Some(1)
    }

    /// A write reaches the database file itself while the store stays open: nothing but the
    /// checkpoint thread copies a WAL this small there (SQLite's own checkpoints come only at
    /// the writer's backstop size, or when the last connection closes).
    #[tokio::test]
    async fn the_checkpoint_thread_copies_writes_into_the_database_file() -> Result<(), Box<dyn std::error::Error>> {
        let database = crate::testing::TestDatabase::sqlite();
        let path = file_of(&database);
        let store = super::SqliteStore::open(&database.url, 2).await?;
        sqlx::query("CREATE TABLE written_while_open (value TEXT)").execute(store.writer()).await?;
        let mut copied = false;
        for _ in 0..40 {
            tokio::time::sleep(super::CHECKPOINT_EVERY).await;
            if in_the_database_file(&path, "written_while_open") {
                copied = true;
                break;
            }
        }
        assert!(copied, "the write never reached the database file in 40 checkpoint intervals");
        Ok(())
    }

    /// What changes in a WAL's header each time the WAL starts over: the checkpoint sequence
    /// number and the two salts (bytes 12 to 24), or `None` while there is no header to read.
    fn wal_generation(wal: &std::path::Path) -> Option<[u8; 12]> {
        use std::io::Read;
        let mut header = [0_u8; 24];
        std::fs::File::open(wal).ok()?.read_exact(&mut header).ok()?;
        let mut generation = [0_u8; 12];
        generation.copy_from_slice(&header[12..]);
        Some(generation)
    }

    /// Under writes that never pause, the WAL still starts over once it has
    /// [`super::RESTART_AT_FRAMES`]: it does not grow with everything written. Counted by the
    /// WAL's header, which SQLite writes anew each time, not by the file's size: the file keeps
    /// its largest size, and how large that gets between two checkpoint ticks depends on how
    /// fast the machine writes against how fast its disk syncs (a CI machine under the other
    /// tests' load reached 10 000 frames once).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_steady_writes_the_wal_starts_over() -> Result<(), Box<dyn std::error::Error>> {
        let database = crate::testing::TestDatabase::sqlite();
        let wal = file_of(&database).with_extension("db-wal");
        let store = super::SqliteStore::open(&database.url, 2).await?;
        sqlx::query("CREATE TABLE filler (value BLOB)").execute(store.writer()).await?;
        let page = vec![7u8; 3000];
        // Enough commits that a WAL which never started over would hold four times the frames
        // it may reach, and three fresh starts seen. They come about one a checkpoint interval;
        // a slow machine gets forty. Without the last pass on the write connection, a passive
        // checkpoint that happens to copy the WAL to its end between two commits starts it over
        // too, but seldom: three took 45 s, not 1 s.
        let enough_commits = u64::try_from(4 * super::RESTART_AT_FRAMES)?;
        let deadline = std::time::Instant::now() + super::CHECKPOINT_EVERY * 40;
        let (mut commits, mut fresh_starts) = (0_u64, 0_u32);
        let mut generation = None;
        while (commits < enough_commits || fresh_starts < 3) && std::time::Instant::now() < deadline {
            sqlx::query("INSERT INTO filler VALUES (?1)").bind(&page).execute(store.writer()).await?;
            commits += 1;
            let now = wal_generation(&wal);
            if generation.is_some() && now.is_some() && now != generation {
                fresh_starts += 1;
            }
            generation = now.or(generation);
        }
        assert!(
            fresh_starts >= 3,
            "the WAL started over {fresh_starts} times in 40 checkpoint intervals ({commits} commits of at least one page)"
        );
        Ok(())
    }
}
