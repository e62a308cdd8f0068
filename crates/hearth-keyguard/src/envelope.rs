//! Envelopes: provider keys encrypted to the keyguard's public key, so that only the keyguard
//! can read them. A configure page makes one in the browser with WebCrypto for the key pasted
//! there; the server makes one for the keys given with a request to `POST /api/chat/message`
//! (the same path, so plaintext keys are opened only inside the keyguard).
//!
//! ECDH P-256 between a fresh ephemeral key and the keyguard's key; HKDF-SHA256 (salt: the
//! ephemeral public key, 65 bytes uncompressed; info: `hearth-keyguard/envelope/v1`) gives an
//! AES-256-GCM key; a random 96-bit nonce; associated data `<purpose>|<user id>|<what>` — the
//! provider for a configure page's key, `keys` for a request's keys (a JSON list of
//! `[provider, key]`, all in one envelope: one key agreement per request, however many keys) —
//! so an envelope made on one person's page, or for one provider, opens for no other.
//!
//! The keyguard's key pair follows the master key: version N's pair is derived from master key
//! N (`kid` = N), so it survives restarts, changes with a rotation, and pages opened just before
//! one still work until the old version is retired.
//!
//! The key agreement is AWS-LC's (already linked for TLS): every request with keys of its own
//! makes one, and AWS-LC's P-256 is an order of magnitude faster than a portable one.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_lc_rs::agreement::{ECDH_P256, PrivateKey, UnparsedPublicKey, agree};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_ai::ProviderName;
use hearth_vault::KeyRing;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::KeyguardError;

const HKDF_INFO: &[u8] = b"hearth-keyguard/envelope/v1";
/// What the keyguard's ECDH secret is derived from a master key for.
const ECDH_PURPOSE: &[u8] = b"hearth-keyguard/ecdh/v1";

/// The keyguard's public key, as configure pages and the server encrypt to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// The master key version the pair belongs to.
    pub kid: u32,
    /// The uncompressed SEC1 point (65 bytes), base64url without padding.
    pub key: String,
}

/// Who an envelope was made for, bound in as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeContext {
    /// Why it was made.
    pub purpose: Purpose,
    /// The person it was made for.
    pub user_id: Uuid,
}

/// Why an envelope was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Pasted into a configure page, to be stored.
    Configure,
    /// Given with one request, never stored.
    Request,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Configure => "configure",
            Purpose::Request => "request",
        }
    }
}

impl EnvelopeContext {
    fn associated_data(&self, what: &str) -> String {
        format!("{}|{}|{what}", self.purpose.as_str(), self.user_id)
    }
}

/// What a request's envelope holds, and is labelled with.
const REQUEST_KEYS: &str = "keys";

/// A key encrypted to the keyguard. Every field is base64url without padding, as a browser
/// sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The keyguard key it was made for.
    pub kid: u32,
    /// The ephemeral public key, uncompressed SEC1.
    pub epk: String,
    /// The AES-GCM nonce (12 bytes).
    pub nonce: String,
    /// The ciphertext with its 16-byte tag.
    pub ciphertext: String,
}

/// Encrypts `key` to the keyguard's `public` key (what a configure page does in the browser).
pub fn seal_to(
    public: &PublicKey,
    context: EnvelopeContext,
    provider: ProviderName,
    key: &str,
) -> Result<Envelope, KeyguardError> {
    seal_bytes(public, &context.associated_data(provider.as_str()), key.as_bytes())
}

/// Encrypts the keys given with one request, in order, to the keyguard's `public` key.
pub fn seal_keys_to(
    public: &PublicKey,
    user_id: Uuid,
    keys: &[(ProviderName, hearth_ai::ApiKey)],
) -> Result<Envelope, KeyguardError> {
    let context = EnvelopeContext { purpose: Purpose::Request, user_id };
    let listed: Vec<(ProviderName, &str)> = keys.iter().map(|(provider, key)| (*provider, key.expose())).collect();
    let plaintext = Zeroizing::new(serde_json::to_vec(&listed).map_err(|_| KeyguardError::Undecryptable)?);
    seal_bytes(public, &context.associated_data(REQUEST_KEYS), &plaintext)
}

fn seal_bytes(public: &PublicKey, aad: &str, plaintext: &[u8]) -> Result<Envelope, KeyguardError> {
    let recipient = URL_SAFE_NO_PAD.decode(&public.key).map_err(|_| KeyguardError::Undecryptable)?;
    let ephemeral = PrivateKey::generate(&ECDH_P256).map_err(|_| KeyguardError::Undecryptable)?;
    let epk = ephemeral.compute_public_key().map_err(|_| KeyguardError::Undecryptable)?;
    let cipher =
        agree(&ephemeral, UnparsedPublicKey::new(&ECDH_P256, &recipient), KeyguardError::Undecryptable, |shared| {
            Ok(cipher(shared, epk.as_ref()))
        })?;
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: aad.as_bytes() })
        .map_err(|_| KeyguardError::Undecryptable)?;
    Ok(Envelope {
        kid: public.kid,
        epk: URL_SAFE_NO_PAD.encode(epk.as_ref()),
        nonce: URL_SAFE_NO_PAD.encode(nonce),
        ciphertext: URL_SAFE_NO_PAD.encode(ciphertext),
    })
}

/// The keyguard's key pair of master key `version`, if the ring still holds it.
pub(crate) fn keypair(ring: &KeyRing, version: u32) -> Option<PrivateKey> {
    let seed = ring.derive(version, ECDH_PURPOSE)?;
    // A 32-byte string is a valid scalar unless it is zero or not below the group order
    // (odds about 2^-32); rehash in that case.
    let mut candidate = seed;
    loop {
        if let Ok(secret) = PrivateKey::from_private_key(&ECDH_P256, candidate.as_ref()) {
            return Some(secret);
        }
        let next: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(candidate.as_ref()).into();
        candidate = Zeroizing::new(next);
    }
}

/// The public half of `secret` (uncompressed SEC1), labelled with its version.
pub(crate) fn public_key(secret: &PrivateKey, kid: u32) -> Result<PublicKey, KeyguardError> {
    let point = secret.compute_public_key().map_err(|_| KeyguardError::Unavailable)?;
    Ok(PublicKey { kid, key: URL_SAFE_NO_PAD.encode(point.as_ref()) })
}

/// Opens a configure page's envelope with the keyguard's `secret`: the key, trimmed. Any
/// failure is the same error: a page or a caller learns nothing about why.
pub(crate) fn open(
    secret: &PrivateKey,
    envelope: &Envelope,
    context: EnvelopeContext,
    provider: ProviderName,
) -> Result<Zeroizing<String>, KeyguardError> {
    let plaintext = open_bytes(secret, envelope, &context.associated_data(provider.as_str()))?;
    let text = std::str::from_utf8(&plaintext).map_err(|_| KeyguardError::Undecryptable)?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// Opens a request's envelope: its keys, in order.
pub(crate) fn open_keys(
    secret: &PrivateKey,
    envelope: &Envelope,
    user_id: Uuid,
) -> Result<Vec<(ProviderName, Zeroizing<String>)>, KeyguardError> {
    let context = EnvelopeContext { purpose: Purpose::Request, user_id };
    let plaintext = open_bytes(secret, envelope, &context.associated_data(REQUEST_KEYS))?;
    serde_json::from_slice(&plaintext).map_err(|_| KeyguardError::Undecryptable)
}

fn open_bytes(secret: &PrivateKey, envelope: &Envelope, aad: &str) -> Result<Zeroizing<Vec<u8>>, KeyguardError> {
    let decode = |text: &str| URL_SAFE_NO_PAD.decode(text).map_err(|_| KeyguardError::Undecryptable);
    let epk = decode(&envelope.epk)?;
    let nonce = decode(&envelope.nonce)?;
    let ciphertext = decode(&envelope.ciphertext)?;
    // Only the uncompressed form a browser exports (AWS-LC would take others too).
    if nonce.len() != 12 || epk.len() != 65 || epk[0] != 4 {
        return Err(KeyguardError::Undecryptable);
    }
    let cipher = agree(secret, UnparsedPublicKey::new(&ECDH_P256, &epk), KeyguardError::Undecryptable, |shared| {
        Ok(cipher(shared, &epk))
    })?;
    cipher
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: aad.as_bytes() })
        .map(Zeroizing::new)
        .map_err(|_| KeyguardError::Undecryptable)
}

fn cipher(shared: &[u8], salt: &[u8]) -> Aes256Gcm {
    let mut key = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), shared)
        .expand(HKDF_INFO, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Aes256Gcm::new(key.as_ref().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> EnvelopeContext {
        EnvelopeContext { purpose: Purpose::Configure, user_id: Uuid::from_u128(7) }
    }

    #[test]
    fn round_trip_and_binding() {
        let ring = KeyRing::generate();
        let secret = keypair(&ring, 1).expect("version 1");
        let public = public_key(&secret, 1).expect("public");
        let key = "gsk_0123456789abcdefghijklmnopqrstuv";
        let envelope = seal_to(&public, context(), ProviderName::Groq, key).expect("seal");
        assert!(!serde_json::to_string(&envelope).expect("json").contains("0123456789"));
        assert_eq!(open(&secret, &envelope, context(), ProviderName::Groq).expect("open").as_str(), key);
        // Another provider, person or purpose: it does not open.
        assert!(open(&secret, &envelope, context(), ProviderName::OpenAi).is_err());
        let other_user = EnvelopeContext { user_id: Uuid::from_u128(8), ..context() };
        assert!(open(&secret, &envelope, other_user, ProviderName::Groq).is_err());
        let other_purpose = EnvelopeContext { purpose: Purpose::Request, ..context() };
        assert!(open(&secret, &envelope, other_purpose, ProviderName::Groq).is_err());
        // Another keyguard: neither.
        let stranger = keypair(&KeyRing::generate(), 1).expect("version 1");
        assert!(open(&stranger, &envelope, context(), ProviderName::Groq).is_err());
    }

    #[test]
    fn a_requests_keys_travel_in_one_envelope_for_their_owner_only() {
        let secret = keypair(&KeyRing::generate(), 1).expect("version 1");
        let public = public_key(&secret, 1).expect("public");
        let user = Uuid::from_u128(7);
        let keys = [
            (ProviderName::Groq, hearth_ai::ApiKey::new("gsk_REQUESTKEY-0123456789")),
            (ProviderName::OpenAi, hearth_ai::ApiKey::new("sk-REQUESTKEY-abcdefghij")),
        ];
        let envelope = seal_keys_to(&public, user, &keys).expect("seal");
        assert!(!serde_json::to_string(&envelope).expect("json").contains("REQUESTKEY"));
        let opened = open_keys(&secret, &envelope, user).expect("opens");
        let opened: Vec<(ProviderName, &str)> = opened.iter().map(|(p, k)| (*p, k.as_str())).collect();
        assert_eq!(
            opened,
            [(ProviderName::Groq, "gsk_REQUESTKEY-0123456789"), (ProviderName::OpenAi, "sk-REQUESTKEY-abcdefghij")]
        );
        assert!(open_keys(&secret, &envelope, Uuid::from_u128(8)).is_err(), "another person's");
        assert!(open(&secret, &envelope, context(), ProviderName::Groq).is_err(), "not a configure envelope");
    }

    #[test]
    fn the_pair_follows_the_master_key_version() {
        let mut ring = KeyRing::generate();
        ring.add_version();
        let public = |version| public_key(&keypair(&ring, version).expect("a version"), version).expect("public");
        assert_eq!(public(1), public(1));
        assert_ne!(public(1).key, public(2).key);
        assert!(keypair(&ring, 3).is_none());
    }

    /// The vector a browser made with `configure.js` (shared with the page's checks): the Rust
    /// side opens what WebCrypto sealed.
    #[test]
    fn opens_the_browser_made_vector() {
        let vector: serde_json::Value =
            serde_json::from_str(include_str!("../tests/envelope-vector.json")).expect("the vector is JSON");
        let text = |name: &str| vector[name].as_str().expect("a string field").to_owned();
        let private: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&text("keyguard_private_key_hex")[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        let secret = PrivateKey::from_private_key(&ECDH_P256, &private).expect("a P-256 scalar");
        assert_eq!(public_key(&secret, 1).expect("public").key, text("keyguard_public_key"));
        let envelope: Envelope = serde_json::from_value(vector["envelope"].clone()).expect("an envelope");
        let context = EnvelopeContext { purpose: Purpose::Configure, user_id: text("user_id").parse().expect("uuid") };
        let opened = open(&secret, &envelope, context, ProviderName::Anthropic).expect("opens");
        assert_eq!(opened.as_str(), text("api_key"));
    }

    #[test]
    fn garbage_is_refused() {
        let secret = keypair(&KeyRing::generate(), 1).expect("version 1");
        let envelope =
            seal_to(&public_key(&secret, 1).expect("public"), context(), ProviderName::Groq, "k").expect("seal");
        for broken in [
            Envelope { epk: "!!".into(), ..envelope.clone() },
            Envelope { epk: URL_SAFE_NO_PAD.encode([4u8; 65]), ..envelope.clone() },
            Envelope { nonce: URL_SAFE_NO_PAD.encode([0u8; 11]), ..envelope.clone() },
            Envelope { ciphertext: String::new(), ..envelope.clone() },
        ] {
            assert!(open(&secret, &broken, context(), ProviderName::Groq).is_err());
        }
    }
}
