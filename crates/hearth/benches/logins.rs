//! Login throughput against the raw Argon2id rate, and whether hashing stalls the event
//! loop: `cargo bench -p hearth --bench logins` (BENCH_RUNS, BENCH_SECONDS to change).
//!
//! Each run measures, on this machine and in this process:
//! 1. the raw Argon2id rate with the server's own parameters, one hashing thread per core;
//! 2. logins per second through the release `hearth` binary with 50 clients in flight
//!    (closed loop: each client logs in again as soon as it is answered);
//! 3. `GET /health` latency at a fixed offered rate (open loop), idle and during (2);
//! 4. login latency for an unknown email and for a wrong password, alternating, idle;
//! 5. the server's own CPU seconds (from /proc/PID/stat).
//!
//! Load generator and server share the machine's cores.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hearth_vault::{PasswordHasher, PasswordParams};
use serde_json::json;

const USERS: usize = 50;
const IN_FLIGHT: usize = 50;
const HEALTH_RATE_PER_SEC: u64 = 50;
const PASSWORD: &str = "bench-password-1234";

struct Figures {
    raw_hashes_per_sec: f64,
    logins_per_sec: f64,
    health_idle_p50_ms: f64,
    health_idle_p99_ms: f64,
    health_load_p50_ms: f64,
    health_load_p99_ms: f64,
    health_load_max_ms: f64,
    unknown_email_ms: f64,
    wrong_password_ms: f64,
    server_cpu_secs: f64,
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut all = Vec::new();
    for run in 1..=runs {
        eprintln!("run {run}/{runs}…");
        all.push(runtime.block_on(one_run(Duration::from_secs(seconds))));
    }
    report(&all, seconds);
}

async fn one_run(load: Duration) -> Figures {
    let raw_hashes_per_sec =
        tokio::task::spawn_blocking(move || raw_argon2_rate(Duration::from_secs(4))).await.expect("raw rate");
    let server = Server::start();
    let client = reqwest::Client::builder().pool_max_idle_per_host(IN_FLIGHT + 4).build().expect("client");
    let base = server.base.clone();

    let emails: Vec<String> = (0..USERS).map(|i| format!("bench{i}@example.org")).collect();
    futures_join_all(emails.iter().map(|email| {
        let (client, base) = (client.clone(), base.clone());
        let email = email.clone();
        async move {
            let response = client
                .post(format!("{base}/auth/register"))
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .expect("register");
            assert_eq!(response.status(), 201, "register");
        }
    }))
    .await;

    let idle = health_probe(&client, &base, Duration::from_secs(2), None).await;

    let cpu_before = server.cpu_seconds();
    let stop = Arc::new(AtomicBool::new(false));
    let logins = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for i in 0..IN_FLIGHT {
        let (client, base, stop, logins) = (client.clone(), base.clone(), stop.clone(), logins.clone());
        let email = emails[i % USERS].clone();
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .post(format!("{base}/auth/login"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await
                    .expect("login");
                assert_eq!(response.status(), 200, "login");
                logins.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Let the 50 clients fill the queue before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counted_from = logins.load(Ordering::Relaxed);
    let started = Instant::now();
    let under_load = health_probe(&client, &base, load, Some(&stop)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let logins_per_sec = (logins.load(Ordering::Relaxed) - counted_from) as f64 / elapsed;
    for worker in workers {
        worker.await.expect("worker");
    }
    let server_cpu_secs = server.cpu_seconds() - cpu_before;

    // Timing parity, idle: alternate unknown email and wrong password.
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..30 {
        for (email, samples) in
            [(format!("nobody{i}@example.org"), &mut unknown), (emails[i % USERS].clone(), &mut wrong)]
        {
            let t = Instant::now();
            let response = client
                .post(format!("{base}/auth/login"))
                .json(&json!({"email": email, "password": "not-the-password"}))
                .send()
                .await
                .expect("login");
            assert_eq!(response.status(), 401);
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }

    Figures {
        raw_hashes_per_sec,
        logins_per_sec,
        health_idle_p50_ms: percentile(&idle, 50.0),
        health_idle_p99_ms: percentile(&idle, 99.0),
        health_load_p50_ms: percentile(&under_load, 50.0),
        health_load_p99_ms: percentile(&under_load, 99.0),
        health_load_max_ms: percentile(&under_load, 100.0),
        unknown_email_ms: percentile(&unknown, 50.0),
        wrong_password_ms: percentile(&wrong, 50.0),
        server_cpu_secs,
    }
}

/// Hashes per second with the server's parameters, one thread per core.
fn raw_argon2_rate(duration: Duration) -> f64 {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hasher = Arc::new(PasswordHasher::new(PasswordParams::default()).expect("params"));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (hasher, count) = (hasher.clone(), count.clone());
            std::thread::spawn(move || {
                while started.elapsed() < duration {
                    hasher.hash(PASSWORD).expect("hash");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("hash thread");
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// GET /health at a fixed rate (open loop: sends do not wait for answers) for `duration`,
/// then sets `stop`. Returns latencies in milliseconds.
async fn health_probe(
    client: &reqwest::Client,
    base: &str,
    duration: Duration,
    stop: Option<&Arc<AtomicBool>>,
) -> Vec<f64> {
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / HEALTH_RATE_PER_SEC));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut probes = Vec::new();
    while started.elapsed() < duration {
        ticker.tick().await;
        let (client, url) = (client.clone(), format!("{base}/health"));
        probes.push(tokio::spawn(async move {
            let t = Instant::now();
            let response = client.get(url).send().await.expect("health");
            assert_eq!(response.status(), 200);
            t.elapsed().as_secs_f64() * 1000.0
        }));
    }
    if let Some(stop) = stop {
        stop.store(true, Ordering::Relaxed);
    }
    let mut latencies = Vec::new();
    for probe in probes {
        latencies.push(probe.await.expect("probe"));
    }
    latencies
}

async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(futures: impl Iterator<Item = F>) {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    for handle in handles {
        handle.await.expect("task");
    }
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(all: &[Figures], seconds: u64) {
    let row = |name: &str, f: &dyn Fn(&Figures) -> f64, unit: &str| {
        let values: Vec<f64> = all.iter().map(f).collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!("| {name} | {:.1} {unit} | {min:.1}–{max:.1} |", percentile(&values, 50.0));
    };
    println!(
        "\n{} runs, {seconds} s of login load each, {IN_FLIGHT} logins in flight, /health offered at {HEALTH_RATE_PER_SEC}/s\n",
        all.len()
    );
    println!("| figure | median | min–max |\n|---|---|---|");
    row("raw Argon2id (m=19456 KiB, t=2, p=1), one thread per core", &|f| f.raw_hashes_per_sec, "hashes/s");
    row("logins through hearth", &|f| f.logins_per_sec, "logins/s");
    row("logins / raw Argon2id rate", &|f| 100.0 * f.logins_per_sec / f.raw_hashes_per_sec, "%");
    row("GET /health p50, idle", &|f| f.health_idle_p50_ms, "ms");
    row("GET /health p99, idle", &|f| f.health_idle_p99_ms, "ms");
    row("GET /health p50, 50 logins in flight", &|f| f.health_load_p50_ms, "ms");
    row("GET /health p99, 50 logins in flight", &|f| f.health_load_p99_ms, "ms");
    row("GET /health max, 50 logins in flight", &|f| f.health_load_max_ms, "ms");
    row("login, unknown email (median of 30)", &|f| f.unknown_email_ms, "ms");
    row("login, wrong password (median of 30)", &|f| f.wrong_password_ms, "ms");
    row("server CPU during the login load", &|f| f.server_cpu_secs, "s");
}

/// The release `hearth` binary on a free port with a throwaway data dir.
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn,hearth=info")
            // The bench logs in far faster than any person: lift the guessing limits.
            .env("HEARTH_AUTH__ATTEMPTS_PER_ADDRESS_PER_MINUTE", "100000000")
            .env("HEARTH_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "100000000")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start hearth");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = lines.next().expect("hearth exited before listening").expect("read stderr");
            if let Some(at) = line.find("listening on ") {
                let url = line[at + "listening on ".len()..].split_whitespace().next().expect("url");
                break url.to_owned();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, base, _dir: dir }
    }

    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("stat");
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let after = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
        ticks / clock_ticks_per_second()
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
