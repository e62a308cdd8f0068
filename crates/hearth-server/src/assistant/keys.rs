//! People's stored provider keys as the assistant uses them: handed to the keyguard as sealed
//! blobs, listed without ever showing a key, and their use and failures counted; and the
//! keyguard's public key, which keys given with a request are encrypted to at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hearth_ai::{Attempt, AttemptOutcome, KeyFingerprint, ProviderName};
use hearth_keyguard::envelope::RequestSealer;
use hearth_keyguard::{KeyRef, Keyguard, KeyguardError};
use hearth_store::{KeyOwner, Store, StoreError, StoredProviderKey, Timestamp};
use std::sync::Arc;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::keyguard::stored_key;

/// How long one sealer (one key agreement with the keyguard's public key) seals the keys given
/// with requests before a new one is made with the public key asked again. A rotation changes
/// that key and the old one works until its version is retired, so this only has to be short
/// next to the time between a rotation and a retirement.
const SEALER_LIFETIME: Duration = Duration::from_secs(5);

/// Stored keys and the keyguard's key, for the assistant.
#[derive(Debug)]
pub struct Keys {
    keyguard: Arc<dyn Keyguard>,
    store: Arc<dyn Store>,
    free_tier: OnceCell<Vec<(ProviderName, KeyFingerprint)>>,
    /// What the keys given with requests are sealed with: one key agreement with the
    /// keyguard's public key, made anew every [`SEALER_LIFETIME`].
    sealer: Mutex<Option<(Arc<RequestSealer>, Instant)>>,
}

/// Stored keys of one owner: the rows, and the same keys as the keyguard takes them.
#[derive(Debug, Default)]
pub struct StoredRefs {
    /// The rows.
    pub rows: Vec<StoredProviderKey>,
    /// The keys to try, in order.
    pub refs: Vec<KeyRef>,
}

impl StoredRefs {
    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Only the keys of providers that make images.
    pub fn making_images(self) -> Self {
        let (rows, refs) = self
            .rows
            .into_iter()
            .zip(self.refs)
            .filter(|(row, _)| row.provider.parse().is_ok_and(ProviderName::makes_images))
            .unzip();
        Self { rows, refs }
    }
}

/// A stored key as its owner sees it: never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    /// Its id, for deleting it.
    pub id: Uuid,
    /// The provider.
    pub provider: String,
    /// The key's last four characters.
    pub last_four: String,
    /// When it was added.
    pub added_at: Timestamp,
    /// When it last answered.
    pub last_used_at: Option<Timestamp>,
    /// Failures since it last answered.
    pub failures: u32,
    /// How much longer it rests after repeated failures, if it does.
    pub cooling_for: Option<Duration>,
    /// When its provider refused it as invalid, if it has not answered since.
    pub refused_at: Option<Timestamp>,
}

impl Keys {
    /// Keys kept in `store`, used through `keyguard`.
    pub fn new(keyguard: Arc<dyn Keyguard>, store: Arc<dyn Store>) -> Self {
        Self { keyguard, store, free_tier: OnceCell::new(), sealer: Mutex::new(None) }
    }

    /// The stored keys of `owner`, oldest first.
    pub async fn stored_refs(&self, owner: KeyOwner) -> Result<StoredRefs, StoreError> {
        let rows: Vec<StoredProviderKey> = self.store.provider_keys(owner).await?;
        let (rows, refs) =
            rows.into_iter().filter_map(|row| stored_key(&row).map(|key| (row, KeyRef::Stored(key)))).unzip();
        Ok(StoredRefs { rows, refs })
    }

    /// Counts each stored key's success or failure in `attempts` (a key that was resting was
    /// not called and counts neither way). A failure to count is logged, not passed on.
    pub async fn record_outcomes(&self, rows: &[StoredProviderKey], attempts: &[Attempt]) {
        let outcomes: Vec<(Uuid, bool)> = attempts
            .iter()
            .filter_map(|attempt| {
                let success = match attempt.outcome {
                    AttemptOutcome::Answered => true,
                    AttemptOutcome::Failed(class) if class.counts_against_key() => false,
                    _ => return None,
                };
                let fingerprint = attempt.key.to_string();
                let row = rows.iter().find(|row| row.fingerprint == fingerprint)?;
                Some((row.id, success))
            })
            .collect();
        if outcomes.is_empty() {
            return;
        }
        if let Err(error) = self.store.record_key_outcomes(&outcomes, Timestamp::now()).await {
            tracing::error!(%error, "stored key outcomes not recorded");
        }
    }

    /// The operator's free-tier keys the keyguard holds (asked once, then remembered: they
    /// come from its settings).
    pub async fn free_tier(&self) -> Result<Vec<(ProviderName, KeyFingerprint)>, KeyguardError> {
        self.free_tier.get_or_try_init(|| self.keyguard.free_tier()).await.cloned()
    }

    /// The keys given with one request, encrypted to the keyguard at once (from here on only
    /// the keyguard can read them) and checked by it: a key of no plausible shape for its
    /// provider is refused here, before the request counts against any limit.
    pub async fn given(&self, user_id: Uuid, keys: &[(ProviderName, &str)]) -> Result<KeyRef, KeyguardError> {
        let envelope = self.sealer().await?.seal_keys(user_id, keys)?;
        self.keyguard.check_request_keys(user_id, &envelope).await?;
        Ok(KeyRef::Given { user_id, envelope })
    }

    /// The current request sealer, to the keyguard's public key as it was asked for at most
    /// [`SEALER_LIFETIME`] ago.
    async fn sealer(&self) -> Result<Arc<RequestSealer>, KeyguardError> {
        let cached = self.sealer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some((sealer, made)) = cached
            && made.elapsed() < SEALER_LIFETIME
        {
            return Ok(sealer);
        }
        let sealer = Arc::new(RequestSealer::new(&self.keyguard.public_key().await?)?);
        *self.sealer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((sealer.clone(), Instant::now()));
        Ok(sealer)
    }

    /// `owner`'s stored keys with their health, oldest first.
    pub async fn list(&self, owner: KeyOwner) -> Result<Vec<KeyView>, crate::assistant::Refusal> {
        let rows = self.store.provider_keys(owner).await?;
        let fingerprints: Vec<KeyFingerprint> =
            rows.iter().map(|row| row.fingerprint.parse().unwrap_or_else(|_| KeyFingerprint::of(""))).collect();
        let states = self.keyguard.key_states(fingerprints).await?;
        Ok(rows
            .into_iter()
            .zip(states)
            .map(|(row, state)| KeyView {
                id: row.id,
                provider: row.provider,
                last_four: row.last_four,
                added_at: row.inserted_at,
                last_used_at: row.last_used_at,
                failures: row.failures,
                cooling_for: state.cooling_for,
                refused_at: state.refused_at.map(super::when::timestamp),
            })
            .collect())
    }
}
