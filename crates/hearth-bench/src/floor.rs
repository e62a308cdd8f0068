//! The kernel's floor for a fan-out, measured in the same run as hearth: a bare process that
//! writes one WebSocket frame (as big as a room's `new_post`) to each of as many TCP connections
//! as the room has members, at the same post rate, read by the generator as the members' sockets
//! are. Its CPU per write is what the kernel's TCP costs, on this machine and over the same
//! network as the server's (over loopback the receiving end's TCP work runs in the writer's
//! system call; with `--network veth` it runs on the generator's core), for any server that
//! writes each member its own copy; hearth's deliveries per CPU-second are reported beside it and
//! as a share of it.
//!
//! The writer is this binary again, started with the hidden `floor-writer` mode where the server
//! runs (the same [`Placement`]): its CPU is then read from `/proc/PID/stat` as the server's is.
//! One thread, `TCP_NODELAY`, nothing else: the floor is what the system calls cost. It is
//! measured two ways: one blocking `write` per frame ([`Sends::Write`]), and the frames in
//! batches of 64 through phoenix-channels' `send_batch`, one `io_uring_enter` a batch, as hearth
//! sends a broadcast ([`Sends::Batched`]).

use std::io::{BufRead as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use phoenix_channels::server::send_batch::{self, Outgoing, Sent};
use tokio::io::AsyncReadExt as _;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::network::Placement;
use crate::server::cpu_seconds;

/// How the floor writer hands its frames to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sends {
    /// One blocking `write` per frame.
    Write,
    /// Batches of [`send_batch::BATCH`] frames, each to its own connection, one system call a
    /// batch through io_uring where the kernel permits it: what hearth's fan-out does.
    Batched,
}

impl Sends {
    /// Its `--sends` value.
    pub fn name(self) -> &'static str {
        match self {
            Sends::Write => "write",
            Sends::Batched => "batched",
        }
    }
}

/// `hearth-bench floor-writer` (started by the bench itself).
#[derive(Debug, clap::Args)]
pub struct WriterArgs {
    /// The address to listen on (any free port).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    listen: IpAddr,
    /// Connections to accept before writing.
    #[arg(long)]
    connections: usize,
    /// Rounds per second (one frame to every connection each).
    #[arg(long)]
    rate: u64,
    /// Seconds of rounds.
    #[arg(long)]
    seconds: u64,
    /// Bytes of the frame's payload.
    #[arg(long)]
    payload_bytes: usize,
    /// How the frames go to the kernel.
    #[arg(long, value_enum)]
    sends: Sends,
}

/// The writer: prints its port, accepts, waits for a line on stdin, then writes its rounds.
pub fn write(args: &WriterArgs) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind((args.listen, 0)).context("binding the floor writer")?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let mut connections = Vec::with_capacity(args.connections);
    while connections.len() < args.connections {
        let (connection, _) = listener.accept().context("accepting")?;
        connection.set_nodelay(true)?;
        connections.push(connection);
    }
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go)?;
    let frame = frame(args.payload_bytes);
    let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let rounds = args.seconds * args.rate;
    match args.sends {
        Sends::Write => write_rounds(&connections, &frame, rounds, interval),
        Sends::Batched => batched_rounds(connections, frame, rounds, interval),
    }
}

/// Sleeps until round `round` of rounds `interval` apart from `start` is due.
fn wait_for_round(start: Instant, round: u64, interval: Duration) {
    let at = start + interval * u32::try_from(round).unwrap_or(u32::MAX);
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

/// Each round, one blocking `write` of `frame` to each connection.
fn write_rounds(connections: &[TcpStream], frame: &[u8], rounds: u64, interval: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    for round in 0..rounds {
        wait_for_round(start, round, interval);
        for mut connection in connections {
            connection.write_all(frame).context("writing")?;
        }
    }
    Ok(())
}

/// Each round, `frame` to every connection in batches, as hearth's fan-out sends. The readers
/// keep up, so every socket has room: a send that does not take the whole frame is an error.
fn batched_rounds(connections: Vec<TcpStream>, frame: Vec<u8>, rounds: u64, interval: Duration) -> anyhow::Result<()> {
    // The batches take tokio's sockets: they register with the runtime this mode is called in
    // (`main`'s), which does nothing else meanwhile.
    let mut streams = Vec::with_capacity(connections.len());
    for connection in connections {
        connection.set_nonblocking(true)?;
        streams.push(Arc::new(tokio::net::TcpStream::from_std(connection)?));
    }
    let frame = Bytes::from(frame);
    let start = Instant::now();
    for round in 0..rounds {
        wait_for_round(start, round, interval);
        for batch in streams.chunks(send_batch::BATCH) {
            let sends: Vec<Outgoing> =
                batch.iter().map(|stream| Outgoing { stream: stream.clone(), bytes: frame.clone() }).collect();
            if let Some(sent) = send_batch::send_all(&sends).into_iter().find(|sent| *sent != Sent::Wrote(frame.len()))
            {
                bail!("a connection did not take a whole frame: {sent:?}");
            }
        }
    }
    Ok(())
}

/// A WebSocket text frame as a server sends it, with `payload_bytes` of payload.
fn frame(payload_bytes: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    let payload = "x".repeat(payload_bytes);
    Frame::message(payload, OpCode::Data(Data::Text), true).format(&mut bytes).expect("writing to a Vec");
    bytes
}

/// The floor over one window.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// Frames read by the generator in the window, per second.
    pub writes_per_sec: f64,
    /// The writer's CPU seconds in the window.
    pub writer_cpu: f64,
    /// Writes per writer CPU-second.
    pub writes_per_cpu_sec: f64,
}

/// Starts the writer where `placement` says, connects `connections` readers to it, and measures
/// `seconds` after `warmup_secs` at `rate` rounds per second.
pub async fn measure(
    placement: &Placement,
    sends: Sends,
    connections: usize,
    rate: u64,
    warmup_secs: u64,
    seconds: u64,
    payload_bytes: usize,
) -> anyhow::Result<Floor> {
    let mut writer = Writer::start(placement, sends, connections, rate, warmup_secs + seconds + 1, payload_bytes)?;
    let frame_bytes = frame(payload_bytes).len() as u64;
    let read = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut stream = tokio::net::TcpStream::connect((placement.listen, writer.port))
            .await
            .context("connecting to the floor writer")?;
        let read = read.clone();
        readers.push(tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buffer).await {
                read.fetch_add(n as u64, Ordering::Relaxed);
            }
        }));
    }
    writer.go()?;
    tokio::time::sleep(Duration::from_secs(warmup_secs)).await;
    let (start_at, start_cpu, start_read) = (Instant::now(), writer.cpu_seconds(), read.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (window, writer_cpu) = (start_at.elapsed().as_secs_f64(), writer.cpu_seconds() - start_cpu);
    let writes = (read.load(Ordering::Relaxed) - start_read) as f64 / frame_bytes as f64;
    tokio::task::spawn_blocking(move || writer.finish()).await.context("the floor writer's waiter")??;
    for reader in readers {
        reader.abort();
    }
    if writer_cpu.is_nan() || writer_cpu <= 0.0 {
        bail!("the floor writer used no CPU in the window");
    }
    Ok(Floor { writes_per_sec: writes / window, writer_cpu, writes_per_cpu_sec: writes / writer_cpu })
}

/// The writer process.
struct Writer {
    child: Child,
    port: u16,
}

impl Writer {
    /// Starts the writer where `placement` says and reads the port it listens on.
    fn start(
        placement: &Placement,
        sends: Sends,
        connections: usize,
        rate: u64,
        seconds: u64,
        payload_bytes: usize,
    ) -> anyhow::Result<Self> {
        let program = std::env::current_exe().context("this binary")?;
        let child = placement
            .command(&program)
            .args(["floor-writer", "--listen", &placement.listen.to_string()])
            .args(["--connections", &connections.to_string(), "--rate", &rate.to_string()])
            .args(["--seconds", &seconds.to_string(), "--payload-bytes", &payload_bytes.to_string()])
            .args(["--sends", sends.name()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the floor writer")?;
        // From here on dropping `writer` stops it.
        let mut writer = Self { child, port: 0 };
        let stdout = writer.child.stdout.take().context("the writer's stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        writer.port = line.trim().parse().with_context(|| format!("the writer's port, not {line:?}"))?;
        placement.check_exec(writer.child.id(), &program)?;
        Ok(writer)
    }

    fn go(&mut self) -> anyhow::Result<()> {
        let stdin = self.child.stdin.as_mut().context("the writer's stdin")?;
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
        Ok(())
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    fn finish(mut self) -> anyhow::Result<()> {
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the floor writer failed: {status}");
        }
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
