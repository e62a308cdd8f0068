//! Presence on `system:general`, with hearth's privacy rules: a user is shown only to people
//! who share a conversation or a room with them (and to their own devices); a hidden user is
//! shown to nobody, and hiding looks like leaving to everyone else.
//!
//! One key per user, one meta per connected device (`phoenix_channels::presence`). Diffs go
//! to exactly the users allowed to see them, through [`Envelope::ToUsers`].

pub mod registry;

use phoenix_channels::presence::Diff;
use serde_json::Value;
use uuid::Uuid;

use crate::events::{Envelope, SYSTEM_TOPIC};
use crate::state::AppState;

/// Who may see `user`: their conversation partners, the members of their rooms (those not
/// bigger than `rooms.presence_max_members`), and their own devices.
async fn audience(state: &AppState, user: Uuid) -> Vec<Uuid> {
    let mut users: Vec<Uuid> = match state.store.conversation_partners(user).await {
        Ok(partners) => partners.into_iter().map(|p| p.id).collect(),
        Err(error) => {
            tracing::error!(%error, "presence audience unavailable");
            Vec::new()
        }
    };
    match state.store.room_partners(user, state.settings.rooms.presence_max_members).await {
        Ok(partners) => users.extend(partners),
        Err(error) => tracing::error!(%error, "presence audience of rooms unavailable"),
    }
    users.push(user);
    users.sort_unstable();
    users.dedup();
    users
}

async fn publish_diff(state: &AppState, users: Vec<Uuid>, diff: Diff) {
    let envelope =
        Envelope::ToUsers { users, topic: SYSTEM_TOPIC.into(), event: "presence_diff".into(), payload: diff.to_json() };
    state.pubsub.publish(envelope).await;
}

/// A device's arrival, to announce once its own socket has its state.
pub struct Arrival {
    audience: Vec<Uuid>,
    diff: Option<Diff>,
}

impl Arrival {
    /// Tells those who may see the device that it is here.
    pub async fn announce(self, state: &AppState) {
        if let Some(diff) = self.diff {
            publish_diff(state, self.audience, diff).await;
        }
    }
}

/// A socket joined `system:general`: tracks the device and returns the meta's phx_ref, the
/// `presence_state` this viewer may see, and the arrival to announce after pushing it.
pub async fn joined(state: &AppState, user: Uuid, device: Uuid) -> (String, Value, Arrival) {
    let hidden = state.store.profile(user).await.map(|p| p.hidden).unwrap_or(false);
    let (phx_ref, diff) = state.presence.track(user, device, hidden);
    let audience = audience(state, user).await;
    let view = state.presence.state_for(&audience);
    (phx_ref, view, Arrival { audience, diff })
}

/// A socket left `system:general` (or closed).
pub async fn left(state: &AppState, user: Uuid, phx_ref: &str) {
    if let Some(diff) = state.presence.untrack(user, phx_ref) {
        publish_diff(state, audience(state, user).await, diff).await;
    }
}

/// The user's hidden flag changed (from the socket or the profile API).
pub async fn hidden_changed(state: &AppState, user: Uuid, hidden: bool) {
    if let Some(diff) = state.presence.set_hidden(user, hidden) {
        publish_diff(state, audience(state, user).await, diff).await;
    }
}

/// People now share a conversation: each sees the others' current presence.
pub async fn introduce(state: &AppState, members: &[Uuid]) {
    for member in members {
        if let Some(diff) = state.presence.current(*member) {
            let others: Vec<Uuid> = members.iter().copied().filter(|m| m != member).collect();
            publish_diff(state, others, diff).await;
        }
    }
}

/// `newcomer` now shares a room with `others`: the newcomer's presence goes to them, and each
/// of theirs to the newcomer (one diff each way per person, not one per pair of the room).
pub async fn introduce_to(state: &AppState, newcomer: Uuid, others: &[Uuid]) {
    let others: Vec<Uuid> = others.iter().copied().filter(|other| *other != newcomer).collect();
    if let Some(diff) = state.presence.current(newcomer) {
        publish_diff(state, others.clone(), diff).await;
    }
    for other in others {
        if let Some(diff) = state.presence.current(other) {
            publish_diff(state, vec![newcomer], diff).await;
        }
    }
}
