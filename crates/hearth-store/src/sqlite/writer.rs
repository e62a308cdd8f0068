//! Batches of writes run from `BEGIN` to `COMMIT` in one blocking call on the write
//! connection's own handle.
//!
//! sqlx runs every SQLite statement on the connection's worker thread and hands each result
//! back to an async task, which then sends the next statement. A batch of four statements and a
//! commit made five such round trips while the database's one write lock was held, and under
//! load each waited for a busy runtime thread: at 5 000 sends/s the writer thread was on the
//! CPU 47 % of the time while batches ran back to back, and the rest it waited for the next
//! statement. Here a batch runs on one blocking thread, with rusqlite on the same SQLite
//! connection, which sqlx lends through its locked handle: while the handle is locked, sqlx's
//! own worker makes no call on the connection. Everything else still writes through sqlx on
//! that same connection, so SQLite keeps one writer.

use rusqlite::Connection;
use sqlx::SqlitePool;

use crate::{StoreError, StoreResult};

/// Runs `work` on the write connection (`writer`, its pool of one), on a blocking thread.
#[expect(unsafe_code, reason = "rusqlite wraps the raw handle that sqlx lends while it is locked")]
pub(super) async fn run<T: Send + 'static>(
    writer: SqlitePool,
    work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    let mut connection = writer.acquire().await?;
    // The connection moves into the blocking call and is returned to the pool only when the
    // call ends, so nothing can use it meanwhile, even if this task is dropped.
    let done = tokio::task::spawn_blocking(move || {
        let mut handle = tokio::runtime::Handle::current().block_on(connection.lock_handle())?;
        // SAFETY: `handle` keeps sqlx's worker off the connection until it is dropped, after
        // `database`; dropping `database` finalizes the statements it prepared and leaves the
        // connection open (`from_handle` does not own it).
        let database = unsafe { Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
        work(&database)
    })
    .await;
    match done {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(StoreError::WriterStopped),
    }
}
