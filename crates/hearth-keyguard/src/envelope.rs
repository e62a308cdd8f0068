//! Envelopes: provider keys encrypted to the keyguard's public key, so that only the keyguard
//! can read them. A configure page makes one in the browser with WebCrypto for the key pasted
//! there; the server makes one for the keys given with a request to `POST /api/chat/message`
//! (the same path, so plaintext keys are opened only inside the keyguard).
//!
//! ECDH P-256 between an ephemeral key and the keyguard's key; HKDF-SHA256 (salt: the
//! ephemeral public key, 65 bytes uncompressed; info: `hearth-keyguard/envelope/v1`) gives an
//! AES-256-GCM key; a random 96-bit nonce; associated data `<purpose>|<user id>|<link>|<what>`
//! for a configure page's key (`configure` for a person's own key, `pool` for the free tier's;
//! `link` the lowercase hex SHA-256 of the page's link token; `what` the provider) and
//! `request|<user id>|keys` for a request's keys (a JSON list of `[provider, key]`, all in one
//! envelope, however many keys) — so an envelope made on one person's page, on one link, for
//! one purpose or for one provider opens for no other: a captured envelope cannot be replayed
//! to a later link, an operator's pool link included.
//!
//! The keyguard's key pair follows the master key: version N's pair is derived from master key
//! N (`kid` = N), so it survives restarts, changes with a rotation, and pages opened just before
//! one still work until the old version is retired.
//!
//! The key agreement is AWS-LC's (already linked for TLS), an order of magnitude faster than a
//! portable one. Still, three P-256 multiplications per request (the ephemeral pair, its
//! agreement, and the keyguard's) were a tenth of the server's CPU for each assistant request.
//! So the server seals requests' keys with a [`RequestSealer`]: one ephemeral pair, agreed once
//! and its secret dropped at once, whose AES key seals the requests of a few seconds, each with
//! its own random nonce. The keyguard keeps the cipher of each such ephemeral key it has opened
//! (a [`RequestOpener`]) for a while. The envelope's format is unchanged, and a configure page
//! still makes a fresh ephemeral key for each key pasted.

use std::fmt;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_lc_rs::agreement::{ECDH_P256, PrivateKey, UnparsedPublicKey, agree};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_ai::ProviderName;
use hearth_vault::{KeyRing, TokenHash};
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
    /// The configure link it was made on: the SHA-256 of the link's token (what the server
    /// stores of it), bound in as lowercase hex. `None` for a request's keys.
    pub link: Option<TokenHash>,
}

/// Why an envelope was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Pasted into a configure page, to be stored as the person's own key.
    Configure,
    /// Pasted into an operator's configure page, to be stored in the free tier's pool.
    Pool,
    /// Given with one request, never stored.
    Request,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Configure => "configure",
            Purpose::Pool => "pool",
            Purpose::Request => "request",
        }
    }
}

impl EnvelopeContext {
    /// A configure page's envelope: for the person's own key or (`pool`) the free tier's, made on
    /// the link whose token hashes to `link_hash`.
    pub fn configure(user_id: Uuid, link_hash: &TokenHash, pool: bool) -> Self {
        let purpose = if pool { Purpose::Pool } else { Purpose::Configure };
        Self { purpose, user_id, link: Some(*link_hash) }
    }

    /// A request's keys, for `user_id`.
    pub fn request(user_id: Uuid) -> Self {
        Self { purpose: Purpose::Request, user_id, link: None }
    }

    fn associated_data(&self, what: &str) -> String {
        match &self.link {
            Some(link) => format!("{}|{}|{}|{what}", self.purpose.as_str(), self.user_id, link.to_hex()),
            None => format!("{}|{}|{what}", self.purpose.as_str(), self.user_id),
        }
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

/// Encrypts the keys given with one request, in order, to the keyguard's `public` key, with an
/// ephemeral key pair of its own (a server seals many with one [`RequestSealer`]).
pub fn seal_keys_to(
    public: &PublicKey,
    user_id: Uuid,
    keys: &[(ProviderName, &str)],
) -> Result<Envelope, KeyguardError> {
    RequestSealer::new(public)?.seal_keys(user_id, keys)
}

fn seal_bytes(public: &PublicKey, aad: &str, plaintext: &[u8]) -> Result<Envelope, KeyguardError> {
    RequestSealer::new(public)?.seal(aad, plaintext)
}

/// Seals the keys of many requests to one keyguard key with one key agreement: an ephemeral
/// pair made when this is, whose secret half is dropped at once, leaving its public half and
/// the AES key derived from the shared secret. Each envelope gets a random 96-bit nonce of its
/// own (random nonces under one AES-GCM key are safe far beyond 2^20 envelopes, and a sealer is
/// meant for a few seconds' requests). Whoever holds it can seal, not open: only the keyguard
/// can.
pub struct RequestSealer {
    kid: u32,
    /// The ephemeral public key, uncompressed SEC1, base64url.
    epk: String,
    cipher: Aes256Gcm,
}

impl fmt::Debug for RequestSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSealer").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl RequestSealer {
    /// A sealer to the keyguard's `public` key.
    pub fn new(public: &PublicKey) -> Result<Self, KeyguardError> {
        let recipient = URL_SAFE_NO_PAD.decode(&public.key).map_err(|_| KeyguardError::Undecryptable)?;
        let ephemeral = PrivateKey::generate(&ECDH_P256).map_err(|_| KeyguardError::Undecryptable)?;
        let epk = ephemeral.compute_public_key().map_err(|_| KeyguardError::Undecryptable)?;
        let cipher = agree(
            &ephemeral,
            UnparsedPublicKey::new(&ECDH_P256, &recipient),
            KeyguardError::Undecryptable,
            |shared| Ok(cipher(shared, epk.as_ref())),
        )?;
        Ok(Self { kid: public.kid, epk: URL_SAFE_NO_PAD.encode(epk.as_ref()), cipher })
    }

    /// Encrypts the keys given with one request, in order, as they were given: the keyguard
    /// checks them when it opens them.
    pub fn seal_keys(&self, user_id: Uuid, keys: &[(ProviderName, &str)]) -> Result<Envelope, KeyguardError> {
        let context = EnvelopeContext::request(user_id);
        let plaintext = Zeroizing::new(serde_json::to_vec(keys).map_err(|_| KeyguardError::Undecryptable)?);
        self.seal(&context.associated_data(REQUEST_KEYS), &plaintext)
    }

    /// One envelope, with a random nonce of its own.
    fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Envelope, KeyguardError> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: aad.as_bytes() })
            .map_err(|_| KeyguardError::Undecryptable)?;
        Ok(Envelope {
            kid: self.kid,
            epk: self.epk.clone(),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            ciphertext: URL_SAFE_NO_PAD.encode(ciphertext),
        })
    }
}

#[cfg(feature = "fuzzing")]
impl RequestSealer {
    /// Any bytes sealed as a request's keys for `user_id`, so the fuzz targets reach what the
    /// keyguard does with an envelope's content (`seal_keys` only seals well-formed lists).
    pub(crate) fn seal_request_bytes(&self, user_id: Uuid, plaintext: &[u8]) -> Result<Envelope, KeyguardError> {
        let context = EnvelopeContext::request(user_id);
        self.seal(&context.associated_data(REQUEST_KEYS), plaintext)
    }

    /// Any bytes sealed as a configure page's key (`seal_to` only seals text).
    pub(crate) fn seal_configure_bytes(
        &self,
        context: EnvelopeContext,
        provider: ProviderName,
        plaintext: &[u8],
    ) -> Result<Envelope, KeyguardError> {
        self.seal(&context.associated_data(provider.as_str()), plaintext)
    }
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

fn open_bytes(secret: &PrivateKey, envelope: &Envelope, aad: &str) -> Result<Zeroizing<Vec<u8>>, KeyguardError> {
    RequestOpener::new(secret, &envelope.epk)?.open_bytes(envelope, aad)
}

/// The keyguard's side of one ephemeral key's agreement: opens every envelope sealed with it
/// (and only those: another ephemeral key's envelope fails its tag).
pub(crate) struct RequestOpener {
    cipher: Aes256Gcm,
}

impl fmt::Debug for RequestOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestOpener").finish_non_exhaustive()
    }
}

impl RequestOpener {
    /// The agreement of the keyguard's `secret` with the ephemeral public key `epk` (base64url).
    pub(crate) fn new(secret: &PrivateKey, epk: &str) -> Result<Self, KeyguardError> {
        let epk = URL_SAFE_NO_PAD.decode(epk).map_err(|_| KeyguardError::Undecryptable)?;
        // Only the uncompressed form a browser exports (AWS-LC would take others too).
        if epk.len() != 65 || epk[0] != 4 {
            return Err(KeyguardError::Undecryptable);
        }
        let cipher = agree(secret, UnparsedPublicKey::new(&ECDH_P256, &epk), KeyguardError::Undecryptable, |shared| {
            Ok(cipher(shared, &epk))
        })?;
        Ok(Self { cipher })
    }

    /// Opens a request's envelope: its keys, in order.
    pub(crate) fn open_keys(
        &self,
        envelope: &Envelope,
        user_id: Uuid,
    ) -> Result<Vec<(ProviderName, Zeroizing<String>)>, KeyguardError> {
        let context = EnvelopeContext::request(user_id);
        let plaintext = self.open_bytes(envelope, &context.associated_data(REQUEST_KEYS))?;
        serde_json::from_slice(&plaintext).map_err(|_| KeyguardError::Undecryptable)
    }

    fn open_bytes(&self, envelope: &Envelope, aad: &str) -> Result<Zeroizing<Vec<u8>>, KeyguardError> {
        let decode = |text: &str| URL_SAFE_NO_PAD.decode(text).map_err(|_| KeyguardError::Undecryptable);
        let nonce = decode(&envelope.nonce)?;
        let ciphertext = decode(&envelope.ciphertext)?;
        if nonce.len() != 12 {
            return Err(KeyguardError::Undecryptable);
        }
        self.cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: aad.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| KeyguardError::Undecryptable)
    }
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
        EnvelopeContext::configure(Uuid::from_u128(7), &TokenHash([1; 32]), false)
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
        // Another provider, person, purpose or link: it does not open.
        assert!(open(&secret, &envelope, context(), ProviderName::OpenAi).is_err());
        let other_user = EnvelopeContext { user_id: Uuid::from_u128(8), ..context() };
        assert!(open(&secret, &envelope, other_user, ProviderName::Groq).is_err());
        let request = EnvelopeContext { purpose: Purpose::Request, ..context() };
        assert!(open(&secret, &envelope, request, ProviderName::Groq).is_err());
        let pool = EnvelopeContext::configure(Uuid::from_u128(7), &TokenHash([1; 32]), true);
        assert!(open(&secret, &envelope, pool, ProviderName::Groq).is_err());
        let later_link = EnvelopeContext::configure(Uuid::from_u128(7), &TokenHash([2; 32]), false);
        assert!(open(&secret, &envelope, later_link, ProviderName::Groq).is_err());
        // Another keyguard: neither.
        let stranger = keypair(&KeyRing::generate(), 1).expect("version 1");
        assert!(open(&stranger, &envelope, context(), ProviderName::Groq).is_err());
    }

    #[test]
    fn a_requests_keys_travel_in_one_envelope_for_their_owner_only() {
        let secret = keypair(&KeyRing::generate(), 1).expect("version 1");
        let public = public_key(&secret, 1).expect("public");
        let user = Uuid::from_u128(7);
        let keys =
            [(ProviderName::Groq, "gsk_REQUESTKEY-0123456789"), (ProviderName::OpenAi, "sk-REQUESTKEY-abcdefghij")];
        let envelope = seal_keys_to(&public, user, &keys).expect("seal");
        assert!(!serde_json::to_string(&envelope).expect("json").contains("REQUESTKEY"));
        let opener = RequestOpener::new(&secret, &envelope.epk).expect("agrees");
        let opened = opener.open_keys(&envelope, user).expect("opens");
        let opened: Vec<(ProviderName, &str)> = opened.iter().map(|(p, k)| (*p, k.as_str())).collect();
        assert_eq!(
            opened,
            [(ProviderName::Groq, "gsk_REQUESTKEY-0123456789"), (ProviderName::OpenAi, "sk-REQUESTKEY-abcdefghij")]
        );
        assert!(opener.open_keys(&envelope, Uuid::from_u128(8)).is_err(), "another person's");
        assert!(open(&secret, &envelope, context(), ProviderName::Groq).is_err(), "not a configure envelope");
    }

    #[test]
    fn one_sealer_seals_many_requests_each_with_its_own_nonce() {
        let secret = keypair(&KeyRing::generate(), 1).expect("version 1");
        let sealer = RequestSealer::new(&public_key(&secret, 1).expect("public")).expect("sealer");
        let user = Uuid::from_u128(7);
        let keys = |key: &'static str| [(ProviderName::Groq, key)];
        let first = sealer.seal_keys(user, &keys("gsk_FIRST-0123456789abcdef")).expect("seal");
        let second = sealer.seal_keys(user, &keys("gsk_SECOND-0123456789abcde")).expect("seal");
        assert_eq!(first.epk, second.epk, "one key agreement");
        assert_ne!(first.nonce, second.nonce);
        let opener = RequestOpener::new(&secret, &first.epk).expect("agrees");
        let opened = |envelope: &Envelope| opener.open_keys(envelope, user).map(|keys| keys[0].1.to_string());
        assert_eq!(opened(&first).expect("opens"), "gsk_FIRST-0123456789abcdef");
        assert_eq!(opened(&second).expect("opens"), "gsk_SECOND-0123456789abcde");
        // The same agreement opens nothing else: not another person's, nor another sealer's.
        assert!(opener.open_keys(&first, Uuid::from_u128(8)).is_err());
        let other = RequestSealer::new(&public_key(&secret, 1).expect("public")).expect("sealer");
        let elsewhere = other.seal_keys(user, &keys("gsk_OTHER-0123456789abcdef")).expect("seal");
        assert_ne!(elsewhere.epk, first.epk);
        assert!(opened(&Envelope { epk: first.epk.clone(), ..elsewhere.clone() }).is_err());
        let own = RequestOpener::new(&secret, &elsewhere.epk).expect("agrees");
        assert_eq!(own.open_keys(&elsewhere, user).expect("opens with its own agreement").len(), 1);
        // Its debug form shows no key material.
        assert_eq!(format!("{sealer:?}"), "RequestSealer { kid: 1, .. }");
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
        let link_hash: [u8; 32] = (0..32)
            .map(|i| u8::from_str_radix(&text("link_hash_hex")[2 * i..2 * i + 2], 16).expect("hex"))
            .collect::<Vec<u8>>()
            .try_into()
            .expect("32 bytes");
        assert_eq!(TokenHash::of(&text("link_token")), TokenHash(link_hash), "the vector's link is its token's");
        let context = EnvelopeContext::configure(text("user_id").parse().expect("uuid"), &TokenHash(link_hash), false);
        assert_eq!(context.associated_data(&text("provider")), text("associated_data"));
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
