//! The fake's routes: one module per provider dialect, plus images and the `/_fake` controls.

mod anthropic;
mod control;
mod gemini;
mod images;
mod openai;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::body::Ending;
use crate::failure::Failure;
use crate::plan::{Plan, plan};
use crate::record::{KeySource, RecordedRequest, Recorder};
use crate::server::reset_connection;
use crate::{Provider, Scenario};

/// The largest request body read (requests may carry images).
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// What every handler shares.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// Where received provider requests are kept.
    pub(crate) recorder: Arc<Recorder>,
    /// The source of response ids.
    ids: Arc<AtomicU64>,
}

impl AppState {
    /// State around `recorder`.
    pub(crate) fn new(recorder: Arc<Recorder>) -> AppState {
        AppState { recorder, ids: Arc::new(AtomicU64::new(1)) }
    }

    /// A number not handed out before, for response and request ids.
    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// Every route the fake serves.
pub(crate) fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for provider in Provider::ALL.into_iter().filter(|p| p.is_openai_compatible()) {
        let base = provider.base_path();
        router = router
            .route(
                &format!("{base}/chat/completions"),
                post(move |State(state): State<AppState>, request: Request| openai::chat(provider, state, request)),
            )
            .route(
                &format!("{base}/models"),
                get(move |State(state): State<AppState>, request: Request| openai::models(provider, state, request)),
            );
    }
    router
        .route("/openai/v1/images/generations", post(images::generate))
        .route("/gemini/v1beta/models", get(gemini::models))
        .route("/gemini/v1beta/models/{target}", post(gemini::generate))
        .route("/anthropic/v1/messages", post(anthropic::messages))
        .route("/anthropic/v1/models", get(anthropic::models))
        .route("/_fake/requests", get(control::requests).delete(control::clear_requests))
        .route("/_fake/images/{file}", get(images::png))
        .fallback(control::not_found)
        .with_state(state)
}

/// The API key a request carried, and where.
#[derive(Debug)]
struct Credentials {
    /// Where a key was found, if anywhere.
    source: Option<KeySource>,
    /// The key as received.
    received: Option<String>,
    /// The key to use, or why the request is refused.
    key: Result<String, Failure>,
}

impl Credentials {
    /// A request without a key.
    fn missing() -> Credentials {
        Credentials { source: None, received: None, key: Err(Failure::MissingKey) }
    }

    /// A key found in `source`; an empty one counts as missing.
    fn found(source: KeySource, key: &str) -> Credentials {
        let usable = if key.is_empty() { Err(Failure::MissingKey) } else { Ok(key.to_owned()) };
        Credentials { source: Some(source), received: Some(key.to_owned()), key: usable }
    }
}

/// Applies the scenario of the request's key: the ending to answer with, or the response that
/// replaces the answer (`refuse` renders a failure in the provider's dialect). Waits first if
/// the scenario says so.
async fn admit(
    credentials: &Credentials,
    streaming: bool,
    refuse: impl Fn(&Failure) -> Response,
) -> Result<Ending, Response> {
    let key = credentials.key.as_ref().map_err(&refuse)?;
    let scenario = Scenario::from_key(key).map_err(|error| refuse(&Failure::invalid(error.to_string())))?;
    match plan(scenario, streaming).await {
        Plan::Answer(ending) => Ok(ending),
        Plan::Fail(failure) => Err(refuse(&failure)),
        Plan::Reset => Err(reset_connection()),
    }
}

/// The start of a [`RecordedRequest`] for a request to `provider`, when recording is on.
fn recorded(state: &AppState, provider: Provider, parts: &Parts, credentials: &Credentials) -> Option<RecordedRequest> {
    state.recorder.enabled().then(|| RecordedRequest {
        provider,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        key_source: credentials.source,
        api_key: credentials.received.clone(),
        anthropic_version: None,
        model: None,
        stream: false,
        last_user_text: None,
        messages: Vec::new(),
    })
}

/// Reads a request body and parses it as JSON into `T`.
async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T, Failure> {
    let bytes: Bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| Failure::invalid("The request body could not be read."))?;
    serde_json::from_slice(&bytes).map_err(|error| Failure::invalid(format!("Invalid JSON body: {error}")))
}

/// The text of a message's content: a string, or the `text` of its `{type:"text"}` parts
/// concatenated (other parts, such as images, carry no text).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Seconds since the Unix epoch, for `created` fields.
fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_text_comes_from_strings_and_text_parts() {
        assert_eq!(text_of(&json!("hello")), "hello");
        let parts = json!([
            {"type": "text", "text": "look at "},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "this"},
        ]);
        assert_eq!(text_of(&parts), "look at this");
        assert_eq!(text_of(&Value::Null), "");
    }
}
