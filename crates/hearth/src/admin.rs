//! `hearth admin`: an administrator's commands, run against a server over its `/admin` API.
//!
//! `login --server URL --key PATH` asks the server for a challenge, has
//! `ssh-keygen -Y sign -n hearth-admin -f PATH` sign it (so ssh-agent and security keys work:
//! ssh-keygen asks for a passphrase or a touch itself), sends the signature back, and keeps the
//! admin token it gets in `admin_session.json` in the configuration directory (the one
//! `hearth chat` uses), readable by its owner only. `audit` lists the audit log with that
//! token; `audit --verify` asks the server whether its hash chain holds, and keeps the newest
//! entry it verified in `admin_audit_witness.json` beside the token: the next `--verify` asks
//! whether the chain still holds that entry, which a log whose newest entries were deleted
//! (something the chain alone cannot show) does not. `users …` lists
//! accounts and disables, enables, deletes them or grants and takes back roles (accounts are
//! named by email address); `rooms …` lists every room, reads one's posts and deletes a post;
//! `invites create` makes a sign-up code; `providers` shows the AI providers' health; `open`
//! prints a one-time link that opens the admin page in a browser, signed in as the same
//! administrator.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// The name of the file the admin token is kept in, in the configuration directory.
const SESSION_FILE: &str = "admin_session.json";

/// The name of the file, beside [`SESSION_FILE`], that keeps the newest audit entry each server's
/// `audit --verify` found: `{"<server URL>": {"seq", "hash", "verified_at"}}`.
const WITNESS_FILE: &str = "admin_audit_witness.json";

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
        /// Only check whether the log's hash chain holds (an edited or deleted entry breaks it),
        /// and whether it still holds the newest entry the last --verify saw here (newest entries
        /// deleted since).
        #[arg(long)]
        verify: bool,
    },
    /// Accounts: list them, disable, enable or delete one, grant or take back a role.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Invite codes, for a server whose accounts.registration is "invite".
    Invites {
        #[command(subcommand)]
        command: InvitesCommand,
    },
    /// The AI providers in the order they are tried and the health of the free tier's keys.
    Providers,
    /// Rooms: list them all (private ones too), read one's posts, delete a post.
    Rooms {
        #[command(subcommand)]
        command: RoomsCommand,
    },
    /// Print a one-time link that opens the admin page in a browser, signed in as you (the same
    /// key), for 60 seconds.
    Open,
}

#[derive(Debug, Subcommand)]
enum RoomsCommand {
    /// List every room, public and private (all, or those whose name or topic contains QUERY).
    List {
        #[arg(long)]
        query: Option<String>,
    },
    /// Show a room's posts, newest first, with their ids (reading is audited).
    Messages {
        room_id: String,
        /// How many posts to show at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Delete a post from a room; its members see it go.
    DeleteMessage {
        room_id: String,
        message_id: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// List accounts (all, or those whose email or display name contains QUERY).
    List {
        #[arg(long)]
        query: Option<String>,
    },
    /// Disable an account: every session signed out, sign-in refused until it is enabled.
    Disable {
        email: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Let a disabled account sign in again.
    Enable { email: String },
    /// Delete an account and everything of it.
    Delete {
        email: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Grant a role (analyst or operator) to an account.
    Grant { role: String, email: String },
    /// Take a role back from an account.
    Revoke { role: String, email: String },
}

#[derive(Debug, Subcommand)]
enum InvitesCommand {
    /// Make an invite code (shown this once).
    Create {
        /// Sign-ups it is good for.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it works: a number and s, m, h, d or w (7d by default).
        #[arg(long, default_value = "7d", value_parser = duration_secs)]
        expires: i64,
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
            if *verify {
                verify_audit(&client, &session, &file.with_file_name(WITNESS_FILE)).await
            } else {
                list_audit(&client, &session).await
            }
        }
        AdminCommand::Users { command } => users(&client, &load(&file)?, command).await,
        AdminCommand::Invites { command: InvitesCommand::Create { uses, expires } } => {
            let session = load(&file)?;
            let body = json!({ "uses": uses, "expires_in_secs": expires });
            let request = client.post(format!("{}/admin/invites", session.server)).json(&body);
            let made = call(request.bearer_auth(&session.token), &session.server).await?;
            println!("{}", text(&made, "code")?);
            eprintln!(
                "good for {} sign-up(s) until {}; this code is not shown again",
                made["uses"],
                text(&made, "expires_at")?
            );
            Ok(())
        }
        AdminCommand::Rooms { command } => rooms(&client, &load(&file)?, command).await,
        AdminCommand::Open => {
            let session = load(&file)?;
            let request = client.post(format!("{}/admin/links", session.server)).bearer_auth(&session.token);
            let link = call(request, &session.server).await?;
            println!("{}", text(&link, "url")?);
            eprintln!(
                "open it in a browser before {} (it works once); run hearth admin open again for another",
                text(&link, "expires_at")?
            );
            Ok(())
        }
        AdminCommand::Providers => {
            let session = load(&file)?;
            let request = client.get(format!("{}/admin/providers", session.server)).bearer_auth(&session.token);
            let report = call(request, &session.server).await?;
            for (position, provider) in report["items"].as_array().into_iter().flatten().enumerate() {
                let images = if provider["images"] == Value::Bool(true) { " (also images)" } else { "" };
                let name = provider["provider"].as_str().unwrap_or("?");
                println!("{}. {name}{images}: {}", position + 1, provider["summary"].as_str().unwrap_or("-"));
            }
            Ok(())
        }
    }
}

async fn rooms(client: &reqwest::Client, session: &Session, command: &RoomsCommand) -> anyhow::Result<()> {
    match command {
        RoomsCommand::List { query } => {
            let found =
                pages(client, session, "/admin/rooms", query.as_deref().map(|q| ("query", q)), usize::MAX).await?;
            if found.is_empty() {
                println!("no rooms");
            }
            for room in found {
                let field = |name: &str| room[name].as_str().unwrap_or("-").to_owned();
                let moderators: Vec<&str> = room["moderators"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|moderator| moderator["email"].as_str())
                    .collect();
                println!(
                    "{}  {:<7}  {}  members {}  moderators {}  created {}  last post {}",
                    field("id"),
                    field("visibility"),
                    field("name"),
                    room["members"],
                    if moderators.is_empty() { "-".to_owned() } else { moderators.join(",") },
                    field("inserted_at"),
                    field("last_post_at")
                );
            }
            Ok(())
        }
        RoomsCommand::Messages { room_id, limit } => {
            let path = format!("/admin/rooms/{}/messages", path_segment(room_id));
            let posts = pages(client, session, &path, None, *limit).await?;
            if posts.is_empty() {
                println!("no posts");
            }
            for post in posts {
                let field = |name: &str| post[name].as_str().unwrap_or("-").to_owned();
                // One post, one line: its line breaks are shown as the two characters \n.
                let text = field("text").replace('\n', "\\n");
                println!("{}  {}  {}  {text}", field("id"), field("inserted_at"), field("sender"));
            }
            Ok(())
        }
        RoomsCommand::DeleteMessage { room_id, message_id, reason } => {
            let url = format!(
                "{}/admin/rooms/{}/messages/{}",
                session.server,
                path_segment(room_id),
                path_segment(message_id)
            );
            let request = client.delete(url).json(&json!({ "reason": reason })).bearer_auth(&session.token);
            call(request, &session.server).await?;
            println!("post {message_id} deleted from room {room_id}");
            Ok(())
        }
    }
}

/// `text` as one path segment: everything but unreserved characters percent-encoded (an id
/// typed wrong reaches the server as what it is, and is refused there).
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The items of `path`'s pages (`?page_token=…`, with `param` if given), up to `most`.
async fn pages(
    client: &reqwest::Client,
    session: &Session,
    path: &str,
    param: Option<(&str, &str)>,
    most: usize,
) -> anyhow::Result<Vec<Value>> {
    let mut found = Vec::new();
    let mut page_token: Option<String> = None;
    while found.len() < most {
        let mut params = vec![("page_size", "100")];
        params.extend(param);
        if let Some(token) = &page_token {
            params.push(("page_token", token));
        }
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", session.server), &params)
            .with_context(|| format!("{} is not a URL", session.server))?;
        let page = call(client.get(url).bearer_auth(&session.token), &session.server).await?;
        found.extend(page["items"].as_array().into_iter().flatten().cloned());
        match page["page_token"].as_str() {
            Some(next) => page_token = Some(next.to_owned()),
            None => break,
        }
    }
    found.truncate(most);
    Ok(found)
}

/// `N` and a unit (`s`, `m`, `h`, `d`, `w`) as seconds.
fn duration_secs(text: &str) -> Result<i64, String> {
    let unit = |c: char| match c {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(86_400),
        'w' => Some(7 * 86_400),
        _ => None,
    };
    let (number, last) = text.split_at(text.len().saturating_sub(1));
    match (number.parse::<i64>(), last.chars().next().and_then(unit)) {
        (Ok(n), Some(seconds)) if n > 0 => n.checked_mul(seconds).ok_or_else(|| "too long".to_owned()),
        _ => Err("a positive number and s, m, h, d or w, such as 7d".to_owned()),
    }
}

async fn users(client: &reqwest::Client, session: &Session, command: &UsersCommand) -> anyhow::Result<()> {
    let (email, path, body, done) = match command {
        UsersCommand::List { query } => return list_users(client, session, query.as_deref()).await,
        UsersCommand::Disable { email, reason } => (email, "/disable", Some(json!({ "reason": reason })), "disabled"),
        UsersCommand::Enable { email } => (email, "/enable", None, "enabled"),
        UsersCommand::Delete { email, reason } => (email, "", Some(json!({ "reason": reason })), "deleted"),
        UsersCommand::Grant { role, email } => {
            (email, "/roles", Some(json!({ "role": role, "granted": true })), "granted the role")
        }
        UsersCommand::Revoke { role, email } => {
            (email, "/roles", Some(json!({ "role": role, "granted": false })), "no longer holds the role")
        }
    };
    let id = account_id(client, session, email).await?;
    let url = format!("{}/admin/users/{id}{path}", session.server);
    let request = match command {
        UsersCommand::Delete { .. } => client.delete(url),
        _ => client.post(url),
    };
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    call(request.bearer_auth(&session.token), &session.server).await?;
    println!("{email}: {done}");
    Ok(())
}

/// Every page of `GET /admin/users?query=…`.
async fn accounts(client: &reqwest::Client, session: &Session, query: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let mut found = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut params = vec![("page_size", "100")];
        if let Some(query) = query {
            params.push(("query", query));
        }
        if let Some(token) = &page_token {
            params.push(("page_token", token));
        }
        let url = reqwest::Url::parse_with_params(&format!("{}/admin/users", session.server), &params)
            .with_context(|| format!("{} is not a URL", session.server))?;
        let request = client.get(url);
        let page = call(request.bearer_auth(&session.token), &session.server).await?;
        found.extend(page["items"].as_array().into_iter().flatten().cloned());
        match page["page_token"].as_str() {
            Some(next) => page_token = Some(next.to_owned()),
            None => return Ok(found),
        }
    }
}

/// The id of the account whose address is `email`.
async fn account_id(client: &reqwest::Client, session: &Session, email: &str) -> anyhow::Result<String> {
    let found = accounts(client, session, Some(email.trim())).await?;
    let account =
        found.iter().find(|account| account["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email.trim())));
    account
        .and_then(|account| account["id"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no account has the address {email}"))
}

async fn list_users(client: &reqwest::Client, session: &Session, query: Option<&str>) -> anyhow::Result<()> {
    let found = accounts(client, session, query).await?;
    if found.is_empty() {
        println!("no accounts");
    }
    for account in found {
        let field = |name: &str| account[name].as_str().unwrap_or("-").to_owned();
        let roles: Vec<&str> = account["roles"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let disabled = match account["disabled_reason"].as_str() {
            Some(reason) => format!("DISABLED ({reason})"),
            None => "active".to_owned(),
        };
        println!(
            "{}  {}  {}  created {}  last seen {}  devices {}  {disabled}  roles {}",
            field("email"),
            field("display_name"),
            field("id"),
            field("created_at"),
            field("last_seen_at"),
            account["devices"],
            if roles.is_empty() { "-".to_owned() } else { roles.join(",") }
        );
    }
    Ok(())
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
    write_private(file, &session)?;
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

/// Writes `value` (the session, or the audit witness) readable and writable by its owner only
/// (0600), in a directory that is the owner's only (0700) when this makes it.
fn write_private(file: &Path, value: &Value) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let directory = file.parent().with_context(|| format!("{} has no directory", file.display()))?;
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
    out.write_all(value.to_string().as_bytes()).with_context(|| format!("cannot write {}", file.display()))?;
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

async fn verify_audit(client: &reqwest::Client, session: &Session, witness_file: &Path) -> anyhow::Result<()> {
    let mut witnesses = match std::fs::read_to_string(witness_file) {
        Ok(text) => serde_json::from_str::<Value>(&text).ok().filter(Value::is_object).with_context(|| {
            format!("{} is not a JSON object (move it away to start afresh)", witness_file.display())
        })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", witness_file.display())),
    };
    let known = witnesses[session.server.as_str()].clone();
    let mut url = reqwest::Url::parse(&format!("{}/admin/audit/verify", session.server))
        .with_context(|| format!("{} is not a URL", session.server))?;
    if let (Some(seq), Some(hash)) = (known["seq"].as_i64(), known["hash"].as_str()) {
        url.query_pairs_mut().append_pair("known_seq", &seq.to_string()).append_pair("known_hash", hash);
    }
    let verdict = call(client.get(url).bearer_auth(&session.token), &session.server).await?;
    if verdict["verified"] != Value::Bool(true) {
        // A server whose data was replaced on purpose looks the same: say how to start afresh.
        let since = known["verified_at"]
            .as_str()
            .map(|at| {
                let file = witness_file.display();
                format!(
                    "; last verified here at {at} (if its data was replaced on purpose, remove its entry from {file})"
                )
            })
            .unwrap_or_default();
        bail!(
            "the audit log has been tampered with: its chain breaks at entry {} ({}){since}",
            verdict["broken"]["seq"],
            verdict["broken"]["problem"].as_str().unwrap_or("no detail")
        )
    }
    let newest = &verdict["newest"];
    if let (Some(seq), Some(hash)) = (newest["seq"].as_i64(), newest["hash"].as_str()) {
        let at = hearth_store::Timestamp::now().to_rfc3339();
        witnesses[session.server.as_str()] = json!({ "seq": seq, "hash": hash, "verified_at": at });
        write_private(witness_file, &witnesses)?;
    }
    println!("the audit log is intact: {} entries, each chained to the one before", verdict["entries"]);
    if known.is_object() {
        println!("it still holds entry {}, the newest when last verified here", known["seq"]);
    }
    Ok(())
}

/// Sends `request`; the JSON reply, or an error with the server's message.
async fn call(request: reqwest::RequestBuilder, server: &str) -> anyhow::Result<Value> {
    let reply = request.send().await.with_context(|| format!("cannot reach {server}"))?;
    let status = reply.status();
    if status == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
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
