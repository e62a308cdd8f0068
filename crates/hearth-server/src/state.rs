//! The state every handler shares.

use std::sync::Arc;

use hearth_store::Store;

use crate::auth::{AttemptLimiter, PasswordPool, Sessions};
use crate::email::Mailer;
use crate::events::Envelope;
use crate::page_token::PageTokens;
use crate::settings::Settings;

/// Services and settings, cheap to clone (everything is behind `Arc`).
#[derive(Debug, Clone)]
pub struct AppState {
    /// The settings the server started with.
    pub settings: Arc<Settings>,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Access-token issuing and checking.
    pub sessions: Sessions,
    /// Argon2id off the event loop.
    pub passwords: PasswordPool,
    /// Login and reset attempt limits.
    pub attempts: AttemptLimiter,
    /// Outgoing email.
    pub mailer: Arc<Mailer>,
    /// Page-token signing.
    pub page_tokens: PageTokens,
    /// Base URL for links.
    pub public_url: Arc<str>,
    /// Keys for sealing values at rest.
    pub vault: Arc<crate::vault::Vault>,
    /// This instance's sockets.
    pub hub: Arc<crate::realtime::hub::Hub>,
    /// Who is online, for `system:general`.
    pub presence: Arc<crate::presence::registry::PresenceRegistry>,
    /// Carries events to every instance's sockets.
    pub pubsub: Arc<dyn crate::events::PubSub>,
    /// Socket limits.
    pub socket_config: phoenix_channels::server::SocketConfig,
    /// The AI assistant.
    pub assistant: Arc<crate::assistant::Assistant>,
    /// The server's administrators and how they sign in.
    pub admins: Arc<crate::admin::Admins>,
    /// What `/metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    /// Publishes `event` with `payload` to everyone who joined `topic`, on every instance.
    pub async fn publish(&self, topic: String, event: &str, payload: serde_json::Value) {
        self.pubsub.publish(Envelope::Broadcast { topic, event: event.to_owned(), payload }).await;
    }

    /// Publishes `event` with a typed payload to everyone who joined `topic`.
    pub async fn publish_typed(&self, topic: String, event: &str, payload: &impl serde::Serialize) {
        self.publish(topic, event, serde_json::to_value(payload).expect("reply types serialize")).await;
    }
}
