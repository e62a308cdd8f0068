//! The error type of the REST client.

use std::collections::BTreeMap;

use reqwest::StatusCode;

use crate::e2e::E2eError;

/// Everything a [`Client`](super::Client) call can fail with. No variant carries a token, a
/// password or an `auth_secret`, in `Display` or in `Debug`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with hearth's error body `{"error", "message"}` (docs/ARCHITECTURE.md).
    #[error("{status}: {message} ({code})")]
    Api {
        /// The HTTP status: 400 malformed, 401 no or bad token, 403, 404, 409, 413, 422, 429…
        status: StatusCode,
        /// The machine-readable `error` code, such as `unauthorized`, `not_found`, `invalid`,
        /// `email_taken`, `rate_limited`.
        code: String,
        /// The `message`, written for a person.
        message: String,
        /// The problems per field (`fields`, 422 only).
        fields: BTreeMap<String, Vec<String>>,
        /// Seconds until a retry can succeed (`retryAfter`, 429 only).
        retry_after: Option<u64>,
    },
    /// The server answered something other than hearth's API: an unexpected status without
    /// an error body, or a body not of the expected shape. `detail` never quotes the body.
    #[error("unexpected reply ({status}) to {endpoint}: {detail}")]
    UnexpectedReply {
        /// The HTTP status.
        status: StatusCode,
        /// The endpoint, such as `GET /api/me`.
        endpoint: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The request did not get an answer: connection refused, timeout, TLS failure…
    #[error("transport error: {0}")]
    Transport(#[from] reqwest::Error),
    /// The call needs a session and there is none: never signed in, signed out with
    /// [`signout_all`](super::Client::signout_all) or by revoking this device, or the
    /// session ended (a refresh was refused).
    #[error("not signed in")]
    NotSignedIn,
    /// The base URL is not an absolute `http` or `https` URL.
    #[error("invalid base URL: {0}")]
    InvalidUrl(String),
    /// A new password is shorter than [`MIN_PASSWORD_CHARS`](super::MIN_PASSWORD_CHARS). The
    /// server cannot tell (it only ever sees the derived `auth_secret`), so the client checks.
    #[error("a password must be at least {} characters long", super::MIN_PASSWORD_CHARS)]
    PasswordTooShort,
    /// The account's stored identity does not open with this password (or is not the one
    /// published): end-to-end messages cannot be read or sent until it is replaced
    /// ([`replace_identity`](super::Client::replace_identity)).
    #[error("your security key does not open with this password: replace it to write end-to-end")]
    IdentityUnopenable,
    /// End-to-end encryption failed.
    #[error(transparent)]
    Crypto(#[from] E2eError),
}

impl ClientError {
    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } | ClientError::UnexpectedReply { status, .. } => Some(*status),
            ClientError::Transport(error) => error.status(),
            _ => None,
        }
    }

    /// The API's error code (`unauthorized`, `not_found`, …), for an [`Api`](Self::Api) error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the user has to sign in again: a 401 the automatic refresh could not cure, or
    /// no session at all.
    pub fn needs_sign_in(&self) -> bool {
        matches!(self, ClientError::NotSignedIn) || self.status() == Some(StatusCode::UNAUTHORIZED)
    }
}
