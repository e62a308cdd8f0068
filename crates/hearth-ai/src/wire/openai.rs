//! OpenAI's chat completions, as OpenAI and the OpenAI-compatible providers speak them.

use std::borrow::Cow;

use eventsource_stream::Event;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::{Dialect, Parsed, event_json, status_of_error_code};
use crate::{ApiKey, ChatRequest, FailureClass, ProviderFailure, ProviderName, ProviderSettings};

/// `POST {base}/chat/completions`, streaming, key as a bearer token.
pub(super) fn chat_request(
    http: &reqwest::Client,
    provider: ProviderName,
    settings: &ProviderSettings,
    key: &ApiKey,
    request: &ChatRequest,
) -> reqwest::RequestBuilder {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.extend(
        request.messages.iter().map(|message| json!({"role": message.role.as_str(), "content": message.content})),
    );
    let limit_field = match provider.dialect() {
        Dialect::OpenAi => "max_completion_tokens",
        _ => "max_tokens",
    };
    let body = json!({
        "model": settings.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        limit_field: settings.max_tokens,
    });
    http.post(format!("{}/chat/completions", settings.base())).bearer_auth(key.expose()).json(&body)
}

/// `POST {base}/images/generations` for one image. `gpt-image-1` always answers with
/// base64; the DALL·E models are asked for base64 too, so no expiring URL is involved.
pub(crate) fn image_request(
    http: &reqwest::Client,
    settings: &ProviderSettings,
    model: &str,
    key: &ApiKey,
    prompt: &str,
) -> reqwest::RequestBuilder {
    let mut body = json!({"model": model, "prompt": prompt, "n": 1, "size": "1024x1024"});
    if model.starts_with("dall-e") {
        body["response_format"] = json!("b64_json");
    }
    http.post(format!("{}/images/generations", settings.base())).bearer_auth(key.expose()).json(&body)
}

/// One `data:` line: a chunk, `[DONE]`, or an error sent after the 200.
pub(super) fn parse_event(event: &Event) -> Result<Parsed, ProviderFailure> {
    if event.data.trim() == "[DONE]" {
        return Ok(Parsed::done());
    }
    // The usual chunk is read into the few fields hearth uses, skipping the rest, without
    // building a JSON tree (which cost a twentieth of the CPU of an assistant request). Any
    // other shape takes the general path below.
    if let Ok(chunk) = serde_json::from_str::<Chunk<'_>>(&event.data)
        && chunk.error.is_none()
    {
        let first = chunk.choices.first().and_then(|choice| choice.delta.as_ref());
        return Ok(Parsed::text(first.and_then(|delta| delta.content.as_deref()).unwrap_or_default()));
    }
    let chunk = event_json(event)?;
    if chunk.get("error").is_some_and(|error| !error.is_null()) {
        return Err(stream_error(&chunk));
    }
    let text = chunk.pointer("/choices/0/delta/content").and_then(Value::as_str).unwrap_or_default();
    Ok(Parsed::text(text))
}

/// A streamed chunk as hearth reads it: the first choice's text, and whether it is an error.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    /// Present (and not null) only when the stream broke after the 200.
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

/// An error inside a 200 stream: OpenAI names a `code` string, OpenRouter a numeric `code`.
fn stream_error(chunk: &Value) -> ProviderFailure {
    let code = chunk.pointer("/error/code");
    let status = match code {
        Some(Value::Number(number)) => number.as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or(500),
        Some(Value::String(code)) => status_of_error_code(code),
        _ => chunk.pointer("/error/type").and_then(Value::as_str).map_or(500, status_of_error_code),
    };
    // The provider name only matters for 402 with Retry-After, which a stream cannot carry.
    classify(ProviderName::OpenAi, status, false, chunk)
}

/// The classification table for the OpenAI-compatible providers.
pub(super) fn classify(provider: ProviderName, status: u16, has_retry_after: bool, body: &Value) -> ProviderFailure {
    let code = body.pointer("/error/code").and_then(Value::as_str).unwrap_or_default();
    let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or_default();
    let class = match status {
        401 | 403 => FailureClass::InvalidKey,
        // OpenRouter's 402 with a Retry-After is a temporary hold, not an empty account.
        402 if provider == ProviderName::OpenRouter && has_retry_after => FailureClass::RateLimited,
        402 => FailureClass::QuotaExceeded,
        404 => FailureClass::UnsupportedModel,
        408 | 504 => FailureClass::Timeout,
        429 if is_quota_code(code) => FailureClass::QuotaExceeded,
        429 if message.starts_with("Request too large") => FailureClass::BadRequest,
        429 | 498 | 529 => FailureClass::RateLimited,
        400..=499 if code == "invalid_api_key" => FailureClass::InvalidKey,
        400..=499 => FailureClass::BadRequest,
        _ => FailureClass::UpstreamError,
    };
    ProviderFailure::new(class)
}

fn is_quota_code(code: &str) -> bool {
    matches!(code, "insufficient_quota" | "credit_balance_exhausted") || code.ends_with("_spend_limit_exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> Event {
        Event { data: data.to_owned(), ..Event::default() }
    }

    #[test]
    fn chunks_carry_text_and_done_ends() {
        let chunk = r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi "},"finish_reason":null}]}"#;
        assert_eq!(parse_event(&event(chunk)), Ok(Parsed { text: Some("Hi ".into()), done: false }));
        let usage = r#"{"object":"chat.completion.chunk","choices":[],"usage":{"total_tokens":3}}"#;
        assert_eq!(parse_event(&event(usage)), Ok(Parsed::nothing()));
        assert_eq!(parse_event(&event("[DONE]")), Ok(Parsed::done()));
        assert_eq!(parse_event(&event("not json")).map_err(|f| f.class), Err(FailureClass::UpstreamError));
    }

    /// The chunk as read before the typed path: the first choice's text out of a JSON tree.
    fn read_from_a_tree(data: &str) -> Option<Parsed> {
        let chunk: Value = serde_json::from_str(data).ok()?;
        if chunk.get("error").is_some_and(|error| !error.is_null()) {
            return None;
        }
        Some(Parsed::text(chunk.pointer("/choices/0/delta/content").and_then(Value::as_str).unwrap_or_default()))
    }

    #[test]
    fn the_typed_path_reads_what_the_tree_did() {
        for data in [
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"line\nbreak, \"quoted\", caf\u00e9 \ud83d\ude00"}}]}"#,
            r#"{"choices":[{"delta":{"content":"first"}},{"delta":{"content":"second"}}]}"#,
            r#"{"choices":[{"delta":{}}],"error":null}"#,
            r#"{"choices":[{"delta":{"content":"text"}}],"error":null,"x_groq":{"id":"req_1"}}"#,
            r#"{"choices":[{"finish_reason":"stop"}],"usage":{"prompt_tokens":3}}"#,
            r#"{"choices":[{"delta":{"content":42}}]}"#,
            r#"{"choices":{"not":"a list"}}"#,
            r#"{}"#,
        ] {
            assert_eq!(parse_event(&event(data)).ok(), read_from_a_tree(data), "{data}");
        }
    }

    #[test]
    fn errors_after_the_200_are_classified() {
        let openai = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(parse_event(&event(openai)).map_err(|f| f.class), Err(FailureClass::RateLimited));
        let openrouter = r#"{"id":"x","object":"chat.completion.chunk","error":{"code":502,"message":"Provider returned error"},"choices":[{"delta":{"content":""},"finish_reason":"error"}]}"#;
        assert_eq!(parse_event(&event(openrouter)).map_err(|f| f.class), Err(FailureClass::UpstreamError));
        let quota = r#"{"error":{"message":"quota","code":"insufficient_quota"}}"#;
        assert_eq!(parse_event(&event(quota)).map_err(|f| f.class), Err(FailureClass::QuotaExceeded));
    }
}
