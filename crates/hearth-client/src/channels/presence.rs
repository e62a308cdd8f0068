//! Who is online: a tracker of `system:general`'s presence (PHOENIX.md §6), as the Phoenix
//! JavaScript client's `Presence` keeps it.
//!
//! The server keys presence by user id, one meta per connected device, each with its own
//! `phx_ref`. A `presence_state` (pushed after every join and rejoin) is the whole view;
//! a `presence_diff` has `joins` and `leaves`, applied in that order and matched by
//! `phx_ref`; a user with no meta left is offline. What a viewer is shown follows hearth's
//! privacy rules: only the people they share a conversation with (and themselves), and no
//! hidden user. So "not online" means offline, hidden, or a stranger alike.
//!
//! ```no_run
//! # async fn example(socket: hearth_client::channels::Socket) -> Result<(), hearth_client::ChannelError> {
//! use hearth_client::channels::{Presence, SYSTEM_TOPIC};
//!
//! let mut events = socket.events();
//! socket.join(SYSTEM_TOPIC, serde_json::json!({})).await?;
//! let mut presence = Presence::new();
//! loop {
//!     let event = events.recv().await?;
//!     if let Some(change) = presence.apply(&event) {
//!         for user in &change.online {
//!             println!("{user} came online");
//!         }
//!         println!("{} online now", presence.online().len());
//!     }
//! }
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::conversation::SYSTEM_TOPIC;
use super::socket::Event;

/// One connected device of a user, as presence describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Meta {
    /// Unique per meta: how diffs name it.
    pub phx_ref: String,
    /// Everything else the server put in the meta (hearth: `device_id`, `online_at`).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// `{"metas": […]}`, one key's entry in a state or a diff.
#[derive(Deserialize)]
struct Entry {
    metas: Vec<Meta>,
}

#[derive(Deserialize)]
struct Diff {
    #[serde(default)]
    joins: BTreeMap<String, Entry>,
    #[serde(default)]
    leaves: BTreeMap<String, Entry>,
}

/// Who came online and who went offline with one event (users, not devices: a second
/// device of someone already online changes nothing here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceChange {
    /// Users who were not online before the event and are now.
    pub online: Vec<Uuid>,
    /// Users who were online before the event and are not now.
    pub offline: Vec<Uuid>,
}

impl PresenceChange {
    /// Whether nobody came or went.
    pub fn is_empty(&self) -> bool {
        self.online.is_empty() && self.offline.is_empty()
    }
}

/// The presence a viewer is shown on `system:general`: user → connected devices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Presence {
    /// Keys as the server sent them (hearth's are user ids), each with at least one meta.
    keys: BTreeMap<String, Vec<Meta>>,
}

impl Presence {
    /// Nobody online (until a `presence_state`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `event` if it is a `presence_state` or `presence_diff` on
    /// [`SYSTEM_TOPIC`]: who came and went, or `None` for any other event and for a
    /// presence payload of another shape (which changes nothing).
    pub fn apply(&mut self, event: &Event) -> Option<PresenceChange> {
        if event.topic != SYSTEM_TOPIC {
            return None;
        }
        match event.event.as_str() {
            "presence_state" => self.apply_state(&event.payload),
            "presence_diff" => self.apply_diff(&event.payload),
            _ => None,
        }
    }

    /// Replaces the whole view with a `presence_state` payload (`{key: {metas: […]}}`).
    /// `None` if it is not of that shape.
    pub fn apply_state(&mut self, state: &Value) -> Option<PresenceChange> {
        let state = BTreeMap::<String, Entry>::deserialize(state).ok()?;
        let before = self.online_set();
        self.keys = state
            .into_iter()
            .filter(|(_, entry)| !entry.metas.is_empty())
            .map(|(key, entry)| (key, entry.metas))
            .collect();
        Some(self.change_since(&before))
    }

    /// Applies a `presence_diff` payload (`{joins, leaves}`): joins first, each adding its
    /// metas to the key's (a meta with a known `phx_ref` replaces it), then leaves, each
    /// removing the metas with its `phx_ref`s; a key left with none is gone. `None` if it is
    /// not of that shape.
    pub fn apply_diff(&mut self, diff: &Value) -> Option<PresenceChange> {
        let diff = Diff::deserialize(diff).ok()?;
        let before = self.online_set();
        for (key, entry) in diff.joins {
            let metas = self.keys.entry(key).or_default();
            let joined: BTreeSet<&str> = entry.metas.iter().map(|meta| meta.phx_ref.as_str()).collect();
            metas.retain(|meta| !joined.contains(meta.phx_ref.as_str()));
            metas.extend(entry.metas);
        }
        for (key, entry) in diff.leaves {
            let Some(metas) = self.keys.get_mut(&key) else { continue };
            let left: BTreeSet<&str> = entry.metas.iter().map(|meta| meta.phx_ref.as_str()).collect();
            metas.retain(|meta| !left.contains(meta.phx_ref.as_str()));
            if metas.is_empty() {
                self.keys.remove(&key);
            }
        }
        self.keys.retain(|_, metas| !metas.is_empty());
        Some(self.change_since(&before))
    }

    /// Whether `user` is shown online (on at least one device).
    pub fn is_online(&self, user: Uuid) -> bool {
        self.keys.contains_key(&user.to_string())
    }

    /// Everyone shown online, in id order.
    pub fn online(&self) -> Vec<Uuid> {
        self.online_set().into_iter().collect()
    }

    /// The connected devices of `user` (empty when not shown online).
    pub fn devices(&self, user: Uuid) -> &[Meta] {
        self.keys.get(&user.to_string()).map_or(&[], Vec::as_slice)
    }

    /// Forgets everyone (the socket closed: nothing is known any more).
    pub fn clear(&mut self) {
        self.keys.clear();
    }

    fn online_set(&self) -> BTreeSet<Uuid> {
        // Keys that are not user ids are another server's; they are kept but not users.
        self.keys.keys().filter_map(|key| key.parse().ok()).collect()
    }

    fn change_since(&self, before: &BTreeSet<Uuid>) -> PresenceChange {
        let now = self.online_set();
        PresenceChange {
            online: now.difference(before).copied().collect(),
            offline: before.difference(&now).copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta(phx_ref: &str) -> Value {
        json!({ "phx_ref": phx_ref, "device_id": Uuid::nil(), "online_at": "2026-11-22T10:00:00.000Z" })
    }

    #[test]
    fn a_state_replaces_the_view_and_says_who_came_and_went() {
        let (ann, bob, cy) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut presence = Presence::new();
        let change = presence.apply_state(&json!({
            ann.to_string(): { "metas": [meta("a1")] },
            bob.to_string(): { "metas": [meta("b1"), meta("b2")] },
        }));
        assert_eq!(change.as_ref().map(|c| c.online.len()), Some(2));
        assert!(presence.is_online(ann) && presence.is_online(bob) && !presence.is_online(cy));
        assert_eq!(presence.devices(bob).len(), 2);
        assert_eq!(presence.devices(bob)[0].fields["device_id"], json!(Uuid::nil()));

        let change = presence.apply_state(&json!({ cy.to_string(): { "metas": [meta("c1")] } })).expect("a state");
        assert_eq!(change.online, vec![cy]);
        let mut gone = vec![ann, bob];
        gone.sort();
        assert_eq!(change.offline, gone);
        assert_eq!(presence.online(), vec![cy]);
    }

    #[test]
    fn diffs_apply_joins_then_leaves_matched_by_phx_ref() {
        let ann = Uuid::now_v7();
        let key = ann.to_string();
        let mut presence = Presence::new();
        let change = presence.apply_diff(&json!({ "joins": { &key: { "metas": [meta("a1")] } }, "leaves": {} }));
        assert_eq!(change, Some(PresenceChange { online: vec![ann], offline: vec![] }));
        // A second device: still one user, no change.
        let change = presence.apply_diff(&json!({ "joins": { &key: { "metas": [meta("a2")] } }, "leaves": {} }));
        assert!(change.expect("a diff").is_empty());
        assert_eq!(presence.devices(ann).len(), 2);
        // An update of one meta is a join and a leave in the same diff: it stays online.
        let update = json!({
            "joins": { &key: { "metas": [meta("a3")] } },
            "leaves": { &key: { "metas": [meta("a1")] } },
        });
        assert!(presence.apply_diff(&update).expect("a diff").is_empty());
        let refs: Vec<&str> = presence.devices(ann).iter().map(|m| m.phx_ref.as_str()).collect();
        assert_eq!(refs, ["a2", "a3"]);
        // The last devices leave: offline. A leave of an unknown ref or key changes nothing.
        let leave = json!({ "joins": {}, "leaves": { &key: { "metas": [meta("a2"), meta("a3")] } } });
        assert_eq!(presence.apply_diff(&leave), Some(PresenceChange { online: vec![], offline: vec![ann] }));
        assert!(presence.apply_diff(&leave).expect("a diff").is_empty());
        assert!(!presence.is_online(ann));
    }

    #[test]
    fn only_presence_events_of_the_right_shape_count() {
        let mut presence = Presence::new();
        let event = |name: &str, payload: Value| Event { topic: SYSTEM_TOPIC.into(), event: name.into(), payload };
        assert_eq!(presence.apply(&event("set_display_name", json!({}))), None);
        assert_eq!(presence.apply(&event("presence_diff", json!({ "joins": { "x": { "metas": 3 } } }))), None);
        assert_eq!(presence.apply(&event("presence_state", json!([1, 2]))), None);
        let elsewhere = Event { topic: "room:1".into(), event: "presence_state".into(), payload: json!({}) };
        assert_eq!(presence.apply(&elsewhere), None);
        assert!(presence.online().is_empty());
    }
}
