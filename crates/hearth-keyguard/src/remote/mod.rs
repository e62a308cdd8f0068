//! The keyguard as its own process: one JSON message per length-prefixed frame, over a Unix
//! socket (mode 0600) or TCP with mutual TLS.
//!
//! A call is one frame; its answer is one frame, except that `complete` first streams `delta`
//! frames. Connections are kept and reused. The framing is tokio-util's length-delimited codec;
//! the messages are serde types, so this is all the protocol there is (a gRPC stack would need
//! a code generator and add nothing here).

mod client;
mod server;

use std::path::PathBuf;

use hearth_ai::{Answer, Attempt, ChatRequest, GeneratedImage, KeyFingerprint, ProviderName, TurnFailure};
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

pub use client::RemoteKeyguard;
pub use server::{Listener, serve, serve_at};

use crate::certs::TlsFiles;
use crate::sealed::{SealedKey, StoredKey, base64_bytes};
use crate::{ImageAnswer, KeyRef, KeyStatus, KeyguardError, PublicKey, SealRequest};

/// Largest frame either side accepts (a generated image is the biggest).
const MAX_FRAME: usize = 48 * 1024 * 1024;

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec()
}

/// Where a keyguard listens, or is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// A TCP address (`host:port`), with mutual TLS.
    Tcp(String),
}

impl Endpoint {
    /// `unix:PATH` or `tcp:HOST:PORT`.
    pub fn parse(text: &str) -> Result<Self, KeyguardError> {
        match text.split_once(':') {
            Some(("unix", path)) if !path.is_empty() => Ok(Endpoint::Unix(PathBuf::from(path))),
            Some(("tcp", address)) if address.contains(':') => Ok(Endpoint::Tcp(address.to_owned())),
            _ => Err(KeyguardError::Setup(format!("keyguard address {text:?}: expected unix:PATH or tcp:HOST:PORT"))),
        }
    }
}

/// How a server reaches a keyguard: where, and for TCP its certificates and the name the
/// keyguard's certificate carries.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Where.
    pub endpoint: Endpoint,
    /// For TCP: CA, client certificate and key.
    pub tls: Option<TlsFiles>,
    /// For TCP: the keyguard's name in its certificate (defaults to the address's host).
    pub server_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
enum Call {
    PublicKey,
    Seal { request: SealRequest },
    Complete { request: ChatRequest, keys: Vec<KeyRef> },
    GenerateImage { prompt: String, keys: Vec<KeyRef> },
    Fingerprint { key: StoredKey },
    Rewrap { key: StoredKey },
    KeyStates { keys: Vec<KeyFingerprint> },
    FreeTier,
    CheckRequestKeys { user_id: uuid::Uuid, envelope: crate::Envelope },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
enum Reply {
    PublicKey { key: PublicKey },
    Sealed { key: SealedKey },
    Delta { text: String },
    Answer { result: Result<Answer, TurnFailure> },
    Image { result: Result<ImageFrame, TurnFailure> },
    Fingerprint { fingerprint: KeyFingerprint },
    Rewrapped { result: Option<Rewrapped> },
    KeyStates { states: Vec<KeyStatus> },
    FreeTier { keys: Vec<(ProviderName, KeyFingerprint)> },
    Checked,
    Error { error: KeyguardError },
}

#[derive(Debug, Serialize, Deserialize)]
struct Rewrapped {
    #[serde(with = "base64_bytes")]
    sealed: Vec<u8>,
    version: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct ImageFrame {
    #[serde(with = "base64_bytes")]
    bytes: Vec<u8>,
    content_type: String,
    revised_prompt: Option<String>,
    provider: ProviderName,
    attempts: Vec<Attempt>,
}

impl From<ImageAnswer> for ImageFrame {
    fn from(answer: ImageAnswer) -> Self {
        Self {
            bytes: answer.image.bytes,
            content_type: answer.image.content_type.to_owned(),
            revised_prompt: answer.image.revised_prompt,
            provider: answer.provider,
            attempts: answer.attempts,
        }
    }
}

impl TryFrom<ImageFrame> for ImageAnswer {
    type Error = KeyguardError;

    fn try_from(frame: ImageFrame) -> Result<Self, KeyguardError> {
        // The media types hearth knows; anything else is a confused peer.
        let content_type = ["image/png", "image/jpeg", "image/webp"]
            .into_iter()
            .find(|known| *known == frame.content_type)
            .ok_or_else(|| KeyguardError::Protocol("unknown image type".into()))?;
        Ok(ImageAnswer {
            image: GeneratedImage { bytes: frame.bytes, content_type, revised_prompt: frame.revised_prompt },
            provider: frame.provider,
            attempts: frame.attempts,
        })
    }
}
