//! The socket: one WebSocket owned by a background task, calls matched to their replies by
//! ref, everything else fanned out to subscribers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::Url;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::ChannelError;
use super::frame::{Frame, ref_key};

type Stream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The Phoenix serializer this client speaks.
const VSN: &str = "2.0.0";

/// How a [`Socket`] behaves; the defaults are the Phoenix JS client's.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// How long a join or push waits for its reply (and connecting for the upgrade).
    pub reply_timeout: Duration,
    /// How often a heartbeat is sent; a heartbeat still unanswered when the next is due
    /// closes the socket (`Closed { code: None }`).
    pub heartbeat_interval: Duration,
    /// How many incoming events each subscriber may fall behind before it misses some.
    pub event_capacity: usize,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            reply_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(30),
            event_capacity: 1024,
        }
    }
}

/// An event the server pushed or broadcast on a topic (anything but a reply).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The topic, such as `user:{id}`.
    pub topic: String,
    /// The event name, such as `new_message`.
    pub event: String,
    /// The payload (always an object from hearth).
    pub payload: Value,
}

/// A connected Phoenix socket (serializer 2.0.0). Calls take `&self`, so one socket can be
/// shared between tasks (in an `Arc`). Dropping it closes the connection.
///
/// There is no automatic reconnect yet: once closed, calls fail with
/// [`ChannelError::Closed`] and the owner connects a new socket (with a fresh access token)
/// and joins its topics again.
#[derive(Debug)]
pub struct Socket {
    shared: Arc<Shared>,
    outgoing: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    options: SocketOptions,
}

/// What the background task is asked to do.
#[derive(Debug)]
enum Command {
    Send(String),
    Close,
}

/// A reply to a join or push.
#[derive(Debug)]
struct Reply {
    status: String,
    response: Value,
}

/// A call waiting for its reply.
#[derive(Debug)]
struct Pending {
    reply: oneshot::Sender<Reply>,
    /// The topic, when the call is a join (an ok reply makes its ref the topic's join ref).
    joins: Option<String>,
}

/// What the socket and its task share.
#[derive(Debug)]
struct Shared {
    next_ref: AtomicU64,
    /// Calls waiting for replies, by ref. Closing takes this lock too, so no call is filed
    /// after the socket closed.
    pending: Mutex<Calls>,
    /// The current join ref of each joined topic.
    join_refs: Mutex<HashMap<String, String>>,
    events: broadcast::Sender<Event>,
    /// `None` while open; then the close code, if any.
    closed: watch::Sender<Option<Option<u16>>>,
}

#[derive(Debug, Default)]
struct Calls {
    closed: bool,
    waiting: HashMap<String, Pending>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Socket {
    /// Connects to the hearth server at `base_url` (`https://chat.example.org`, a path kept as
    /// a prefix; `http` becomes `ws`, `https` becomes `wss`) with an access token, sent as
    /// the `token` connect param: `…/socket/websocket?token=…&vsn=2.0.0`.
    pub async fn connect(base_url: &str, access_token: &str) -> Result<Self, ChannelError> {
        Self::connect_with(base_url, access_token, SocketOptions::default()).await
    }

    /// [`connect`](Self::connect) with other [`SocketOptions`].
    pub async fn connect_with(
        base_url: &str,
        access_token: &str,
        options: SocketOptions,
    ) -> Result<Self, ChannelError> {
        let url = socket_url(base_url, access_token)?;
        let connector = if url.scheme() == "wss" { Some(Connector::Rustls(Arc::new(tls_config()?))) } else { None };
        let connecting = tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, false, connector);
        let (stream, _) = tokio::time::timeout(options.reply_timeout, connecting)
            .await
            .map_err(|_| ChannelError::Timeout)?
            .map_err(connect_error)?;
        let shared = Arc::new(Shared {
            next_ref: AtomicU64::new(1),
            pending: Mutex::new(Calls::default()),
            join_refs: Mutex::new(HashMap::new()),
            events: broadcast::channel(options.event_capacity.max(1)).0,
            closed: watch::channel(None).0,
        });
        let (outgoing, commands) = mpsc::channel(64);
        let task = tokio::spawn(run(stream, commands, shared.clone(), options.heartbeat_interval));
        Ok(Self { shared, outgoing, task, options })
    }

    /// Joins `topic` with `payload`: the join reply's `response`, or
    /// [`ChannelError::Refused`] with the server's reason. Joining a joined topic again
    /// replaces the channel (a fresh join reply, as after a reconnect).
    pub async fn join(&self, topic: &str, payload: Value) -> Result<Value, ChannelError> {
        self.call(topic, "phx_join", payload).await
    }

    /// Leaves `topic`.
    pub async fn leave(&self, topic: &str) -> Result<(), ChannelError> {
        let left = self.call(topic, "phx_leave", json!({})).await;
        lock(&self.shared.join_refs).remove(topic);
        left.map(drop)
    }

    /// Pushes `event` on a joined `topic` and waits for the reply: its `response` when the
    /// status is `ok`, [`ChannelError::Refused`] with the server's reason otherwise (a topic
    /// not joined is refused with `unmatched topic`).
    pub async fn push(&self, topic: &str, event: &str, payload: Value) -> Result<Value, ChannelError> {
        self.call(topic, event, payload).await
    }

    /// A subscription to every event pushed or broadcast from now on, on every topic.
    pub fn events(&self) -> Events {
        Events { events: self.shared.events.subscribe(), closed: self.shared.closed.subscribe() }
    }

    /// Whether the socket is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.borrow().is_some()
    }

    /// Closes the socket (close code 1000) and waits for the background task to end.
    pub async fn close(self) {
        let _ = self.outgoing.send(Command::Close).await;
        let _ = self.task.await;
    }

    async fn call(&self, topic: &str, event: &str, payload: Value) -> Result<Value, ChannelError> {
        let reference = self.shared.next_ref.fetch_add(1, Ordering::Relaxed).to_string();
        let join = event == "phx_join";
        let join_ref = if join {
            Value::String(reference.clone())
        } else {
            lock(&self.shared.join_refs).get(topic).cloned().map_or(Value::Null, Value::String)
        };
        let (reply, replied) = oneshot::channel();
        {
            let mut calls = lock(&self.shared.pending);
            if calls.closed {
                return Err(self.closed_error());
            }
            let joins = join.then(|| topic.to_owned());
            calls.waiting.insert(reference.clone(), Pending { reply, joins });
        }
        let frame = Frame {
            join_ref,
            reference: Value::String(reference.clone()),
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        };
        if self.outgoing.send(Command::Send(frame.encode())).await.is_err() {
            lock(&self.shared.pending).waiting.remove(&reference);
            return Err(self.closed_error());
        }
        let reply = match tokio::time::timeout(self.options.reply_timeout, replied).await {
            Err(_) => {
                lock(&self.shared.pending).waiting.remove(&reference);
                return Err(ChannelError::Timeout);
            }
            Ok(Err(_)) => return Err(self.closed_error()),
            Ok(Ok(reply)) => reply,
        };
        if reply.status == "ok" {
            Ok(reply.response)
        } else {
            let reason = reply.response.get("reason").and_then(Value::as_str).map(str::to_owned);
            Err(ChannelError::Refused { reason: reason.unwrap_or(reply.status) })
        }
    }

    fn closed_error(&self) -> ChannelError {
        ChannelError::Closed { code: self.shared.closed.borrow().flatten() }
    }
}

/// A subscription to a socket's incoming events (see [`Socket::events`]).
#[derive(Debug)]
pub struct Events {
    events: broadcast::Receiver<Event>,
    closed: watch::Receiver<Option<Option<u16>>>,
}

impl Events {
    /// The next event; once the socket is closed and the events received before are
    /// read, [`ChannelError::Closed`]. A subscriber that fell behind gets
    /// [`ChannelError::Lagged`] once and then the events that are left.
    pub async fn recv(&mut self) -> Result<Event, ChannelError> {
        loop {
            match self.events.try_recv() {
                Ok(event) => return Ok(event),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => return Err(ChannelError::Lagged { missed }),
                Err(broadcast::error::TryRecvError::Closed) => return Err(self.closed_error()),
                Err(broadcast::error::TryRecvError::Empty) => {}
            }
            if let Some(code) = *self.closed.borrow_and_update() {
                return Err(ChannelError::Closed { code });
            }
            tokio::select! {
                event = self.events.recv() => match event {
                    Ok(event) => return Ok(event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => return Err(ChannelError::Lagged { missed }),
                    Err(broadcast::error::RecvError::Closed) => return Err(self.closed_error()),
                },
                changed = self.closed.changed() => {
                    if changed.is_err() {
                        return Err(self.closed_error());
                    }
                }
            }
        }
    }
}

impl Events {
    /// The close error: the code the socket closed with, once known.
    fn closed_error(&self) -> ChannelError {
        ChannelError::Closed { code: self.closed.borrow().flatten() }
    }
}

/// The WebSocket URL of the server at `base_url`.
fn socket_url(base_url: &str, access_token: &str) -> Result<Url, ChannelError> {
    let mut url = Url::parse(base_url).map_err(|error| ChannelError::InvalidUrl(error.to_string()))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(ChannelError::InvalidUrl("not an http(s) or ws(s) URL".to_owned())),
    };
    if url.cannot_be_a_base() || url.set_scheme(scheme).is_err() {
        return Err(ChannelError::InvalidUrl("not an http(s) or ws(s) URL".to_owned()));
    }
    let path = format!("{}/socket/websocket", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_fragment(None);
    url.set_query(None);
    url.query_pairs_mut().append_pair("token", access_token).append_pair("vsn", VSN);
    Ok(url)
}

/// The TLS setup of the REST client: rustls (aws-lc-rs) with the platform's verifier.
fn tls_config() -> Result<rustls::ClientConfig, ChannelError> {
    use rustls_platform_verifier::ConfigVerifierExt as _;
    rustls::ClientConfig::with_platform_verifier().map_err(|error| ChannelError::Connect(error.to_string()))
}

/// A connect failure, without the URL (its query holds the token).
fn connect_error(error: tungstenite::Error) -> ChannelError {
    match error {
        tungstenite::Error::Http(response) => ChannelError::Rejected { status: response.status().as_u16() },
        tungstenite::Error::Url(_) => ChannelError::Connect("unable to connect to the server".to_owned()),
        other => ChannelError::Connect(other.to_string()),
    }
}

/// The background task: owns the stream until it closes, then fails every waiting call.
async fn run(mut stream: Stream, mut commands: mpsc::Receiver<Command>, shared: Arc<Shared>, heartbeat: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heartbeat_ref: Option<String> = None;
    let code = loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Send(text)) => {
                    if stream.send(Message::text(text)).await.is_err() {
                        break None;
                    }
                }
                // Close asked for, or the socket dropped.
                Some(Command::Close) | None => {
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                    let _ = stream.close(Some(frame)).await;
                    break Some(1000);
                }
            },
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => shared.route(text.as_str(), &mut heartbeat_ref),
                Some(Ok(Message::Close(frame))) => {
                    // Answers the close frame.
                    let _ = stream.close(None).await;
                    break frame.map(|frame| u16::from(frame.code));
                }
                // Pings are answered by tungstenite; hearth sends JSON as text frames only.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            },
            _ = ticker.tick() => {
                if heartbeat_ref.is_some() {
                    // The previous heartbeat was never answered: the connection is dead.
                    break None;
                }
                let reference = shared.next_ref.fetch_add(1, Ordering::Relaxed).to_string();
                let frame = Frame {
                    join_ref: Value::Null,
                    reference: Value::String(reference.clone()),
                    topic: "phoenix".to_owned(),
                    event: "heartbeat".to_owned(),
                    payload: json!({}),
                };
                if stream.send(Message::text(frame.encode())).await.is_err() {
                    break None;
                }
                heartbeat_ref = Some(reference);
            }
        }
    };
    shared.close(code);
}

impl Shared {
    /// Handles one incoming text frame.
    fn route(&self, text: &str, heartbeat_ref: &mut Option<String>) {
        let Some(frame) = Frame::decode(text) else { return };
        if frame.event == "phx_reply" {
            let Some(reference) = frame.reference_key() else { return };
            if heartbeat_ref.as_ref() == Some(&reference) {
                *heartbeat_ref = None;
                return;
            }
            let Some(pending) = lock(&self.pending).waiting.remove(&reference) else { return };
            let status = frame.payload.get("status").and_then(Value::as_str).unwrap_or("error").to_owned();
            let response = frame.payload.get("response").cloned().unwrap_or_else(|| json!({}));
            if let (Some(topic), "ok") = (pending.joins, status.as_str()) {
                // Before the next frame is read: pushes right after the join carry this ref.
                lock(&self.join_refs).insert(topic, reference);
            }
            let _ = pending.reply.send(Reply { status, response });
            return;
        }
        if let Some(join_ref) = ref_key(&frame.join_ref) {
            let mut join_refs = lock(&self.join_refs);
            if join_refs.get(&frame.topic) != Some(&join_ref) {
                // A stale channel's frame (such as the close of a replaced join).
                return;
            }
            if matches!(frame.event.as_str(), "phx_close" | "phx_error") {
                join_refs.remove(&frame.topic);
            }
        }
        let _ = self.events.send(Event { topic: frame.topic, event: frame.event, payload: frame.payload });
    }

    /// Marks the socket closed and fails every waiting call.
    fn close(&self, code: Option<u16>) {
        let mut calls = lock(&self.pending);
        calls.closed = true;
        self.closed.send_replace(Some(code));
        // Dropping the senders wakes the callers, who read the close code.
        calls.waiting.clear();
        drop(calls);
        lock(&self.join_refs).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_url_keeps_the_prefix_and_escapes_the_token() {
        let url = socket_url("https://chat.example.org/hearth/", "a+b/c=").expect("a URL");
        assert_eq!(url.as_str(), "wss://chat.example.org/hearth/socket/websocket?token=a%2Bb%2Fc%3D&vsn=2.0.0");
        let url = socket_url("http://127.0.0.1:4000", "t").expect("a URL");
        assert_eq!(url.as_str(), "ws://127.0.0.1:4000/socket/websocket?token=t&vsn=2.0.0");
        assert!(matches!(socket_url("ftp://example.org", "t"), Err(ChannelError::InvalidUrl(_))));
    }

    #[test]
    fn the_tls_setup_builds() {
        tls_config().expect("a rustls client config with the platform verifier");
    }

    #[test]
    fn errors_never_show_the_token() {
        let error = socket_url("not a url", "secret-token").expect_err("invalid");
        assert!(!error.to_string().contains("secret-token"));
    }
}
