//! Real-time: Phoenix Channels sockets, the topics of seed 002, presence, and the pub/sub
//! that carries events to every socket that should see them.

pub(crate) mod assistant;
pub mod conversation;
pub(crate) mod events;
pub mod hub;
pub mod presence;
pub mod pubsub;
pub mod socket;
pub(crate) mod system;
