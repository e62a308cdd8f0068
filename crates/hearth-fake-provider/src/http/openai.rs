//! The OpenAI chat-completions dialect, spoken by OpenAI, Groq, Cerebras and OpenRouter.
//!
//! OpenRouter differs in its error shape (`{"error":{"code":<number>,"message"}}`) and in the
//! keep-alive comment that starts its streams.

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Credentials, admit, read_json, recorded, text_of, unix_seconds};
use crate::Provider;
use crate::body::{self, Ending};
use crate::failure::{Edge, Failure, bad_gateway_page};
use crate::record::KeySource;
use crate::reply::{Reply, count_tokens};

/// The comment line OpenRouter sends first while the upstream model is still working.
const OPENROUTER_KEEP_ALIVE: &str = ": OPENROUTER PROCESSING\n\n";

/// A chat-completions request body (fields the fake does not use are ignored).
#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

/// One message of a chat-completions request.
#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    /// A string, or an array of `{type, text}` parts, or null.
    #[serde(default)]
    content: Value,
}

/// `stream_options` of a chat-completions request.
#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

impl ChatRequest {
    /// Refuses requests a real API would refuse for their shape.
    fn validated(self) -> Result<ChatRequest, Failure> {
        if self.messages.is_empty() {
            return Err(Failure::invalid_field(
                "messages",
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            ));
        }
        Ok(self)
    }

    fn streaming(&self) -> bool {
        self.stream == Some(true)
    }

    fn include_usage(&self) -> bool {
        self.stream_options.as_ref().is_some_and(|o| o.include_usage)
    }

    /// The text of the last message with role `user`.
    fn last_user_text(&self) -> Option<String> {
        self.messages.iter().rev().find(|m| m.role == "user").map(|m| text_of(&m.content))
    }

    fn prompt_tokens(&self) -> u64 {
        self.messages.iter().map(|m| count_tokens(&text_of(&m.content))).sum()
    }
}

/// The key from `Authorization: Bearer KEY` (also used by image generations).
pub(super) fn bearer(parts: &Parts) -> Credentials {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Credentials::missing();
    };
    let value = String::from_utf8_lossy(value.as_bytes());
    match value.strip_prefix("Bearer ") {
        Some(key) => Credentials::found(KeySource::Authorization, key.trim()),
        None => Credentials {
            source: Some(KeySource::Authorization),
            received: Some(value.into_owned()),
            key: Err(Failure::MissingKey),
        },
    }
}

/// # POST {base}/chat/completions
pub(super) async fn chat(provider: Provider, state: AppState, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let credentials = bearer(&parts);
    let chat = read_json::<ChatRequest>(body).await.and_then(ChatRequest::validated);
    if let Some(mut record) = recorded(&state, provider, &parts, &credentials) {
        if let Ok(chat) = &chat {
            record.model = Some(chat.model.clone());
            record.stream = chat.streaming();
            record.last_user_text = chat.last_user_text();
            record.messages = chat.messages.iter().map(|m| (m.role.clone(), text_of(&m.content))).collect();
        }
        state.recorder.push(record);
    }

    let model = chat.as_ref().map_or_else(|_| "unknown".to_owned(), |c| c.model.clone());
    let refuse = |f: &Failure| failure(provider, f, &model);
    let streaming = chat.as_ref().is_ok_and(ChatRequest::streaming);
    let ending = match admit(&credentials, streaming, refuse).await {
        Ok(ending) => ending,
        Err(response) => return response,
    };
    let chat = match chat {
        Ok(chat) => chat,
        Err(f) => return failure(provider, &f, &model),
    };

    let reply = Reply::to(provider, &chat.last_user_text().unwrap_or_default());
    let prompt_tokens = chat.prompt_tokens();
    let completion_tokens = reply.tokens();
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let id = match provider {
        Provider::OpenRouter => format!("gen-fake{:012x}", state.next_id()),
        _ => format!("chatcmpl-fake{:012x}", state.next_id()),
    };
    let created = unix_seconds();

    if !streaming {
        let completion = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": chat.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": usage,
        });
        return match ending {
            Ending::Truncated => body::cut_json(&completion),
            _ => body::json(StatusCode::OK, &completion),
        };
    }

    let include_usage = chat.include_usage();
    let chunk = |delta: Value, finish_reason: Value| {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": chat.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        body::sse_data(&chunk)
    };

    let mut events = Vec::new();
    if provider == Provider::OpenRouter {
        events.push(Bytes::from_static(OPENROUTER_KEEP_ALIVE.as_bytes()));
    }
    if ending == Ending::ErrorBeforeDelta {
        events.push(body::sse_data(&stream_error(provider)));
        return body::streamed("text/event-stream", events);
    }
    events.push(chunk(json!({"role": "assistant", "content": ""}), Value::Null));
    // Everything before the first delta, so cut-offs land after exactly two deltas.
    let before_deltas = events.len();
    for delta in reply.deltas() {
        events.push(chunk(json!({"content": delta}), Value::Null));
    }
    match ending {
        Ending::Complete => {}
        Ending::Truncated => {
            let events = body::cut_after(events, before_deltas + 2);
            return body::streamed("text/event-stream", events);
        }
        Ending::ErrorAfterDelta | Ending::ErrorBeforeDelta => {
            events.truncate(before_deltas + 2);
            events.push(body::sse_data(&stream_error(provider)));
            return body::streamed("text/event-stream", events);
        }
    }
    events.push(chunk(json!({}), json!("stop")));
    if include_usage {
        events.push(body::sse_data(&json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": chat.model,
            "choices": [],
            "usage": usage,
        })));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    body::streamed("text/event-stream", events)
}

/// The error event a stream carries after its 200 status.
fn stream_error(provider: Provider) -> Value {
    match provider {
        Provider::OpenRouter => json!({
            "error": {"code": 502, "message": "Provider returned error: upstream stream failed"}
        }),
        _ => json!({
            "error": {
                "message": "The server had an error while processing your request. Sorry about that!",
                "type": "server_error",
                "param": null,
                "code": null,
            }
        }),
    }
}

/// # GET {base}/models
pub(super) async fn models(provider: Provider, state: AppState, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let credentials = bearer(&parts);
    if let Some(record) = recorded(&state, provider, &parts, &credentials) {
        state.recorder.push(record);
    }
    let refuse = |f: &Failure| failure(provider, f, "unknown");
    let ending = match admit(&credentials, false, refuse).await {
        Ok(ending) => ending,
        Err(response) => return response,
    };
    let list = model_list(provider);
    match ending {
        Ending::Truncated => body::cut_json(&list),
        _ => body::json(StatusCode::OK, &list),
    }
}

/// The model list each provider answers with.
fn model_list(provider: Provider) -> Value {
    let created = 1_715_367_049;
    let entry = |id: &str, owner: &str| json!({"id": id, "object": "model", "created": created, "owned_by": owner});
    match provider {
        Provider::OpenRouter => json!({
            "data": [
                {
                    "id": "openai/gpt-4o-mini",
                    "name": "OpenAI: GPT-4o-mini",
                    "created": created,
                    "context_length": 128_000,
                    "pricing": {"prompt": "0.00000015", "completion": "0.0000006"},
                },
                {
                    "id": "meta-llama/llama-3.3-70b-instruct:free",
                    "name": "Meta: Llama 3.3 70B Instruct (free)",
                    "created": created,
                    "context_length": 131_072,
                    "pricing": {"prompt": "0", "completion": "0"},
                },
            ]
        }),
        Provider::Groq => json!({
            "object": "list",
            "data": [
                entry("llama-3.3-70b-versatile", "Meta"),
                entry("openai/gpt-oss-120b", "OpenAI"),
            ],
        }),
        Provider::Cerebras => json!({
            "object": "list",
            "data": [entry("llama3.1-8b", "Meta"), entry("gpt-oss-120b", "OpenAI")],
        }),
        _ => json!({
            "object": "list",
            "data": [
                entry("gpt-4o-mini", "system"),
                entry("gpt-4.1", "system"),
                entry("gpt-image-1", "system"),
                entry("dall-e-3", "system"),
            ],
        }),
    }
}

/// A failure in the dialect of `provider` (OpenAI's error object, or OpenRouter's).
pub(super) fn failure(provider: Provider, failure: &Failure, model: &str) -> Response {
    if provider == Provider::OpenRouter {
        return openrouter_failure(failure, model);
    }
    if *failure == Failure::BadGateway {
        return bad_gateway_page(Edge::Cloudflare);
    }
    let invalid_request = "invalid_request_error";
    let (status, message, kind, param, code): (u16, String, &str, Option<&str>, Option<&str>) =
        match failure {
            Failure::MissingKey => (
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".into(),
                invalid_request,
                None,
                None,
            ),
            Failure::InvalidKey => (
                401,
                match provider {
                    Provider::Groq => "Invalid API Key".into(),
                    Provider::Cerebras => "Wrong API Key".into(),
                    _ => "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.".into(),
                },
                invalid_request,
                None,
                Some("invalid_api_key"),
            ),
            Failure::PermissionDenied => (
                403,
                "You are not allowed to access this resource with this API key.".into(),
                "permission_denied",
                None,
                Some("permission_denied"),
            ),
            Failure::Quota if provider == Provider::Cerebras => (
                402,
                "Payment required: this organization has no credits left.".into(),
                "payment_required",
                None,
                Some("payment_required"),
            ),
            Failure::Quota => (
                429,
                "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.".into(),
                "insufficient_quota",
                None,
                Some("insufficient_quota"),
            ),
            Failure::RateLimited => (
                429,
                format!("Rate limit reached for {model} in organization org-fake on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 1s."),
                "requests",
                None,
                Some("rate_limit_exceeded"),
            ),
            Failure::Overloaded if provider == Provider::Groq => (
                498,
                "Flex tier capacity exceeded. This is a transient error, please try again later.".into(),
                "capacity_exceeded",
                None,
                Some("capacity_exceeded"),
            ),
            Failure::Overloaded => (
                503,
                "That model is currently overloaded with other requests. You can retry your request, or contact us if the error persists.".into(),
                "server_error",
                None,
                None,
            ),
            Failure::ModelNotFound => (
                404,
                format!("The model `{model}` does not exist or you do not have access to it."),
                invalid_request,
                None,
                Some("model_not_found"),
            ),
            Failure::ServerError | Failure::BadGateway => (
                500,
                "The server had an error while processing your request. Sorry about that!".into(),
                "server_error",
                None,
                None,
            ),
            Failure::TimeoutStatus => (
                504,
                "Gateway timeout: the model did not answer in time.".into(),
                "server_error",
                None,
                Some("timeout"),
            ),
            Failure::TooLarge => (
                429,
                format!("Request too large for {model} in organization org-fake on tokens per min (TPM): Limit 30000, Requested 181000. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more."),
                "tokens",
                None,
                Some("rate_limit_exceeded"),
            ),
            Failure::BadRequest => (
                400,
                "Invalid 'messages[0].content': string too long. Expected a string with maximum length 10485760, but got a string with length 10485761 instead.".into(),
                invalid_request,
                Some("messages[0].content"),
                Some("string_above_max_length"),
            ),
            Failure::Invalid { message, param } => {
                (400, message.clone(), invalid_request, *param, None)
            }
        };
    let error = json!({
        "error": {"message": message, "type": kind, "param": param, "code": code}
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = body::json(status, &error);
    if *failure == Failure::RateLimited {
        rate_limit_headers(response.headers_mut());
    }
    response
}

/// OpenRouter's error shape: `{"error":{"code":<number>,"message","metadata"?}}`.
fn openrouter_failure(failure: &Failure, model: &str) -> Response {
    let (status, message, metadata): (u16, String, Option<Value>) = match failure {
        Failure::MissingKey => (401, "No auth credentials found".into(), None),
        Failure::InvalidKey => (401, "User not found.".into(), None),
        Failure::PermissionDenied => (403, "This API key has been disabled.".into(), None),
        Failure::Quota => (
            402,
            "Insufficient credits. This account never purchased credits. Make sure your key is on the correct account or org, and if so, purchase more at https://openrouter.ai/settings/credits".into(),
            None,
        ),
        Failure::RateLimited => (
            429,
            format!("Rate limit exceeded: limit_rpm/{model}. High demand for this model, please retry shortly."),
            None,
        ),
        Failure::Overloaded => (
            503,
            "No instances available: all providers for this model are overloaded.".into(),
            None,
        ),
        Failure::ModelNotFound => (404, format!("No endpoints found for {model}."), None),
        Failure::ServerError => (500, "Internal Server Error".into(), None),
        Failure::BadGateway => (
            502,
            "Provider returned error".into(),
            Some(json!({"provider_name": "OpenAI", "raw": "upstream connect error"})),
        ),
        Failure::TimeoutStatus => (408, "Request timed out before the model answered.".into(), None),
        Failure::TooLarge => {
            let raw = json!({"error": {
                "message": format!("Request too large for {model} in organization org-fake on tokens per min (TPM): Limit 30000, Requested 181000."),
                "type": "tokens",
                "param": null,
                "code": "rate_limit_exceeded",
            }});
            (
                429,
                format!("Request too large for {model}: the input or output tokens must be reduced."),
                Some(json!({"provider_name": "OpenAI", "raw": raw.to_string()})),
            )
        }
        Failure::BadRequest => (
            400,
            "Input required: specify \"prompt\" or \"messages\"".into(),
            None,
        ),
        Failure::Invalid { message, .. } => (400, message.clone(), None),
    };
    let mut error = json!({"code": status, "message": message});
    if let Some(metadata) = metadata {
        error["metadata"] = metadata;
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = body::json(status, &json!({"error": error}));
    if *failure == Failure::RateLimited {
        rate_limit_headers(response.headers_mut());
    }
    response
}

/// `retry-after` and the `x-ratelimit-*` headers of an exhausted request budget.
fn rate_limit_headers(headers: &mut HeaderMap) {
    let pairs = [
        ("retry-after", "1"),
        ("x-ratelimit-limit-requests", "500"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "1s"),
        ("x-ratelimit-limit-tokens", "30000"),
        ("x-ratelimit-remaining-tokens", "29000"),
        ("x-ratelimit-reset-tokens", "120ms"),
    ];
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from_static(value));
    }
}
