//! What the SQL of every area shares, on both backends: how a `LIMIT` is written, and how the
//! database's refusals and "changed nothing" become [`StoreError`]s.
//!
//! sqlx binds `$1, $2, …` on SQLite and PostgreSQL alike, and every column type used (UUID,
//! [`Timestamp`](crate::Timestamp), bool, f64, text, bytes) maps on both, so most statements
//! are the same text on both backends. Each area keeps those beside its contract (e.g.
//! `accounts.rs`); a backend writes its own only where it must differ (row locks, full-text
//! search).

use crate::StoreError;

/// ` LIMIT n`, written into the statement instead of bound. SQLite's planner reads a bound
/// `LIMIT ?` and so marks the prepared statement stale whenever it is bound again: every
/// execution parsed and planned the statement anew (seen as `sqlite3Reprepare` under
/// `sqlite3_step` in profiles). `n` is an integer, so it cannot change what the statement does.
/// Each page size in use gets its own cached statement; a client that keeps changing its page
/// size costs what every page cost before: a fresh plan.
pub(crate) fn limit(n: u32) -> String {
    format!(" LIMIT {n}")
}

/// [`StoreError::NotFound`] when a statement that targets one row changed none.
pub(crate) fn found(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] naming `what`.
pub(crate) fn on_unique(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => error.into(),
    }
}

/// Maps a foreign-key violation (a referenced row, e.g. a user, does not exist) to
/// [`StoreError::NotFound`].
pub(crate) fn on_foreign_key(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        _ => error.into(),
    }
}

/// How many migrations have been applied (the table is missing before the first).
pub(crate) const APPLIED_MIGRATIONS: &str = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";

/// The cheapest round trip.
pub(crate) const PING: &str = "SELECT 1";

/// How many of `migrator`'s migrations were still to apply when `applied` had been.
pub(crate) fn pending(migrator: &sqlx::migrate::Migrator, applied: i64) -> usize {
    migrator.iter().count().saturating_sub(applied as usize)
}
