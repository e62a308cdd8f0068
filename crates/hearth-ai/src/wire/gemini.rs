//! Gemini's native API: `streamGenerateContent?alt=sse`, key in `x-goog-api-key`.

use std::time::Duration;

use eventsource_stream::Event;
use serde_json::{Value, json};

use super::{Parsed, event_json};
use crate::{ApiKey, ChatRequest, FailureClass, ProviderFailure, ProviderSettings, Role};

/// The streaming request. The key travels in its header, never in the URL, where it would
/// reach access logs.
pub(super) fn chat_request(
    http: &reqwest::Client,
    settings: &ProviderSettings,
    key: &ApiKey,
    request: &ChatRequest,
) -> reqwest::RequestBuilder {
    let contents: Vec<Value> = request
        .messages
        .iter()
        .map(|message| {
            let role = match message.role {
                Role::User => "user",
                Role::Assistant => "model",
            };
            json!({"role": role, "parts": [{"text": message.content}]})
        })
        .collect();
    let mut body = json!({
        "contents": contents,
        "generationConfig": {"maxOutputTokens": settings.max_tokens},
    });
    if let Some(system) = &request.system {
        body["systemInstruction"] = json!({"parts": [{"text": system}]});
    }
    http.post(format!("{}/v1beta/models/{}:streamGenerateContent?alt=sse", settings.base(), settings.model))
        .header("x-goog-api-key", key.expose())
        .json(&body)
}

/// One `GenerateContentResponse`. Parts without text (a `thoughtSignature`) add nothing; a
/// `finishReason` ends the reply.
pub(super) fn parse_event(event: &Event) -> Result<Parsed, ProviderFailure> {
    let chunk = event_json(event)?;
    if let Some(error) = chunk.get("error") {
        let status = error.get("code").and_then(Value::as_u64).and_then(|code| u16::try_from(code).ok());
        let status = status
            .or_else(|| error.get("status").and_then(Value::as_str).map(super::status_of_error_code))
            .unwrap_or(500);
        return Err(classify(status, &chunk));
    }
    if chunk.pointer("/promptFeedback/blockReason").is_some() {
        return Err(ProviderFailure::new(FailureClass::BadRequest));
    }
    let candidate = chunk.pointer("/candidates/0");
    let text: String = candidate
        .and_then(|candidate| candidate.pointer("/content/parts"))
        .and_then(Value::as_array)
        .map(|parts| parts.iter().filter_map(|part| part.get("text").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    let done = candidate.and_then(|candidate| candidate.get("finishReason")).is_some_and(|reason| !reason.is_null());
    Ok(Parsed { text: (!text.is_empty()).then_some(text), done })
}

/// The classification table for Gemini: the status first, then `details` for the reason
/// (`API_KEY_INVALID`) and the quota that was hit (per day or per minute).
pub(super) fn classify(status: u16, body: &Value) -> ProviderFailure {
    let details = body.pointer("/error/details").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let reasons = details.iter().filter_map(|detail| detail.get("reason").and_then(Value::as_str));
    let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or_default();
    let quota_ids: Vec<&str> = details
        .iter()
        .filter_map(|detail| detail.get("violations").and_then(Value::as_array))
        .flatten()
        .filter_map(|violation| violation.get("quotaId").and_then(Value::as_str))
        .collect();
    let class = match status {
        400 if reasons.clone().any(|reason| reason == "API_KEY_INVALID")
            || message.starts_with("API key not valid") =>
        {
            FailureClass::InvalidKey
        }
        401 | 403 => FailureClass::InvalidKey,
        404 => FailureClass::UnsupportedModel,
        408 | 504 => FailureClass::Timeout,
        429 if quota_ids.iter().any(|id| id.contains("PerDay")) => FailureClass::QuotaExceeded,
        429 => FailureClass::RateLimited,
        400..=499 => FailureClass::BadRequest,
        _ => FailureClass::UpstreamError,
    };
    let retry_after = details
        .iter()
        .filter_map(|detail| detail.get("retryDelay").and_then(Value::as_str))
        .find_map(|delay| delay.strip_suffix('s')?.parse::<f64>().ok())
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
    ProviderFailure { retry_after, ..ProviderFailure::new(class) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> Event {
        Event { data: data.to_owned(), ..Event::default() }
    }

    #[test]
    fn parts_without_text_add_nothing_and_finish_reason_ends() {
        let thought = r#"{"candidates":[{"content":{"role":"model","parts":[{"thoughtSignature":"abc"}]}}]}"#;
        assert_eq!(parse_event(&event(thought)), Ok(Parsed::nothing()));
        let text = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hello "},{"text":"there"}]}}]}"#;
        assert_eq!(parse_event(&event(text)), Ok(Parsed::text("Hello there")));
        let last = r#"{"candidates":[{"content":{"parts":[{"text":"!"}]},"finishReason":"STOP"}],"usageMetadata":{"totalTokenCount":9}}"#;
        assert_eq!(parse_event(&event(last)), Ok(Parsed { text: Some("!".into()), done: true }));
    }

    #[test]
    fn errors_in_the_stream_and_blocked_prompts_fail() {
        let error = r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#;
        assert_eq!(parse_event(&event(error)).map_err(|f| f.class), Err(FailureClass::UpstreamError));
        let blocked = r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#;
        assert_eq!(parse_event(&event(blocked)).map_err(|f| f.class), Err(FailureClass::BadRequest));
    }
}
