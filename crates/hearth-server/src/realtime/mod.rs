//! The socket adapter: Phoenix Channels sockets on `/socket/websocket`, the topics of seed 002
//! and rooms' `room:{id}`,
//! their incoming events parsed into enums that call the domain, and the hub that delivers
//! what the domain publishes to this instance's sockets.

mod conversation;
pub mod hub;
mod incoming;
pub mod pubsub;
mod room;
pub mod socket;
mod system;
mod user;

#[cfg(feature = "fuzzing")]
pub(crate) use {conversation::ConversationEvent, incoming::ChannelError, system::SystemEvent};

use crate::state::AppState;

/// The socket route, for the HTTP router to serve with its middleware.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/socket/websocket", axum::routing::get(socket::connect))
}
