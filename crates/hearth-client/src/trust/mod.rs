//! Whom a client trusts, and with which keys (docs/e2e.md, "What clients keep and refuse"):
//! a [`Keyring`] holds the signed-in account's identity and conversation keys, pins each
//! contact's identity on first sight, accepts a member's conversation key only when their
//! identity signed it, writes to a member's identity when they have no key yet, never turns
//! an end-to-end conversation into a plaintext one, and checks every delivered message's
//! authenticated header. A [`TrustStore`] keeps the pins between runs.

mod keyring;
mod store;

pub use keyring::{ContactState, Joining, Keyring, NewKeys, Notice, Opened, Outgoing};
pub use store::{Pin, TrustStore};

use uuid::Uuid;

use crate::e2e::E2eError;

/// Why the keyring refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The trust file could not be read or written.
    #[error("the trust file {path} cannot be used: {reason}")]
    Store {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The conversation has not been joined (or started) by this keyring.
    #[error("that conversation is not joined")]
    NotJoined,
    /// The conversation is not end-to-end encrypted: send plain text (the assistant's).
    #[error("that conversation is not end-to-end encrypted")]
    NotEndToEnd,
    /// The person's own key for the conversation does not open.
    #[error("your key for this conversation cannot be opened: make a new one to write here")]
    OwnKeyUnopenable,
    /// These members' security keys changed and the person has not acknowledged it.
    #[error("the security key of {} member(s) changed: acknowledge it before sending", .0.len())]
    Blocked(Vec<Uuid>),
    /// These members have neither a signed key nor an identity to write to yet.
    #[error("{} member(s) cannot be written to until they sign in with a current client", .0.len())]
    Waiting(Vec<Uuid>),
    /// No such contact, or no identity of theirs to acknowledge or verify.
    #[error("that person has no security key to acknowledge or verify")]
    UnknownContact,
    /// Encryption failed.
    #[error(transparent)]
    E2e(#[from] E2eError),
}
