//! What the domain tells connected clients: an [`Envelope`] published through [`PubSub`] reaches
//! every instance's sockets concerned. The domain publishes; the socket adapter (`realtime`)
//! delivers. Topic names are made here and nowhere else.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The topic presence and the account-wide events live on.
pub const SYSTEM_TOPIC: &str = "system:general";

/// The `user:{id}` topic of a user.
pub fn user_topic(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

/// The `conversation:{id}` topic.
pub fn conversation_topic(conversation_id: Uuid) -> String {
    format!("conversation:{conversation_id}")
}

/// The `room:{id}` topic.
pub fn room_topic(room_id: Uuid) -> String {
    format!("room:{room_id}")
}

/// Carries envelopes to every instance's sockets (this one's included).
#[async_trait]
pub trait PubSub: Send + Sync + std::fmt::Debug {
    /// Publishes an envelope; returns once it is handed to the transport (in-process: once
    /// the local sockets concerned have it queued).
    async fn publish(&self, envelope: Envelope);
}

/// Something to deliver: the unit pub/sub carries between instances (so it serializes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Envelope {
    /// `event` with `payload` to every socket that joined `topic`.
    Broadcast {
        /// Topic, e.g. `user:<id>` or `conversation:<id>`.
        topic: String,
        /// Event name.
        event: String,
        /// JSON payload.
        payload: serde_json::Value,
    },
    /// `event` with `payload` to the sockets of these users that joined `topic` (e.g. a
    /// presence diff only some people may see).
    ToUsers {
        /// Who receives it.
        users: Vec<Uuid>,
        /// Topic.
        topic: String,
        /// Event name.
        event: String,
        /// JSON payload.
        payload: serde_json::Value,
    },
    /// Close every socket of these device sessions (revoked): they reconnect and are
    /// refused because their token no longer works.
    DisconnectDevices {
        /// Revoked device sessions.
        devices: Vec<Uuid>,
    },
    /// Close every socket of a user (sign-out everywhere, password change or reset).
    DisconnectUser {
        /// The user.
        user: Uuid,
    },
    /// End `topic` with `phx_close` on every socket of `user` that joined it (they left the
    /// conversation): no further broadcast of it reaches them, and clients do not rejoin.
    CloseTopic {
        /// The user.
        user: Uuid,
        /// Topic, e.g. `conversation:<id>`.
        topic: String,
    },
}
