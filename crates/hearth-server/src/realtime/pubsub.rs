//! Pub/sub: how an event published anywhere reaches every instance's [`Hub`]. In-process
//! for one instance; Redis or NATS implement the same trait for several.

use std::sync::Arc;

use async_trait::async_trait;

use super::hub::{Envelope, Hub};

/// Carries envelopes to every instance's hub (this one included).
#[async_trait]
pub trait PubSub: Send + Sync + std::fmt::Debug {
    /// Publishes an envelope; returns once it is handed to the transport (in-process: once
    /// the local hub has queued it on every socket concerned).
    async fn publish(&self, envelope: Envelope);
}

/// Pub/sub within one process: publishing is delivering to the local hub.
#[derive(Debug, Clone)]
pub struct InProcess {
    hub: Arc<Hub>,
}

impl InProcess {
    /// Pub/sub delivering to `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

#[async_trait]
impl PubSub for InProcess {
    async fn publish(&self, envelope: Envelope) {
        self.hub.deliver(&envelope);
    }
}
