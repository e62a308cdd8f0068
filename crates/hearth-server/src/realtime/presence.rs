//! Presence on `system:general`, with hearth's privacy rules: a user is shown only to people
//! who share a conversation with them (and to their own devices); a hidden user is shown to
//! nobody, and hiding looks like leaving to everyone else.
//!
//! One key per user, one meta per connected device (`phoenix_channels::presence`). Diffs go
//! to exactly the users allowed to see them, through [`Envelope::ToUsers`].

use std::collections::HashSet;
use std::sync::Mutex;

use phoenix_channels::presence::{Diff, Presences};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::hub::Envelope;
use crate::state::AppState;

/// The topic presence lives on.
pub const TOPIC: &str = "system:general";

/// This instance's presence.
#[derive(Debug, Default)]
pub struct PresenceRegistry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    presences: Presences,
    hidden: HashSet<Uuid>,
}

impl PresenceRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A device of `user` came online; returns its phx_ref and the diff others may see
    /// (`None` while the user is hidden).
    fn track(&self, user: Uuid, device: Uuid, hidden: bool) -> (String, Option<Diff>) {
        let mut inner = self.lock();
        if hidden {
            inner.hidden.insert(user);
        } else {
            inner.hidden.remove(&user);
        }
        let mut fields = Map::new();
        fields.insert("device_id".into(), json!(device));
        fields.insert("online_at".into(), json!(hearth_store::Timestamp::now()));
        let (phx_ref, diff) = inner.presences.track(&user.to_string(), fields);
        (phx_ref, (!hidden).then_some(diff))
    }

    /// A device went offline; the diff others may see.
    fn untrack(&self, user: Uuid, phx_ref: &str) -> Option<Diff> {
        let mut inner = self.lock();
        let diff = inner.presences.untrack(&user.to_string(), phx_ref)?;
        (!inner.hidden.contains(&user)).then_some(diff)
    }

    /// The user hid or showed themselves: every meta leaves or joins for the others.
    fn set_hidden(&self, user: Uuid, hidden: bool) -> Option<Diff> {
        let mut inner = self.lock();
        let changed = if hidden { inner.hidden.insert(user) } else { inner.hidden.remove(&user) };
        let metas = inner.presences.get(&user.to_string()).to_vec();
        if !changed || metas.is_empty() {
            return None;
        }
        let mut diff = Diff::default();
        let side = if hidden { &mut diff.leaves } else { &mut diff.joins };
        side.insert(user.to_string(), metas);
        Some(diff)
    }

    /// The joins of every visible meta of `user` (to introduce them to new partners).
    fn current(&self, user: Uuid) -> Option<Diff> {
        let inner = self.lock();
        let metas = inner.presences.get(&user.to_string()).to_vec();
        if metas.is_empty() || inner.hidden.contains(&user) {
            return None;
        }
        let mut diff = Diff::default();
        diff.joins.insert(user.to_string(), metas);
        Some(diff)
    }

    /// `presence_state` as a viewer may see it: the audience's visible keys (looked up, not
    /// scanned for, so a join costs what the viewer may see, not what is online).
    fn state_for(&self, audience: &[Uuid]) -> Value {
        let inner = self.lock();
        let keys: Vec<String> =
            audience.iter().filter(|user| !inner.hidden.contains(user)).map(Uuid::to_string).collect();
        inner.presences.state_of(keys.iter().map(String::as_str))
    }
}

/// Who may see `user`: their conversation partners and their own devices.
async fn audience(state: &AppState, user: Uuid) -> Vec<Uuid> {
    let mut users: Vec<Uuid> = match state.store.conversation_partners(user).await {
        Ok(partners) => partners.into_iter().map(|p| p.id).collect(),
        Err(error) => {
            tracing::error!(%error, "presence audience unavailable");
            Vec::new()
        }
    };
    users.push(user);
    users
}

async fn publish_diff(state: &AppState, users: Vec<Uuid>, diff: Diff) {
    let envelope =
        Envelope::ToUsers { users, topic: TOPIC.into(), event: "presence_diff".into(), payload: diff.to_json() };
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
