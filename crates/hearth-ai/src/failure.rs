//! Why an attempt failed, in the classes of `PROVIDERS.md`, and what the router does next.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ProviderName;

/// The class of a provider failure. It decides the router's next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The key is wrong, revoked or not allowed (401; Gemini `API_KEY_INVALID`, 403).
    InvalidKey,
    /// The key's account is out of credit or daily quota.
    QuotaExceeded,
    /// Too many requests for now (429, Groq 498, Anthropic 529).
    RateLimited,
    /// No answer within the attempt's time (or a provider's 408/504).
    Timeout,
    /// The connection failed or the body was cut off.
    NetworkError,
    /// The configured model does not exist at this provider.
    UnsupportedModel,
    /// The provider failed on its side (5xx).
    UpstreamError,
    /// The request itself is wrong (too long, bad field): no fallback can fix it.
    BadRequest,
}

impl FailureClass {
    /// Every class, for metrics and tests.
    pub const ALL: [FailureClass; 8] = [
        FailureClass::InvalidKey,
        FailureClass::QuotaExceeded,
        FailureClass::RateLimited,
        FailureClass::Timeout,
        FailureClass::NetworkError,
        FailureClass::UnsupportedModel,
        FailureClass::UpstreamError,
        FailureClass::BadRequest,
    ];

    /// The snake_case name used in logs, metrics and the attempt log.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::InvalidKey => "invalid_key",
            FailureClass::QuotaExceeded => "quota_exceeded",
            FailureClass::RateLimited => "rate_limited",
            FailureClass::Timeout => "timeout",
            FailureClass::NetworkError => "network_error",
            FailureClass::UnsupportedModel => "unsupported_model",
            FailureClass::UpstreamError => "upstream_error",
            FailureClass::BadRequest => "bad_request",
        }
    }

    /// Whether the other keys of the same provider are skipped: a missing model is missing
    /// for every key.
    pub fn skips_provider(self) -> bool {
        self == FailureClass::UnsupportedModel
    }

    /// Whether the whole turn stops: the request is at fault, so every provider would refuse.
    pub fn stops_turn(self) -> bool {
        self == FailureClass::BadRequest
    }

    /// Whether the failure counts against the key's health. A bad request or a missing model
    /// says nothing about the key.
    pub fn counts_against_key(self) -> bool {
        !matches!(self, FailureClass::BadRequest | FailureClass::UnsupportedModel)
    }

    /// What a person is told about this failure at `provider` (seed 004's wording).
    pub fn user_message(self, provider: ProviderName) -> String {
        match self {
            FailureClass::InvalidKey => format!("Invalid API key for {provider}. Please verify your key is correct."),
            FailureClass::QuotaExceeded => format!("Quota exceeded for {provider}."),
            FailureClass::RateLimited => format!("Rate limit reached for {provider}."),
            FailureClass::Timeout => format!("Request to {provider} timed out."),
            FailureClass::NetworkError => format!("Network error reaching {provider}."),
            FailureClass::UnsupportedModel => format!("The model configured for {provider} is not available."),
            FailureClass::UpstreamError => format!("{provider} had an internal error."),
            FailureClass::BadRequest => format!("{provider} refused the request."),
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed call to a provider. Carries no key: the detail is taken from the provider's
/// own message with the key scrubbed out, and is kept only for bad requests, where it tells
/// the person what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderFailure {
    /// What kind of failure.
    pub class: FailureClass,
    /// The HTTP status, when there was one (errors inside a 200 stream carry the status they
    /// name, if any).
    pub status: Option<u16>,
    /// How long the provider asked us to wait (`Retry-After`, Gemini `RetryInfo`).
    pub retry_after: Option<Duration>,
    /// The provider's explanation, for bad requests only.
    pub detail: Option<String>,
}

impl ProviderFailure {
    /// A failure of `class` with nothing else known.
    pub fn new(class: FailureClass) -> Self {
        Self { class, status: None, retry_after: None, detail: None }
    }

    /// The same failure with an HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
}
