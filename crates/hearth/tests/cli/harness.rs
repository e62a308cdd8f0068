//! Running the real `hearth` binary (and other child processes): a clean environment,
//! every byte of stdout and stderr captured for later inspection, waits that are driven by
//! what the process prints (no sleeps), and a kill on drop.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_hearth");

/// How long a server may take to start (the machine may be busy compiling).
pub const STARTUP: Duration = Duration::from_secs(60);

/// How long anything else the tests wait for may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// A `hearth` command run in `cwd`, with no `HEARTH_*`, `RUST_LOG` or `NO_COLOR` inherited
/// from the test's own environment, and cheap password hashing.
pub fn hearth(cwd: &Path) -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        let inherited = key.to_str().is_some_and(|k| k.starts_with("HEARTH_") || k == "RUST_LOG" || k == "NO_COLOR");
        if inherited {
            command.env_remove(&key);
        }
    }
    command
        .current_dir(cwd)
        .env("HEARTH_AUTH__PASSWORD_HASHING__MEMORY_KIB", "1024")
        .env("HEARTH_AUTH__PASSWORD_HASHING__ITERATIONS", "1")
        .stdin(Stdio::null());
    command
}

/// What a finished command printed (stderr without ANSI escapes).
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to completion (bounded by [`WAIT`]).
pub async fn run(command: Command) -> Finished {
    let description = format!("{command:?}");
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let output = tokio::time::timeout(WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{description} did not finish within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{description} could not run: {e}"));
    Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: strip_ansi(&String::from_utf8_lossy(&output.stderr)),
    }
}

/// Removes ANSI escape sequences (CSI `ESC [ … final`, and lone `ESC x`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // A CSI sequence runs to its final byte; any other escape is two characters.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// Everything a process printed so far.
#[derive(Debug, Default)]
struct Captured {
    /// stdout and stderr as they came (each read appended whole).
    raw: Vec<u8>,
    /// Complete lines, ANSI escapes removed, in the order they were completed.
    lines: Vec<String>,
    /// Output streams not yet at end of file.
    open: usize,
}

/// A running child process whose stdout and stderr are captured. Killed on drop.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Option<Child>,
    output: watch::Receiver<Captured>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Spawns `command` with piped stdout and stderr.
    pub fn spawn(name: &str, mut command: Command) -> Self {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let (sender, output) = watch::channel(Captured { open: 2, ..Captured::default() });
        let sender = Arc::new(sender);
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout is piped")),
            Box::new(child.stderr.take().expect("stderr is piped")),
        ];
        let readers = streams.into_iter().map(|stream| capture(stream, Arc::clone(&sender))).collect();
        Self { name: name.to_owned(), child: Some(child), output, readers }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("the process was not stopped").id()
    }

    /// How many complete lines were printed so far: pass it to [`Process::wait_line`] to
    /// wait for a line printed after now.
    pub fn mark(&self) -> usize {
        self.output.borrow().lines.len()
    }

    /// Every complete line so far (ANSI escapes removed).
    pub fn lines(&self) -> Vec<String> {
        self.output.borrow().lines.clone()
    }

    /// The whole output so far, lines joined (ANSI escapes removed).
    pub fn text(&self) -> String {
        self.output.borrow().lines.join("\n")
    }

    /// The bytes as printed, escapes and all.
    pub fn raw(&self) -> Vec<u8> {
        self.output.borrow().raw.clone()
    }

    /// Waits for the first line at index `from` or later for which `matches` holds and
    /// returns its index and text. Panics, showing the output, if the process closes its
    /// output first or `timeout` passes.
    pub async fn wait_line(&self, from: usize, timeout: Duration, matches: impl Fn(&str) -> bool) -> (usize, String) {
        let mut output = self.output.clone();
        let found = |captured: &Captured| {
            captured.lines.iter().enumerate().skip(from).find(|(_, line)| matches(line)).map(|(i, l)| (i, l.clone()))
        };
        let waited = tokio::time::timeout(timeout, output.wait_for(|c| found(c).is_some() || c.open == 0)).await;
        let result = match waited {
            Ok(Ok(captured)) => found(&captured),
            Ok(Err(_)) | Err(_) => None,
        };
        match result {
            Some(hit) => hit,
            None => panic!(
                "{} did not print the expected line (within {timeout:?}, or before it closed its output):\n{}",
                self.name,
                self.text()
            ),
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to close its output and exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let pid = self.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill(1) runs");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let mut output = self.output.clone();
        let closed = tokio::time::timeout(WAIT, output.wait_for(|c| c.open == 0)).await;
        let mut child = self.child.take().expect("the process was not stopped");
        if !matches!(closed, Ok(Ok(_))) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not stop within {WAIT:?} of SIGTERM:\n{}", self.name, self.text());
        }
        let status = child.wait().expect("the child can be waited for");
        for reader in self.readers.drain(..) {
            reader.join().expect("the output reader does not panic");
        }
        status
    }

    /// Waits (bounded) for the process to close its output and exit by itself; returns its
    /// exit status. Panics, showing the output, if it is still running after `timeout` (it
    /// is then killed on drop).
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut output = self.output.clone();
        let closed = tokio::time::timeout(timeout, output.wait_for(|c| c.open == 0)).await;
        if !matches!(closed, Ok(Ok(_))) {
            panic!("{} did not finish within {timeout:?}:\n{}", self.name, self.text());
        }
        let mut child = self.child.take().expect("the process was not stopped");
        let status = child.wait().expect("the child can be waited for");
        for reader in self.readers.drain(..) {
            reader.join().expect("the output reader does not panic");
        }
        status
    }

    /// Whether the process has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|child| child.try_wait().ok().flatten().is_some())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Copies one output stream into the capture, line by line, until end of file.
fn capture(mut stream: Box<dyn Read + Send>, sender: Arc<watch::Sender<Captured>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let read = match stream.read(&mut buffer) {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            let chunk = &buffer[..read];
            partial.extend_from_slice(chunk);
            let mut complete = Vec::new();
            while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=end).collect();
                complete.push(to_line(&line[..end]));
            }
            if read == 0 && !partial.is_empty() {
                complete.push(to_line(&std::mem::take(&mut partial)));
            }
            sender.send_modify(|captured| {
                captured.raw.extend_from_slice(chunk);
                captured.lines.append(&mut complete);
                if read == 0 {
                    captured.open -= 1;
                }
            });
            if read == 0 {
                return;
            }
        }
    })
}

fn to_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    strip_ansi(text.strip_suffix('\r').unwrap_or(&text))
}

/// A running `hearth` server.
#[derive(Debug)]
pub struct Hearth {
    pub process: Process,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` or `https://…`, as the server announced it.
    pub url: String,
}

impl Hearth {
    /// Starts `command` (a [`hearth`] command with its arguments) and waits for its
    /// "hearth listening on" line to learn the address.
    pub async fn spawn(command: Command) -> Self {
        let process = Process::spawn("hearth", command);
        let (_, line) = process.wait_line(0, STARTUP, |line| line.contains("hearth listening on ")).await;
        let url = line
            .split("hearth listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        let addr = url
            .split("://")
            .nth(1)
            .and_then(|host_port| host_port.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self { process, addr, url }
    }

    /// Starts `hearth --data-dir <data_dir> --listen 127.0.0.1:0` in `cwd` with `env` added.
    pub async fn start(cwd: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_at(cwd, data_dir, SocketAddr::from(([127, 0, 0, 1], 0)), env).await
    }

    /// Like [`Hearth::start`], on a given address (to restart a server where its clients
    /// will reconnect: see [`free_port`]).
    pub async fn start_at(cwd: &Path, data_dir: &Path, listen: SocketAddr, env: &[(&str, &str)]) -> Self {
        let mut command = hearth(cwd);
        command.arg("--data-dir").arg(data_dir).arg("--listen").arg(listen.to_string());
        command.envs(env.iter().copied());
        Self::spawn(command).await
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Stops the server with SIGTERM, checks that it exited cleanly, and returns every
    /// line it printed.
    pub async fn stop(mut self) -> (Vec<String>, Vec<u8>) {
        let status = self.process.terminate().await;
        let lines = self.process.lines();
        assert!(status.success(), "hearth exited with {status}:\n{}", lines.join("\n"));
        assert!(lines.iter().any(|l| l.contains("hearth stopped")), "no shutdown line:\n{}", lines.join("\n"));
        (lines, self.process.raw())
    }
}

/// A loopback port that was free a moment ago (bound to port 0, then released), for a
/// server that must come back on the same port after a restart.
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    probe.local_addr().expect("its address").port()
}

/// An HTTP client for talking to a local server: no proxies, bounded waits.
pub fn client() -> reqwest::Client {
    client_builder().build().expect("the HTTP client builds")
}

/// The builder behind [`client`], for adding TLS roots.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().no_proxy().timeout(WAIT)
}
