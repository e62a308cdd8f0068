//! The one error type of the channel client.

/// Why a socket call failed. Never carries a token: connect failures keep the reason, not
/// the URL (whose query holds the access token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The base URL is not an absolute `http(s)` or `ws(s)` URL.
    #[error("invalid base URL: {0}")]
    InvalidUrl(String),
    /// The server refused the WebSocket upgrade with this HTTP status: 403 is a missing, bad
    /// or expired access token (refresh the session and connect again).
    #[error("the server refused the socket: HTTP {status}")]
    Rejected {
        /// The HTTP status of the refusal.
        status: u16,
    },
    /// The connection could not be made (DNS, TCP, TLS, handshake).
    #[error("could not connect: {0}")]
    Connect(String),
    /// The server answered a join or a push with an error reply; the socket stays up.
    #[error("refused: {reason}")]
    Refused {
        /// The server's `reason` (or the reply status when it gave none).
        reason: String,
    },
    /// No reply within the socket's reply timeout.
    #[error("no reply in time")]
    Timeout,
    /// The socket is closed: by the server with this close code, by [`close`](super::Socket::close)
    /// (1000), or without a close frame (`None`: the connection dropped or stopped answering
    /// heartbeats).
    #[error("the socket is closed (close code {code:?})")]
    Closed {
        /// The WebSocket close code, when there was a close frame.
        code: Option<u16>,
    },
    /// The connection dropped and the socket is reconnecting: the call was not sent, or its
    /// reply was lost. Calls work again after the `reconnected` event (see
    /// [`Socket`](super::Socket)); the socket does not queue them.
    #[error("the connection dropped; the socket is reconnecting")]
    Reconnecting,
    /// An event subscriber fell behind and missed this many events (it keeps receiving).
    #[error("missed {missed} events")]
    Lagged {
        /// How many events were dropped for this subscriber.
        missed: u64,
    },
}
