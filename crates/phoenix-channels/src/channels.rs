//! The channels one socket has joined, and how each incoming message is routed — the
//! protocol's rules without any I/O (PHOENIX.md §4):
//!
//! - `heartbeat` on `phoenix` is answered `ok` with its ref, whatever else is going on;
//! - `phx_join` on a joined topic replaces the old channel (new reply first, then a
//!   `phx_close` carrying the old join_ref); beyond the channel limit it is refused;
//! - other events reach a joined channel when their join_ref is null or current; a stale
//!   non-null join_ref is dropped silently; events on topics not joined get "unmatched topic";
//! - `phx_leave` on a joined topic is answered `ok` and followed by `phx_close`; with a
//!   stale join_ref it is dropped; on a topic not joined it is answered `ok`.
//!
//! Whether a join is allowed is the application's decision: [`Routed::Join`] hands it over,
//! and [`Channels::accept_join`] / [`Channels::reject_join`] produce the frames to send.

use std::collections::HashMap;

use serde_json::json;

use crate::event;
use crate::message::{Message, Payload, Ref};

/// Phoenix's default limit of channels per socket.
pub const DEFAULT_MAX_CHANNELS: usize = 100;

/// What to do with one incoming message.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    /// Send these frames; nothing for the application (heartbeats, leaves, unmatched
    /// topics, refusals). Empty for messages dropped silently.
    Answer(Vec<Message>),
    /// The client asks to join `topic`: the application decides, then calls
    /// [`Channels::accept_join`] or [`Channels::reject_join`].
    Join(JoinRequest),
    /// The client left `topic` (its channel is gone): the application forgets its state for
    /// it, and these frames are sent.
    Left {
        /// The topic left.
        topic: String,
        /// Frames to send (the ok reply, then `phx_close`).
        answer: Vec<Message>,
    },
    /// An event for a joined channel; the application handles it and may reply to `msg_ref`.
    Event(Message),
}

/// A join the application must decide on.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinRequest {
    /// Topic to join.
    pub topic: String,
    /// The join's own ref, which becomes the channel's join_ref.
    pub join_ref: Option<Ref>,
    /// The ref to reply to.
    pub msg_ref: Option<Ref>,
    /// Join parameters.
    pub payload: Payload,
}

/// The channels of one socket.
#[derive(Debug)]
pub struct Channels {
    joined: HashMap<String, Option<Ref>>,
    max: usize,
}

impl Default for Channels {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CHANNELS)
    }
}

impl Channels {
    /// No channels yet; at most `max` at once.
    pub fn new(max: usize) -> Self {
        Self { joined: HashMap::new(), max }
    }

    /// The join_ref of a joined topic (`Some(None)` when joined with a null join_ref).
    pub fn join_ref(&self, topic: &str) -> Option<&Option<Ref>> {
        self.joined.get(topic)
    }

    /// Topics joined.
    pub fn topics(&self) -> impl Iterator<Item = &str> + Clone {
        self.joined.keys().map(String::as_str)
    }

    /// How many channels are joined.
    pub fn len(&self) -> usize {
        self.joined.len()
    }

    /// Whether no channel is joined.
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty()
    }

    /// Routes one decoded message from the client.
    pub fn route(&mut self, message: Message) -> Routed {
        if message.topic == crate::PHOENIX_TOPIC {
            return Routed::Answer(match message.event.as_str() {
                event::HEARTBEAT => vec![Message::reply(None, message.msg_ref, message.topic, "ok", Payload::empty())],
                // `phoenix` is reserved: nothing else is routed there.
                _ => vec![unmatched(message)],
            });
        }
        match message.event.as_str() {
            event::JOIN => {
                let is_new = !self.joined.contains_key(&message.topic);
                if is_new && self.joined.len() >= self.max {
                    let reason = json!({ "reason": "too many channels joined" });
                    return Routed::Answer(vec![Message::reply(
                        message.join_ref,
                        message.msg_ref,
                        message.topic,
                        "error",
                        Payload::Json(reason),
                    )]);
                }
                // JS sends join_ref == ref on joins; V1 clients may send no join_ref, and
                // then the join's ref becomes the channel's join_ref.
                let join_ref = message.join_ref.or_else(|| message.msg_ref.clone());
                Routed::Join(JoinRequest {
                    topic: message.topic,
                    join_ref,
                    msg_ref: message.msg_ref,
                    payload: message.payload,
                })
            }
            event::LEAVE => match self.joined.get(&message.topic) {
                None => Routed::Answer(vec![Message::reply(
                    message.join_ref,
                    message.msg_ref,
                    message.topic,
                    "ok",
                    Payload::empty(),
                )]),
                Some(current) if is_stale(message.join_ref.as_ref(), current.as_ref()) => Routed::Answer(Vec::new()),
                Some(current) => {
                    let current = current.clone();
                    self.joined.remove(&message.topic);
                    let reply =
                        Message::reply(current.clone(), message.msg_ref, message.topic.clone(), "ok", Payload::empty());
                    let close = close(&message.topic, current);
                    Routed::Left { topic: message.topic, answer: vec![reply, close] }
                }
            },
            _ => match self.joined.get(&message.topic) {
                None => Routed::Answer(vec![unmatched(message)]),
                Some(current) if is_stale(message.join_ref.as_ref(), current.as_ref()) => Routed::Answer(Vec::new()),
                Some(_) => Routed::Event(message),
            },
        }
    }

    /// The application accepted a join with `response`: records the channel and returns the
    /// frames to send — the ok reply, then `phx_close` for a channel it replaced.
    pub fn accept_join(&mut self, request: &JoinRequest, response: serde_json::Value) -> Vec<Message> {
        let previous = self.joined.insert(request.topic.clone(), request.join_ref.clone());
        let mut frames = vec![Message::reply(
            request.join_ref.clone(),
            request.msg_ref.clone(),
            request.topic.clone(),
            "ok",
            Payload::Json(response),
        )];
        if let Some(previous) = previous {
            frames.push(close(&request.topic, previous));
        }
        frames
    }

    /// The application refused a join: the error reply, whose response is the application's
    /// (by Phoenix convention an object with a `reason`). A channel already joined on the
    /// topic stays as it was.
    pub fn reject_join(&self, request: &JoinRequest, response: serde_json::Value) -> Message {
        Message::reply(
            request.join_ref.clone(),
            request.msg_ref.clone(),
            request.topic.clone(),
            "error",
            Payload::Json(response),
        )
    }

    /// The server ends a channel deliberately: forgets it and returns its `phx_close`
    /// (the client will not rejoin). `None` if the topic is not joined.
    pub fn close(&mut self, topic: &str) -> Option<Message> {
        self.joined.remove(topic).map(|join_ref| close(topic, join_ref))
    }

    /// The channel failed: forgets it and returns its `phx_error` (the client rejoins).
    pub fn fail(&mut self, topic: &str, reason: &str) -> Option<Message> {
        self.joined.remove(topic).map(|join_ref| {
            Message::new(join_ref.clone(), join_ref, topic, event::ERROR, Payload::Json(json!({ "reason": reason })))
        })
    }

    /// A push on a joined channel, carrying its join_ref; `None` if the topic is not joined.
    pub fn push(&self, topic: &str, event_name: &str, payload: Payload) -> Option<Message> {
        self.joined.get(topic).map(|join_ref| Message::new(join_ref.clone(), None, topic, event_name, payload))
    }

    /// A reply on a joined channel to `msg_ref`.
    pub fn reply(&self, topic: &str, msg_ref: Option<Ref>, status: &str, response: Payload) -> Message {
        let join_ref = self.joined.get(topic).cloned().flatten();
        Message::reply(join_ref, msg_ref, topic, status, response)
    }
}

/// A non-null join_ref that is not the channel's current one.
fn is_stale(given: Option<&Ref>, current: Option<&Ref>) -> bool {
    given.is_some() && given != current
}

fn close(topic: &str, join_ref: Option<Ref>) -> Message {
    // Phoenix puts the join_ref in the ref slot of phx_close and phx_error.
    Message::new(join_ref.clone(), join_ref, topic, event::CLOSE, Payload::empty())
}

fn unmatched(message: Message) -> Message {
    Message::reply(None, message.msg_ref, message.topic, "error", Payload::Json(json!({ "reason": "unmatched topic" })))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn msg(join_ref: Option<&str>, msg_ref: &str, topic: &str, event: &str) -> Message {
        Message::new(join_ref.map(Ref::text), Some(Ref::text(msg_ref)), topic, event, Payload::Json(json!({})))
    }

    fn join(channels: &mut Channels, r: &str, topic: &str) -> Vec<Message> {
        let Routed::Join(request) = channels.route(msg(Some(r), r, topic, event::JOIN)) else { panic!("a join") };
        channels.accept_join(&request, json!({"welcome": true}))
    }

    fn reply_status(message: &Message) -> (&str, Value) {
        let (status, response) = message.reply_parts().expect("a reply");
        (status, response.as_json().cloned().expect("json"))
    }

    #[test]
    fn heartbeats_are_answered_with_their_ref_and_no_join_ref() {
        let mut channels = Channels::default();
        let Routed::Answer(frames) = channels.route(msg(None, "9", "phoenix", event::HEARTBEAT)) else { panic!() };
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].join_ref.clone(), frames[0].msg_ref.clone()), (None, Some(Ref::text("9"))));
        assert_eq!(reply_status(&frames[0]), ("ok", json!({})));
    }

    #[test]
    fn join_reply_echoes_join_ref_and_duplicate_join_closes_the_old_channel() {
        let mut channels = Channels::default();
        let frames = join(&mut channels, "3", "room:1");
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].join_ref, Some(Ref::text("3")));
        assert_eq!(reply_status(&frames[0]), ("ok", json!({"welcome": true})));

        let frames = join(&mut channels, "7", "room:1");
        assert_eq!(frames.len(), 2, "new reply first, then the old channel's close");
        assert_eq!(frames[0].join_ref, Some(Ref::text("7")));
        assert_eq!(frames[1].event, event::CLOSE);
        assert_eq!(
            (frames[1].join_ref.clone(), frames[1].msg_ref.clone()),
            (Some(Ref::text("3")), Some(Ref::text("3")))
        );
        assert_eq!(channels.join_ref("room:1"), Some(&Some(Ref::text("7"))));
    }

    #[test]
    fn events_route_by_join_ref() {
        let mut channels = Channels::default();
        join(&mut channels, "3", "room:1");
        assert!(matches!(channels.route(msg(Some("3"), "4", "room:1", "msg")), Routed::Event(_)));
        assert!(matches!(channels.route(msg(None, "5", "room:1", "msg")), Routed::Event(_)));
        assert_eq!(channels.route(msg(Some("2"), "6", "room:1", "msg")), Routed::Answer(vec![]), "stale: dropped");
        let Routed::Answer(frames) = channels.route(msg(Some("3"), "8", "room:2", "msg")) else { panic!() };
        assert_eq!(frames[0].join_ref, None);
        assert_eq!(reply_status(&frames[0]), ("error", json!({"reason": "unmatched topic"})));
    }

    #[test]
    fn leave_replies_then_closes_and_forgets() {
        let mut channels = Channels::default();
        join(&mut channels, "3", "room:1");
        assert_eq!(channels.route(msg(Some("1"), "4", "room:1", event::LEAVE)), Routed::Answer(vec![]), "stale leave");
        let Routed::Left { topic, answer } = channels.route(msg(Some("3"), "5", "room:1", event::LEAVE)) else {
            panic!()
        };
        assert_eq!(topic, "room:1");
        assert_eq!(reply_status(&answer[0]), ("ok", json!({})));
        assert_eq!(answer[1].event, event::CLOSE);
        assert!(channels.is_empty());
        let Routed::Answer(frames) = channels.route(msg(Some("3"), "6", "room:1", event::LEAVE)) else { panic!() };
        assert_eq!(reply_status(&frames[0]), ("ok", json!({})), "leaving a topic not joined is ok");
    }

    #[test]
    fn the_channel_limit_refuses_new_topics_but_not_rejoins() {
        let mut channels = Channels::new(2);
        join(&mut channels, "1", "a");
        join(&mut channels, "2", "b");
        let Routed::Answer(frames) = channels.route(msg(Some("3"), "3", "c", event::JOIN)) else { panic!() };
        assert_eq!(reply_status(&frames[0]), ("error", json!({"reason": "too many channels joined"})));
        assert_eq!(join(&mut channels, "4", "a").len(), 2, "a rejoin of a joined topic is allowed");
    }

    #[test]
    fn v1_joins_without_join_ref_use_the_ref() {
        let mut channels = Channels::default();
        let Routed::Join(request) = channels.route(msg(None, "12", "room:1", event::JOIN)) else { panic!() };
        assert_eq!(request.join_ref, Some(Ref::text("12")));
    }

    #[test]
    fn rejected_joins_leave_no_channel_and_server_closes_carry_the_join_ref() {
        let mut channels = Channels::default();
        let Routed::Join(request) = channels.route(msg(Some("1"), "1", "room:x", event::JOIN)) else { panic!() };
        let refusal = channels.reject_join(&request, json!({ "reason": "forbidden" }));
        assert_eq!(reply_status(&refusal), ("error", json!({"reason": "forbidden"})));
        assert!(channels.is_empty());
        join(&mut channels, "5", "room:1");
        let push = channels.push("room:1", "new_msg", Payload::empty()).expect("joined");
        assert_eq!((push.join_ref, push.msg_ref), (Some(Ref::text("5")), None));
        let error = channels.fail("room:1", "crashed").expect("joined");
        assert_eq!((error.event.as_str(), error.msg_ref), (event::ERROR, Some(Ref::text("5"))));
        assert!(channels.close("room:1").is_none());
    }
}
