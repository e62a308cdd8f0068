//! A faithful fake of six AI providers' HTTP APIs, for hearth's tests and benchmarks.
//!
//! One listener serves every provider under a path prefix that mirrors its real base URL:
//!
//! | provider | base URL | endpoints |
//! |---|---|---|
//! | `openai` | `{root}/openai/v1` | `POST /chat/completions`, `POST /images/generations`, `GET /models` |
//! | `groq` | `{root}/groq/openai/v1` | `POST /chat/completions`, `GET /models` |
//! | `cerebras` | `{root}/cerebras/v1` | `POST /chat/completions`, `GET /models` |
//! | `openrouter` | `{root}/openrouter/api/v1` | `POST /chat/completions`, `GET /models` |
//! | `gemini` | `{root}/gemini` | `POST /v1beta/models/{model}:generateContent`, `POST /v1beta/models/{model}:streamGenerateContent[?alt=sse]`, `GET /v1beta/models` |
//! | `anthropic` | `{root}/anthropic` | `POST /v1/messages`, `GET /v1/models` |
//!
//! where `{root}` is `http://127.0.0.1:PORT`. Bodies, stream events, usage fields and error
//! shapes follow each provider's wire format (`docs/providers.md` and the provider modules of `hearth-ai`).
//!
//! **Keys** are checked where each provider expects them: `Authorization: Bearer KEY`
//! (OpenAI-compatible), `x-goog-api-key` (Gemini; a `key=` query parameter is refused with
//! 400 `INVALID_ARGUMENT`), `x-api-key` plus `anthropic-version` (Anthropic). A missing key is
//! a 401 in the provider's error shape.
//!
//! **Answers** are deterministic: `"{provider} reply to: {last user message text}"`. Streams
//! send one delta per word, each keeping its trailing space, so the deltas concatenate to the
//! exact text. The first streamed Gemini chunk also carries a part holding only a
//! `thoughtSignature`, as real Gemini's do.
//!
//! **Scenarios** are chosen by the key: a key containing `fake-<scenario>-` behaves as that
//! [`Scenario`] (for example `gsk_fake-rate_limited-0123…`); any other key answers normally.
//! [`Provider::key_for`] builds such keys.
//!
//! **Recording**: every provider request is kept as a [`RecordedRequest`] (the newest
//! [`RECORD_CAPACITY`]), readable with [`FakeProvider::requests`] or `GET {root}/_fake/requests`
//! and cleared with `DELETE {root}/_fake/requests`.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use hearth_fake_provider::FakeProvider;
//!
//! let fake = FakeProvider::start().await?;
//! let groq = fake.base_url("groq").expect("a known provider");
//! // Point the client at `groq`, call it with key "gsk_fake-quota-0123", expect a 429.
//! # Ok(()) }
//! ```

mod body;
mod failure;
mod http;
mod plan;
mod png;
mod provider;
mod record;
mod reply;
mod scenario;
mod server;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use provider::Provider;
pub use record::{KeySource, RECORD_CAPACITY, RecordedRequest};
pub use scenario::{Scenario, ScenarioError};

use http::AppState;
use record::Recorder;

/// A fake provider server on `127.0.0.1` at a free port, recording what it receives. The
/// server and its open connections stop when this value is dropped.
#[derive(Debug)]
pub struct FakeProvider {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    server: JoinHandle<()>,
}

impl FakeProvider {
    /// Binds `127.0.0.1:0` and starts serving, with recording on.
    pub async fn start() -> io::Result<FakeProvider> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let recorder = Arc::new(Recorder::new(true));
        let app = http::router(AppState::new(Arc::clone(&recorder)));
        let server = tokio::spawn(server::run(listener, app));
        Ok(FakeProvider { addr, recorder, server })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's root URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn root(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL to configure for the provider named `provider` (`openai groq cerebras
    /// openrouter gemini anthropic`), e.g. `http://127.0.0.1:PORT/groq/openai/v1`; `None` for
    /// any other name.
    pub fn base_url(&self, provider: &str) -> Option<String> {
        Provider::from_name(provider).map(|p| format!("{}{}", self.root(), p.base_path()))
    }

    /// The provider requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorder.snapshot()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.recorder.clear();
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves the fake on `listener` until this future is dropped, recording requests only when
/// `record` is true. Failed accepts (such as running out of file descriptors) are retried, so
/// the only error is a listener that is unusable from the start.
pub async fn serve(listener: TcpListener, record: bool) -> io::Result<()> {
    listener.local_addr()?;
    let recorder = Arc::new(Recorder::new(record));
    server::run(listener, http::router(AppState::new(recorder))).await;
    Ok(())
}
