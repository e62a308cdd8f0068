//! The real-time half of the SDK: a Phoenix Channels socket (PHOENIX.md, serializer 2.0.0)
//! and typed calls for hearth's topics (DESIGN.md §5).
//!
//! A [`Socket`] owns one WebSocket in a background task that sends a heartbeat on topic
//! `phoenix` every 30 s, matches each `phx_reply` to its call by ref, and delivers every
//! other frame (pushes and broadcasts) to [`Events`] subscribers. [`Socket::join`] and
//! [`Socket::push`] wait (10 s by default) for the reply: its `response`, or
//! [`ChannelError::Refused`] with the server's reason.
//!
//! ```no_run
//! # async fn example(token: &str, me: uuid::Uuid) -> Result<(), hearth_client::channels::ChannelError> {
//! use hearth_client::channels::{self, Socket};
//! use serde_json::json;
//!
//! let socket = Socket::connect("https://chat.example.org", token).await?;
//! let mut events = socket.events();
//! socket.join(&channels::user_topic(me), json!({})).await?;
//! socket.join(channels::SYSTEM_TOPIC, json!({})).await?;
//! while let Ok(event) = events.recv().await {
//!     println!("{} on {}", event.event, event.topic);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A dropped connection (close 1001, transport error, missed heartbeat) is reconnected with
//! backoff and its topics rejoined; subscribers then see an event `reconnected` on topic
//! `phoenix` and should catch up on history over REST. Calls fail with
//! [`ChannelError::Reconnecting`] meanwhile. A socket whose token is refused even after a
//! refresh ([`TokenSource`]) closes for good: every call then fails with
//! [`ChannelError::Closed`] and subscriptions end the same way.

mod conversation;
mod error;
mod frame;
mod socket;

pub use conversation::{
    DeliveredMessage, JoinedConversation, NewConversation, SYSTEM_TOPIC, conversation_topic, user_topic,
};
pub use error::ChannelError;
pub use socket::{Event, Events, Socket, SocketOptions, TokenFuture, TokenSource};
