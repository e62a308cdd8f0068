//! The one error type of the terminal client: every failure ends up as a line in the status
//! bar, so it only has to say what went wrong, without secrets (the SDK's errors never carry
//! a token or a password).

use hearth_client::{ChannelError, ClientError, E2eError};

/// Why a request of the person's could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// A REST call failed.
    #[error("{0}")]
    Api(#[from] ClientError),
    /// A socket call failed (the server's refusals arrive here with its reason).
    #[error("{0}")]
    Channel(#[from] ChannelError),
    /// Encrypting or opening a key failed.
    #[error("encryption: {0}")]
    Crypto(#[from] E2eError),
    /// The client itself will not do it, for this reason.
    #[error("{0}")]
    Refused(String),
}
