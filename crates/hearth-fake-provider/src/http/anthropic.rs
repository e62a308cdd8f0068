//! Anthropic's Messages API and its model list.

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Credentials, admit, read_json, recorded, text_of};
use crate::Provider;
use crate::body::{self, Ending};
use crate::failure::{Edge, Failure, bad_gateway_page};
use crate::record::KeySource;
use crate::reply::{Reply, count_tokens};

/// A Messages request body (fields the fake does not use are ignored).
#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    max_tokens: Option<u64>,
    #[serde(default)]
    system: Value,
    messages: Vec<Message>,
    #[serde(default)]
    stream: Option<bool>,
}

/// One message: `content` is a string or an array of content blocks.
#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Value,
}

impl MessagesRequest {
    fn validated(self) -> Result<MessagesRequest, Failure> {
        if self.max_tokens.is_none() {
            return Err(Failure::invalid("max_tokens: Field required"));
        }
        if self.messages.is_empty() {
            return Err(Failure::invalid("messages: at least one message is required"));
        }
        Ok(self)
    }

    fn streaming(&self) -> bool {
        self.stream == Some(true)
    }

    fn last_user_text(&self) -> Option<String> {
        self.messages.iter().rev().find(|m| m.role == "user").map(|m| text_of(&m.content))
    }

    /// The system text (when there is one), then each message as `(role, text)`.
    fn transcript(&self) -> Vec<(String, String)> {
        let system = text_of(&self.system);
        let system = (!system.is_empty()).then(|| ("system".to_owned(), system));
        system.into_iter().chain(self.messages.iter().map(|m| (m.role.clone(), text_of(&m.content)))).collect()
    }

    fn input_tokens(&self) -> u64 {
        let messages: u64 = self.messages.iter().map(|m| count_tokens(&text_of(&m.content))).sum();
        messages + count_tokens(&text_of(&self.system))
    }
}

/// The key from `x-api-key`; a request with a key but no `anthropic-version` is refused.
fn api_key(parts: &Parts) -> (Credentials, Option<String>) {
    let version = parts.headers.get("anthropic-version").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut credentials = match parts.headers.get("x-api-key") {
        Some(value) => Credentials::found(KeySource::XApiKey, &String::from_utf8_lossy(value.as_bytes())),
        None => Credentials::missing(),
    };
    if credentials.key.is_ok() && version.is_none() {
        credentials.key = Err(Failure::invalid("anthropic-version: header is required"));
    }
    (credentials, version)
}

/// # POST /anthropic/v1/messages
pub(super) async fn messages(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (credentials, version) = api_key(&parts);
    let messages = read_json::<MessagesRequest>(body).await.and_then(MessagesRequest::validated);
    let request_id = format!("req_fake{:016x}", state.next_id());
    if let Some(mut record) = recorded(&state, Provider::Anthropic, &parts, &credentials) {
        record.anthropic_version = version;
        if let Ok(messages) = &messages {
            record.model = Some(messages.model.clone());
            record.stream = messages.streaming();
            record.last_user_text = messages.last_user_text();
            record.messages = messages.transcript();
        }
        state.recorder.push(record);
    }

    let model = messages.as_ref().map_or_else(|_| "unknown".to_owned(), |m| m.model.clone());
    let refuse = |f: &Failure| failure(f, &model, &request_id);
    let streaming = messages.as_ref().is_ok_and(MessagesRequest::streaming);
    let ending = match admit(&credentials, streaming, refuse).await {
        Ok(ending) => ending,
        Err(response) => return response,
    };
    let messages = match messages {
        Ok(messages) => messages,
        Err(f) => return failure(&f, &model, &request_id),
    };

    let reply = Reply::to(Provider::Anthropic, &messages.last_user_text().unwrap_or_default());
    let input_tokens = messages.input_tokens();
    let output_tokens = reply.tokens();
    let id = format!("msg_fake{:016x}", state.next_id());

    if !streaming {
        let message = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": messages.model,
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        });
        let mut response = match ending {
            Ending::Truncated => body::cut_json(&message),
            _ => body::json(StatusCode::OK, &message),
        };
        set_request_id(&mut response, &request_id);
        return response;
    }

    let mut events = Vec::new();
    if ending == Ending::ErrorBeforeDelta {
        events.push(stream_error());
    } else {
        events.push(body::sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": messages.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            }}),
        ));
        events.push(body::sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ));
        events.push(body::sse_event("ping", &json!({"type": "ping"})));
        let before_deltas = events.len();
        for delta in reply.deltas() {
            events.push(body::sse_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": delta}}),
            ));
        }
        match ending {
            Ending::Truncated => events = body::cut_after(events, before_deltas + 2),
            Ending::ErrorAfterDelta | Ending::ErrorBeforeDelta => {
                events.truncate(before_deltas + 2);
                events.push(stream_error());
            }
            Ending::Complete => {
                events.push(body::sse_event("content_block_stop", &json!({"type": "content_block_stop", "index": 0})));
                events.push(body::sse_event(
                    "message_delta",
                    &json!({"type": "message_delta",
                            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                            "usage": {"output_tokens": output_tokens}}),
                ));
                events.push(body::sse_event("message_stop", &json!({"type": "message_stop"})));
            }
        }
    }
    let mut response = body::streamed("text/event-stream", events);
    set_request_id(&mut response, &request_id);
    response
}

/// The `event: error` a stream carries after its 200 status.
fn stream_error() -> bytes::Bytes {
    body::sse_event("error", &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
}

/// # GET /anthropic/v1/models
pub(super) async fn models(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let (credentials, version) = api_key(&parts);
    if let Some(mut record) = recorded(&state, Provider::Anthropic, &parts, &credentials) {
        record.anthropic_version = version;
        state.recorder.push(record);
    }
    let request_id = format!("req_fake{:016x}", state.next_id());
    let refuse = |f: &Failure| failure(f, "unknown", &request_id);
    let ending = match admit(&credentials, false, refuse).await {
        Ok(ending) => ending,
        Err(response) => return response,
    };
    let model = |id: &str, name: &str, created: &str| json!({"type": "model", "id": id, "display_name": name, "created_at": created});
    let list = json!({
        "data": [
            model("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
            model("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
        ],
        "has_more": false,
        "first_id": "claude-sonnet-4-5-20250929",
        "last_id": "claude-haiku-4-5-20251001",
    });
    match ending {
        Ending::Truncated => body::cut_json(&list),
        _ => body::json(StatusCode::OK, &list),
    }
}

/// A failure in Anthropic's shape: `{"type":"error","error":{"type","message"},"request_id"}`.
fn failure(failure: &Failure, model: &str, request_id: &str) -> Response {
    if *failure == Failure::BadGateway {
        return bad_gateway_page(Edge::Cloudflare);
    }
    let (status, kind, message): (u16, &str, String) = match failure {
        Failure::MissingKey => (401, "authentication_error", "x-api-key header is required".into()),
        Failure::InvalidKey => (401, "authentication_error", "invalid x-api-key".into()),
        Failure::PermissionDenied => (
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.".into(),
        ),
        Failure::Quota => (
            402,
            "billing_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.".into(),
        ),
        Failure::RateLimited => (
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.".into(),
        ),
        Failure::Overloaded => (529, "overloaded_error", "Overloaded".into()),
        Failure::ModelNotFound => (404, "not_found_error", format!("model: {model}")),
        Failure::ServerError | Failure::BadGateway => (500, "api_error", "Internal server error".into()),
        Failure::TimeoutStatus => (504, "timeout_error", "Request timed out".into()),
        Failure::TooLarge => (
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.".into(),
        ),
        Failure::BadRequest => (
            400,
            "invalid_request_error",
            "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"user\" roles in a row".into(),
        ),
        Failure::Invalid { message, .. } => (400, "invalid_request_error", message.clone()),
    };
    let error = json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": request_id,
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = body::json(status, &error);
    set_request_id(&mut response, request_id);
    if *failure == Failure::RateLimited {
        let headers = response.headers_mut();
        let pairs = [
            ("retry-after", "1"),
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:01Z"),
        ];
        for (name, value) in pairs {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// Anthropic names every response with a `request-id` header.
fn set_request_id(response: &mut Response, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("request-id", value);
    }
}
