//! `hearth admin`: an administrator's commands, run against a server over its `/admin` API.
//!
//! `login --server URL --key PATH` asks the server for a challenge, has
//! `ssh-keygen -Y sign -n hearth-admin -f PATH` sign it (so ssh-agent and security keys work:
//! ssh-keygen asks for a passphrase or a touch itself), sends the signature back, and keeps the
//! admin token it gets in `admin_session.json` in the configuration directory (the one
//! `hearth chat` uses), readable by its owner only. `audit` lists the audit log with that
//! token; `audit --verify` asks the server whether its hash chain holds.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// The name of the file the admin token is kept in, in the configuration directory.
const SESSION_FILE: &str = "admin_session.json";

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
    /// Where the admin token is kept (`admin_session.json`, readable by you only). By default
    /// `$XDG_CONFIG_HOME/hearth`, or `$HOME/.config/hearth`.
    #[arg(long, env = "HEARTH_CONFIG_DIR", global = true)]
    config_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Sign in as an administrator with an SSH key listed in the server's
    /// admin.allowed_signers: the key signs the server's challenge through
    /// `ssh-keygen -Y sign -n hearth-admin`; the admin token (15 minutes) is kept.
    Login {
        /// The server's URL.
        #[arg(long)]
        server: String,
        /// The SSH key (its private key file, or its `.pub` when ssh-agent holds the key).
        #[arg(long)]
        key: PathBuf,
    },
    /// List the audit log, newest first: every administrator's sign-in and action.
    Audit {
        /// Only check whether the log's hash chain holds (an edited or deleted entry breaks it).
        #[arg(long)]
        verify: bool,
    },
}

/// Runs `hearth admin …`.
pub async fn run(args: &AdminArgs) -> anyhow::Result<()> {
    let file = session_file(args.config_dir.as_deref())?;
    let client = reqwest::Client::builder().build().context("cannot make an HTTP client")?;
    match &args.command {
        AdminCommand::Login { server, key } => login(&client, server.trim_end_matches('/'), key, &file).await,
        AdminCommand::Audit { verify } => {
            let session = load(&file)?;
            if *verify { verify_audit(&client, &session).await } else { list_audit(&client, &session).await }
        }
    }
}

fn session_file(config_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let directory = hearth_chat::config_dir(config_dir).context(
        "no configuration directory to keep the admin token in: give --config-dir or set HEARTH_CONFIG_DIR \
         (or XDG_CONFIG_HOME, or HOME)",
    )?;
    Ok(directory.join(SESSION_FILE))
}

async fn login(client: &reqwest::Client, server: &str, key: &Path, file: &Path) -> anyhow::Result<()> {
    if !key.exists() {
        bail!("no key at {}", key.display());
    }
    let reply = call(client.post(format!("{server}/admin/challenge")), server).await?;
    let challenge = text(&reply, "challenge")?;
    let signature = sign(key, &challenge)?;
    let body = json!({ "challenge": challenge, "signature": signature });
    let reply = call(client.post(format!("{server}/admin/session")).json(&body), server).await?;
    let (fingerprint, expires_at) = (text(&reply, "fingerprint")?, text(&reply, "expires_at")?);
    let session = json!({
        "server": server,
        "admin_token": text(&reply, "admin_token")?,
        "fingerprint": fingerprint,
        "expires_at": expires_at,
    });
    save(file, &session)?;
    println!(
        "signed in to {server} as {fingerprint} until {expires_at}; the admin token is kept in {}",
        file.display()
    );
    Ok(())
}

/// `ssh-keygen -Y sign -n hearth-admin -f KEY` over `challenge` (given on stdin; the signature
/// comes on stdout). Its stderr stays the terminal's: ssh-keygen asks there for a passphrase
/// or a touch of the security key.
fn sign(key: &Path, challenge: &str) -> anyhow::Result<String> {
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "hearth-admin", "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run ssh-keygen (install OpenSSH's client tools)")?;
    child.stdin.take().context("ssh-keygen's input")?.write_all(challenge.as_bytes()).context("ssh-keygen's input")?;
    let output = child.wait_with_output().context("ssh-keygen did not finish")?;
    if !output.status.success() {
        bail!("ssh-keygen could not sign the challenge with {} ({})", key.display(), output.status);
    }
    String::from_utf8(output.stdout).context("ssh-keygen's signature is not text")
}

/// Writes the session readable and writable by its owner only (0600), in a directory that is
/// the owner's only (0700) when this makes it.
fn save(file: &Path, session: &Value) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let directory = file.parent().context("the admin token's file has no directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)
        .with_context(|| format!("cannot make {}", directory.display()))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    // A file that was there before keeps its mode through `open`: made the owner's only.
    out.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    out.write_all(session.to_string().as_bytes()).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(())
}

/// The kept session: server and admin token.
struct Session {
    server: String,
    token: String,
}

fn load(file: &Path) -> anyhow::Result<Session> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            bail!("not signed in (no {}): sign in with hearth admin login --server URL --key PATH", file.display())
        }
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", file.display())),
    };
    let session: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    Ok(Session { server: text_of(&session, "server", file)?, token: text_of(&session, "admin_token", file)? })
}

fn text_of(value: &Value, field: &str, file: &Path) -> anyhow::Result<String> {
    value[field].as_str().map(str::to_owned).with_context(|| format!("{} has no {field}", file.display()))
}

async fn list_audit(client: &reqwest::Client, session: &Session) -> anyhow::Result<()> {
    let mut page_token: Option<String> = None;
    let mut shown = 0;
    loop {
        // Page tokens are base64url: nothing in them needs escaping in a query string.
        let after = page_token.as_ref().map(|token| format!("&page_token={token}")).unwrap_or_default();
        let url = format!("{}/admin/audit?page_size=100{after}", session.server);
        let page = call(client.get(url).bearer_auth(&session.token), &session.server).await?;
        for entry in page["items"].as_array().into_iter().flatten() {
            println!("{}", audit_line(entry));
            shown += 1;
        }
        match page["page_token"].as_str() {
            Some(next) => page_token = Some(next.to_owned()),
            None => break,
        }
    }
    if shown == 0 {
        println!("the audit log is empty");
    }
    Ok(())
}

/// One entry, on one line: `seq  time  outcome  action  key  target  reason`.
fn audit_line(entry: &Value) -> String {
    let field = |name: &str| entry[name].as_str().unwrap_or("-").to_owned();
    format!(
        "{:>6}  {}  {:<8}  {:<14}  {}  {}  {}",
        entry["seq"],
        field("at"),
        field("outcome"),
        field("action"),
        field("fingerprint"),
        field("target"),
        field("reason")
    )
}

async fn verify_audit(client: &reqwest::Client, session: &Session) -> anyhow::Result<()> {
    let request = client.get(format!("{}/admin/audit/verify", session.server)).bearer_auth(&session.token);
    let verdict = call(request, &session.server).await?;
    if verdict["verified"] == Value::Bool(true) {
        println!("the audit log is intact: {} entries, each chained to the one before", verdict["entries"]);
        return Ok(());
    }
    bail!(
        "the audit log has been tampered with: its chain breaks at entry {} ({})",
        verdict["broken"]["seq"],
        verdict["broken"]["problem"].as_str().unwrap_or("no detail")
    )
}

/// Sends `request`; the JSON reply, or an error with the server's message.
async fn call(request: reqwest::RequestBuilder, server: &str) -> anyhow::Result<Value> {
    let reply = request.send().await.with_context(|| format!("cannot reach {server}"))?;
    let status = reply.status();
    let body: Value = reply.json().await.with_context(|| format!("{server} did not answer with JSON ({status})"))?;
    if status.is_success() {
        return Ok(body);
    }
    let message = body["message"].as_str().unwrap_or("no message");
    if status == reqwest::StatusCode::UNAUTHORIZED && message.contains("admin token") {
        bail!("{message}");
    }
    bail!("{server} refused ({status}): {message}")
}

fn text(reply: &Value, field: &str) -> anyhow::Result<String> {
    reply[field].as_str().map(str::to_owned).with_context(|| format!("the server's reply has no {field}"))
}
