//! `user:{id}`'s events (the caller's own topic), parsed into [`UserEvent`]; the rules are the
//! domain's. Messages reach a device here for every conversation, joined or not, so this is
//! where the device says it received them.

use phoenix_channels::server::Reply;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::incoming::ChannelError;
use crate::auth::AuthUser;
use crate::conversations::Member;
use crate::state::AppState;

/// The events a client sends on its own `user:{id}`, named as on the wire.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", content = "payload", rename_all = "snake_case")]
pub enum UserEvent {
    /// The device received a conversation's messages up to now (a delivery receipt).
    DeliveredConversation(DeliveredConversation),
}

/// `delivered_conversation`.
#[derive(Debug, Deserialize)]
pub struct DeliveredConversation {
    conversation_id: Uuid,
}

impl UserEvent {
    /// The event `event` with `payload`, or the error reply saying what is wrong with it.
    pub fn parse(event: &str, payload: serde_json::Value) -> Result<Self, ChannelError> {
        super::incoming::parse(event, payload)
    }

    /// Runs the event for the socket's user; the reply to send.
    pub async fn run(self, state: &AppState, auth: AuthUser) -> Result<Reply, ChannelError> {
        match self {
            UserEvent::DeliveredConversation(DeliveredConversation { conversation_id }) => {
                Member::check(state, conversation_id, auth.user_id).await?.delivered().await?;
                Ok(Reply::ok(json!({})))
            }
        }
    }
}
