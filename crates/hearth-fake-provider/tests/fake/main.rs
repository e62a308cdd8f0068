//! Integration tests: the fake started on a free port, called over HTTP with reqwest the way
//! hearth's clients call the real providers.

mod anthropic;
mod auth;
mod connection;
mod gemini;
mod images;
mod openai_compatible;
mod recording;
mod scenarios;

use hearth_fake_provider::{FakeProvider, Provider, Scenario};
use reqwest::RequestBuilder;
use serde_json::{Value, json};

/// The fake and a client for it.
#[derive(Debug)]
pub struct TestFake {
    pub fake: FakeProvider,
    pub http: reqwest::Client,
}

impl TestFake {
    pub async fn start() -> TestFake {
        TestFake { fake: FakeProvider::start().await.expect("fake provider starts"), http: reqwest::Client::new() }
    }

    pub fn base(&self, provider: Provider) -> String {
        self.fake.base_url(provider.name()).expect("a known provider")
    }

    /// A chat request to `provider` with `key`, a short history and `text` as the last user
    /// message, streamed or not (OpenAI-compatible streams ask for usage).
    pub fn chat(&self, provider: Provider, key: &str, text: &str, stream: bool) -> RequestBuilder {
        self.chat_on(&self.http, provider, key, text, stream)
    }

    /// [`TestFake::chat`] through another client (one with a timeout, say).
    pub fn chat_on(
        &self,
        http: &reqwest::Client,
        provider: Provider,
        key: &str,
        text: &str,
        stream: bool,
    ) -> RequestBuilder {
        let base = self.base(provider);
        match provider {
            Provider::Gemini => {
                let url = if stream {
                    format!("{base}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
                } else {
                    format!("{base}/v1beta/models/gemini-2.5-flash:generateContent")
                };
                http.post(url).header("x-goog-api-key", key).json(&json!({
                    "systemInstruction": {"parts": [{"text": "Be brief."}]},
                    "contents": [
                        {"role": "user", "parts": [{"text": "first question"}]},
                        {"role": "model", "parts": [{"text": "first answer"}]},
                        {"role": "user", "parts": [{"text": text}]},
                    ],
                }))
            }
            Provider::Anthropic => http
                .post(format!("{base}/v1/messages"))
                .header("x-api-key", key)
                .header("anthropic-version", "2023-06-01")
                .json(&json!({
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 256,
                    "system": "Be brief.",
                    "messages": [
                        {"role": "user", "content": "first question"},
                        {"role": "assistant", "content": "first answer"},
                        {"role": "user", "content": text},
                    ],
                    "stream": stream,
                })),
            _ => {
                let mut body = json!({
                    "model": model(provider),
                    "messages": [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "first question"},
                        {"role": "assistant", "content": "first answer"},
                        {"role": "user", "content": text},
                    ],
                    "stream": stream,
                });
                if stream {
                    body["stream_options"] = json!({"include_usage": true});
                }
                http.post(format!("{base}/chat/completions")).bearer_auth(key).json(&body)
            }
        }
    }

    /// A model-list request to `provider` with `key`.
    pub fn models(&self, provider: Provider, key: &str) -> RequestBuilder {
        let base = self.base(provider);
        match provider {
            Provider::Gemini => self.http.get(format!("{base}/v1beta/models")).header("x-goog-api-key", key),
            Provider::Anthropic => self
                .http
                .get(format!("{base}/v1/models"))
                .header("x-api-key", key)
                .header("anthropic-version", "2023-06-01"),
            _ => self.http.get(format!("{base}/models")).bearer_auth(key),
        }
    }
}

/// A model name typical of an OpenAI-compatible provider.
pub fn model(provider: Provider) -> &'static str {
    match provider {
        Provider::Groq => "llama-3.3-70b-versatile",
        Provider::Cerebras => "llama3.1-8b",
        Provider::OpenRouter => "openai/gpt-4o-mini",
        _ => "gpt-4o-mini",
    }
}

/// A key in `provider`'s shape selecting the scenario named `scenario`.
pub fn key(provider: Provider, scenario: &str) -> String {
    let scenario: Scenario = scenario.parse().expect("a scenario name");
    provider.key_for(&scenario)
}

/// The reply the fake gives `provider` for `text`.
pub fn reply(provider: Provider, text: &str) -> String {
    format!("{provider} reply to: {text}")
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

/// The complete events of an SSE body (CRLF or LF line ends); a trailing incomplete event,
/// as a cut-off stream leaves, is dropped, as SSE parsers must.
pub fn events(body: &str) -> Vec<Event> {
    let body = body.replace("\r\n", "\n");
    let complete = body.rfind("\n\n").map_or("", |end| &body[..end + 2]);
    complete
        .split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event = Some(name.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            (!data.is_empty()).then(|| Event { event, data: data.join("\n") })
        })
        .collect()
}

/// The text deltas in `provider`'s stream events.
pub fn deltas(provider: Provider, events: &[Event]) -> Vec<String> {
    let mut deltas = Vec::new();
    for event in events {
        match provider {
            Provider::Anthropic => {
                if event.event.as_deref() == Some("content_block_delta") {
                    let text = &event.json()["delta"]["text"];
                    deltas.push(text.as_str().expect("delta text").to_owned());
                }
            }
            Provider::Gemini => {
                let chunk = event.json();
                let parts = chunk["candidates"][0]["content"]["parts"].as_array().cloned();
                for part in parts.unwrap_or_default() {
                    if let Some(text) = part["text"].as_str() {
                        deltas.push(text.to_owned());
                    }
                }
            }
            _ => {
                if event.data == "[DONE]" {
                    continue;
                }
                let chunk = event.json();
                if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str()
                    && !text.is_empty()
                {
                    deltas.push(text.to_owned());
                }
            }
        }
    }
    deltas
}
