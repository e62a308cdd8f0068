//! Stored keys at rest: envelope encryption under the master key.
//!
//! Each key gets its own random data key. The key is encrypted with XChaCha20-Poly1305 under
//! the data key; the data key is sealed by the master key ring (version N, its number in the
//! blob). Both layers bind owner, provider and key id as associated data, so a sealed key
//! copied to another person's row, or relabelled as another provider's, does not open.
//! A rotation re-seals only the data key.
//!
//! Blob: `[format = 1][sealed data key length: u16 BE][sealed data key][nonce: 24][ciphertext ‖ tag]`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hearth_ai::{ApiKey, KeyFingerprint, ProviderName};
use hearth_vault::seal::blob_version;
use hearth_vault::{KeyRing, SealContext};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::KeyguardError;

const FORMAT: u8 = 1;

/// Whose key: a person's own, or the operator's free-tier pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "id")]
pub enum Owner {
    /// A person's.
    User(Uuid),
    /// The free tier's.
    Pool,
}

/// A stored key, as handed to the keyguard: the sealed blob and what it is bound to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The key's id (its row).
    pub id: Uuid,
    /// Whose it is.
    pub owner: Owner,
    /// The provider it is for; it is sent nowhere else.
    pub provider: ProviderName,
    /// The sealed blob.
    #[serde(with = "base64_bytes")]
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// What sealing a key gives back to store: never the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    /// The blob to store.
    #[serde(with = "base64_bytes")]
    pub sealed: Vec<u8>,
    /// The master key version it is sealed under.
    pub master_version: u32,
    /// The key's last four characters, shown in key lists.
    pub last_four: String,
    /// The key's fingerprint, as the attempt log names it.
    pub fingerprint: KeyFingerprint,
}

impl std::fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedKey")
            .field("master_version", &self.master_version)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The associated data's parts: where the key lives and what it is.
struct Place {
    row: String,
    column: String,
}

impl Place {
    fn of(id: Uuid, owner: Owner, provider: ProviderName) -> Self {
        let owner = match owner {
            Owner::User(user) => format!("user:{user}"),
            Owner::Pool => "pool".to_owned(),
        };
        Self { row: id.to_string(), column: format!("{owner}/{provider}") }
    }

    fn data_key(&self) -> SealContext<'_> {
        SealContext { table: "provider_keys.data_key", row: &self.row, column: &self.column }
    }

    fn secret_aad(&self) -> Vec<u8> {
        format!("hearth-keyguard/sealed/v1|{}|{}", self.row, self.column).into_bytes()
    }
}

/// Seals `key` for row `id` of `owner` and `provider` under the ring's newest version.
pub(crate) fn seal(ring: &KeyRing, id: Uuid, owner: Owner, provider: ProviderName, key: &ApiKey) -> SealedKey {
    let place = Place::of(id, owner, provider);
    let mut data_key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(data_key.as_mut());
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = XChaCha20Poly1305::new(data_key.as_ref().into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: key.expose().as_bytes(), aad: &place.secret_aad() })
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
    let wrapped = ring.seal(data_key.as_ref(), place.data_key());
    let master_version = blob_version(&wrapped).expect("a blob the ring just sealed is well-formed");
    SealedKey {
        sealed: assemble(&wrapped, &nonce, &ciphertext),
        master_version,
        last_four: key.last_four(),
        fingerprint: key.fingerprint(),
    }
}

/// Opens a stored key. `open_data_key` opens the sealed data key (a reloading ring in the
/// keyguard).
pub(crate) fn open(
    stored: &StoredKey,
    open_data_key: impl Fn(&[u8], SealContext<'_>) -> Result<Zeroizing<Vec<u8>>, hearth_vault::VaultError>,
) -> Result<ApiKey, KeyguardError> {
    let place = Place::of(stored.id, stored.owner, stored.provider);
    let (wrapped, nonce, ciphertext) = split(&stored.sealed)?;
    let data_key = open_data_key(wrapped, place.data_key()).map_err(|_| KeyguardError::SealedKeyUnreadable)?;
    if data_key.len() != 32 {
        return Err(KeyguardError::SealedKeyUnreadable);
    }
    let plaintext = Zeroizing::new(
        XChaCha20Poly1305::new(data_key.as_slice().into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &place.secret_aad() })
            .map_err(|_| KeyguardError::SealedKeyUnreadable)?,
    );
    let text = std::str::from_utf8(&plaintext).map_err(|_| KeyguardError::SealedKeyUnreadable)?;
    Ok(ApiKey::new(text))
}

/// Re-seals the data key of a stored key under the ring's newest version; `None` when it is
/// already there.
pub(crate) fn rewrap(ring: &KeyRing, stored: &StoredKey) -> Result<Option<(Vec<u8>, u32)>, KeyguardError> {
    let place = Place::of(stored.id, stored.owner, stored.provider);
    let (wrapped, nonce, ciphertext) = split(&stored.sealed)?;
    match ring.rewrap(wrapped, place.data_key()) {
        Ok(None) => Ok(None),
        Ok(Some(new)) => {
            let version = blob_version(&new).expect("a blob the ring just sealed is well-formed");
            Ok(Some((assemble(&new, nonce, ciphertext), version)))
        }
        Err(_) => Err(KeyguardError::SealedKeyUnreadable),
    }
}

fn assemble(wrapped: &[u8], nonce: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let length = u16::try_from(wrapped.len()).expect("a sealed 32-byte data key is far below 64 KiB");
    let mut blob = Vec::with_capacity(3 + wrapped.len() + nonce.len() + ciphertext.len());
    blob.push(FORMAT);
    blob.extend_from_slice(&length.to_be_bytes());
    blob.extend_from_slice(wrapped);
    blob.extend_from_slice(nonce);
    blob.extend_from_slice(ciphertext);
    blob
}

/// A blob's parts: the sealed data key, the nonce, the ciphertext.
type Parts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

fn split(blob: &[u8]) -> Result<Parts<'_>, KeyguardError> {
    let malformed = KeyguardError::SealedKeyUnreadable;
    if blob.len() < 3 || blob[0] != FORMAT {
        return Err(malformed);
    }
    let length = usize::from(u16::from_be_bytes([blob[1], blob[2]]));
    let rest = &blob[3..];
    if rest.len() < length + 24 + 16 {
        return Err(malformed);
    }
    let (wrapped, rest) = rest.split_at(length);
    let (nonce, ciphertext) = rest.split_at(24);
    Ok((wrapped, nonce, ciphertext))
}

/// Bytes as standard base64 in JSON (the remote protocol).
pub(crate) mod base64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-ant-api03-SEALEDCANARY-0123456789";

    fn stored(ring: &KeyRing, owner: Owner) -> StoredKey {
        let id = Uuid::from_u128(1);
        let sealed = seal(ring, id, owner, ProviderName::Anthropic, &ApiKey::new(KEY));
        StoredKey { id, owner, provider: ProviderName::Anthropic, sealed: sealed.sealed }
    }

    #[test]
    fn round_trip_without_the_key_in_the_blob() {
        let ring = KeyRing::generate();
        let key = stored(&ring, Owner::User(Uuid::from_u128(9)));
        assert!(!key.sealed.windows(12).any(|w| KEY.as_bytes().windows(12).any(|k| k == w)));
        assert_eq!(open(&key, |b, c| ring.open(b, c)).expect("opens").expose(), KEY);
        let (wrapped, _, _) = split(&key.sealed).expect("well-formed");
        assert_eq!(blob_version(wrapped).ok(), Some(1));
    }

    #[test]
    fn a_key_copied_to_another_owner_provider_or_row_does_not_open() {
        let ring = KeyRing::generate();
        let key = stored(&ring, Owner::User(Uuid::from_u128(9)));
        for moved in [
            StoredKey { owner: Owner::User(Uuid::from_u128(10)), ..key.clone() },
            StoredKey { owner: Owner::Pool, ..key.clone() },
            StoredKey { provider: ProviderName::OpenAi, ..key.clone() },
            StoredKey { id: Uuid::from_u128(2), ..key.clone() },
        ] {
            assert!(open(&moved, |b, c| ring.open(b, c)).is_err());
        }
    }

    #[test]
    fn rewrap_moves_only_the_data_key_to_the_new_version() {
        let mut ring = KeyRing::generate();
        let key = stored(&ring, Owner::Pool);
        ring.add_version();
        let (sealed, version) = rewrap(&ring, &key).expect("rewrap").expect("was old");
        assert_eq!(version, 2);
        assert_eq!(sealed[sealed.len() - 40..], key.sealed[key.sealed.len() - 40..], "the secret's ciphertext stays");
        let rewrapped = StoredKey { sealed, ..key };
        assert!(rewrap(&ring, &rewrapped).expect("rewrap").is_none());
        ring.retire(1).expect("retire");
        assert_eq!(open(&rewrapped, |b, c| ring.open(b, c)).expect("opens").expose(), KEY);
    }

    #[test]
    fn garbage_does_not_open() {
        let ring = KeyRing::generate();
        for blob in [vec![], vec![1], vec![1, 0, 200, 1, 2, 3], vec![2; 200]] {
            let key = StoredKey { id: Uuid::nil(), owner: Owner::Pool, provider: ProviderName::Groq, sealed: blob };
            assert!(open(&key, |b, c| ring.open(b, c)).is_err());
            assert!(rewrap(&ring, &key).is_err());
        }
    }
}
