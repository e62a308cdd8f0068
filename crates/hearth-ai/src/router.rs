//! The fallback router: providers in the configured order, every key of a provider in turn,
//! each failure classified and answered as `PROVIDERS.md` says, within a per-attempt timeout
//! and an overall deadline.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::wire::{self, DeltaStream};
use crate::{
    AiError, ApiKey, ChatRequest, FailureClass, GeneratedImage, KeyFingerprint, KeyHealth, ProviderFailure,
    ProviderName, ProviderSettings, Providers, image,
};

/// The HTTP client every provider is called with; certificates are checked against the
/// system's roots.
///
/// A system with no roots at all (a minimal container without `ca-certificates`) still
/// serves chat and reaches plain-HTTP providers such as a local model server: the client is
/// built with an empty root store, so each HTTPS call fails its certificate check, and the
/// warning logged here says why. Failing to start instead would take the whole chat down for
/// the assistant's sake.
fn provider_client() -> Result<reqwest::Client, AiError> {
    let builder = || {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Provider error bodies and redirects never need to be followed blindly: a
            // redirect could carry the key's header to another host.
            .redirect(reqwest::redirect::Policy::none())
    };
    let error = match builder().build() {
        Ok(http) => return Ok(http),
        Err(error) => with_sources(&error),
    };
    tracing::warn!(
        %error,
        "no usable TLS root certificates on this system: AI providers reached over HTTPS will fail \
         their certificate check until the system's CA certificates are installed (ca-certificates)"
    );
    builder().tls_certs_only([]).build().map_err(|e| AiError::HttpClient(with_sources(&e)))
}

/// An error and its causes on one line (reqwest's own text is only "builder error").
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// How the router walks providers and keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouterSettings {
    /// Providers in the order they are tried; a provider left out is never called.
    pub order: Vec<ProviderName>,
    /// Longest a turn may take to start answering, over all its attempts.
    #[serde(with = "crate::provider::seconds")]
    pub deadline_secs: Duration,
    /// Consecutive failures that put a key in a cool-down.
    pub failures_before_cooldown: u32,
    /// How long a failing key rests.
    #[serde(with = "crate::provider::seconds")]
    pub cooldown_secs: Duration,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            order: ProviderName::ALL.to_vec(),
            deadline_secs: Duration::from_secs(90),
            failures_before_cooldown: 3,
            cooldown_secs: Duration::from_secs(60),
        }
    }
}

/// A key the router may use, with the provider it belongs to and whose it is.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The provider the key is for.
    pub provider: ProviderName,
    /// The key.
    pub key: ApiKey,
    /// Whose key it is: what a person is told when it fails depends on it.
    pub holder: KeyHolder,
}

/// Whose key an attempt used. A refused key is worded differently for each: a person's own
/// key is theirs to fix, the server's is the operator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyHolder {
    /// Given with this one request, never stored.
    Request,
    /// The asker's own stored key.
    Person,
    /// The free tier's pool, added by an operator in chat.
    Pool,
    /// The operator's free-tier keys from the keyguard's settings.
    Operator,
}

impl KeyHolder {
    /// Whether the key belongs to the server (the free tier), not to the asker.
    pub fn is_server(self) -> bool {
        matches!(self, KeyHolder::Pool | KeyHolder::Operator)
    }
}

/// What became of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// It answered.
    Answered,
    /// It failed, for this reason.
    Failed(FailureClass),
    /// It was not called: the key is resting after repeated failures.
    CoolingDown,
}

impl AttemptOutcome {
    /// `answered`, `cooling_down`, or the failure class.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Answered => "answered",
            AttemptOutcome::CoolingDown => "cooling_down",
            AttemptOutcome::Failed(class) => class.as_str(),
        }
    }
}

impl Serialize for AttemptOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AttemptOutcome {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "answered" => Ok(AttemptOutcome::Answered),
            "cooling_down" => Ok(AttemptOutcome::CoolingDown),
            other => FailureClass::ALL
                .into_iter()
                .find(|class| class.as_str() == other)
                .map(AttemptOutcome::Failed)
                .ok_or_else(|| serde::de::Error::custom("unknown attempt outcome")),
        }
    }
}

/// One line of a turn's attempt log: never the key, only its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The provider called.
    pub provider: ProviderName,
    /// The key's fingerprint.
    pub key: KeyFingerprint,
    /// Whose key it is.
    pub holder: KeyHolder,
    /// What happened.
    pub outcome: AttemptOutcome,
    /// The HTTP status, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Time until the answer started or the failure was known.
    pub latency_ms: u64,
}

/// A reply that started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    /// The whole text (what arrived, if the stream broke).
    pub text: String,
    /// The provider that answered.
    pub provider: ProviderName,
    /// Every attempt, in order, the answering one last.
    pub attempts: Vec<Attempt>,
    /// Set when the stream failed after its first delta: the turn ends showing this error.
    pub interrupted: Option<FailureClass>,
}

/// Why a turn got no answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TurnFailureKind {
    /// There was no key to try.
    NoKeys,
    /// Every candidate failed or was cooling down.
    AllFailed,
    /// A provider said the request itself is wrong; no other would accept it either.
    BadRequest {
        /// The provider that refused.
        provider: ProviderName,
        /// Its explanation, the key scrubbed out.
        detail: Option<String>,
    },
    /// The overall deadline passed.
    DeadlineExceeded,
}

/// A turn that got no answer, with its attempt log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TurnFailure {
    /// Why.
    pub kind: TurnFailureKind,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

impl TurnFailure {
    /// The short title: seed 004's "All AI providers failed" for the aggregate.
    pub fn title(&self) -> &'static str {
        match self.kind {
            TurnFailureKind::NoKeys => "No AI provider available",
            TurnFailureKind::AllFailed => "All AI providers failed",
            TurnFailureKind::BadRequest { .. } => "The AI provider refused the request",
            TurnFailureKind::DeadlineExceeded => "The AI providers took too long",
        }
    }

    /// What the person is told: for the aggregate, each provider's last failure in the words
    /// of seed 004, except a refused key, which is told as whose it was.
    pub fn user_message(&self) -> String {
        match &self.kind {
            TurnFailureKind::NoKeys => {
                format!("No AI provider key is available on this server. {ADD_YOUR_OWN}")
            }
            TurnFailureKind::BadRequest { provider, detail: Some(detail) } => {
                format!("{provider} refused the request: {detail}")
            }
            TurnFailureKind::BadRequest { provider, detail: None } => FailureClass::BadRequest.user_message(*provider),
            TurnFailureKind::DeadlineExceeded => {
                "The AI providers did not answer in time. Please try again.".to_owned()
            }
            TurnFailureKind::AllFailed => self.each_failure(),
        }
    }

    /// Each provider's last failure (or refusal, if one of its keys was refused), once per whose
    /// key it was (a person whose own key failed and who then fell back on the server's hears of
    /// both), in the order they were tried.
    fn each_failure(&self) -> String {
        let whose = |holder: KeyHolder| if holder.is_server() { KeyHolder::Operator } else { holder };
        let mut tried: Vec<(ProviderName, KeyHolder)> = Vec::new();
        for attempt in &self.attempts {
            let key = (attempt.provider, whose(attempt.holder));
            if !tried.contains(&key) {
                tried.push(key);
            }
        }
        let mut server_key_failed = false;
        let mut lines: Vec<String> = tried
            .into_iter()
            .filter_map(|(provider, holder)| {
                let mut group =
                    self.attempts.iter().rev().filter(|a| a.provider == provider && whose(a.holder) == holder);
                // A refusal is what can be acted on: it is told over a later failure of another key.
                let refusal = AttemptOutcome::Failed(FailureClass::InvalidKey);
                let last = group.clone().find(|a| a.outcome == refusal).or_else(|| group.next())?;
                let server = holder.is_server();
                Some(match last.outcome {
                    AttemptOutcome::Failed(FailureClass::InvalidKey) if server => {
                        server_key_failed = true;
                        format!("The server's {provider} key was refused by {provider}.")
                    }
                    AttemptOutcome::Failed(FailureClass::InvalidKey) if holder == KeyHolder::Person => {
                        format!("Your stored {provider} key was refused by {provider}; /forget {provider} removes it.")
                    }
                    AttemptOutcome::Failed(class) => class.user_message(provider),
                    _ if server => {
                        server_key_failed = true;
                        format!("The server's keys for {provider} are resting after repeated failures.")
                    }
                    _ => format!("The keys for {provider} are resting after repeated failures."),
                })
            })
            .collect();
        if server_key_failed {
            lines.push(ADD_YOUR_OWN.to_owned());
        }
        lines.join(" ")
    }
}

/// How a person gets past the server's keys: one of their own, added in the assistant
/// conversation.
const ADD_YOUR_OWN: &str = "You can add a key of your own with /configure.";

/// Walks providers and keys until one answers. Shared by every turn: it holds the HTTP
/// connection pool and the health of every key.
#[derive(Debug)]
pub struct Router {
    http: reqwest::Client,
    providers: Providers,
    settings: RouterSettings,
    health: KeyHealth,
}

impl Router {
    /// A router over `providers` with `settings`.
    pub fn new(providers: Providers, settings: RouterSettings) -> Result<Self, AiError> {
        let http = provider_client()?;
        let health = KeyHealth::new(settings.failures_before_cooldown, settings.cooldown_secs);
        Ok(Self { http, providers, settings, health })
    }

    /// The health of every key used so far.
    pub fn health(&self) -> &KeyHealth {
        &self.health
    }

    /// Where each provider is called.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// The providers in the order they are tried.
    pub fn order(&self) -> &[ProviderName] {
        &self.settings.order
    }

    /// Candidates in the order they will be tried: by provider order, keys of one provider in
    /// the order given. Providers outside the order are dropped.
    pub fn arrange(&self, mut candidates: Vec<Candidate>) -> Vec<Candidate> {
        candidates.retain(|candidate| self.settings.order.contains(&candidate.provider));
        candidates.sort_by_key(|candidate| self.settings.order.iter().position(|p| *p == candidate.provider));
        candidates
    }

    /// Answers `request`, streaming the reply's text into `deltas` as it arrives. Failures
    /// before the first delta fall back to the next candidate; after it, the answer ends
    /// early with [`Answer::interrupted`] set.
    pub async fn complete(
        &self,
        request: &ChatRequest,
        candidates: Vec<Candidate>,
        deltas: &mpsc::UnboundedSender<String>,
    ) -> Result<Answer, TurnFailure> {
        let http = &self.http;
        let ((first, mut rest), provider, attempts) = self
            .walk(candidates, |provider, settings, key| async move {
                let mut stream: DeltaStream = wire::open_stream(http, provider, &settings, &key, request).await?;
                match stream.next().await {
                    Some(Ok(first)) => Ok((first, stream)),
                    Some(Err(failure)) => Err(failure),
                    // The reply ended properly but said nothing.
                    None => Err(ProviderFailure::new(FailureClass::UpstreamError)),
                }
            })
            .await?;
        let idle_timeout = self.providers.get(provider).timeout_secs;
        let mut text = first;
        // A receiver that went away (a client that left) does not stop the reply: it is still
        // stored and counted.
        let _ = deltas.send(text.clone());
        let mut interrupted = None;
        loop {
            match tokio::time::timeout(idle_timeout, rest.next()).await {
                Ok(Some(Ok(delta))) => {
                    text.push_str(&delta);
                    let _ = deltas.send(delta);
                }
                Ok(None) => break,
                Ok(Some(Err(failure))) => {
                    interrupted = Some(failure.class);
                    break;
                }
                Err(_) => {
                    interrupted = Some(FailureClass::Timeout);
                    break;
                }
            }
        }
        if let Some(class) = interrupted {
            tracing::info!(%provider, class = class.as_str(), "reply interrupted after its first delta");
        }
        Ok(Answer { text, provider, attempts, interrupted })
    }

    /// Generates one image of `prompt` with the first candidate that can and does.
    pub async fn generate_image(
        &self,
        prompt: &str,
        mut candidates: Vec<Candidate>,
    ) -> Result<(GeneratedImage, ProviderName, Vec<Attempt>), TurnFailure> {
        candidates.retain(|candidate| candidate.provider.makes_images());
        let http = &self.http;
        self.walk(candidates, |provider, settings, key| async move {
            image::generate(http, provider, &settings, &key, prompt).await
        })
        .await
    }

    /// The walk shared by chat and images: `attempt` is called per candidate until one
    /// succeeds, each call bounded by the provider's timeout and the turn's deadline.
    async fn walk<T, F, Fut>(
        &self,
        candidates: Vec<Candidate>,
        mut attempt: F,
    ) -> Result<(T, ProviderName, Vec<Attempt>), TurnFailure>
    where
        F: FnMut(ProviderName, ProviderSettings, ApiKey) -> Fut,
        Fut: Future<Output = Result<T, ProviderFailure>>,
    {
        let candidates = self.arrange(candidates);
        if candidates.is_empty() {
            return Err(TurnFailure { kind: TurnFailureKind::NoKeys, attempts: Vec::new() });
        }
        let deadline = Instant::now() + self.settings.deadline_secs;
        let mut attempts = Vec::with_capacity(candidates.len());
        let mut skipped_providers = Vec::new();
        for Candidate { provider, key, holder } in candidates {
            if skipped_providers.contains(&provider) {
                continue;
            }
            let fingerprint = key.fingerprint();
            let started = Instant::now();
            if self.health.is_cooling_down(fingerprint, started.into_std()) {
                attempts.push(Attempt {
                    provider,
                    key: fingerprint,
                    holder,
                    outcome: AttemptOutcome::CoolingDown,
                    status: None,
                    latency_ms: 0,
                });
                continue;
            }
            let settings = self.providers.get(provider).clone();
            let remaining = deadline.saturating_duration_since(started);
            let limit = settings.timeout_secs.min(remaining);
            let result = match tokio::time::timeout(limit, attempt(provider, settings, key)).await {
                Ok(result) => result,
                Err(_) => Err(ProviderFailure::new(FailureClass::Timeout)),
            };
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match result {
                Ok(value) => {
                    self.health.record_success(fingerprint);
                    attempts.push(Attempt {
                        provider,
                        key: fingerprint,
                        holder,
                        outcome: AttemptOutcome::Answered,
                        status: None,
                        latency_ms,
                    });
                    tracing::debug!(%provider, key = %fingerprint, latency_ms, "provider answered");
                    return Ok((value, provider, attempts));
                }
                Err(failure) => {
                    let class = failure.class;
                    let now = Instant::now().into_std();
                    // Only kept keys are shown as refused; one given with a request is gone after it
                    // (and remembering those would let anyone grow this map).
                    if class == FailureClass::InvalidKey && holder != KeyHolder::Request {
                        self.health.record_refusal(fingerprint, std::time::SystemTime::now());
                    }
                    if class.counts_against_key() && self.health.record_failure(fingerprint, now) {
                        tracing::warn!(%provider, key = %fingerprint, "key cooling down after repeated failures");
                    }
                    // Retry-After is honoured: the key is not asked again before then (an
                    // unreasonable wait is capped at a day).
                    if let Some(wait) = failure.retry_after.filter(|wait| !wait.is_zero()) {
                        self.health.rest_until(fingerprint, now + wait.min(MAX_RETRY_AFTER));
                    }
                    tracing::info!(%provider, key = %fingerprint, class = class.as_str(), status = failure.status, latency_ms, "provider attempt failed");
                    attempts.push(Attempt {
                        provider,
                        key: fingerprint,
                        holder,
                        outcome: AttemptOutcome::Failed(class),
                        status: failure.status,
                        latency_ms,
                    });
                    if class.stops_turn() {
                        let kind = TurnFailureKind::BadRequest { provider, detail: failure.detail };
                        return Err(TurnFailure { kind, attempts });
                    }
                    if Instant::now() >= deadline {
                        return Err(TurnFailure { kind: TurnFailureKind::DeadlineExceeded, attempts });
                    }
                    if class.skips_provider() {
                        skipped_providers.push(provider);
                    }
                }
            }
        }
        Err(TurnFailure { kind: TurnFailureKind::AllFailed, attempts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(provider: ProviderName, holder: KeyHolder, outcome: AttemptOutcome) -> Attempt {
        let key = KeyFingerprint::of(&format!("{provider} {holder:?}"));
        Attempt { provider, key, holder, outcome, status: None, latency_ms: 1 }
    }

    #[test]
    fn a_refused_key_is_told_as_whose_it_was() {
        let refused = AttemptOutcome::Failed(FailureClass::InvalidKey);
        let told = |attempts| TurnFailure { kind: TurnFailureKind::AllFailed, attempts }.user_message();
        // A person's own key, then the free tier's (settings and pool) for the same provider:
        // both are told, the hint to add one's own once.
        let attempts = vec![
            failed(ProviderName::Groq, KeyHolder::Person, refused),
            failed(ProviderName::Groq, KeyHolder::Operator, refused),
            failed(ProviderName::Groq, KeyHolder::Pool, AttemptOutcome::CoolingDown),
            failed(ProviderName::Cerebras, KeyHolder::Pool, refused),
        ];
        assert_eq!(
            told(attempts),
            "Your stored groq key was refused by groq; /forget groq removes it. The server's groq key was refused \
             by groq. The server's cerebras key was refused by cerebras. You can add a key of your own with \
             /configure."
        );
        // A key given with the request keeps seed 004's words; other failures of the server's
        // keys are told as they were.
        let attempts = vec![
            failed(ProviderName::Gemini, KeyHolder::Request, refused),
            failed(ProviderName::OpenAi, KeyHolder::Operator, AttemptOutcome::Failed(FailureClass::QuotaExceeded)),
        ];
        assert_eq!(
            told(attempts),
            "Invalid API key for gemini. Please verify your key is correct. Quota exceeded for openai."
        );
    }
}
