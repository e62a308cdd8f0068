//! Presence as Phoenix clients expect it (PHOENIX.md §6): per topic, a key per entity (a
//! user) with one meta per connection (a device), each meta with a unique `phx_ref`.
//!
//! [`Presences`] holds one topic's state and produces the two payloads clients consume:
//! `presence_state` (the whole state, pushed after every join) and `presence_diff`
//! (`{"joins": …, "leaves": …}`, broadcast on every change). An update is a diff in which
//! the key both joins (the new meta, with a new `phx_ref` and `phx_ref_prev` naming the old)
//! and leaves (the old meta). Who may see which key is the application's business: it can
//! filter either payload by key with [`Diff::retain`] and [`Presences::state_where`].

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde_json::{Map, Value, json};

/// A fresh `phx_ref`: 12 random bytes as 16 URL-safe base64 characters, like Phoenix.
pub fn new_phx_ref() -> String {
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One connection's presence: its fields plus `phx_ref` (and `phx_ref_prev` after updates).
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Unique id of this meta.
    pub phx_ref: String,
    /// The meta this one replaced, if it is an update.
    pub phx_ref_prev: Option<String>,
    /// Application fields (e.g. `device`, `online_at`).
    pub fields: Map<String, Value>,
}

impl Meta {
    fn to_json(&self) -> Value {
        let mut object = self.fields.clone();
        object.insert("phx_ref".into(), Value::String(self.phx_ref.clone()));
        if let Some(prev) = &self.phx_ref_prev {
            object.insert("phx_ref_prev".into(), Value::String(prev.clone()));
        }
        Value::Object(object)
    }
}

/// A change to a topic's presence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    /// Metas that appeared, by key.
    pub joins: BTreeMap<String, Vec<Meta>>,
    /// Metas that went away, by key.
    pub leaves: BTreeMap<String, Vec<Meta>>,
}

impl Diff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.joins.is_empty() && self.leaves.is_empty()
    }

    /// Keeps only the keys `visible` allows (for one viewer).
    pub fn retain(&mut self, mut visible: impl FnMut(&str) -> bool) {
        self.joins.retain(|key, _| visible(key));
        self.leaves.retain(|key, _| visible(key));
    }

    /// The `presence_diff` payload.
    pub fn to_json(&self) -> Value {
        json!({ "joins": metas_json(&self.joins), "leaves": metas_json(&self.leaves) })
    }
}

fn metas_json(by_key: &BTreeMap<String, Vec<Meta>>) -> Value {
    let object: Map<String, Value> = by_key
        .iter()
        .map(|(key, metas)| (key.clone(), json!({ "metas": metas.iter().map(Meta::to_json).collect::<Vec<_>>() })))
        .collect();
    Value::Object(object)
}

/// One topic's presence state.
#[derive(Debug, Clone, Default)]
pub struct Presences {
    by_key: BTreeMap<String, Vec<Meta>>,
}

impl Presences {
    /// Empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a meta for `key`; returns its `phx_ref` and the diff to broadcast.
    pub fn track(&mut self, key: &str, fields: Map<String, Value>) -> (String, Diff) {
        let meta = Meta { phx_ref: new_phx_ref(), phx_ref_prev: None, fields };
        let phx_ref = meta.phx_ref.clone();
        self.by_key.entry(key.to_owned()).or_default().push(meta.clone());
        (phx_ref, Diff { joins: BTreeMap::from([(key.to_owned(), vec![meta])]), leaves: BTreeMap::new() })
    }

    /// Replaces the fields of the meta `phx_ref` of `key`: a join of the new meta (new
    /// `phx_ref`, `phx_ref_prev` = the old) and a leave of the old. `None` if there is no
    /// such meta.
    pub fn update(&mut self, key: &str, phx_ref: &str, fields: Map<String, Value>) -> Option<(String, Diff)> {
        let metas = self.by_key.get_mut(key)?;
        let slot = metas.iter_mut().find(|meta| meta.phx_ref == phx_ref)?;
        let new = Meta { phx_ref: new_phx_ref(), phx_ref_prev: Some(phx_ref.to_owned()), fields };
        let old = std::mem::replace(slot, new.clone());
        let diff = Diff {
            joins: BTreeMap::from([(key.to_owned(), vec![new.clone()])]),
            leaves: BTreeMap::from([(key.to_owned(), vec![old])]),
        };
        Some((new.phx_ref, diff))
    }

    /// Removes the meta `phx_ref` of `key` (a connection went away): a leave only.
    pub fn untrack(&mut self, key: &str, phx_ref: &str) -> Option<Diff> {
        let metas = self.by_key.get_mut(key)?;
        let at = metas.iter().position(|meta| meta.phx_ref == phx_ref)?;
        let old = metas.remove(at);
        if metas.is_empty() {
            self.by_key.remove(key);
        }
        Some(Diff { joins: BTreeMap::new(), leaves: BTreeMap::from([(key.to_owned(), vec![old])]) })
    }

    /// The metas of `key`.
    pub fn get(&self, key: &str) -> &[Meta] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }

    /// Keys present.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.by_key.keys().map(String::as_str)
    }

    /// The `presence_state` payload.
    pub fn state(&self) -> Value {
        self.state_where(|_| true)
    }

    /// The `presence_state` payload for just these keys (absent keys are skipped): the cheap
    /// form when a viewer may see few of many keys.
    pub fn state_of<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Value {
        let shown: BTreeMap<String, Vec<Meta>> = keys
            .into_iter()
            .filter_map(|key| self.by_key.get(key).map(|metas| (key.to_owned(), metas.clone())))
            .collect();
        metas_json(&shown)
    }

    /// The `presence_state` payload showing only the keys `visible` allows.
    pub fn state_where(&self, mut visible: impl FnMut(&str) -> bool) -> Value {
        let shown: BTreeMap<String, Vec<Meta>> =
            self.by_key.iter().filter(|(key, _)| visible(key)).map(|(k, v)| (k.clone(), v.clone())).collect();
        metas_json(&shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(device: &str) -> Map<String, Value> {
        let Value::Object(map) = json!({ "device": device }) else { unreachable!() };
        map
    }

    #[test]
    fn one_key_per_user_one_meta_per_device_with_unique_refs() {
        let mut presences = Presences::new();
        let (a, diff) = presences.track("u1", fields("phone"));
        assert_eq!(diff.to_json()["joins"]["u1"]["metas"][0]["phx_ref"], Value::String(a.clone()));
        assert_eq!(diff.to_json()["leaves"], json!({}));
        let (b, _) = presences.track("u1", fields("laptop"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        let state = presences.state();
        assert_eq!(state["u1"]["metas"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn updates_are_a_join_and_a_leave_linked_by_phx_ref_prev() {
        let mut presences = Presences::new();
        let (old, _) = presences.track("u1", fields("phone"));
        let (new, diff) = presences.update("u1", &old, fields("phone-away")).expect("tracked");
        let json = diff.to_json();
        assert_eq!(json["joins"]["u1"]["metas"][0]["phx_ref"], Value::String(new));
        assert_eq!(json["joins"]["u1"]["metas"][0]["phx_ref_prev"], Value::String(old.clone()));
        assert_eq!(json["leaves"]["u1"]["metas"][0]["phx_ref"], Value::String(old.clone()));
        assert!(presences.update("u1", &old, fields("x")).is_none(), "the old ref is gone");
    }

    #[test]
    fn untrack_is_a_leave_and_the_last_meta_removes_the_key() {
        let mut presences = Presences::new();
        let (a, _) = presences.track("u1", fields("phone"));
        let (b, _) = presences.track("u1", fields("laptop"));
        let diff = presences.untrack("u1", &a).expect("tracked");
        assert!(diff.joins.is_empty());
        assert_eq!(presences.get("u1").len(), 1);
        presences.untrack("u1", &b).expect("tracked");
        assert_eq!(presences.state(), json!({}));
        assert!(presences.untrack("u1", &b).is_none());
    }

    #[test]
    fn viewers_see_only_what_they_may() {
        let mut presences = Presences::new();
        presences.track("friend", fields("a"));
        presences.track("stranger", fields("b"));
        let state = presences.state_where(|key| key == "friend");
        assert!(state.get("friend").is_some() && state.get("stranger").is_none());
        assert_eq!(presences.state_of(["friend", "nobody"]), state);
        let (_, mut diff) = presences.track("stranger", fields("c"));
        diff.retain(|key| key == "friend");
        assert!(diff.is_empty());
    }
}
