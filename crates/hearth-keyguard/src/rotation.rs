//! The master key's rotation and retirement (`hearth keyguard rotate`, `retire`), over the rows
//! sealed keys are stored in, wherever those are ([`SealedKeyRows`]).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use hearth_vault::RingFile;
use uuid::Uuid;

use crate::{KeyguardError, StoredKey, master_key, sealed};

/// Stored rows of sealed keys, as a rotation reads and replaces them.
#[async_trait]
pub trait SealedKeyRows: Send + Sync {
    /// What reading or writing them fails with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Up to `limit` rows after the row `after` (from the first when `None`), in id order.
    async fn page(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<SealedRow>, Self::Error>;

    /// Replaces row `id`'s sealed blob with `sealed` under master key `version`, only if it is
    /// still `expected`; whether it was.
    async fn replace(&self, id: Uuid, expected: &[u8], sealed: &[u8], version: u32) -> Result<bool, Self::Error>;

    /// How many keys are sealed under each master key version.
    async fn versions(&self) -> Result<Vec<(u32, u64)>, Self::Error>;
}

/// One stored row.
#[derive(Debug, Clone)]
pub struct SealedRow {
    /// Its id (the paging cursor).
    pub id: Uuid,
    /// The master key version it is sealed under.
    pub master_version: u32,
    /// The key as the keyguard takes it; `None` for a row it cannot (a provider it does not
    /// know), which is left as it is.
    pub key: Option<StoredKey>,
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The new master key version.
    pub version: u32,
    /// Stored keys re-sealed under it.
    pub rewrapped: usize,
}

/// Why a rotation or retirement stopped.
#[derive(Debug, thiserror::Error)]
pub enum RotationError<E: std::error::Error + 'static> {
    /// The master key file could not be read or written, or the version cannot go.
    #[error(transparent)]
    Keyguard(#[from] KeyguardError),
    /// Keys are still sealed under the version to retire: they would never open again.
    #[error("{keys} stored key(s) are still sealed under version {version}; run `hearth keyguard rotate` first")]
    StillSealed {
        /// The version.
        version: u32,
        /// How many keys.
        keys: u64,
    },
    /// The rows could not be read or written.
    #[error(transparent)]
    Rows(E),
}

/// Rows read at once.
const PAGE: u32 = 500;

/// Adds a master key version to the ring in `file` and re-seals every stored key's data key
/// under it, while servers and keyguards keep running: they read the new version from the file
/// when they meet it (and before every seal), and each row is replaced only if it did not
/// change meanwhile. Passes repeat until no key is left under an older version.
pub async fn rotate<R: SealedKeyRows>(file: &Path, rows: &R) -> Result<Rotation, RotationError<R::Error>> {
    let mut ring = master_key::read_or_create(file)?;
    let version = ring.add_version();
    master_key::write(file, &ring)?;
    tracing::info!(version, path = %file.display(), "keyguard master key version added");
    let ring = RingFile::new(ring, Some(file.to_owned()));
    let mut rewrapped = 0;
    for pass in 0.. {
        let mut changed = 0;
        let mut after = None;
        loop {
            let page = rows.page(after, PAGE).await.map_err(RotationError::Rows)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for row in page.iter().filter(|row| row.master_version < version) {
                let Some(key) = &row.key else { continue };
                // To the newest version, even one another rotation added a moment ago.
                ring.reload_if_changed();
                match sealed::rewrap(&ring.current(), key) {
                    Ok(Some((sealed, new_version))) => {
                        if rows.replace(row.id, &key.sealed, &sealed, new_version).await.map_err(RotationError::Rows)? {
                            changed += 1;
                        }
                    }
                    Ok(None) => {}
                    Err(error) => tracing::error!(key = %row.id, %error, "a stored key did not re-seal"),
                }
            }
        }
        rewrapped += changed;
        let versions = rows.versions().await.map_err(RotationError::Rows)?;
        let behind: u64 = versions.iter().filter(|(v, _)| *v < version).map(|(_, n)| n).sum();
        if behind == 0 || pass >= 10 {
            break;
        }
        // A keyguard may have sealed a new key under the old version just before it read the
        // file; give it a moment and go again.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Rotation { version, rewrapped })
}

/// Drops master key `version` from the ring in `file`. Refused while stored keys are still
/// sealed under it (they would never open again) and for the newest version.
pub async fn retire<R: SealedKeyRows>(file: &Path, rows: &R, version: u32) -> Result<(), RotationError<R::Error>> {
    let mut ring = master_key::read_or_create(file)?;
    let versions = rows.versions().await.map_err(RotationError::Rows)?;
    let still = versions.into_iter().find(|(v, _)| *v == version).map_or(0, |(_, n)| n);
    if still > 0 {
        return Err(RotationError::StillSealed { version, keys: still });
    }
    ring.retire(version).map_err(|e| KeyguardError::Setup(format!("master key version {version}: {e}")))?;
    master_key::write(file, &ring)?;
    tracing::info!(version, "keyguard master key version retired");
    Ok(())
}
