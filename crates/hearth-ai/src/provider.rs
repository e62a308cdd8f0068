//! The six providers and their per-provider settings.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::AiError;
use crate::wire::Dialect;

/// An AI provider hearth can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    /// Google Gemini, native API.
    Gemini,
    /// Groq, OpenAI-compatible.
    Groq,
    /// Cerebras, OpenAI-compatible.
    Cerebras,
    /// OpenRouter, OpenAI-compatible.
    #[serde(rename = "openrouter")]
    OpenRouter,
    /// OpenAI: chat and image generation.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages API.
    Anthropic,
}

impl ProviderName {
    /// Every provider, in the default fallback order.
    pub const ALL: [ProviderName; 6] = [
        ProviderName::Gemini,
        ProviderName::Groq,
        ProviderName::Cerebras,
        ProviderName::OpenRouter,
        ProviderName::OpenAi,
        ProviderName::Anthropic,
    ];

    /// The lowercase name used in settings, requests and replies.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderName::Gemini => "gemini",
            ProviderName::Groq => "groq",
            ProviderName::Cerebras => "cerebras",
            ProviderName::OpenRouter => "openrouter",
            ProviderName::OpenAi => "openai",
            ProviderName::Anthropic => "anthropic",
        }
    }

    /// The wire format this provider speaks.
    pub fn dialect(self) -> Dialect {
        match self {
            ProviderName::Gemini => Dialect::Gemini,
            ProviderName::Anthropic => Dialect::Anthropic,
            ProviderName::Groq | ProviderName::Cerebras | ProviderName::OpenRouter | ProviderName::OpenAi => {
                Dialect::OpenAi
            }
        }
    }

    /// Whether hearth can generate images with this provider.
    pub fn makes_images(self) -> bool {
        self == ProviderName::OpenAi
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderName {
    type Err = AiError;

    fn from_str(name: &str) -> Result<Self, AiError> {
        ProviderName::ALL
            .into_iter()
            .find(|provider| provider.as_str().eq_ignore_ascii_case(name))
            .ok_or(AiError::UnknownProvider)
    }
}

/// Where and how one provider is called (`ai.providers.<name>.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSettings {
    /// Base URL, without a trailing slash (e.g. `https://api.openai.com/v1`).
    pub base_url: String,
    /// Chat model.
    pub model: String,
    /// Image model, for providers that make images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_model: Option<String>,
    /// Longest one attempt may wait for its first delta, and for each later one.
    #[serde(with = "seconds", default = "default_attempt_timeout")]
    pub timeout_secs: Duration,
    /// Most tokens a reply may have (required by Anthropic, passed to all).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

fn default_attempt_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_tokens() -> u32 {
    1024
}

impl ProviderSettings {
    /// The public endpoint and a current model of `provider`.
    pub fn default_for(provider: ProviderName) -> Self {
        let (base_url, model, image_model) = match provider {
            ProviderName::Gemini => ("https://generativelanguage.googleapis.com", "gemini-2.5-flash", None),
            ProviderName::Groq => ("https://api.groq.com/openai/v1", "llama-3.3-70b-versatile", None),
            ProviderName::Cerebras => ("https://api.cerebras.ai/v1", "llama-3.3-70b", None),
            ProviderName::OpenRouter => {
                ("https://openrouter.ai/api/v1", "meta-llama/llama-3.3-70b-instruct:free", None)
            }
            ProviderName::OpenAi => ("https://api.openai.com/v1", "gpt-4o-mini", Some("gpt-image-1")),
            ProviderName::Anthropic => ("https://api.anthropic.com", "claude-haiku-4-5", None),
        };
        Self {
            base_url: base_url.to_owned(),
            model: model.to_owned(),
            image_model: image_model.map(str::to_owned),
            timeout_secs: default_attempt_timeout(),
            max_tokens: default_max_tokens(),
        }
    }

    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

/// Settings of all six providers (`ai.providers.*`): each field defaults to the provider's
/// public endpoint, so a setting names only what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Providers {
    /// Google Gemini.
    pub gemini: ProviderSettings,
    /// Groq.
    pub groq: ProviderSettings,
    /// Cerebras.
    pub cerebras: ProviderSettings,
    /// OpenRouter.
    pub openrouter: ProviderSettings,
    /// OpenAI.
    pub openai: ProviderSettings,
    /// Anthropic.
    pub anthropic: ProviderSettings,
}

impl Default for Providers {
    fn default() -> Self {
        Self {
            gemini: ProviderSettings::default_for(ProviderName::Gemini),
            groq: ProviderSettings::default_for(ProviderName::Groq),
            cerebras: ProviderSettings::default_for(ProviderName::Cerebras),
            openrouter: ProviderSettings::default_for(ProviderName::OpenRouter),
            openai: ProviderSettings::default_for(ProviderName::OpenAi),
            anthropic: ProviderSettings::default_for(ProviderName::Anthropic),
        }
    }
}

impl Providers {
    /// The settings of one provider.
    pub fn get(&self, provider: ProviderName) -> &ProviderSettings {
        match provider {
            ProviderName::Gemini => &self.gemini,
            ProviderName::Groq => &self.groq,
            ProviderName::Cerebras => &self.cerebras,
            ProviderName::OpenRouter => &self.openrouter,
            ProviderName::OpenAi => &self.openai,
            ProviderName::Anthropic => &self.anthropic,
        }
    }

    /// Mutable settings of one provider (tests point base URLs at a fake).
    pub fn get_mut(&mut self, provider: ProviderName) -> &mut ProviderSettings {
        match provider {
            ProviderName::Gemini => &mut self.gemini,
            ProviderName::Groq => &mut self.groq,
            ProviderName::Cerebras => &mut self.cerebras,
            ProviderName::OpenRouter => &mut self.openrouter,
            ProviderName::OpenAi => &mut self.openai,
            ProviderName::Anthropic => &mut self.anthropic,
        }
    }
}

/// Durations in settings are whole seconds (fractions allowed: `0.5`).
pub(crate) mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }
}
