//! The sockets connected to this instance, indexed by the topics they joined (for fan-out)
//! and by user and device (for revocation). Events arrive here from [`PubSub`]; the hub
//! hands each to the local sockets concerned. Payloads are encoded once per event and
//! shared, never copied per recipient.
//!
//! [`PubSub`]: crate::events::PubSub

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::extract::ws::close_code;
use phoenix_channels::Payload;
use phoenix_channels::server::{Broadcast, SocketHandle, broadcast_all};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::events::Envelope;
use crate::metrics::Metrics;

/// The event whose pushes count as messages delivered.
const NEW_MESSAGE: &str = "new_message";

/// Identifies one socket on this instance.
pub type SocketId = u64;

#[derive(Debug)]
struct Entry {
    user: Uuid,
    device: Uuid,
    handle: SocketHandle,
    topics: HashSet<String>,
}

/// Held by each socket's task until it ends: when the hub's own copy is dropped too (at
/// shutdown), [`Hub::all_closed`] wakes once the last socket has dropped its copy.
#[derive(Debug)]
pub struct Finished(#[allow(dead_code)] mpsc::Sender<()>);

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
#[derive(Debug)]
pub struct Hub {
    next_id: AtomicU64,
    index: RwLock<Index>,
    /// The hub's copy of the sender each socket holds one of; dropped at shutdown.
    finished: Mutex<Option<mpsc::Sender<()>>>,
    /// Ends (`None`) once every sender is dropped: every socket task has finished.
    all_finished: tokio::sync::Mutex<mpsc::Receiver<()>>,
    /// Open sockets, joined topics and delivered messages, counted where the index changes.
    metrics: Arc<Metrics>,
}

impl Hub {
    /// An empty hub that counts into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let (finished, all_finished) = mpsc::channel(1);
        Self {
            next_id: AtomicU64::default(),
            index: RwLock::default(),
            finished: Mutex::new(Some(finished)),
            all_finished: tokio::sync::Mutex::new(all_finished),
            metrics,
        }
    }

    /// Registers a new socket of `user` on `device`; returns its id and the token its task
    /// holds until it ends.
    pub fn connect(&self, user: Uuid, device: Uuid, handle: SocketHandle) -> (SocketId, Option<Finished>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner).clone().map(Finished);
        let mut index = self.write();
        index.sockets.insert(id, Entry { user, device, handle, topics: HashSet::new() });
        index.by_user.entry(user).or_default().insert(id);
        index.by_device.entry(device).or_default().insert(id);
        self.metrics.socket_opened();
        (id, finished)
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
        self.metrics.socket_closed(entry.topics.iter().map(String::as_str));
    }

    /// The socket joined `topic`: it receives the topic's broadcasts.
    pub fn subscribe(&self, id: SocketId, topic: &str) {
        let mut index = self.write();
        let Some(entry) = index.sockets.get_mut(&id) else { return };
        if entry.topics.insert(topic.to_owned()) {
            self.metrics.joined(topic);
        }
        index.topics.entry(topic.to_owned()).or_default().insert(id);
    }

    /// The socket left `topic`.
    pub fn unsubscribe(&self, id: SocketId, topic: &str) {
        let mut index = self.write();
        if let Some(entry) = index.sockets.get_mut(&id)
            && entry.topics.remove(topic)
        {
            self.metrics.left(topic);
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

    /// Waits until every socket's task has finished (after [`Hub::close_all`], once each has sent
    /// its close frame). Sockets accepted after this is called are not waited for.
    pub async fn all_closed(&self) {
        drop(self.finished.lock().unwrap_or_else(PoisonError::into_inner).take());
        // `None` once the last socket's `Finished` is dropped; nothing is ever sent.
        while self.all_finished.lock().await.recv().await.is_some() {}
    }

    /// Delivers an envelope to the local sockets concerned.
    pub fn deliver(&self, envelope: &Envelope) {
        match envelope {
            Envelope::Broadcast { topic, event, payload } => self.push(self.subscribers(topic), topic, event, payload),
            Envelope::ToUsers { users, topic, event, payload } => {
                self.push(self.users_on(users, topic), topic, event, payload);
            }
            Envelope::DisconnectDevices { devices } => {
                let index = self.read();
                let sockets = devices.iter().filter_map(|device| index.by_device.get(device)).flatten();
                for entry in sockets.filter_map(|id| index.sockets.get(id)) {
                    entry.handle.disconnect(close_code::AWAY);
                }
            }
            Envelope::DisconnectUser { user } => {
                let index = self.read();
                for entry in index.by_user.get(user).into_iter().flatten().filter_map(|id| index.sockets.get(id)) {
                    entry.handle.disconnect(close_code::AWAY);
                }
            }
            Envelope::CloseTopic { user, topic } => {
                // The socket unsubscribes itself when it has closed the channel (its `left`);
                // a broadcast that reaches its queue in between is dropped there, the channel
                // being gone.
                let index = self.read();
                for entry in index.by_user.get(user).into_iter().flatten().filter_map(|id| index.sockets.get(id)) {
                    if entry.topics.contains(topic) {
                        let _ = entry.handle.close_channel(topic);
                    }
                }
            }
        }
    }

    /// Pushes `event` on `topic` to `sockets`, encoded once for all of them.
    fn push(&self, sockets: Vec<SocketHandle>, topic: &str, event: &str, payload: &serde_json::Value) {
        if sockets.is_empty() {
            return;
        }
        let broadcast = Broadcast::new(topic, event, Payload::Json(payload.clone()));
        let pushed = fan_out(&sockets, &broadcast);
        if event == NEW_MESSAGE {
            self.metrics.messages_delivered(pushed);
        }
    }

    /// The sockets that joined `topic`.
    fn subscribers(&self, topic: &str) -> Vec<SocketHandle> {
        let index = self.read();
        let Some(subscribers) = index.topics.get(topic) else { return Vec::new() };
        subscribers.iter().filter_map(|id| index.sockets.get(id)).map(|entry| entry.handle.clone()).collect()
    }

    /// The sockets of `users` that joined `topic`.
    fn users_on(&self, users: &[Uuid], topic: &str) -> Vec<SocketHandle> {
        let index = self.read();
        let sockets = users.iter().filter_map(|user| index.by_user.get(user)).flatten();
        sockets
            .filter_map(|id| index.sockets.get(id))
            .filter(|entry| entry.topics.contains(topic))
            .map(|entry| entry.handle.clone())
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sockets a fan-out reaches before it steps off the async runtime's worker: each socket costs
/// a few microseconds of the kernel's TCP work, and 10 000 of them would hold up every other
/// task queued on that worker for tens of milliseconds.
const FAN_OUT_IN_PLACE: usize = 128;

/// Hands `broadcast` to each of `sockets`; returns how many took it. The index is not locked
/// meanwhile: sockets connect and join while a large room's post goes out.
fn fan_out(sockets: &[SocketHandle], broadcast: &Arc<Broadcast>) -> u64 {
    // A full queue disconnects that socket; the others go on.
    let hand_over = || broadcast_all(sockets, broadcast);
    let on_multi_thread_runtime = tokio::runtime::Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if sockets.len() >= FAN_OUT_IN_PLACE && on_multi_thread_runtime {
        tokio::task::block_in_place(hand_over)
    } else {
        hand_over()
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
