//! hearth's AI providers.
//!
//! The providers, one row each of a table ([`PROVIDERS`]: name, key prefix, endpoint, models,
//! dialect); thin streaming clients for the three wire formats they speak ([`wire`]:
//! OpenAI-compatible for OpenAI, Groq, Cerebras and OpenRouter; Gemini's native API;
//! Anthropic's Messages API), the classification of every failure into the classes of
//! `PROVIDERS.md` ([`FailureClass`]), per-key failure tracking with cool-downs
//! ([`KeyHealth`]) and the [`Router`] that walks providers and keys in order until one
//! answers. Keys are held in zeroizing memory ([`ApiKey`]) and never appear in `Debug`
//! output, errors or the attempt log, which names a key only by its fingerprint.

mod chat;
mod failure;
mod health;
mod image;
mod key;
mod provider;
mod router;
pub mod wire;

pub use chat::{ChatMessage, ChatRequest, Role};
pub use failure::{FailureClass, ProviderFailure};
pub use health::{KeyHealth, KeyState};
pub use image::GeneratedImage;
pub use key::{ApiKey, KeyFingerprint, redact_key_shapes};
pub use provider::{PROVIDERS, Provider, ProviderName, ProviderSettings, Providers};
pub use router::{
    Answer, Attempt, AttemptOutcome, Candidate, KeyHolder, Router, RouterSettings, TurnFailure, TurnFailureKind,
};

/// Input the AI layer refuses before any provider is called, and a router that cannot be
/// built. Variants never carry a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AiError {
    /// A provider name that hearth does not know. The name is not repeated: a client that
    /// swapped name and key would otherwise see its key echoed.
    #[error("unknown provider; known: {}", ProviderName::all_names())]
    UnknownProvider,
    /// A key of the wrong length.
    #[error("the {provider} key must be 20 to 500 characters long")]
    KeyLength {
        /// The provider the key was given for.
        provider: ProviderName,
    },
    /// A key with characters no provider's key has.
    #[error("the {provider} key may contain only printable characters without spaces")]
    KeyCharacters {
        /// The provider the key was given for.
        provider: ProviderName,
    },
    /// A key whose prefix belongs to another provider.
    #[error("the key given for {given} looks like a {detected} key")]
    KeyProviderMismatch {
        /// The provider the key was given for.
        given: ProviderName,
        /// The provider its prefix belongs to.
        detected: ProviderName,
    },
    /// The HTTP client the providers are called with could not be built.
    #[error("the HTTP client for the AI providers could not be built: {0}")]
    HttpClient(String),
}
