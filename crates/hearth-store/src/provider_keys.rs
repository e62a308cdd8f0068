//! AI-provider keys, sealed by the keyguard: people's own keys and the operator's free-tier
//! pool. The store only keeps the sealed blobs; it never sees a plaintext key.
//!
//! [`ProviderKeyStore`] is the area's part of the [`Store`](crate::Store) contract; the SQL
//! below is what both backends run for it (`sqlite/provider_keys.rs`,
//! `postgres/provider_keys.rs`). Keys are stored only by redeeming a configure link
//! ([`Redemption::StoreProviderKey`](crate::Redemption::StoreProviderKey), in `sessions`).

use async_trait::async_trait;
use uuid::Uuid;

use crate::{StoreError, StoreResult, Timestamp};

/// The stored provider keys.
#[async_trait]
pub trait ProviderKeyStore: Send + Sync {
    /// The owner's keys, oldest first.
    async fn provider_keys(&self, owner: KeyOwner) -> StoreResult<Vec<StoredProviderKey>>;

    /// Deletes one of the owner's keys. [`StoreError::NotFound`] if the owner has no key `id`
    /// (another owner's key is not found, and stays).
    async fn delete_provider_key(&self, owner: KeyOwner, id: Uuid) -> StoreResult<()>;

    /// Deletes the owner's keys for `provider`; returns how many there were.
    async fn delete_provider_keys_of(&self, owner: KeyOwner, provider: &str) -> StoreResult<u64>;

    /// Records how requests with keys went, in one transaction: a success (`true`) sets the
    /// key's `last_used_at` to `now` and clears its failures; a failure counts one more
    /// (`last_used_at` stays). Unknown ids are ignored.
    async fn record_key_outcomes(&self, outcomes: &[(Uuid, bool)], now: Timestamp) -> StoreResult<()>;

    /// Every owner's keys ordered by id, after `after`, at most `limit` (for re-sealing under a
    /// new master key).
    async fn all_provider_keys(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<StoredProviderKey>>;

    /// Replaces a key's sealed blob and master version if the blob is still `old`; false if it
    /// changed meanwhile or the key is gone.
    async fn replace_sealed_provider_key(
        &self,
        id: Uuid,
        old: &[u8],
        new: &[u8],
        master_version: u32,
    ) -> StoreResult<bool>;

    /// How many keys are sealed under each master version, by version ascending.
    async fn provider_key_versions(&self) -> StoreResult<Vec<(u32, u64)>>;
}

/// Whose key: a person's own, or the operator's free-tier pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner {
    /// The key of this user, used for their own requests.
    User(Uuid),
    /// A key of the free tier's pool, shared by everyone without a key of their own.
    Pool,
}

impl KeyOwner {
    /// The owning user's id, `None` for the pool (stored as `provider_keys.user_id`).
    pub fn user_id(self) -> Option<Uuid> {
        match self {
            KeyOwner::User(id) => Some(id),
            KeyOwner::Pool => None,
        }
    }

    /// The owner a stored `provider_keys.user_id` stands for.
    pub fn from_user_id(user_id: Option<Uuid>) -> Self {
        user_id.map_or(KeyOwner::Pool, KeyOwner::User)
    }
}

/// A sealed provider key to store. `sealed` is opaque bytes made by the keyguard (never a
/// plaintext key).
#[derive(Clone, PartialEq, Eq)]
pub struct NewProviderKey {
    /// The key's id.
    pub id: Uuid,
    /// Whose it is.
    pub owner: KeyOwner,
    /// The provider it is for (e.g. `groq`).
    pub provider: String,
    /// The key as the keyguard sealed it.
    pub sealed: Vec<u8>,
    /// The version of the master key it is sealed under.
    pub master_version: u32,
    /// The key's last four characters, to tell keys apart on screen.
    pub last_four: String,
    /// A fingerprint of the key, for attempt logs.
    pub fingerprint: String,
    /// When it was entered.
    pub inserted_at: Timestamp,
}

impl std::fmt::Debug for NewProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewProviderKey")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("provider", &self.provider)
            .field("sealed", &format_args!("{} bytes", self.sealed.len()))
            .field("master_version", &self.master_version)
            .field("last_four", &self.last_four)
            .field("fingerprint", &self.fingerprint)
            .field("inserted_at", &self.inserted_at)
            .finish()
    }
}

/// A stored key as listed (the sealed blob included: only the keyguard can open it).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredProviderKey {
    /// The key's id.
    pub id: Uuid,
    /// Whose it is.
    pub owner: KeyOwner,
    /// The provider it is for.
    pub provider: String,
    /// The key as the keyguard sealed it.
    pub sealed: Vec<u8>,
    /// The version of the master key it is sealed under.
    pub master_version: u32,
    /// The key's last four characters.
    pub last_four: String,
    /// A fingerprint of the key.
    pub fingerprint: String,
    /// When it was entered.
    pub inserted_at: Timestamp,
    /// When a request with it last succeeded, if one did.
    pub last_used_at: Option<Timestamp>,
    /// Failed requests since the last success.
    pub failures: u32,
}

impl std::fmt::Debug for StoredProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredProviderKey")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("provider", &self.provider)
            .field("sealed", &format_args!("{} bytes", self.sealed.len()))
            .field("master_version", &self.master_version)
            .field("last_four", &self.last_four)
            .field("fingerprint", &self.fingerprint)
            .field("inserted_at", &self.inserted_at)
            .field("last_used_at", &self.last_used_at)
            .field("failures", &self.failures)
            .finish()
    }
}

pub(crate) const INSERT_KEY: &str = "INSERT INTO provider_keys \
     (id, user_id, provider, sealed, master_version, last_four, fingerprint, inserted_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

// Each statement below selects the keys of the owner bound to `$1` ([`KeyOwner::user_id`]:
// NULL for the pool) with `(user_id = $1 OR ($1 IS NULL AND user_id IS NULL))`: each arm can
// use the `(user_id, inserted_at)` index, which `IS NOT DISTINCT FROM` cannot on PostgreSQL.

pub(crate) const KEYS_OF_OWNER: &str = "SELECT id, user_id, provider, sealed, master_version, last_four, fingerprint, inserted_at, last_used_at, failures \
     FROM provider_keys WHERE (user_id = $1 OR ($1 IS NULL AND user_id IS NULL)) ORDER BY inserted_at, id";

pub(crate) const DELETE_KEY_OF_OWNER: &str =
    "DELETE FROM provider_keys WHERE (user_id = $1 OR ($1 IS NULL AND user_id IS NULL)) AND id = $2";

pub(crate) const DELETE_KEYS_OF_OWNER_FOR_PROVIDER: &str =
    "DELETE FROM provider_keys WHERE (user_id = $1 OR ($1 IS NULL AND user_id IS NULL)) AND provider = $2";

pub(crate) const KEY_SUCCEEDED: &str = "UPDATE provider_keys SET last_used_at = $2, failures = 0 WHERE id = $1";

pub(crate) const KEY_FAILED: &str = "UPDATE provider_keys SET failures = failures + 1 WHERE id = $1";

/// Every key after the id `$1`, at most `limit`. The nil UUID sorts before every real id on
/// both backends, so it stands for "from the start".
pub(crate) fn keys_after(limit: u32) -> String {
    format!(
        "SELECT id, user_id, provider, sealed, master_version, last_four, fingerprint, inserted_at, last_used_at, failures \
         FROM provider_keys WHERE id > $1 ORDER BY id{}",
        crate::sql::limit(limit)
    )
}

/// Replaces the key `$1`'s blob with `$3` under master version `$4` if it is still `$2`.
pub(crate) const SWAP_SEALED_KEY: &str =
    "UPDATE provider_keys SET sealed = $3, master_version = $4 WHERE id = $1 AND sealed = $2";

pub(crate) const KEYS_PER_VERSION: &str =
    "SELECT master_version, COUNT(*) FROM provider_keys GROUP BY master_version ORDER BY master_version";

/// A provider key as stored: the owner as a nullable user id, the counters as `INTEGER`s.
#[derive(sqlx::FromRow)]
pub(crate) struct ProviderKeyRow {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub provider: String,
    pub sealed: Vec<u8>,
    pub master_version: i32,
    pub last_four: String,
    pub fingerprint: String,
    pub inserted_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub failures: i32,
}

impl ProviderKeyRow {
    pub fn into_key(self) -> StoreResult<StoredProviderKey> {
        Ok(StoredProviderKey {
            id: self.id,
            owner: KeyOwner::from_user_id(self.user_id),
            provider: self.provider,
            sealed: self.sealed,
            master_version: u32::try_from(self.master_version)
                .map_err(|_| StoreError::Corrupt("provider_keys.master_version"))?,
            last_four: self.last_four,
            fingerprint: self.fingerprint,
            inserted_at: self.inserted_at,
            last_used_at: self.last_used_at,
            failures: u32::try_from(self.failures).map_err(|_| StoreError::Corrupt("provider_keys.failures"))?,
        })
    }
}

/// Provider keys as listed, from their rows.
pub(crate) fn keys(rows: Vec<ProviderKeyRow>) -> StoreResult<Vec<StoredProviderKey>> {
    rows.into_iter().map(ProviderKeyRow::into_key).collect()
}

/// A master version as stored (`INTEGER`, which holds up to 2³¹ − 1 on PostgreSQL).
pub(crate) fn master_version_column(master_version: u32) -> StoreResult<i32> {
    i32::try_from(master_version).map_err(|_| StoreError::Rule("a master key version is below 2^31"))
}

/// Outcomes in key id order, so that concurrent calls lock rows in the same order and cannot
/// deadlock (PostgreSQL); the sort is stable, so one key's outcomes keep theirs.
pub(crate) fn in_key_order(outcomes: &[(Uuid, bool)]) -> Vec<&(Uuid, bool)> {
    let mut ordered: Vec<&(Uuid, bool)> = outcomes.iter().collect();
    ordered.sort_by_key(|(id, _)| *id);
    ordered
}

/// Counts per master version from their rows, which the database counts as `BIGINT`s.
pub(crate) fn versions(rows: Vec<(i32, i64)>) -> StoreResult<Vec<(u32, u64)>> {
    rows.into_iter()
        .map(|(version, count)| match (u32::try_from(version), u64::try_from(count)) {
            (Ok(version), Ok(count)) => Ok((version, count)),
            _ => Err(StoreError::Corrupt("provider_keys.master_version")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_length_of_the_sealed_key() {
        let key = NewProviderKey {
            id: Uuid::nil(),
            owner: KeyOwner::Pool,
            provider: "groq".to_owned(),
            sealed: b"sealed secret bytes".to_vec(),
            master_version: 1,
            last_four: "abcd".to_owned(),
            fingerprint: "0011223344556677".to_owned(),
            inserted_at: Timestamp::from_millis(0),
        };
        let stored = StoredProviderKey {
            id: key.id,
            owner: KeyOwner::User(Uuid::nil()),
            provider: key.provider.clone(),
            sealed: key.sealed.clone(),
            master_version: 1,
            last_four: key.last_four.clone(),
            fingerprint: key.fingerprint.clone(),
            inserted_at: key.inserted_at,
            last_used_at: None,
            failures: 0,
        };
        for shown in [format!("{key:?}"), format!("{stored:?}")] {
            assert!(shown.contains("sealed: 19 bytes"), "{shown}");
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn owner_round_trips_through_its_user_id() {
        let id = Uuid::now_v7();
        for owner in [KeyOwner::Pool, KeyOwner::User(id)] {
            assert_eq!(KeyOwner::from_user_id(owner.user_id()), owner);
        }
    }
}
