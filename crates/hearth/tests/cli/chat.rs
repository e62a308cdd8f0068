//! `hearth chat`, the terminal client, driven like a person would: the real binary in a
//! tmux pane (keys in with `send-keys`, the screen out with `capture-pane`), against the real
//! server, with other people played by the SDK. The assistant answers from the fake
//! provider (see `phoenix_js.rs`).
//!
//! Every wait polls the screen until the expected text shows, with a generous deadline; no
//! sleep stands in for an assertion. Skipped, saying so, where tmux is not installed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use hearth_client::api::Client;
use hearth_client::channels::{self, Events, Incoming, SYSTEM_TOPIC, Socket, SocketOptions};
use hearth_client::e2e::{self, KeyPair};
use hearth_fake_provider::FakeProvider;
use serde_json::json;
use uuid::Uuid;

use crate::harness::{BIN, Hearth};
use crate::phoenix_js::assistant_env;

/// The password of everyone here.
const PASSWORD: &str = "correct horse battery staple";

/// The longest wait for the screen to show something (the machine may be busy compiling).
const SCREEN_WAIT: Duration = Duration::from_secs(30);

/// How often the screen is read while waiting.
const POLL: Duration = Duration::from_millis(100);

/// A tmux server of its own (`-L`), with one 120×40 pane running `hearth chat`. Dropping it
/// kills the tmux server, and with it the client, whether the test passed or panicked.
struct Tmux {
    socket: String,
    /// The server's socket file, removed on drop (`kill-server` leaves it behind).
    socket_path: Option<std::path::PathBuf>,
    /// Where the client's exit status is written when it ends. tmux's own
    /// `#{pane_dead_status}` is sometimes never filled in (tmux 3.3a marks the pane dead when
    /// its terminal closes, and can miss the status), so the pane's shell writes it here.
    exit_file: std::path::PathBuf,
}

impl Tmux {
    /// Whether tmux can be run here.
    fn available() -> bool {
        Command::new("tmux").arg("-V").output().is_ok_and(|output| output.status.success())
    }

    /// Starts `hearth chat --server <server>` in a fresh tmux server. `config` is written to
    /// `dir` so the pane stays after the client exits.
    fn start(dir: &Path, server: &str) -> Self {
        let socket = format!("hearth-chat-test-{}-{}", std::process::id(), Uuid::now_v7().simple());
        let config = dir.join("tmux.conf");
        std::fs::write(&config, "set -g remain-on-exit on\nset -g history-limit 0\n").expect("write tmux.conf");
        let mut tmux = Self { socket, socket_path: None, exit_file: dir.join("chat-exit-status") };
        let command = tmux.client_command(server);
        let output = tmux
            .command()
            .arg("-f")
            .arg(&config)
            .args(["new-session", "-d", "-s", "chat", "-x", "120", "-y", "40", &command])
            .output()
            .expect("tmux runs");
        assert!(output.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&output.stderr));
        let path = tmux.run(&["display-message", "-p", "-t", "chat", "#{socket_path}"]).stdout;
        tmux.socket_path = Some(String::from_utf8_lossy(&path).trim().into());
        tmux
    }

    /// The pane's command: the client, then its exit status written to `exit_file`.
    fn client_command(&self, server: &str) -> String {
        let _ = std::fs::remove_file(&self.exit_file);
        format!("sh -c \"'{BIN}' chat --server '{server}'; echo \\$? > '{}'\"", self.exit_file.display())
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        // UTF-8 for the box drawing and the presence dots, whatever the test's locale.
        command.env("LANG", "C.UTF-8").env_remove("TMUX").args(["-L", &self.socket]);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = self.command().args(args).output().expect("tmux runs");
        assert!(output.status.success(), "tmux {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        output
    }

    /// Presses keys, by tmux's names (`Enter`, `Tab`, `C-n`, `Down`, `Space`…).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "chat"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` as it is.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "chat", "-l", text]);
    }

    /// What the pane shows now.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "chat"]).stdout).into_owned()
    }

    /// Waits until the screen satisfies `shows` (described by `what`), returning it; panics
    /// with the last screen after [`SCREEN_WAIT`].
    async fn wait_for(&self, what: &str, shows: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen();
            assert!(!screen.contains(PASSWORD), "the password is on the screen:\n{screen}");
            if shows(&screen) {
                return screen;
            }
            assert!(tokio::time::Instant::now() < deadline, "the screen never showed {what}:\n{screen}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the screen contains `text`.
    async fn wait_text(&self, text: &str) -> String {
        self.wait_for(&format!("{text:?}"), |screen| screen.contains(text)).await
    }

    /// Waits until the client has exited with status 0.
    async fn wait_exit(&self) {
        let deadline = tokio::time::Instant::now() + SCREEN_WAIT;
        loop {
            let status = std::fs::read_to_string(&self.exit_file).unwrap_or_default();
            match status.trim() {
                "0" => return,
                "" => {}
                other => panic!("the client exited with status {other}:\n{}", self.screen()),
            }
            assert!(tokio::time::Instant::now() < deadline, "the client did not exit:\n{}", self.screen());
            tokio::time::sleep(POLL).await;
        }
    }

    /// Moves the list's highlight (`›`) to the row containing `row` (the list has the keys).
    async fn select_in_list(&self, row: &str) {
        // From the top, down one row at a time.
        self.keys(&["Up", "Up", "Up", "Up", "Up"]);
        let deadline = tokio::time::Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen();
            if line_with(&screen, row).starts_with("│›") {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "could not highlight {row:?}:\n{screen}");
            self.keys(&["Down"]);
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts the client again in the (dead) pane.
    fn restart(&self, server: &str) {
        let command = self.client_command(server);
        self.run(&["respawn-pane", "-k", "-t", "chat", &command]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The line of the screen that contains `text`.
fn line_with<'a>(screen: &'a str, text: &str) -> &'a str {
    screen.lines().find(|line| line.contains(text)).unwrap_or("")
}

/// Someone played by the SDK: a REST session and a socket on it.
struct Sdk {
    id: Uuid,
    api: Arc<Client>,
    socket: Socket,
    events: Events,
}

impl Sdk {
    async fn register(url: &str, email: &str, name: &str) -> Self {
        let mut api = Client::new(url).expect("client");
        api.register(email, PASSWORD, Some(name), Some("sdk")).await.expect("register");
        let id = api.identity().expect("signed in").user_id;
        let api = Arc::new(api);
        let socket = Socket::connect_with_client(url, api.clone(), SocketOptions::default()).await.expect("connect");
        let events = socket.events();
        socket.join(&channels::user_topic(id), json!({})).await.expect("join the user topic");
        socket.join(SYSTEM_TOPIC, json!({})).await.expect("join system:general");
        Self { id, api, socket, events }
    }

    fn wrap_key(&self) -> &e2e::WrapKey {
        self.api.wrap_key().expect("a wrap key")
    }

    /// The next hearth event for which `wanted` holds (within [`SCREEN_WAIT`]).
    async fn next(&mut self, what: &str, wanted: impl Fn(&Incoming) -> bool) -> Incoming {
        let events = &mut self.events;
        let found = async {
            loop {
                let event = events.recv().await.expect("the socket is open");
                if let Some(incoming) = Incoming::parse(&event).filter(|incoming| wanted(incoming)) {
                    return incoming;
                }
            }
        };
        tokio::time::timeout(SCREEN_WAIT, found).await.unwrap_or_else(|_| panic!("no {what} within {SCREEN_WAIT:?}"))
    }

    /// Joins conversation `id` with a fresh key pair: the pair and everyone's public keys,
    /// waiting until every member in `members` has set theirs.
    async fn join_with_keys(&mut self, id: Uuid, members: &[Uuid]) -> (KeyPair, BTreeMap<Uuid, String>) {
        let joined = self.socket.join_conversation(id).await.expect("join the conversation");
        let pair = KeyPair::generate();
        let wrapped = e2e::wrap_private_key(self.wrap_key(), id, &pair);
        self.socket.set_encryption_keys(id, &pair.public_jwk(), &wrapped).await.expect("set keys");
        let mut keys = joined.public_keys;
        keys.insert(self.id, pair.public_jwk());
        while members.iter().any(|member| !keys.contains_key(member)) {
            let set = self
                .next(
                    "set_encryption_keys",
                    |i| matches!(i, Incoming::KeysSet { conversation_id, .. } if *conversation_id == id),
                )
                .await;
            if let Incoming::KeysSet { user_id, public_key, .. } = set {
                keys.insert(user_id, public_key);
            }
        }
        (pair, keys)
    }

    /// The plaintext of the next message in `id` from `sender`.
    async fn read_next(&mut self, id: Uuid, sender: Uuid, pair: &KeyPair, keys: &BTreeMap<Uuid, String>) -> String {
        let delivered = self
            .next(
                "new_message",
                |i| matches!(i, Incoming::NewMessage(d) if d.conversation_id == id && d.message.sender == sender),
            )
            .await;
        let Incoming::NewMessage(delivered) = delivered else { unreachable!("filtered") };
        e2e::decrypt(pair, self.id, &keys[&sender], sender, id, &delivered.message.content).expect("decrypt")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_chats_end_to_end_encrypted_and_with_the_assistant_in_the_terminal() {
    if !Tmux::available() {
        eprintln!("SKIPPED: `hearth chat` is tested in tmux, and tmux is not installed (apt-get install tmux)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeProvider::start().await.expect("start the fake provider");
    let ai_env = assistant_env(&fake);
    let env: Vec<(&str, &str)> = ai_env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let server = Hearth::start(dir.path(), &dir.path().join("data"), &env).await;
    let url = server.url.clone();
    let tmux = Tmux::start(dir.path(), &url);

    // Ann registers in the terminal; the password shows as stars and is never sent.
    tmux.wait_text("Log in").await;
    tmux.keys(&["C-r"]);
    tmux.wait_text("Register a new account").await;
    tmux.type_text("ann@example.org");
    tmux.keys(&["Tab"]);
    tmux.type_text(PASSWORD);
    tmux.keys(&["Tab"]);
    tmux.type_text("Ann");
    tmux.wait_text(&"*".repeat(PASSWORD.len())).await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("signed in as Ann <ann@example.org>").await;

    // Bob (the SDK) starts a private conversation with her and, once her client has set
    // her keys, writes to her.
    let mut bob = Sdk::register(&url, "bob@example.org", "Bob").await;
    let users = bob.api.users(None).await.expect("users");
    let ann = users.items.iter().find(|user| user.email == "ann@example.org").expect("ann is a user").id;
    let pair = KeyPair::generate();
    let provisional = e2e::wrap_private_key(bob.wrap_key(), Uuid::nil(), &pair);
    let started = bob.socket.start_private_conversation(ann, &pair.public_jwk(), &provisional).await.expect("start");
    let private = started.conversation.id;
    // Bob's key is re-wrapped for the conversation's id by joining with a new pair.
    let (bob_pair, keys) = bob.join_with_keys(private, &[ann]).await;
    let bob_id = bob.id;
    let copies = |text: &str| -> BTreeMap<Uuid, String> {
        keys.iter()
            .map(|(member, key)| {
                (*member, e2e::encrypt(&bob_pair, bob_id, key, *member, private, text).expect("encrypt"))
            })
            .collect()
    };
    bob.socket.send_message(private, &copies("hi Ann, it's Bob")).await.expect("bob sends");

    // The list shows it unread, with Bob online; opening it shows the message decrypted.
    let screen = tmux.wait_for("Bob's conversation, unread", |s| line_with(s, "Bob").contains("Bob (1)")).await;
    assert!(line_with(&screen, "Bob (1)").contains("● Bob"), "bob shows online:\n{screen}");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("Bob: hi Ann, it's Bob").await;
    assert!(!screen.contains("Bob (1)"), "opened, it is read:\n{screen}");
    // The header names each member's key by its fingerprint.
    let bob_fingerprint = e2e::fingerprint(&bob_pair.public_jwk()).expect("fingerprint");
    let short: String = bob_fingerprint.split(' ').take(2).collect::<Vec<_>>().join(" ");
    tmux.wait_text(&format!("Bob {short}")).await;

    // Ann replies; Bob's SDK decrypts it.
    tmux.type_text("hello Bob, from the terminal");
    let seen = bob
        .next("ann typing", |i| matches!(i, Incoming::Typing { user_id, typing: true, .. } if *user_id == ann))
        .await;
    assert!(matches!(seen, Incoming::Typing { conversation_id, .. } if conversation_id == private));
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: hello Bob, from the terminal").await;
    let read = bob.read_next(private, ann, &bob_pair, &keys).await;
    assert_eq!(read, "hello Bob, from the terminal");

    // Bob types; the terminal says so, until he stops.
    bob.socket.typing(private, true).await.expect("bob types");
    tmux.wait_text("Bob is typing…").await;
    bob.socket.typing(private, false).await.expect("bob stops");
    tmux.wait_for("no one typing", |s| !s.contains("is typing")).await;

    // The full fingerprints are in the info pane.
    tmux.keys(&["C-k"]);
    tmux.wait_text(&bob_fingerprint).await;
    tmux.keys(&["C-k"]);

    // Ann starts a group with Bob and Carol, picked in the new-conversation dialog.
    let mut carol = Sdk::register(&url, "carol@example.org", "Carol").await;
    tmux.keys(&["C-n"]);
    tmux.wait_text("Carol <carol@example.org>").await;
    tmux.keys(&["Space", "Down", "Space"]);
    tmux.wait_for("both picked", |s| s.contains("[x] Bob") && s.contains("[x] Carol")).await;
    tmux.keys(&["Tab"]);
    tmux.type_text("Team");
    tmux.keys(&["Enter"]);
    tmux.wait_text("Message to Team").await;
    let everyone = {
        let mut ids = vec![ann, bob.id, carol.id];
        ids.sort();
        ids
    };
    let mut team = None;
    for person in [&mut bob, &mut carol] {
        let announced = person
            .next(
                "the group",
                |i| matches!(i, Incoming::NewConversation(new) if new.conversation.alias.as_deref() == Some("Team")),
            )
            .await;
        let Incoming::NewConversation(announced) = announced else { unreachable!("filtered") };
        let mut members = announced.user_ids.clone();
        members.sort();
        assert_eq!(members, everyone);
        team = Some(announced.conversation.id);
    }
    let team = team.expect("the group's id");
    let (bob_team, bob_team_keys) = bob.join_with_keys(team, &[ann]).await;
    let (carol_team, carol_team_keys) = carol.join_with_keys(team, &[ann]).await;
    // Once the terminal knows everyone's keys, a message reaches both.
    tmux.wait_for("everyone's keys", |s| line_with(s, "keys: ").contains("Carol") && !s.contains("no keys yet")).await;
    tmux.type_text("hello team");
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: hello team").await;
    assert_eq!(bob.read_next(team, ann, &bob_team, &bob_team_keys).await, "hello team");
    assert_eq!(carol.read_next(team, ann, &carol_team, &carol_team_keys).await, "hello team");

    // The assistant: the reply streams in, then stands as the final message.
    tmux.keys(&["C-a"]);
    tmux.wait_text("Message to Assistant").await;
    tmux.type_text("tell me how replies stream");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("assistant: groq reply to: tell me how replies stream").await;
    tmux.wait_text("the assistant's reply streamed in").await;
    assert!(screen.contains("you: tell me how replies stream"), "{screen}");

    // Ctrl-C quits cleanly.
    tmux.keys(&["C-c"]);
    tmux.wait_exit().await;

    // While Ann is away, Bob writes more than a page (50) of messages.
    for n in 1..=60 {
        bob.socket.send_message(private, &copies(&format!("page {n:02}"))).await.expect("bob sends");
    }
    // Ann logs in again: her key, stored wrapped, opens the whole history, a page at a time.
    tmux.restart(&url);
    tmux.wait_text("Log in").await;
    tmux.type_text("ann@example.org");
    tmux.keys(&["Tab"]);
    tmux.type_text(PASSWORD);
    tmux.keys(&["Enter"]);
    tmux.wait_text("signed in as Ann <ann@example.org>").await;
    tmux.wait_for("Bob's conversation, unread", |s| line_with(s, "● Bob").contains("Bob (")).await;
    tmux.select_in_list("● Bob").await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("Bob: page 60").await;
    let deadline = tokio::time::Instant::now() + SCREEN_WAIT;
    loop {
        let screen = tmux.screen();
        if screen.contains("the beginning of the conversation") {
            assert!(screen.contains("Bob: hi Ann, it's Bob"), "the first message, from the older page:\n{screen}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reached the first message:\n{screen}");
        tmux.keys(&["PageUp"]);
        tokio::time::sleep(POLL).await;
    }
    tmux.keys(&["PageDown", "PageDown", "PageDown", "PageDown", "PageDown", "PageDown", "PageDown", "PageDown"]);
    tmux.wait_text("Bob: page 60").await;

    // Bob goes offline: his dot empties.
    drop(bob);
    tmux.wait_text("○ Bob").await;
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    let (lines, _) = server.stop().await;
    assert!(lines.iter().all(|l| !l.contains(" ERROR ")), "hearth logged errors:\n{}", lines.join("\n"));
}
