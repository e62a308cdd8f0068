//! The assistant: from a person's prompt to a stored reply.
//!
//! A turn passes the sliding-window limit and is answered from the knowledge base when an entry
//! matches it confidently (no provider, no allowance). Otherwise it builds its context from the
//! thread's earlier turns and asks the keyguard, which alone holds keys in clear: with the keys
//! given for this request if there are any; else with the person's stored keys (no daily quota);
//! and if they have none, or none answered, on the free tier (the pool's stored keys and the
//! operator's keys), which takes one unit of the daily allowance. The turn is stored with its
//! attempt log either way; an allowance taken for a turn that got no reply is given back.

pub mod chat;
pub mod commands;
pub mod configure;
pub mod keys;
pub mod knowledge;
pub mod stream;
mod tiers;
pub mod when;
pub mod window;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_ai::{Answer, Attempt, ChatMessage, ChatRequest, ProviderName, TurnFailure, TurnFailureKind};
use hearth_keyguard::{KeyRef, KeyStatus, Keyguard, KeyguardError};
use hearth_store::{AllowanceKind, AssistantImage, AssistantTurn, KeyOwner, Store, StoreError, Timestamp};
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::metrics::{Limit, Metrics};
use crate::settings::AiSettings;
use window::{SlidingWindow, WindowState};

/// Who answers a turn from the knowledge base, in replies and the stored turn.
pub const KNOWLEDGE_BASE: &str = "knowledge_base";

/// Longest prompt, in characters (seed 004), over HTTP and in the assistant conversation.
pub const MAX_PROMPT_CHARS: usize = 10_000;

/// Whether `id` is a well-formed thread or topic id: 1 to 100 ASCII letters, digits, `-`, `_`.
pub fn is_identifier(id: &str) -> bool {
    (1..=100).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Seconds, rounded up: "try again in 0 s" would be wrong.
pub fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Earlier turns read when building a context (the character budget usually ends it sooner).
const CONTEXT_TURNS: u32 = 50;

/// The assistant service, shared by every request and socket.
#[derive(Debug)]
pub struct Assistant {
    keyguard: Arc<dyn Keyguard>,
    keys: keys::Keys,
    order: Vec<ProviderName>,
    window: SlidingWindow,
    text_per_day: u32,
    images_per_day: u32,
    context_chars: usize,
    system_prompt: String,
    window_secs: u64,
    knowledge: knowledge::KnowledgeBase,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

/// A prompt to answer.
#[derive(Debug)]
pub struct Question {
    /// Who asks.
    pub user_id: Uuid,
    /// The thread whose earlier turns are the context.
    pub thread: String,
    /// Whether the thread was made for this question, so it has no earlier turns to read.
    pub new_thread: bool,
    /// The knowledge-base topic.
    pub topic: Option<String>,
    /// What is asked.
    pub prompt: String,
    /// Keys given for this request only, encrypted to the keyguard; when empty, the asker's
    /// stored keys and then the free tier answer.
    pub keys: Vec<KeyRef>,
}

/// A reply that came.
#[derive(Debug)]
pub struct Reply {
    /// The reply (ending with a note when the provider's stream broke after it started).
    pub text: String,
    /// Who answered: a provider's name, or `knowledge_base`.
    pub provider: &'static str,
    /// Where the asker stands in the sliding window.
    pub window: WindowState,
    /// When it was asked.
    pub asked_at: Timestamp,
}

/// Why a turn got no reply.
#[derive(Debug)]
pub enum Refusal {
    /// Over the sliding-window limit.
    RateLimited {
        /// Until a request would be let through.
        retry_after: Duration,
    },
    /// The free tier's replies for today are used up.
    AllowanceUsed {
        /// Until the next UTC day.
        retry_after: Duration,
    },
    /// No provider answered.
    Failed(TurnFailure),
    /// `/image`, and no provider that draws images can be asked.
    NoImageProvider {
        /// Whether one is in `ai.order` (then no key of it is at hand); if not, none is used.
        in_use: bool,
    },
    /// The keyguard could not be asked (down, or it refused a key given with the request).
    Keyguard(KeyguardError),
    /// The store failed.
    Store(StoreError),
}

impl Refusal {
    /// What the person is told, in chat or in an error reply. Never names a key.
    pub fn message(&self) -> String {
        match self {
            Refusal::RateLimited { retry_after } => {
                format!("Too many assistant requests; try again in {}.", spoken(*retry_after))
            }
            Refusal::AllowanceUsed { retry_after } => format!(
                "Today's free assistant replies are used up; they come back at 00:00 UTC, in {}. \
                 Replies with your own provider keys are not limited.",
                spoken(*retry_after)
            ),
            Refusal::Failed(failure) => match failure.kind {
                TurnFailureKind::AllFailed => format!("{}. {}", failure.title(), failure.user_message()),
                _ => failure.user_message(),
            },
            Refusal::NoImageProvider { in_use: true } => format!(
                "No key here can make images: images are drawn only by {}, and neither you nor this server has \
                 a key for it. You can add one of your own with /configure.",
                image_providers()
            ),
            Refusal::NoImageProvider { in_use: false } => format!(
                "This server makes no images: images are drawn only by {}, which this server does not use.",
                image_providers()
            ),
            Refusal::Keyguard(
                KeyguardError::InvalidKey(message) | KeyguardError::InvalidRequestKey { message, .. },
            ) => message.clone(),
            Refusal::Keyguard(_) | Refusal::Store(_) => {
                "The assistant is temporarily unavailable. Please try again.".to_owned()
            }
        }
    }
}

/// The providers that draw images, as a sentence names them: `openai`, `openai or gemini`.
fn image_providers() -> String {
    let names: Vec<&str> =
        ProviderName::ALL.into_iter().filter(|provider| provider.makes_images()).map(ProviderName::as_str).collect();
    names.join(" or ")
}

/// A duration as people say it: `42 s`, `5 min`, `3 h 12 min`.
pub fn spoken(duration: Duration) -> String {
    let seconds = whole_seconds(duration);
    match seconds {
        0..=99 => format!("{seconds} s"),
        100..=3599 => format!("{} min", seconds.div_ceil(60)),
        _ => format!("{} h {} min", seconds / 3600, (seconds % 3600) / 60),
    }
}

/// A generated image, stored.
#[derive(Debug, Clone, Copy)]
pub struct ImageReply {
    /// The stored image's id.
    pub id: Uuid,
    /// Who made it.
    pub provider: ProviderName,
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Refusal::Store(error)
    }
}

impl From<KeyguardError> for Refusal {
    fn from(error: KeyguardError) -> Self {
        if !matches!(error, KeyguardError::InvalidKey(_) | KeyguardError::InvalidRequestKey { .. }) {
            tracing::warn!(%error, "the keyguard could not answer");
        }
        Refusal::Keyguard(error)
    }
}

impl Assistant {
    /// The assistant as `settings` describe it, asking `keyguard` for every provider call.
    pub fn new(
        settings: &AiSettings,
        keyguard: Arc<dyn Keyguard>,
        knowledge: knowledge::KnowledgeBase,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            keys: keys::Keys::new(keyguard.clone(), store.clone()),
            keyguard,
            order: settings.routing.order.clone(),
            window: SlidingWindow::new(settings.requests_per_window, Duration::from_secs(settings.window_secs)),
            text_per_day: settings.free_tier.text_per_day,
            images_per_day: settings.free_tier.images_per_day,
            context_chars: settings.context_chars,
            system_prompt: settings.system_prompt.clone(),
            window_secs: settings.window_secs,
            knowledge,
            store,
            metrics,
        }
    }

    /// People's stored keys and the keyguard's key for new ones.
    pub fn keys(&self) -> &keys::Keys {
        &self.keys
    }

    /// The keyguard.
    pub fn keyguard(&self) -> &dyn Keyguard {
        self.keyguard.as_ref()
    }

    /// Answers `question`, streaming the reply's text into `deltas` as it arrives.
    pub async fn ask(&self, question: Question, deltas: &mpsc::UnboundedSender<String>) -> Result<Reply, Refusal> {
        let asked_at = Timestamp::now();
        let window = self.admit(question.user_id)?;
        let topic = question.topic.as_deref().unwrap_or(knowledge::DEFAULT_TOPIC);
        if let Some(answer) = self.knowledge.answer(&*self.store, topic, &question.prompt).await? {
            let _ = deltas.send(answer.clone());
            self.record(&question, asked_at, &answer, Some(KNOWLEDGE_BASE), &[]).await;
            return Ok(Reply { text: answer, provider: KNOWLEDGE_BASE, window, asked_at });
        }
        let request = self.context(&question).await?;
        let mut attempts = Vec::new();
        let ask = |keys| self.keyguard.complete(&request, keys, deltas);
        let outcome =
            self.in_turn(question.user_id, &question.keys, AllowanceKind::Text, asked_at, &mut attempts, ask).await;
        match outcome {
            Ok((answer, _)) => {
                let text = reply_text(&answer);
                let provider = answer.provider.as_str();
                self.record(&question, asked_at, &text, Some(provider), &attempts).await;
                Ok(Reply { text, provider, window, asked_at })
            }
            Err(refusal) => {
                let shown = refusal.message();
                self.record(&question, asked_at, &shown, None, &attempts).await;
                Err(refusal)
            }
        }
    }

    /// Generates an image of `prompt` with the person's stored image keys, else on the free
    /// tier (the daily image allowance), and stores it for its owner.
    pub async fn image(&self, user_id: Uuid, thread: &str, prompt: &str) -> Result<ImageReply, Refusal> {
        let asked_at = Timestamp::now();
        if !self.order.iter().any(|provider| provider.makes_images()) {
            return Err(Refusal::NoImageProvider { in_use: false });
        }
        self.admit(user_id)?;
        let question = Question {
            user_id,
            thread: thread.to_owned(),
            new_thread: false,
            topic: None,
            prompt: format!("/image {prompt}"),
            keys: Vec::new(),
        };
        let mut attempts = Vec::new();
        let ask = |keys| self.keyguard.generate_image(prompt, keys);
        let outcome = match self.in_turn(user_id, &[], AllowanceKind::Image, asked_at, &mut attempts, ask).await {
            Err(Refusal::Failed(TurnFailure { kind: TurnFailureKind::NoKeys, .. })) => {
                Err(Refusal::NoImageProvider { in_use: true })
            }
            outcome => outcome,
        };
        match outcome {
            Ok((answer, day)) => {
                let id = Uuid::now_v7();
                let provider = answer.provider;
                let stored = AssistantImage {
                    id,
                    user_id,
                    content_type: answer.image.content_type.to_owned(),
                    bytes: answer.image.bytes,
                    prompt: prompt.to_owned(),
                    provider: provider.as_str().to_owned(),
                    inserted_at: asked_at,
                };
                if let Err(error) = self.store.store_assistant_image(&stored).await {
                    if let Some(day) = day {
                        self.store.refund_allowance(user_id, &day, AllowanceKind::Image).await?;
                    }
                    return Err(Refusal::Store(error));
                }
                self.record(&question, asked_at, &format!("[image {id}]"), Some(provider.as_str()), &attempts).await;
                Ok(ImageReply { id, provider })
            }
            Err(refusal) => {
                self.record(&question, asked_at, &refusal.message(), None, &attempts).await;
                Err(refusal)
            }
        }
    }

    /// `/quota`: the free tier's use today and the sliding window, in words.
    pub async fn quota_report(&self, user_id: Uuid) -> Result<String, StoreError> {
        let now = Timestamp::now();
        let day = utc_day(now);
        let texts = self.store.allowance_used(user_id, &day, AllowanceKind::Text).await?;
        let images = self.store.allowance_used(user_id, &day, AllowanceKind::Image).await?;
        let window = self.window.peek(user_id, Instant::now());
        Ok(format!(
            "Free tier today (UTC): {texts} of {} replies and {images} of {} images used; they come back in {}.\n\
             Assistant requests: {} of {} left in the last {} s.",
            self.text_per_day,
            self.images_per_day,
            spoken(until_next_utc_day(now)),
            window.remaining,
            self.window.limit(),
            self.window_secs,
        ))
    }

    /// `/providers`: the providers in the order they are tried, and the health of the free
    /// tier's keys for each (counts only: a key is never shown).
    pub async fn providers_report(&self) -> Result<String, Refusal> {
        let mut lines = vec!["Providers, in the order they are tried:".to_owned()];
        for (position, health) in self.provider_health().await?.iter().enumerate() {
            let images = if health.images { " (also images)" } else { "" };
            lines.push(format!("{}. {}{images}: {}", position + 1, health.provider, health.summary));
        }
        lines.push(
            "Your own keys are tried before the free tier and have no daily limit: /configure adds one, /keys \
             lists them."
                .to_owned(),
        );
        Ok(lines.join("\n"))
    }

    /// Each provider in the order they are tried, with the health of the free tier's keys
    /// (the operator's from the settings, and the pool's): counts only, never a key.
    pub async fn provider_health(&self) -> Result<Vec<ProviderHealth>, Refusal> {
        let operator = self.keys.free_tier().await?;
        let settings_keys = operator.len();
        let pool = self.store.provider_keys(KeyOwner::Pool).await?;
        let mut keys: Vec<(ProviderName, hearth_ai::KeyFingerprint)> = operator;
        keys.extend(pool.iter().filter_map(|row| Some((row.provider.parse().ok()?, row.fingerprint.parse().ok()?))));
        let states = self.keyguard.key_states(keys.iter().map(|(_, key)| *key).collect()).await?;
        let now = Timestamp::now();
        let health = self.order.iter().map(|provider| {
            // Each of the provider's keys, with its place in `keys` (the settings' come first).
            let mine: Vec<(usize, KeyStatus)> = keys
                .iter()
                .zip(&states)
                .enumerate()
                .filter(|(_, ((p, _), _))| p == provider)
                .map(|(index, (_, state))| (index, *state))
                .collect();
            let statuses: Vec<KeyStatus> = mine.iter().map(|(_, state)| *state).collect();
            let refused = statuses.iter().filter(|key| key.refused_at.is_some()).count();
            let resting = statuses.iter().filter(|key| key.refused_at.is_none() && key.cooling_for.is_some()).count();
            ProviderHealth {
                provider: *provider,
                images: provider.makes_images(),
                settings_keys: mine.iter().filter(|(index, _)| *index < settings_keys).count(),
                pool_keys: mine.iter().filter(|(index, _)| *index >= settings_keys).count(),
                healthy: statuses.len() - refused - resting,
                resting,
                refused,
                summary: free_tier_health(*provider, &statuses, now),
            }
        });
        Ok(health.collect())
    }

    /// Takes one unit of the free tier's allowance of `kind` for the UTC day of `at` and returns
    /// that day (for a refund), or refuses (and counts the refusal) when none is left.
    async fn take_allowance(&self, user_id: Uuid, kind: AllowanceKind, at: Timestamp) -> Result<String, Refusal> {
        let limit = match kind {
            AllowanceKind::Text => self.text_per_day,
            AllowanceKind::Image => self.images_per_day,
        };
        let day = utc_day(at);
        if self.store.take_allowance(user_id, &day, kind, limit).await?.is_none() {
            self.metrics.refused(Limit::Quota);
            return Err(Refusal::AllowanceUsed { retry_after: until_next_utc_day(at) });
        }
        Ok(day)
    }

    /// Lets a request through the sliding window, or refuses it (and counts the refusal).
    fn admit(&self, user_id: Uuid) -> Result<WindowState, Refusal> {
        self.window.admit(user_id, Instant::now()).map_err(|retry_after| {
            self.metrics.refused(Limit::RateLimit);
            Refusal::RateLimited { retry_after }
        })
    }

    /// The system prompt, then the thread's latest answered turns that fit the character
    /// budget (oldest first), then the prompt.
    async fn context(&self, question: &Question) -> Result<ChatRequest, StoreError> {
        let turns = if question.new_thread {
            Vec::new()
        } else {
            self.store.assistant_turns(question.user_id, &question.thread, CONTEXT_TURNS).await?
        };
        let mut budget = self.context_chars.saturating_sub(question.prompt.chars().count());
        let mut messages = Vec::new();
        for turn in turns.into_iter().filter(|turn| turn.answered) {
            let size = turn.prompt.chars().count() + turn.reply.chars().count();
            if size > budget {
                break;
            }
            budget -= size;
            messages.push(ChatMessage::assistant(turn.reply));
            messages.push(ChatMessage::user(turn.prompt));
        }
        messages.reverse();
        messages.push(ChatMessage::user(question.prompt.clone()));
        Ok(ChatRequest { system: Some(self.system_prompt.clone()), messages })
    }

    /// Counts the turn in the metrics and stores it. A failure to store is logged, not passed
    /// on: the reply has reached the person already, and failing the request would not bring it
    /// back.
    async fn record(
        &self,
        question: &Question,
        asked_at: Timestamp,
        reply: &str,
        provider: Option<&str>,
        attempts: &[Attempt],
    ) {
        self.metrics.turn(attempts, provider);
        let turn = AssistantTurn {
            id: Uuid::now_v7(),
            user_id: question.user_id,
            thread: question.thread.clone(),
            topic: question.topic.clone(),
            prompt: question.prompt.clone(),
            reply: reply.to_owned(),
            provider: provider.map(str::to_owned),
            answered: provider.is_some(),
            attempts: serde_json::to_string(attempts).unwrap_or_else(|_| "[]".to_owned()),
            inserted_at: asked_at,
        };
        if let Err(error) = self.store.record_assistant_turn(&turn).await {
            tracing::error!(%error, user = %question.user_id, "assistant turn not stored");
        }
    }
}

/// The reply as shown: when the stream broke after it started, what arrived and why it ends.
fn reply_text(answer: &Answer) -> String {
    match answer.interrupted {
        None => answer.text.clone(),
        Some(class) => {
            format!("{}\n\n[The reply was cut off. {}]", answer.text, class.user_message(answer.provider))
        }
    }
}

/// How one provider's free-tier keys stand, in words: `no free-tier key`, `1 free-tier key,
/// healthy`, `2 free-tier keys: 1 refused by groq today at 14:05 UTC, 1 healthy`. A key its
/// provider refused is said so (with when) until it answers again; one resting after other
/// failures says for how long.
fn free_tier_health(provider: ProviderName, keys: &[KeyStatus], now: Timestamp) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let refused: Vec<Timestamp> = keys.iter().filter_map(|key| key.refused_at.map(when::timestamp)).collect();
    let resting: Vec<Duration> =
        keys.iter().filter(|key| key.refused_at.is_none()).filter_map(|key| key.cooling_for).collect();
    let healthy = keys.len() - refused.len() - resting.len();
    let mut parts = Vec::new();
    if let Some(first) = refused.iter().min() {
        parts.push((refused.len(), format!("refused by {provider} {}", when::moment(*first, now))));
    }
    if let Some(longest) = resting.iter().max() {
        parts.push((resting.len(), format!("resting after repeated failures (for another {})", spoken(*longest))));
    }
    if healthy > 0 {
        parts.push((healthy, "healthy".to_owned()));
    }
    match (keys.len(), parts.as_slice()) {
        (0, _) => "no free-tier key".to_owned(),
        (n, [(_, only)]) => format!("{n} free-tier key{}, {}{only}", plural(n), if n == 1 { "" } else { "all " }),
        (n, parts) => {
            let parts: Vec<String> = parts.iter().map(|(count, what)| format!("{count} {what}")).collect();
            format!("{n} free-tier keys: {}", parts.join(", "))
        }
    }
}

/// A provider and the health of the free tier's keys for it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderHealth {
    /// Its name.
    #[schema(value_type = String)]
    pub provider: ProviderName,
    /// Whether it also draws images.
    pub images: bool,
    /// Free-tier keys from the settings (`keyguard.free_tier.keys`).
    pub settings_keys: usize,
    /// Free-tier keys operators added (`/set_default_api_key`).
    pub pool_keys: usize,
    /// Keys answering.
    pub healthy: usize,
    /// Keys resting after repeated failures.
    pub resting: usize,
    /// Keys the provider refused as invalid.
    pub refused: usize,
    /// All of it in words, as `/providers` says it.
    pub summary: String,
}

/// The UTC day of `at`, `YYYY-MM-DD`.
fn utc_day(at: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(at.as_millis())
        .unwrap_or_default()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

/// Time from `at` to the next UTC midnight, when the free tier's allowances reset.
fn until_next_utc_day(at: Timestamp) -> Duration {
    const DAY_MILLIS: i64 = 86_400_000;
    Duration::from_millis(u64::try_from(DAY_MILLIS - at.as_millis().rem_euclid(DAY_MILLIS)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_and_reset_at_midnight() {
        // 2026-11-30T23:59:30Z
        let at = Timestamp::from_millis(1_796_083_170_000);
        assert_eq!(utc_day(at), "2026-11-30");
        assert_eq!(until_next_utc_day(at), Duration::from_secs(30));
        assert_eq!(utc_day(Timestamp::from_millis(1_796_083_200_000)), "2026-12-01");
    }

    #[test]
    fn durations_are_spoken() {
        assert_eq!(spoken(Duration::from_millis(41_200)), "42 s");
        assert_eq!(spoken(Duration::from_secs(301)), "6 min");
        assert_eq!(spoken(Duration::from_secs(3 * 3600 + 12 * 60 + 5)), "3 h 12 min");
    }
}
