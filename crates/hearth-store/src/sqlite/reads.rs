//! The reads every request makes, run on the calling thread.
//!
//! sqlx runs each SQLite statement on its connection's own thread: the caller's task sends it
//! there, that thread wakes, runs it, sends the rows back and wakes the task again. For a read
//! of one indexed row that takes microseconds, the hand-offs cost more than the read: at 1 000
//! assistant requests a second, sqlx's channels and the thread switches they caused were about
//! a sixth of the server's CPU. The reads made for every request (the session check, and the
//! assistant thread's earlier turns) run here instead, with rusqlite on read-only connections
//! of their own, right on the calling thread, as short CPU work does.
//!
//! In WAL mode a reader does not wait for the writer. In the rare moments SQLite answers
//! `SQLITE_BUSY` all the same (another connection recovering the WAL index, say), these
//! connections do not wait either (no busy timeout, so they never sleep on a runtime thread):
//! the read is handed back, and the caller runs it through sqlx as before.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension as _, params};
use uuid::Uuid;

use crate::{AssistantTurn, Device, StoreResult};

/// Idle connections kept: one per thread that reads at a time is enough, and a runtime has a
/// handful.
const MAX_IDLE: usize = 8;

/// Read-only connections to one database file, lent to one read at a time.
#[derive(Debug)]
pub(super) struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl InlineReads {
    /// Reads of the database at `path`; connections are opened when first needed.
    pub(super) fn new(path: &Path) -> Self {
        Self { path: path.to_owned(), idle: Mutex::new(Vec::new()) }
    }

    /// The device session `device_id`, or `None` if SQLite was busy (read it elsewhere).
    pub(super) fn device(&self, device_id: Uuid) -> Option<StoreResult<Option<Device>>> {
        self.run(|database| {
            database
                .prepare_cached(crate::sessions::DEVICE_BY_ID)?
                .query_row(params![device_id], |row| {
                    Ok(Device {
                        id: row.get(0)?,
                        user_id: row.get(1)?,
                        name: row.get(2)?,
                        created_at: row.get(3)?,
                        last_seen_at: row.get(4)?,
                        revoked_at: row.get(5)?,
                    })
                })
                .optional()
        })
    }

    /// The latest `limit` turns of `user_id`'s assistant thread `thread`, newest first, or
    /// `None` if SQLite was busy (read them elsewhere).
    pub(super) fn assistant_turns(
        &self,
        user_id: Uuid,
        thread: &str,
        limit: u32,
    ) -> Option<StoreResult<Vec<AssistantTurn>>> {
        self.run(|database| {
            database
                .prepare_cached(&crate::assistant::turns_of_thread(limit))?
                .query_map(params![user_id, thread], |row| {
                    Ok(AssistantTurn {
                        id: row.get(0)?,
                        user_id: row.get(1)?,
                        thread: row.get(2)?,
                        topic: row.get(3)?,
                        prompt: row.get(4)?,
                        reply: row.get(5)?,
                        provider: row.get(6)?,
                        answered: row.get(7)?,
                        attempts: row.get(8)?,
                        inserted_at: row.get(9)?,
                    })
                })?
                .collect()
        })
    }

    /// Runs `read` on an idle connection (opening one if none is), or returns `None` if SQLite
    /// was busy.
    fn run<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<StoreResult<T>> {
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let database = match idle.map_or_else(|| self.connect(), Ok) {
            Ok(database) => database,
            Err(error) => return Some(Err(error.into())),
        };
        let result = read(&database);
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(database);
        }
        match result {
            Err(error) if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => None,
            result => Some(result.map_err(Into::into)),
        }
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let database = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // rusqlite waits 5 s by default; here a busy database hands the read back instead.
        database.busy_timeout(std::time::Duration::ZERO)?;
        Ok(database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountStore as _, NewAccount, NewSession, SessionStore as _, Store as _, Timestamp, User};

    fn account(now: Timestamp) -> NewAccount {
        NewAccount {
            user: User {
                id: Uuid::now_v7(),
                email: "ada@example.com".to_owned(),
                display_name: "Ada".to_owned(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
                confirmed_at: None,
                inserted_at: now,
                updated_at: now,
                identity_key: None,
            },
            session: NewSession {
                device_id: Uuid::now_v7(),
                name: "laptop".to_owned(),
                refresh_token_hash: [7; 32],
                refresh_expires_at: now.plus_secs(3600),
                created_at: now,
            },
        }
    }

    #[tokio::test]
    async fn the_session_check_runs_here_and_sees_each_commit_at_once() -> Result<(), Box<dyn std::error::Error>> {
        let database = crate::testing::TestDatabase::sqlite();
        let store = crate::SqliteStore::open(&database.url, 2).await?;
        store.migrate().await?;
        let reads = store.inline_reads().ok_or("a database in a file reads inline")?;
        let now = Timestamp::now();
        let account = account(now);
        store.create_account(&account).await?;
        let device = store.device(account.session.device_id).await?.ok_or("the new session")?;
        assert_eq!((device.user_id, device.revoked_at), (account.user.id, None));
        // The read ran on a connection of its own, now idle again: not through sqlx.
        assert_eq!(reads.idle.lock().map_err(|_| "poisoned")?.len(), 1);
        store.revoke_device(account.user.id, device.id, now).await?;
        let revoked = store.device(device.id).await?.ok_or("still there")?;
        assert_eq!(revoked.revoked_at, Some(now), "a revocation is seen by the very next check");
        assert_eq!(store.device(Uuid::now_v7()).await?, None);
        Ok(())
    }

    /// The thread's context is read straight off the table's key, with no sort on the side.
    #[tokio::test]
    async fn a_threads_turns_come_in_index_order() -> Result<(), Box<dyn std::error::Error>> {
        let database = crate::testing::TestDatabase::sqlite();
        crate::SqliteStore::open(&database.url, 2).await?.migrate().await?;
        let plan: Vec<String> = Connection::open(database.url.trim_start_matches("sqlite://"))?
            .prepare(&format!("EXPLAIN QUERY PLAN {}", crate::assistant::turns_of_thread(50)))?
            .query_map(params![Uuid::now_v7(), "conv_1"], |row| row.get::<_, String>(3))?
            .collect::<rusqlite::Result<_>>()?;
        assert_eq!(plan, ["SEARCH assistant_turns USING PRIMARY KEY (user_id=? AND thread=?)"]);
        Ok(())
    }

    #[test]
    fn a_busy_database_hands_the_read_back() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("hearth.db");
        // A connection that keeps the database to itself: others get SQLITE_BUSY.
        let owner = Connection::open(&path)?;
        owner.execute_batch(
            "PRAGMA journal_mode = WAL; \
             CREATE TABLE devices (id BLOB PRIMARY KEY, user_id BLOB, name TEXT, created_at INTEGER, \
                 last_seen_at INTEGER, revoked_at INTEGER); \
             PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; DELETE FROM devices;",
        )?;
        let reads = InlineReads::new(&path);
        assert!(reads.device(Uuid::now_v7()).is_none(), "handed back to be read through sqlx");
        assert!(reads.assistant_turns(Uuid::now_v7(), "conv_1", 5).is_none());
        owner.execute_batch("COMMIT; PRAGMA locking_mode = NORMAL; SELECT count(*) FROM devices;")?;
        drop(owner);
        assert!(matches!(reads.device(Uuid::now_v7()), Some(Ok(None))), "read once the database is free");
        Ok(())
    }
}
