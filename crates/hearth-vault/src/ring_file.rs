//! A key ring kept in step with its file, so that a rotation (which adds a version to the file)
//! reaches running processes without a restart.
//!
//! A process reloads the ring when the file changes (callers check every few seconds) and at
//! once when it meets a blob sealed under a version it does not know yet.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::{KeyRing, SealContext, VaultError};

/// A key ring, reloadable from its file.
#[derive(Debug)]
pub struct RingFile {
    ring: RwLock<(Arc<KeyRing>, Option<SystemTime>)>,
    file: Option<PathBuf>,
}

impl RingFile {
    /// A ring read from `file` (None: given inline, never reloaded).
    pub fn new(ring: KeyRing, file: Option<PathBuf>) -> Self {
        let modified = file.as_deref().and_then(modified);
        Self { ring: RwLock::new((Arc::new(ring), modified)), file }
    }

    /// The ring as last read.
    pub fn current(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(PoisonError::into_inner).0.clone()
    }

    /// Seals under the newest key.
    pub fn seal(&self, plaintext: &[u8], context: SealContext<'_>) -> Vec<u8> {
        self.current().seal(plaintext, context)
    }

    /// Opens a blob; a version this ring does not know yet makes it reload the file first.
    pub fn open(&self, blob: &[u8], context: SealContext<'_>) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let tried = self.current();
        match tried.open(blob, context) {
            Err(VaultError::UnknownKeyVersion(version)) => {
                // Another caller may have reloaded the file between `current` above and this
                // check, so that this one finds it unchanged: whoever reloaded it, a ring newer
                // than the one tried gets its chance.
                self.reload_if_changed();
                let now = self.current();
                if Arc::ptr_eq(&tried, &now) {
                    return Err(VaultError::UnknownKeyVersion(version));
                }
                now.open(blob, context)
            }
            other => other,
        }
    }

    /// Re-reads the ring if its file changed; whether it did. A file that cannot be read or
    /// parsed leaves the ring as it was.
    pub fn reload_if_changed(&self) -> bool {
        let Some(file) = &self.file else { return false };
        let on_disk = modified(file);
        if on_disk == self.ring.read().unwrap_or_else(PoisonError::into_inner).1 {
            return false;
        }
        match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|t| KeyRing::parse(&t).map_err(|e| e.to_string()))
        {
            Ok(ring) => {
                tracing::info!(file = %file.display(), version = ?ring.current_version(), "key ring reloaded");
                *self.ring.write().unwrap_or_else(PoisonError::into_inner) = (Arc::new(ring), on_disk);
                true
            }
            Err(error) => {
                tracing::error!(file = %file.display(), %error, "key ring file changed but could not be read; keeping the old ring");
                false
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Writes `ring` to `file` atomically: a new 0600 file, synced, renamed over the old.
pub fn write_ring(file: &Path, ring: &KeyRing) -> std::io::Result<()> {
    use std::io::Write as _;
    let temporary = file.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut handle = options.open(&temporary)?;
    handle.write_all(ring.to_text().as_bytes())?;
    handle.sync_all()?;
    std::fs::rename(&temporary, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: SealContext<'static> = SealContext { table: "t", row: "r", column: "c" };

    #[test]
    fn a_version_added_to_the_file_is_picked_up_when_a_blob_needs_it() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("ring");
        let mut ring = KeyRing::generate();
        write_ring(&file, &ring).expect("write");
        let running = RingFile::new(ring.clone(), Some(file.clone()));
        ring.add_version();
        // Make sure the modification time moves even on coarse-grained file systems.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_ring(&file, &ring).expect("rewrite");
        let blob = ring.seal(b"secret", HERE);
        assert_eq!(running.open(&blob, HERE).expect("reloads and opens").as_slice(), b"secret");
        assert_eq!(running.current().current_version(), Some(2));
        assert!(!running.reload_if_changed(), "nothing changed since");
    }
}
