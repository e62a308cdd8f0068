//! The six providers the fake imitates, their names and where each one's API lives.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One of the AI providers the fake imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI: chat completions, image generations, models.
    OpenAi,
    /// Groq: OpenAI-compatible chat completions and models.
    Groq,
    /// Cerebras: OpenAI-compatible chat completions and models.
    Cerebras,
    /// OpenRouter: OpenAI-compatible chat completions and models, its own error shape.
    OpenRouter,
    /// Google Gemini: the native `generateContent` API.
    Gemini,
    /// Anthropic: the Messages API.
    Anthropic,
}

impl Provider {
    /// Every provider, in a fixed order.
    pub const ALL: [Provider; 6] = [
        Provider::OpenAi,
        Provider::Groq,
        Provider::Cerebras,
        Provider::OpenRouter,
        Provider::Gemini,
        Provider::Anthropic,
    ];

    /// The provider's lowercase name: `openai groq cerebras openrouter gemini anthropic`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Groq => "groq",
            Provider::Cerebras => "cerebras",
            Provider::OpenRouter => "openrouter",
            Provider::Gemini => "gemini",
            Provider::Anthropic => "anthropic",
        }
    }

    /// The provider with this lowercase name, if there is one.
    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The path under the fake's root where this provider's base URL points; it mirrors the
    /// real base URL's path (`https://api.groq.com/openai/v1` → `/groq/openai/v1`).
    pub fn base_path(self) -> &'static str {
        match self {
            Provider::OpenAi => "/openai/v1",
            Provider::Groq => "/groq/openai/v1",
            Provider::Cerebras => "/cerebras/v1",
            Provider::OpenRouter => "/openrouter/api/v1",
            Provider::Gemini => "/gemini",
            Provider::Anthropic => "/anthropic",
        }
    }

    /// Whether the provider speaks the OpenAI chat-completions dialect.
    pub fn is_openai_compatible(self) -> bool {
        matches!(self, Provider::OpenAi | Provider::Groq | Provider::Cerebras | Provider::OpenRouter)
    }

    /// A key in this provider's usual shape that selects `scenario`, for example
    /// `gsk_fake-hang-0123456789abcdef0123456789abcdef` for Groq and [`Scenario::Hang`].
    ///
    /// [`Scenario::Hang`]: crate::Scenario::Hang
    pub fn key_for(self, scenario: &crate::Scenario) -> String {
        let prefix = match self {
            Provider::OpenAi => "sk-proj-",
            Provider::Groq => "gsk_",
            Provider::Cerebras => "csk-",
            Provider::OpenRouter => "sk-or-v1-",
            Provider::Gemini => "AIzaSy",
            Provider::Anthropic => "sk-ant-api03-",
        };
        format!("{prefix}{}0123456789abcdef0123456789abcdef", scenario.marker())
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(Provider::from_name(provider.name()), Some(provider));
            let json = serde_json::to_string(&provider).expect("serialize");
            assert_eq!(json, format!("\"{}\"", provider.name()));
        }
        assert_eq!(Provider::from_name("mistral"), None);
    }
}
