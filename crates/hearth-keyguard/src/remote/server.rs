//! Serving a [`LocalKeyguard`] to other processes.

use std::future::Future;
use std::sync::Arc;

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use super::{Call, Reply, codec};
use crate::{Keyguard, KeyguardError, LocalKeyguard};

/// A bound listener.
pub enum Listener {
    /// A Unix socket.
    Unix(UnixListener),
    /// TCP, every connection a mutual-TLS handshake first.
    Tls(TcpListener, tokio_rustls::TlsAcceptor),
}

impl Listener {
    /// TCP with mutual TLS as `config` (see [`crate::certs::server_config`]) demands.
    pub fn tls(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> Self {
        Listener::Tls(listener, tokio_rustls::TlsAcceptor::from(config))
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listener::Unix(listener) => f.debug_tuple("Unix").field(listener).finish(),
            Listener::Tls(listener, _) => f.debug_tuple("Tls").field(listener).finish(),
        }
    }
}

/// Serves `keyguard` on `listener` until `shutdown` resolves; then its connections close.
pub async fn serve(listener: Listener, keyguard: Arc<LocalKeyguard>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = accept(&listener) => match accepted {
                Ok(connection) => {
                    let keyguard = keyguard.clone();
                    connections.spawn(async move { connection.run(keyguard).await });
                }
                Err(error) => {
                    tracing::warn!(%error, "keyguard accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// A connection about to be served (for TLS, the handshake is done in its own task).
enum Accepted {
    Unix(tokio::net::UnixStream),
    Tls(tokio::net::TcpStream, tokio_rustls::TlsAcceptor, std::net::SocketAddr),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Unix(listener) => Ok(Accepted::Unix(listener.accept().await?.0)),
        Listener::Tls(listener, acceptor) => {
            let (stream, peer) = listener.accept().await?;
            Ok(Accepted::Tls(stream, acceptor.clone(), peer))
        }
    }
}

impl Accepted {
    async fn run(self, keyguard: Arc<LocalKeyguard>) {
        match self {
            Accepted::Unix(stream) => connection(stream, keyguard).await,
            Accepted::Tls(stream, acceptor, peer) => match acceptor.accept(stream).await {
                Ok(stream) => connection(stream, keyguard).await,
                // A client without a certificate from our CA ends here.
                Err(error) => tracing::warn!(%peer, %error, "keyguard refused a TLS client"),
            },
        }
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, keyguard: Arc<LocalKeyguard>) {
    let mut framed = Framed::new(stream, codec());
    while let Some(Ok(frame)) = framed.next().await {
        let call: Call = match serde_json::from_slice(&frame) {
            Ok(call) => call,
            Err(_) => {
                let error = KeyguardError::Protocol("a call the keyguard does not understand".into());
                let _ = send(&mut framed, &Reply::Error { error }).await;
                break;
            }
        };
        if answer(&mut framed, &keyguard, call).await.is_err() {
            break;
        }
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, tokio_util::codec::LengthDelimitedCodec>,
    keyguard: &LocalKeyguard,
    call: Call,
) -> std::io::Result<()> {
    let reply = match call {
        Call::PublicKey => keyguard.public_key().await.map(|key| Reply::PublicKey { key }),
        Call::Seal { request } => keyguard.seal(request).await.map(|key| Reply::Sealed { key }),
        Call::Complete { request, keys } => {
            let (deltas, mut received) = mpsc::unbounded_channel();
            let work = keyguard.complete(&request, keys, &deltas);
            tokio::pin!(work);
            let result = loop {
                tokio::select! {
                    biased;
                    Some(text) = received.recv() => send(framed, &Reply::Delta { text }).await?,
                    result = &mut work => break result,
                }
            };
            while let Ok(text) = received.try_recv() {
                send(framed, &Reply::Delta { text }).await?;
            }
            result.map(|result| Reply::Answer { result })
        }
        Call::GenerateImage { prompt, keys } => {
            keyguard.generate_image(&prompt, keys).await.map(|result| Reply::Image { result: result.map(Into::into) })
        }
        Call::Fingerprint { key } => {
            keyguard.fingerprint(&key).await.map(|fingerprint| Reply::Fingerprint { fingerprint })
        }
        Call::Rewrap { key } => keyguard.rewrap(&key).await.map(|result| Reply::Rewrapped {
            result: result.map(|(sealed, version)| super::Rewrapped { sealed, version }),
        }),
        Call::KeyStates { keys } => keyguard.key_states(keys).await.map(|states| Reply::KeyStates { states }),
        Call::FreeTier => keyguard.free_tier().await.map(|keys| Reply::FreeTier { keys }),
    };
    send(framed, &reply.unwrap_or_else(|error| Reply::Error { error })).await
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, tokio_util::codec::LengthDelimitedCodec>,
    reply: &Reply,
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    framed.send(bytes::Bytes::from(bytes)).await
}
