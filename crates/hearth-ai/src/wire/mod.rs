//! The wire: building each dialect's streaming request, reading its server-sent events, and
//! classifying its errors. Every provider call streams; a caller that wants the whole reply
//! collects the deltas.

mod anthropic;
mod gemini;
mod openai;

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource as _};
use futures::{Stream, StreamExt as _};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use crate::{ApiKey, ChatRequest, FailureClass, ProviderFailure, ProviderName, ProviderSettings};

pub(crate) use openai::image_request;

/// The wire formats providers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `POST {base}/chat/completions` with a bearer key, as OpenAI itself takes it today: the
    /// reply's limit is `max_completion_tokens` (its newer models refuse `max_tokens`).
    OpenAi,
    /// The same, as the compatible providers take it (Groq, Cerebras, OpenRouter): the reply's
    /// limit is `max_tokens`.
    OpenAiCompatible,
    /// Gemini's native `streamGenerateContent?alt=sse` with `x-goog-api-key`.
    Gemini,
    /// Anthropic's `POST {base}/v1/messages` with `x-api-key`.
    Anthropic,
}

/// The text deltas of one reply, in order. The stream ends after the provider's end marker;
/// a stream cut off before it yields a [`FailureClass::NetworkError`] last.
pub type DeltaStream = Pin<Box<dyn Stream<Item = Result<String, ProviderFailure>> + Send>>;

/// Longest error body read from a provider: error JSON is small, and a hostile or broken
/// endpoint must not make us buffer without bound.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Longest provider explanation kept for a bad request.
const MAX_DETAIL_CHARS: usize = 300;

/// What one server-sent event meant.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Reply text it carried, if any.
    pub text: Option<String>,
    /// Whether it ended the reply.
    pub done: bool,
}

impl Parsed {
    fn text(text: &str) -> Self {
        Self { text: (!text.is_empty()).then(|| text.to_owned()), done: false }
    }

    fn done() -> Self {
        Self { text: None, done: true }
    }

    fn nothing() -> Self {
        Self::default()
    }
}

/// Sends the streaming chat request for `provider` and returns its deltas once the provider
/// has answered with a success status. The key goes only to `settings.base_url`, only in
/// the provider's own auth header.
pub async fn open_stream(
    http: &reqwest::Client,
    provider: ProviderName,
    settings: &ProviderSettings,
    key: &ApiKey,
    request: &ChatRequest,
) -> Result<DeltaStream, ProviderFailure> {
    let builder = match provider.dialect() {
        Dialect::OpenAi | Dialect::OpenAiCompatible => openai::chat_request(http, provider, settings, key, request),
        Dialect::Gemini => gemini::chat_request(http, settings, key, request),
        Dialect::Anthropic => anthropic::chat_request(http, settings, key, request),
    };
    let response = builder.send().await.map_err(transport_failure)?;
    if !response.status().is_success() {
        return Err(failure_from_response(provider, key, response).await);
    }
    let dialect = provider.dialect();
    let events = response.bytes_stream().eventsource();
    Ok(Box::pin(deltas(dialect, events)))
}

/// Turns a provider's event stream into text deltas, ending at its end marker.
fn deltas<S>(dialect: Dialect, events: S) -> impl Stream<Item = Result<String, ProviderFailure>> + Send
where
    S: Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send + Unpin,
{
    // The state is the event stream while the reply goes on, `None` once it has ended.
    futures::stream::unfold(Some(events), move |events| async move {
        let mut events = events?;
        loop {
            let parsed = match events.next().await {
                None => {
                    // The body ended without the end marker: the reply is incomplete.
                    return Some((Err(ProviderFailure::new(FailureClass::NetworkError)), None));
                }
                Some(Err(EventStreamError::Transport(error))) => Err(transport_failure(error)),
                Some(Err(_)) => Err(ProviderFailure::new(FailureClass::UpstreamError)),
                Some(Ok(event)) => parse_event(dialect, &event),
            };
            match parsed {
                Err(failure) => return Some((Err(failure), None)),
                // A final event may carry text too: yield it, then end.
                Ok(Parsed { text: Some(text), done }) => return Some((Ok(text), (!done).then_some(events))),
                Ok(Parsed { text: None, done: true }) => return None,
                Ok(Parsed { text: None, done: false }) => continue,
            }
        }
    })
}

fn parse_event(dialect: Dialect, event: &Event) -> Result<Parsed, ProviderFailure> {
    match dialect {
        Dialect::OpenAi | Dialect::OpenAiCompatible => openai::parse_event(event),
        Dialect::Gemini => gemini::parse_event(event),
        Dialect::Anthropic => anthropic::parse_event(event),
    }
}

/// The JSON of an event's data, or an upstream error when the provider sent something else.
fn event_json(event: &Event) -> Result<Value, ProviderFailure> {
    serde_json::from_str(&event.data).map_err(|_| ProviderFailure::new(FailureClass::UpstreamError))
}

/// A failure before any HTTP status: timeouts and broken connections.
pub(crate) fn transport_failure(error: reqwest::Error) -> ProviderFailure {
    // reqwest's error text can include the URL, never headers; it is not kept anyway.
    let class = if error.is_timeout() { FailureClass::Timeout } else { FailureClass::NetworkError };
    ProviderFailure::new(class)
}

/// Reads and classifies a non-success response.
pub(crate) async fn failure_from_response(
    provider: ProviderName,
    key: &ApiKey,
    response: reqwest::Response,
) -> ProviderFailure {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let body = read_limited(response).await;
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut failure = classify(provider, status, retry_after.is_some(), &json);
    failure.status = Some(status);
    failure.retry_after = failure.retry_after.or(retry_after);
    if failure.class == FailureClass::BadRequest {
        failure.detail = error_message(&json).map(|message| detail(key, message));
    }
    failure
}

/// Classifies an error status and body in `provider`'s dialect.
pub(crate) fn classify(provider: ProviderName, status: u16, has_retry_after: bool, body: &Value) -> ProviderFailure {
    match provider.dialect() {
        Dialect::OpenAi | Dialect::OpenAiCompatible => openai::classify(provider, status, has_retry_after, body),
        Dialect::Gemini => gemini::classify(status, body),
        Dialect::Anthropic => ProviderFailure::new(anthropic::classify(status)),
    }
}

/// The body of an error response, at most [`MAX_ERROR_BODY`] bytes; whatever arrived if the
/// connection broke.
async fn read_limited(response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        let room = MAX_ERROR_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_ERROR_BODY {
            break;
        }
    }
    body
}

/// `Retry-After` in seconds (the HTTP-date form is not used by these providers).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<f64>().ok().and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
}

/// `error.message` of every dialect's error JSON.
fn error_message(body: &Value) -> Option<&str> {
    body.pointer("/error/message").and_then(Value::as_str)
}

/// A provider's explanation made safe to show: the key scrubbed out, the length bounded.
fn detail(key: &ApiKey, message: &str) -> String {
    key.scrub(message).chars().take(MAX_DETAIL_CHARS).collect()
}

/// The status an error named only by its type or code stands for, so errors inside a stream
/// are classified by the same rules as error responses.
fn status_of_error_code(code: &str) -> u16 {
    match code {
        "invalid_api_key" | "authentication_error" | "UNAUTHENTICATED" => 401,
        "insufficient_quota" | "billing_error" => 402,
        "permission_error" | "PERMISSION_DENIED" => 403,
        "model_not_found" | "not_found_error" | "NOT_FOUND" => 404,
        "request_too_large" => 413,
        "rate_limit_exceeded" | "rate_limit_error" | "RESOURCE_EXHAUSTED" => 429,
        "invalid_request_error" | "INVALID_ARGUMENT" | "context_length_exceeded" => 400,
        "overloaded_error" => 529,
        "timeout_error" | "DEADLINE_EXCEEDED" => 504,
        "UNAVAILABLE" => 503,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(provider: ProviderName, status: u16, body: Value) -> FailureClass {
        classify(provider, status, false, &body).class
    }

    #[test]
    fn the_providers_table_classifies_every_documented_case() {
        use FailureClass::*;
        let openai_error = |code: &str, message: &str| json!({"error": {"message": message, "type": "x", "param": null, "code": code}});
        // 401 anywhere.
        for provider in ProviderName::ALL {
            assert_eq!(class(provider, 401, Value::Null), InvalidKey, "{provider}");
        }
        assert_eq!(
            class(
                ProviderName::Gemini,
                400,
                json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "API key not valid.",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}})
            ),
            InvalidKey
        );
        assert_eq!(class(ProviderName::Gemini, 403, json!({"error": {"status": "PERMISSION_DENIED"}})), InvalidKey);
        // Quota.
        assert_eq!(
            class(ProviderName::OpenAi, 429, openai_error("insufficient_quota", "You exceeded your current quota")),
            QuotaExceeded
        );
        assert_eq!(class(ProviderName::OpenAi, 429, openai_error("credit_balance_exhausted", "")), QuotaExceeded);
        assert_eq!(class(ProviderName::OpenAi, 429, openai_error("monthly_spend_limit_exceeded", "")), QuotaExceeded);
        let per_day = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
             "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}});
        assert_eq!(class(ProviderName::Gemini, 429, per_day), QuotaExceeded);
        assert_eq!(
            class(ProviderName::OpenRouter, 402, json!({"error": {"code": 402, "message": "Insufficient credits"}})),
            QuotaExceeded
        );
        assert_eq!(class(ProviderName::Cerebras, 402, Value::Null), QuotaExceeded);
        assert_eq!(
            class(ProviderName::Anthropic, 402, json!({"type": "error", "error": {"type": "billing_error"}})),
            QuotaExceeded
        );
        // Rate limits.
        assert_eq!(
            class(ProviderName::OpenAi, 429, openai_error("rate_limit_exceeded", "Rate limit reached")),
            RateLimited
        );
        let per_minute = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
             "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}});
        let failure = classify(ProviderName::Gemini, 429, false, &per_minute);
        assert_eq!((failure.class, failure.retry_after), (RateLimited, Some(Duration::from_secs(7))));
        assert_eq!(class(ProviderName::Gemini, 429, Value::Null), RateLimited);
        assert_eq!(class(ProviderName::Groq, 429, Value::Null), RateLimited);
        assert_eq!(class(ProviderName::Groq, 498, Value::Null), RateLimited);
        assert_eq!(class(ProviderName::Anthropic, 429, Value::Null), RateLimited);
        assert_eq!(
            class(ProviderName::Anthropic, 529, json!({"type": "error", "error": {"type": "overloaded_error"}})),
            RateLimited
        );
        assert_eq!(classify(ProviderName::OpenRouter, 402, true, &Value::Null).class, RateLimited);
        // Timeouts.
        assert_eq!(class(ProviderName::OpenRouter, 408, Value::Null), Timeout);
        for provider in ProviderName::ALL {
            assert_eq!(class(provider, 504, Value::Null), Timeout, "{provider}");
        }
        // Missing models.
        assert_eq!(
            class(ProviderName::OpenAi, 404, openai_error("model_not_found", "The model does not exist")),
            UnsupportedModel
        );
        assert_eq!(class(ProviderName::Gemini, 404, json!({"error": {"status": "NOT_FOUND"}})), UnsupportedModel);
        assert_eq!(
            class(ProviderName::Anthropic, 404, json!({"type": "error", "error": {"type": "not_found_error"}})),
            UnsupportedModel
        );
        // Upstream.
        for provider in ProviderName::ALL {
            assert_eq!(class(provider, 500, Value::Null), UpstreamError, "{provider}");
            assert_eq!(class(provider, 503, Value::Null), UpstreamError, "{provider}");
        }
        assert_eq!(
            class(ProviderName::OpenRouter, 502, json!({"error": {"code": 502, "message": "provider down"}})),
            UpstreamError
        );
        // The request's own fault.
        assert_eq!(class(ProviderName::OpenAi, 400, openai_error("context_length_exceeded", "too long")), BadRequest);
        assert_eq!(class(ProviderName::OpenAi, 413, Value::Null), BadRequest);
        assert_eq!(class(ProviderName::Groq, 422, Value::Null), BadRequest);
        assert_eq!(
            class(
                ProviderName::OpenAi,
                429,
                openai_error("rate_limit_exceeded", "Request too large for gpt-4o on tokens per min")
            ),
            BadRequest
        );
        assert_eq!(
            class(ProviderName::Anthropic, 413, json!({"type": "error", "error": {"type": "request_too_large"}})),
            BadRequest
        );
        assert_eq!(
            class(ProviderName::Anthropic, 400, json!({"type": "error", "error": {"type": "invalid_request_error"}})),
            BadRequest
        );
        assert_eq!(
            class(ProviderName::Gemini, 400, json!({"error": {"status": "INVALID_ARGUMENT", "message": "bad field"}})),
            BadRequest
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn details_never_quote_the_key() {
        let key = ApiKey::new("sk-proj-CANARY-0123456789abcdef");
        let shown = detail(&key, &format!("Incorrect API key provided: {}. {}", key.expose(), "x".repeat(400)));
        assert!(!shown.contains("CANARY"));
        assert_eq!(shown.chars().count(), MAX_DETAIL_CHARS);
    }
}
