//! The providers hearth can call, one row of [`PROVIDERS`] each, and their per-provider
//! settings.
//!
//! Everything that tells one provider from another is in its row: its name, how people call
//! it, its key prefix, its public endpoint and models, and the wire dialect it speaks. Adding an
//! OpenAI-compatible provider is adding a row; code names a provider only for a quirk of its
//! own (OpenRouter's 402 with `Retry-After`, say).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::AiError;
use crate::wire::Dialect;

/// One provider: what hearth knows about it before any setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// The lowercase name used in settings, requests and replies.
    pub name: &'static str,
    /// How people call it (the configure page's list).
    pub label: &'static str,
    /// The documented prefix of its keys, if they have one.
    pub key_prefix: Option<&'static str>,
    /// Its public endpoint (`ai.providers.<name>.base_url` by default).
    pub base_url: &'static str,
    /// Its default chat model.
    pub model: &'static str,
    /// Its default image model, for providers hearth makes images with.
    pub image_model: Option<&'static str>,
    /// The wire format it speaks.
    pub dialect: Dialect,
}

/// Every provider hearth can call, in the default fallback order.
pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "gemini",
        label: "Google Gemini",
        key_prefix: Some("AIza"),
        base_url: "https://generativelanguage.googleapis.com",
        model: "gemini-2.5-flash",
        image_model: None,
        dialect: Dialect::Gemini,
    },
    Provider {
        name: "groq",
        label: "Groq",
        key_prefix: Some("gsk_"),
        base_url: "https://api.groq.com/openai/v1",
        model: "llama-3.3-70b-versatile",
        image_model: None,
        dialect: Dialect::OpenAiCompatible,
    },
    Provider {
        name: "cerebras",
        label: "Cerebras",
        key_prefix: Some("csk-"),
        base_url: "https://api.cerebras.ai/v1",
        model: "llama-3.3-70b",
        image_model: None,
        dialect: Dialect::OpenAiCompatible,
    },
    Provider {
        name: "openrouter",
        label: "OpenRouter",
        key_prefix: Some("sk-or-"),
        base_url: "https://openrouter.ai/api/v1",
        model: "meta-llama/llama-3.3-70b-instruct:free",
        image_model: None,
        dialect: Dialect::OpenAiCompatible,
    },
    Provider {
        name: "openai",
        label: "OpenAI",
        key_prefix: Some("sk-"),
        base_url: "https://api.openai.com/v1",
        model: "gpt-4o-mini",
        image_model: Some("gpt-image-1"),
        dialect: Dialect::OpenAi,
    },
    Provider {
        name: "anthropic",
        label: "Anthropic",
        key_prefix: Some("sk-ant-"),
        base_url: "https://api.anthropic.com",
        model: "claude-haiku-4-5",
        image_model: None,
        dialect: Dialect::Anthropic,
    },
];

/// A provider hearth can call: a row of [`PROVIDERS`]. Ordered as the table is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderName(u8);

// Named like the enum variants they replaced, so that code naming one provider (a quirk, a
// test) reads as it did.
#[allow(non_upper_case_globals)]
impl ProviderName {
    /// Google Gemini, native API.
    pub const Gemini: ProviderName = ProviderName::named("gemini");
    /// Groq, OpenAI-compatible.
    pub const Groq: ProviderName = ProviderName::named("groq");
    /// Cerebras, OpenAI-compatible.
    pub const Cerebras: ProviderName = ProviderName::named("cerebras");
    /// OpenRouter, OpenAI-compatible.
    pub const OpenRouter: ProviderName = ProviderName::named("openrouter");
    /// OpenAI: chat and image generation.
    pub const OpenAi: ProviderName = ProviderName::named("openai");
    /// Anthropic Messages API.
    pub const Anthropic: ProviderName = ProviderName::named("anthropic");
}

impl ProviderName {
    /// Every provider, in the default fallback order.
    pub const ALL: [ProviderName; PROVIDERS.len()] = {
        let mut all = [ProviderName(0); PROVIDERS.len()];
        let mut at = 0;
        while at < all.len() {
            all[at] = ProviderName(at as u8);
            at += 1;
        }
        all
    };

    /// The row named `name`; a name the table lacks does not compile.
    const fn named(name: &str) -> ProviderName {
        let mut at = 0;
        while at < PROVIDERS.len() {
            if same(PROVIDERS[at].name.as_bytes(), name.as_bytes()) {
                return ProviderName(at as u8);
            }
            at += 1;
        }
        panic!("no such provider in PROVIDERS")
    }

    /// Its row of [`PROVIDERS`].
    pub fn provider(self) -> &'static Provider {
        &PROVIDERS[usize::from(self.0)]
    }

    /// The lowercase name used in settings, requests and replies.
    pub fn as_str(self) -> &'static str {
        self.provider().name
    }

    /// The wire format this provider speaks.
    pub fn dialect(self) -> Dialect {
        self.provider().dialect
    }

    /// Whether hearth can generate images with this provider.
    pub fn makes_images(self) -> bool {
        self.provider().image_model.is_some()
    }

    /// Every provider's name, as a sentence lists them: `gemini, groq, …`.
    pub fn all_names() -> String {
        PROVIDERS.iter().map(|provider| provider.name).collect::<Vec<_>>().join(", ")
    }
}

/// Byte-wise equality, in a `const fn`.
const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut at = 0;
    while at < a.len() {
        if a[at] != b[at] {
            return false;
        }
        at += 1;
    }
    true
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ProviderName {
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

impl Serialize for ProviderName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProviderName {
    /// The exact lowercase name, as settings and the keyguard's messages write it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        ProviderName::ALL
            .into_iter()
            .find(|provider| provider.as_str() == name)
            .ok_or_else(|| serde::de::Error::custom(AiError::UnknownProvider))
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
    /// The public endpoint and a current model of `provider`, from its row.
    pub fn default_for(provider: ProviderName) -> Self {
        let row = provider.provider();
        Self {
            base_url: row.base_url.to_owned(),
            model: row.model.to_owned(),
            image_model: row.image_model.map(str::to_owned),
            timeout_secs: default_attempt_timeout(),
            max_tokens: default_max_tokens(),
        }
    }

    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

/// Settings of every provider (`ai.providers.<name>.*`): each defaults to the provider's row,
/// so a setting names only what differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Providers(BTreeMap<ProviderName, ProviderSettings>);

impl Default for Providers {
    fn default() -> Self {
        Self(
            ProviderName::ALL.into_iter().map(|provider| (provider, ProviderSettings::default_for(provider))).collect(),
        )
    }
}

impl Providers {
    /// The settings of one provider.
    pub fn get(&self, provider: ProviderName) -> &ProviderSettings {
        // Every provider has an entry: the map starts as the defaults and is only overlaid.
        &self.0[&provider]
    }

    /// Mutable settings of one provider (tests point base URLs at a fake).
    pub fn get_mut(&mut self, provider: ProviderName) -> &mut ProviderSettings {
        self.0.entry(provider).or_insert_with(|| ProviderSettings::default_for(provider))
    }
}

impl Serialize for Providers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Providers {
    /// The providers named, over the defaults of the rest. A name the table lacks is refused.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut providers = Providers::default();
        providers.0.extend(BTreeMap::<ProviderName, ProviderSettings>::deserialize(deserializer)?);
        Ok(providers)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for provider in ProviderName::ALL {
            let name = provider.as_str();
            assert_eq!(PROVIDERS.iter().filter(|row| row.name == name).count(), 1, "{name}");
            assert_eq!(name.to_uppercase().parse::<ProviderName>(), Ok(provider));
            let json = serde_json::to_string(&provider).expect("serializes");
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<ProviderName>(&json).expect("parses"), provider);
        }
        assert_eq!(ProviderName::OpenRouter.as_str(), "openrouter");
        assert!(serde_json::from_str::<ProviderName>("\"mistral\"").is_err());
        assert_eq!(ProviderName::all_names(), "gemini, groq, cerebras, openrouter, openai, anthropic");
    }

    #[test]
    fn named_settings_overlay_the_defaults() {
        let providers: Providers = serde_json::from_value(serde_json::json!({
            "groq": {"base_url": "http://127.0.0.1:9/groq", "model": "m"}
        }))
        .expect("parses");
        assert_eq!(providers.get(ProviderName::Groq).base_url, "http://127.0.0.1:9/groq");
        assert_eq!(providers.get(ProviderName::OpenAi), &ProviderSettings::default_for(ProviderName::OpenAi));
        assert!(ProviderName::OpenAi.makes_images() && !ProviderName::Groq.makes_images());
    }
}
