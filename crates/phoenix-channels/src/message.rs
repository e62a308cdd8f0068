//! What travels on a Phoenix socket.

use bytes::Bytes;
use serde_json::Value;

/// A `ref` or `join_ref`: an opaque JSON value, echoed exactly as it came (the JS client
/// sends decimal strings; other clients send numbers).
#[derive(Debug, Clone, PartialEq)]
pub struct Ref(pub Value);

impl Ref {
    /// A ref from text (as binary frames carry them).
    pub fn text(text: impl Into<String>) -> Self {
        Self(Value::String(text.into()))
    }

    /// The ref as text, for binary frames: strings as they are, other values as JSON.
    pub fn to_text(&self) -> String {
        match &self.0 {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }
}

impl From<&str> for Ref {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

/// A message body: JSON, or raw bytes (V2 binary frames only).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Any JSON value (the server always sends objects).
    Json(Value),
    /// Raw bytes.
    Binary(Bytes),
}

impl Payload {
    /// An empty JSON object, the payload of `phx_close` and empty replies.
    pub fn empty() -> Self {
        Payload::Json(Value::Object(serde_json::Map::new()))
    }

    /// The JSON value, if this is JSON.
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Payload::Json(value) => Some(value),
            Payload::Binary(_) => None,
        }
    }
}

/// One protocol message, in either direction.
///
/// A reply is a message whose event is `phx_reply` and whose payload is
/// `{"status": …, "response": …}`; a binary reply keeps `status` and the raw response
/// separately, see [`Message::reply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The channel's join ref (null for heartbeats, broadcasts and unmatched replies).
    pub join_ref: Option<Ref>,
    /// The ref this message carries or answers (null on pushes and broadcasts).
    pub msg_ref: Option<Ref>,
    /// Topic, e.g. `room:lobby`.
    pub topic: String,
    /// Event name.
    pub event: String,
    /// Body.
    pub payload: Payload,
    /// For replies with a binary response: the status (the payload holds the raw response).
    pub reply_status: Option<String>,
}

impl Message {
    /// A message with a JSON or binary payload.
    pub fn new(
        join_ref: Option<Ref>,
        msg_ref: Option<Ref>,
        topic: impl Into<String>,
        event: impl Into<String>,
        payload: Payload,
    ) -> Self {
        Self { join_ref, msg_ref, topic: topic.into(), event: event.into(), payload, reply_status: None }
    }

    /// A `phx_reply` answering `msg_ref` with `status` (`"ok"`, `"error"`, …) and `response`.
    pub fn reply(
        join_ref: Option<Ref>,
        msg_ref: Option<Ref>,
        topic: impl Into<String>,
        status: impl Into<String>,
        response: Payload,
    ) -> Self {
        let status = status.into();
        match response {
            Payload::Json(response) => Self::new(
                join_ref,
                msg_ref,
                topic,
                crate::event::REPLY,
                Payload::Json(serde_json::json!({ "status": status, "response": response })),
            ),
            binary @ Payload::Binary(_) => {
                Self { reply_status: Some(status), ..Self::new(join_ref, msg_ref, topic, crate::event::REPLY, binary) }
            }
        }
    }

    /// The status and response of a `phx_reply`, whichever way it is encoded.
    pub fn reply_parts(&self) -> Option<(&str, Payload)> {
        if self.event != crate::event::REPLY {
            return None;
        }
        match (&self.reply_status, &self.payload) {
            (Some(status), binary @ Payload::Binary(_)) => Some((status, binary.clone())),
            (None, Payload::Json(value)) => {
                let status = value.get("status")?.as_str()?;
                Some((status, Payload::Json(value.get("response").cloned().unwrap_or(Value::Null))))
            }
            _ => None,
        }
    }
}
