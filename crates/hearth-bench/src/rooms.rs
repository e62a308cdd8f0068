//! `rooms`: a room's fan-out. `--members` users (10 000 by default) in one public room, each
//! with one socket joined to `system:general`, `user:{id}` and `room:{id}`, as a client in the
//! room holds them.
//!
//! Two measurements per run, on the same sockets:
//! - **Until the last member holds it**: `--posts` posts, one at a time (the next once the
//!   previous has reached every member, or after 10 s), each stamped with its send time; for each,
//!   the time from writing `post` on the poster's socket to the last member's socket reading its
//!   `new_post`. p50/p99/max over the posts, and over every single delivery.
//! - **Deliveries per server CPU-second**: posts at a steady `--rate` (open loop) for
//!   `--seconds` after `--warmup-secs`; `new_post` pushes read by members in the window over the
//!   server's CPU seconds in the window.
//! - **The kernel's floor**, in the same run: a bare process writing a frame of the same size to
//!   as many connections at the same rate over the same network (`floor.rs`), once with one
//!   `write` per frame and once in batches through io_uring as hearth sends; its frames per
//!   CPU-second bound what any server sending each member its own copy that way can reach here,
//!   and hearth's deliveries per CPU-second are reported as a share of the batched one.
//!
//! `--network` says how the generator reaches the server: over loopback, or (`veth`) as two hosts
//! on one machine, the server and the floor writer in a network namespace of their own on CPU 0
//! and the generator on CPU 1 (`network.rs`).
//!
//! The poster is a member too and counts among those who must hold the post.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::{self, Shared, Socket, User};
use crate::floor;
use crate::network::{self, Network, NetworkKind, Placement};
use crate::server::{self, Database, Server};
use crate::stats::{Row, percentile_sorted, table};
use crate::{Cli, CpuMark, open_sockets, socket_options, wait_for_quiet_machine};

/// How long one post may take to reach every member before the next is sent anyway.
const POST_DEADLINE: Duration = Duration::from_secs(10);

/// `hearth-bench rooms`.
#[derive(Debug, clap::Args)]
pub struct RoomsArgs {
    /// Members of the room, each with one socket.
    #[arg(long, default_value_t = 10_000)]
    members: usize,
    /// Posts sent one at a time for the time until the last member holds each.
    #[arg(long, default_value_t = 60)]
    posts: u64,
    /// Pause between those posts.
    #[arg(long, default_value_t = 100)]
    gap_ms: u64,
    /// Posts per second in the steady measurement (5 into 10 000 members is 50 000 deliveries a
    /// second: the server then takes about half a core and the generator as much).
    #[arg(long, default_value_t = 5)]
    rate: u64,
    /// Measured seconds at the steady rate.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds at the steady rate before measuring (not counted).
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Characters of padding in each post after its stamp.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// How the generator reaches the server: `loopback`, or `veth` for two hosts on one machine
    /// (network namespaces joined by a veth pair, the server on CPU 0 and the generator on CPU 1,
    /// each side's receive work on its own CPU; needs root), so that the members' receive work is
    /// not charged to the server.
    #[arg(long, value_enum, default_value_t)]
    network: NetworkKind,
}

#[derive(Debug)]
struct RoomFigures {
    join_secs: f64,
    join_reply_kib: f64,
    last_p50_ms: f64,
    last_p99_ms: f64,
    last_max_ms: f64,
    each_p50_ms: f64,
    each_p99_ms: f64,
    incomplete_posts: u64,
    steady_posts_per_sec: f64,
    steady_deliveries_per_sec: f64,
    steady_p50_ms: f64,
    steady_p99_ms: f64,
    steady_missing: u64,
    server_cpu: f64,
    generator_cpu: f64,
    deliveries_per_server_cpu_sec: f64,
    /// One `write` per frame.
    floor: floor::Floor,
    /// In batches through io_uring, as hearth sends.
    floor_batched: floor::Floor,
    send_errors: u64,
    dropped: u64,
}

/// Runs the measurement `cli.runs` times, a fresh server each, and prints the table.
pub async fn run(cli: &Cli, binary: &Path, database: &Database, args: &RoomsArgs) -> anyhow::Result<()> {
    // Dropped after the runs' servers: deletes the namespace and the veth pair.
    let veth = match args.network {
        NetworkKind::Loopback => None,
        NetworkKind::Veth => {
            if args.members > network::SOCKETS_PER_ADDRESS {
                bail!(
                    "--network veth opens every socket from one address, which has ports for about {} towards the \
                     server; {} members need more (use --network loopback, which spreads them over 127.0.0.2, …)",
                    network::SOCKETS_PER_ADDRESS,
                    args.members
                );
            }
            Some(Network::create()?)
        }
    };
    let placement = veth.as_ref().map_or_else(Placement::loopback, Network::server_placement);
    eprintln!("network: {}", args.network.description());
    let mut all = Vec::new();
    for run in 1..=cli.runs {
        eprintln!("run {run}/{}: a room of {} members…", cli.runs, args.members);
        all.push(room_run(cli, binary, &placement, database, args, run).await?);
    }
    report(cli, args, &all, database);
    Ok(())
}

/// Registers the members, makes the room (the first member's, public) and has everyone else
/// join it over REST.
async fn room_with_members(base: &str, users: &[User], concurrency: usize) -> anyhow::Result<Uuid> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().context("HTTP client")?;
    let created: Value = http
        .post(format!("{base}/api/rooms"))
        .bearer_auth(&users[0].token)
        .json(&json!({"name": "bench", "visibility": "public"}))
        .send()
        .await
        .context("POST /api/rooms")?
        .error_for_status()
        .context("POST /api/rooms")?
        .json()
        .await
        .context("the created room")?;
    let room = created["id"].as_str().and_then(|id| Uuid::parse_str(id).ok()).context("the room's id")?;
    let joins: Vec<anyhow::Result<()>> = futures::stream::iter(&users[1..])
        .map(|user| {
            let (http, url) = (http.clone(), format!("{base}/api/rooms/{room}/join"));
            async move {
                http.post(url).bearer_auth(&user.token).send().await?.error_for_status()?;
                Ok(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    joins.into_iter().collect::<anyhow::Result<Vec<()>>>().context("POST /api/rooms/{id}/join")?;
    Ok(room)
}

/// Joins `room:{id}` on every socket, `concurrency` at a time; returns the mean join reply's
/// size in bytes (as JSON).
async fn join_room(sockets: &[Socket], room: Uuid, concurrency: usize) -> anyhow::Result<f64> {
    let topic = format!("room:{room}");
    let sizes: Vec<anyhow::Result<usize>> = futures::stream::iter(sockets)
        .map(|socket| {
            let topic = topic.clone();
            async move {
                let reply =
                    tokio::time::timeout(Duration::from_secs(120), socket.request(&topic, "phx_join", json!({})))
                        .await
                        .context("joining the room timed out")??;
                Ok(serde_json::to_vec(&reply).map_or(0, |bytes| bytes.len()))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let sizes: Vec<usize> = sizes.into_iter().collect::<anyhow::Result<_>>()?;
    Ok(sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64)
}

/// Milliseconds from each post's send to its arrival, for the deliveries of posts `seqs`.
fn latencies_ms(shared: &Shared, seqs: std::ops::Range<u64>) -> Vec<f64> {
    let Ok(deliveries) = shared.deliveries.lock() else { return Vec::new() };
    let mut latencies: Vec<f64> = deliveries
        .iter()
        .filter(|d| seqs.contains(&d.seq))
        .map(|d| d.received_ns.saturating_sub(d.sent_ns) as f64 / 1e6)
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

async fn room_run(
    cli: &Cli,
    binary: &Path,
    placement: &Placement,
    database: &Database,
    args: &RoomsArgs,
    run: usize,
) -> anyhow::Result<RoomFigures> {
    let mut server = Server::start(binary, placement, database, cli.idle_timeout_secs, run)?;
    eprintln!("  server pid {} at {}", server.pid(), server.base);
    let members = args.members.max(1);
    let started = Instant::now();
    let users = client::register(&server.base, members, cli.register_concurrency).await?;
    let room = room_with_members(&server.base, &users, cli.register_concurrency).await?;
    eprintln!("  {members} members registered and in the room in {:.1} s (setup)", started.elapsed().as_secs_f64());
    let shared = Shared::new();
    let options = socket_options(cli, &server, args.payload_bytes);
    let (sockets, failures) = open_sockets(cli, &users, &options, &shared, 1, |_| {}).await;
    if let Some(failure) = failures.first() {
        bail!("a socket failed to open: {failure}");
    }
    let joining = Instant::now();
    let join_reply_bytes = join_room(&sockets, room, cli.connect_concurrency).await?;
    let join_secs = joining.elapsed().as_secs_f64();
    eprintln!(
        "  {members} sockets joined room:{room} in {join_secs:.1} s (join reply {:.0} KiB each)",
        join_reply_bytes / 1024.0
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    wait_for_quiet_machine(&server).await;

    // Until the last member holds it: one post at a time.
    let poster = &sockets[0];
    let members_u64 = members as u64;
    let mut incomplete_posts = 0;
    for seq in 0..args.posts {
        poster.post(room, seq, shared.now_ns());
        let deadline = Instant::now() + POST_DEADLINE;
        while (shared.delivered() as u64) < (seq + 1) * members_u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if (shared.delivered() as u64) < (seq + 1) * members_u64 {
            incomplete_posts += 1;
        }
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
    }
    let each = latencies_ms(&shared, 0..args.posts);
    let mut last: Vec<f64> = {
        let Ok(deliveries) = shared.deliveries.lock() else { bail!("a socket task panicked holding the record") };
        let mut last_by_post = vec![0.0f64; args.posts as usize];
        for d in deliveries.iter().filter(|d| d.seq < args.posts) {
            let ms = d.received_ns.saturating_sub(d.sent_ns) as f64 / 1e6;
            last_by_post[d.seq as usize] = last_by_post[d.seq as usize].max(ms);
        }
        last_by_post
    };
    last.sort_by(f64::total_cmp);
    eprintln!(
        "  one at a time: last member p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; each delivery p50 {:.1} ms; {} of {} \
         posts not everywhere within {POST_DEADLINE:?}",
        percentile_sorted(&last, 50.0),
        percentile_sorted(&last, 99.0),
        percentile_sorted(&last, 100.0),
        percentile_sorted(&each, 50.0),
        incomplete_posts,
        args.posts
    );

    // Steady rate, open loop: post n at start + n / rate.
    let first = args.posts;
    let rate = args.rate.max(1);
    let interval_ns = 1_000_000_000 / rate;
    let warm = args.warmup_secs * rate;
    let total = warm + args.seconds * rate;
    let delivered_before = shared.delivered() as u64;
    let start_ns = shared.now_ns() + 50_000_000;
    let mut window = None;
    for n in 0..total {
        let at = start_ns + n * interval_ns;
        tokio::time::sleep_until((shared.baseline + Duration::from_nanos(at)).into()).await;
        if n == warm {
            window = Some(CpuMark::now(shared.now_ns(), &server));
        }
        poster.post(room, first + n, at);
    }
    tokio::time::sleep_until((shared.baseline + Duration::from_nanos(start_ns + total * interval_ns)).into()).await;
    let start = window.context("the window never started")?;
    let end = CpuMark::now(shared.now_ns(), &server);
    let drain_until = Instant::now() + POST_DEADLINE;
    while (shared.delivered() as u64) < delivered_before + total * members_u64 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !server.running() {
        bail!("the server exited during the run");
    }
    let window_secs = (end.at_ns - start.at_ns) as f64 / 1e9;
    let in_window = {
        let Ok(deliveries) = shared.deliveries.lock() else { bail!("a socket task panicked holding the record") };
        deliveries.iter().filter(|d| d.received_ns >= start.at_ns && d.received_ns < end.at_ns).count() as f64
    };
    let measured = first + warm..first + total;
    let steady = latencies_ms(&shared, measured.clone());
    let server_cpu = end.server - start.server;
    let post_frame_bytes = shared.post_frame_bytes.load(Ordering::Relaxed);
    // The members' sockets close first: the floor's connections need their file descriptors.
    drop(sockets);
    let closing = Instant::now();
    while shared.alive.load(Ordering::Relaxed) > 0 && closing.elapsed() < POST_DEADLINE {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let floor_payload = usize::try_from(post_frame_bytes).unwrap_or(0);
    let floor_at =
        |sends| floor::measure(placement, sends, members, rate, args.warmup_secs, args.seconds, floor_payload);
    let floor = floor_at(floor::Sends::Write).await?;
    let floor_batched = floor_at(floor::Sends::Batched).await?;
    for (sends, floor) in [(floor::Sends::Write, &floor), (floor::Sends::Batched, &floor_batched)] {
        eprintln!(
            "  the kernel's floor ({}): {:.0} writes/s of {floor_payload}-byte frames to {members} connections, writer CPU \
             {:.2} s = {:.0} writes per CPU-second",
            sends.name(),
            floor.writes_per_sec,
            floor.writer_cpu,
            floor.writes_per_cpu_sec
        );
    }
    let figures = RoomFigures {
        join_secs,
        join_reply_kib: join_reply_bytes / 1024.0,
        last_p50_ms: percentile_sorted(&last, 50.0),
        last_p99_ms: percentile_sorted(&last, 99.0),
        last_max_ms: percentile_sorted(&last, 100.0),
        each_p50_ms: percentile_sorted(&each, 50.0),
        each_p99_ms: percentile_sorted(&each, 99.0),
        incomplete_posts,
        steady_posts_per_sec: (args.seconds * rate) as f64 / window_secs,
        steady_deliveries_per_sec: in_window / window_secs,
        steady_p50_ms: percentile_sorted(&steady, 50.0),
        steady_p99_ms: percentile_sorted(&steady, 99.0),
        steady_missing: (measured.end - measured.start) * members_u64 - steady.len() as u64,
        server_cpu,
        generator_cpu: end.generator - start.generator,
        deliveries_per_server_cpu_sec: in_window / server_cpu.max(1e-9),
        floor,
        floor_batched,
        send_errors: shared.send_errors.load(Ordering::Relaxed),
        dropped: shared.dropped.load(Ordering::Relaxed),
    };
    eprintln!(
        "  steady {rate} posts/s: {:.0} deliveries/s, p50 {:.1} ms, p99 {:.1} ms, missing {}; server CPU {:.2} s = {:.0} \
         deliveries per server CPU-second; generator CPU {:.2} s; error replies {}, sockets dropped {}",
        figures.steady_deliveries_per_sec,
        figures.steady_p50_ms,
        figures.steady_p99_ms,
        figures.steady_missing,
        figures.server_cpu,
        figures.deliveries_per_server_cpu_sec,
        figures.generator_cpu,
        figures.send_errors,
        figures.dropped
    );
    Ok(figures)
}

fn report(cli: &Cli, args: &RoomsArgs, all: &[RoomFigures], database: &Database) {
    let col = |f: &dyn Fn(&RoomFigures) -> f64| all.iter().map(f).collect::<Vec<f64>>();
    let (sources, cores) = match args.network {
        NetworkKind::Loopback => (
            format!("{} per source address", cli.per_address),
            "the load generator and the server share the machine's cores",
        ),
        NetworkKind::Veth => (
            "all from the generator's one address".to_owned(),
            "the load generator and the server each have their own core",
        ),
    };
    println!(
        "\n### Room fan-out: one public room of {} members online; {} runs; {}; over {}\n",
        args.members,
        all.len(),
        database.label(),
        args.network.name()
    );
    println!("- machine: {}", server::machine());
    println!("- network: {}", args.network.description());
    println!(
        "- each run: fresh server; one socket per member joined to system:general, user:{{id}} and room:{{id}}, \
         {sources}; posts of {} characters of padding plus the stamp, all by one member",
        args.payload_bytes
    );
    println!(
        "- until the last member holds it: {} posts one at a time ({} ms apart), from writing `post` to the last \
         socket reading `new_post` (the poster's own included); one process, one clock",
        args.posts, args.gap_ms
    );
    println!(
        "- steady: {} posts/s open loop, {} s warm-up then {} s measured; deliveries are `new_post` frames read by \
         members in the window; {cores}\n",
        args.rate, args.warmup_secs, args.seconds
    );
    let rows = vec![
        Row::new("joining room:{id} on every socket", "s", 1, col(&|f| f.join_secs)),
        Row::new("room join reply (JSON)", "KiB", 0, col(&|f| f.join_reply_kib)),
        Row::new("post → last member holds it, p50", "ms", 1, col(&|f| f.last_p50_ms)),
        Row::new("post → last member holds it, p99", "ms", 1, col(&|f| f.last_p99_ms)),
        Row::new("post → last member holds it, max", "ms", 1, col(&|f| f.last_max_ms)),
        Row::new("post → each member, p50", "ms", 1, col(&|f| f.each_p50_ms)),
        Row::new("post → each member, p99", "ms", 1, col(&|f| f.each_p99_ms)),
        Row::new("posts not with every member within 10 s", "", 0, col(&|f| f.incomplete_posts as f64)),
        Row::new("steady: posts", "/s", 1, col(&|f| f.steady_posts_per_sec)),
        Row::new("steady: deliveries", "/s", 0, col(&|f| f.steady_deliveries_per_sec)),
        Row::new("steady: post → each member, p50", "ms", 1, col(&|f| f.steady_p50_ms)),
        Row::new("steady: post → each member, p99", "ms", 1, col(&|f| f.steady_p99_ms)),
        Row::new("steady: deliveries missing 10 s after the last post", "", 0, col(&|f| f.steady_missing as f64)),
        Row::new("steady: server CPU in the window", "s", 2, col(&|f| f.server_cpu)),
        Row::new("steady: generator CPU in the window", "s", 2, col(&|f| f.generator_cpu)),
        Row::new("steady: deliveries per server CPU-second", "", 0, col(&|f| f.deliveries_per_server_cpu_sec)),
        Row::new(
            "kernel's floor, one write per frame: frames per writer CPU-second",
            "",
            0,
            col(&|f| f.floor.writes_per_cpu_sec),
        ),
        Row::new(
            "kernel's floor, batches of 64 through io_uring: frames per writer CPU-second",
            "",
            0,
            col(&|f| f.floor_batched.writes_per_cpu_sec),
        ),
        Row::new(
            "hearth's deliveries per CPU-second, share of the batched floor",
            "%",
            1,
            col(&|f| 100.0 * f.deliveries_per_server_cpu_sec / f.floor_batched.writes_per_cpu_sec),
        ),
        Row::new("error replies to posts", "", 0, col(&|f| f.send_errors as f64)),
        Row::new("sockets dropped by the server", "", 0, col(&|f| f.dropped as f64)),
    ];
    println!("{}", table(&rows));
}
