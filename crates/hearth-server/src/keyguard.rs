//! The server's side of the keyguard (`hearth-keyguard`): made from the settings, and the
//! master key's rotation and retirement over the stored keys' rows.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use hearth_keyguard::rotation::{self, RotationError, SealedKeyRows, SealedRow};
use hearth_keyguard::{Keyguard, KeyguardError, LocalKeyguard, Owner, StoredKey};
use hearth_store::{KeyOwner, Store, StoreError, StoredProviderKey};
use uuid::Uuid;

pub use hearth_keyguard::rotation::Rotation;

use crate::error::ServerError;
use crate::settings::{AiSettings, KeyguardSettings, Settings};

/// The keyguard the server uses: a client of `keyguard.connect`, or one in this process (its
/// master key in `data_dir`, its providers as `ai` says). The free tier's keys go to the
/// keyguard and leave `keyguard`.
pub fn build(
    keyguard: &mut KeyguardSettings,
    data_dir: &Path,
    ai: &AiSettings,
) -> Result<Arc<dyn Keyguard>, ServerError> {
    refuse_moved_keys(ai)?;
    keyguard.build(data_dir, &ai.providers, &ai.routing).map_err(setup)
}

/// The keyguard in this process, as `hearth keyguard --listen` serves it.
pub fn local(settings: &mut Settings) -> Result<LocalKeyguard, ServerError> {
    refuse_moved_keys(&settings.ai)?;
    let Settings { keyguard, data_dir, ai, .. } = settings;
    keyguard.local(data_dir, &ai.providers, &ai.routing).map_err(setup)
}

/// The operator's keys moved to the keyguard's settings; serving on without them would leave
/// the free tier empty unnoticed.
fn refuse_moved_keys(ai: &AiSettings) -> Result<(), ServerError> {
    if ai.free_tier.moved_keys.is_some() {
        return Err(ServerError::Config(
            "ai.free_tier.keys is now keyguard.free_tier.keys (HEARTH_KEYGUARD__FREE_TIER__KEYS__<PROVIDER>): \
             the keyguard alone holds the operator's keys"
                .into(),
        ));
    }
    Ok(())
}

fn setup(error: KeyguardError) -> ServerError {
    ServerError::Config(error.to_string())
}

/// Adds a master key version and re-seals every stored key under it (`hearth keyguard rotate`).
pub async fn rotate(settings: &Settings, store: &dyn Store) -> Result<Rotation, ServerError> {
    let file = settings.keyguard.master_key_file(&settings.data_dir);
    rotation::rotate(&file, &Rows(store)).await.map_err(rotation_failed)
}

/// Drops master key `version` (`hearth keyguard retire`): refused while stored keys are still
/// sealed under it, and for the newest version.
pub async fn retire(settings: &Settings, store: &dyn Store, version: u32) -> Result<(), ServerError> {
    let file = settings.keyguard.master_key_file(&settings.data_dir);
    rotation::retire(&file, &Rows(store), version).await.map_err(rotation_failed)
}

fn rotation_failed(error: RotationError<StoreError>) -> ServerError {
    match error {
        RotationError::Rows(error) => ServerError::Store(error),
        other => ServerError::Config(other.to_string()),
    }
}

/// The stored keys' rows, as a rotation reads and replaces them.
struct Rows<'a>(&'a dyn Store);

#[async_trait]
impl SealedKeyRows for Rows<'_> {
    type Error = StoreError;

    async fn page(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<SealedRow>, StoreError> {
        let rows = self.0.all_provider_keys(after, limit).await?;
        Ok(rows
            .iter()
            .map(|row| SealedRow { id: row.id, master_version: row.master_version, key: stored_key(row) })
            .collect())
    }

    async fn replace(&self, id: Uuid, expected: &[u8], sealed: &[u8], version: u32) -> Result<bool, StoreError> {
        self.0.replace_sealed_provider_key(id, expected, sealed, version).await
    }

    async fn versions(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        self.0.provider_key_versions().await
    }
}

/// A stored row as the keyguard takes it.
pub fn stored_key(row: &StoredProviderKey) -> Option<StoredKey> {
    let provider = row.provider.parse().ok()?;
    Some(StoredKey { id: row.id, owner: owner(row.owner), provider, sealed: row.sealed.clone() })
}

/// A row's owner as the keyguard binds it into the sealed key.
pub fn owner(owner: KeyOwner) -> Owner {
    match owner {
        KeyOwner::User(user) => Owner::User(user),
        KeyOwner::Pool => Owner::Pool,
    }
}
