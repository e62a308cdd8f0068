//! What the fake remembers about the provider requests it receives, so tests can check how a
//! client called it.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::Provider;

/// How many requests are kept; older ones are forgotten first.
pub const RECORD_CAPACITY: usize = 10_000;

/// Where a request carried its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeySource {
    /// `Authorization: Bearer KEY` (OpenAI-compatible providers). A value without the
    /// `Bearer ` prefix is recorded whole.
    #[serde(rename = "authorization")]
    Authorization,
    /// The `x-goog-api-key` header (Gemini).
    #[serde(rename = "x-goog-api-key")]
    GoogApiKey,
    /// The `x-api-key` header (Anthropic).
    #[serde(rename = "x-api-key")]
    XApiKey,
    /// A `key=` query parameter, which the fake refuses (Gemini keys belong in a header).
    #[serde(rename = "query")]
    Query,
}

/// One provider request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The provider whose API was called.
    pub provider: Provider,
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// The full path as received, including the provider's prefix
    /// (`/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent`).
    pub path: String,
    /// The query string without `?`, if there was one.
    pub query: Option<String>,
    /// Where the key was found; `None` when the request carried none.
    pub key_source: Option<KeySource>,
    /// The key as received (for `Authorization`, the text after `Bearer `).
    pub api_key: Option<String>,
    /// The `anthropic-version` header, if sent.
    pub anthropic_version: Option<String>,
    /// The model named in the body (or, for Gemini, in the path); `None` for model lists and
    /// bodies that did not parse.
    pub model: Option<String>,
    /// Whether a streamed answer was asked for.
    pub stream: bool,
    /// The text of the last user message (for image generations, the prompt); `None` when
    /// the request has none.
    pub last_user_text: Option<String>,
    /// The conversation sent, in order, each as `(role, text)`: the system instructions first
    /// (role `system`) when there are any, then the messages with the provider's own role
    /// names (`user`, `assistant`, Gemini's `model`). Empty for model lists and images.
    pub messages: Vec<(String, String)>,
}

/// A bounded, shared log of [`RecordedRequest`]s.
#[derive(Debug)]
pub(crate) struct Recorder {
    enabled: bool,
    requests: Mutex<VecDeque<RecordedRequest>>,
}

impl Recorder {
    /// A recorder that keeps requests only when `enabled`.
    pub(crate) fn new(enabled: bool) -> Recorder {
        Recorder { enabled, requests: Mutex::new(VecDeque::new()) }
    }

    /// Whether requests are kept; callers skip building a record when they are not.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Keeps `request`, forgetting the oldest one when full.
    pub(crate) fn push(&self, request: RecordedRequest) {
        if !self.enabled {
            return;
        }
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        if requests.len() == RECORD_CAPACITY {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    /// The requests kept so far, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests.iter().cloned().collect()
    }

    /// Forgets every request.
    pub(crate) fn clear(&self) {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(n: usize) -> RecordedRequest {
        RecordedRequest {
            provider: Provider::Groq,
            method: "POST".into(),
            path: format!("/{n}"),
            query: None,
            key_source: None,
            api_key: None,
            anthropic_version: None,
            model: None,
            stream: false,
            last_user_text: None,
            messages: Vec::new(),
        }
    }

    #[test]
    fn keeps_the_newest_requests() {
        let recorder = Recorder::new(true);
        for n in 0..RECORD_CAPACITY + 3 {
            recorder.push(request(n));
        }
        let kept = recorder.snapshot();
        assert_eq!(kept.len(), RECORD_CAPACITY);
        assert_eq!(kept[0].path, "/3");
        recorder.clear();
        assert!(recorder.snapshot().is_empty());
    }

    #[test]
    fn a_disabled_recorder_keeps_nothing() {
        let recorder = Recorder::new(false);
        recorder.push(request(1));
        assert!(recorder.snapshot().is_empty());
    }
}
