//! The hearth client SDK.
//!
//! - [`api`]: the typed REST API (docs/ARCHITECTURE.md) with a [`Client`](api::Client) that signs in
//!   without the password ever leaving the device and refreshes its session by itself; it
//!   reads the server's sign-up policy ([`registration`](api::Client::registration)), registers
//!   with an invite code, and makes, lists, joins and leaves rooms.
//! - Rooms (`room:{id}`) are group channels the server can read, **not end-to-end encrypted**:
//!   their posts are plain text, and a client shows them marked so. The REST calls are in
//!   [`api`] ([`create_room`](api::Client::create_room), [`rooms`](api::Client::rooms),
//!   [`join_room`](api::Client::join_room), [`room_messages`](api::Client::room_messages),
//!   [`search_room`](api::Client::search_room), …), the channel calls on the
//!   [`Socket`](channels::Socket) ([`join_room`](channels::Socket::join_room),
//!   [`post`](channels::Socket::post), [`edit_post`](channels::Socket::edit_post),
//!   [`delete_post`](channels::Socket::delete_post), …), and what arrives is typed as
//!   [`Incoming::NewPost`](channels::Incoming::NewPost) and its siblings.
//! - [`channels`]: the real-time half (docs/phoenix.md): a Phoenix Channels [`Socket`](channels::Socket)
//!   with joins, pushes that wait for their replies, incoming events, typed calls for every
//!   event a client sends (private, group and assistant conversations, keys, messages, typing,
//!   aliases, members, hiding, renaming), incoming events typed ([`Incoming`](channels::Incoming)),
//!   and a [`Presence`](channels::Presence) tracker of who is online.
//! - [`e2e`]: the end-to-end encryption of docs/ARCHITECTURE.md: key derivation from the password,
//!   per-conversation key pairs wrapped under a key that never leaves the device, and pairwise
//!   encrypted messages. The web client (`web/js/e2e.js`) implements the same scheme byte for
//!   byte; `clients/e2e-vectors.json` holds the vectors both test suites check, and
//!   `tests/cross.rs` runs the two against each other. v2 adds identities, signed
//!   conversation keys, messages to identities and authenticated headers (docs/e2e.md).
//! - [`trust`]: the rules a client applies with those keys: pinned identities and safety
//!   numbers, signed keys only, no downgrade to plain text, delivery checks.

pub mod api;
pub mod channels;
pub mod e2e;
pub mod trust;

pub use api::ClientError;
pub use channels::ChannelError;
pub use e2e::E2eError;
pub use trust::TrustError;
