//! The server transport on axum (feature `server`): checking a connection before the
//! upgrade, and the loop that runs one socket.
//!
//! The application authenticates from [`ConnectRequest`] (connect params, the
//! `base64url.bearer.phx.<token>` subprotocol) and either refuses with HTTP 403 before the
//! upgrade, or calls [`ConnectRequest::upgrade`] with its [`Handler`]. The socket loop then
//! decodes frames, routes them with [`Channels`], calls the handler, and sends what the
//! handler or anyone holding the socket's [`SocketHandle`] pushes.
//!
//! Memory per socket is kept small: a 4 KiB read buffer, a write buffer that holds only what
//! one turn of the loop sends, and a bounded command queue; a socket whose queue is full (a
//! reader too slow for what it is sent) is disconnected rather than buffered without end.
//!
//! Each turn of the loop sends everything it has in one write: the frames that answer what it
//! handled, then the pushes already waiting in the queue (up to [`PUSHES_PER_WRITE`]). A
//! `send_message` reply and the sender's own copy of the message, say, leave together, and
//! the peer reads them together: one system call on each side instead of two.
//!
//! A socket served on a [`Listener`]'s connection also takes broadcasts without its task: when
//! nothing must go before it (no queued command, no turn under way, nothing unsent) and its
//! channel's join reply is out, a [`Broadcast`] is written straight to the connection by whoever
//! fans it out (`server/connection.rs` says how the two writers keep frames whole and in
//! order); [`broadcast_all`] writes many sockets in batches, one system call per batch where
//! the kernel offers io_uring (`server/send_batch.rs`).

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Map, Value};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tungstenite::protocol::frame::Frame as WsFrame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::channels::{Channels, Routed};
use crate::codec::{Frame, Vsn};
use crate::message::{Message, Payload};

mod connection;
pub mod send_batch;

use connection::Direct;
pub use connection::{Connection, Listener, Outbox, ServeConnections, WithConnection};

/// Limits and sizes of sockets.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// A socket that sends no frame for this long is closed (clients heartbeat every 30 s).
    pub idle_timeout: Duration,
    /// Largest message accepted; larger ones close the socket with 1009.
    pub max_message_size: usize,
    /// Channels one socket may join.
    pub max_channels: usize,
    /// Pushes queued for one socket before it counts as too slow and is disconnected.
    pub queue_capacity: usize,
    /// Read buffer per socket.
    pub read_buffer_size: usize,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            max_message_size: 1024 * 1024,
            max_channels: crate::DEFAULT_MAX_CHANNELS,
            queue_capacity: 256,
            read_buffer_size: 4 * 1024,
        }
    }
}

/// A reply to a message: status (`"ok"`, `"error"`, …) and response.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Status string.
    pub status: String,
    /// Response body.
    pub response: Payload,
}

impl Reply {
    /// `{"status":"ok","response":response}`.
    pub fn ok(response: Value) -> Self {
        Self { status: "ok".into(), response: Payload::Json(response) }
    }

    /// `{"status":"error","response":{"reason":reason}}`.
    pub fn error(reason: impl Into<String>) -> Self {
        let reason: String = reason.into();
        Self { status: "error".into(), response: Payload::Json(serde_json::json!({ "reason": reason })) }
    }
}

/// The application's side of one socket. Calls come one at a time, in frame order.
pub trait Handler: Send + 'static {
    /// The socket is open and its handle registered wherever the application keeps it;
    /// runs before the first frame is read (e.g. to re-check credentials that may have been
    /// revoked while the connection was being upgraded).
    fn opened(&mut self) -> impl Future<Output = ()> + Send;

    /// May the socket join `topic`? `Ok(response)` joins (the response is the join
    /// reply's); `Err(response)` refuses with that error response (by Phoenix convention an
    /// object with a `reason`).
    fn join(&mut self, topic: &str, payload: Payload) -> impl Future<Output = Result<Value, Value>> + Send;

    /// The join reply has been sent: pushes made now arrive after it (e.g. presence).
    fn joined(&mut self, topic: &str) -> impl Future<Output = ()> + Send;

    /// An event on a joined topic; `Some` is sent as the reply to its ref.
    fn handle_in(&mut self, topic: &str, event: &str, payload: Payload) -> impl Future<Output = Option<Reply>> + Send;

    /// The channel on `topic` ended (left, replaced, or closed by the server).
    fn left(&mut self, topic: &str) -> impl Future<Output = ()> + Send;

    /// The socket is gone.
    fn closed(&mut self) -> impl Future<Output = ()> + Send;
}

/// A message encoded once and sent to many sockets (a "fastlane" broadcast: null refs).
#[derive(Debug)]
pub struct Broadcast {
    message: Message,
    v1: OnceLock<Option<Frame>>,
    v2: OnceLock<Option<Frame>>,
    /// The WebSocket frames (header and payload) written directly to connections, per vsn.
    ws_v1: OnceLock<Option<Bytes>>,
    ws_v2: OnceLock<Option<Bytes>>,
}

impl Broadcast {
    /// A broadcast of `event` on `topic`.
    pub fn new(topic: impl Into<String>, event: impl Into<String>, payload: Payload) -> Arc<Self> {
        Arc::new(Self {
            message: Message::new(None, None, topic, event, payload),
            v1: OnceLock::new(),
            v2: OnceLock::new(),
            ws_v1: OnceLock::new(),
            ws_v2: OnceLock::new(),
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.message.topic
    }

    fn frame(&self, vsn: Vsn) -> Option<Frame> {
        let slot = match vsn {
            Vsn::V1 => &self.v1,
            Vsn::V2 => &self.v2,
        };
        slot.get_or_init(|| vsn.encode(&self.message).ok()).clone()
    }

    /// The whole WebSocket frame, as a server sends it (unmasked, final).
    fn ws_frame(&self, vsn: Vsn) -> Option<Bytes> {
        let slot = match vsn {
            Vsn::V1 => &self.ws_v1,
            Vsn::V2 => &self.ws_v2,
        };
        slot.get_or_init(|| {
            let (opcode, payload) = match self.frame(vsn)? {
                Frame::Text(payload) => (Data::Text, payload),
                Frame::Binary(payload) => (Data::Binary, payload),
            };
            let mut bytes = Vec::with_capacity(payload.len() + 10);
            WsFrame::message(payload, OpCode::Data(opcode), true).format(&mut bytes).ok()?;
            Some(Bytes::from(bytes))
        })
        .clone()
    }
}

enum Command {
    Push { topic: String, event: String, payload: Payload },
    Broadcast(Arc<Broadcast>),
    CloseChannel { topic: String },
}

/// Why a push did not reach a socket's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The socket is closed.
    #[error("socket closed")]
    Closed,
    /// The socket's queue was full: it is being disconnected.
    #[error("socket too slow; disconnecting it")]
    Overloaded,
}

/// A handle for sending to one socket from anywhere (pub/sub, other sockets, the handler).
/// Cloning it is one reference count: a fan-out clones one per socket.
#[derive(Debug, Clone)]
pub struct SocketHandle(Arc<HandleShared>);

#[derive(Debug)]
struct HandleShared {
    commands: mpsc::Sender<Command>,
    stop: Stop,
    /// The connection's outbox, when the socket runs on a [`Listener`]'s connection: broadcasts
    /// are then written directly when they can be.
    outbox: Option<Outbox>,
}

#[derive(Debug, Default)]
struct Stop {
    notify: Notify,
    code: std::sync::Mutex<Option<u16>>,
}

impl Stop {
    /// The close code asked for (1001 if none was).
    fn code(&self) -> u16 {
        self.code.lock().ok().and_then(|code| *code).unwrap_or(close_code::AWAY)
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl SocketHandle {
    fn send(&self, command: Command) -> Result<(), PushError> {
        // Counted before it is in the queue: a broadcast written directly meanwhile went first.
        if let Some(outbox) = &self.0.outbox {
            outbox.command_queued();
        }
        self.0.commands.try_send(command).map_err(|error| {
            if let Some(outbox) = &self.0.outbox {
                outbox.command_refused();
            }
            match error {
                mpsc::error::TrySendError::Closed(_) => PushError::Closed,
                mpsc::error::TrySendError::Full(_) => {
                    self.disconnect(close_code::AWAY);
                    PushError::Overloaded
                }
            }
        })
    }

    /// Pushes `event` on `topic` if the socket has joined it (carrying the channel's
    /// join_ref); dropped otherwise.
    pub fn push(&self, topic: &str, event: &str, payload: Payload) -> Result<(), PushError> {
        self.send(Command::Push { topic: topic.to_owned(), event: event.to_owned(), payload })
    }

    /// Sends a pre-encoded broadcast if the socket has joined its topic: written to the
    /// connection here and now when nothing must go before it, through the socket's queue
    /// otherwise. To many sockets, [`broadcast_all`] costs fewer system calls.
    pub fn broadcast(&self, broadcast: Arc<Broadcast>) -> Result<(), PushError> {
        let direct = match &self.0.outbox {
            Some(outbox) => outbox.write_broadcast(broadcast.topic(), |vsn| broadcast.ws_frame(vsn)),
            None => Direct::Queue,
        };
        self.after_direct(direct, broadcast)
    }

    /// What follows a direct write that came to `direct`.
    fn after_direct(&self, direct: Direct, broadcast: Arc<Broadcast>) -> Result<(), PushError> {
        match direct {
            Direct::Written | Direct::NotJoined => Ok(()),
            Direct::Closed => Err(PushError::Closed),
            Direct::Queue => self.send(Command::Broadcast(broadcast)),
        }
    }

    /// Ends the channel on `topic` with `phx_close` (the client does not rejoin).
    pub fn close_channel(&self, topic: &str) -> Result<(), PushError> {
        self.send(Command::CloseChannel { topic: topic.to_owned() })
    }

    /// Closes the whole socket with `code` (1001 for recoverable reasons: clients reconnect).
    pub fn disconnect(&self, code: u16) {
        if let Ok(mut slot) = self.0.stop.code.lock() {
            slot.get_or_insert(code);
        }
        self.0.stop.notify.notify_one();
    }

    /// Whether the socket has gone.
    pub fn is_closed(&self) -> bool {
        self.0.commands.is_closed()
    }
}

/// Sends `broadcast` to each of `sockets`, as [`SocketHandle::broadcast`] does, and returns
/// how many took it. The direct writes leave in batches, each batch in one system call where
/// the kernel offers io_uring (`server/send_batch.rs`): for a fan-out to thousands of sockets
/// that is most of its cost saved.
pub fn broadcast_all(sockets: &[SocketHandle], broadcast: &Arc<Broadcast>) -> u64 {
    let frame = |vsn| broadcast.ws_frame(vsn);
    let mut outcomes = Vec::with_capacity(send_batch::BATCH);
    let mut taken = 0;
    for batch in sockets.chunks(send_batch::BATCH) {
        let outboxes: Vec<Option<&Outbox>> = batch.iter().map(|socket| socket.0.outbox.as_ref()).collect();
        connection::write_broadcasts(&outboxes, broadcast.topic(), frame, &mut outcomes);
        for (socket, outcome) in batch.iter().zip(&outcomes) {
            let took = match outcome {
                Some(direct) => socket.after_direct(*direct, broadcast.clone()),
                // Its outbox was busy: alone, waiting for it.
                None => socket.broadcast(broadcast.clone()),
            };
            taken += u64::from(took.is_ok());
        }
    }
    taken
}

/// A connection attempt, before the upgrade.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// The serializer the client asked for.
    pub vsn: Vsn,
    /// Connect params from the query string, nested by brackets (`user[id]=5` →
    /// `{"user":{"id":"5"}}`), `vsn` included.
    pub params: Map<String, Value>,
    /// The token from a `base64url.bearer.phx.<token>` subprotocol, if offered.
    pub bearer_token: Option<String>,
    offered_phoenix: bool,
}

/// The connection is refused before the upgrade (HTTP 403, empty body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection refused")]
pub struct Refused;

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        StatusCode::FORBIDDEN.into_response()
    }
}

impl ConnectRequest {
    /// Reads the query string and headers of a WebSocket request. Unknown `vsn` → refused.
    pub fn parse(query: Option<&str>, headers: &HeaderMap) -> Result<Self, Refused> {
        let pairs: Vec<(String, String)> = match query {
            Some(query) => {
                axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
                    &format!("/?{query}").parse().map_err(|_| Refused)?,
                )
                .map_err(|_| Refused)?
                .0
            }
            None => Vec::new(),
        };
        let params = nest_params(pairs);
        let vsn = Vsn::parse(params.get("vsn").and_then(Value::as_str)).map_err(|_| Refused)?;
        let protocols: Vec<String> = headers
            .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_owned())
            .collect();
        let bearer_token = protocols.iter().find_map(|p| p.strip_prefix("base64url.bearer.phx.")).and_then(|encoded| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(encoded.trim_end_matches('='))
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')))
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
        });
        Ok(Self { vsn, params, bearer_token, offered_phoenix: protocols.iter().any(|p| p == "phoenix") })
    }

    /// A connect param as a string.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }

    /// Completes the upgrade and runs the socket with `make_handler`'s handler. With the
    /// connection's `outbox` (the request's extension when served by [`ServeConnections`] on a
    /// [`Listener`]), broadcasts are written to the connection directly when they can be.
    pub fn upgrade<H: Handler>(
        self,
        mut ws: WebSocketUpgrade,
        config: &SocketConfig,
        outbox: Option<Outbox>,
        make_handler: impl FnOnce(SocketHandle) -> H + Send + 'static,
    ) -> Response {
        if self.offered_phoenix {
            // Clients that offer `phoenix` abort unless it is selected.
            ws.set_selected_protocol(HeaderValue::from_static("phoenix"));
        }
        let config = config.clone();
        ws.read_buffer_size(config.read_buffer_size)
            // Frames wait in the buffer for the turn's flush (see `run`) unless a turn sends
            // more than this.
            .write_buffer_size(WRITE_BUFFER_SIZE)
            .max_message_size(config.max_message_size)
            .max_frame_size(config.max_message_size)
            .on_upgrade(move |socket| run(socket, self.vsn, config, outbox, make_handler))
    }
}

fn nest_params(pairs: Vec<(String, String)>) -> Map<String, Value> {
    let mut root = Map::new();
    for (key, value) in pairs {
        let mut path: Vec<&str> = Vec::new();
        let (head, mut rest) = key.split_once('[').map_or((key.as_str(), ""), |(h, r)| (h, r));
        path.push(head);
        while let Some((part, after)) = rest.split_once(']') {
            path.push(part);
            rest = after.strip_prefix('[').unwrap_or("");
        }
        let mut node = &mut root;
        for part in &path[..path.len() - 1] {
            let entry = node.entry((*part).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            node = entry.as_object_mut().expect("made an object just above");
        }
        node.insert(path[path.len() - 1].to_owned(), Value::String(value));
    }
    root
}

/// What woke the socket's loop.
enum Wake {
    Stop(u16),
    Incoming(Option<Result<WsMessage, axum::Error>>),
    Command(Command),
    /// A direct write left a tail in the outbox.
    Unsent,
}

async fn run<H: Handler>(
    socket: WebSocket,
    vsn: Vsn,
    config: SocketConfig,
    outbox: Option<Outbox>,
    make_handler: impl FnOnce(SocketHandle) -> H,
) {
    let (commands_tx, mut commands) = mpsc::channel(config.queue_capacity.max(1));
    let handle = SocketHandle(Arc::new(HandleShared { commands: commands_tx, stop: Stop::default(), outbox }));
    let shared = handle.0.clone();
    let mut handler = make_handler(handle);
    let mut channels = Channels::new(config.max_channels);
    let (mut sink, mut stream) = socket.split();
    if let Some(outbox) = &shared.outbox {
        outbox.open_lane(vsn);
    }
    handler.opened().await;
    let mut deadline = Instant::now() + config.idle_timeout;

    let close_code = loop {
        let wake = tokio::select! {
            biased;
            () = shared.stop.notify.notified() => Wake::Stop(shared.stop.code()),
            () = tokio::time::sleep_until(deadline) => Wake::Stop(close_code::AWAY),
            incoming = stream.next() => Wake::Incoming(incoming),
            Some(command) = commands.recv() => Wake::Command(command),
            () = unsent_waiting(shared.outbox.as_ref()) => Wake::Unsent,
        };
        if let Some(outbox) = &shared.outbox {
            outbox.begin_turn();
        }
        let mut taken = 0;
        let outgoing: Vec<Message> = match wake {
            Wake::Stop(code) => break code,
            Wake::Incoming(incoming) => {
                deadline = Instant::now() + config.idle_timeout;
                let frame = match incoming {
                    None => break close_code::NORMAL,
                    Some(Err(error)) => break if is_too_big(error) { close_code::SIZE } else { close_code::PROTOCOL },
                    Some(Ok(WsMessage::Text(text))) => Some(Frame::Text(Bytes::from(text))),
                    Some(Ok(WsMessage::Binary(bytes))) => Some(Frame::Binary(bytes)),
                    Some(Ok(WsMessage::Close(_))) => break close_code::NORMAL,
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => None,
                };
                match frame.map(|frame| vsn.decode(&frame)) {
                    None => Vec::new(),
                    Some(Ok(message)) => handle_message(&mut channels, &mut handler, &mut sink, vsn, message).await,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "undecodable frame dropped");
                        Vec::new()
                    }
                }
            }
            Wake::Command(command) => {
                taken += 1;
                if apply(command, &mut channels, &mut handler, &mut sink, vsn).await.is_err() {
                    break close_code::AWAY;
                }
                Vec::new()
            }
            Wake::Unsent => Vec::new(),
        };
        // A peer that reads nothing holds this write up for as long as it likes; a stop (its
        // queue overflowing, its account disabled) ends it all the same.
        let written = async {
            feed_all(&mut sink, vsn, outgoing).await?;
            send_queued(&mut commands, &mut channels, &mut handler, &mut sink, vsn).await
        };
        let written = tokio::select! {
            biased;
            written = written => written.map_err(|_| close_code::AWAY),
            () = shared.stop.notify.notified() => Err(shared.stop.code()),
        };
        match written {
            Ok(queued) => taken += queued,
            Err(code) => break code,
        }
        // Everything this turn sent is with the connection: broadcasts may go directly again.
        if let Some(outbox) = &shared.outbox {
            outbox.end_turn(taken, channels.topics());
        }
    };

    // A turn that ended the loop never ends: no broadcast is written directly from here on.
    if let Some(outbox) = &shared.outbox {
        outbox.close_lane();
    }
    let topics: Vec<String> = channels.topics().map(str::to_owned).collect();
    for topic in topics {
        handler.left(&topic).await;
    }
    handler.closed().await;
    let close = async {
        let close = CloseFrame { code: close_code, reason: Utf8Bytes::from_static("") };
        let _ = sink.send(WsMessage::Close(Some(close))).await;
        let _ = sink.close().await;
    };
    // A peer that reads nothing gets this long to take the close frame; then the connection is
    // dropped all the same.
    let _ = tokio::time::timeout(CLOSE_GRACE, close).await;
}

/// How long a closing socket waits for its peer to take the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Resolves when a direct write has left bytes for the loop to write out; never without an
/// outbox.
async fn unsent_waiting(outbox: Option<&Outbox>) {
    match outbox {
        Some(outbox) => outbox.unsent_waiting().await,
        None => std::future::pending().await,
    }
}

/// Bytes a turn of the socket loop buffers before writing without waiting for its flush.
const WRITE_BUFFER_SIZE: usize = 64 * 1024;

/// Pushes from the queue that one write carries at most after what the turn itself sends: a
/// bound on the write buffer and on how long a busy socket's reads wait.
const PUSHES_PER_WRITE: usize = 16;

/// Carries out one command from the socket's queue, feeding what it sends into the write
/// buffer.
async fn apply<H: Handler>(
    command: Command,
    channels: &mut Channels,
    handler: &mut H,
    sink: &mut Sink,
    vsn: Vsn,
) -> Result<(), axum::Error> {
    let frames = match command {
        Command::Push { topic, event, payload } => channels.push(&topic, &event, payload),
        Command::Broadcast(broadcast) => {
            if channels.join_ref(broadcast.topic()).is_some()
                && let Some(frame) = broadcast.frame(vsn)
            {
                feed_frame(sink, frame).await?;
            }
            None
        }
        Command::CloseChannel { topic } => {
            let close = channels.close(&topic);
            if close.is_some() {
                handler.left(&topic).await;
            }
            close
        }
    };
    feed_all(sink, vsn, frames).await
}

/// Adds the pushes already queued (up to [`PUSHES_PER_WRITE`]) to the write buffer, then
/// writes it all out; returns how many it took from the queue.
async fn send_queued<H: Handler>(
    commands: &mut mpsc::Receiver<Command>,
    channels: &mut Channels,
    handler: &mut H,
    sink: &mut Sink,
    vsn: Vsn,
) -> Result<usize, axum::Error> {
    let mut taken = 0;
    while taken < PUSHES_PER_WRITE {
        let Ok(command) = commands.try_recv() else { break };
        taken += 1;
        apply(command, channels, handler, sink, vsn).await?;
    }
    sink.flush().await?;
    Ok(taken)
}

/// Whether a read failed because a message or frame was over the size limit.
fn is_too_big(error: axum::Error) -> bool {
    error
        .into_inner()
        .downcast::<tungstenite::Error>()
        .is_ok_and(|error| matches!(*error, tungstenite::Error::Capacity(_)))
}

type Sink = futures::stream::SplitSink<WebSocket, WsMessage>;

async fn handle_message<H: Handler>(
    channels: &mut Channels,
    handler: &mut H,
    sink: &mut Sink,
    vsn: Vsn,
    message: Message,
) -> Vec<Message> {
    match channels.route(message) {
        Routed::Answer(frames) => frames,
        Routed::Left { topic, answer } => {
            handler.left(&topic).await;
            answer
        }
        Routed::Join(request) => {
            // A join of a joined topic ends the old channel whatever the new join's outcome,
            // so the application forgets the old one before deciding on the new one.
            let replacing = channels.join_ref(&request.topic).is_some();
            if replacing {
                handler.left(&request.topic).await;
            }
            match handler.join(&request.topic, request.payload.clone()).await {
                Ok(response) => {
                    let frames = channels.accept_join(&request, response);
                    // The reply must be on the wire before anything `joined` pushes.
                    if send_all(sink, vsn, frames).await.is_ok() {
                        handler.joined(&request.topic).await;
                    }
                    Vec::new()
                }
                Err(response) => {
                    let mut frames = vec![channels.reject_join(&request, response)];
                    frames.extend(channels.close(&request.topic));
                    frames
                }
            }
        }
        Routed::Event(message) => {
            let reply = handler.handle_in(&message.topic, &message.event, message.payload).await;
            match (reply, message.msg_ref) {
                (Some(reply), Some(msg_ref)) => {
                    vec![channels.reply(&message.topic, Some(msg_ref), &reply.status, reply.response)]
                }
                _ => Vec::new(),
            }
        }
    }
}

/// Sends `messages` and everything buffered before them now.
async fn send_all(sink: &mut Sink, vsn: Vsn, messages: Vec<Message>) -> Result<(), axum::Error> {
    feed_all(sink, vsn, messages).await?;
    sink.flush().await
}

/// Adds `messages` to the write buffer.
async fn feed_all(sink: &mut Sink, vsn: Vsn, messages: impl IntoIterator<Item = Message>) -> Result<(), axum::Error> {
    for message in messages {
        match vsn.encode(&message) {
            Ok(frame) => feed_frame(sink, frame).await?,
            Err(error) => tracing::debug!(%error, "message not encodable for this socket; dropped"),
        }
    }
    Ok(())
}

/// Adds `frame` to the write buffer.
async fn feed_frame(sink: &mut Sink, frame: Frame) -> Result<(), axum::Error> {
    let message = match frame {
        Frame::Text(bytes) => {
            WsMessage::Text(Utf8Bytes::try_from(bytes).expect("the codec writes valid UTF-8 in text frames"))
        }
        Frame::Binary(bytes) => WsMessage::Binary(bytes),
    };
    sink.feed(message).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_nest_by_brackets() {
        let pairs = vec![
            ("token".to_owned(), "abc".to_owned()),
            ("user[id]".to_owned(), "5".to_owned()),
            ("user[name][first]".to_owned(), "Ann".to_owned()),
            ("vsn".to_owned(), "2.0.0".to_owned()),
        ];
        assert_eq!(
            Value::Object(nest_params(pairs)),
            serde_json::json!({"token":"abc","user":{"id":"5","name":{"first":"Ann"}},"vsn":"2.0.0"})
        );
    }

    #[test]
    fn connect_requests_read_vsn_and_the_bearer_subprotocol() {
        let mut headers = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD_NO_PAD.encode("secret.token");
        headers.insert(
            axum::http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(&format!("phoenix, base64url.bearer.phx.{token}")).expect("header"),
        );
        let request = ConnectRequest::parse(Some("token=t%20x&vsn=2.0.0"), &headers).expect("accepted");
        assert_eq!(request.vsn, Vsn::V2);
        assert_eq!(request.param("token"), Some("t x"));
        assert_eq!(request.bearer_token.as_deref(), Some("secret.token"));
        assert!(request.offered_phoenix);
        assert_eq!(ConnectRequest::parse(Some("vsn=3.0.0"), &HeaderMap::new()).map(|r| r.vsn), Err(Refused));
        assert_eq!(ConnectRequest::parse(None, &HeaderMap::new()).map(|r| r.vsn), Ok(Vsn::V1));
    }
}
