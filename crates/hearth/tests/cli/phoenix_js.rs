//! hearth with the official `phoenix` npm client, unmodified: runs `node --test` in
//! `clients/phoenix-js` against the real binary (see `clients/phoenix-js/test/`).
//!
//! The server's AI providers point at the fake provider (started here), with a free-tier key
//! on groq, so the assistant's streamed replies reach the official client too.
//!
//! The suite restarts the server half-way, to prove clients reconnect and rejoin by
//! themselves and lose nothing. Node cannot control the server, so this test serves one
//! more URL, `HEARTH_RESTART_URL`: a `POST` there stops the server (SIGTERM) and starts it
//! again on the same port with the same data directory, and is answered once it listens
//! again.
//!
//! A second server, which takes new accounts by invitation only, is `HEARTH_INVITE_URL`: the
//! web client's sign-up form is checked against its refusals (test/web-rooms.test.mjs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use hearth_fake_provider::FakeProvider;

use crate::harness::{Hearth, Process, free_port};

/// How long the whole Node suite may take (about four minutes on two cores, most of it the web
/// client's and the admin page's files driving Chromium).
const SUITE_TIMEOUT: Duration = Duration::from_secs(480);

/// How long `npm ci` may take.
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);

/// The oldest Node.js the suite runs on (the first with `fetch` and `node:test` stable).
const NODE_MAJOR: u32 = 20;

/// `clients/phoenix-js` in the workspace.
fn client_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/phoenix-js");
    dir.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Fails clearly when Node.js is missing or too old.
fn require_node() {
    let output = Command::new("node").arg("--version").output().unwrap_or_else(|e| {
        panic!(
            "this test runs the official phoenix JavaScript client and needs Node.js {NODE_MAJOR} or later \
             as `node` on PATH (CI has it): {e}"
        )
    });
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major = version.trim_start_matches('v').split('.').next().and_then(|m| m.parse::<u32>().ok());
    assert!(
        output.status.success() && major.is_some_and(|m| m >= NODE_MAJOR),
        "this test needs Node.js {NODE_MAJOR} or later; `node --version` says {version:?}"
    );
}

/// Installs the locked packages (`npm ci`) unless they are there already.
async fn ensure_node_modules(dir: &Path) {
    let installed = ["phoenix", "ws", "playwright-core"]
        .iter()
        .all(|name| dir.join("node_modules").join(name).join("package.json").is_file());
    if installed {
        return;
    }
    eprintln!("{}: node_modules is missing; running `npm ci`", dir.display());
    let mut npm = tokio::process::Command::new("npm");
    npm.arg("ci").current_dir(dir).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(NPM_CI_TIMEOUT, npm.output())
        .await
        .unwrap_or_else(|_| panic!("`npm ci` in {} did not finish within {NPM_CI_TIMEOUT:?}", dir.display()))
        .unwrap_or_else(|e| panic!("`npm ci` could not run (is npm installed?): {e}"));
    assert!(
        output.status.success(),
        "`npm ci` in {} failed ({}):\n{}\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Kills a process group on drop (`node --test` runs each test file in a child process,
/// which must not outlive a failed test), unless disarmed.
struct KillGroup(Option<u32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status();
        }
    }
}

/// Reads one HTTP request head; true if it is `POST /restart`.
async fn read_restart_request(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    head.starts_with(b"POST /restart ")
}

async fn answer(mut stream: TcpStream, status: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// What went wrong, with everything node and every hearth run printed.
fn failure_report(what: &str, node: &Process, earlier_logs: &[String], server: &Hearth) -> String {
    let mut report = format!("{what}\n---- node --test output ----\n{}\n", node.text());
    for (run, log) in earlier_logs.iter().chain([&server.process.text()]).enumerate() {
        report.push_str(&format!("---- hearth log (run {}) ----\n{log}\n", run + 1));
    }
    report
}

/// Every provider at the fake; free-tier keys on groq (text) and openai (images). Also used by `chat.rs`.
pub fn assistant_env(fake: &FakeProvider) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ["gemini", "groq", "cerebras", "openrouter", "openai", "anthropic"]
        .iter()
        .map(|name| {
            let url = fake.base_url(name).expect("the fake serves every provider");
            (format!("HEARTH_AI__PROVIDERS__{}__BASE_URL", name.to_uppercase()), url)
        })
        .collect();
    env.push(("HEARTH_KEYGUARD__FREE_TIER__KEYS__GROQ".to_owned(), r#"["gsk_0123456789abcdefghijklmn"]"#.to_owned()));
    // Images come from OpenAI (groq draws none), for the web client's `/image`.
    env.push((
        "HEARTH_KEYGUARD__FREE_TIER__KEYS__OPENAI".to_owned(),
        r#"["sk-proj-0123456789abcdefghijklmn"]"#.to_owned(),
    ));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_phoenix_js_client_works_and_survives_a_restart() {
    require_node();
    let client = client_dir();
    ensure_node_modules(&client).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let fake = FakeProvider::start().await.expect("start the fake provider");
    let ai_env = assistant_env(&fake);
    let env: Vec<(&str, &str)> = ai_env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let mut server = Hearth::start_at(dir.path(), &data_dir, listen, &env).await;
    let invite_dir = dir.path().join("invite-data");
    let invite_only = Hearth::start(dir.path(), &invite_dir, &[("HEARTH_ACCOUNTS__REGISTRATION", "invite")]).await;

    let control = TcpListener::bind("127.0.0.1:0").await.expect("bind the restart endpoint");
    let restart_url = format!("http://{}/restart", control.local_addr().expect("its address"));

    let mut command = Command::new("node");
    command
        // One file at a time: the restart in one must not cut another short.
        .args(["--test", "--test-reporter=tap", "--test-concurrency=1"])
        .current_dir(&client)
        .env("HEARTH_URL", &server.url)
        .env("HEARTH_ASSISTANT", "1")
        .env("HEARTH_RESTART_URL", &restart_url)
        .env("HEARTH_INVITE_URL", &invite_only.url)
        // For the web client's tests, which check that no message is stored in the clear and
        // edit the database as a hostile server could (test/web-trust.test.mjs).
        .env("HEARTH_DATA_DIR", &data_dir)
        .stdin(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let started = std::time::Instant::now();
    let mut node = Process::spawn("node --test", command);
    let mut group = KillGroup(Some(node.id()));

    let mut earlier_logs: Vec<String> = Vec::new();
    let status: ExitStatus = {
        let exit = node.wait_exit(SUITE_TIMEOUT);
        tokio::pin!(exit);
        loop {
            tokio::select! {
                status = &mut exit => break status,
                accepted = control.accept() => {
                    let (mut stream, _) = accepted.expect("accept on the restart endpoint");
                    if !read_restart_request(&mut stream).await {
                        answer(stream, "404 Not Found", "only POST /restart").await;
                        continue;
                    }
                    let (lines, _) = server.stop().await;
                    assert!(
                        lines.iter().all(|l| !l.contains(" ERROR ")),
                        "hearth logged errors before the restart:\n{}",
                        lines.join("\n")
                    );
                    earlier_logs.push(lines.join("\n"));
                    server = Hearth::start_at(dir.path(), &data_dir, listen, &env).await;
                    answer(stream, "200 OK", "restarted").await;
                }
            }
        }
    };
    group.0 = None;
    let output = node.text();
    let report = |what: &str| failure_report(what, &node, &earlier_logs, &server);
    assert!(status.success(), "{}", report(&format!("node --test failed ({status})")));
    for expected in ["# fail 0", "# cancelled 0", "# skipped 0", "# todo 0"] {
        assert!(output.lines().any(|l| l.trim() == expected), "{}", report(&format!("the summary lacks {expected:?}")));
    }
    let passed = output.lines().find_map(|l| l.strip_prefix("# pass ").and_then(|n| n.trim().parse::<u32>().ok()));
    assert!(passed.is_some_and(|n| n > 0), "{}", report("no test passed"));
    assert_eq!(earlier_logs.len(), 1, "{}", report("the suite should have restarted the server once"));
    println!("node --test: {} tests passed in {:?}, across one restart", passed.unwrap_or(0), started.elapsed());
    let (lines, _) = server.stop().await;
    assert!(lines.iter().all(|l| !l.contains(" ERROR ")), "hearth logged errors:\n{}", lines.join("\n"));
    let (lines, _) = invite_only.stop().await;
    assert!(
        lines.iter().all(|l| !l.contains(" ERROR ")),
        "the invite-only hearth logged errors:\n{}",
        lines.join("\n")
    );
}
