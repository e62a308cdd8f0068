//! Who is online on this instance: one key per user, one meta per connected device, and who
//! is hidden. Each change returns the diff the others may see; whom to send it to is decided
//! by the presence rules around it.

use std::collections::HashSet;
use std::sync::Mutex;

use phoenix_channels::presence::{Diff, Presences};
use serde_json::{Map, Value, json};
use uuid::Uuid;

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
    pub(super) fn track(&self, user: Uuid, device: Uuid, hidden: bool) -> (String, Option<Diff>) {
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
    pub(super) fn untrack(&self, user: Uuid, phx_ref: &str) -> Option<Diff> {
        let mut inner = self.lock();
        let diff = inner.presences.untrack(&user.to_string(), phx_ref)?;
        (!inner.hidden.contains(&user)).then_some(diff)
    }

    /// The user hid or showed themselves: every meta leaves or joins for the others.
    pub(super) fn set_hidden(&self, user: Uuid, hidden: bool) -> Option<Diff> {
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
    pub(super) fn current(&self, user: Uuid) -> Option<Diff> {
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
    pub(super) fn state_for(&self, audience: &[Uuid]) -> Value {
        let inner = self.lock();
        let keys: Vec<String> =
            audience.iter().filter(|user| !inner.hidden.contains(user)).map(Uuid::to_string).collect();
        inner.presences.state_of(keys.iter().map(String::as_str))
    }
}
