//! The keyguard: the only part of hearth that ever holds a person's provider key in clear.
//!
//! It seals keys ([`Keyguard::seal`]: envelope encryption under a versioned master key), makes
//! the provider calls with them ([`Keyguard::complete`], [`Keyguard::generate_image`]: the
//! fallback router of `hearth-ai`, streaming deltas back), names them by fingerprint, re-seals
//! them under a new master key ([`Keyguard::rewrap`]) and publishes the public key that
//! configure pages encrypt to ([`Keyguard::public_key`]). There is no operation that returns a
//! plaintext key. Keys come in only as envelopes encrypted to the keyguard ([`envelope`]) or
//! as sealed blobs, are opened for one call in zeroizing memory, and are sent only to the
//! configured base URL of their own provider.
//!
//! Keys given with a request arrive only as an envelope; the keyguard checks their shape when
//! it opens them ([`Keyguard::check_request_keys`]), and nowhere else. The operator's free-tier
//! keys are among its own settings ([`KeyguardSettings`]), not the server's.
//!
//! [`KeyguardSettings`] makes the keyguard: a [`LocalKeyguard`] inside `hearth serve`, or a
//! [`RemoteKeyguard`] talking to one that [`remote::serve_at`] runs as its own process over a
//! Unix socket or mutual TLS ([`certs`] makes the certificates), behind the same trait.
//! [`rotation`] adds and retires master key versions.

pub mod certs;
pub mod envelope;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod local;
mod master_key;
pub mod remote;
pub mod rotation;
mod sealed;
mod settings;

use std::time::Duration;

use async_trait::async_trait;
use hearth_ai::{Answer, Attempt, ChatRequest, GeneratedImage, KeyFingerprint, ProviderName, TurnFailure};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

pub use envelope::{Envelope, EnvelopeContext, PublicKey, Purpose};
pub use local::{KeyguardOptions, LocalKeyguard};
pub use remote::{Endpoint, RemoteKeyguard};
pub use sealed::{Owner, SealedKey, StoredKey};
pub use settings::{FreeTierKeys, KeyguardSettings};

/// What the keyguard may be asked. Implemented in-process ([`LocalKeyguard`]) and over a socket
/// ([`RemoteKeyguard`]); the server holds an `Arc<dyn Keyguard>` and cannot tell which.
#[async_trait]
pub trait Keyguard: Send + Sync + std::fmt::Debug {
    /// The key configure pages and per-request keys are encrypted to.
    async fn public_key(&self) -> Result<PublicKey, KeyguardError>;

    /// Opens `request.envelope`, checks the key's shape (and, when asked, makes one cheap live
    /// call with it), and seals it for the row `request.id`.
    async fn seal(&self, request: SealRequest) -> Result<SealedKey, KeyguardError>;

    /// Answers `request` with the keys in order, streaming the reply's text into `deltas`.
    async fn complete(
        &self,
        request: &ChatRequest,
        keys: Vec<KeyRef>,
        deltas: &mpsc::UnboundedSender<String>,
    ) -> Result<Result<Answer, TurnFailure>, KeyguardError>;

    /// Generates one image of `prompt` with the first of `keys` that can.
    async fn generate_image(
        &self,
        prompt: &str,
        keys: Vec<KeyRef>,
    ) -> Result<Result<ImageAnswer, TurnFailure>, KeyguardError>;

    /// The fingerprint of a stored key.
    async fn fingerprint(&self, key: &StoredKey) -> Result<KeyFingerprint, KeyguardError>;

    /// Re-seals a stored key under the newest master key version: the new blob and its
    /// version, or `None` when it is already there.
    async fn rewrap(&self, key: &StoredKey) -> Result<Option<(Vec<u8>, u32)>, KeyguardError>;

    /// The health of keys, by fingerprint, in the order asked.
    async fn key_states(&self, keys: Vec<KeyFingerprint>) -> Result<Vec<KeyStatus>, KeyguardError>;

    /// The operator's free-tier keys from the keyguard's settings: provider and fingerprint,
    /// in the order they are tried.
    async fn free_tier(&self) -> Result<Vec<(ProviderName, KeyFingerprint)>, KeyguardError>;

    /// Opens the keys `user_id` gave with one request ([`envelope::RequestSealer`]) and checks
    /// each one's shape for its provider, before the request is let through: a key that is
    /// not plausible is refused ([`KeyguardError::InvalidRequestKey`]) without any provider
    /// being called or any limit being spent. The same check runs when they are used.
    async fn check_request_keys(&self, user_id: Uuid, envelope: &Envelope) -> Result<(), KeyguardError>;
}

/// A key to try, as the server names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum KeyRef {
    /// A stored, sealed key.
    Stored(StoredKey),
    /// The keys given with one request (never stored), in order, encrypted to the keyguard
    /// ([`envelope::seal_keys_to`]).
    Given {
        /// Who sent them.
        user_id: Uuid,
        /// The keys, encrypted.
        envelope: Envelope,
    },
    /// The operator's free-tier keys from the keyguard's own settings.
    FreeTier,
}

/// A key to seal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealRequest {
    /// The row it will be stored in.
    pub id: Uuid,
    /// Whose it will be.
    pub owner: Owner,
    /// The provider it is for.
    pub provider: ProviderName,
    /// Who encrypted it, and why.
    pub context: EnvelopeContext,
    /// The key, encrypted to the keyguard.
    pub envelope: Envelope,
    /// Make one cheap call with the key first and refuse it if the provider does.
    pub live_check: bool,
}

/// A generated image and who made it.
#[derive(Debug, Clone)]
pub struct ImageAnswer {
    /// The image.
    pub image: GeneratedImage,
    /// Who made it.
    pub provider: ProviderName,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

/// The health of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyStatus {
    /// Failures in a row.
    pub failures: u32,
    /// How much longer it rests after repeated failures, if it does.
    pub cooling_for: Option<Duration>,
    /// When its provider refused it as invalid, if it has not answered since.
    #[serde(default)]
    pub refused_at: Option<std::time::SystemTime>,
}

/// What the keyguard refuses or fails with. Never carries a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "error", content = "message")]
pub enum KeyguardError {
    /// The keyguard cannot be reached (its process is down or refused us).
    #[error("the keyguard is not reachable")]
    Unavailable,
    /// An envelope did not open: made for another keyguard key, person or provider, or
    /// tampered with.
    #[error("the encrypted key could not be opened; reload the page and try again")]
    Undecryptable,
    /// The key is not one the provider accepts: its shape, or the provider said so.
    #[error("{0}")]
    InvalidKey(String),
    /// A key given with a request is not of a shape its provider's keys have.
    #[error("{message}")]
    InvalidRequestKey {
        /// The provider it was given for.
        provider: ProviderName,
        /// What is wrong with it (never the key).
        message: String,
    },
    /// A stored key did not open (a retired master key version, or a damaged row).
    #[error("a stored key could not be opened")]
    SealedKeyUnreadable,
    /// The two sides did not understand each other.
    #[error("keyguard protocol error: {0}")]
    Protocol(String),
    /// The keyguard could not be set up (certificates, key files, a listener).
    #[error("{0}")]
    Setup(String),
}
