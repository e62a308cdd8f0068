//! The Phoenix Channels wire protocol, as the official `phoenix` JavaScript client and
//! Phoenix servers (1.8) speak it.
//!
//! This crate knows nothing of any application: it turns WebSocket frames into
//! [`Message`]s and back, for both ends of the socket.
//!
//! - [`Vsn`] picks the serializer from the `vsn` connect parameter (1.0.0 or 2.0.0).
//! - [`Vsn::decode`] / [`Vsn::encode`] are the server's view: frames from clients in,
//!   frames to clients out. [`Vsn::decode_from_server`] / [`Vsn::encode_for_server`] are the
//!   client's view, for SDKs and tests.
//! - V2 sends JSON as text frames `[join_ref, ref, topic, event, payload]` and binary
//!   payloads as binary frames (push, reply and broadcast layouts); V1 sends JSON objects.
//!
//! - [`Channels`] routes what one socket receives by the protocol's rules (heartbeats,
//!   joins, leaves, stale join_refs, unmatched topics), without I/O.
//!
//! - Feature `client`: [`Frame::from_ws`] / [`Frame::into_ws`] turn frames into the
//!   WebSocket messages of `tungstenite` and back, for clients on `tokio-tungstenite`.
//! - [`server`] (feature `server`) runs sockets on axum: checks before the upgrade, the
//!   socket loop, pushes and broadcasts through a [`server::SocketHandle`].
//! - [`presence`] keeps a topic's presence and makes `presence_state` / `presence_diff`.
//!
//! References (`ref`, `join_ref`) are opaque JSON values echoed exactly as received.
//! Decoding never panics: any bytes either decode or give a [`DecodeError`].

mod channels;
#[cfg(feature = "client")]
mod client;
mod codec;
mod message;
pub mod presence;
#[cfg(feature = "server")]
pub mod server;

pub use channels::{Channels, DEFAULT_MAX_CHANNELS, JoinRequest, Routed};
pub use codec::{DecodeError, EncodeError, Frame, UnsupportedVsn, Vsn};
pub use message::{Message, Payload, Ref};

/// Reserved topic of heartbeats.
pub const PHOENIX_TOPIC: &str = "phoenix";

/// Event names the protocol itself uses.
pub mod event {
    /// Join a topic.
    pub const JOIN: &str = "phx_join";
    /// Leave a topic.
    pub const LEAVE: &str = "phx_leave";
    /// A reply to a message with a ref.
    pub const REPLY: &str = "phx_reply";
    /// The server closed the channel deliberately (the client does not rejoin).
    pub const CLOSE: &str = "phx_close";
    /// The channel crashed (the client rejoins).
    pub const ERROR: &str = "phx_error";
    /// Keep-alive on the `phoenix` topic.
    pub const HEARTBEAT: &str = "heartbeat";
}
