//! The vault as the server uses it: the key ring, kept in step with its file so that
//! `hearth vault rotate` can add a key version while the server runs; and the rotation
//! itself.
//!
//! The running server reloads the ring when the file changes (checked every few seconds)
//! and at once when it meets a blob sealed under a version it does not know yet.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use hearth_store::{Store, private_key_row};
use hearth_vault::seal::blob_version;
use hearth_vault::{KeyRing, SealContext, VaultError};
use zeroize::Zeroizing;

use crate::ServerError;
use crate::realtime::conversation::private_key_context;
use crate::settings::Settings;

/// How often the server looks for a changed key-ring file.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The key ring, reloadable from its file.
#[derive(Debug)]
pub struct Vault {
    ring: RwLock<(Arc<KeyRing>, Option<SystemTime>)>,
    file: Option<PathBuf>,
}

impl Vault {
    /// A vault over `ring`, which was read from `file` (None: given inline, never reloaded).
    pub fn new(ring: KeyRing, file: Option<PathBuf>) -> Self {
        let modified = file.as_deref().and_then(modified);
        Self { ring: RwLock::new((Arc::new(ring), modified)), file }
    }

    fn current(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(std::sync::PoisonError::into_inner).0.clone()
    }

    /// Seals under the newest key.
    pub fn seal(&self, plaintext: &[u8], context: SealContext<'_>) -> Vec<u8> {
        self.current().seal(plaintext, context)
    }

    /// Opens a blob; a version this ring does not know yet makes it reload the file first.
    pub fn open(&self, blob: &[u8], context: SealContext<'_>) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        match self.current().open(blob, context) {
            Err(VaultError::UnknownKeyVersion(_)) if self.reload_if_changed() => self.current().open(blob, context),
            other => other,
        }
    }

    /// Re-reads the ring if its file changed; whether it did.
    pub fn reload_if_changed(&self) -> bool {
        let Some(file) = &self.file else { return false };
        let on_disk = modified(file);
        if on_disk == self.ring.read().unwrap_or_else(std::sync::PoisonError::into_inner).1 {
            return false;
        }
        match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|t| KeyRing::parse(&t).map_err(|e| e.to_string()))
        {
            Ok(ring) => {
                tracing::info!(version = ?ring.current_version(), "vault key ring reloaded");
                *self.ring.write().unwrap_or_else(std::sync::PoisonError::into_inner) = (Arc::new(ring), on_disk);
                true
            }
            Err(error) => {
                tracing::error!(%error, "vault key ring file changed but could not be read; keeping the old ring");
                false
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The key-ring file the settings name (the data directory's by default), or an error when
/// the key is given inline and so cannot be rotated by rewriting a file.
pub fn ring_file(settings: &Settings) -> Result<PathBuf, ServerError> {
    if settings.secrets.vault_key.is_some() {
        return Err(ServerError::Config(
            "secrets.vault_key is given inline; put the key ring in a file (secrets.vault_key_file) to rotate it"
                .into(),
        ));
    }
    Ok(settings.secrets.vault_key_file.clone().unwrap_or_else(|| settings.data_dir.join("vault_key")))
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The new key version.
    pub version: u32,
    /// Blobs re-sealed under it.
    pub rewrapped: usize,
}

/// Adds a key version to the ring file and re-seals every sealed value under it. Safe while
/// servers run: they pick up the new ring from the file, and each blob is replaced only if
/// it did not change meanwhile; passes repeat until one finds nothing left to re-seal.
pub async fn rotate(settings: &Settings, store: &dyn Store) -> Result<Rotation, ServerError> {
    let file = ring_file(settings)?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| ServerError::Secret(format!("cannot read {}: {e}", file.display())))?;
    let mut ring = KeyRing::parse(&text).map_err(|e| ServerError::Secret(format!("vault_key: {e}")))?;
    let version = ring.add_version();
    write_ring(&file, &ring)?;
    tracing::info!(version, path = %file.display(), "vault key version added");

    let mut rewrapped = 0;
    loop {
        let pass = rewrap_all(&ring, store).await?;
        rewrapped += pass;
        if pass == 0 {
            break;
        }
        // Servers may still seal under the old version until they notice the new file.
        tokio::time::sleep(RELOAD_INTERVAL * 2).await;
    }
    Ok(Rotation { version, rewrapped })
}

async fn rewrap_all(ring: &KeyRing, store: &dyn Store) -> Result<usize, ServerError> {
    let current = ring.current_version();
    let mut after = None;
    let mut rewrapped = 0;
    loop {
        let rows = store.sealed_private_keys(after, 500).await?;
        let Some(last) = rows.last() else { break };
        after = Some((last.conversation_id, last.user_id));
        for row in &rows {
            if blob_version(&row.sealed_private_key).ok() == current {
                continue;
            }
            let place = private_key_row(row.conversation_id, row.user_id);
            match ring.rewrap(&row.sealed_private_key, private_key_context(&place)) {
                Ok(Some(new)) => {
                    if store
                        .replace_sealed_private_key(row.conversation_id, row.user_id, &row.sealed_private_key, &new)
                        .await?
                    {
                        rewrapped += 1;
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::error!(%error, conversation = %row.conversation_id, "a sealed key did not open"),
            }
        }
    }
    Ok(rewrapped)
}

/// Writes the ring atomically (a new 0600 file renamed over the old).
fn write_ring(file: &Path, ring: &KeyRing) -> Result<(), ServerError> {
    use std::io::Write as _;
    let temporary = file.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let failed = |e: std::io::Error| ServerError::Secret(format!("cannot write {}: {e}", file.display()));
    let mut handle = options.open(&temporary).map_err(failed)?;
    handle.write_all(ring.to_text().as_bytes()).and_then(|()| handle.sync_all()).map_err(failed)?;
    std::fs::rename(&temporary, file).map_err(failed)
}
