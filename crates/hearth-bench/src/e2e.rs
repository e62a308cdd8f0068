//! `hearth-bench e2e`: end-to-end encrypted messages exactly as a real client sends and reads
//! them, built on the client SDK (`hearth-client`) alone: no raw frames, no shortcuts.
//!
//! Each run starts the release `hearth` afresh (as the other subcommands do) and, for each of
//! `--pairs` pairs of users (setup, not measured):
//!
//! - registers both with [`Client::register`], which derives the `auth_secret` and the wrap
//!   key on the client (PBKDF2, 600 000 iterations: ≈ 80 ms of CPU each, so only a few at once);
//! - connects one [`Socket`] per user on the session's tokens ([`Socket::connect_with_client`])
//!   and joins `system:general` and `user:{id}`;
//! - the first member generates a key pair, starts the private conversation with the private
//!   key wrapped provisionally, joins the conversation and sets the key wrapped for its id; the
//!   second hears `new_conversation`, joins, and sets its own; the first hears
//!   `set_encryption_keys`.
//!
//! Then messages at a fixed offered rate (open loop: message n starts at t₀ + n / rate, in a
//! task of its own, whatever the replies do), round robin over the pairs with the direction
//! alternating. The sender encrypts one copy per member with [`e2e::encrypt_message`] (v2: the
//! authenticated header and the padding inside; its own copy included) under a group id it
//! chose, and awaits `send_message`'s reply; the recipient reads `new_message` from its
//! socket's event stream ([`Incoming::parse`]) and decrypts it with [`e2e::decrypt_message`]. The
//! plaintext carries the sequence number and the time the sender started, so latency runs from
//! the sender starting to encrypt to the recipient holding the plaintext: one process, one clock.
//!
//! The SDK's crypto is timed around each call, and alone on one thread before each run's load
//! (v2 and, for comparison in the same run, v1, alternately).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use futures::StreamExt as _;
use hearth_client::api::Client;
use hearth_client::channels::{self, ChannelError, Events, Incoming, SYSTEM_TOPIC, Socket, SocketOptions};
use hearth_client::e2e::{self, E2eError, KeyPair, Plaintext, Stream};
use serde_json::json;
use uuid::Uuid;

use crate::client;
use crate::network::Placement;
use crate::server::{self, Database, Server};
use crate::stats::{Row, percentile_sorted, table};
use crate::{Cli, CpuMark};

/// `hearth-bench e2e`'s options.
#[derive(Debug, clap::Args)]
pub struct E2eArgs {
    /// Pairs of users, each pair one private conversation with a socket per member.
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// Offered rate, messages per second (open loop), round robin over the pairs; the sender
    /// alternates between the two members.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds at the same rate before measuring (not counted).
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Bytes of padding in each plaintext, after the stamp (sequence number and send time).
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// Encryptions and decryptions timed alone on one thread before each run's load.
    #[arg(long, default_value_t = 500)]
    calibration: usize,
}

/// The longest a setup step waits for the event that should follow it.
const SETUP_WAIT: Duration = Duration::from_secs(30);

/// Runs `--runs` measurements of `args` and prints their summary.
pub async fn run(cli: &Cli, binary: &Path, database: &Database, args: &E2eArgs) -> anyhow::Result<()> {
    let mut all = Vec::new();
    for run in 1..=cli.runs {
        eprintln!("run {run}/{}: e2e, {} pairs, {} messages/s offered…", cli.runs, args.pairs, args.rate);
        all.push(run_once(cli, binary, database, args, run).await?);
    }
    report(cli, args, &all, database);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// setup

/// A signed-in user with a socket joined to `system:general` and `user:{id}`: what a real
/// client holds.
#[derive(Debug)]
struct Person {
    id: Uuid,
    api: Arc<Client>,
    socket: Socket,
    events: Events,
}

/// Registers user `index` through the SDK (the key derivation included) and connects its socket.
async fn sign_up(base: &str, index: usize, options: SocketOptions) -> anyhow::Result<Person> {
    let email = format!("e2e{index}@bench.example.org");
    let mut api = Client::new(base).context("SDK client")?;
    api.register(&email, client::PASSWORD, None, Some("hearth-bench"))
        .await
        .with_context(|| format!("register {email}"))?;
    let id = api.identity().context("signed in")?.user_id;
    let api = Arc::new(api);
    let socket = Socket::connect_with_client(base, api.clone(), options).await.context("connect the socket")?;
    // Subscribed before the joins: nothing the server says afterwards is missed.
    let events = socket.events();
    socket.join(&channels::user_topic(id), json!({})).await.context("join user:{id}")?;
    socket.join(SYSTEM_TOPIC, json!({})).await.context("join system:general")?;
    Ok(Person { id, api, socket, events })
}

/// One member's side of a conversation once both members set keys: what it sends and reads with.
#[derive(Debug)]
struct Side {
    me: Uuid,
    peer: Uuid,
    conversation: Uuid,
    keys: KeyPair,
    /// Both members' public JWKs, own included: each gets a copy.
    public_keys: BTreeMap<Uuid, String>,
    peer_public: String,
    socket: Socket,
    /// This side's stream: with `seq`, orders its messages (docs/e2e.md).
    stream: Stream,
}

impl Side {
    /// Message `seq`'s group id and one ciphertext of `text` per member, as `send_message`
    /// wants them: v2, the header and the padding inside, as clients send them.
    fn encrypt(&self, seq: u64, text: &str) -> Result<(Uuid, BTreeMap<Uuid, String>), E2eError> {
        let plaintext = plaintext(seq, self.stream, text);
        let copies = self
            .public_keys
            .iter()
            .map(|(member, key)| {
                Ok((*member, e2e::encrypt_message(&self.keys, self.me, key, *member, self.conversation, &plaintext)?))
            })
            .collect::<Result<_, E2eError>>()?;
        Ok((plaintext.id, copies))
    }

    /// The text of the peer's message `content`.
    fn decrypt(&self, content: &str) -> Result<String, E2eError> {
        e2e::decrypt_message(&self.keys, self.me, &self.peer_public, self.peer, self.conversation, content)
            .map(|plaintext| plaintext.text)
    }
}

/// A v2 plaintext of `text`, the `seq`th of `stream`, sent now under a fresh group id.
fn plaintext(seq: u64, stream: Stream, text: &str) -> Plaintext {
    let sent_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    Plaintext { id: Uuid::now_v7(), sent_at, edit_of: None, stream, seq, text: text.to_owned() }
}

/// The next event for which `wanted` holds, within [`SETUP_WAIT`]; other events (and missed
/// ones) are skipped.
async fn next_incoming(
    events: &mut Events,
    what: &str,
    wanted: impl Fn(&Incoming) -> bool,
) -> anyhow::Result<Incoming> {
    let found = async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(incoming) = Incoming::parse(&event).filter(&wanted) {
                        return Ok(incoming);
                    }
                }
                Err(ChannelError::Lagged { .. }) => {}
                Err(error) => return Err(error),
            }
        }
    };
    let found =
        tokio::time::timeout(SETUP_WAIT, found).await.map_err(|_| anyhow!("no {what} within {SETUP_WAIT:?}"))?;
    found.with_context(|| format!("waiting for {what}"))
}

/// The end-to-end encrypted start of a private conversation between two people, as
/// `hearth-client`'s own test runs it: both sides, each with the events still to read.
async fn start_conversation(first: Person, mut second: Person) -> anyhow::Result<[(Side, Events); 2]> {
    let Person { id: first_id, api: first_api, socket: first_socket, events: mut first_events } = first;
    let first_wrap = first_api.wrap_key().context("signed in")?;
    let first_keys = KeyPair::generate();
    // The client chooses the id, so the key is wrapped for it from the start.
    let chosen = Uuid::now_v7();
    let wrapped = e2e::wrap_private_key(first_wrap, chosen, &first_keys);
    let started = first_socket
        .start_private_conversation(chosen, second.id, &first_keys.public_jwk(), &wrapped)
        .await
        .context("start_private_conversation")?;
    let id = started.conversation.id;
    first_socket.join_conversation(id).await.context("the first member joins")?;

    // The second member hears of it on its user topic, joins, and sets its own keys.
    next_incoming(
        &mut second.events,
        "new_conversation",
        |incoming| matches!(incoming, Incoming::NewConversation(new) if new.conversation.id == id),
    )
    .await?;
    let joined = second.socket.join_conversation(id).await.context("the second member joins")?;
    let first_public = joined.public_keys.get(&first_id).context("the first member's public key")?.clone();
    let second_wrap = second.api.wrap_key().context("signed in")?;
    let second_keys = KeyPair::generate();
    let wrapped = e2e::wrap_private_key(second_wrap, id, &second_keys);
    second.socket.set_encryption_keys(id, &second_keys.public_jwk(), &wrapped).await.context("the second's keys")?;

    // The first hears of the second's keys on the conversation's topic.
    let second_id = second.id;
    let heard = next_incoming(&mut first_events, "set_encryption_keys", |incoming| {
        matches!(incoming, Incoming::KeysSet { conversation_id, user_id, .. } if *conversation_id == id && *user_id == second_id)
    })
    .await?;
    let Incoming::KeysSet { public_key: second_public, .. } = heard else { bail!("not a set_encryption_keys") };

    let public_keys = BTreeMap::from([(first_id, first_keys.public_jwk()), (second_id, second_public.clone())]);
    let first_side = Side {
        me: first_id,
        peer: second_id,
        conversation: id,
        keys: first_keys,
        public_keys: public_keys.clone(),
        peer_public: second_public,
        socket: first_socket,
        stream: Stream::random(),
    };
    let second_side = Side {
        me: second_id,
        peer: first_id,
        conversation: id,
        keys: second_keys,
        public_keys,
        peer_public: first_public,
        socket: second.socket,
        stream: Stream::random(),
    };
    Ok([(first_side, first_events), (second_side, second.events)])
}

// ---------------------------------------------------------------------------------------
// load

/// A message whose sender started on it.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u64,
    /// How late the start was against the schedule.
    late_ns: u64,
    /// Wall time inside the SDK's encryption (both copies).
    encrypt_ns: u64,
}

/// A message its recipient decrypted.
#[derive(Debug, Clone, Copy)]
struct Decrypted {
    seq: u64,
    /// When the sender started on it (from the plaintext), ns since the baseline.
    sent_ns: u64,
    /// When the SDK handed the `new_message` event over.
    arrived_ns: u64,
    /// When the plaintext was there.
    decrypted_ns: u64,
    /// Wall time inside the SDK's decryption.
    decrypt_ns: u64,
}

/// What the senders and recipients of one run record.
#[derive(Debug)]
struct Recorder {
    /// The one clock: times are nanoseconds since this instant.
    baseline: Instant,
    sent: Mutex<Vec<Sent>>,
    /// Sends whose reply came (or failed).
    finished: AtomicU64,
    /// Sends that failed: encryption, a refusal, no reply in time, a dropped socket.
    send_errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    read: Mutex<Vec<Decrypted>>,
    /// `new_message` events from the peer that did not decrypt to a stamp.
    decrypt_failures: AtomicU64,
    /// Events the recipients' subscriptions missed by falling behind.
    missed_events: AtomicU64,
    /// Sockets that reconnected during the run.
    reconnects: AtomicU64,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            baseline: Instant::now(),
            sent: Mutex::new(Vec::new()),
            finished: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            read: Mutex::new(Vec::new()),
            decrypt_failures: AtomicU64::new(0),
            missed_events: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        })
    }

    fn now_ns(&self) -> u64 {
        self.baseline.elapsed().as_nanos() as u64
    }

    fn read_count(&self) -> u64 {
        self.read.lock().map_or(0, |read| read.len() as u64)
    }

    fn fail(&self, error: String) {
        self.send_errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }
}

/// Message `seq`, due at `due_ns`, from `side`: encrypted and sent in a task of its own.
fn send(side: Arc<Side>, recorder: Arc<Recorder>, seq: u64, due_ns: u64, padding: usize) {
    tokio::spawn(async move {
        let started_ns = recorder.now_ns();
        let text = client::stamped(seq, started_ns, padding);
        let encrypting = Instant::now();
        let copies = side.encrypt(seq, &text);
        let encrypt_ns = encrypting.elapsed().as_nanos() as u64;
        if let Ok(mut sent) = recorder.sent.lock() {
            sent.push(Sent { seq, late_ns: started_ns.saturating_sub(due_ns), encrypt_ns });
        }
        let result = match copies {
            Ok((group, copies)) => side
                .socket
                .send_message(side.conversation, Some(group), &copies)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Err(error) => Err(format!("encrypt: {error}")),
        };
        if let Err(error) = result {
            recorder.fail(error);
        }
        recorder.finished.fetch_add(1, Ordering::Relaxed);
    });
}

/// Reads `side`'s events until its socket closes, decrypting every message from the peer.
async fn receive(side: Arc<Side>, mut events: Events, recorder: Arc<Recorder>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(ChannelError::Lagged { missed }) => {
                recorder.missed_events.fetch_add(missed, Ordering::Relaxed);
                continue;
            }
            Err(_) => return,
        };
        let arrived_ns = recorder.now_ns();
        match Incoming::parse(&event) {
            Some(Incoming::NewMessage(delivered))
                if delivered.conversation_id == side.conversation && delivered.message.sender == side.peer =>
            {
                let decrypting = Instant::now();
                let plaintext = side.decrypt(&delivered.message.content);
                let decrypt_ns = decrypting.elapsed().as_nanos() as u64;
                let decrypted_ns = recorder.now_ns();
                match plaintext.ok().as_deref().and_then(client::parse_stamp) {
                    Some((seq, sent_ns)) => {
                        if let Ok(mut read) = recorder.read.lock() {
                            read.push(Decrypted { seq, sent_ns, arrived_ns, decrypted_ns, decrypt_ns });
                        }
                    }
                    None => {
                        recorder.decrypt_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Some(Incoming::Reconnected { .. }) => {
                recorder.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// The SDK's crypto alone on this thread: mean µs to encrypt a message's two copies and to
/// decrypt one, for v2 (what clients send) and for v1 (before headers and padding), measured
/// alternately in five rounds of `n / 5` messages each so that both see the same machine.
fn crypto_alone(n: usize, padding: usize) -> Result<CryptoAlone, E2eError> {
    let (ann, bob) = (KeyPair::generate(), KeyPair::generate());
    let (ann_id, bob_id, conversation) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (ann_public, bob_public) = (ann.public_jwk(), bob.public_jwk());
    let text = client::stamped(0, 0, padding);
    let per_round = (n / 5).max(1);
    let stream = Stream::random();
    let mut totals = [0f64; 4];
    for _ in 0..5 {
        let mut content = String::new();
        let started = Instant::now();
        for seq in 0..per_round as u64 {
            let message = plaintext(seq, stream, &text);
            std::hint::black_box(e2e::encrypt_message(&ann, ann_id, &ann_public, ann_id, conversation, &message)?);
            content = e2e::encrypt_message(&ann, ann_id, &bob_public, bob_id, conversation, &message)?;
        }
        totals[0] += started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..per_round {
            std::hint::black_box(e2e::decrypt_message(&bob, bob_id, &ann_public, ann_id, conversation, &content)?);
        }
        totals[1] += started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..per_round {
            std::hint::black_box(e2e::encrypt(&ann, ann_id, &ann_public, ann_id, conversation, &text)?);
            content = e2e::encrypt(&ann, ann_id, &bob_public, bob_id, conversation, &text)?;
        }
        totals[2] += started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..per_round {
            std::hint::black_box(e2e::decrypt(&bob, bob_id, &ann_public, ann_id, conversation, &content)?);
        }
        totals[3] += started.elapsed().as_secs_f64();
    }
    let [encrypt, decrypt, v1_encrypt, v1_decrypt] = totals.map(|total| total * 1e6 / (5 * per_round) as f64);
    Ok(CryptoAlone { encrypt, decrypt, v1_encrypt, v1_decrypt })
}

/// [`crypto_alone`]'s means, in µs.
struct CryptoAlone {
    encrypt: f64,
    decrypt: f64,
    v1_encrypt: f64,
    v1_decrypt: f64,
}

/// What one run measured.
#[derive(Debug)]
struct Figures {
    setup_secs: f64,
    started_per_sec: f64,
    decrypted_per_sec: f64,
    arrived_p50_ms: f64,
    arrived_p99_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    sent_in_window: u64,
    lost: u64,
    send_errors: u64,
    first_error: Option<String>,
    decrypt_failures: u64,
    missed_events: u64,
    reconnects: u64,
    encrypt_us: f64,
    encrypt_p99_us: f64,
    decrypt_us: f64,
    encrypt_alone_us: f64,
    decrypt_alone_us: f64,
    v1_encrypt_alone_us: f64,
    v1_decrypt_alone_us: f64,
    server_cpu: f64,
    generator_cpu: f64,
    postgres_cpu: f64,
    steal: f64,
    lag_p99_ms: f64,
}

async fn run_once(
    cli: &Cli,
    binary: &Path,
    database: &Database,
    args: &E2eArgs,
    run: usize,
) -> anyhow::Result<Figures> {
    let mut server = Server::start(binary, &Placement::loopback(), database, cli.idle_timeout_secs, run)?;
    eprintln!("  server pid {} at {}", server.pid(), server.base);
    let pairs = args.pairs.max(1);
    let heartbeat = if cli.heartbeat_secs > 0 { cli.heartbeat_secs } else { 365 * 24 * 3600 };
    let options = SocketOptions { heartbeat_interval: Duration::from_secs(heartbeat), ..SocketOptions::default() };
    // Each registration derives its keys on a blocking thread: more than two per core only queue.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let concurrency = cli.register_concurrency.clamp(1, 2 * cores);
    let setup = Instant::now();
    let people: Vec<anyhow::Result<Person>> = futures::stream::iter(0..2 * pairs)
        .map(|i| sign_up(&server.base, i, options.clone()))
        .buffered(concurrency)
        .collect()
        .await;
    let people: Vec<Person> = people.into_iter().collect::<anyhow::Result<_>>()?;
    eprintln!(
        "  {} users registered through the SDK with their sockets joined in {:.1} s ({concurrency} at a time)",
        people.len(),
        setup.elapsed().as_secs_f64()
    );
    let mut people = people.into_iter();
    let mut couples = Vec::with_capacity(pairs);
    while let (Some(first), Some(second)) = (people.next(), people.next()) {
        couples.push((first, second));
    }
    let started: Vec<anyhow::Result<[(Side, Events); 2]>> = futures::stream::iter(couples)
        .map(|(first, second)| start_conversation(first, second))
        .buffered(8)
        .collect()
        .await;
    let started: Vec<[(Side, Events); 2]> = started.into_iter().collect::<anyhow::Result<_>>()?;
    let setup_secs = setup.elapsed().as_secs_f64();
    eprintln!("  {} conversations started with keys set on both sides; setup {setup_secs:.1} s", started.len());

    let recorder = Recorder::new();
    let mut conversations: Vec<[Arc<Side>; 2]> = Vec::with_capacity(started.len());
    let mut receivers = Vec::with_capacity(2 * started.len());
    for [(first, first_events), (second, second_events)] in started {
        let (first, second) = (Arc::new(first), Arc::new(second));
        receivers.push(tokio::spawn(receive(first.clone(), first_events, recorder.clone())));
        receivers.push(tokio::spawn(receive(second.clone(), second_events, recorder.clone())));
        conversations.push([first, second]);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    crate::wait_for_quiet_machine(&server).await;
    let (calibration, padding) = (args.calibration, args.payload_bytes);
    let alone =
        tokio::task::spawn_blocking(move || crypto_alone(calibration, padding)).await.context("calibration")??;
    eprintln!(
        "  SDK crypto alone: {:.0} µs to encrypt two copies, {:.0} µs to decrypt one (v1: {:.0} and {:.0})",
        alone.encrypt, alone.decrypt, alone.v1_encrypt, alone.v1_decrypt
    );

    // The schedule: message n at start + n / rate, whatever the replies do (open loop).
    let interval_ns = 1_000_000_000 / args.rate.max(1);
    let warm = args.warmup_secs * args.rate;
    let total = warm + args.seconds * args.rate;
    let k = conversations.len() as u64;
    let start_ns = recorder.now_ns() + 50_000_000;
    let mut window = None;
    let mut seq = 0u64;
    while seq < total {
        let now = recorder.now_ns();
        while seq < total && start_ns + seq * interval_ns <= now {
            if seq == warm {
                window = Some(CpuMark::now(now, &server));
            }
            // Round robin over the conversations; each time round, the other member sends.
            let sender = &conversations[(seq % k) as usize][((seq / k) % 2) as usize];
            send(sender.clone(), recorder.clone(), seq, start_ns + seq * interval_ns, args.payload_bytes);
            seq += 1;
        }
        if seq < total {
            let next = recorder.baseline + Duration::from_nanos(start_ns + seq * interval_ns);
            tokio::time::sleep_until(next.into()).await;
        }
    }
    let end_ns = start_ns + total * interval_ns;
    tokio::time::sleep_until((recorder.baseline + Duration::from_nanos(end_ns)).into()).await;
    let start = window.context("the window never started")?;
    let end = CpuMark::now(recorder.now_ns(), &server);
    let (window_start_ns, window_end_ns) = (start.at_ns, end.at_ns);

    // Drain: every reply, and every message still in flight (up to 10 s).
    let drain_until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < drain_until
        && (recorder.finished.load(Ordering::Relaxed) < total || recorder.read_count() < total)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !server.running() {
        bail!("the server exited during the run");
    }

    let sent = recorder.sent.lock().map(|s| s.clone()).unwrap_or_default();
    let read = recorder.read.lock().map(|r| r.clone()).unwrap_or_default();
    let window_secs = (window_end_ns - window_start_ns) as f64 / 1e9;
    let measured: Vec<&Sent> = sent.iter().filter(|s| s.seq >= warm).collect();
    let sent_in_window = measured.len() as u64;
    let read_measured: Vec<&Decrypted> = read.iter().filter(|r| r.seq >= warm).collect();
    let sorted_ms = |values: Vec<f64>| {
        let mut values = values;
        values.sort_by(f64::total_cmp);
        values
    };
    let latencies =
        sorted_ms(read_measured.iter().map(|r| (r.decrypted_ns.saturating_sub(r.sent_ns)) as f64 / 1e6).collect());
    let arrivals =
        sorted_ms(read_measured.iter().map(|r| (r.arrived_ns.saturating_sub(r.sent_ns)) as f64 / 1e6).collect());
    let lags = sorted_ms(measured.iter().map(|s| s.late_ns as f64 / 1e6).collect());
    let encrypts = sorted_ms(measured.iter().map(|s| s.encrypt_ns as f64 / 1e3).collect());
    let decrypts: Vec<f64> = read_measured.iter().map(|r| r.decrypt_ns as f64 / 1e3).collect();
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
    let decrypted_during =
        read.iter().filter(|r| r.decrypted_ns >= window_start_ns && r.decrypted_ns < window_end_ns).count() as f64;
    let figures = Figures {
        setup_secs,
        started_per_sec: sent_in_window as f64 / window_secs,
        decrypted_per_sec: decrypted_during / window_secs,
        arrived_p50_ms: percentile_sorted(&arrivals, 50.0),
        arrived_p99_ms: percentile_sorted(&arrivals, 99.0),
        p50_ms: percentile_sorted(&latencies, 50.0),
        p99_ms: percentile_sorted(&latencies, 99.0),
        p999_ms: percentile_sorted(&latencies, 99.9),
        max_ms: percentile_sorted(&latencies, 100.0),
        sent_in_window,
        lost: sent_in_window.saturating_sub(latencies.len() as u64),
        send_errors: recorder.send_errors.load(Ordering::Relaxed),
        first_error: recorder.first_error.lock().ok().and_then(|first| first.clone()),
        decrypt_failures: recorder.decrypt_failures.load(Ordering::Relaxed),
        missed_events: recorder.missed_events.load(Ordering::Relaxed),
        reconnects: recorder.reconnects.load(Ordering::Relaxed),
        encrypt_us: mean(&encrypts),
        encrypt_p99_us: percentile_sorted(&encrypts, 99.0),
        decrypt_us: mean(&decrypts),
        encrypt_alone_us: alone.encrypt,
        decrypt_alone_us: alone.decrypt,
        v1_encrypt_alone_us: alone.v1_encrypt,
        v1_decrypt_alone_us: alone.v1_decrypt,
        server_cpu: end.server - start.server,
        generator_cpu: end.generator - start.generator,
        postgres_cpu: end.postgres - start.postgres,
        steal: end.steal - start.steal,
        lag_p99_ms: percentile_sorted(&lags, 99.0),
    };
    eprintln!(
        "  started {:.0}/s, decrypted {:.0}/s, send start→decrypted p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, not \
         decrypted {} of {}, send errors {}, encrypt {:.0} µs, decrypt {:.0} µs, server CPU {:.2} s, generator CPU {:.2} \
         s, stolen {:.2} s, schedule lag p99 {:.2} ms",
        figures.started_per_sec,
        figures.decrypted_per_sec,
        figures.p50_ms,
        figures.p99_ms,
        figures.max_ms,
        figures.lost,
        figures.sent_in_window,
        figures.send_errors,
        figures.encrypt_us,
        figures.decrypt_us,
        figures.server_cpu,
        figures.generator_cpu,
        figures.steal,
        figures.lag_p99_ms
    );
    if let Some(error) = &figures.first_error {
        eprintln!("  first send error: {error}");
    }
    for receiver in &receivers {
        receiver.abort();
    }
    drop(conversations);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(figures)
}

fn report(cli: &Cli, args: &E2eArgs, all: &[Figures], database: &Database) {
    let col = |f: &dyn Fn(&Figures) -> f64| all.iter().map(f).collect::<Vec<f64>>();
    let per_message = |cpu: &dyn Fn(&Figures) -> f64| {
        all.iter().map(|f| cpu(f) * 1e3 / f.sent_in_window.max(1) as f64).collect::<Vec<f64>>()
    };
    println!(
        "\n### End-to-end encrypted messages through the SDK: {} msg/s offered (open loop) over {} private \
         conversations; {} runs; {}\n",
        args.rate,
        args.pairs,
        all.len(),
        database.label()
    );
    println!("- machine: {}", server::machine());
    println!(
        "- each run: fresh server; {} users registered with `hearth_client::api::Client::register` (key derivation \
         on the client), one `channels::Socket` each joined to system:general, user:{{id}} and the conversation, keys \
         set by both members; {} s warm-up then {} s measured; plaintexts of {} bytes padding plus the stamp",
        2 * args.pairs,
        args.warmup_secs,
        args.seconds,
        args.payload_bytes
    );
    println!(
        "- latency: from the sender starting `e2e::encrypt_message` (v2, a copy per member) and `send_message` to the recipient \
         holding the plaintext from `e2e::decrypt_message` of its `new_message` (one process, one clock); senders alternate \
         between the members; each send's own copy is not counted"
    );
    println!(
        "- heartbeat every {} s; the load generator (both members' SDK clients) and the server share the machine's \
         cores\n",
        cli.heartbeat_secs
    );
    let rows = vec![
        Row::new("offered", "msg/s", 0, col(&|_| args.rate as f64)),
        Row::new("sends started", "msg/s", 0, col(&|f| f.started_per_sec)),
        Row::new("decrypted by recipients", "msg/s", 0, col(&|f| f.decrypted_per_sec)),
        Row::new("send start→decrypted p50", "ms", 2, col(&|f| f.p50_ms)),
        Row::new("send start→decrypted p99", "ms", 2, col(&|f| f.p99_ms)),
        Row::new("send start→decrypted p99.9", "ms", 2, col(&|f| f.p999_ms)),
        Row::new("send start→decrypted max", "ms", 2, col(&|f| f.max_ms)),
        Row::new("send start→event from the SDK (before decrypting) p50", "ms", 2, col(&|f| f.arrived_p50_ms)),
        Row::new("send start→event from the SDK (before decrypting) p99", "ms", 2, col(&|f| f.arrived_p99_ms)),
        Row::new("sent in the window", "", 0, col(&|f| f.sent_in_window as f64)),
        Row::new("not decrypted 10 s after the last send", "", 0, col(&|f| f.lost as f64)),
        Row::new("failed sends (refused, timed out, socket down)", "", 0, col(&|f| f.send_errors as f64)),
        Row::new("messages that did not decrypt", "", 0, col(&|f| f.decrypt_failures as f64)),
        Row::new("events the recipients missed (lagged)", "", 0, col(&|f| f.missed_events as f64)),
        Row::new("socket reconnects", "", 0, col(&|f| f.reconnects as f64)),
        Row::new("SDK encrypt, two copies, under load (mean, wall)", "µs", 0, col(&|f| f.encrypt_us)),
        Row::new("SDK encrypt, two copies, under load (p99, wall)", "µs", 0, col(&|f| f.encrypt_p99_us)),
        Row::new("SDK decrypt, one copy, under load (mean, wall)", "µs", 0, col(&|f| f.decrypt_us)),
        Row::new("SDK encrypt, two copies, alone on one thread", "µs", 0, col(&|f| f.encrypt_alone_us)),
        Row::new("SDK decrypt, one copy, alone on one thread", "µs", 0, col(&|f| f.decrypt_alone_us)),
        Row::new("the same, v1 (no header, no padding): encrypt two copies", "µs", 0, col(&|f| f.v1_encrypt_alone_us)),
        Row::new("the same, v1: decrypt one copy", "µs", 0, col(&|f| f.v1_decrypt_alone_us)),
        Row::new("generator CPU in the window (both members' clients)", "s", 2, col(&|f| f.generator_cpu)),
        Row::new("generator CPU per message", "ms", 3, per_message(&|f| f.generator_cpu)),
        Row::new("server CPU in the window", "s", 2, col(&|f| f.server_cpu)),
        Row::new("server CPU per message", "ms", 3, per_message(&|f| f.server_cpu)),
        Row::new("PostgreSQL processes' CPU in the window", "s", 2, col(&|f| f.postgres_cpu)),
        Row::new("CPU stolen by the hypervisor in the window", "s", 2, col(&|f| f.steal)),
        Row::new("generator lateness against the schedule p99", "ms", 2, col(&|f| f.lag_p99_ms)),
        Row::new("setup: register, connect, start conversations", "s", 1, col(&|f| f.setup_secs)),
    ];
    println!("{}", table(&rows));
    for (i, figures) in all.iter().enumerate() {
        if let Some(error) = &figures.first_error {
            println!("- run {}: first failed send: `{error}`", i + 1);
        }
    }
}
