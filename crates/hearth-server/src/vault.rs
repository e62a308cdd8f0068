//! The vault as the server uses it: the key ring, kept in step with its file so that
//! `hearth vault rotate` can add a key version while the server runs; and the rotation
//! itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_store::{Store, private_key_row};
use hearth_vault::seal::blob_version;
use hearth_vault::{KeyRing, SealContext};

use crate::error::ServerError;
use crate::settings::Settings;

/// How often the server looks for a changed key-ring file.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Where conversation private keys are sealed (the vault's associated data): a blob opens only
/// in the row it was sealed for.
pub fn private_key_context(row: &str) -> SealContext<'_> {
    SealContext { table: "encryption_keys", row, column: "private_key" }
}

/// Where an account's identity private key is sealed (`row`: the user's id): a blob opens only
/// for the account it was sealed for, and never as a conversation private key.
pub fn identity_private_key_context(row: &str) -> SealContext<'_> {
    SealContext { table: "users", row, column: "identity_private_key" }
}

/// The vault's key ring, reloadable from its file.
pub type Vault = hearth_vault::RingFile;

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

/// Adds a key version to the ring file and re-seals every sealed value under it (conversation
/// and identity private keys). Safe while servers run: they pick up the new ring from the
/// file, and each blob is replaced only if it did not change meanwhile; passes repeat until
/// one finds nothing left to re-seal.
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
    Ok(rewrap_private_keys(ring, store).await? + rewrap_identity_private_keys(ring, store).await?)
}

/// Re-seals the conversation private keys not yet under the current version.
async fn rewrap_private_keys(ring: &KeyRing, store: &dyn Store) -> Result<usize, ServerError> {
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

/// Re-seals the identity private keys not yet under the current version.
async fn rewrap_identity_private_keys(ring: &KeyRing, store: &dyn Store) -> Result<usize, ServerError> {
    let current = ring.current_version();
    let mut after = None;
    let mut rewrapped = 0;
    loop {
        let rows = store.sealed_identity_private_keys(after, 500).await?;
        let Some((last, _)) = rows.last() else { break };
        after = Some(*last);
        for (user_id, sealed) in &rows {
            if blob_version(sealed).ok() == current {
                continue;
            }
            let row = user_id.to_string();
            match ring.rewrap(sealed, identity_private_key_context(&row)) {
                Ok(Some(new)) => {
                    if store.replace_sealed_identity_private_key(*user_id, sealed, &new).await? {
                        rewrapped += 1;
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::error!(%error, user = %user_id, "a sealed identity key did not open"),
            }
        }
    }
    Ok(rewrapped)
}

/// Writes the ring file.
fn write_ring(file: &Path, ring: &KeyRing) -> Result<(), ServerError> {
    hearth_vault::write_ring(file, ring)
        .map_err(|e| ServerError::Secret(format!("cannot write {}: {e}", file.display())))
}
