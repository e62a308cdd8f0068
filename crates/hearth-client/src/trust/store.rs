//! What a client remembers between runs about whom and what it trusts: each contact's pinned
//! identity, and which conversations it has seen end-to-end encrypted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TrustError;

/// A contact's identity as first seen (or last acknowledged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The identity fingerprint (`IdentityKey::fingerprint`).
    pub fingerprint: String,
    /// Whether the person compared safety numbers and marked the contact verified.
    pub verified: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Remembered {
    #[serde(default)]
    pins: BTreeMap<Uuid, Pin>,
    #[serde(default)]
    end_to_end: BTreeSet<Uuid>,
}

/// Pins and end-to-end conversations of one account on one server, kept in a JSON file (only
/// its owner may read it) or in memory. Every change is written at once: a pin must survive a
/// crash, or a changed key would be taken as a first sight on the next run.
#[derive(Debug)]
pub struct TrustStore {
    path: Option<PathBuf>,
    remembered: Remembered,
}

impl TrustStore {
    /// A store that forgets everything when dropped (tests, or a client that keeps nothing).
    pub fn in_memory() -> Self {
        Self { path: None, remembered: Remembered::default() }
    }

    /// The store kept in `path` (created on the first change; its directory too).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, TrustError> {
        let path = path.into();
        let remembered = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| TrustError::Store {
                path: path.display().to_string(),
                reason: format!("not a trust file: {error}"),
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Remembered::default(),
            Err(error) => return Err(store_error(&path, &error)),
        };
        Ok(Self { path: Some(path), remembered })
    }

    /// The pin of `user`, if one was made.
    pub fn pin(&self, user: Uuid) -> Option<&Pin> {
        self.remembered.pins.get(&user)
    }

    /// Pins (or re-pins) `user`'s identity.
    pub(super) fn set_pin(&mut self, user: Uuid, pin: Pin) -> Result<(), TrustError> {
        if self.remembered.pins.get(&user) == Some(&pin) {
            return Ok(());
        }
        self.remembered.pins.insert(user, pin);
        self.save()
    }

    /// Whether this client has seen `conversation` end-to-end encrypted.
    pub fn is_end_to_end(&self, conversation: Uuid) -> bool {
        self.remembered.end_to_end.contains(&conversation)
    }

    /// Remembers that `conversation` is end-to-end encrypted: for good.
    pub(super) fn record_end_to_end(&mut self, conversation: Uuid) -> Result<(), TrustError> {
        if self.remembered.end_to_end.insert(conversation) { self.save() } else { Ok(()) }
    }

    fn save(&self) -> Result<(), TrustError> {
        let Some(path) = &self.path else { return Ok(()) };
        let json = serde_json::to_vec_pretty(&self.remembered).expect("the trust store serialises");
        write_private(path, &json).map_err(|error| store_error(path, &error))
    }
}

fn store_error(path: &Path, error: &std::io::Error) -> TrustError {
    TrustError::Store { path: path.display().to_string(), reason: error.to_string() }
}

/// Writes `bytes` to `path` through a temporary file renamed over it (a crash leaves the old
/// file or the new one, never half of one), readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(directory) = path.parent().filter(|directory| !directory.as_os_str().is_empty()) {
        std::fs::create_dir_all(directory)?;
    }
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_end_to_end_conversations_survive_a_reopen_in_a_private_file() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("nested/trust.json");
        let (user, conversation) = (Uuid::now_v7(), Uuid::now_v7());
        let mut store = TrustStore::open(&path).expect("a missing file is an empty store");
        assert_eq!(store.pin(user), None);
        store.set_pin(user, Pin { fingerprint: "ab".repeat(32), verified: true }).expect("save");
        store.record_end_to_end(conversation).expect("save");
        let reopened = TrustStore::open(&path).expect("reopen");
        assert_eq!(reopened.pin(user), Some(&Pin { fingerprint: "ab".repeat(32), verified: true }));
        assert!(reopened.is_end_to_end(conversation));
        assert!(!reopened.is_end_to_end(user));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_file_that_is_not_a_trust_store_is_an_error_not_an_empty_store() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("trust.json");
        std::fs::write(&path, b"not json").expect("write");
        assert!(matches!(TrustStore::open(&path), Err(TrustError::Store { .. })));
    }
}
