//! `system:general`'s events: hiding, renaming oneself, and starting conversations (the
//! assistant conversation included). Parsed into [`SystemEvent`]; the rules are the domain's.

use phoenix_channels::Payload;
use phoenix_channels::server::Reply;
use serde::Deserialize;
use serde_json::json;

use super::incoming::{ChannelError, ok};
use crate::auth::AuthUser;
use crate::conversations::{self, StartGroup, StartPrivate};
use crate::state::AppState;

/// The events a client sends on `system:general`, named as on the wire.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", content = "payload", rename_all = "snake_case")]
pub enum SystemEvent {
    /// Show or hide oneself in presence.
    SetHidden(SetHidden),
    /// Rename oneself.
    SetDisplayName(SetDisplayName),
    /// Start a group with others.
    StartGroupConversation(StartGroup),
    /// Start the private conversation with someone.
    StartPrivateConversation(StartPrivate),
    /// Open (or make) one's assistant conversation; the payload is not read.
    StartAssistantConversation(serde::de::IgnoredAny),
}

/// `set_hidden`.
#[derive(Debug, Deserialize)]
pub struct SetHidden {
    hidden: bool,
}

/// `set_display_name`.
#[derive(Debug, Deserialize)]
pub struct SetDisplayName {
    display_name: String,
}

impl SystemEvent {
    /// The event `event` with `payload`, or the error reply saying what is wrong with it.
    pub fn parse(event: &str, payload: serde_json::Value) -> Result<Self, ChannelError> {
        super::incoming::parse(event, payload)
    }

    /// Runs the event for the socket's user; the reply to send.
    pub async fn run(self, state: &AppState, auth: AuthUser) -> Result<Reply, ChannelError> {
        let me = auth.user_id;
        Ok(match self {
            SystemEvent::SetHidden(SetHidden { hidden }) => {
                let update = hearth_store::ProfileUpdate { hidden: Some(hidden), ..Default::default() };
                crate::accounts::update_profile(state, me, &update).await?;
                // Seed 002's reply to set_hidden, kept as the clients know it.
                Reply { status: "ok".into(), response: Payload::Json(json!("message_sent")) }
            }
            SystemEvent::SetDisplayName(SetDisplayName { display_name }) => {
                crate::accounts::set_display_name(state, me, &display_name).await?;
                Reply::ok(json!({}))
            }
            SystemEvent::StartGroupConversation(request) => ok(&conversations::start_group(state, me, request).await?),
            SystemEvent::StartPrivateConversation(request) => {
                ok(&conversations::start_private(state, me, request).await?)
            }
            SystemEvent::StartAssistantConversation(_) => ok(&conversations::start_assistant(state, me).await?),
        })
    }
}
