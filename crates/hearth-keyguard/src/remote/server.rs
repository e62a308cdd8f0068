//! Serving a [`LocalKeyguard`] to other processes.

use std::future::Future;
use std::sync::Arc;

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use super::{Call, Endpoint, Reply, codec};
use crate::certs::TlsFiles;
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

/// Runs `keyguard` as its own process (`hearth keyguard --listen …`) until `shutdown`:
/// `unix:PATH` (the socket made readable by this user only) or `tcp:HOST:PORT` with mutual TLS
/// (`tls`: its CA, certificate and key; clients need a certificate from the same CA).
pub async fn serve_at(
    keyguard: LocalKeyguard,
    address: &str,
    tls: Option<TlsFiles>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), KeyguardError> {
    let io = |e: std::io::Error| KeyguardError::Setup(format!("keyguard listener {address}: {e}"));
    let endpoint = Endpoint::parse(address)?;
    let listener = match &endpoint {
        Endpoint::Unix(path) => {
            // A socket file left by an earlier run that did not stop cleanly.
            if std::os::unix::net::UnixStream::connect(path).is_err() {
                let _ = std::fs::remove_file(path);
            }
            let listener = UnixListener::bind(path).map_err(io)?;
            #[cfg(unix)]
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(io)?;
            tracing::info!(socket = %path.display(), "keyguard listening");
            Listener::Unix(listener)
        }
        Endpoint::Tcp(address) => {
            let files = tls.ok_or_else(|| {
                KeyguardError::Setup(
                    "a keyguard on TCP needs --ca, --cert and --key (see `hearth keyguard certs`)".into(),
                )
            })?;
            let config = crate::certs::server_config(&files)?;
            let listener = TcpListener::bind(address).await.map_err(io)?;
            tracing::info!(address = %listener.local_addr().map_err(io)?, "keyguard listening (mutual TLS)");
            Listener::tls(listener, config)
        }
    };
    serve(listener, Arc::new(keyguard), shutdown).await;
    if let Endpoint::Unix(path) = endpoint {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
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
        Call::CheckRequestKeys { user_id, envelope } => {
            keyguard.check_request_keys(user_id, &envelope).await.map(|()| Reply::Checked)
        }
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
