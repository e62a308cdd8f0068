//! `hearth-bench`: a load generator for hearth's real-time sockets (Phoenix Channels at
//! `/socket/websocket`) and its AI gateway, measured the way `docs/benchmarks.md` asks.
//!
//! Each run starts the release `hearth` binary afresh (temporary data directory; SQLite, or a
//! fresh PostgreSQL database with `--postgres`), registers users over REST (setup: Argon2id is
//! made cheap for it), and opens one authenticated socket per user from 127.0.0.2, 127.0.0.3, …
//! each joined to `system:general` and its `user:{id}` topic.
//!
//! - `sockets`: how many sockets the server holds, its memory per socket (VmRSS growth / N),
//!   and the kernel's socket memory beside it.
//! - `messages`: K private conversations; `send_message` at a fixed offered rate (open loop),
//!   each ciphertext carrying its send time; recipients record when `new_message` arrives on
//!   their `user:{id}` topic. Delivered per second, send→deliver p50/p99/max, messages never
//!   delivered, and the server's CPU seconds.
//!
//! - `gateway`: the AI gateway's overhead against the LiteLLM proxy, at fixed offered rates
//!   against a fake provider (see `gateway.rs`).
//! - `e2e`: end-to-end encrypted messages exactly as a real client runs them, built on the
//!   client SDK alone (`hearth-client`: `api::Client::register` deriving the keys,
//!   `channels::Socket`, `e2e::encrypt` / `e2e::decrypt`): `--pairs` private conversations with
//!   keys set by both members, messages at a fixed offered rate, send start→decrypted
//!   p50/p99/max, messages never decrypted, and the SDK's crypto cost per message (see `e2e.rs`).
//!
//! - `rooms`: a room's fan-out: `--members` (10 000) members online in one room, the time from
//!   a post until the last member holds it, and deliveries per server CPU-second at a steady post
//!   rate (see `rooms.rs`); over loopback, or with `--network veth` as two hosts on one machine
//!   (see `network.rs`).
//!
//! `--runs N` (3 by default) runs each measurement N times and prints median and min–max as a
//! markdown table. The generator and the server share the machine's cores (except with
//! `rooms --network veth`, which gives each its own).

mod client;
mod e2e;
mod floor;
mod gateway;
mod network;
mod rooms;
mod server;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use futures::StreamExt as _;
use serde_json::json;

use client::{Shared, Socket, SocketOptions, User};
use network::Placement;
use server::{Database, Kernel, Server};
use stats::{Row, percentile, percentile_sorted, table};

/// Load generator for hearth's real-time sockets.
#[derive(Debug, Parser)]
#[command(name = "hearth-bench", version, about)]
struct Cli {
    /// The hearth binary (build it first: `cargo build --release -p hearth`).
    /// Default: target/release/hearth in the workspace.
    #[arg(long, global = true)]
    hearth: Option<PathBuf>,
    /// Measurements per figure (fresh server each); the tables show median and min–max.
    #[arg(long, global = true, default_value_t = 3)]
    runs: usize,
    /// Use PostgreSQL: a server URL without a database (`postgres://postgres@127.0.0.1:5432`).
    /// Each run creates a fresh database there with `psql` and drops it afterwards.
    #[arg(long, global = true)]
    postgres: Option<String>,
    /// Clients heartbeat this often (0: never; then raise --idle-timeout-secs).
    #[arg(long, global = true, default_value_t = 30)]
    heartbeat_secs: u64,
    /// The server's realtime.idle_timeout_secs.
    #[arg(long, global = true, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Sockets per loopback source address (127.0.0.2, 127.0.0.3, …).
    #[arg(long, global = true, default_value_t = 10_000)]
    per_address: usize,
    /// Registrations in flight at once.
    #[arg(long, global = true, default_value_t = 64)]
    register_concurrency: usize,
    /// Socket connects (connect, upgrade, two joins) in flight at once.
    #[arg(long, global = true, default_value_t = 64)]
    connect_concurrency: usize,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Sockets held and server memory per socket.
    Sockets {
        /// Sockets to open, one user each.
        #[arg(long, default_value_t = 50_000)]
        sockets: usize,
        /// Print the server's RSS every this many sockets.
        #[arg(long, default_value_t = 5_000)]
        checkpoint: usize,
        /// Hold the sockets this long before measuring (heartbeats keep them alive).
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
        /// Stop opening after this many failed sockets (and report how many are held).
        #[arg(long, default_value_t = 100)]
        max_failures: usize,
    },
    /// Messages per second and send→deliver latency at fixed offered rates.
    Messages {
        /// Private conversations (2 users each); messages go round-robin over them, sent by
        /// the first member to the second.
        #[arg(long, default_value_t = 500)]
        conversations: usize,
        /// Offered rates, messages per second (comma-separated for several).
        #[arg(long, value_delimiter = ',', default_value = "5000")]
        rate: Vec<u64>,
        /// Measured seconds at each rate.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seconds at the same rate before measuring (not counted).
        #[arg(long, default_value_t = 2)]
        warmup_secs: u64,
        /// Bytes of padding in each ciphertext.
        #[arg(long, default_value_t = 200)]
        payload_bytes: usize,
        /// Extra sockets (joined, idle) held during the run besides the conversations' 2K.
        #[arg(long, default_value_t = 0)]
        idle_sockets: usize,
        /// Write every delivery (seq, sent and received ns) of each run as CSV into this
        /// directory, for looking at latency over time.
        #[arg(long)]
        dump: Option<PathBuf>,
    },
    /// AI gateway overhead: hearth's `POST /api/chat/message` and the LiteLLM proxy against
    /// the same fake provider, each beside its direct baseline, at fixed offered rates.
    Gateway(gateway::GatewayArgs),
    /// End-to-end encrypted messages through the client SDK, as a real client sends and reads them.
    ///
    /// Built on `hearth-client` alone: users registered with `api::Client::register` (the keys
    /// derived on the client with PBKDF2, ≈ 80 ms each, so --register-concurrency is capped at
    /// two per core), a `channels::Socket` each joined to system:general and user:{id}, and
    /// --pairs private conversations started and keyed by both members as `hearth-client`'s own
    /// test does. Then messages at a fixed offered rate (open loop), round robin over the pairs
    /// with the sender alternating: `e2e::encrypt_message` a copy per member (v2, as clients
    /// send them), `send_message`; the recipient decrypts its `new_message` event with
    /// `e2e::decrypt_message`.
    ///
    /// Reports send start→decrypted p50/p99/max, messages decrypted per second and never
    /// decrypted, the SDK's encrypt/decrypt time (under load and alone), and client and server
    /// CPU per message.
    E2e(e2e::E2eArgs),
    /// A room's fan-out: one post to every member of a big room, and deliveries per server
    /// CPU-second at a steady post rate.
    Rooms(rooms::RoomsArgs),
    /// The kernel's floor for `rooms`: writes frames to the connections it accepts (started by
    /// the bench itself; see `floor.rs`).
    #[command(hide = true)]
    FloorWriter(floor::WriterArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Mode::FloorWriter(args) = &cli.mode {
        return floor::write(args);
    }
    let binary = cli.hearth.clone().unwrap_or_else(|| server::workspace_root().join("target/release/hearth"));
    if !binary.is_file() {
        bail!("{} not found: build it with `cargo build --release -p hearth` or pass --hearth", binary.display());
    }
    let nofile = raise_open_files_limit();
    let database = match &cli.postgres {
        Some(url) => Database::Postgres { admin_url: url.clone() },
        None => Database::Sqlite,
    };
    eprintln!("machine: {}", server::machine());
    eprintln!("open-files limit of the bench and the server it starts: {nofile}");
    eprintln!("hearth: {}; database: {}", binary.display(), database.label());
    match &cli.mode {
        Mode::Gateway(args) => gateway::run(&binary, cli.runs, args).await?,
        Mode::E2e(args) => e2e::run(&cli, &binary, &database, args).await?,
        Mode::Rooms(args) => rooms::run(&cli, &binary, &database, args).await?,
        // Ran above, before looking for the hearth binary it does not need.
        Mode::FloorWriter(_) => {}
        Mode::Sockets { sockets, checkpoint, hold_secs, max_failures } => {
            if (*sockets as u64) + 200 > nofile {
                eprintln!(
                    "note: {sockets} sockets need about as many open files in the bench and in the server; the limit is \
                     {nofile}, so expect to stop near it"
                );
            }
            let plan = SocketPlan {
                sockets: *sockets,
                checkpoint: *checkpoint,
                hold: Duration::from_secs(*hold_secs),
                max_failures: *max_failures,
            };
            let mut all = Vec::new();
            for run in 1..=cli.runs {
                eprintln!("run {run}/{}: sockets…", cli.runs);
                all.push(sockets_run(&cli, &binary, &database, &plan, run).await?);
            }
            report_sockets(&cli, &plan, &all, nofile, &database);
        }
        Mode::Messages { conversations, rate, seconds, warmup_secs, payload_bytes, idle_sockets, dump } => {
            let mut by_rate = Vec::new();
            for &rate in rate {
                let plan = MessagePlan {
                    conversations: *conversations,
                    rate,
                    seconds: *seconds,
                    warmup_secs: *warmup_secs,
                    payload_bytes: *payload_bytes,
                    idle_sockets: *idle_sockets,
                    dump: dump.clone(),
                };
                let mut all = Vec::new();
                for run in 1..=cli.runs {
                    eprintln!("run {run}/{}: {rate} messages/s offered…", cli.runs);
                    all.push(messages_run(&cli, &binary, &database, &plan, run).await?);
                }
                report_messages(&cli, &plan, &all, &database);
                by_rate.push((rate, all));
            }
            if by_rate.len() > 1 {
                println!(
                    "\n| offered msg/s | delivered msg/s (median) | p50 ms (median) | p99 ms (median, min–max) | not delivered (all runs) |"
                );
                println!("|---|---|---|---|---|");
                for (rate, all) in &by_rate {
                    let med =
                        |f: &dyn Fn(&MessageFigures) -> f64| percentile(&all.iter().map(f).collect::<Vec<_>>(), 50.0);
                    let p99: Vec<f64> = all.iter().map(|f| f.p99_ms).collect();
                    let min = p99.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = p99.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let lost: u64 = all.iter().map(|f| f.lost).sum();
                    println!(
                        "| {rate} | {:.0} | {:.2} | {:.2} ({min:.2}–{max:.2}) | {lost} |",
                        med(&|f| f.delivered_per_sec),
                        med(&|f| f.p50_ms),
                        percentile(&p99, 50.0)
                    );
                }
            }
        }
    }
    Ok(())
}

/// Raises this process's open-files limit as far as allowed (children inherit it): to
/// 1 048 576 when the process may raise its hard limit, else the soft limit up to the hard.
fn raise_open_files_limit() -> u64 {
    const WANTED: u64 = 1 << 20;
    if rlimit::setrlimit(rlimit::Resource::NOFILE, WANTED, WANTED).is_ok() {
        return WANTED;
    }
    match rlimit::increase_nofile_limit(WANTED) {
        Ok(limit) => {
            let hard = rlimit::Resource::NOFILE.get().map_or(limit, |(_, hard)| hard);
            eprintln!(
                "the open-files hard limit is {hard} and this process may not raise it (no CAP_SYS_RESOURCE); \
                 soft limit raised to {limit}"
            );
            limit
        }
        Err(error) => {
            eprintln!("could not raise the open-files limit: {error}");
            rlimit::Resource::NOFILE.get().map_or(1024, |(soft, _)| soft)
        }
    }
}

fn socket_options(cli: &Cli, server: &Server, payload_bytes: usize) -> SocketOptions {
    SocketOptions {
        server: server.addr,
        heartbeat: (cli.heartbeat_secs > 0).then(|| Duration::from_secs(cli.heartbeat_secs)),
        timeout: Duration::from_secs(15),
        payload_bytes,
    }
}

/// Opens one socket per user, `connect_concurrency` at a time, calling `progress` after each
/// success; stops after `max_failures` failures. Returns the sockets and the failures.
///
/// A server on loopback is reached from 127.0.0.2, 127.0.0.3, … (`per_address` each); any other
/// is reached from the address the kernel picks towards it.
async fn open_sockets(
    cli: &Cli,
    users: &[User],
    options: &SocketOptions,
    shared: &Arc<Shared>,
    max_failures: usize,
    mut progress: impl FnMut(usize),
) -> (Vec<Socket>, Vec<String>) {
    let mut attempts = futures::stream::iter(users.iter().enumerate())
        .map(|(i, user)| {
            let source = options.server.ip().is_loopback().then(|| client::source_address(i, cli.per_address));
            async move {
                Socket::open(user, source, options, shared).await.map_err(|e| match source {
                    Some(source) => format!("{source}: {e:#}"),
                    None => format!("{e:#}"),
                })
            }
        })
        .buffer_unordered(cli.connect_concurrency.max(1));
    let (mut sockets, mut failures) = (Vec::with_capacity(users.len()), Vec::new());
    while let Some(result) = attempts.next().await {
        match result {
            Ok(socket) => {
                sockets.push(socket);
                progress(sockets.len());
            }
            Err(error) => {
                failures.push(error);
                if failures.len() >= max_failures {
                    break;
                }
            }
        }
    }
    (sockets, failures)
}

// ---------------------------------------------------------------------------------------
// sockets

#[derive(Debug)]
struct SocketPlan {
    sockets: usize,
    checkpoint: usize,
    hold: Duration,
    max_failures: usize,
}

#[derive(Debug)]
struct SocketFigures {
    held: f64,
    rss_before_mib: f64,
    rss_after_mib: f64,
    per_socket_kib: f64,
    /// Least-squares slope of RSS over the checkpoints, KiB per socket.
    slope_kib: f64,
    tcp_inuse: f64,
    tcp_mem_mib: f64,
    slab_mib: f64,
    connect_per_sec: f64,
    server_cpu_connect: f64,
    server_fds: f64,
    generator_rss_mib: f64,
    dropped: f64,
    failures: Vec<String>,
    checkpoints: Vec<(usize, u64)>,
}

const MIB: f64 = (1u64 << 20) as f64;

async fn sockets_run(
    cli: &Cli,
    binary: &std::path::Path,
    database: &Database,
    plan: &SocketPlan,
    run: usize,
) -> anyhow::Result<SocketFigures> {
    let mut server = Server::start(binary, &Placement::loopback(), database, cli.idle_timeout_secs, run)?;
    eprintln!("  server pid {} at {} (open-files limit {:?})", server.pid(), server.base, server.nofile_limit());
    let started = Instant::now();
    let users = client::register(&server.base, plan.sockets, cli.register_concurrency).await?;
    eprintln!("  {} users registered in {:.1} s (setup)", users.len(), started.elapsed().as_secs_f64());
    // Let registration's connections close and the server settle before the baseline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_for_quiet_machine(&server).await;
    let rss_before = server.rss_bytes();
    let kernel_before = Kernel::now();
    let cpu_before = server.cpu_seconds();
    let shared = Shared::new();
    let options = socket_options(cli, &server, 0);
    let connect_started = Instant::now();
    let mut checkpoints = vec![(0, rss_before)];
    let (sockets, failures) = open_sockets(cli, &users, &options, &shared, plan.max_failures, |held| {
        if held % plan.checkpoint.max(1) == 0 {
            let rss = server.rss_bytes();
            checkpoints.push((held, rss));
            eprintln!(
                "  {held} sockets joined, server RSS {:.1} MiB, {:.1} s",
                rss as f64 / MIB,
                connect_started.elapsed().as_secs_f64()
            );
        }
    })
    .await;
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let server_cpu_connect = server.cpu_seconds() - cpu_before;
    if !failures.is_empty() {
        eprintln!("  {} sockets failed after {} were open; first: {}", failures.len(), sockets.len(), failures[0]);
        if let Some(last) = failures.last() {
            eprintln!("  last: {last}");
        }
    }
    eprintln!("  holding {} sockets for {:?}…", sockets.len(), plan.hold);
    tokio::time::sleep(plan.hold).await;
    let rss_after = server.rss_bytes();
    let kernel_after = Kernel::now();
    let server_fds = server.open_fds();
    let held = shared.alive.load(Ordering::Relaxed) as usize;
    let dropped = shared.dropped.load(Ordering::Relaxed);
    if !server.running() {
        bail!("the server exited during the run");
    }
    let generator_rss = server::rss_bytes("/proc/self/status");
    checkpoints.push((held, rss_after));
    let per_socket_kib = (rss_after as f64 - rss_before as f64) / held.max(1) as f64 / 1024.0;
    eprintln!(
        "  held {held} (dropped {dropped}); server RSS {:.1} → {:.1} MiB = {per_socket_kib:.1} KiB/socket; \
         TCP mem {:.1} MiB; slab +{:.1} MiB; server fds {server_fds}; generator RSS {:.1} MiB",
        rss_before as f64 / MIB,
        rss_after as f64 / MIB,
        kernel_after.tcp_mem_bytes as f64 / MIB,
        (kernel_after.slab_bytes as f64 - kernel_before.slab_bytes as f64) / MIB,
        generator_rss as f64 / MIB,
    );
    drop(sockets);
    // Give the sockets' tasks a moment to close before the server is killed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(SocketFigures {
        held: held as f64,
        rss_before_mib: rss_before as f64 / MIB,
        rss_after_mib: rss_after as f64 / MIB,
        per_socket_kib,
        slope_kib: slope(&checkpoints) / 1024.0,
        tcp_inuse: kernel_after.tcp_inuse as f64,
        tcp_mem_mib: kernel_after.tcp_mem_bytes as f64 / MIB,
        slab_mib: (kernel_after.slab_bytes as f64 - kernel_before.slab_bytes as f64) / MIB,
        connect_per_sec: held as f64 / connect_secs,
        server_cpu_connect,
        server_fds: server_fds as f64,
        generator_rss_mib: generator_rss as f64 / MIB,
        dropped: dropped as f64,
        failures,
        checkpoints,
    })
}

/// Least-squares slope of (sockets, RSS bytes).
fn slope(points: &[(usize, u64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let mean_x = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let cov: f64 = points.iter().map(|p| (p.0 as f64 - mean_x) * (p.1 as f64 - mean_y)).sum();
    let var: f64 = points.iter().map(|p| (p.0 as f64 - mean_x).powi(2)).sum();
    cov / var
}

fn report_sockets(cli: &Cli, plan: &SocketPlan, all: &[SocketFigures], nofile: u64, database: &Database) {
    let col = |f: &dyn Fn(&SocketFigures) -> f64| all.iter().map(f).collect::<Vec<f64>>();
    println!(
        "\n### Sockets: {} requested, each joined to system:general and user:{{id}}; {} runs; {}\n",
        plan.sockets,
        all.len(),
        database.label()
    );
    println!("- machine: {}", server::machine());
    println!("- open-files limit (bench and server): {nofile}");
    println!(
        "- clients: one socket per user, {} per source address from 127.0.0.2, {} connects in flight, heartbeat \
         every {} s; server idle timeout {} s",
        cli.per_address, cli.connect_concurrency, cli.heartbeat_secs, cli.idle_timeout_secs
    );
    println!("- the load generator and the server share the machine's cores\n");
    let rows = vec![
        Row::new("sockets held (joined to both topics)", "", 0, col(&|f| f.held)),
        Row::new("server RSS before the sockets (users registered)", "MiB", 1, col(&|f| f.rss_before_mib)),
        Row::new("server RSS with the sockets held", "MiB", 1, col(&|f| f.rss_after_mib)),
        Row::new("server memory per socket (RSS growth / sockets)", "KiB", 1, col(&|f| f.per_socket_kib)),
        Row::new("server memory per socket (slope over the checkpoints)", "KiB", 1, col(&|f| f.slope_kib)),
        Row::new("TCP sockets in use machine-wide (sockstat, both ends)", "", 0, col(&|f| f.tcp_inuse)),
        Row::new("kernel TCP buffer memory with the sockets (sockstat, both ends)", "MiB", 1, col(&|f| f.tcp_mem_mib)),
        Row::new("kernel slab growth (meminfo Slab, both ends)", "MiB", 1, col(&|f| f.slab_mib)),
        Row::new("sockets opened and joined per second", "/s", 0, col(&|f| f.connect_per_sec)),
        Row::new("server CPU while opening them", "s", 1, col(&|f| f.server_cpu_connect)),
        Row::new("server open files with the sockets held", "", 0, col(&|f| f.server_fds)),
        Row::new("sockets the server dropped while held", "", 0, col(&|f| f.dropped)),
        Row::new("generator RSS with the sockets held", "MiB", 1, col(&|f| f.generator_rss_mib)),
    ];
    println!("{}", table(&rows));
    for (i, figures) in all.iter().enumerate() {
        let points: Vec<String> =
            figures.checkpoints.iter().map(|(n, rss)| format!("{n}: {:.0} MiB", *rss as f64 / MIB)).collect();
        println!("- run {}: RSS at sockets held: {}", i + 1, points.join(", "));
        if let Some(first) = figures.failures.first() {
            println!("  - {} sockets failed; first: `{first}`", figures.failures.len());
        }
    }
}

// ---------------------------------------------------------------------------------------
// messages

/// CPU seconds so far of the server, this generator, PostgreSQL and the whole machine.
#[derive(Debug, Clone, Copy)]
struct CpuMark {
    at_ns: u64,
    server: f64,
    generator: f64,
    postgres: f64,
    machine: f64,
    steal: f64,
}

impl CpuMark {
    fn now(at_ns: u64, server: &Server) -> Self {
        Self {
            at_ns,
            server: server.cpu_seconds(),
            generator: server::cpu_seconds("/proc/self/stat"),
            postgres: server::processes_cpu_seconds("postgres"),
            machine: server::machine_cpu_seconds().0,
            steal: server::machine_cpu_seconds().1,
        }
    }
}

#[derive(Debug)]
struct MessagePlan {
    conversations: usize,
    rate: u64,
    seconds: u64,
    warmup_secs: u64,
    payload_bytes: usize,
    idle_sockets: usize,
    dump: Option<PathBuf>,
}

#[derive(Debug)]
struct MessageFigures {
    sent_per_sec: f64,
    delivered_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    lost: u64,
    sent_in_window: u64,
    send_errors: u64,
    server_cpu: f64,
    generator_cpu: f64,
    postgres_cpu: f64,
    machine_busy: f64,
    steal: f64,
    lag_p99_ms: f64,
    dropped: u64,
}

async fn messages_run(
    cli: &Cli,
    binary: &std::path::Path,
    database: &Database,
    plan: &MessagePlan,
    run: usize,
) -> anyhow::Result<MessageFigures> {
    let mut server = Server::start(binary, &Placement::loopback(), database, cli.idle_timeout_secs, run)?;
    eprintln!("  server pid {} at {}", server.pid(), server.base);
    let k = plan.conversations.max(1);
    let users = client::register(&server.base, 2 * k + plan.idle_sockets, cli.register_concurrency).await?;
    let shared = Shared::new();
    let options = socket_options(cli, &server, plan.payload_bytes);
    let (sockets, failures) = open_sockets(cli, &users, &options, &shared, 1, |_| {}).await;
    if let Some(failure) = failures.first() {
        bail!("a socket failed to open: {failure}");
    }
    // Pair i: sockets 2i (sender) and 2i+1 (recipient); the sender starts the conversation
    // and joins its topic.
    let pairs: Vec<(&Socket, &Socket)> = (0..k).map(|i| (&sockets[2 * i], &sockets[2 * i + 1])).collect();
    let conversations: Vec<anyhow::Result<uuid::Uuid>> = futures::stream::iter(pairs.iter())
        .map(|(sender, recipient)| async move {
            let payload = json!({
                "other_user_id": recipient.user,
                "public_key": {"kty": "bench", "k": "public"},
                "private_key": {"kty": "bench", "k": "private"},
            });
            let reply = sender.request("system:general", "start_private_conversation", payload).await?;
            let id = reply["conversation"]["id"]
                .as_str()
                .and_then(|id| uuid::Uuid::parse_str(id).ok())
                .context("conversation.id in the reply")?;
            sender.request(&format!("conversation:{id}"), "phx_join", json!({})).await.context("join conversation")?;
            Ok(id)
        })
        .buffered(16)
        .collect()
        .await;
    let conversations: Vec<uuid::Uuid> = conversations.into_iter().collect::<anyhow::Result<_>>()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    wait_for_quiet_machine(&server).await;

    // The schedule: message n at start + n / rate, whatever the replies do (open loop).
    let interval_ns = 1_000_000_000 / plan.rate.max(1);
    let warm = plan.warmup_secs * plan.rate;
    let total = warm + plan.seconds * plan.rate;
    let start_ns = shared.now_ns() + 50_000_000;
    let mut window = None;
    let mut seq = 0u64;
    while seq < total {
        let now = shared.now_ns();
        while seq < total && start_ns + seq * interval_ns <= now {
            if seq == warm {
                window = Some(CpuMark::now(now, &server));
            }
            let i = (seq % k as u64) as usize;
            let (sender, recipient) = pairs[i];
            sender.send_message(conversations[i], recipient.user, seq, start_ns + seq * interval_ns);
            seq += 1;
        }
        if seq < total {
            let next = shared.baseline + Duration::from_nanos(start_ns + seq * interval_ns);
            tokio::time::sleep_until(next.into()).await;
        }
    }
    let end_ns = start_ns + total * interval_ns;
    tokio::time::sleep_until((shared.baseline + Duration::from_nanos(end_ns)).into()).await;
    let start = window.context("the window never started")?;
    let end = CpuMark::now(shared.now_ns(), &server);
    let (window_start_ns, window_end_ns) = (start.at_ns, end.at_ns);

    // Drain: wait for every send to be written and what is still in flight (up to 10 s).
    let drain_until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < drain_until
        && (shared.sent.load(Ordering::Relaxed) < total || (shared.delivered() as u64) < total)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !server.running() {
        bail!("the server exited during the run");
    }
    let deliveries = shared.deliveries.lock().map(|d| d.clone()).unwrap_or_default();
    if let Some(dir) = &plan.dump {
        let mut csv = String::from("seq,sent_ns,received_ns\n");
        for d in &deliveries {
            csv.push_str(&format!("{},{},{}\n", d.seq, d.sent_ns, d.received_ns));
        }
        std::fs::create_dir_all(dir).context("dump directory")?;
        let path = dir.join(format!("messages-{}-run{run}.csv", plan.rate));
        std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    let sends = shared.sends.lock().map(|s| s.clone()).unwrap_or_default();
    let window_secs = (window_end_ns - window_start_ns) as f64 / 1e9;
    let sent_in_window = sends.iter().filter(|(seq, _)| *seq >= warm).count() as u64;
    let sent_during = sends.iter().filter(|(seq, _)| *seq >= warm).count() as f64;
    let delivered_during =
        deliveries.iter().filter(|d| d.received_ns >= window_start_ns && d.received_ns < window_end_ns).count() as f64;
    let mut latencies: Vec<f64> =
        deliveries.iter().filter(|d| d.seq >= warm).map(|d| (d.received_ns - d.sent_ns) as f64 / 1e6).collect();
    latencies.sort_by(f64::total_cmp);
    let mut lags: Vec<f64> = sends.iter().filter(|(seq, _)| *seq >= warm).map(|(_, lag)| *lag as f64 / 1e6).collect();
    lags.sort_by(f64::total_cmp);
    let figures = MessageFigures {
        sent_per_sec: sent_during / window_secs,
        delivered_per_sec: delivered_during / window_secs,
        p50_ms: percentile_sorted(&latencies, 50.0),
        p99_ms: percentile_sorted(&latencies, 99.0),
        p999_ms: percentile_sorted(&latencies, 99.9),
        max_ms: percentile_sorted(&latencies, 100.0),
        lost: sent_in_window.saturating_sub(latencies.len() as u64),
        sent_in_window,
        send_errors: shared.send_errors.load(Ordering::Relaxed),
        server_cpu: end.server - start.server,
        generator_cpu: end.generator - start.generator,
        postgres_cpu: end.postgres - start.postgres,
        machine_busy: end.machine - start.machine,
        steal: end.steal - start.steal,
        lag_p99_ms: percentile_sorted(&lags, 99.0),
        dropped: shared.dropped.load(Ordering::Relaxed),
    };
    eprintln!(
        "  sent {:.0}/s, delivered {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, never delivered {} \
         of {}, error replies {}, server CPU {:.2} s, generator CPU {:.2} s, PostgreSQL CPU {:.2} s, machine busy {:.2} s, \
         stolen {:.2} s, schedule lag p99 {:.2} ms",
        figures.sent_per_sec,
        figures.delivered_per_sec,
        figures.p50_ms,
        figures.p99_ms,
        figures.p999_ms,
        figures.max_ms,
        figures.lost,
        figures.sent_in_window,
        figures.send_errors,
        figures.server_cpu,
        figures.generator_cpu,
        figures.postgres_cpu,
        figures.machine_busy,
        figures.steal,
        figures.lag_p99_ms
    );
    drop(sockets);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(figures)
}

/// The machine is shared: waits (up to 2 minutes) until processes other than the server,
/// this generator and PostgreSQL, plus time stolen by the hypervisor, take less than a tenth
/// of a core over a second.
async fn wait_for_quiet_machine(server: &Server) {
    wait_until_quiet(|| {
        let mark = CpuMark::now(0, server);
        mark.machine + mark.steal - mark.server - mark.generator - mark.postgres
    })
    .await;
}

/// Waits (up to 2 minutes) until `others()` — CPU seconds used so far by everything that is not
/// being measured, stolen time included — grows by less than a tenth of a core over a second.
pub(crate) async fn wait_until_quiet(others: impl Fn() -> f64) {
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        let before = others();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let busy = others() - before;
        if busy < 0.1 {
            return;
        }
        if Instant::now() > give_up {
            eprintln!("  other processes keep using {busy:.2} cores; measuring anyway");
            return;
        }
        eprintln!("  other processes use {busy:.2} cores; waiting for a quiet machine…");
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
}

fn report_messages(cli: &Cli, plan: &MessagePlan, all: &[MessageFigures], database: &Database) {
    let col = |f: &dyn Fn(&MessageFigures) -> f64| all.iter().map(f).collect::<Vec<f64>>();
    println!(
        "\n### Messages: {} msg/s offered (open loop) over {} private conversations; {} runs; {}\n",
        plan.rate,
        plan.conversations,
        all.len(),
        database.label()
    );
    println!("- machine: {}", server::machine());
    println!(
        "- each run: fresh server; {} users, one socket each joined to system:general and user:{{id}} ({} idle); \
         senders also joined to their conversation:{{id}}; {} s warm-up then {} s measured; ciphertexts of {} bytes \
         padding plus the stamp",
        2 * plan.conversations + plan.idle_sockets,
        plan.idle_sockets,
        plan.warmup_secs,
        plan.seconds,
        plan.payload_bytes
    );
    println!(
        "- latency: from writing `send_message` on the sender's socket to reading `new_message` on the recipient's \
         `user:{{id}}` socket (one process, one clock); each send also delivers the sender's own copy, not counted"
    );
    println!(
        "- heartbeat every {} s; the load generator and the server share the machine's cores\n",
        cli.heartbeat_secs
    );
    let rows = vec![
        Row::new("offered", "msg/s", 0, col(&|_| plan.rate as f64)),
        Row::new("sends written", "msg/s", 0, col(&|f| f.sent_per_sec)),
        Row::new("delivered to recipients", "msg/s", 0, col(&|f| f.delivered_per_sec)),
        Row::new("send→deliver p50", "ms", 2, col(&|f| f.p50_ms)),
        Row::new("send→deliver p99", "ms", 2, col(&|f| f.p99_ms)),
        Row::new("send→deliver p99.9", "ms", 2, col(&|f| f.p999_ms)),
        Row::new("send→deliver max", "ms", 2, col(&|f| f.max_ms)),
        Row::new("sent in the window", "", 0, col(&|f| f.sent_in_window as f64)),
        Row::new("not delivered 10 s after the last send", "", 0, col(&|f| f.lost as f64)),
        Row::new("error replies", "", 0, col(&|f| f.send_errors as f64)),
        Row::new("server CPU in the window", "s", 2, col(&|f| f.server_cpu)),
        Row::new("generator CPU in the window", "s", 2, col(&|f| f.generator_cpu)),
        Row::new("PostgreSQL processes' CPU in the window", "s", 2, col(&|f| f.postgres_cpu)),
        Row::new(
            "rest of the machine's busy CPU in the window (kernel threads, softirq, others)",
            "s",
            2,
            col(&|f| f.machine_busy - f.server_cpu - f.generator_cpu - f.postgres_cpu),
        ),
        Row::new("CPU stolen by the hypervisor in the window", "s", 2, col(&|f| f.steal)),
        Row::new("generator lateness against the schedule p99", "ms", 2, col(&|f| f.lag_p99_ms)),
        Row::new("sockets dropped by the server", "", 0, col(&|f| f.dropped as f64)),
    ];
    println!("{}", table(&rows));
}
