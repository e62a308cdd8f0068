//! The keyguard in this process: the master key ring, the router that calls providers, and the
//! operator's free-tier keys.

use std::path::PathBuf;
use std::time::Instant;

use async_trait::async_trait;
use hearth_ai::{
    AiError, Answer, ApiKey, Candidate, ChatMessage, ChatRequest, FailureClass, KeyFingerprint, KeyHolder,
    ProviderName, Providers, Router, RouterSettings, TurnFailure,
};
use hearth_vault::{KeyRing, RingFile};
use tokio::sync::mpsc;

use crate::envelope::{self, PublicKey};
use crate::sealed::{self, Owner, SealedKey, StoredKey};
use crate::{ImageAnswer, KeyRef, KeyStatus, Keyguard, KeyguardError, SealRequest};

/// How a keyguard is set up.
#[derive(Debug)]
pub struct KeyguardOptions {
    /// The master key ring.
    pub ring: KeyRing,
    /// The file it was read from, watched for new versions (None: never reloaded).
    pub ring_file: Option<PathBuf>,
    /// Where and how each provider is called.
    pub providers: Providers,
    /// Provider order, deadline and cool-downs.
    pub routing: RouterSettings,
    /// The operator's free-tier keys, in order.
    pub free_tier: Vec<(ProviderName, ApiKey)>,
}

/// The keyguard, in this process.
#[derive(Debug)]
pub struct LocalKeyguard {
    ring: RingFile,
    router: Router,
    free_tier: Vec<Candidate>,
    /// The key pair of each master key version, derived once: deriving it costs a P-256
    /// scalar multiplication, on every request that carries keys otherwise. A version's pair
    /// never changes; a retired version is refused before this is consulted.
    secrets: std::sync::Mutex<std::collections::HashMap<u32, std::sync::Arc<aws_lc_rs::agreement::PrivateKey>>>,
    /// The agreements with the ephemeral keys that requests' keys were sealed with lately: a
    /// server seals a few seconds' requests with one (see [`envelope::RequestSealer`]), so
    /// each costs a P-256 multiplication here once, not once per request.
    request_openers: std::sync::Mutex<RequestOpeners>,
}

/// Request openers by keyguard key version and ephemeral public key, each with when it was made.
type RequestOpeners = std::collections::HashMap<(u32, String), (std::sync::Arc<envelope::RequestOpener>, Instant)>;

/// How long an agreement with a request sealer's ephemeral key is kept. A server makes a new
/// sealer every few seconds; this only bounds how long a derived key stays in memory.
const REQUEST_OPENER_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Most agreements kept at once: the current sealers of many servers (past it, all are dropped
/// and made again as envelopes come).
const MAX_REQUEST_OPENERS: usize = 64;

impl LocalKeyguard {
    /// A keyguard as `options` describe it; it fails only when the HTTP client for the
    /// providers cannot be built.
    pub fn new(options: KeyguardOptions) -> Result<Self, KeyguardError> {
        let free_tier = options
            .free_tier
            .into_iter()
            .map(|(provider, key)| Candidate { provider, key, holder: KeyHolder::Operator })
            .collect();
        let router =
            Router::new(options.providers, options.routing).map_err(|e| KeyguardError::Setup(e.to_string()))?;
        Ok(Self {
            ring: RingFile::new(options.ring, options.ring_file),
            router,
            free_tier,
            secrets: std::sync::Mutex::default(),
            request_openers: std::sync::Mutex::default(),
        })
    }

    /// Opens the keys a call may use, in order. A stored key that does not open is left out
    /// (and logged by id): the others may still answer.
    fn candidates(&self, keys: Vec<KeyRef>) -> Result<Vec<Candidate>, KeyguardError> {
        let mut candidates = Vec::with_capacity(keys.len());
        for key in keys {
            match key {
                KeyRef::Stored(stored) => match self.open(&stored) {
                    Ok(key) => {
                        let holder = match stored.owner {
                            Owner::User(_) => KeyHolder::Person,
                            Owner::Pool => KeyHolder::Pool,
                        };
                        candidates.push(Candidate { provider: stored.provider, key, holder });
                    }
                    Err(error) => tracing::error!(key = %stored.id, %error, "a stored key did not open; skipped"),
                },
                KeyRef::Given { user_id, envelope } => candidates.extend(self.request_keys(user_id, &envelope)?),
                KeyRef::FreeTier => candidates.extend(self.free_tier.iter().cloned()),
            }
        }
        Ok(candidates)
    }

    /// The keys given with one request, opened and each checked for its provider's shape: the
    /// one place a request's keys are checked.
    fn request_keys(
        &self,
        user_id: uuid::Uuid,
        envelope: &envelope::Envelope,
    ) -> Result<Vec<Candidate>, KeyguardError> {
        let keys = self.request_opener(envelope)?.open_keys(envelope, user_id)?;
        keys.into_iter()
            .map(|(provider, text)| match ApiKey::for_provider(provider, text.as_str()) {
                Ok(key) => Ok(Candidate { provider, key, holder: KeyHolder::Request }),
                Err(error) => Err(KeyguardError::InvalidRequestKey { provider, message: error.to_string() }),
            })
            .collect()
    }

    fn open(&self, stored: &StoredKey) -> Result<ApiKey, KeyguardError> {
        sealed::open(stored, |blob, context| self.ring.open(blob, context))
    }

    /// The secret of the keyguard's key pair `kid`.
    fn secret_for(&self, kid: u32) -> Result<std::sync::Arc<aws_lc_rs::agreement::PrivateKey>, KeyguardError> {
        let ring = self.ring.current();
        let ring = if ring.has_version(kid) {
            ring
        } else {
            // Made for a version a rotation added that this process has not read yet.
            self.ring.reload_if_changed();
            self.ring.current()
        };
        if !ring.has_version(kid) {
            return Err(KeyguardError::Undecryptable);
        }
        let secrets = || self.secrets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(secret) = secrets().get(&kid) {
            return Ok(secret.clone());
        }
        let secret = std::sync::Arc::new(envelope::keypair(&ring, kid).ok_or(KeyguardError::Undecryptable)?);
        secrets().insert(kid, secret.clone());
        Ok(secret)
    }

    /// The agreement with the ephemeral key `envelope` was sealed with: kept from an earlier
    /// request's envelope, or made now. A retired key version is refused first, kept or not.
    fn request_opener(
        &self,
        envelope: &envelope::Envelope,
    ) -> Result<std::sync::Arc<envelope::RequestOpener>, KeyguardError> {
        let secret = self.secret_for(envelope.kid)?;
        let now = Instant::now();
        let key = (envelope.kid, envelope.epk.clone());
        let openers = || self.request_openers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((opener, made)) = openers().get(&key)
            && now.duration_since(*made) < REQUEST_OPENER_LIFETIME
        {
            return Ok(opener.clone());
        }
        // Agreed outside the lock: it is the slow part.
        let opener = std::sync::Arc::new(envelope::RequestOpener::new(&secret, &envelope.epk)?);
        let mut openers = openers();
        openers.retain(|_, (_, made)| now.duration_since(*made) < REQUEST_OPENER_LIFETIME);
        if openers.len() >= MAX_REQUEST_OPENERS {
            openers.clear();
        }
        openers.insert(key, (opener.clone(), now));
        Ok(opener)
    }

    fn open_envelope(
        &self,
        envelope: &envelope::Envelope,
        context: envelope::EnvelopeContext,
        provider: ProviderName,
    ) -> Result<zeroize::Zeroizing<String>, KeyguardError> {
        envelope::open(&*self.secret_for(envelope.kid)?, envelope, context, provider)
    }

    /// One cheap call with a new key: only a provider's "this key is not valid" refuses it.
    /// A key that is rate-limited or out of quota right now is still a real key.
    async fn live_check(&self, provider: ProviderName, key: &ApiKey) -> Result<(), KeyguardError> {
        let request = ChatRequest { system: None, messages: vec![ChatMessage::user("Reply with the word OK.")] };
        // Not yet anyone's: a refusal here is not remembered against a kept key.
        let candidate = Candidate { provider, key: key.clone(), holder: KeyHolder::Request };
        let (sink, _) = mpsc::unbounded_channel();
        match self.router.complete(&request, vec![candidate], &sink).await {
            Ok(_) => Ok(()),
            Err(failure) => {
                let refused = failure.attempts.iter().any(|attempt| {
                    matches!(attempt.outcome, hearth_ai::AttemptOutcome::Failed(FailureClass::InvalidKey))
                });
                if refused {
                    Err(KeyguardError::InvalidKey(format!("{provider} did not accept this key.")))
                } else {
                    tracing::info!(%provider, kind = ?failure.kind, "a new key's live check did not answer; accepted on its shape");
                    Ok(())
                }
            }
        }
    }
}

fn invalid_key(error: AiError) -> KeyguardError {
    KeyguardError::InvalidKey(error.to_string())
}

#[async_trait]
impl Keyguard for LocalKeyguard {
    async fn public_key(&self) -> Result<PublicKey, KeyguardError> {
        // The newest version, even one a rotation added a moment ago (a stat of the file).
        self.ring.reload_if_changed();
        let ring = self.ring.current();
        let version = ring.current_version().ok_or(KeyguardError::Unavailable)?;
        let secret = envelope::keypair(&ring, version).ok_or(KeyguardError::Unavailable)?;
        envelope::public_key(&secret, version)
    }

    async fn seal(&self, request: SealRequest) -> Result<SealedKey, KeyguardError> {
        let text = self.open_envelope(&request.envelope, request.context, request.provider)?;
        let key = ApiKey::for_provider(request.provider, text.as_str()).map_err(invalid_key)?;
        drop(text);
        if request.live_check {
            self.live_check(request.provider, &key).await?;
        }
        // Seal under the newest version, even one a rotation added a moment ago.
        self.ring.reload_if_changed();
        Ok(sealed::seal(&self.ring.current(), request.id, request.owner, request.provider, &key))
    }

    async fn complete(
        &self,
        request: &ChatRequest,
        keys: Vec<KeyRef>,
        deltas: &mpsc::UnboundedSender<String>,
    ) -> Result<Result<Answer, TurnFailure>, KeyguardError> {
        let candidates = self.candidates(keys)?;
        Ok(self.router.complete(request, candidates, deltas).await)
    }

    async fn generate_image(
        &self,
        prompt: &str,
        keys: Vec<KeyRef>,
    ) -> Result<Result<ImageAnswer, TurnFailure>, KeyguardError> {
        let candidates = self.candidates(keys)?;
        Ok(self.router.generate_image(prompt, candidates).await.map(|(image, provider, attempts)| ImageAnswer {
            image,
            provider,
            attempts,
        }))
    }

    async fn fingerprint(&self, key: &StoredKey) -> Result<KeyFingerprint, KeyguardError> {
        Ok(self.open(key)?.fingerprint())
    }

    async fn rewrap(&self, key: &StoredKey) -> Result<Option<(Vec<u8>, u32)>, KeyguardError> {
        // To the newest version, even one a rotation added a moment ago.
        self.ring.reload_if_changed();
        sealed::rewrap(&self.ring.current(), key)
    }

    async fn key_states(&self, keys: Vec<KeyFingerprint>) -> Result<Vec<KeyStatus>, KeyguardError> {
        let now = Instant::now();
        Ok(keys
            .into_iter()
            .map(|key| {
                let state = self.router.health().state(key, now);
                KeyStatus {
                    failures: state.consecutive_failures,
                    cooling_for: state.cooling_until.map(|until| until.saturating_duration_since(now)),
                    refused_at: state.refused_at,
                }
            })
            .collect())
    }

    async fn free_tier(&self) -> Result<Vec<(ProviderName, KeyFingerprint)>, KeyguardError> {
        Ok(self.free_tier.iter().map(|candidate| (candidate.provider, candidate.key.fingerprint())).collect())
    }

    async fn check_request_keys(
        &self,
        user_id: uuid::Uuid,
        envelope: &envelope::Envelope,
    ) -> Result<(), KeyguardError> {
        self.request_keys(user_id, envelope).map(drop)
    }
}
