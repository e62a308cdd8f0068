//! AI-provider keys, sealed by the keyguard: people's own keys and the operator's free-tier
//! pool. The store only keeps the sealed blobs; it never sees a plaintext key.

use uuid::Uuid;

use crate::Timestamp;

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
