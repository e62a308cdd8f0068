//! The sockets connected to this instance, indexed by the topics they joined (for fan-out)
//! and by user and device (for revocation). Events arrive here from [`PubSub`]; the hub
//! hands each to the local sockets concerned. Payloads are encoded once per event and
//! shared, never copied per recipient.
//!
//! [`PubSub`]: super::pubsub::PubSub

use std::collections::HashMap;
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
}

#[derive(Debug)]
struct Entry {
    user: Uuid,
    device: Uuid,
    handle: SocketHandle,
}

#[derive(Debug, Default)]
struct Index {
    sockets: HashMap<SocketId, Entry>,
    topics: HashMap<String, Vec<SocketId>>,
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
        self.write().sockets.insert(id, Entry { user, device, handle });
        id
    }

    /// Forgets a socket and its subscriptions.
    pub fn disconnect(&self, id: SocketId, topics: impl IntoIterator<Item = String>) {
        let mut index = self.write();
        index.sockets.remove(&id);
        for topic in topics {
            remove_subscriber(&mut index.topics, &topic, id);
        }
    }

    /// The socket joined `topic`: it receives the topic's broadcasts.
    pub fn subscribe(&self, id: SocketId, topic: &str) {
        let mut index = self.write();
        let subscribers = index.topics.entry(topic.to_owned()).or_default();
        if !subscribers.contains(&id) {
            subscribers.push(id);
        }
    }

    /// The socket left `topic`.
    pub fn unsubscribe(&self, id: SocketId, topic: &str) {
        remove_subscriber(&mut self.write().topics, topic, id);
    }

    /// Delivers an envelope to the local sockets concerned.
    pub fn deliver(&self, envelope: &Envelope) {
        let index = self.read();
        match envelope {
            Envelope::Broadcast { topic, event, payload } => {
                let Some(subscribers) = index.topics.get(topic) else { return };
                let broadcast = Broadcast::new(topic.as_str(), event.as_str(), Payload::Json(payload.clone()));
                for id in subscribers {
                    if let Some(entry) = index.sockets.get(id) {
                        // A full queue disconnects that socket; the others go on.
                        let _ = entry.handle.broadcast(broadcast.clone());
                    }
                }
            }
            Envelope::ToUsers { users, topic, event, payload } => {
                let Some(subscribers) = index.topics.get(topic) else { return };
                let broadcast = Broadcast::new(topic.as_str(), event.as_str(), Payload::Json(payload.clone()));
                for id in subscribers {
                    if let Some(entry) = index.sockets.get(id)
                        && users.contains(&entry.user)
                    {
                        let _ = entry.handle.broadcast(broadcast.clone());
                    }
                }
            }
            Envelope::DisconnectDevices { devices } => {
                for entry in index.sockets.values().filter(|e| devices.contains(&e.device)) {
                    entry.handle.disconnect(close_code::AWAY);
                }
            }
            Envelope::DisconnectUser { user } => {
                for entry in index.sockets.values().filter(|e| e.user == *user) {
                    entry.handle.disconnect(close_code::AWAY);
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

fn remove_subscriber(topics: &mut HashMap<String, Vec<SocketId>>, topic: &str, id: SocketId) {
    if let Some(subscribers) = topics.get_mut(topic) {
        subscribers.retain(|s| *s != id);
        if subscribers.is_empty() {
            topics.remove(topic);
        }
    }
}
