//! `hearth backup` and `hearth restore` with the settings `hearth serve` runs with: where the
//! database is (the copying itself is `hearth_store::backup`), that a restore goes into an
//! empty data directory, and which key files a backup must be kept apart from.

use std::path::{Path, PathBuf};

use hearth_store::StoreError;
use hearth_store::backup::BackupContents;

use crate::error::ServerError;
use crate::settings::Settings;

/// What `hearth backup` did.
#[derive(Debug)]
pub enum Backup {
    /// A copy of the SQLite database was written.
    Made(BackupContents),
    /// The database is PostgreSQL, whose own tools make the copy (see [`POSTGRES_BACKUP`]).
    Postgres,
}

/// How a PostgreSQL database is backed up and restored: its own tools do it while servers run.
pub const POSTGRES_BACKUP: &str = "The database is PostgreSQL, which makes consistent copies itself while hearth \
     runs:\n    pg_dump --format=custom --file=FILE '<database.url>'\nand restores one into an empty database with:\n    \
     pg_restore --no-owner --dbname='<database.url>' FILE\nhearth made no copy.";

/// A secret a backup's contents are sealed or signed with, and where it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// What it is and what depends on it, for a person.
    pub what: &'static str,
    /// Its file, or where it is when it is no file of this server's.
    pub place: String,
}

/// Copies the database to the new file `to` while servers keep running.
pub fn backup(settings: &Settings, to: &Path) -> Result<Backup, ServerError> {
    let Some(database) = sqlite_file(settings)? else { return Ok(Backup::Postgres) };
    Ok(Backup::Made(hearth_store::backup::backup(&database, to)?))
}

/// Restores the backup `from` into the data directory, which must be empty or not exist yet
/// (and is then made, readable by its owner only). Refused with PostgreSQL (see
/// [`POSTGRES_BACKUP`]).
pub fn restore(settings: &Settings, from: &Path) -> Result<BackupContents, ServerError> {
    let Some(database) = sqlite_file(settings)? else {
        return Err(refused(POSTGRES_BACKUP.replace("hearth made no copy.", "hearth restored nothing.")));
    };
    let data_dir = &settings.data_dir;
    if data_dir.exists() {
        let entries = std::fs::read_dir(data_dir)
            .map_err(|error| refused(format!("the data directory {}: {error}", data_dir.display())))?;
        if let Some(entry) = entries.flatten().next() {
            return Err(refused(format!(
                "the data directory {} is not empty (it holds {}, among others): restore into an empty or new \
                 directory, then put the key files back in it",
                data_dir.display(),
                entry.file_name().to_string_lossy()
            )));
        }
    }
    // Checked before the directory is made, so a refused restore leaves nothing behind.
    if !from.is_file() {
        return Err(refused(format!("there is no file at {}", from.display())));
    }
    let made = !data_dir.exists();
    crate::secrets::ensure_data_dir(data_dir)?;
    let restored = hearth_store::backup::restore(from, &database);
    if restored.is_err() && made {
        // Refused (not a backup, one from a newer hearth): the directory made for it goes too.
        let _ = std::fs::remove_dir(data_dir);
    }
    Ok(restored?)
}

/// The secrets a backup must be kept apart from (whoever holds both opens what they seal), and
/// that a restored database needs back beside it: where the settings keep each.
pub fn key_files(settings: &Settings) -> Vec<KeyFile> {
    let secrets = &settings.secrets;
    let in_file = |inline: bool, file: &Option<PathBuf>, default: &str, setting: &str| {
        if inline {
            format!("given inline in the settings ({setting})")
        } else {
            file.clone().unwrap_or_else(|| settings.data_dir.join(default)).display().to_string()
        }
    };
    let keyguard = match &settings.keyguard.connect {
        Some(connect) => {
            format!("kept by the keyguard's own process ({connect}): its keyguard_key, where that process runs")
        }
        None => settings.keyguard.master_key_file(&settings.data_dir).display().to_string(),
    };
    vec![
        KeyFile {
            what: "the vault key: seals conversations' and identities' private keys",
            place: in_file(secrets.vault_key.is_some(), &secrets.vault_key_file, "vault_key", "secrets.vault_key"),
        },
        KeyFile { what: "the keyguard's master key: seals people's AI-provider keys", place: keyguard },
        KeyFile {
            what: "the token key: signs access tokens (without it everyone signs in again)",
            place: in_file(
                secrets.secret_key_base.is_some(),
                &secrets.secret_key_base_file,
                "secret_key_base",
                "secrets.secret_key_base",
            ),
        },
    ]
}

/// The SQLite database's file, or `None` for PostgreSQL.
fn sqlite_file(settings: &Settings) -> Result<Option<PathBuf>, ServerError> {
    let url = settings.database_url();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(None);
    }
    if !url.starts_with("sqlite:") {
        return Err(ServerError::Store(StoreError::UnsupportedUrl));
    }
    Ok(Some(hearth_store::backup::sqlite_file(&url)?))
}

fn refused(reason: String) -> ServerError {
    ServerError::Store(StoreError::Backup(reason))
}
