//! Sealing values at rest with a versioned key ring.
//!
//! A sealed blob is `[format = 1][key version: u32 BE][nonce: 24 bytes][ciphertext ‖ tag]`,
//! encrypted with XChaCha20-Poly1305 (random 192-bit nonces are safe at any volume). The
//! associated data binds the blob to where it is stored — table, row and column — so a
//! blob copied to another row or column does not open.
//!
//! The ring's text form, one key per line as `<version>:<base64 of 32 bytes>`, is what the
//! `vault_key` secret holds; the highest version seals, every version opens.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use zeroize::Zeroizing;

use crate::VaultError;

const FORMAT: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + 24;

/// Where a sealed value lives; bound into the ciphertext as associated data.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    /// Table name.
    pub table: &'a str,
    /// Row identity (usually the primary key, rendered as text).
    pub row: &'a str,
    /// Column name.
    pub column: &'a str,
}

impl SealContext<'_> {
    fn associated_data(&self, version: u32) -> Vec<u8> {
        // Length-prefixed parts so ("ab","c") and ("a","bc") differ.
        let mut aad = Vec::with_capacity(16 + self.table.len() + self.row.len() + self.column.len());
        aad.extend_from_slice(b"hearth-vault/1");
        aad.extend_from_slice(&version.to_be_bytes());
        for part in [self.table, self.row, self.column] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// The vault's keys, by version. Key bytes are zeroized on drop and never printed.
#[derive(Clone)]
pub struct KeyRing {
    keys: BTreeMap<u32, Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("versions", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl KeyRing {
    /// A ring with one fresh random key, version 1.
    pub fn generate() -> Self {
        let mut ring = Self { keys: BTreeMap::new() };
        ring.add_version();
        ring
    }

    /// Parses the text form (`<version>:<base64>` per line; blank lines and `#` comments
    /// ignored). At least one key is required.
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        let mut keys = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (version, encoded) =
                line.split_once(':').ok_or(VaultError::InvalidKey("expected <version>:<base64>"))?;
            let version: u32 =
                version.trim().parse().map_err(|_| VaultError::InvalidKey("key version is not a number"))?;
            let bytes = Zeroizing::new(
                STANDARD.decode(encoded.trim()).map_err(|_| VaultError::InvalidKey("key is not valid base64"))?,
            );
            let key: [u8; 32] =
                bytes.as_slice().try_into().map_err(|_| VaultError::InvalidKey("key must be 32 bytes"))?;
            if keys.insert(version, Zeroizing::new(key)).is_some() {
                return Err(VaultError::InvalidKey("duplicate key version"));
            }
        }
        if keys.is_empty() {
            return Err(VaultError::InvalidKey("no key in key ring"));
        }
        Ok(Self { keys })
    }

    /// The text form, for writing the key file. This is secret material.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::new());
        for (version, key) in &self.keys {
            text.push_str(&format!("{version}:{}\n", STANDARD.encode(key.as_ref())));
        }
        text
    }

    /// Adds a new random key one above the current newest version and returns its version.
    pub fn add_version(&mut self) -> u32 {
        let version = self.current_version().map_or(1, |v| v + 1);
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        self.keys.insert(version, key);
        version
    }

    /// Drops a key version; blobs sealed under it no longer open. The newest cannot go.
    pub fn retire(&mut self, version: u32) -> Result<(), VaultError> {
        if Some(version) == self.current_version() {
            return Err(VaultError::InvalidKey("cannot retire the newest key version"));
        }
        self.keys.remove(&version).map(|_| ()).ok_or(VaultError::UnknownKeyVersion(version))
    }

    /// Whether the ring holds key `version`.
    pub fn has_version(&self, version: u32) -> bool {
        self.keys.contains_key(&version)
    }

    /// The version new blobs are sealed under.
    pub fn current_version(&self) -> Option<u32> {
        self.keys.keys().next_back().copied()
    }

    /// A 32-byte key derived (HKDF-SHA256) from key `version` for `purpose`, so that other
    /// secrets can follow the ring's versions without being stored themselves.
    pub fn derive(&self, version: u32, purpose: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        let key = self.keys.get(&version)?;
        let mut derived = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<sha2::Sha256>::new(Some(b"hearth-vault/derive/1"), key.as_ref())
            .expand(purpose, derived.as_mut())
            .ok()?;
        Some(derived)
    }

    /// Seals `plaintext` for the given place under the newest key.
    pub fn seal(&self, plaintext: &[u8], context: SealContext<'_>) -> Vec<u8> {
        let (&version, key) = self.keys.iter().next_back().expect("a key ring always holds a key");
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = context.associated_data(version);
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut blob = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        blob.push(FORMAT);
        blob.extend_from_slice(&version.to_be_bytes());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        blob
    }

    /// Opens a blob sealed for the given place.
    pub fn open(&self, blob: &[u8], context: SealContext<'_>) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let version = blob_version(blob)?;
        let key = self.keys.get(&version).ok_or(VaultError::UnknownKeyVersion(version))?;
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let aad = context.associated_data(version);
        cipher
            .decrypt(XNonce::from_slice(&blob[5..HEADER_LEN]), Payload { msg: &blob[HEADER_LEN..], aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Open)
    }

    /// Re-seals a blob under the newest key (for rotation). Blobs already current are
    /// returned as `None` so callers can skip the write.
    pub fn rewrap(&self, blob: &[u8], context: SealContext<'_>) -> Result<Option<Vec<u8>>, VaultError> {
        if Some(blob_version(blob)?) == self.current_version() {
            return Ok(None);
        }
        let plaintext = self.open(blob, context)?;
        Ok(Some(self.seal(&plaintext, context)))
    }
}

/// The key version a sealed blob was sealed under.
pub fn blob_version(blob: &[u8]) -> Result<u32, VaultError> {
    if blob.len() < HEADER_LEN + 16 || blob[0] != FORMAT {
        return Err(VaultError::Malformed);
    }
    Ok(u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: SealContext<'static> = SealContext { table: "encryption_keys", row: "r1", column: "private_key" };

    #[test]
    fn round_trip() {
        let ring = KeyRing::generate();
        let blob = ring.seal(b"secret", HERE);
        assert_eq!(ring.open(&blob, HERE).expect("open").as_slice(), b"secret");
        assert!(!blob.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn other_row_column_or_table_does_not_open() {
        let ring = KeyRing::generate();
        let blob = ring.seal(b"secret", HERE);
        for other in [
            SealContext { row: "r2", ..HERE },
            SealContext { column: "public_key", ..HERE },
            SealContext { table: "users", ..HERE },
        ] {
            assert!(matches!(ring.open(&blob, other), Err(VaultError::Open)));
        }
    }

    #[test]
    fn tampering_is_detected() {
        let ring = KeyRing::generate();
        let mut blob = ring.seal(b"secret", HERE);
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert!(matches!(ring.open(&blob, HERE), Err(VaultError::Open)));
        assert!(matches!(ring.open(&blob[..10], HERE), Err(VaultError::Malformed)));
    }

    #[test]
    fn rotation_rewraps_and_retires() {
        let mut ring = KeyRing::generate();
        let old = ring.seal(b"secret", HERE);
        assert_eq!(ring.add_version(), 2);
        assert_eq!(ring.open(&old, HERE).expect("old opens").as_slice(), b"secret");
        let new = ring.rewrap(&old, HERE).expect("rewrap").expect("was old");
        assert_eq!(blob_version(&new).expect("version"), 2);
        assert!(ring.rewrap(&new, HERE).expect("rewrap").is_none());
        ring.retire(1).expect("retire");
        assert!(matches!(ring.open(&old, HERE), Err(VaultError::UnknownKeyVersion(1))));
        assert_eq!(ring.open(&new, HERE).expect("new opens").as_slice(), b"secret");
        assert!(ring.retire(2).is_err());
    }

    #[test]
    fn derived_keys_follow_version_and_purpose() {
        let mut ring = KeyRing::generate();
        ring.add_version();
        let a = ring.derive(1, b"a").expect("version 1");
        assert_eq!(*a, *ring.derive(1, b"a").expect("again"));
        assert_ne!(*a, *ring.derive(1, b"b").expect("other purpose"));
        assert_ne!(*a, *ring.derive(2, b"a").expect("other version"));
        assert!(ring.derive(3, b"a").is_none());
    }

    #[test]
    fn text_form_round_trips_and_rejects_garbage() {
        let mut ring = KeyRing::generate();
        ring.add_version();
        let parsed = KeyRing::parse(&ring.to_text()).expect("parse");
        let blob = ring.seal(b"x", HERE);
        assert_eq!(parsed.open(&blob, HERE).expect("open").as_slice(), b"x");
        for bad in ["", "1", "x:AAAA", "1:not base64!", "1:AAAA", "# only a comment"] {
            assert!(KeyRing::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn debug_shows_versions_not_keys() {
        let ring = KeyRing::generate();
        let text = ring.to_text();
        let key = text.trim().split_once(':').expect("line").1.to_owned();
        assert!(!format!("{ring:?}").contains(&key));
    }
}
