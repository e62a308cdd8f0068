//! The real-time half of the SDK: a Phoenix Channels socket (PHOENIX.md, serializer 2.0.0)
//! and typed calls for hearth's topics (docs/phoenix.md).
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

//!
//! Typed calls cover every hearth event a client sends (docs/phoenix.md): starting private, group
//! and assistant conversations, keys, messages, typing, read receipts, aliases, members,
//! leaving, hiding and renaming oneself, and rooms (`room:{id}`: joining, posting, editing and
//! deleting posts, typing, read marks). [`Incoming::parse`] reads what arrives, and a
//! [`Presence`] tracks who is online. A group of three, end-to-end encrypted:
//!
//! ```no_run
//! # async fn example(
//! #     api: &hearth_client::api::Client,
//! #     socket: &hearth_client::channels::Socket,
//! #     bob: uuid::Uuid,
//! #     cy: uuid::Uuid,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use hearth_client::channels::SYSTEM_TOPIC;
//! use hearth_client::trust::TrustStore;
//!
//! // The keyring holds the account's identity and decides which keys to use (docs/e2e.md).
//! let mut keyring = api.keyring(TrustStore::in_memory())?;
//! socket.join(SYSTEM_TOPIC, serde_json::json!({})).await?;
//!
//! // The client chooses the id, so the key is signed and wrapped for it from the start.
//! let keys = keyring.start_conversation()?;
//! socket
//!     .start_group_conversation(keys.conversation_id, &[bob, cy], Some("Team"), &keys.public_key, &keys.private_key)
//!     .await?;
//! let id = keys.conversation_id;
//! keyring.join(&socket.join_conversation(id).await?)?;
//!
//! // One ciphertext per member: to their signed key, or to their identity until they have one.
//! let outgoing = keyring.seal(id, "hello team", None)?;
//! socket.send_message(id, Some(outgoing.message_group_id), &outgoing.copies).await?;
//! # Ok(())
//! # }
//! ```

mod conversation;
mod error;
mod incoming;
mod presence;
mod room;
mod socket;

pub use conversation::{
    DeliveredMessage, JoinedConversation, NewConversation, SYSTEM_TOPIC, conversation_topic, user_topic,
};
pub use error::ChannelError;
pub use incoming::{AssistantDelta, Incoming, RoomAssistantDelta};
pub use presence::{Meta, Presence, PresenceChange};
pub use room::{JoinedRoom, RoomMember, room_topic};
pub use socket::{Event, Events, Socket, SocketOptions, TokenFuture, TokenSource};
