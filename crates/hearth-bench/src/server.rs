//! The server under test: the release `hearth` binary on a free port with a throwaway data
//! directory (and optionally a fresh PostgreSQL database), on loopback or in a network namespace
//! of its own (`network.rs`), plus what `/proc` says about it and about the machine.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};

use crate::network::Placement;

/// Where the database lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// hearth's default: a SQLite file in the data directory.
    Sqlite,
    /// A fresh database on this PostgreSQL server (`postgres://user@host:port`), created
    /// before the server starts and dropped after it stops (with `psql`).
    Postgres { admin_url: String },
}

impl Database {
    /// A short name for the report.
    pub fn label(&self) -> &'static str {
        match self {
            Database::Sqlite => "SQLite (WAL, synchronous=NORMAL)",
            Database::Postgres { .. } => "PostgreSQL",
        }
    }
}

/// One running `hearth serve`.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// The URL it printed as listening on: `http://127.0.0.1:PORT` on loopback.
    pub base: String,
    /// The listening address.
    pub addr: SocketAddr,
    postgres: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// The settings the bench gives the server through its environment.
///
/// Registrations are setup, not what is measured: Argon2id is made cheap (m=8 KiB, t=1) so
/// tens of thousands of accounts register in seconds, and the per-address attempt limit is
/// lifted because every registration comes from one address.
const SERVER_ENV: &[(&str, &str)] = &[
    ("NO_COLOR", "1"),
    // The "listening on" line comes from target `hearth`; the library's per-request logs stay off.
    ("RUST_LOG", "warn,hearth=info,hearth_server=warn"),
    ("HEARTH_AUTH__PASSWORD_HASHING__MEMORY_KIB", "8"),
    ("HEARTH_AUTH__PASSWORD_HASHING__ITERATIONS", "1"),
    ("HEARTH_AUTH__PASSWORD_HASHING__PARALLELISM", "1"),
    ("HEARTH_AUTH__ATTEMPTS_PER_ADDRESS_PER_MINUTE", "100000000"),
    ("HEARTH_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "100000000"),
    // Long setups must not outlive the access tokens the sockets connect with.
    ("HEARTH_AUTH__ACCESS_TOKEN_TTL_SECS", "86400"),
];

impl Server {
    /// Starts `binary` where `placement` says and waits for its "listening on" line.
    /// `idle_timeout_secs` sets `realtime.idle_timeout_secs` (the clients heartbeat every 30 s
    /// unless told otherwise).
    pub fn start(
        binary: &Path,
        placement: &Placement,
        database: &Database,
        idle_timeout_secs: u64,
        run: usize,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("hearth-bench-").tempdir().context("temporary data directory")?;
        let mut command = placement.command(binary);
        command
            .args(["serve", "--listen", &format!("{}:0", placement.listen), "--data-dir"])
            .arg(dir.path())
            .envs(SERVER_ENV.iter().copied())
            .env("HEARTH_REALTIME__IDLE_TIMEOUT_SECS", idle_timeout_secs.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let postgres = match database {
            Database::Sqlite => None,
            Database::Postgres { admin_url } => {
                let admin_url = admin_url.trim_end_matches('/').to_owned();
                let name = format!("hearth_bench_{}_{run}", std::process::id());
                psql(&admin_url, &format!("DROP DATABASE IF EXISTS {name}"))?;
                psql(&admin_url, &format!("CREATE DATABASE {name}"))?;
                command.env("HEARTH_DATABASE__URL", format!("{admin_url}/{name}"));
                Some((admin_url, name))
            }
        };
        let mut child = command.spawn().with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        // What the server said before listening, for the error if it never does.
        let mut said = Vec::new();
        let base = loop {
            let Some(line) = lines.next() else { bail!("hearth exited before listening: {}", said.join("\n")) };
            let line = line.context("reading the server's stderr")?;
            said.push(line.clone());
            if let Some(at) = line.find("listening on ") {
                let url = line[at + "listening on ".len()..].split_whitespace().next().context("no URL")?;
                break url.to_owned();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe; pass warnings on.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("  [hearth] {line}");
                }
            }
        });
        let addr: SocketAddr =
            base.trim_start_matches("http://").parse().with_context(|| format!("listening address in {base}"))?;
        // Dropping `server` stops it if the check fails.
        let server = Self { child, base, addr, postgres, _dir: dir };
        placement.check_exec(server.pid(), binary)?;
        Ok(server)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory (`VmRSS`), bytes.
    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(&format!("/proc/{}/status", self.pid()))
    }

    /// User + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.pid()))
    }

    /// Open file descriptors.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, Iterator::count)
    }

    /// The server's open-files limit (soft), from `/proc/PID/limits`.
    pub fn nofile_limit(&self) -> Option<u64> {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).ok()?;
        let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((admin_url, name)) = &self.postgres
            && let Err(error) = psql(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        {
            eprintln!("could not drop database {name}: {error:#}");
        }
    }
}

fn psql(admin_url: &str, sql: &str) -> anyhow::Result<()> {
    let output = Command::new("psql")
        .arg(format!("{admin_url}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .context("running psql (needed for --postgres)")?;
    if !output.status.success() {
        bail!("psql -c {sql:?}: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// `VmRSS` of a `/proc/…/status` file, bytes.
pub fn rss_bytes(status_path: &str) -> u64 {
    let status = std::fs::read_to_string(status_path).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// utime + stime of a `/proc/…/stat` file, seconds.
pub fn cpu_seconds(stat_path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else { return f64::NAN };
    let Some(close) = stat.rfind(')') else { return f64::NAN };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The kernel's view of sockets and its memory, machine-wide (both ends of every loopback
/// connection are on this machine).
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel {
    /// TCP sockets in use (`/proc/net/sockstat`, `TCP: inuse`).
    pub tcp_inuse: u64,
    /// Pages of TCP buffer memory (`TCP: mem`), as bytes.
    pub tcp_mem_bytes: u64,
    /// All kernel slab memory (`Slab:` in `/proc/meminfo`): socket structures, inodes, epoll
    /// entries and the rest.
    pub slab_bytes: u64,
}

impl Kernel {
    /// Reads `/proc/net/sockstat` and `/proc/meminfo` now.
    pub fn now() -> Self {
        let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
        let tcp = sockstat.lines().find_map(|line| line.strip_prefix("TCP:")).unwrap_or_default();
        let words: Vec<&str> = tcp.split_whitespace().collect();
        let field = |name: &str| {
            words.iter().position(|w| *w == name).and_then(|i| words.get(i + 1)).and_then(|v| v.parse::<u64>().ok())
        };
        Self {
            tcp_inuse: field("inuse").unwrap_or(0),
            tcp_mem_bytes: field("mem").unwrap_or(0) * page_size(),
            slab_bytes: meminfo_bytes("Slab:"),
        }
    }
}

fn page_size() -> u64 {
    Command::new("getconf")
        .arg("PAGESIZE")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

fn meminfo_bytes(key: &str) -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The machine, for the report: `nproc`, CPU model, memory. Taken once, at the bench's start:
/// `--network veth` later pins the bench to one core, and `nproc` would then count one.
pub fn machine() -> String {
    static MACHINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MACHINE.get_or_init(describe_machine).clone()
}

/// [`machine`], read now.
fn describe_machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let gib = meminfo_bytes("MemTotal:") as f64 / (1u64 << 30) as f64;
    format!("{cores} cores (nproc), {model}, {gib:.1} GiB RAM (MemTotal)")
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

/// CPU seconds of the whole machine so far (all CPUs, from `/proc/stat`): busy (user, nice,
/// system, irq, softirq) and stolen by the hypervisor for other guests.
pub fn machine_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else { return (f64::NAN, f64::NAN) };
    let fields: Vec<f64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6);
    (busy / clock_ticks_per_second(), field(7) / clock_ticks_per_second())
}

/// CPU seconds so far of every process whose command name is `comm` (e.g. the PostgreSQL
/// server's processes). Processes that exit in between take their seconds with them.
pub fn processes_cpu_seconds(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return f64::NAN };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit())))
        .filter(|entry| std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|name| name.trim_end() == comm))
        .map(|entry| cpu_seconds(&entry.path().join("stat").to_string_lossy()))
        .filter(|seconds| seconds.is_finite())
        .sum()
}
