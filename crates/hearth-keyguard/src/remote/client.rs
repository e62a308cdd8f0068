//! Talking to a keyguard in another process.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt as _, StreamExt as _};
use hearth_ai::{Answer, ChatRequest, KeyFingerprint, ProviderName, TurnFailure};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use uuid::Uuid;

use super::{Call, Connection, Endpoint, Reply, codec};
use crate::certs::client_config;
use crate::sealed::{SealedKey, StoredKey};
use crate::{Envelope, ImageAnswer, KeyRef, KeyStatus, Keyguard, KeyguardError, PublicKey, SealRequest};

/// How long connecting (and the TLS handshake) may take before the keyguard counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for the next frame of an answer: above the assistant's overall deadline, so a
/// keyguard that is still working is not given up on, and a hung one is.
const REPLY_TIMEOUT: Duration = Duration::from_secs(150);
/// Connections kept for reuse.
const IDLE_CONNECTIONS: usize = 16;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

type Channel = Framed<Box<dyn Stream>, LengthDelimitedCodec>;

/// A keyguard in another process. Connections are opened on demand and reused; a keyguard
/// that is down makes calls fail with [`KeyguardError::Unavailable`] at once, and the next
/// call after it returns connects again.
pub struct RemoteKeyguard {
    endpoint: Endpoint,
    tls: Option<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)>,
    idle: Mutex<Vec<Channel>>,
}

impl std::fmt::Debug for RemoteKeyguard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeyguard").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl RemoteKeyguard {
    /// A client for the keyguard `connection` describes. Nothing is connected yet.
    pub fn new(connection: &Connection) -> Result<Self, KeyguardError> {
        let tls = match &connection.endpoint {
            Endpoint::Unix(_) => None,
            Endpoint::Tcp(address) => {
                let files = connection.tls.as_ref().ok_or_else(|| {
                    KeyguardError::Setup("a keyguard over TCP needs keyguard.ca, keyguard.cert and keyguard.key".into())
                })?;
                let host = connection.server_name.clone().unwrap_or_else(|| host_of(address).to_owned());
                let name = rustls::pki_types::ServerName::try_from(host)
                    .map_err(|e| KeyguardError::Setup(format!("keyguard server name: {e}")))?;
                Some((tokio_rustls::TlsConnector::from(client_config(files)?), name))
            }
        };
        Ok(Self { endpoint: connection.endpoint.clone(), tls, idle: Mutex::new(Vec::new()) })
    }

    async fn connect(&self) -> Result<Channel, KeyguardError> {
        let connecting = async {
            let stream: Box<dyn Stream> = match (&self.endpoint, &self.tls) {
                (Endpoint::Unix(path), _) => Box::new(tokio::net::UnixStream::connect(path).await?),
                (Endpoint::Tcp(address), Some((connector, name))) => {
                    let tcp = tokio::net::TcpStream::connect(address.as_str()).await?;
                    tcp.set_nodelay(true)?;
                    Box::new(connector.connect(name.clone(), tcp).await?)
                }
                (Endpoint::Tcp(_), None) => return Err(std::io::Error::other("no TLS settings")),
            };
            Ok::<_, std::io::Error>(Framed::new(stream, codec()))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(error)) => {
                tracing::warn!(endpoint = ?self.endpoint, %error, "keyguard unreachable");
                Err(KeyguardError::Unavailable)
            }
            Err(_) => {
                tracing::warn!(endpoint = ?self.endpoint, "keyguard did not answer the connection in time");
                Err(KeyguardError::Unavailable)
            }
        }
    }

    /// Sends `call` and reads its answer, passing `delta` frames to `deltas`. A kept connection
    /// that turns out to be dead (the keyguard restarted) is replaced once, if nothing had
    /// arrived on it yet.
    async fn call(&self, call: &Call, deltas: Option<&mpsc::UnboundedSender<String>>) -> Result<Reply, KeyguardError> {
        let frame = serde_json::to_vec(call).map_err(|e| KeyguardError::Protocol(e.to_string()))?;
        let mut retried = false;
        loop {
            let kept = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let reused = kept.is_some();
            let mut channel = match kept {
                Some(channel) => channel,
                None => self.connect().await?,
            };
            let mut heard = false;
            let outcome = async {
                channel.send(bytes::Bytes::from(frame.clone())).await?;
                loop {
                    let next = tokio::time::timeout(REPLY_TIMEOUT, channel.next())
                        .await
                        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
                    let bytes = next.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))??;
                    heard = true;
                    let reply: Reply = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
                    match reply {
                        Reply::Delta { text } => {
                            if let Some(deltas) = deltas {
                                let _ = deltas.send(text);
                            }
                        }
                        other => return Ok::<_, std::io::Error>(other),
                    }
                }
            }
            .await;
            match outcome {
                Ok(reply) => {
                    let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                    if idle.len() < IDLE_CONNECTIONS {
                        idle.push(channel);
                    }
                    return match reply {
                        Reply::Error { error } => Err(error),
                        reply => Ok(reply),
                    };
                }
                Err(_) if reused && !heard && !retried => retried = true,
                Err(error) => {
                    tracing::warn!(endpoint = ?self.endpoint, %error, "keyguard connection failed");
                    return Err(KeyguardError::Unavailable);
                }
            }
        }
    }
}

fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn unexpected(reply: &Reply) -> KeyguardError {
    KeyguardError::Protocol(format!("unexpected answer {reply:?}").chars().take(120).collect())
}

#[async_trait]
impl Keyguard for RemoteKeyguard {
    async fn public_key(&self) -> Result<PublicKey, KeyguardError> {
        match self.call(&Call::PublicKey, None).await? {
            Reply::PublicKey { key } => Ok(key),
            other => Err(unexpected(&other)),
        }
    }

    async fn seal(&self, request: SealRequest) -> Result<SealedKey, KeyguardError> {
        match self.call(&Call::Seal { request }, None).await? {
            Reply::Sealed { key } => Ok(key),
            other => Err(unexpected(&other)),
        }
    }

    async fn complete(
        &self,
        request: &ChatRequest,
        keys: Vec<KeyRef>,
        deltas: &mpsc::UnboundedSender<String>,
    ) -> Result<Result<Answer, TurnFailure>, KeyguardError> {
        match self.call(&Call::Complete { request: request.clone(), keys }, Some(deltas)).await? {
            Reply::Answer { result } => Ok(result),
            other => Err(unexpected(&other)),
        }
    }

    async fn generate_image(
        &self,
        prompt: &str,
        keys: Vec<KeyRef>,
    ) -> Result<Result<ImageAnswer, TurnFailure>, KeyguardError> {
        match self.call(&Call::GenerateImage { prompt: prompt.to_owned(), keys }, None).await? {
            Reply::Image { result: Ok(frame) } => Ok(Ok(frame.try_into()?)),
            Reply::Image { result: Err(failure) } => Ok(Err(failure)),
            other => Err(unexpected(&other)),
        }
    }

    async fn fingerprint(&self, key: &StoredKey) -> Result<KeyFingerprint, KeyguardError> {
        match self.call(&Call::Fingerprint { key: key.clone() }, None).await? {
            Reply::Fingerprint { fingerprint } => Ok(fingerprint),
            other => Err(unexpected(&other)),
        }
    }

    async fn rewrap(&self, key: &StoredKey) -> Result<Option<(Vec<u8>, u32)>, KeyguardError> {
        match self.call(&Call::Rewrap { key: key.clone() }, None).await? {
            Reply::Rewrapped { result } => Ok(result.map(|r| (r.sealed, r.version))),
            other => Err(unexpected(&other)),
        }
    }

    async fn key_states(&self, keys: Vec<KeyFingerprint>) -> Result<Vec<KeyStatus>, KeyguardError> {
        match self.call(&Call::KeyStates { keys }, None).await? {
            Reply::KeyStates { states } => Ok(states),
            other => Err(unexpected(&other)),
        }
    }

    async fn free_tier(&self) -> Result<Vec<(ProviderName, KeyFingerprint)>, KeyguardError> {
        match self.call(&Call::FreeTier, None).await? {
            Reply::FreeTier { keys } => Ok(keys),
            other => Err(unexpected(&other)),
        }
    }

    async fn check_request_keys(&self, user_id: Uuid, envelope: &Envelope) -> Result<(), KeyguardError> {
        match self.call(&Call::CheckRequestKeys { user_id, envelope: envelope.clone() }, None).await? {
            Reply::Checked => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}
