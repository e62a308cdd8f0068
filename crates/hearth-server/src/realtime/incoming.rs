//! What every topic shares about incoming events: parsing an event and its payload into the
//! topic's event enum (serde, adjacently tagged: the enum's variant names are the event
//! names), and [`ChannelError`], the one shape of an error reply.

use phoenix_channels::Payload;
use phoenix_channels::server::Reply;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ApiError;

/// An error reply: `{"status": "error", "response": {"error": "<code>", "reason": "<for a
/// person>"}}`. `reason` is the Phoenix convention clients show; `error` is the code, as in
/// REST error bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelError {
    /// Machine-readable code, snake_case.
    pub error: &'static str,
    /// For a person; never carries a value the client sent.
    pub reason: String,
}

impl ChannelError {
    /// A refusal with a code and a message.
    pub fn new(error: &'static str, reason: impl Into<String>) -> Self {
        Self { error, reason: reason.into() }
    }

    /// An event the topic does not have.
    pub fn unknown_event(event: &str) -> Self {
        Self::new("unknown_event", format!("unknown event {event:?}"))
    }

    /// The error reply frame's content.
    pub fn into_reply(self) -> Reply {
        Reply { status: "error".into(), response: Payload::Json(self.into_value()) }
    }

    /// The error as a JSON object (also a refused join's response).
    pub fn into_value(self) -> Value {
        serde_json::to_value(self).expect("a code and a string serialize")
    }
}

/// The one mapping from the domain's errors to error replies. Internal failures are logged and
/// answered without detail.
impl From<ApiError> for ChannelError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::NotFound => Self::new("not_found", "not found"),
            ApiError::Invalid(fields) => {
                let problems: Vec<String> =
                    fields.iter().map(|(field, problems)| format!("{field}: {}", problems.join(", "))).collect();
                Self::new("invalid", format!("invalid payload: {}", problems.join("; ")))
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "channel event failed");
                Self::new("unavailable", "temporarily unavailable")
            }
            other => {
                let body = other.body();
                Self::new(body.error, body.message)
            }
        }
    }
}

/// Parses `event` with `payload` into the topic's event enum `E` (adjacently tagged by
/// `event` and `payload`). An event `E` does not have is [`ChannelError::unknown_event`]; a
/// payload of the wrong shape an `invalid` reply naming the field, never its value.
pub fn parse<E: DeserializeOwned>(event: &str, payload: Value) -> Result<E, ChannelError> {
    let tagged = json!({ "event": event, "payload": payload });
    crate::extract::parse_value(tagged).map_err(|error| match error {
        ApiError::Invalid(fields) if fields.contains_key("event") => ChannelError::unknown_event(event),
        ApiError::Invalid(fields) => {
            // The payload's fields are named as the client wrote them, without the wrapper.
            let fields = fields
                .into_iter()
                .map(|(field, problems)| {
                    let field = field.strip_prefix("payload.").map(str::to_owned).unwrap_or(field);
                    (if field == "payload" { "body".to_owned() } else { field }, problems)
                })
                .collect();
            ApiError::Invalid(fields).into()
        }
        other => other.into(),
    })
}

/// The `ok` reply with a typed response.
pub fn ok(response: &impl Serialize) -> Reply {
    Reply::ok(serde_json::to_value(response).expect("reply types serialize"))
}
