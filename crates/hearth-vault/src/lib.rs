//! Secrets at rest for hearth.
//!
//! Everything that turns a secret into something storable lives here: random one-time
//! tokens and their hashes ([`token`]), password hashing ([`password`]), sealing blobs
//! with a versioned key ring ([`seal`]) kept in step with its file ([`RingFile`]) and deriving purpose-bound keys from the server's
//! `secret_key_base` ([`ServerSecret`]). Secret material is held in zeroizing types and
//! never appears in `Debug` output or errors.

pub mod password;
mod ring_file;
pub mod seal;
mod server_secret;
pub mod token;

pub use password::{PasswordHasher, PasswordParams};
pub use ring_file::{RingFile, write_ring};
pub use seal::{KeyRing, SealContext};
pub use server_secret::ServerSecret;
pub use token::{RandomToken, TokenHash};

/// Everything that can go wrong in the vault. Variants never carry secret material.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A sealed blob did not open: wrong key, wrong context, or tampered bytes.
    #[error("sealed value could not be opened")]
    Open,
    /// A sealed blob names a key version the ring does not hold.
    #[error("sealed value uses unknown key version {0}")]
    UnknownKeyVersion(u32),
    /// A sealed blob is too short or has an unknown format byte.
    #[error("sealed value is malformed")]
    Malformed,
    /// A key file or key string could not be parsed.
    #[error("invalid key material: {0}")]
    InvalidKey(&'static str),
    /// Password hashing failed (parameters rejected by argon2).
    #[error("password hashing failed")]
    Hashing,
}
