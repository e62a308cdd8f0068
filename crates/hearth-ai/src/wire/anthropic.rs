//! Anthropic's Messages API: `x-api-key`, `anthropic-version`, typed stream events.

use eventsource_stream::Event;
use serde_json::{Value, json};

use super::{Parsed, event_json, status_of_error_code};
use crate::{ApiKey, ChatRequest, FailureClass, ProviderFailure, ProviderSettings};

/// The API version hearth speaks.
const VERSION: &str = "2023-06-01";

/// The streaming request. `max_tokens` is required by this API.
pub(super) fn chat_request(
    http: &reqwest::Client,
    settings: &ProviderSettings,
    key: &ApiKey,
    request: &ChatRequest,
) -> reqwest::RequestBuilder {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|message| json!({"role": message.role.as_str(), "content": message.content}))
        .collect();
    let mut body = json!({
        "model": settings.model,
        "max_tokens": settings.max_tokens,
        "messages": messages,
        "stream": true,
    });
    if let Some(system) = &request.system {
        body["system"] = json!(system);
    }
    http.post(format!("{}/v1/messages", settings.base()))
        .header("x-api-key", key.expose())
        .header("anthropic-version", VERSION)
        .json(&body)
}

/// One typed event: text arrives in `content_block_delta`, `message_stop` ends, `error`
/// fails; `ping` and the rest carry nothing for us.
pub(super) fn parse_event(event: &Event) -> Result<Parsed, ProviderFailure> {
    match event.event.as_str() {
        "ping" | "message_start" | "content_block_start" | "content_block_stop" | "message_delta" => {
            Ok(Parsed::nothing())
        }
        "message_stop" => Ok(Parsed::done()),
        _ => {
            let data = event_json(event)?;
            match data.get("type").and_then(Value::as_str) {
                Some("content_block_delta") => {
                    // Only text deltas are reply text (tool input and thinking deltas are not).
                    let text = match data.pointer("/delta/type").and_then(Value::as_str) {
                        Some("text_delta") => data.pointer("/delta/text").and_then(Value::as_str).unwrap_or_default(),
                        _ => "",
                    };
                    Ok(Parsed::text(text))
                }
                Some("message_stop") => Ok(Parsed::done()),
                Some("error") => {
                    let kind = data.pointer("/error/type").and_then(Value::as_str).unwrap_or_default();
                    Err(ProviderFailure::new(classify(status_of_error_code(kind))))
                }
                _ => Ok(Parsed::nothing()),
            }
        }
    }
}

/// The classification table for Anthropic: the status says it all.
pub(super) fn classify(status: u16) -> FailureClass {
    match status {
        401 | 403 => FailureClass::InvalidKey,
        402 => FailureClass::QuotaExceeded,
        404 => FailureClass::UnsupportedModel,
        408 | 504 => FailureClass::Timeout,
        429 | 529 => FailureClass::RateLimited,
        400..=499 => FailureClass::BadRequest,
        _ => FailureClass::UpstreamError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: &str) -> Event {
        Event { event: kind.to_owned(), data: data.to_owned(), ..Event::default() }
    }

    #[test]
    fn text_deltas_stream_and_message_stop_ends() {
        let delta = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
        assert_eq!(parse_event(&event("content_block_delta", delta)), Ok(Parsed::text("Hi")));
        let json_delta =
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{"}}"#;
        assert_eq!(parse_event(&event("content_block_delta", json_delta)), Ok(Parsed::nothing()));
        assert_eq!(parse_event(&event("ping", r#"{"type":"ping"}"#)), Ok(Parsed::nothing()));
        assert_eq!(parse_event(&event("message_stop", r#"{"type":"message_stop"}"#)), Ok(Parsed::done()));
    }

    #[test]
    fn error_events_are_classified() {
        let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(parse_event(&event("error", overloaded)).map_err(|f| f.class), Err(FailureClass::RateLimited));
        let api = r#"{"type":"error","error":{"type":"api_error","message":"Internal"}}"#;
        assert_eq!(parse_event(&event("error", api)).map_err(|f| f.class), Err(FailureClass::UpstreamError));
    }
}
