//! The socket: one WebSocket owned by a background task, calls matched to their replies by
//! ref, everything else fanned out to subscribers.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use phoenix_channels::{Frame, PHOENIX_TOPIC, Payload, Ref, Vsn, event};
use reqwest::Url;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::ChannelError;
use crate::api;

type Stream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The Phoenix serializer this client speaks, as the `vsn` connect param names it.
const VSN: &str = "2.0.0";

/// The same serializer in the codec.
const SERIALIZER: Vsn = Vsn::V2;

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

/// What a [`TokenSource`] returns: an access token, or why there is none.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, ChannelError>> + Send>>;

/// Where a socket gets the access token for each connect and reconnect. The function is
/// called with `refresh == false` for a normal attempt and with `refresh == true` after the
/// server refused the previous token with 401/403: it should then get a fresh one (or fail
/// with [`ChannelError::Rejected`] when there is none, which makes the socket give up).
#[derive(Clone)]
pub struct TokenSource(Arc<dyn Fn(bool) -> TokenFuture + Send + Sync>);

impl fmt::Debug for TokenSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("TokenSource")
    }
}

impl TokenSource {
    /// A source from a function (see the type's documentation for `refresh`).
    pub fn new(source: impl Fn(bool) -> TokenFuture + Send + Sync + 'static) -> Self {
        Self(Arc::new(source))
    }

    /// Always the same token; once it is refused there is no fresh one.
    pub fn fixed(access_token: &str) -> Self {
        let token = Arc::new(access_token.to_owned());
        Self::new(move |refresh| {
            let token = token.clone();
            Box::pin(async move {
                if refresh { Err(ChannelError::Rejected { status: 403 }) } else { Ok(token.as_str().to_owned()) }
            })
        })
    }

    /// The current access token of a REST session ([`api::Client::access_token`]). When a
    /// token was refused, a REST call (`GET /api/me`) refreshes the session first; a session
    /// that can no longer be refreshed (signed out, revoked) ends the socket.
    pub fn client(client: Arc<api::Client>) -> Self {
        Self::new(move |refresh| {
            let client = client.clone();
            Box::pin(async move {
                if refresh {
                    client.me().await.map_err(client_error)?;
                }
                let token = client.access_token().await.map_err(client_error)?;
                Ok(token.as_str().to_owned())
            })
        })
    }

    async fn get(&self, refresh: bool) -> Result<String, ChannelError> {
        (self.0)(refresh).await
    }
}

/// A REST failure while getting a token: a session that needs signing in again is final,
/// anything else (the server restarting) is worth another attempt.
fn client_error(error: api::ClientError) -> ChannelError {
    if error.needs_sign_in() {
        ChannelError::Rejected { status: 401 }
    } else {
        ChannelError::Connect(error.to_string())
    }
}

/// A connected Phoenix socket (serializer 2.0.0). Calls take `&self`, so one socket can be
/// shared between tasks (in an `Arc`). Dropping it closes the connection.
///
/// When the connection drops for a recoverable reason (close code 1001 and the other
/// "try again" codes, a transport error, a missed heartbeat) the socket reconnects by itself
/// with backoff (100 ms doubling to 5 s, with jitter), a token from its [`TokenSource`] for
/// each attempt. Once connected again it rejoins every joined topic with the same join payload
/// and then emits an [`Event`] on topic `phoenix` named `reconnected`, with payload
/// `{"rejoined": [topics], "failed": [topics]}`: the cue to catch up on history over REST.
/// While it is reconnecting (until that event), calls fail at once with
/// [`ChannelError::Reconnecting`], and so do calls whose reply was lost with the connection;
/// they are not queued. A token refused (401/403) even after asking the source for a fresh
/// one ends the socket with [`ChannelError::Closed`] (the code of the close that started the
/// reconnect), as does a close with code 1000.
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
    /// A frame for the connection of this generation (dropped if it has gone since).
    Send {
        generation: u64,
        frame: Message,
    },
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
    /// The topic and payload, when the call is a join (an ok reply makes its ref the
    /// topic's join ref).
    joins: Option<(String, Value)>,
}

/// A joined topic: its current join ref and the payload to rejoin with.
#[derive(Debug)]
struct Joined {
    join_ref: String,
    payload: Value,
}

/// What the socket and its task share.
#[derive(Debug)]
struct Shared {
    next_ref: AtomicU64,
    /// Calls waiting for replies, by ref. Closing takes this lock too, so no call is filed
    /// after the socket closed.
    pending: Mutex<Calls>,
    /// Each joined topic.
    join_refs: Mutex<HashMap<String, Joined>>,
    events: broadcast::Sender<Event>,
    /// `None` while open; then the close code, if any.
    closed: watch::Sender<Option<Option<u16>>>,
}

#[derive(Debug, Default)]
struct Calls {
    state: State,
    /// Counts connections: frames of an earlier one are never sent on a later one.
    generation: u64,
    waiting: HashMap<String, Pending>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Open,
    Reconnecting,
    Closed,
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
    /// On reconnects the same token is used: once the server refuses it, the socket closes.
    pub async fn connect_with(
        base_url: &str,
        access_token: &str,
        options: SocketOptions,
    ) -> Result<Self, ChannelError> {
        Self::connect_with_source(base_url, TokenSource::fixed(access_token), options).await
    }

    /// Connects with the access tokens of a REST session ([`TokenSource::client`]): each
    /// reconnect takes the session's current token, refreshing it when the server refuses it.
    pub async fn connect_with_client(
        base_url: &str,
        client: Arc<api::Client>,
        options: SocketOptions,
    ) -> Result<Self, ChannelError> {
        Self::connect_with_source(base_url, TokenSource::client(client), options).await
    }

    /// Connects with tokens from `source`, for the first connect and every reconnect. A
    /// first token refused with 401/403 is retried once with a fresh one.
    pub async fn connect_with_source(
        base_url: &str,
        source: TokenSource,
        options: SocketOptions,
    ) -> Result<Self, ChannelError> {
        socket_url(base_url, "")?;
        let stream = match attempt(base_url, &source, false, options.reply_timeout).await {
            Err(ChannelError::Rejected { status: status @ (401 | 403) }) => {
                match attempt(base_url, &source, true, options.reply_timeout).await {
                    Err(ChannelError::Rejected { .. }) => return Err(ChannelError::Rejected { status }),
                    other => other?,
                }
            }
            other => other?,
        };
        let shared = Arc::new(Shared {
            next_ref: AtomicU64::new(1),
            pending: Mutex::new(Calls::default()),
            join_refs: Mutex::new(HashMap::new()),
            events: broadcast::channel(options.event_capacity.max(1)).0,
            closed: watch::channel(None).0,
        });
        let (outgoing, commands) = mpsc::channel(64);
        let task = Task {
            commands,
            shared: shared.clone(),
            base_url: base_url.to_owned(),
            source,
            heartbeat: options.heartbeat_interval,
            reply_timeout: options.reply_timeout,
        };
        let task = tokio::spawn(task.run(stream));
        Ok(Self { shared, outgoing, task, options })
    }

    /// Joins `topic` with `payload`: the join reply's `response`, or
    /// [`ChannelError::Refused`] with the server's reason. Joining a joined topic again
    /// replaces the channel (a fresh join reply, as after a reconnect).
    pub async fn join(&self, topic: &str, payload: Value) -> Result<Value, ChannelError> {
        self.call(topic, event::JOIN, payload).await
    }

    /// Leaves `topic`.
    pub async fn leave(&self, topic: &str) -> Result<(), ChannelError> {
        let left = self.call(topic, event::LEAVE, json!({})).await;
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

    /// Whether the socket is closed (for good: not while reconnecting).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.borrow().is_some()
    }

    /// Whether the connection dropped and the socket is reconnecting (calls fail with
    /// [`ChannelError::Reconnecting`] until the `reconnected` event).
    pub fn is_reconnecting(&self) -> bool {
        lock(&self.shared.pending).state == State::Reconnecting
    }

    /// Closes the socket (close code 1000) and waits for the background task to end.
    pub async fn close(self) {
        let _ = self.outgoing.send(Command::Close).await;
        let _ = self.task.await;
    }

    async fn call(&self, topic: &str, event: &str, payload: Value) -> Result<Value, ChannelError> {
        let reference = self.shared.next_ref.fetch_add(1, Ordering::Relaxed).to_string();
        let join = event == event::JOIN;
        let (reply, replied) = oneshot::channel();
        let (generation, join_ref) = {
            let mut calls = lock(&self.shared.pending);
            match calls.state {
                State::Closed => return Err(self.closed_error()),
                State::Reconnecting => return Err(ChannelError::Reconnecting),
                State::Open => {}
            }
            // Read while open: after a reconnect, only once the topics are rejoined.
            let join_ref = if join {
                Some(Ref::text(&reference))
            } else {
                let joined = lock(&self.shared.join_refs);
                joined.get(topic).map(|joined| Ref::text(&joined.join_ref))
            };
            let joins = join.then(|| (topic.to_owned(), payload.clone()));
            calls.waiting.insert(reference.clone(), Pending { reply, joins });
            (calls.generation, join_ref)
        };
        let frame = encode(join_ref, Some(Ref::text(&reference)), topic, event, payload);
        if self.outgoing.send(Command::Send { generation, frame }).await.is_err() {
            lock(&self.shared.pending).waiting.remove(&reference);
            return Err(self.closed_error());
        }
        let reply = match tokio::time::timeout(self.options.reply_timeout, replied).await {
            Err(_) => {
                lock(&self.shared.pending).waiting.remove(&reference);
                return Err(ChannelError::Timeout);
            }
            Ok(Err(_)) => return Err(self.dropped_error()),
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

    /// Why a call lost its reply: the socket closed, or the connection dropped.
    fn dropped_error(&self) -> ChannelError {
        if self.shared.closed.borrow().is_some() { self.closed_error() } else { ChannelError::Reconnecting }
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

/// One connect attempt with a token from `source`.
async fn attempt(
    base_url: &str,
    source: &TokenSource,
    refresh: bool,
    timeout: Duration,
) -> Result<Stream, ChannelError> {
    let token = source.get(refresh).await?;
    let url = socket_url(base_url, &token)?;
    let connector = if url.scheme() == "wss" { Some(Connector::Rustls(Arc::new(tls_config()?))) } else { None };
    let connecting = tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, false, connector);
    let (stream, _) =
        tokio::time::timeout(timeout, connecting).await.map_err(|_| ChannelError::Timeout)?.map_err(connect_error)?;
    Ok(stream)
}

/// The WebSocket message of a JSON message for the server.
fn encode(join_ref: Option<Ref>, msg_ref: Option<Ref>, topic: &str, event: &str, payload: Value) -> Message {
    let message = phoenix_channels::Message::new(join_ref, msg_ref, topic, event, Payload::Json(payload));
    // Only binary payloads can fail to encode (a string over 255 bytes); JSON ones never do.
    SERIALIZER.encode_for_server(&message).expect("serializer 2.0.0 encodes every JSON message").into_ws()
}

/// How a connection ended.
enum End {
    /// For good (asked for, or a close that is not worth a reconnect), with this code.
    Stop(Option<u16>),
    /// Recoverably: reconnect. The close code, if any.
    Dropped(Option<u16>),
}

/// Close codes after which the server expects clients to come back.
fn recoverable(code: Option<u16>) -> bool {
    matches!(code, None | Some(1001 | 1006 | 1011 | 1012 | 1013 | 1014))
}

/// The first reconnect delay, and the longest.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The background task: owns the connection, reconnects it, and at the end fails every
/// waiting call.
struct Task {
    commands: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    base_url: String,
    source: TokenSource,
    heartbeat: Duration,
    reply_timeout: Duration,
}

impl Task {
    async fn run(mut self, mut stream: Stream) {
        let mut rejoining = None;
        let code = loop {
            match self.session(&mut stream, rejoining.take()).await {
                End::Stop(code) => break code,
                End::Dropped(code) => {
                    self.shared.disconnect();
                    match self.reconnect(code).await {
                        Ok(new) => {
                            stream = new;
                            rejoining = Some(self.rejoin(&mut stream).await);
                        }
                        Err(code) => break code,
                    }
                }
            }
        };
        self.shared.close(code);
    }

    /// Connects again with backoff: the stream, or the close code to end with.
    async fn reconnect(&mut self, code: Option<u16>) -> Result<Stream, Option<u16>> {
        let mut delay = BACKOFF_START;
        let mut refresh = false;
        loop {
            let jittered = delay.mul_f64(0.5 + rand::random::<f64>() / 2.0);
            let result = tokio::select! {
                () = stop_requested(&mut self.commands) => return Err(Some(1000)),
                result = async {
                    tokio::time::sleep(jittered).await;
                    attempt(&self.base_url, &self.source, refresh, self.reply_timeout).await
                } => result,
            };
            match result {
                Ok(stream) => return Ok(stream),
                // Refused: one more try with a fresh token, then give up.
                Err(ChannelError::Rejected { status: 401 | 403 }) if !refresh => refresh = true,
                Err(ChannelError::Rejected { status: 401 | 403 } | ChannelError::InvalidUrl(_)) => return Err(code),
                Err(_) => {
                    refresh = false;
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Sends a join for every joined topic: the refs of those joins, with their topics.
    async fn rejoin(&self, stream: &mut Stream) -> HashMap<String, String> {
        let topics: Vec<(String, Value)> = lock(&self.shared.join_refs)
            .iter()
            .map(|(topic, joined)| (topic.clone(), joined.payload.clone()))
            .collect();
        let mut rejoining = HashMap::new();
        for (topic, payload) in topics {
            let reference = self.shared.next_ref.fetch_add(1, Ordering::Relaxed).to_string();
            let (reply, _) = oneshot::channel();
            let joins = Some((topic.clone(), payload.clone()));
            lock(&self.shared.pending).waiting.insert(reference.clone(), Pending { reply, joins });
            let frame = encode(Some(Ref::text(&reference)), Some(Ref::text(&reference)), &topic, event::JOIN, payload);
            // A failed send shows up as the stream ending, in the session.
            let _ = stream.send(frame).await;
            rejoining.insert(reference, topic);
        }
        rejoining
    }

    /// Runs one connection until it ends. `rejoining` (after a reconnect) holds the rejoins
    /// still unanswered; the socket opens again once they all are.
    async fn session(&mut self, stream: &mut Stream, mut rejoining: Option<HashMap<String, String>>) -> End {
        let (heartbeat, shared) = (self.heartbeat, self.shared.clone());
        let mut left: Vec<String> = rejoining.iter().flat_map(HashMap::keys).cloned().collect();
        if let Some(rejoins) = rejoining.as_ref().filter(|_| left.is_empty()) {
            shared.reopen(rejoins);
            rejoining = None;
        }
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat_ref: Option<String> = None;
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Send { generation, frame }) => {
                        if generation != lock(&shared.pending).generation {
                            continue;
                        }
                        if stream.send(frame).await.is_err() {
                            return End::Dropped(None);
                        }
                    }
                    // Close asked for, or the socket dropped.
                    Some(Command::Close) | None => {
                        let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        let _ = stream.close(Some(frame)).await;
                        return End::Stop(Some(1000));
                    }
                },
                message = stream.next() => match message {
                    Some(Ok(Message::Close(frame))) => {
                        // Answers the close frame.
                        let _ = stream.close(None).await;
                        let code = frame.map(|frame| u16::from(frame.code));
                        return if recoverable(code) { End::Dropped(code) } else { End::Stop(code) };
                    }
                    Some(Ok(message)) => {
                        // Pings are answered by tungstenite.
                        let Some(frame) = Frame::from_ws(message) else { continue };
                        let answered = shared.route(&frame, &mut heartbeat_ref);
                        if let (Some(rejoins), Some(reference)) = (rejoining.as_ref(), answered) {
                            left.retain(|waiting| *waiting != reference);
                            if left.is_empty() {
                                shared.reopen(rejoins);
                                rejoining = None;
                            }
                        }
                    }
                    Some(Err(_)) | None => return End::Dropped(None),
                },
                _ = ticker.tick() => {
                    if heartbeat_ref.is_some() {
                        // The previous heartbeat was never answered: the connection is dead.
                        return End::Dropped(None);
                    }
                    let reference = shared.next_ref.fetch_add(1, Ordering::Relaxed).to_string();
                    let frame = encode(None, Some(Ref::text(&reference)), PHOENIX_TOPIC, event::HEARTBEAT, json!({}));
                    if stream.send(frame).await.is_err() {
                        return End::Dropped(None);
                    }
                    heartbeat_ref = Some(reference);
                }
            }
        }
    }
}

/// Waits until the socket asks to close (or is dropped), discarding frames meanwhile (their
/// calls already failed with [`ChannelError::Reconnecting`]).
async fn stop_requested(commands: &mut mpsc::Receiver<Command>) {
    while let Some(Command::Send { .. }) = commands.recv().await {}
}

impl Shared {
    /// Handles one incoming frame: the ref of the call it answered, if any.
    fn route(&self, frame: &Frame, heartbeat_ref: &mut Option<String>) -> Option<String> {
        let message = SERIALIZER.decode_from_server(frame).ok()?;
        // hearth sends JSON only: there is no event or reply to make of a binary payload.
        let Payload::Json(payload) = message.payload else { return None };
        if message.event == event::REPLY {
            let reference = message.msg_ref.as_ref().map(Ref::to_text)?;
            if heartbeat_ref.as_ref() == Some(&reference) {
                *heartbeat_ref = None;
                return None;
            }
            let pending = lock(&self.pending).waiting.remove(&reference)?;
            let status = payload.get("status").and_then(Value::as_str).unwrap_or("error").to_owned();
            let response = payload.get("response").cloned().unwrap_or_else(|| json!({}));
            if let (Some((topic, payload)), "ok") = (pending.joins, status.as_str()) {
                // Before the next frame is read: pushes right after the join carry this ref.
                lock(&self.join_refs).insert(topic, Joined { join_ref: reference.clone(), payload });
            }
            let _ = pending.reply.send(Reply { status, response });
            return Some(reference);
        }
        if let Some(join_ref) = message.join_ref.as_ref().map(Ref::to_text) {
            let mut join_refs = lock(&self.join_refs);
            if join_refs.get(&message.topic).map(|joined| &joined.join_ref) != Some(&join_ref) {
                // A stale channel's frame (such as the close of a replaced join).
                return None;
            }
            if matches!(message.event.as_str(), event::CLOSE | event::ERROR) {
                join_refs.remove(&message.topic);
            }
        }
        let _ = self.events.send(Event { topic: message.topic, event: message.event, payload });
        None
    }

    /// The connection dropped: calls fail with [`ChannelError::Reconnecting`] until
    /// [`reopen`](Self::reopen); the joined topics are kept for the rejoin.
    fn disconnect(&self) {
        let mut calls = lock(&self.pending);
        calls.state = State::Reconnecting;
        calls.generation += 1;
        calls.waiting.clear();
    }

    /// Every rejoin (ref → topic) is answered: topics whose rejoin failed are no longer
    /// joined, calls work again, and subscribers hear `reconnected`.
    fn reopen(&self, rejoins: &HashMap<String, String>) {
        let (mut rejoined, mut failed) = (Vec::new(), Vec::new());
        {
            let mut joined = lock(&self.join_refs);
            for (reference, topic) in rejoins {
                if joined.get(topic).is_some_and(|joined| joined.join_ref == *reference) {
                    rejoined.push(topic.clone());
                } else {
                    joined.remove(topic);
                    failed.push(topic.clone());
                }
            }
        }
        rejoined.sort();
        failed.sort();
        {
            let mut calls = lock(&self.pending);
            if calls.state == State::Reconnecting {
                calls.state = State::Open;
            }
        }
        let payload = json!({ "rejoined": rejoined, "failed": failed });
        let _ = self.events.send(Event { topic: PHOENIX_TOPIC.to_owned(), event: "reconnected".to_owned(), payload });
    }

    /// Marks the socket closed and fails every waiting call.
    fn close(&self, code: Option<u16>) {
        let mut calls = lock(&self.pending);
        calls.state = State::Closed;
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
