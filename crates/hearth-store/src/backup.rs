//! Copies of a SQLite database made while servers keep writing to it (`hearth backup`), and
//! their way back into a place where no database is (`hearth restore`).
//!
//! Both copy with `VACUUM INTO`: one read transaction, so the copy is the database as of one
//! moment (every commit before it, none after), read beside the server's own connections
//! without stopping its writer (in WAL mode readers never block it). The copy is a single file
//! with no write-ahead log, written under a temporary name, synced, checked, and only then
//! linked under its own name, which never replaces an existing file: a failed or interrupted
//! copy leaves nothing behind that looks like a backup.
//!
//! PostgreSQL has its own tools for this (`pg_dump`, `pg_restore`); `hearth` explains them.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{StoreError, StoreResult};

/// What a copy holds, as counted in it once it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupContents {
    /// Size of the copy.
    pub bytes: u64,
    /// Accounts.
    pub accounts: u64,
    /// Conversations (the assistant's included).
    pub conversations: u64,
    /// Messages (message groups: one per send, whatever the number of recipients).
    pub messages: u64,
    /// Provider keys, sealed by the keyguard (people's own and the free tier's pool).
    pub provider_keys: u64,
}

/// The file of a `sqlite:` database URL, as the store opens it.
pub fn sqlite_file(url: &str) -> StoreResult<PathBuf> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|_| refused(format!("{url} is not a SQLite database URL")))?;
    let file = options.get_filename();
    if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
        return Err(refused("the database is in memory: there is nothing on disk to copy".to_owned()));
    }
    Ok(file.to_owned())
}

/// Copies the database at `database` into the new file `to` while servers keep using it.
/// Refused when `to` exists (a backup never replaces a file) or `database` does not.
pub fn backup(database: &Path, to: &Path) -> StoreResult<BackupContents> {
    if !database.is_file() {
        return Err(refused(format!(
            "there is no database at {}: check --data-dir or --database-url (the settings `hearth serve` uses)",
            database.display()
        )));
    }
    let source = open(database, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    copy(&source, to)
}

/// Copies the backup `from` into `database`, where no database may be yet. Refused when
/// `from` is not a backup of hearth's, or one made by a newer hearth than this one (its
/// migrations unknown here); the database's own migrations bring an older one up to date when
/// the server starts.
pub fn restore(from: &Path, database: &Path) -> StoreResult<BackupContents> {
    if !from.is_file() {
        return Err(refused(format!("there is no file at {}", from.display())));
    }
    for existing in [database.to_owned(), with_suffix(database, "-wal"), with_suffix(database, "-shm")] {
        if existing.exists() {
            return Err(refused(format!(
                "{} already exists: a restore only goes where no database is",
                existing.display()
            )));
        }
    }
    let not_a_backup = |_| refused(format!("{} is not a backup of hearth's (not a SQLite database)", from.display()));
    let source = open(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    check(&source).map_err(not_a_backup)?;
    let known: Vec<i64> = sqlx::migrate!("./migrations/sqlite").iter().map(|migration| migration.version).collect();
    let applied = applied_migrations(&source)
        .map_err(|_| refused(format!("{} is not a backup of hearth's (it has no migrations table)", from.display())))?;
    if let Some(unknown) = applied.iter().find(|version| !known.contains(version)) {
        return Err(refused(format!(
            "{} was made by a newer hearth (its migration {unknown} is unknown to this one): restore it with that \
             version or a later one",
            from.display()
        )));
    }
    copy(&source, database)
}

/// `VACUUM INTO` a temporary file beside `to`, synced and checked, then linked as `to`.
fn copy(source: &Connection, to: &Path) -> StoreResult<BackupContents> {
    if to.exists() {
        return Err(refused(format!("{} already exists: choose another name (nothing is replaced)", to.display())));
    }
    let name = to.file_name().ok_or_else(|| refused(format!("{} names no file", to.display())))?;
    let partial = to.with_file_name(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    let result = copy_through(source, &partial, to);
    // Gone once linked; after a failure, nothing half-made stays.
    let _ = std::fs::remove_file(&partial);
    result
}

fn copy_through(source: &Connection, partial: &Path, to: &Path) -> StoreResult<BackupContents> {
    // Created empty first, readable by its owner only: the copy holds password hashes and
    // sealed keys, and SQLite keeps the mode of a file it writes into (`VACUUM INTO` accepts an
    // empty one).
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(partial).map_err(|error| io(partial, &error))?;
    let path = partial.to_str().ok_or_else(|| refused(format!("{} is not UTF-8", partial.display())))?;
    source.execute("VACUUM INTO ?1", [path])?;
    // SQLite does not sync what `VACUUM INTO` wrote.
    std::fs::File::open(partial).and_then(|file| file.sync_all()).map_err(|error| io(partial, &error))?;
    let copy = open(partial, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    check(&copy)?;
    let contents = contents(&copy, partial)?;
    drop(copy);
    std::fs::hard_link(partial, to).map_err(|error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => {
            refused(format!("{} already exists: choose another name (nothing is replaced)", to.display()))
        }
        _ => io(to, &error),
    })?;
    if let Some(directory) = to.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        // The new name itself survives a crash only once its directory is synced.
        let _ = std::fs::File::open(directory).and_then(|directory| directory.sync_all());
    }
    Ok(contents)
}

fn open(path: &Path, flags: OpenFlags) -> StoreResult<Connection> {
    let database = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // As the server's connections wait: a checkpoint holding a lock briefly is waited for.
    database.busy_timeout(Duration::from_secs(10))?;
    Ok(database)
}

/// SQLite's own check of a database's structure.
fn check(database: &Connection) -> StoreResult<()> {
    let verdict: String = database.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    if verdict == "ok" { Ok(()) } else { Err(refused(format!("the copy fails SQLite's check: {verdict}"))) }
}

fn applied_migrations(database: &Connection) -> Result<Vec<i64>, rusqlite::Error> {
    let mut statement = database.prepare("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")?;
    statement.query_map([], |row| row.get(0))?.collect()
}

fn contents(copy: &Connection, file: &Path) -> StoreResult<BackupContents> {
    let count = |table: &str| -> StoreResult<u64> {
        let rows: i64 = copy.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get(0))?;
        Ok(u64::try_from(rows).unwrap_or_default())
    };
    Ok(BackupContents {
        bytes: std::fs::metadata(file).map_err(|error| io(file, &error))?.len(),
        accounts: count("users")?,
        conversations: count("conversations")?,
        messages: count("message_groups")?,
        provider_keys: count("provider_keys")?,
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn refused(reason: String) -> StoreError {
    StoreError::Backup(reason)
}

fn io(path: &Path, error: &std::io::Error) -> StoreError {
    StoreError::Backup(format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store as _;

    /// A new directory of this test's own under the system's temporary one.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-backup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    }

    fn refusal(result: StoreResult<BackupContents>) -> String {
        match result {
            Err(StoreError::Backup(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_copy_restores_once_and_what_is_no_backup_is_refused() {
        let dir = scratch("refusals");
        let database = dir.join("hearth.db");
        let store = crate::SqliteStore::open(&format!("sqlite://{}", database.display()), 2).await.expect("a store");
        store.migrate().await.expect("migrated");

        let copy = dir.join("copy.db");
        assert_eq!(backup(&database, &copy).expect("a backup").accounts, 0);
        assert!(refusal(backup(&database, &copy)).contains("already exists"));
        assert!(refusal(backup(&dir.join("none.db"), &dir.join("other.db"))).contains("no database"));

        let restored = dir.join("restored.db");
        restore(&copy, &restored).expect("restored");
        assert!(refusal(restore(&copy, &restored)).contains("already exists"));

        let text = dir.join("notes.txt");
        std::fs::write(&text, "not a database, but long enough to have a header's worth of bytes in it")
            .expect("a file");
        assert!(refusal(restore(&text, &dir.join("from-text.db"))).contains("not a backup"));
        assert!(!dir.join("from-text.db").exists());

        // As if a later hearth had added a migration this one does not know.
        let newer = dir.join("newer.db");
        backup(&database, &newer).expect("a backup");
        Connection::open(&newer)
            .and_then(|database| {
                database.execute(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                     VALUES (99991231000000, 'from the future', 1, x'00', 0)",
                    [],
                )
            })
            .expect("a migration from the future");
        assert!(refusal(restore(&newer, &dir.join("from-newer.db"))).contains("newer hearth"));
        assert!(!dir.join("from-newer.db").exists());
        let leftovers: Vec<String> = std::fs::read_dir(&dir)
            .expect("the directory")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.contains(".partial-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
