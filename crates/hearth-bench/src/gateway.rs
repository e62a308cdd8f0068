//! `hearth-bench gateway`: the AI gateway's overhead, hearth against the LiteLLM proxy in the
//! same run and against the same fake provider (`docs/benchmarks.md`).
//!
//! Each run starts the release `hearth-fake-provider`, the release `hearth` (fresh data
//! directory, every provider's base URL at the fake, order groq first, the per-user sliding
//! window lifted) and, unless `--no-litellm`, the LiteLLM proxy configured from
//! `bench/litellm.yaml` with the same chain. Then, for each target, requests at a fixed offered
//! rate (open loop: request n is due at start + n / rate whatever the replies do, and its
//! latency runs from that due time, so queueing counts), a warm-up, then the measured window:
//!
//! - `direct`: the request hearth makes, straight to the fake (streaming, the whole SSE body read);
//! - `hearth`: `POST /api/chat/message` (a new `conversationId` per request, so no context);
//! - `direct-litellm`: the request LiteLLM makes, straight to the fake (as recorded by the fake);
//! - `litellm`: `POST /v1/chat/completions` on the proxy.
//!
//! Overhead = gateway − its direct baseline at the same rate, per run. hearth and LiteLLM
//! alternate at each rate. LiteLLM's best rate is the highest it sustains (achieved ≥ 95 % of
//! offered, errors < 1 %), tried upwards; hearth's rates then go up while it sustains them at a
//! p99 no worse than LiteLLM's there.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::client;
use crate::server;
use crate::stats::{percentile, percentile_sorted};

/// `hearth-bench gateway`'s options.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// Offered rates for hearth and its direct baseline, requests per second.
    #[arg(long, value_delimiter = ',', default_value = "500,2000")]
    rate: Vec<u64>,
    /// Measured seconds per target and rate.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Seconds at the same rate before each measured window (not counted).
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Rates offered to LiteLLM; its best is the highest it sustains (tried upwards, stopping
    /// at the first it does not; those also in --rate are measured beside hearth's).
    #[arg(long, value_delimiter = ',', default_value = "500,250,100,50,25")]
    litellm_rates: Vec<u64>,
    /// Further rates for hearth, tried upwards while it sustains them at a p99 no worse than
    /// LiteLLM's at LiteLLM's best rate (rates below one that passed are skipped).
    #[arg(long, value_delimiter = ',', default_value = "150,250,350,1000,3000,4000,6000,8000")]
    sweep: Vec<u64>,
    /// The direct target alone at this rate too, to show the generator keeps up (0: skip).
    #[arg(long, default_value_t = 4000)]
    generator_check: u64,
    /// Leave LiteLLM out.
    #[arg(long)]
    no_litellm: bool,
    /// The `litellm` executable (default: bench/.venv-litellm/bin/litellm in the workspace).
    #[arg(long)]
    litellm: Option<PathBuf>,
    /// LiteLLM's config template, `FAKE_ROOT` standing for the fake's root URL
    /// (default: bench/litellm.yaml in the workspace).
    #[arg(long)]
    litellm_config: Option<PathBuf>,
    /// LiteLLM's `--num_workers` (0: one per core).
    #[arg(long, default_value_t = 0)]
    litellm_workers: usize,
    /// The fake provider binary (default: target/release/hearth-fake-provider).
    #[arg(long)]
    fake: Option<PathBuf>,
    /// A request still unanswered this long after its due time counts as an error.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// hearth users the requests are spread over, round robin.
    #[arg(long, default_value_t = 16)]
    users: usize,
    /// Requests in flight per target at most (open files are limited): a request due while
    /// this many are unanswered is not sent and counts as an error.
    #[arg(long, default_value_t = 8000)]
    max_in_flight: usize,
    /// The prompt every target sends. hearth first looks it up in its knowledge base (SQLite
    /// FTS5); this default is near the shipped entries' subject, yet answered by the provider.
    #[arg(long, default_value = "In one sentence: what is a self-hosted chat server good for?")]
    prompt: String,
}

/// Every provider in hearth's order, with the fake-accepted key sent for it (the same keys
/// as in `bench/litellm.yaml`).
const CHAIN: [(&str, &str); 6] = [
    ("groq", "gsk_bench0123456789abcdef0123456789abcdef"),
    ("cerebras", "csk-bench0123456789abcdef0123456789abcdef"),
    ("openrouter", "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
    ("openai", "sk-proj-bench0123456789abcdef0123456789abcdef"),
    ("gemini", "AIzaSybench0123456789abcdef0123456789"),
    ("anthropic", "sk-ant-api03-bench0123456789abcdef0123456789abcdef"),
];
/// Where each provider lives under the fake's root (its real base URL's path).
const FAKE_PATHS: [(&str, &str); 6] = [
    ("groq", "/groq/openai/v1"),
    ("cerebras", "/cerebras/v1"),
    ("openrouter", "/openrouter/api/v1"),
    ("openai", "/openai/v1"),
    ("gemini", "/gemini"),
    ("anthropic", "/anthropic"),
];
/// hearth's max_tokens for every provider (its default), sent to LiteLLM too.
const MAX_TOKENS: u32 = 1024;
const MASTER_KEY: &str = "sk-bench-litellm-master-key-0123456789";

/// One thing the load is offered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Direct,
    Hearth,
    DirectLitellm,
    Litellm,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Direct => "direct (hearth's request)",
            Kind::Hearth => "hearth",
            Kind::DirectLitellm => "direct (LiteLLM's request)",
            Kind::Litellm => "litellm",
        }
    }

    /// The baseline a gateway's overhead is measured against.
    fn baseline(self) -> Option<Kind> {
        match self {
            Kind::Hearth => Some(Kind::Direct),
            Kind::Litellm => Some(Kind::DirectLitellm),
            Kind::Direct | Kind::DirectLitellm => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// processes

/// A child process, killed (with its process group, when it leads one) when dropped.
#[derive(Debug)]
struct Process {
    child: Child,
    group: bool,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime of the process and, for a group leader, of all its descendants.
    fn cpu_seconds(&self) -> f64 {
        if self.group {
            tree_cpu_seconds(self.pid())
        } else {
            server::cpu_seconds(&format!("/proc/{}/stat", self.pid()))
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.group {
            // The group this process leads (LiteLLM's workers, if any): ended by its id.
            let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", self.pid())]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds of `root` and every process descending from it.
fn tree_cpu_seconds(root: u32) -> f64 {
    let mut parents: HashMap<u32, u32> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.filter_map(Result::ok) {
            let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let ppid = stat.rfind(')').and_then(|close| stat[close + 1..].split_whitespace().nth(1)?.parse().ok());
            if let Some(ppid) = ppid {
                parents.insert(pid, ppid);
            }
        }
    }
    let in_tree = |mut pid: u32| loop {
        if pid == root {
            return true;
        }
        match parents.get(&pid) {
            Some(&parent) if parent != 0 && parent != pid => pid = parent,
            _ => return false,
        }
    };
    parents
        .keys()
        .filter(|&&pid| in_tree(pid))
        .map(|pid| server::cpu_seconds(&format!("/proc/{pid}/stat")))
        .filter(|seconds| seconds.is_finite())
        .sum()
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Polls `url` until it answers 200, the process exits, or `limit` passes.
async fn wait_until_up(
    http: &reqwest::Client,
    url: &str,
    process: &mut Process,
    limit: Duration,
) -> anyhow::Result<()> {
    let give_up = Instant::now() + limit;
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if !process.running() {
            bail!("the process exited before {url} answered");
        }
        if Instant::now() > give_up {
            bail!("{url} did not answer within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn start_fake(binary: &Path) -> anyhow::Result<(Process, String)> {
    use std::io::{BufRead as _, BufReader};
    let mut child = Command::new(binary)
        // Recording lets the bench read back the requests hearth and LiteLLM make (setup);
        // it costs the fake the same for every target.
        .args(["--listen", "127.0.0.1:0", "--record"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("the fake's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let root = match lines.next() {
        Some(Ok(line)) if line.starts_with("http://") => line.trim().to_owned(),
        other => bail!("the fake provider printed {other:?} instead of its root URL"),
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Ok((Process { child, group: false }, root))
}

async fn start_hearth(
    binary: &Path,
    dir: &Path,
    fake_root: &str,
    http: &reqwest::Client,
) -> anyhow::Result<(Process, String)> {
    let port = free_port()?;
    let data = dir.join("hearth-data");
    let log = std::fs::File::create(dir.join("hearth.log")).context("hearth's log file")?;
    let mut command = Command::new(binary);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&data)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .env("HEARTH_AI__ORDER", serde_json::to_string(&CHAIN.map(|(name, _)| name))?)
        .env("HEARTH_AI__REQUESTS_PER_WINDOW", "1000000000")
        // Registration is setup: Argon2id made cheap, the per-address attempt limit lifted.
        .env("HEARTH_AUTH__PASSWORD_HASHING__MEMORY_KIB", "1024")
        .env("HEARTH_AUTH__PASSWORD_HASHING__ITERATIONS", "1")
        .env("HEARTH_AUTH__PASSWORD_HASHING__PARALLELISM", "1")
        .env("HEARTH_AUTH__ATTEMPTS_PER_ADDRESS_PER_MINUTE", "100000000")
        .env("HEARTH_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "100000000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    for (name, path) in FAKE_PATHS {
        command.env(
            format!("HEARTH_AI__PROVIDERS__{}__BASE_URL", name.to_ascii_uppercase()),
            format!("{fake_root}{path}"),
        );
    }
    let child = command.spawn().with_context(|| format!("starting {}", binary.display()))?;
    let mut process = Process { child, group: false };
    let base = format!("http://127.0.0.1:{port}");
    if let Err(error) = wait_until_up(http, &format!("{base}/health"), &mut process, Duration::from_secs(60)).await {
        bail!("hearth did not start: {error:#}\n{}", log_tail(&dir.join("hearth.log")));
    }
    Ok((process, base))
}

async fn start_litellm(
    executable: &Path,
    template: &Path,
    workers: usize,
    dir: &Path,
    fake_root: &str,
    http: &reqwest::Client,
) -> anyhow::Result<(Process, String)> {
    let config = std::fs::read_to_string(template).with_context(|| format!("reading {}", template.display()))?;
    let config_path = dir.join("litellm.yaml");
    std::fs::write(&config_path, config.replace("FAKE_ROOT", fake_root)).context("writing litellm.yaml")?;
    let port = free_port()?;
    let log_path = dir.join("litellm.log");
    let log = std::fs::File::create(&log_path).context("LiteLLM's log file")?;
    let child = Command::new(executable)
        .arg("--config")
        .arg(&config_path)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--num_workers", &workers.to_string()])
        .current_dir(dir)
        // Offline: the model cost map shipped in the package, not a download.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_MASTER_KEY", MASTER_KEY)
        // Errors only: uvicorn's access log is off too, like hearth's request logs.
        .env("LITELLM_LOG", "ERROR")
        .env("NO_DOCS", "True")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} (install: see docs/benchmarks.md)", executable.display()))?;
    let mut process = Process { child, group: true };
    let base = format!("http://127.0.0.1:{port}");
    let health = format!("{base}/health/liveliness");
    if let Err(error) = wait_until_up(http, &health, &mut process, Duration::from_secs(180)).await {
        bail!("LiteLLM did not start: {error:#}\n{}", log_tail(&log_path));
    }
    Ok((process, base))
}

// ---------------------------------------------------------------------------------------
// targets

/// How one target's requests are made.
#[derive(Debug)]
struct Target {
    kind: Kind,
    http: reqwest::Client,
    url: String,
    body: Body,
    /// A reply counts when its status is 200 and its body contains this.
    needle: &'static str,
}

#[derive(Debug)]
enum Body {
    /// The same body and bearer token every time.
    Fixed { bearer: String, json: String },
    /// hearth's: users round robin, a new conversation id per request.
    Hearth { tokens: Vec<String>, prefix: String },
}

impl Target {
    fn request(&self, tag: &str, seq: u64) -> reqwest::RequestBuilder {
        let post = self.http.post(&self.url).header(reqwest::header::CONTENT_TYPE, "application/json");
        match &self.body {
            Body::Fixed { bearer, json } => post.bearer_auth(bearer).body(json.clone()),
            Body::Hearth { tokens, prefix } => {
                let token = &tokens[(seq % tokens.len() as u64) as usize];
                post.bearer_auth(token).body(format!("{prefix}\"{tag}-{seq}\"}}"))
            }
        }
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(600))
        .tcp_nodelay(true)
        .build()
        .context("HTTP client")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

/// The fake's record of the provider requests since it was last cleared.
async fn recorded(http: &reqwest::Client, fake_root: &str) -> anyhow::Result<Vec<Value>> {
    let requests: Value =
        http.get(format!("{fake_root}/_fake/requests")).send().await?.error_for_status()?.json().await?;
    Ok(requests.as_array().cloned().unwrap_or_default())
}

async fn clear_recorded(http: &reqwest::Client, fake_root: &str) -> anyhow::Result<()> {
    http.delete(format!("{fake_root}/_fake/requests")).send().await?.error_for_status()?;
    Ok(())
}

/// The one chat request the fake received since it was cleared, described for the report.
/// Requests without messages (LiteLLM's own background calls, e.g. model listings) are not it.
async fn the_recorded_request(http: &reqwest::Client, fake_root: &str, who: &str) -> anyhow::Result<Value> {
    let requests: Vec<Value> = recorded(http, fake_root)
        .await?
        .into_iter()
        .filter(|request| request["messages"].as_array().is_some_and(|messages| !messages.is_empty()))
        .collect();
    if requests.len() != 1 {
        bail!("{who}: expected one request at the fake, saw {}: {requests:?}", requests.len());
    }
    let mut request = requests.into_iter().next().context("one request")?;
    if let Some(key) = request.get_mut("api_key") {
        *key = json!("…");
    }
    Ok(request)
}

/// The chat messages of a recorded request, as OpenAI-style `{role, content}` objects.
fn recorded_messages(request: &Value) -> Vec<Value> {
    request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter_map(|pair| Some(json!({"role": pair.get(0)?.as_str()?, "content": pair.get(1)?.as_str()?})))
                .collect()
        })
        .unwrap_or_default()
}

struct Setup {
    targets: BTreeMap<Kind, Target>,
    /// What hearth and LiteLLM sent the fake for one request, for the report.
    upstream: Vec<String>,
}

/// Registers users, sends one request through each gateway, reads back what reached the fake
/// and builds the four targets from it.
async fn setup(
    args: &GatewayArgs,
    fake_root: &str,
    hearth_base: &str,
    litellm_base: Option<&str>,
    http: &reqwest::Client,
) -> anyhow::Result<Setup> {
    let users = client::register(hearth_base, args.users.max(1), 4).await?;
    let keys: serde_json::Map<String, Value> =
        CHAIN.iter().map(|(name, key)| ((*name).to_owned(), json!(key))).collect();
    let hearth_prefix = {
        let head = serde_json::to_string(&json!({"message": args.prompt, "apiKeys": keys}))?;
        format!("{},\"conversationId\":", head.trim_end_matches('}'))
    };
    let hearth = Target {
        kind: Kind::Hearth,
        http: http_client()?,
        url: format!("{hearth_base}/api/chat/message"),
        body: Body::Hearth { tokens: users.iter().map(|user| user.token.clone()).collect(), prefix: hearth_prefix },
        needle: "\"provider\":\"groq\"",
    };
    let mut upstream = Vec::new();

    clear_recorded(http, fake_root).await?;
    let response = hearth.request("setup", 0).send().await?;
    let (status, body) = (response.status(), response.text().await?);
    if status != reqwest::StatusCode::OK || !body.contains(hearth.needle) {
        bail!("POST /api/chat/message: {status}: {body}");
    }
    let seen = the_recorded_request(http, fake_root, "hearth").await?;
    if seen["path"] != "/groq/openai/v1/chat/completions" || seen["stream"] != true {
        bail!("hearth called the fake unexpectedly: {seen}");
    }
    upstream.push(format!("hearth → fake: {seen}"));
    // What hearth's OpenAI-compatible client sends (crates/hearth-ai/src/wire/openai.rs); the
    // model and messages as the fake received them.
    let direct_body = json!({
        "model": seen["model"],
        "messages": recorded_messages(&seen),
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": MAX_TOKENS,
    });
    let system = recorded_messages(&seen).into_iter().find(|message| message["role"] == "system");
    let direct = Target {
        kind: Kind::Direct,
        http: http_client()?,
        url: format!("{fake_root}/groq/openai/v1/chat/completions"),
        body: Body::Fixed { bearer: CHAIN[0].1.to_owned(), json: direct_body.to_string() },
        needle: "data: [DONE]",
    };
    let response = direct.request("setup", 0).send().await?;
    let (status, body) = (response.status(), response.text().await?);
    if status != reqwest::StatusCode::OK || !body.contains(direct.needle) {
        bail!("the direct request: {status}: {body}");
    }
    let mut targets = BTreeMap::new();
    targets.insert(Kind::Direct, direct);
    targets.insert(Kind::Hearth, hearth);

    if let Some(litellm_base) = litellm_base {
        // The same conversation hearth sent: its system prompt, then the prompt.
        let mut messages: Vec<Value> = system.into_iter().collect();
        messages.push(json!({"role": "user", "content": args.prompt}));
        let litellm = Target {
            kind: Kind::Litellm,
            http: http_client()?,
            url: format!("{litellm_base}/v1/chat/completions"),
            body: Body::Fixed {
                bearer: MASTER_KEY.to_owned(),
                json: json!({"model": "groq", "messages": messages, "max_tokens": MAX_TOKENS}).to_string(),
            },
            needle: "groq reply to",
        };
        clear_recorded(http, fake_root).await?;
        let response = litellm.request("setup", 0).send().await?;
        let (status, body) = (response.status(), response.text().await?);
        if status != reqwest::StatusCode::OK || !body.contains(litellm.needle) {
            bail!("LiteLLM POST /v1/chat/completions: {status}: {body}");
        }
        let seen = the_recorded_request(http, fake_root, "LiteLLM").await?;
        if seen["provider"] != "groq" {
            bail!("LiteLLM called the fake unexpectedly: {seen}");
        }
        upstream.push(format!("LiteLLM → fake: {seen}"));
        let stream = seen["stream"] == true;
        let mut body = json!({"model": seen["model"], "messages": recorded_messages(&seen), "max_tokens": MAX_TOKENS});
        if stream {
            body["stream"] = json!(true);
        }
        let path = seen["path"].as_str().context("the recorded path")?;
        let direct_litellm = Target {
            kind: Kind::DirectLitellm,
            http: http_client()?,
            url: format!("{fake_root}{path}"),
            body: Body::Fixed { bearer: CHAIN[0].1.to_owned(), json: body.to_string() },
            needle: if stream { "data: [DONE]" } else { "groq reply to" },
        };
        let response = direct_litellm.request("setup", 0).send().await?;
        let (status, text) = (response.status(), response.text().await?);
        if status != reqwest::StatusCode::OK || !text.contains(direct_litellm.needle) {
            bail!("the direct LiteLLM-shaped request: {status}: {text}");
        }
        targets.insert(Kind::Litellm, litellm);
        targets.insert(Kind::DirectLitellm, direct_litellm);
    }
    clear_recorded(http, fake_root).await?;
    Ok(Setup { targets, upstream })
}

// ---------------------------------------------------------------------------------------
// load

/// CPU seconds so far of each process involved and of the machine.
#[derive(Debug, Clone, Copy)]
struct CpuMark {
    hearth: f64,
    litellm: f64,
    fake: f64,
    generator: f64,
    machine: f64,
    steal: f64,
}

struct Servers {
    fake: Process,
    hearth: Process,
    litellm: Option<Process>,
}

impl Servers {
    fn mark(&self) -> CpuMark {
        let (machine, steal) = server::machine_cpu_seconds();
        CpuMark {
            hearth: self.hearth.cpu_seconds(),
            litellm: self.litellm.as_ref().map_or(0.0, Process::cpu_seconds),
            fake: self.fake.cpu_seconds(),
            generator: server::cpu_seconds("/proc/self/stat"),
            machine,
            steal,
        }
    }

    fn check_running(&mut self) -> anyhow::Result<()> {
        if !self.fake.running() {
            bail!("the fake provider exited");
        }
        if !self.hearth.running() {
            bail!("hearth exited");
        }
        if let Some(litellm) = &mut self.litellm
            && !litellm.running()
        {
            bail!("LiteLLM exited");
        }
        Ok(())
    }

    /// Waits (up to `limit`) until the gateways and the fake are idle: in-flight work of the
    /// last phase (LiteLLM may still be working through requests the generator gave up on)
    /// must not spill into the next.
    async fn settle(&self, limit: Duration) {
        let give_up = Instant::now() + limit;
        loop {
            let before = self.mark();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = self.mark();
            let busy = (after.hearth - before.hearth) + (after.litellm - before.litellm) + (after.fake - before.fake);
            if busy < 0.05 || Instant::now() > give_up {
                return;
            }
        }
    }

    /// Waits (up to 2 minutes) until processes other than these and the generator, plus CPU
    /// stolen by the hypervisor, take less than a tenth of a core.
    async fn wait_for_quiet_machine(&self) {
        crate::wait_until_quiet(|| {
            let mark = self.mark();
            mark.machine + mark.steal - mark.hearth - mark.litellm - mark.fake - mark.generator
        })
        .await;
    }
}

/// One request's fate.
#[derive(Debug)]
struct Sample {
    due_ns: u64,
    done_ns: u64,
    /// How late the request left against its due time.
    lag_ns: u64,
    error: Option<String>,
}

/// What one target did at one rate in one run.
#[derive(Debug, Clone)]
struct Figures {
    kind: Kind,
    rate: u64,
    window_secs: f64,
    achieved: f64,
    due: u64,
    errors: u64,
    first_error: Option<String>,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    lag_p99_ms: f64,
    gateway_cpu: f64,
    fake_cpu: f64,
    generator_cpu: f64,
    other_cpu: f64,
    steal: f64,
}

impl Figures {
    fn error_share(&self) -> f64 {
        self.errors as f64 / self.due.max(1) as f64
    }

    /// Achieved ≥ 95 % of offered and errors < 1 %.
    fn sustained(&self) -> bool {
        self.achieved >= 0.95 * self.rate as f64 && self.error_share() < 0.01
    }

    /// Gateway CPU milliseconds per correct reply completed in the window.
    fn cpu_ms_per_request(&self) -> f64 {
        1000.0 * self.gateway_cpu / (self.achieved * self.window_secs).max(1.0)
    }
}

/// Offers `target` `rate` requests per second, open loop, for the warm-up and the window.
async fn offer(
    servers: &Servers,
    target: &Target,
    rate: u64,
    args: &GatewayArgs,
    run: usize,
) -> anyhow::Result<Figures> {
    let clock = Instant::now();
    let now_ns = move || clock.elapsed().as_nanos() as u64;
    let interval = 1e9 / rate.max(1) as f64;
    let warm = args.warmup_secs * rate;
    let total = warm + args.secs * rate;
    let due = |seq: u64| (seq as f64 * interval) as u64 + 20_000_000;
    let timeout = Duration::from_secs(args.timeout_secs);
    let tag = format!("r{run}-{rate}");
    let in_flight = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(total as usize);
    let mut start_mark = None;
    for seq in 0..total {
        let due_ns = due(seq);
        if due_ns > now_ns() {
            tokio::time::sleep_until((clock + Duration::from_nanos(due_ns)).into()).await;
        }
        if seq == warm {
            start_mark = Some((now_ns(), servers.mark()));
        }
        if in_flight.load(Ordering::Relaxed) >= args.max_in_flight {
            let error = Some(format!("not sent: {} requests in flight", args.max_in_flight));
            tasks.push(tokio::spawn(async move { Sample { due_ns, done_ns: due_ns, lag_ns: 0, error } }));
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let in_flight = std::sync::Arc::clone(&in_flight);
        let request = target.request(&tag, seq);
        let deadline = clock + Duration::from_nanos(due_ns) + timeout;
        let needle = target.needle;
        tasks.push(tokio::spawn(async move {
            let lag_ns = now_ns().saturating_sub(due_ns);
            let exchange = async {
                let response = request.send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            };
            let error = match tokio::time::timeout_at(deadline.into(), exchange).await {
                Ok(Ok((status, body))) if status == reqwest::StatusCode::OK && contains(&body, needle) => None,
                Ok(Ok((status, body))) => {
                    Some(format!("{status}: {}", String::from_utf8_lossy(&body).chars().take(200).collect::<String>()))
                }
                Ok(Err(error)) => Some(format!("{error:#}")),
                Err(_) => Some(format!("no reply within {timeout:?} of the due time")),
            };
            in_flight.fetch_sub(1, Ordering::Relaxed);
            Sample { due_ns, done_ns: now_ns(), lag_ns, error }
        }));
    }
    let window_end_ns = due(total);
    tokio::time::sleep_until((clock + Duration::from_nanos(window_end_ns)).into()).await;
    let end_mark = servers.mark();
    let (window_start_ns, start) = start_mark.context("the window never started")?;
    let mut samples = Vec::with_capacity(tasks.len());
    for task in tasks {
        samples.push(task.await.context("a request task")?);
    }
    let window_secs = (window_end_ns.saturating_sub(window_start_ns)) as f64 / 1e9;
    let measured: Vec<&Sample> = samples.iter().filter(|s| s.due_ns >= due(warm)).collect();
    let answered_in_window = samples
        .iter()
        .filter(|s| s.error.is_none() && s.done_ns >= window_start_ns && s.done_ns < window_end_ns)
        .count();
    let mut latencies: Vec<f64> = measured
        .iter()
        .filter(|s| s.error.is_none())
        .map(|s| s.done_ns.saturating_sub(s.due_ns) as f64 / 1e6)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut lags: Vec<f64> = measured.iter().map(|s| s.lag_ns as f64 / 1e6).collect();
    lags.sort_by(f64::total_cmp);
    let errors = measured.iter().filter(|s| s.error.is_some()).count() as u64;
    let gateway_cpu = match target.kind {
        Kind::Hearth => end_mark.hearth - start.hearth,
        Kind::Litellm => end_mark.litellm - start.litellm,
        Kind::Direct | Kind::DirectLitellm => 0.0,
    };
    let ours = |m: &CpuMark| m.hearth + m.litellm + m.fake + m.generator;
    Ok(Figures {
        kind: target.kind,
        rate,
        window_secs,
        achieved: answered_in_window as f64 / window_secs,
        due: measured.len() as u64,
        errors,
        first_error: measured.iter().find_map(|s| s.error.clone()),
        p50_ms: percentile_sorted(&latencies, 50.0),
        p99_ms: percentile_sorted(&latencies, 99.0),
        max_ms: percentile_sorted(&latencies, 100.0),
        lag_p99_ms: percentile_sorted(&lags, 99.0),
        gateway_cpu,
        fake_cpu: end_mark.fake - start.fake,
        generator_cpu: end_mark.generator - start.generator,
        other_cpu: (end_mark.machine - start.machine) - (ours(&end_mark) - ours(&start)),
        steal: end_mark.steal - start.steal,
    })
}

// ---------------------------------------------------------------------------------------
// runs

/// One run's measurements.
#[derive(Debug)]
struct RunFigures {
    phases: Vec<Figures>,
    /// LiteLLM's highest sustained rate and its p99 there.
    litellm_best: Option<(u64, f64)>,
    /// hearth's highest sustained rate at a p99 no worse than LiteLLM's at its best, and
    /// whether hearth also passed the highest rate tried (so the figure is a lower bound).
    hearth_at_equal_p99: Option<(u64, bool)>,
    upstream: Vec<String>,
}

impl RunFigures {
    fn get(&self, kind: Kind, rate: u64) -> Option<&Figures> {
        self.phases.iter().find(|f| f.kind == kind && f.rate == rate)
    }
}

async fn measure(
    servers: &mut Servers,
    setup: &Setup,
    kind: Kind,
    rate: u64,
    args: &GatewayArgs,
    run: usize,
    phases: &mut Vec<Figures>,
) -> anyhow::Result<Figures> {
    let target = setup.targets.get(&kind).context("no such target")?;
    servers.check_running()?;
    servers.wait_for_quiet_machine().await;
    let figures = offer(servers, target, rate, args, run).await?;
    eprintln!(
        "  {:<28} {rate:>5}/s: achieved {:>6.0}/s, errors {}/{}, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, \
         gateway CPU {:.2} s, fake {:.2} s, generator {:.2} s, others {:.2} s, stolen {:.2} s, send lag p99 {:.2} ms{}",
        kind.label(),
        figures.achieved,
        figures.errors,
        figures.due,
        figures.p50_ms,
        figures.p99_ms,
        figures.max_ms,
        figures.gateway_cpu,
        figures.fake_cpu,
        figures.generator_cpu,
        figures.other_cpu,
        figures.steal,
        figures.lag_p99_ms,
        figures.first_error.as_ref().map(|e| format!("; first error: {e}")).unwrap_or_default()
    );
    servers.settle(Duration::from_secs(120)).await;
    phases.push(figures.clone());
    Ok(figures)
}

async fn one_run(
    hearth_binary: &Path,
    fake_binary: &Path,
    litellm: Option<(&Path, &Path)>,
    args: &GatewayArgs,
    run: usize,
) -> anyhow::Result<RunFigures> {
    let dir = tempfile::Builder::new().prefix("hearth-bench-gateway-").tempdir().context("temporary directory")?;
    let http = http_client()?;
    let (fake, fake_root) = start_fake(fake_binary)?;
    let (hearth, hearth_base) = start_hearth(hearth_binary, dir.path(), &fake_root, &http).await?;
    let workers = if args.litellm_workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.litellm_workers
    };
    let litellm = match litellm {
        Some((executable, template)) => {
            let started = Instant::now();
            let (process, base) = start_litellm(executable, template, workers, dir.path(), &fake_root, &http).await?;
            eprintln!("  LiteLLM ({workers} workers) up in {:.1} s at {base}", started.elapsed().as_secs_f64());
            Some((process, base))
        }
        None => None,
    };
    let (litellm, litellm_base) = match litellm {
        Some((process, base)) => (Some(process), Some(base)),
        None => (None, None),
    };
    let mut servers = Servers { fake, hearth, litellm };
    eprintln!(
        "  fake pid {} at {fake_root}; hearth pid {} at {hearth_base}{}",
        servers.fake.pid(),
        servers.hearth.pid(),
        servers.litellm.as_ref().map(|p| format!("; LiteLLM pid {}", p.pid())).unwrap_or_default()
    );
    let setup = setup(args, &fake_root, &hearth_base, litellm_base.as_deref(), &http).await?;
    for line in &setup.upstream {
        eprintln!("  {line}");
    }
    servers.settle(Duration::from_secs(30)).await;
    servers.wait_for_quiet_machine().await;

    let mut phases = Vec::new();
    let with_litellm = servers.litellm.is_some();
    // hearth's rates, each with its baseline; LiteLLM alternates in at the rates it is offered.
    for &rate in &args.rate {
        measure(&mut servers, &setup, Kind::Direct, rate, args, run, &mut phases).await?;
        measure(&mut servers, &setup, Kind::Hearth, rate, args, run, &mut phases).await?;
        if with_litellm && args.litellm_rates.contains(&rate) {
            measure(&mut servers, &setup, Kind::DirectLitellm, rate, args, run, &mut phases).await?;
            measure(&mut servers, &setup, Kind::Litellm, rate, args, run, &mut phases).await?;
        }
    }
    if args.generator_check > 0 && !args.rate.contains(&args.generator_check) {
        measure(&mut servers, &setup, Kind::Direct, args.generator_check, args, run, &mut phases).await?;
    }
    // LiteLLM: upwards from its lowest rate until one it does not sustain; its best is the
    // highest it sustained.
    let mut litellm_best = None;
    if with_litellm {
        let mut rates = args.litellm_rates.clone();
        rates.sort_unstable();
        for rate in rates {
            let figures = match phases.iter().find(|f| f.kind == Kind::Litellm && f.rate == rate) {
                Some(figures) => figures.clone(),
                None => {
                    measure(&mut servers, &setup, Kind::DirectLitellm, rate, args, run, &mut phases).await?;
                    measure(&mut servers, &setup, Kind::Litellm, rate, args, run, &mut phases).await?
                }
            };
            if !figures.sustained() {
                break;
            }
            litellm_best = Some((rate, figures.p99_ms));
        }
    }
    // hearth: upwards while it sustains the rate at a p99 no worse than LiteLLM's best.
    let bound = litellm_best.map_or(f64::INFINITY, |(_, p99)| p99);
    let good = |f: &Figures| f.sustained() && f.p99_ms <= bound;
    let mut sweep = args.sweep.clone();
    sweep.sort_unstable();
    if !with_litellm || litellm_best.is_some() {
        for rate in sweep {
            let hearth_rates: Vec<&Figures> = phases.iter().filter(|f| f.kind == Kind::Hearth).collect();
            let measured = hearth_rates.iter().any(|f| f.rate == rate);
            let lower_failed = hearth_rates.iter().any(|f| f.rate < rate && !good(f));
            let higher_passed = hearth_rates.iter().any(|f| f.rate > rate && good(f));
            if measured || higher_passed {
                continue;
            }
            if lower_failed {
                break;
            }
            measure(&mut servers, &setup, Kind::Direct, rate, args, run, &mut phases).await?;
            let figures = measure(&mut servers, &setup, Kind::Hearth, rate, args, run, &mut phases).await?;
            if !good(&figures) {
                break;
            }
        }
    }
    let hearth_phases: Vec<&Figures> = phases.iter().filter(|f| f.kind == Kind::Hearth).collect();
    let best_good = hearth_phases.iter().filter(|f| good(f)).map(|f| f.rate).max();
    let highest_tried = hearth_phases.iter().map(|f| f.rate).max();
    let hearth_at_equal_p99 = best_good.map(|rate| (rate, Some(rate) == highest_tried));
    servers.check_running()?;
    Ok(RunFigures { phases, litellm_best, hearth_at_equal_p99, upstream: setup.upstream })
}

/// Runs the measurement `runs` times and prints the report.
pub async fn run(hearth_binary: &Path, runs: usize, args: &GatewayArgs) -> anyhow::Result<()> {
    let root = server::workspace_root();
    let fake_binary = args.fake.clone().unwrap_or_else(|| root.join("target/release/hearth-fake-provider"));
    if !fake_binary.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p hearth-fake-provider` or pass --fake",
            fake_binary.display()
        );
    }
    let litellm_executable = args.litellm.clone().unwrap_or_else(|| root.join("bench/.venv-litellm/bin/litellm"));
    let litellm_template = args.litellm_config.clone().unwrap_or_else(|| root.join("bench/litellm.yaml"));
    if !args.no_litellm {
        if !litellm_executable.is_file() {
            bail!(
                "{} not found: `python3 -m venv bench/.venv-litellm && bench/.venv-litellm/bin/pip install \
                 'litellm[proxy]'`, or pass --litellm PATH or --no-litellm",
                litellm_executable.display()
            );
        }
        if !litellm_template.is_file() {
            bail!("{} not found (pass --litellm-config)", litellm_template.display());
        }
    }
    let litellm = (!args.no_litellm).then_some((litellm_executable.as_path(), litellm_template.as_path()));
    eprintln!("the load generator, the fake provider and the gateways share this machine's cores");
    let mut all = Vec::new();
    for run in 1..=runs.max(1) {
        eprintln!("run {run}/{runs}…");
        all.push(one_run(hearth_binary, &fake_binary, litellm, args, run).await?);
    }
    report(args, &all, litellm.map(|(executable, _)| litellm_version(executable)));
    Ok(())
}

fn litellm_version(executable: &Path) -> String {
    let pip = executable.with_file_name("pip");
    Command::new(pip)
        .args(["show", "litellm"])
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.lines().find_map(|line| line.strip_prefix("Version: ").map(str::to_owned)))
        .unwrap_or_else(|| "unknown".into())
}

// ---------------------------------------------------------------------------------------
// report

/// "median (min–max)" of `values`, or the one value.
fn spread(values: &[f64], decimals: usize) -> String {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return "–".into();
    }
    let median = percentile(&values, 50.0);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.len() == 1 || (max - min).abs() < 0.5 * 10f64.powi(-(decimals as i32)) {
        format!("{median:.decimals$}")
    } else {
        format!("{median:.decimals$} ({min:.decimals$}–{max:.decimals$})")
    }
}

fn report(args: &GatewayArgs, all: &[RunFigures], litellm_version: Option<String>) {
    println!("\n### AI gateway: open-loop fixed-rate load, {} runs\n", all.len());
    println!("- machine: {}", server::machine());
    println!(
        "- each run: fresh fake provider, fresh hearth (SQLite in a new data directory) and, unless --no-litellm, a \
         fresh LiteLLM proxy{}; {} s warm-up then {} s measured per target and rate; a request unanswered {} s after \
         its due time is an error",
        litellm_version.as_ref().map(|v| format!(" ({v})")).unwrap_or_default(),
        args.warmup_secs,
        args.secs,
        args.timeout_secs
    );
    println!(
        "- latency runs from each request's due time (open loop), so queueing in the generator counts; achieved = \
         correct replies completed inside the window / window length"
    );
    println!(
        "- hearth: `POST /api/chat/message`, {} users round robin, a new conversationId per request (no context), \
         keys for all six providers in `apiKeys`, order groq first; it streams from the fake and stores the turn",
        args.users
    );
    println!("- prompt: `{}`", args.prompt);
    println!("- the load generator, the fake provider and the gateways share the machine's cores");
    println!(
        "- CPU: utime+stime from /proc/PID/stat over the window (LiteLLM: its whole process tree); others' CPU = the \
         machine's busy time (/proc/stat) minus these processes, plus time stolen by the hypervisor: kernel work \
         (loopback softirq) and anything else running; before each phase the bench waits until others use < 0.1 core\n"
    );
    for line in all.first().map(|run| run.upstream.as_slice()).unwrap_or_default() {
        println!("- {line}");
    }
    println!();

    let mut keys: Vec<(Kind, u64)> = Vec::new();
    for run in all {
        for f in &run.phases {
            if !keys.contains(&(f.kind, f.rate)) {
                keys.push((f.kind, f.rate));
            }
        }
    }
    keys.sort_by_key(|(kind, rate)| (*rate, *kind));
    println!(
        "| target | offered /s | achieved /s | errors | p50 ms | p99 ms | max ms | overhead p50 ms | overhead p99 ms | \
         gateway CPU s | gateway CPU ms/req | fake CPU s | generator CPU s | others' CPU s | send lag p99 ms | runs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (kind, rate) in keys {
        let figures: Vec<&Figures> = all.iter().filter_map(|run| run.get(kind, rate)).collect();
        let col = |f: &dyn Fn(&Figures) -> f64| figures.iter().map(|x| f(x)).collect::<Vec<f64>>();
        let overhead = |f: &dyn Fn(&Figures) -> f64| -> Vec<f64> {
            let Some(base) = kind.baseline() else { return Vec::new() };
            all.iter().filter_map(|run| Some(f(run.get(kind, rate)?) - f(run.get(base, rate)?))).collect()
        };
        let errors: u64 = figures.iter().map(|f| f.errors).sum();
        let due: u64 = figures.iter().map(|f| f.due).sum();
        let is_gateway = kind.baseline().is_some();
        println!(
            "| {} | {rate} | {} | {errors} of {due} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            kind.label(),
            spread(&col(&|f| f.achieved), 0),
            spread(&col(&|f| f.p50_ms), 2),
            spread(&col(&|f| f.p99_ms), 2),
            spread(&col(&|f| f.max_ms), 1),
            spread(&overhead(&|f| f.p50_ms), 2),
            spread(&overhead(&|f| f.p99_ms), 2),
            if is_gateway { spread(&col(&|f| f.gateway_cpu), 2) } else { "–".into() },
            if is_gateway { spread(&col(&Figures::cpu_ms_per_request), 3) } else { "–".into() },
            spread(&col(&|f| f.fake_cpu), 2),
            spread(&col(&|f| f.generator_cpu), 2),
            spread(&col(&|f| f.other_cpu + f.steal), 2),
            spread(&col(&|f| f.lag_p99_ms), 2),
            figures.len()
        );
    }
    println!();
    for (i, run) in all.iter().enumerate() {
        for f in &run.phases {
            if let Some(error) = &f.first_error {
                println!("- run {}, {} at {}/s: first error: `{error}`", i + 1, f.kind.label(), f.rate);
            }
        }
    }

    // The targets.
    println!();
    if let Some(&target_rate) = args.rate.iter().max() {
        let hearth: Vec<&Figures> = all.iter().filter_map(|run| run.get(Kind::Hearth, target_rate)).collect();
        if hearth.iter().all(|f| f.sustained()) {
            let overheads: Vec<f64> = all
                .iter()
                .filter_map(|run| {
                    Some(run.get(Kind::Hearth, target_rate)?.p99_ms - run.get(Kind::Direct, target_rate)?.p99_ms)
                })
                .collect();
            let median = percentile(&overheads, 50.0);
            println!(
                "- hearth p99 overhead at {target_rate} req/s: {} ms (median of runs, min–max); target < 2 ms: {}",
                spread(&overheads, 2),
                if median < 2.0 { "met" } else { "not met" }
            );
        } else {
            let achieved: Vec<f64> = hearth.iter().map(|f| f.achieved).collect();
            let errors: Vec<f64> = hearth.iter().map(|f| 100.0 * f.error_share()).collect();
            println!(
                "- hearth does not sustain {target_rate} req/s: {} replies/s achieved, {} % errors (median of runs, \
                 min–max), so its overhead there is not defined; target (p99 overhead < 2 ms at {target_rate} req/s): \
                 not met",
                spread(&achieved, 0),
                spread(&errors, 1)
            );
        }
    }
    for (i, run) in all.iter().enumerate() {
        let best = run.phases.iter().filter(|f| f.kind == Kind::Hearth && f.sustained()).max_by_key(|f| f.rate);
        if let Some(best) = best {
            println!(
                "- run {}: the highest rate hearth sustained, at any p99: {} req/s (p99 {:.1} ms, overhead p50 {:.2} ms)",
                i + 1,
                best.rate,
                best.p99_ms,
                run.get(Kind::Direct, best.rate).map_or(f64::NAN, |direct| best.p50_ms - direct.p50_ms)
            );
        }
    }
    if !args.no_litellm {
        for (i, run) in all.iter().enumerate() {
            match (run.litellm_best, run.hearth_at_equal_p99) {
                (Some((litellm_rate, p99)), Some((hearth_rate, lower_bound))) => {
                    let ratio = hearth_rate as f64 / litellm_rate as f64;
                    println!(
                        "- run {}: LiteLLM sustains {litellm_rate} req/s at p99 {p99:.1} ms; hearth sustains {}{hearth_rate} \
                         req/s at a p99 ≤ {p99:.1} ms: {}{ratio:.0}× (target ≥ 10×: {})",
                        i + 1,
                        if lower_bound { "≥ " } else { "" },
                        if lower_bound { "≥ " } else { "" },
                        if ratio >= 10.0 {
                            "met"
                        } else if lower_bound {
                            "not shown: raise --sweep"
                        } else {
                            "not met"
                        }
                    );
                }
                (Some((litellm_rate, p99)), None) => println!(
                    "- run {}: LiteLLM sustains {litellm_rate} req/s at p99 {p99:.1} ms; hearth sustained none of its \
                     rates at that p99",
                    i + 1
                ),
                (None, _) => println!("- run {}: LiteLLM sustained none of {:?} req/s", i + 1, args.litellm_rates),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_show_median_and_range() {
        assert_eq!(spread(&[3.0, 1.0, 2.0], 1), "2.0 (1.0–3.0)");
        assert_eq!(spread(&[2.0], 2), "2.00");
        assert_eq!(spread(&[f64::NAN], 2), "–");
    }

    #[test]
    fn hearth_bodies_carry_a_new_conversation_per_request() {
        let prefix = {
            let head = serde_json::to_string(&json!({"message": "hi", "apiKeys": {"groq": "k"}})).unwrap_or_default();
            format!("{},\"conversationId\":", head.trim_end_matches('}'))
        };
        let target = Target {
            kind: Kind::Hearth,
            http: reqwest::Client::new(),
            url: "http://127.0.0.1:9/api/chat/message".into(),
            body: Body::Hearth { tokens: vec!["t".into()], prefix },
            needle: "",
        };
        let request = target.request("r1-500", 7).build().expect("a request");
        let body = request.body().and_then(|b| b.as_bytes()).expect("a body");
        let body: Value = serde_json::from_slice(body).expect("JSON");
        assert_eq!(body["conversationId"], "r1-500-7");
        assert_eq!(body["apiKeys"]["groq"], "k");
    }
}
