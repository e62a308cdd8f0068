//! The terminal client's errors: [`ChatError`], a request of the person's that failed, which
//! ends up as a line in the status bar; and [`RunError`], why the client could not run at all.
//! Both only say what went wrong, without secrets (the SDK's errors never carry a token or a
//! password).

use hearth_client::{ChannelError, ClientError, TrustError};

/// Why a request of the person's could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// A REST call failed.
    #[error("{0}")]
    Api(#[from] ClientError),
    /// A socket call failed (the server's refusals arrive here with its reason).
    #[error("{0}")]
    Channel(#[from] ChannelError),
    /// The keyring refused, or its trust file cannot be used.
    #[error("{0}")]
    Trust(#[from] TrustError),
    /// The client itself will not do it, for this reason.
    #[error("{0}")]
    Refused(String),
}

impl ChatError {
    /// Whether the server could not be reached at all (nothing answered, or not in time).
    pub fn unreachable(&self) -> bool {
        match self {
            ChatError::Api(ClientError::Transport(error)) => error.is_connect() || error.is_timeout(),
            ChatError::Channel(ChannelError::Connect(_)) => true,
            _ => false,
        }
    }

    /// Whether the session is over and the person must sign in again.
    pub fn needs_sign_in(&self) -> bool {
        match self {
            ChatError::Api(error) => error.needs_sign_in(),
            ChatError::Channel(ChannelError::Rejected { status }) => matches!(status, 401 | 403),
            _ => false,
        }
    }

    /// What happened, in words, naming `server` when it cannot be reached.
    pub fn describe(&self, server: &str) -> String {
        if self.unreachable() {
            return format!("server unreachable: nothing answers at {server} (is it running?)");
        }
        self.to_string()
    }
}

/// Why [`run`](crate::run) ended with an error; what the server sends never ends it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The server URL (`--server`) is not one the SDK can use.
    #[error("invalid --server")]
    InvalidServer(#[source] ClientError),
    /// The terminal could not be put in raw mode on the alternate screen.
    #[error("cannot take over the terminal")]
    TakeOver(#[source] std::io::Error),
    /// Drawing the screen failed.
    #[error("cannot draw")]
    Draw(#[source] std::io::Error),
    /// `--logout` could not read or remove the kept session's file.
    #[error("cannot sign out")]
    Logout(#[source] ChatError),
    /// Reading keys from the terminal failed.
    #[error("cannot read the terminal")]
    ReadKeys(#[source] std::io::Error),
}
