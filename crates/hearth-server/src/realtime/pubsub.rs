//! Pub/sub within one process: how an event published here reaches this instance's [`Hub`].
//! Redis or NATS implement the same [`PubSub`] trait for several instances.

use std::sync::Arc;

use async_trait::async_trait;

use super::hub::Hub;
use crate::events::{Envelope, PubSub};

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
