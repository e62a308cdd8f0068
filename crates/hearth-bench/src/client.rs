//! Clients: registering users over REST, and authenticated Phoenix sockets (V2 JSON) opened
//! from a chosen loopback source address (or the one the kernel picks), each driven by one small
//! task.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use futures::{SinkExt as _, StreamExt as _};
use phoenix_channels::{Frame, Message, Payload, Ref, Vsn};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

/// The password of every bench user.
pub(crate) const PASSWORD: &str = "bench-password-1234";

/// A registered user and the access token their socket connects with.
#[derive(Debug, Clone)]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// Access token.
    pub token: String,
}

/// Registers `count` users, `concurrency` requests at a time.
pub async fn register(base: &str, count: usize, concurrency: usize) -> anyhow::Result<Vec<User>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .context("HTTP client")?;
    let results: Vec<anyhow::Result<(usize, User)>> = futures::stream::iter(0..count)
        .map(|i| {
            let (client, url) = (client.clone(), format!("{base}/auth/register"));
            async move {
                let body = json!({"email": format!("u{i}@bench.example.org"), "password": PASSWORD});
                let response = client.post(url).json(&body).send().await.context("POST /auth/register")?;
                let status = response.status();
                if status != reqwest::StatusCode::CREATED {
                    bail!("POST /auth/register: {status}: {}", response.text().await.unwrap_or_default());
                }
                let reply: Value = response.json().await.context("register reply")?;
                let id = reply["user"]["id"].as_str().and_then(|id| Uuid::parse_str(id).ok()).context("user.id")?;
                let token = reply["auth_token"].as_str().context("auth_token")?.to_owned();
                Ok((i, User { id, token }))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut users: Vec<(usize, User)> = results.into_iter().collect::<anyhow::Result<_>>()?;
    users.sort_by_key(|(i, _)| *i);
    Ok(users.into_iter().map(|(_, user)| user).collect())
}

/// The `n`-th source address: 127.0.0.2, 127.0.0.3, … (all of 127.0.0.0/8 is loopback),
/// `per_address` sockets each, so no address runs out of ephemeral ports (≈ 28 000 each
/// towards one server port).
pub fn source_address(socket_index: usize, per_address: usize) -> IpAddr {
    let n = 2 + (socket_index / per_address.max(1)) as u32;
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + n))
}

/// What every socket of one run reports into.
#[derive(Debug)]
pub struct Shared {
    /// The one clock: send and receive times are nanoseconds since this instant.
    pub baseline: Instant,
    /// Sockets whose task is running.
    pub alive: AtomicU64,
    /// Sockets the server closed (or that failed) while the bench still held them.
    pub dropped: AtomicU64,
    /// `send_message` pushes written.
    pub sent: AtomicU64,
    /// `send_message` answered with something other than ok.
    pub send_errors: AtomicU64,
    /// `new_message` deliveries to recipients, and `new_post` deliveries to a room's members.
    pub deliveries: Mutex<Vec<Delivery>>,
    /// For every send: (sequence number, how late the write was against the schedule, ns).
    pub sends: Mutex<Vec<(u64, u64)>>,
    /// Payload bytes of the last `new_post` frame read (for the kernel's floor, `floor.rs`).
    pub post_frame_bytes: AtomicU64,
}

impl Shared {
    /// Fresh counters with the clock starting now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            baseline: Instant::now(),
            alive: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            deliveries: Mutex::new(Vec::new()),
            post_frame_bytes: AtomicU64::new(0),
            sends: Mutex::new(Vec::new()),
        })
    }

    /// Nanoseconds since the baseline.
    pub fn now_ns(&self) -> u64 {
        self.baseline.elapsed().as_nanos() as u64
    }

    /// Deliveries recorded so far.
    pub fn delivered(&self) -> usize {
        self.deliveries.lock().map_or(0, |d| d.len())
    }
}

/// A message that reached its recipient.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Its number in the send schedule.
    pub seq: u64,
    /// When it was written to the sender's socket (ns since the baseline).
    pub sent_ns: u64,
    /// When the recipient's socket read it.
    pub received_ns: u64,
}

enum Command {
    /// A push that wants its reply (joins included).
    Request { topic: String, event: String, payload: Value, reply: oneshot::Sender<Result<Value, String>> },
    /// An open-loop `send_message`: stamped with the send time as it is written.
    SendMessage { topic: String, me: Uuid, recipient: Uuid, seq: u64, scheduled_ns: u64 },
    /// An open-loop `post` in a room: its text stamped with the send time as it is written.
    Post { topic: String, seq: u64, scheduled_ns: u64 },
}

/// One connected socket; dropping every clone of it closes the socket.
#[derive(Debug, Clone)]
pub struct Socket {
    /// Whose socket.
    pub user: Uuid,
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// How sockets are opened.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// The server's address.
    pub server: SocketAddr,
    /// Heartbeat period (`None`: none; then the server's idle timeout must be long).
    pub heartbeat: Option<Duration>,
    /// Give up on a connect + upgrade + joins after this long.
    pub timeout: Duration,
    /// Bytes of padding in each message's ciphertext.
    pub payload_bytes: usize,
}

impl Socket {
    /// Opens an authenticated socket from `source` (`None`: the address the kernel picks), joins
    /// `system:general` and `user:{id}`, waits for both join replies, and leaves a task driving it.
    pub async fn open(
        user: &User,
        source: Option<IpAddr>,
        options: &SocketOptions,
        shared: &Arc<Shared>,
    ) -> anyhow::Result<Socket> {
        let ws = tokio::time::timeout(options.timeout, handshake(user, source, options.server))
            .await
            .map_err(|_| anyhow!("connect and upgrade timed out after {:?}", options.timeout))??;
        let (commands, receiver) = mpsc::unbounded_channel();
        shared.alive.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(drive(ws, receiver, user.id, shared.clone(), options.heartbeat, options.payload_bytes));
        let socket = Socket { user: user.id, commands };
        let joins = async {
            let own_topic = format!("user:{}", user.id);
            let general = socket.request("system:general", "phx_join", json!({}));
            let own = socket.request(&own_topic, "phx_join", json!({}));
            let (general, own) = futures::join!(general, own);
            general.context("join system:general")?;
            own.context("join user:{id}")?;
            anyhow::Ok(())
        };
        tokio::time::timeout(options.timeout, joins)
            .await
            .map_err(|_| anyhow!("joins timed out after {:?}", options.timeout))??;
        Ok(socket)
    }

    /// Pushes `event` on `topic` (a `phx_join` joins it) and waits for an ok reply's response.
    pub async fn request(&self, topic: &str, event: &str, payload: Value) -> anyhow::Result<Value> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Request { topic: topic.to_owned(), event: event.to_owned(), payload, reply };
        self.commands.send(command).map_err(|_| anyhow!("socket closed"))?;
        answer.await.map_err(|_| anyhow!("socket closed before the reply"))?.map_err(|reason| anyhow!("{reason}"))
    }

    /// Sends message `seq` of the schedule on `conversation:{id}` (already joined) without
    /// waiting: the ciphertext carries the send time.
    pub fn send_message(&self, conversation: Uuid, recipient: Uuid, seq: u64, scheduled_ns: u64) {
        let topic = format!("conversation:{conversation}");
        let _ = self.commands.send(Command::SendMessage { topic, me: self.user, recipient, seq, scheduled_ns });
    }

    /// Posts post `seq` of the schedule on `room:{id}` (already joined) without waiting: the
    /// text carries the send time.
    pub fn post(&self, room: Uuid, seq: u64, scheduled_ns: u64) {
        let _ = self.commands.send(Command::Post { topic: format!("room:{room}"), seq, scheduled_ns });
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn handshake(user: &User, source: Option<IpAddr>, server: SocketAddr) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4().context("socket")?;
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0)).with_context(|| format!("bind {source}"))?;
    }
    let stream = socket.connect(server).await.with_context(|| format!("connect to {server}"))?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    let url = format!("ws://{server}/socket/websocket?token={}&vsn=2.0.0", user.token);
    // Small buffers keep the generator small: it holds as many sockets as the server.
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024).write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await.context("upgrade")?;
    Ok(ws)
}

/// Text of a ciphertext carrying a sequence number and a send time: `b:<seq>:<ns>:` + padding.
pub(crate) fn stamped(seq: u64, sent_ns: u64, padding: usize) -> String {
    let mut text = format!("b:{seq}:{sent_ns}:");
    text.extend(std::iter::repeat_n('x', padding));
    text
}

/// The sequence number and send time of a [`stamped`] text.
pub(crate) fn parse_stamp(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.strip_prefix("b:")?.splitn(3, ':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Runs one socket until the bench drops its [`Socket`] or the server closes it.
async fn drive(
    ws: Ws,
    mut commands: mpsc::UnboundedReceiver<Command>,
    me: Uuid,
    shared: Arc<Shared>,
    heartbeat: Option<Duration>,
    payload_bytes: usize,
) {
    let (mut sink, mut stream) = ws.split();
    let mut next_ref: u64 = 0;
    let mut join_refs: HashMap<String, Ref> = HashMap::new();
    let mut pending: HashMap<String, oneshot::Sender<Result<Value, String>>> = HashMap::new();
    let period = heartbeat.unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let own_topic = format!("user:{me}");

    let ended_by_bench = loop {
        let outgoing: Option<Message> = tokio::select! {
            command = commands.recv() => match command {
                None => break true,
                Some(Command::Request { topic, event, payload, reply }) => {
                    next_ref += 1;
                    let msg_ref = Ref::text(next_ref.to_string());
                    let join_ref = if event == phoenix_channels::event::JOIN {
                        join_refs.insert(topic.clone(), msg_ref.clone());
                        Some(msg_ref.clone())
                    } else {
                        join_refs.get(&topic).cloned()
                    };
                    pending.insert(msg_ref.to_text(), reply);
                    Some(Message::new(join_ref, Some(msg_ref), topic, event, Payload::Json(payload)))
                }
                Some(Command::SendMessage { topic, me, recipient, seq, scheduled_ns }) => {
                    let sent_ns = shared.now_ns();
                    let content = stamped(seq, sent_ns, payload_bytes);
                    let payload = json!({"encrypted_messages": {me.to_string(): content.clone(), recipient.to_string(): content}});
                    if let Ok(mut sends) = shared.sends.lock() {
                        sends.push((seq, sent_ns.saturating_sub(scheduled_ns)));
                    }
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    let join_ref = join_refs.get(&topic).cloned();
                    Some(Message::new(join_ref, Some(Ref::text(format!("s{seq}"))), topic, "send_message", Payload::Json(payload)))
                }
                Some(Command::Post { topic, seq, scheduled_ns }) => {
                    let sent_ns = shared.now_ns();
                    let payload = json!({"text": stamped(seq, sent_ns, payload_bytes)});
                    if let Ok(mut sends) = shared.sends.lock() {
                        sends.push((seq, sent_ns.saturating_sub(scheduled_ns)));
                    }
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    let join_ref = join_refs.get(&topic).cloned();
                    Some(Message::new(join_ref, Some(Ref::text(format!("s{seq}"))), topic, "post", Payload::Json(payload)))
                }
            },
            _ = beat.tick() => {
                next_ref += 1;
                Some(Message::new(None, Some(Ref::text(format!("h{next_ref}"))), phoenix_channels::PHOENIX_TOPIC, phoenix_channels::event::HEARTBEAT, Payload::empty()))
            }
            frame = stream.next() => {
                let frame = match frame {
                    Some(Ok(WsMessage::Text(text))) => Frame::Text(text.into()),
                    Some(Ok(WsMessage::Binary(bytes))) => Frame::Binary(bytes),
                    Some(Ok(WsMessage::Close(_)) | Err(_)) | None => break false,
                    Some(Ok(_)) => continue,
                };
                let received_ns = shared.now_ns();
                let frame_bytes = match &frame {
                    Frame::Text(bytes) | Frame::Binary(bytes) => bytes.len() as u64,
                };
                let Ok(message) = Vsn::V2.decode_from_server(&frame) else { continue };
                if message.event == "new_message" && message.topic == own_topic {
                    let payload = message.payload.as_json();
                    let from_other = payload.and_then(|p| p["message"]["sender"].as_str()).is_some_and(|s| s != me.to_string());
                    if from_other
                        && let Some((seq, sent_ns)) = payload.and_then(|p| p["message"]["content"].as_str()).and_then(parse_stamp)
                        && let Ok(mut deliveries) = shared.deliveries.lock()
                    {
                        deliveries.push(Delivery { seq, sent_ns, received_ns });
                    }
                } else if message.event == "new_post" && message.topic.starts_with("room:") {
                    shared.post_frame_bytes.store(frame_bytes, Ordering::Relaxed);
                    // Every member holds it, the poster too.
                    if let Some((seq, sent_ns)) = message.payload.as_json().and_then(|p| p["text"].as_str()).and_then(parse_stamp)
                        && let Ok(mut deliveries) = shared.deliveries.lock()
                    {
                        deliveries.push(Delivery { seq, sent_ns, received_ns });
                    }
                } else if let Some((status, response)) = message.reply_parts() {
                    let key = message.msg_ref.as_ref().map(Ref::to_text).unwrap_or_default();
                    if key.starts_with('s') {
                        if status != "ok" {
                            shared.send_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if let Some(reply) = pending.remove(&key) {
                        let response = response.as_json().cloned().unwrap_or(Value::Null);
                        let _ = reply.send(if status == "ok" { Ok(response) } else { Err(format!("{status}: {response}")) });
                    }
                }
                None
            }
        };
        if let Some(message) = outgoing {
            let frame = match Vsn::V2.encode_for_server(&message) {
                Ok(Frame::Text(bytes)) => match bytes.try_into() {
                    Ok(text) => WsMessage::Text(text),
                    Err(_) => continue,
                },
                Ok(Frame::Binary(bytes)) => WsMessage::Binary(bytes),
                Err(_) => continue,
            };
            if sink.send(frame).await.is_err() {
                break false;
            }
        }
    };
    if ended_by_bench {
        let _ = sink.close().await;
    } else {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
    }
    shared.alive.fetch_sub(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let text = stamped(42, 123_456_789, 16);
        assert_eq!(parse_stamp(&text), Some((42, 123_456_789)));
        assert_eq!(text.len(), "b:42:123456789:".len() + 16);
        assert_eq!(parse_stamp("hello"), None);
    }

    #[test]
    fn source_addresses_spread_over_loopback() {
        assert_eq!(source_address(0, 10), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(source_address(9, 10), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(source_address(10, 10), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(source_address(2540, 10), IpAddr::V4(Ipv4Addr::new(127, 0, 1, 0)));
    }
}
