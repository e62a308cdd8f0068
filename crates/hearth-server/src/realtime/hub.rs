//! The sockets connected to this instance, indexed by the topics they joined (for fan-out)
//! and by user and device (for revocation). Events arrive here from [`PubSub`]; the hub
//! hands each to the local sockets concerned. Payloads are encoded once per event and
//! shared, never copied per recipient.
//!
//! [`PubSub`]: super::pubsub::PubSub

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::close_code;
use phoenix_channels::Payload;
use phoenix_channels::server::{Broadcast, SocketHandle};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifies one socket on this instance.
pub type SocketId = u64;

/// Something to deliver: the unit pub/sub carries between instances (so it serializes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Envelope {
    /// `event` with `payload` to every socket that joined `topic`.
    Broadcast {
        /// Topic, e.g. `user:<id>` or `conversation:<id>`.
        topic: String,
        /// Event name.
        event: String,
        /// JSON payload.
        payload: serde_json::Value,
    },
    /// `event` with `payload` to the sockets of these users that joined `topic` (e.g. a
    /// presence diff only some people may see).
    ToUsers {
        /// Who receives it.
        users: Vec<Uuid>,
        /// Topic.
        topic: String,
        /// Event name.
        event: String,
        /// JSON payload.
        payload: serde_json::Value,
    },
    /// Close every socket of these device sessions (revoked): they reconnect and are
    /// refused because their token no longer works.
    DisconnectDevices {
        /// Revoked device sessions.
        devices: Vec<Uuid>,
    },
    /// Close every socket of a user (sign-out everywhere, password change or reset).
    DisconnectUser {
        /// The user.
        user: Uuid,
    },
    /// End `topic` with `phx_close` on every socket of `user` that joined it (they left the
    /// conversation): no further broadcast of it reaches them, and clients do not rejoin.
    CloseTopic {
        /// The user.
        user: Uuid,
        /// Topic, e.g. `conversation:<id>`.
        topic: String,
    },
}

#[derive(Debug)]
struct Entry {
    user: Uuid,
    device: Uuid,
    handle: SocketHandle,
    topics: HashSet<String>,
}

/// Every lookup the hub makes is by key, so each operation costs what it touches, not the
/// number of sockets connected.
#[derive(Debug, Default)]
struct Index {
    sockets: HashMap<SocketId, Entry>,
    topics: HashMap<String, HashSet<SocketId>>,
    by_user: HashMap<Uuid, HashSet<SocketId>>,
    by_device: HashMap<Uuid, HashSet<SocketId>>,
}

/// This instance's sockets.
#[derive(Debug, Default)]
pub struct Hub {
    next_id: AtomicU64,
    index: RwLock<Index>,
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a new socket of `user` on `device`; returns its id.
    pub fn connect(&self, user: Uuid, device: Uuid, handle: SocketHandle) -> SocketId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut index = self.write();
        index.sockets.insert(id, Entry { user, device, handle, topics: HashSet::new() });
        index.by_user.entry(user).or_default().insert(id);
        index.by_device.entry(device).or_default().insert(id);
        id
    }

    /// Forgets a socket and its subscriptions.
    pub fn disconnect(&self, id: SocketId) {
        let mut index = self.write();
        let Some(entry) = index.sockets.remove(&id) else { return };
        for topic in &entry.topics {
            remove_from(&mut index.topics, topic.as_str(), id);
        }
        remove_from(&mut index.by_user, &entry.user, id);
        remove_from(&mut index.by_device, &entry.device, id);
    }

    /// The socket joined `topic`: it receives the topic's broadcasts.
    pub fn subscribe(&self, id: SocketId, topic: &str) {
        let mut index = self.write();
        let Some(entry) = index.sockets.get_mut(&id) else { return };
        entry.topics.insert(topic.to_owned());
        index.topics.entry(topic.to_owned()).or_default().insert(id);
    }

    /// The socket left `topic`.
    pub fn unsubscribe(&self, id: SocketId, topic: &str) {
        let mut index = self.write();
        if let Some(entry) = index.sockets.get_mut(&id) {
            entry.topics.remove(topic);
        }
        remove_from(&mut index.topics, topic, id);
    }

    /// Closes every socket with 1001 (server going away: clients reconnect elsewhere or
    /// later); returns how many there were.
    pub fn close_all(&self) -> usize {
        let index = self.read();
        for entry in index.sockets.values() {
            entry.handle.disconnect(close_code::AWAY);
        }
        index.sockets.len()
    }

    /// Whether no socket is connected.
    pub fn is_empty(&self) -> bool {
        self.read().sockets.is_empty()
    }

    /// Delivers an envelope to the local sockets concerned.
    pub fn deliver(&self, envelope: &Envelope) {
        let index = self.read();
        match envelope {
            Envelope::Broadcast { topic, event, payload } => {
                let Some(subscribers) = index.topics.get(topic) else { return };
                let broadcast = Broadcast::new(topic.as_str(), event.as_str(), Payload::Json(payload.clone()));
                for entry in subscribers.iter().filter_map(|id| index.sockets.get(id)) {
                    // A full queue disconnects that socket; the others go on.
                    let _ = entry.handle.broadcast(broadcast.clone());
                }
            }
            Envelope::ToUsers { users, topic, event, payload } => {
                let broadcast = Broadcast::new(topic.as_str(), event.as_str(), Payload::Json(payload.clone()));
                let sockets = users.iter().filter_map(|user| index.by_user.get(user)).flatten();
                for entry in sockets.filter_map(|id| index.sockets.get(id)) {
                    if entry.topics.contains(topic) {
                        let _ = entry.handle.broadcast(broadcast.clone());
                    }
                }
            }
            Envelope::DisconnectDevices { devices } => {
                let sockets = devices.iter().filter_map(|device| index.by_device.get(device)).flatten();
                for entry in sockets.filter_map(|id| index.sockets.get(id)) {
                    entry.handle.disconnect(close_code::AWAY);
                }
            }
            Envelope::DisconnectUser { user } => {
                for entry in index.by_user.get(user).into_iter().flatten().filter_map(|id| index.sockets.get(id)) {
                    entry.handle.disconnect(close_code::AWAY);
                }
            }
            Envelope::CloseTopic { user, topic } => {
                // The socket unsubscribes itself when it has closed the channel (its `left`);
                // a broadcast that reaches its queue in between is dropped there, the channel
                // being gone.
                for entry in index.by_user.get(user).into_iter().flatten().filter_map(|id| index.sockets.get(id)) {
                    if entry.topics.contains(topic) {
                        let _ = entry.handle.close_channel(topic);
                    }
                }
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes `id` from the set under `key`, dropping the set when it empties.
fn remove_from<K, Q>(map: &mut HashMap<K, HashSet<SocketId>>, key: &Q, id: SocketId)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(set) = map.get_mut(key) {
        set.remove(&id);
        if set.is_empty() {
            map.remove(key);
        }
    }
}
