//! Gemini's native API: `generateContent`, `streamGenerateContent` (SSE with `alt=sse`, a
//! JSON array without it) and the model list.

use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Credentials, admit, read_json, recorded};
use crate::Provider;
use crate::body::{self, Ending};
use crate::failure::{Edge, Failure, bad_gateway_page};
use crate::record::KeySource;
use crate::reply::{Reply, count_tokens};

/// A `generateContent` request body (fields the fake does not use are ignored).
#[derive(Debug, Deserialize)]
struct GenerateRequest {
    #[serde(default)]
    contents: Vec<Content>,
    #[serde(default, rename = "systemInstruction")]
    system_instruction: Option<Content>,
}

/// One turn of a Gemini conversation.
#[derive(Debug, Deserialize)]
struct Content {
    /// `user` or `model`; a missing role counts as `user`, as it does for Gemini.
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    parts: Vec<Part>,
}

/// One part of a turn; parts without text (images, function calls) carry none.
#[derive(Debug, Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

impl Content {
    fn text(&self) -> String {
        self.parts.iter().filter_map(|p| p.text.as_deref()).collect()
    }
}

impl GenerateRequest {
    fn validated(self) -> Result<GenerateRequest, Failure> {
        if self.contents.is_empty() {
            return Err(Failure::invalid("* GenerateContentRequest.contents: contents is not specified\n"));
        }
        Ok(self)
    }

    /// The texts of the last `user` turn's parts, joined.
    fn last_user_text(&self) -> Option<String> {
        self.contents.iter().rev().find(|c| c.role.as_deref().is_none_or(|role| role == "user")).map(Content::text)
    }

    /// The system instruction (when there is one), then each turn as `(role, text)`.
    fn transcript(&self) -> Vec<(String, String)> {
        let system = self.system_instruction.as_ref().map(|s| ("system".to_owned(), s.text()));
        let turns = self.contents.iter().map(|c| (c.role.clone().unwrap_or_else(|| "user".to_owned()), c.text()));
        system.into_iter().chain(turns).collect()
    }

    fn prompt_tokens(&self) -> u64 {
        self.contents.iter().map(|c| count_tokens(&c.text())).sum()
    }
}

/// The value of query parameter `name`, if present (no percent-decoding: only `key` and
/// `alt` are read, and their values are compared or recorded as sent).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// The key from `x-goog-api-key`. A key in the URL is refused: it would reach logs.
fn goog_key(parts: &Parts) -> Credentials {
    if let Some(key) = query_param(parts.uri.query(), "key") {
        return Credentials {
            source: Some(KeySource::Query),
            received: Some(key.to_owned()),
            key: Err(Failure::invalid(
                "API keys are not accepted in the URL (`key` query parameter): send the key in the `x-goog-api-key` header.",
            )),
        };
    }
    match parts.headers.get("x-goog-api-key") {
        Some(value) => Credentials::found(KeySource::GoogApiKey, &String::from_utf8_lossy(value.as_bytes())),
        None => Credentials::missing(),
    }
}

/// # POST /gemini/v1beta/models/{model}:generateContent
/// # POST /gemini/v1beta/models/{model}:streamGenerateContent[?alt=sse]
pub(super) async fn generate(State(state): State<AppState>, Path(target): Path<String>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let credentials = goog_key(&parts);
    let (model, action) = target.rsplit_once(':').unwrap_or((&target, ""));
    let streaming = action == "streamGenerateContent";
    let generate = read_json::<GenerateRequest>(body).await.and_then(GenerateRequest::validated);
    if let Some(mut record) = recorded(&state, Provider::Gemini, &parts, &credentials) {
        record.model = Some(model.to_owned());
        record.stream = streaming;
        if let Ok(generate) = &generate {
            record.last_user_text = generate.last_user_text();
            record.messages = generate.transcript();
        }
        state.recorder.push(record);
    }
    if !streaming && action != "generateContent" {
        return failure(&Failure::ModelNotFound, model);
    }

    let refuse = |f: &Failure| failure(f, model);
    let ending = match admit(&credentials, streaming, refuse).await {
        Ok(ending) => ending,
        Err(response) => return response,
    };
    let generate = match generate {
        Ok(generate) => generate,
        Err(f) => return failure(&f, model),
    };

    let reply = Reply::to(Provider::Gemini, &generate.last_user_text().unwrap_or_default());
    let prompt_tokens = generate.prompt_tokens();
    let candidates_tokens = reply.tokens();
    let response_id = format!("fake{:012x}", state.next_id());
    let element = |parts: Value, finished: bool| {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        let usage = if finished {
            candidate["finishReason"] = json!("STOP");
            json!({
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": candidates_tokens,
                "totalTokenCount": prompt_tokens + candidates_tokens,
            })
        } else {
            json!({"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens})
        };
        json!({
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": response_id,
        })
    };

    if !streaming {
        let whole = element(json!([{"text": reply.text}]), true);
        return match ending {
            Ending::Truncated => body::cut_json(&whole),
            _ => body::json(StatusCode::OK, &whole),
        };
    }

    let sse = query_param(parts.uri.query(), "alt") == Some("sse");
    let deltas: Vec<&str> = reply.deltas().collect();
    let last = deltas.len() - 1;
    let mut elements: Vec<Value> = deltas
        .iter()
        .enumerate()
        .map(|(i, delta)| {
            let text = json!({"text": delta});
            // Real Gemini opens with a part that holds only a thought signature.
            let parts = if i == 0 { json!([{"thoughtSignature": thought_signature()}, text]) } else { json!([text]) };
            element(parts, i == last)
        })
        .collect();
    let chunks = match ending {
        Ending::Complete => frame(&elements, sse, true),
        Ending::Truncated => body::cut_after(frame(&elements, sse, false), 2),
        Ending::ErrorBeforeDelta => frame(&[stream_error()], sse, true),
        Ending::ErrorAfterDelta => {
            elements.truncate(2);
            elements.push(stream_error());
            frame(&elements, sse, true)
        }
    };
    let content_type = if sse { "text/event-stream" } else { "application/json" };
    body::streamed(content_type, chunks)
}

/// A fixed, plausible thought signature (opaque base64 for clients).
fn thought_signature() -> String {
    STANDARD.encode(b"hearth-fake-provider thought signature")
}

/// The error a Gemini stream carries after its 200 status.
fn stream_error() -> Value {
    json!({"error": {
        "code": 503,
        "message": "The model is overloaded. Please try again later.",
        "status": "UNAVAILABLE",
    }})
}

/// Frames stream elements as server-sent events (`data: …` with CRLF line ends, as Gemini
/// sends them) or as the pieces of one JSON array; `closed` adds the array's `]`.
fn frame(elements: &[Value], sse: bool, closed: bool) -> Vec<Bytes> {
    let mut chunks: Vec<Bytes> = elements
        .iter()
        .enumerate()
        .map(|(i, element)| {
            let text = match (sse, i) {
                (true, _) => format!("data: {element}\r\n\r\n"),
                (false, 0) => format!("[{element}"),
                (false, _) => format!(",\r\n{element}"),
            };
            Bytes::from(text)
        })
        .collect();
    if !sse && closed {
        chunks.push(Bytes::from_static(b"]"));
    }
    chunks
}

/// # GET /gemini/v1beta/models
pub(super) async fn models(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let credentials = goog_key(&parts);
    if let Some(record) = recorded(&state, Provider::Gemini, &parts, &credentials) {
        state.recorder.push(record);
    }
    let refuse = |f: &Failure| failure(f, "unknown");
    let ending = match admit(&credentials, false, refuse).await {
        Ok(ending) => ending,
        Err(response) => return response,
    };
    let model = |id: &str, name: &str| {
        json!({
            "name": format!("models/{id}"),
            "version": "001",
            "displayName": name,
            "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 65_536,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        })
    };
    let list = json!({"models": [
        model("gemini-2.5-flash", "Gemini 2.5 Flash"),
        model("gemini-2.5-pro", "Gemini 2.5 Pro"),
    ]});
    match ending {
        Ending::Truncated => body::cut_json(&list),
        _ => body::json(StatusCode::OK, &list),
    }
}

/// A failure in Gemini's shape: `{"error":{"code","message","status","details"?}}`.
fn failure(failure: &Failure, model: &str) -> Response {
    if *failure == Failure::BadGateway {
        return bad_gateway_page(Edge::Google);
    }
    let quota_failure = |quota_id: &str| {
        json!({
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": "10",
            }],
        })
    };
    let help = json!({
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }],
    });
    let exceeded = "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.";
    let (code, status, message, details): (u16, &str, String, Option<Value>) = match failure {
        Failure::MissingKey => (
            401,
            "UNAUTHENTICATED",
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.".into(),
            None,
        ),
        Failure::InvalidKey => (
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.".into(),
            Some(json!([
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                },
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": "API key not valid. Please pass a valid API key.",
                },
            ])),
        ),
        Failure::PermissionDenied => (
            403,
            "PERMISSION_DENIED",
            "Your API key was reported as leaked. Please use another API key.".into(),
            None,
        ),
        Failure::Quota => (
            429,
            "RESOURCE_EXHAUSTED",
            exceeded.into(),
            Some(json!([
                quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
                help,
            ])),
        ),
        Failure::RateLimited => (
            429,
            "RESOURCE_EXHAUSTED",
            exceeded.into(),
            Some(json!([
                quota_failure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
                help,
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"},
            ])),
        ),
        Failure::Overloaded => (
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.".into(),
            None,
        ),
        Failure::ModelNotFound => (
            404,
            "NOT_FOUND",
            format!("models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."),
            None,
        ),
        Failure::ServerError | Failure::BadGateway => (
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting".into(),
            None,
        ),
        Failure::TimeoutStatus => (
            504,
            "DEADLINE_EXCEEDED",
            "Deadline expired before operation could complete.".into(),
            None,
        ),
        Failure::TooLarge => (
            400,
            "INVALID_ARGUMENT",
            "The input token count exceeds the maximum number of tokens allowed (1048576).".into(),
            None,
        ),
        Failure::BadRequest => (
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received. Unknown name \"bogus_field\": Cannot find field.".into(),
            Some(json!([{
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{
                    "description": "Invalid JSON payload received. Unknown name \"bogus_field\": Cannot find field.",
                }],
            }])),
        ),
        Failure::Invalid { message, .. } => (400, "INVALID_ARGUMENT", message.clone(), None),
    };
    let mut error = json!({"code": code, "message": message, "status": status});
    if let Some(details) = details {
        error["details"] = details;
    }
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = body::json(code, &json!({"error": error}));
    if *failure == Failure::RateLimited {
        response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_by_name() {
        assert_eq!(query_param(Some("alt=sse&key=abc"), "key"), Some("abc"));
        assert_eq!(query_param(Some("alt=sse"), "key"), None);
        assert_eq!(query_param(Some("key"), "key"), Some(""));
        assert_eq!(query_param(Some("monkey=1"), "key"), None);
        assert_eq!(query_param(None, "alt"), None);
    }
}
