//! `POST /api/chat/message`: one assistant turn over HTTP, seed 004's request and response
//! to the field.

use std::fmt;

use axum::extract::State;
use axum::http::StatusCode;
use hearth_ai::{ProviderName, TurnFailureKind};
use hearth_store::Timestamp;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::mpsc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::assistant::{MAX_PROMPT_CHARS, Question, Refusal, is_identifier, whole_seconds};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_message))
}

/// Most keys one request may carry (seed 004).
const MAX_REQUEST_KEYS: usize = 10;

/// A prompt for the assistant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChatMessageRequest {
    /// 1 to 10 000 characters, not only spaces.
    #[schema(min_length = 1, max_length = 10000)]
    message: String,
    /// The knowledge-base topic: `[A-Za-z0-9_-]{1,100}`, compared in lower case.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,100}$")]
    course_id: Option<String>,
    /// The thread whose earlier turns are the context: `[A-Za-z0-9_-]{1,100}`. A new one is
    /// made when it is left out.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,100}$")]
    conversation_id: Option<String>,
    /// Keys for this request only, by provider (`gemini`, `groq`, `cerebras`, `openrouter`,
    /// `openai`, `anthropic`): at most 10, one per provider, 20–500 characters each. Never
    /// stored, never logged. Without them the operator's free tier answers.
    #[serde(default)]
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    api_keys: Option<RequestKeys>,
}

/// The keys of one request as sent: names and keys in order, duplicates kept so they can be
/// refused. The keys are zeroized on drop and never printed.
struct RequestKeys(Vec<(String, Zeroizing<String>)>);

impl fmt::Debug for RequestKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

impl<'de> Deserialize<'de> for RequestKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;

        impl<'de> Visitor<'de> for Entries {
            type Value = RequestKeys;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of provider names to keys")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RequestKeys, A::Error> {
                let mut entries = Vec::new();
                while let Some((name, key)) = map.next_entry::<String, Zeroizing<String>>()? {
                    // Bounded here, so a body of a million keys is refused while it is read.
                    if entries.len() == MAX_REQUEST_KEYS {
                        return Err(serde::de::Error::custom("at most 10 keys"));
                    }
                    entries.push((name, key));
                }
                Ok(RequestKeys(entries))
            }
        }

        deserializer.deserialize_map(Entries)
    }
}

impl RequestKeys {
    /// The keys by provider: known provider names, one key per provider. Problems name the
    /// field, never the key. The keys themselves are checked by the keyguard, which alone opens
    /// them.
    fn by_provider(self) -> ApiResult<Vec<(ProviderName, Zeroizing<String>)>> {
        let mut keys: Vec<(ProviderName, Zeroizing<String>)> = Vec::with_capacity(self.0.len());
        for (name, key) in self.0 {
            // An unknown name is not echoed (it could be a key sent in the wrong place).
            let provider: ProviderName =
                name.parse().map_err(|error: hearth_ai::AiError| ApiError::invalid("apiKeys", error.to_string()))?;
            if keys.iter().any(|(given, _)| *given == provider) {
                return Err(ApiError::invalid(
                    &format!("apiKeys.{provider}"),
                    format!("more than one key for {provider}"),
                ));
            }
            keys.push((provider, key));
        }
        Ok(keys)
    }
}

/// The assistant's reply.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ChatMessageReply {
    /// The thread, as sent or newly made.
    conversation_id: String,
    /// The prompt as received.
    user_message: String,
    /// The reply, as text.
    ai_response: String,
    /// Who answered: a provider's name, or `knowledge_base`.
    provider: String,
    /// The sliding-window limit after this request.
    rate_limit: RateLimitReply,
    /// When the prompt was received.
    timestamp: String,
}

/// Where the caller stands in the sliding window.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RateLimitReply {
    /// Requests left in the window.
    remaining: u32,
    /// Seconds until one more is free.
    reset_in: u64,
}

/// # POST /api/chat/message
///
/// One assistant turn: the prompt is answered by the first provider that can, in the
/// configured order, with the caller's keys for this request or else the operator's free tier.
#[utoipa::path(post, path = "/api/chat/message", tag = "assistant", security(("bearer" = [])),
    request_body = ChatMessageRequest,
    responses((status = 200, body = ChatMessageReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
async fn post_message(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<ChatMessageRequest>,
) -> ApiResult<axum::Json<ChatMessageReply>> {
    let message = checked_message(request.message)?;
    let topic = request.course_id.map(|id| checked_id("courseId", id).map(|id| id.to_ascii_lowercase())).transpose()?;
    let (thread, new_thread) = match request.conversation_id {
        Some(id) => (checked_id("conversationId", id)?, false),
        None => (format!("conv_{}", Uuid::now_v7().simple()), true),
    };
    let given = request.api_keys.map(RequestKeys::by_provider).transpose()?.unwrap_or_default();
    // Encrypted to the keyguard at once, which checks them: from here on only it can read them.
    let keys = if given.is_empty() {
        Vec::new()
    } else {
        let listed: Vec<(ProviderName, &str)> = given.iter().map(|(provider, key)| (*provider, key.as_str())).collect();
        let sealed = state.assistant.keys().given(auth.user_id, &listed).await;
        vec![sealed.map_err(|error| refusal_error(error.into()))?]
    };
    drop(given);
    let question =
        Question { user_id: auth.user_id, thread: thread.clone(), new_thread, topic, prompt: message.clone(), keys };
    // Nobody listens to the deltas here: the reply is sent whole.
    let (deltas, _) = mpsc::unbounded_channel();
    let reply = state.assistant.ask(question, &deltas).await.map_err(refusal_error)?;
    Ok(axum::Json(ChatMessageReply {
        conversation_id: thread,
        user_message: message,
        ai_response: reply.text,
        provider: reply.provider.to_owned(),
        rate_limit: RateLimitReply {
            remaining: reply.window.remaining,
            reset_in: whole_seconds(reply.window.reset_in),
        },
        timestamp: seconds_rfc3339(reply.asked_at),
    }))
}

fn checked_message(message: String) -> ApiResult<String> {
    let length = message.chars().count();
    if message.trim().is_empty() || length > MAX_PROMPT_CHARS {
        return Err(ApiError::invalid("message", "must be 1 to 10 000 characters, not only spaces"));
    }
    Ok(message)
}

fn checked_id(field: &str, id: String) -> ApiResult<String> {
    if !is_identifier(&id) {
        return Err(ApiError::invalid(field, "must be 1 to 100 letters, digits, '-' or '_'"));
    }
    Ok(id)
}

/// Seed 004's timestamp form: `2024-01-15T10:30:00Z`.
fn seconds_rfc3339(at: Timestamp) -> String {
    chrono::DateTime::from_timestamp(at.as_secs(), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The error a refused turn is answered with.
fn refusal_error(refusal: Refusal) -> ApiError {
    let message = refusal.message();
    match refusal {
        Refusal::RateLimited { retry_after } => {
            ApiError::OverLimit { code: "rate_limited", message, retry_after_secs: whole_seconds(retry_after) }
        }
        Refusal::AllowanceUsed { retry_after } => {
            ApiError::OverLimit { code: "quota_exceeded", message, retry_after_secs: whole_seconds(retry_after) }
        }
        Refusal::Failed(failure) => {
            // The HTTP error carries the title in `error`'s code; the message lists the failures.
            let message = failure.user_message();
            match failure.kind {
                TurnFailureKind::BadRequest { .. } => ApiError::bad_request("provider_refused", message),
                TurnFailureKind::NoKeys => {
                    ApiError::Upstream { status: StatusCode::SERVICE_UNAVAILABLE, code: "no_provider", message }
                }
                TurnFailureKind::AllFailed => {
                    ApiError::Upstream { status: StatusCode::BAD_GATEWAY, code: "all_providers_failed", message }
                }
                TurnFailureKind::DeadlineExceeded => {
                    ApiError::Upstream { status: StatusCode::GATEWAY_TIMEOUT, code: "providers_timeout", message }
                }
            }
        }
        // Images are not made over this endpoint; answered as "no provider" all the same.
        Refusal::NoImageProvider { .. } => {
            ApiError::Upstream { status: StatusCode::SERVICE_UNAVAILABLE, code: "no_provider", message }
        }
        Refusal::Keyguard(hearth_keyguard::KeyguardError::InvalidKey(message)) => ApiError::invalid("apiKeys", message),
        Refusal::Keyguard(hearth_keyguard::KeyguardError::InvalidRequestKey { provider, message }) => {
            ApiError::invalid(&format!("apiKeys.{provider}"), message)
        }
        Refusal::Keyguard(_) => {
            ApiError::Upstream { status: StatusCode::SERVICE_UNAVAILABLE, code: "assistant_unavailable", message }
        }
        Refusal::Store(error) => ApiError::internal(error),
    }
}
