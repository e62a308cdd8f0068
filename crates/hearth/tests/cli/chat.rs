//! `hearth chat`, the terminal client, driven like a person would: the real binary in a
//! tmux pane (keys in with `send-keys`, the screen out with `capture-pane`), against the real
//! server, with other people played by the SDK. The assistant answers from the fake
//! provider (see `phoenix_js.rs`).
//!
//! Every wait polls the screen until the expected text shows, with a generous deadline; no
//! sleep stands in for an assertion. Skipped, saying so, where tmux is not installed.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use hearth_client::api::{Client, Message};
use hearth_client::channels::{self, Events, Incoming, SYSTEM_TOPIC, Socket};
use hearth_client::e2e;
use hearth_client::trust::{Keyring, Notice, Opened, TrustStore};
use hearth_fake_provider::FakeProvider;
use serde_json::json;
use uuid::Uuid;

use crate::harness::{BIN, Hearth, client};
use crate::phoenix_js::assistant_env;

/// The password of everyone here.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// The longest wait for the screen to show something (the machine may be busy compiling).
const SCREEN_WAIT: Duration = Duration::from_secs(30);

/// How often the screen is read while waiting.
const POLL: Duration = Duration::from_millis(100);

/// A tmux server of its own (`-L`), with one 120×40 pane running `hearth chat`. Dropping it
/// kills the tmux server, and with it the client, whether the test passed or panicked.
pub(crate) struct Tmux {
    socket: String,
    /// The server's socket file, removed on drop (`kill-server` leaves it behind).
    socket_path: Option<std::path::PathBuf>,
    /// Where the client's exit status is written when it ends. tmux's own
    /// `#{pane_dead_status}` is sometimes never filled in (tmux 3.3a marks the pane dead when
    /// its terminal closes, and can miss the status), so the pane's shell writes it here.
    exit_file: std::path::PathBuf,
    /// The client's configuration directory (`HEARTH_CONFIG_DIR`): its trust files.
    pub(crate) config_dir: std::path::PathBuf,
}

impl Tmux {
    /// Whether tmux can be run here.
    /// Whether tmux is missing here (then the test says it is skipped).
    pub(crate) fn missing() -> bool {
        let available = Command::new("tmux").arg("-V").output().is_ok_and(|output| output.status.success());
        if !available {
            eprintln!("SKIPPED: `hearth chat` is tested in tmux, and tmux is not installed (apt-get install tmux)");
        }
        !available
    }

    /// Starts `hearth chat --server <server>` in a fresh tmux server. `config` is written to
    /// `dir` so the pane stays after the client exits.
    pub(crate) fn start(dir: &Path, server: &str) -> Self {
        let socket = format!("hearth-chat-test-{}-{}", std::process::id(), Uuid::now_v7().simple());
        let config = dir.join("tmux.conf");
        std::fs::write(&config, "set -g remain-on-exit on\nset -g history-limit 0\n").expect("write tmux.conf");
        let mut tmux =
            Self { socket, socket_path: None, exit_file: dir.join("chat-exit-status"), config_dir: dir.join("config") };
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
    pub(crate) fn client_command(&self, server: &str) -> String {
        let _ = std::fs::remove_file(&self.exit_file);
        format!(
            "sh -c \"HEARTH_CONFIG_DIR='{}' '{BIN}' chat --server '{server}'; echo \\$? > '{}'\"",
            self.config_dir.display(),
            self.exit_file.display()
        )
    }

    /// The trust file of `user` on the server at `url` (`http://127.0.0.1:PORT`).
    fn trust_file(&self, url: &str, user: Uuid) -> std::path::PathBuf {
        let host_port = url.trim_start_matches("http://").replace(':', "_");
        self.config_dir.join("trust").join(format!("{host_port}-{user}.json"))
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        // UTF-8 for the box drawing and the presence dots, whatever the test's locale.
        command.env("LANG", "C.UTF-8").env_remove("TMUX").args(["-L", &self.socket]);
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        let output = self.command().args(args).output().expect("tmux runs");
        assert!(output.status.success(), "tmux {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        output
    }

    /// Presses keys, by tmux's names (`Enter`, `Tab`, `C-n`, `Down`, `Space`…).
    pub(crate) fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "chat"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` as it is (after `--`: text starting with `-`, as a random invite code may,
    /// is not an option of send-keys).
    pub(crate) fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "chat", "-l", "--", text]);
    }

    /// What the pane shows now.
    pub(crate) fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "chat"]).stdout).into_owned()
    }

    /// Waits until the screen satisfies `shows` (described by `what`), returning it; panics
    /// with the last screen after [`SCREEN_WAIT`].
    pub(crate) async fn wait_for(&self, what: &str, shows: impl Fn(&str) -> bool) -> String {
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
    pub(crate) async fn wait_text(&self, text: &str) -> String {
        self.wait_for(&format!("{text:?}"), |screen| screen.contains(text)).await
    }

    /// Waits until the client has exited with status 0.
    pub(crate) async fn wait_exit(&self) {
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
    pub(crate) async fn select_in_list(&self, row: &str) {
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
    pub(crate) fn restart(&self, server: &str) {
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
pub(crate) fn line_with<'a>(screen: &'a str, text: &str) -> &'a str {
    screen.lines().find(|line| line.contains(text)).unwrap_or("")
}

/// Someone played by the SDK: a REST session, a socket on it, and their keyring, used as a
/// client would (signed keys, sealed and checked messages).
pub(crate) struct Sdk {
    pub(crate) id: Uuid,
    /// Owned, not shared with the socket: replacing the identity takes `&mut`.
    pub(crate) api: Client,
    pub(crate) socket: Socket,
    pub(crate) events: Events,
    pub(crate) keyring: Keyring,
}

impl Sdk {
    /// Registers (making and publishing an identity) and connects.
    pub(crate) async fn register(url: &str, email: &str, name: &str) -> Self {
        let mut api = Client::new(url).expect("client");
        api.register(email, PASSWORD, Some(name), Some("sdk")).await.expect("register");
        Self::connect(url, api).await
    }

    /// Logs in to an existing account (publishing an identity if it has none) and connects.
    pub(crate) async fn login(url: &str, email: &str) -> Self {
        let mut api = Client::new(url).expect("client");
        api.login(email, PASSWORD, Some("sdk")).await.expect("log in");
        Self::connect(url, api).await
    }

    async fn connect(url: &str, api: Client) -> Self {
        let id = api.identity().expect("signed in").user_id;
        let keyring = api.keyring(TrustStore::in_memory()).expect("the identity opens");
        // A test is over long before the access token's 30 minutes.
        let token = api.access_token().await.expect("a token");
        let socket = Socket::connect(url, &token).await.expect("connect");
        let events = socket.events();
        socket.join(&channels::user_topic(id), json!({})).await.expect("join the user topic");
        socket.join(SYSTEM_TOPIC, json!({})).await.expect("join system:general");
        Self { id, api, socket, events, keyring }
    }

    /// The id of the user with this email.
    pub(crate) async fn user_id(&self, email: &str) -> Uuid {
        let users = self.api.users(Some(email), None).await.expect("users");
        let found = users.items.iter().find(|user| user.email.as_deref() == Some(email));
        found.unwrap_or_else(|| panic!("{email} is no user")).id
    }

    /// Starts a private conversation with `other` as a client does: the id and a signed key
    /// from the keyring, then a join.
    pub(crate) async fn start_private(&mut self, other: Uuid) -> Uuid {
        let keys = self.keyring.start_conversation().expect("start");
        let started = self
            .socket
            .start_private_conversation(keys.conversation_id, other, &keys.public_key, &keys.private_key)
            .await
            .expect("start the conversation");
        assert_eq!(started.conversation.id, keys.conversation_id, "the id is the client's");
        self.join(keys.conversation_id).await;
        keys.conversation_id
    }

    /// Joins conversation `id`, publishing the key the keyring asks for; the join's page,
    /// opened, and what the keyring noticed.
    pub(crate) async fn join(&mut self, id: Uuid) -> (Vec<(Message, Opened)>, Vec<Notice>) {
        let joined = self.socket.join_conversation(id).await.expect("join the conversation");
        let joining = self.keyring.join(&joined).expect("the keyring takes the join");
        if let Some(keys) = &joining.publish {
            self.socket.set_encryption_keys(id, &keys.public_key, &keys.private_key).await.expect("set keys");
        }
        let oldest_first: Vec<Message> = joined.messages.items.into_iter().rev().collect();
        let opened = self.keyring.open_page(id, &oldest_first, true);
        (oldest_first.into_iter().zip(opened).collect(), joining.notices)
    }

    /// Seals `text` for every member of `id` and sends it.
    pub(crate) async fn send(&mut self, id: Uuid, text: &str) {
        let outgoing = self.keyring.seal(id, text, None).expect("seal");
        self.socket.send_message(id, Some(outgoing.message_group_id), &outgoing.copies).await.expect("send");
    }

    /// The next hearth event for which `wanted` holds (within [`SCREEN_WAIT`]). Every event
    /// on the way is given to the keyring, as a client does: members' keys and identities.
    pub(crate) async fn next(&mut self, what: &str, wanted: impl Fn(&Incoming) -> bool) -> Incoming {
        let deadline = tokio::time::Instant::now() + SCREEN_WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {SCREEN_WAIT:?}"))
                .expect("the socket is open");
            let Some(incoming) = Incoming::parse(&event) else { continue };
            match &incoming {
                Incoming::KeysSet { conversation_id, user_id, public_key } => {
                    let refused = self.keyring.member_key_set(*conversation_id, *user_id, public_key);
                    assert_eq!(refused, None, "the terminal's keys are signed");
                }
                Incoming::IdentityKey { user_id, identity_key, .. } => {
                    self.keyring.learn_identity(*user_id, Some(identity_key)).expect("learn the identity");
                }
                _ => {}
            }
            if wanted(&incoming) {
                return incoming;
            }
        }
    }

    /// The text of the next message in `id` from `sender`, opened and checked.
    pub(crate) async fn read_next(&mut self, id: Uuid, sender: Uuid) -> String {
        let delivered = self
            .next(
                "new_message",
                |i| matches!(i, Incoming::NewMessage(d) if d.conversation_id == id && d.message.sender == sender),
            )
            .await;
        let Incoming::NewMessage(delivered) = delivered else { unreachable!("filtered") };
        let mut opened = self.keyring.open(id, &delivered.message);
        if opened.text.is_err() {
            // The sender's key was set between this socket's join reply and its subscription
            // (the terminal joins as the conversation starts): a join brings it.
            let (page, _) = self.join(id).await;
            opened = page
                .into_iter()
                .find(|(message, _)| message.id == delivered.message.id)
                .map(|(_, opened)| opened)
                .expect("the message is in the page");
        }
        assert_eq!((opened.flags.as_slice(), opened.unchecked), (&[][..], false), "a genuine, checked message");
        opened.text.expect("the message opens")
    }
}

/// Logs in in the terminal (at the sign-in form) as `email`, until the chat screen is up.
/// Registers Ann (her client makes and publishes her security key) and starts no client of
/// hers; her id.
pub(crate) async fn ann_without_a_client(url: &str) -> Uuid {
    let mut api = Client::new(url).expect("client");
    api.register("ann@example.org", PASSWORD, Some("Ann"), Some("web")).await.expect("register");
    api.identity().expect("signed in").user_id
}

/// Bob writes `text` to Ann, who has not run a client yet; then Ann signs in to the terminal
/// client and opens his conversation. Ann's id, Bob, the conversation and Ann's terminal.
pub(crate) async fn ann_reads_bob_in_the_terminal(dir: &Path, url: &str, text: &str) -> (Uuid, Sdk, Uuid, Tmux) {
    let ann = ann_without_a_client(url).await;
    let mut bob = Sdk::register(url, "bob@example.org", "Bob").await;
    let private = bob.start_private(ann).await;
    bob.send(private, text).await;
    let tmux = Tmux::start(dir, url);
    log_in(&tmux, "ann@example.org").await;
    tmux.wait_for("Bob's conversation, unread", |s| line_with(s, "Bob").contains("Bob (1)")).await;
    tmux.keys(&["Enter"]);
    tmux.wait_text(&format!("Bob: {text}")).await;
    (ann, bob, private, tmux)
}

pub(crate) async fn log_in(tmux: &Tmux, email: &str) {
    tmux.wait_text("Log in").await;
    tmux.type_text(email);
    tmux.keys(&["Tab"]);
    tmux.type_text(PASSWORD);
    tmux.keys(&["Enter"]);
    // The chat screen's help line (the status line may already say something else).
    tmux.wait_text("Ctrl-K security").await;
}

/// Waits until the security pane shows `safety_number`: 12 groups of 5 digits, in two rows
/// of 6 (one person's digits, then the other's).
async fn wait_safety_number(tmux: &Tmux, safety_number: &str) {
    let groups: Vec<&str> = safety_number.split(' ').collect();
    assert_eq!(groups.len(), 12, "{safety_number}");
    let (first, second) = (groups[..6].join(" "), groups[6..].join(" "));
    tmux.wait_for(&format!("the safety number {safety_number}"), |s| s.contains(&first) && s.contains(&second)).await;
}

/// A server with the assistant's fake provider, in `dir`.
pub(crate) async fn server(dir: &Path) -> (Hearth, FakeProvider) {
    let fake = FakeProvider::start().await.expect("start the fake provider");
    (server_with(dir, &fake, SocketAddr::from(([127, 0, 0, 1], 0))).await, fake)
}

/// A server in `dir` listening on `listen`, with `fake` as the assistant's providers (to
/// start it again where its clients reconnect).
pub(crate) async fn server_with(dir: &Path, fake: &FakeProvider, listen: SocketAddr) -> Hearth {
    let ai_env = assistant_env(fake);
    let env: Vec<(&str, &str)> = ai_env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    Hearth::start_at(dir, &dir.join("data"), listen, &env).await
}

/// Stops the server, which must not have logged an error.
pub(crate) async fn stop(server: Hearth) {
    let (lines, _) = server.stop().await;
    assert!(lines.iter().all(|l| !l.contains(" ERROR ")), "hearth logged errors:\n{}", lines.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_chats_end_to_end_encrypted_and_with_the_assistant_in_the_terminal() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
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

    // Bob (the SDK) starts a private conversation with her and writes to her at once: to
    // her key if her client published it already, else to her security key.
    let mut bob = Sdk::register(&url, "bob@example.org", "Bob").await;
    let ann = bob.user_id("ann@example.org").await;
    let private = bob.start_private(ann).await;
    bob.send(private, "hi Ann, it's Bob").await;

    // The list shows it unread, with Bob online; opening it shows the message decrypted.
    let screen = tmux.wait_for("Bob's conversation, unread", |s| line_with(s, "Bob").contains("Bob (1)")).await;
    assert!(line_with(&screen, "Bob (1)").contains("● Bob"), "bob shows online:\n{screen}");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("Bob: hi Ann, it's Bob").await;
    assert!(!screen.contains("Bob (1)"), "opened, it is read:\n{screen}");
    assert!(!screen.contains('⚠'), "a genuine message, nothing to warn about:\n{screen}");
    // The header says how far Bob's security key is trusted: seen, not verified.
    tmux.wait_text("Bob: not verified").await;

    // Ann replies; Bob's SDK opens it.
    tmux.type_text("hello Bob, from the terminal");
    let seen = bob
        .next("ann typing", |i| matches!(i, Incoming::Typing { user_id, typing: true, .. } if *user_id == ann))
        .await;
    assert!(matches!(seen, Incoming::Typing { conversation_id, .. } if conversation_id == private));
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: hello Bob, from the terminal").await;
    assert_eq!(bob.read_next(private, ann).await, "hello Bob, from the terminal");

    // Bob types; the terminal says so, until he stops.
    bob.socket.typing(private, true).await.expect("bob types");
    tmux.wait_text("Bob is typing…").await;
    bob.socket.typing(private, false).await.expect("bob stops");
    tmux.wait_for("no one typing", |s| !s.contains("is typing")).await;

    // The security pane shows their safety number, the same on both sides; Ann compares it
    // and marks Bob verified, which her trust file keeps.
    let safety_number = bob.keyring.safety_number(ann).expect("Bob knows Ann's security key");
    tmux.keys(&["C-k"]);
    wait_safety_number(&tmux, &safety_number).await;
    tmux.keys(&["v"]);
    tmux.wait_text("Bob: verified ✓").await;
    tmux.keys(&["Escape"]);
    tmux.wait_for("the pane closed", |s| !s.contains("Members and security keys")).await;
    let trust = std::fs::read_to_string(tmux.trust_file(&url, ann)).expect("Ann's trust file");
    assert!(trust.contains(&bob.id.to_string()) && trust.contains("\"verified\": true"), "{trust}");

    // Ann starts a group with Bob and Carol, picked in the new-conversation dialog, and
    // writes at once: to their security keys where they have not joined yet.
    let mut carol = Sdk::register(&url, "carol@example.org", "Carol").await;
    tmux.keys(&["C-n"]);
    // Carol shares no conversation with Ann yet: her address is not shown.
    let screen = tmux.wait_text("[ ] Carol").await;
    assert!(!screen.contains("carol@example.org"), "{screen}");
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
    bob.join(team).await;
    carol.join(team).await;
    tmux.wait_text("Carol: not verified").await;
    tmux.type_text("hello team");
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: hello team").await;
    assert_eq!(bob.read_next(team, ann).await, "hello team");
    assert_eq!(carol.read_next(team, ann).await, "hello team");

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
        bob.send(private, &format!("page {n:02}")).await;
    }
    // Ann starts the client again: it resumes her kept session, whose key opens the whole
    // history, a page at a time, and Bob is still verified.
    tmux.restart(&url);
    tmux.wait_text("Ctrl-K security").await;
    tmux.wait_for("Bob's conversation, unread", |s| line_with(s, "● Bob").contains("Bob (")).await;
    tmux.select_in_list("● Bob").await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("Bob: page 60").await;
    tmux.wait_text("Bob: verified ✓").await;
    let deadline = tokio::time::Instant::now() + SCREEN_WAIT;
    loop {
        let screen = tmux.screen();
        assert!(!screen.contains('⚠'), "every page checks out:\n{screen}");
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
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_someone_who_never_opened_the_conversation_is_read_when_they_sign_in() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
    let url = server.url.clone();
    // Ann has an account (and a security key) but no client running.
    let ann = ann_without_a_client(&url).await;
    // Bob starts a conversation with her and writes: she has no key there yet, so his
    // client writes to her security key.
    let mut bob = Sdk::register(&url, "bob@example.org", "Bob").await;
    let private = bob.start_private(ann).await;
    bob.send(private, "read this when you are back").await;

    // Ann starts the terminal client and reads it.
    let tmux = Tmux::start(dir.path(), &url);
    log_in(&tmux, "ann@example.org").await;
    tmux.wait_for("Bob's conversation, unread", |s| line_with(s, "Bob").contains("Bob (1)")).await;
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("Bob: read this when you are back").await;
    assert!(!screen.contains("cannot be read") && !screen.contains('⚠'), "{screen}");
    // Her client published her key as it joined: her answer reaches Bob.
    tmux.type_text("I am back");
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: I am back").await;
    assert_eq!(bob.read_next(private, ann).await, "I am back");
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_cannot_be_sent_yet_stays_in_the_composer_until_it_can() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
    let url = server.url.clone();
    // Dave's account is from before security keys: registered by a client that made none.
    let derived = e2e::derive("dave@example.org", PASSWORD);
    let registered = client()
        .post(format!("{url}/auth/register"))
        .json(&json!({ "email": "dave@example.org", "password": derived.auth_secret, "display_name": "Dave" }))
        .send()
        .await
        .expect("register Dave");
    assert!(registered.status().is_success(), "{}", registered.status());
    let tmux = Tmux::start(dir.path(), &url);
    tmux.wait_text("Log in").await;
    tmux.keys(&["C-r"]);
    tmux.type_text("ann@example.org");
    tmux.keys(&["Tab"]);
    tmux.type_text(PASSWORD);
    tmux.keys(&["Enter"]);
    tmux.wait_text("signed in as ann <ann@example.org>").await;

    // Ann starts a conversation with Dave: nobody can write to him yet.
    tmux.keys(&["C-n"]);
    tmux.wait_text("[ ] Dave").await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("Message to Dave").await;
    tmux.wait_text("Dave: no security key yet").await;
    tmux.type_text("the door code is 4711");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("not sent: Dave cannot be written to until they sign in with a current client").await;
    assert!(!screen.contains("you: the door code"), "{screen}");
    assert!(line_with(&screen, "the door code is 4711").starts_with('│'), "back in the composer:\n{screen}");

    // Dave signs in with a current client, which publishes his security key: Ann's client
    // learns it, and the same text goes out with one more Enter.
    let mut dave = Sdk::login(&url, "dave@example.org").await;
    tmux.wait_text("Dave: not verified").await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: the door code is 4711").await;
    let conversation = dave.api.private_conversation_with(dave.user_id("ann@example.org").await).await;
    let conversation = conversation.expect("a conversation").expect("with Ann");
    let (page, _) = dave.join(conversation).await;
    let texts: Vec<_> = page.into_iter().map(|(_, opened)| opened.text).collect();
    assert_eq!(texts, [Ok("the door code is 4711".to_owned())]);
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_security_key_is_shown_and_blocks_sending_until_accepted() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
    let url = server.url.clone();
    let (ann, mut bob, private, tmux) = ann_reads_bob_in_the_terminal(dir.path(), &url, "hello from the old key").await;
    // Ann compares safety numbers and marks Bob verified.
    let before = bob.keyring.safety_number(ann).expect("a safety number");
    tmux.keys(&["C-k"]);
    wait_safety_number(&tmux, &before).await;
    tmux.keys(&["v"]);
    tmux.wait_text("Bob: verified ✓").await;
    tmux.keys(&["Escape"]);

    // Bob's security key is replaced (a new device key, or someone who took his account):
    // his client signs his conversation key with the new one as it joins.
    bob.api.replace_identity(PASSWORD).await.expect("replace Bob's identity");
    bob.keyring = bob.api.keyring(TrustStore::in_memory()).expect("the new identity");
    bob.join(private).await;
    // In the header, and loudly in the status line.
    tmux.wait_for("the change", |s| {
        s.contains("Bob: ⚠ security key changed (had been verified)") && s.contains("Bob had been verified")
    })
    .await;

    // Nothing is sent to him until Ann accepts the change; what she wrote stays.
    tmux.type_text("is this still you?");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("not sent: Bob's security key changed").await;
    assert!(!screen.contains("you: is this still you?"), "{screen}");
    assert!(line_with(&screen, "is this still you?").starts_with('│'), "back in the composer:\n{screen}");
    // The pane shows the new safety number; Ann accepts the new key.
    let changed = bob.keyring.safety_number(ann).expect("the new safety number");
    assert_ne!(changed, before, "a new security key, a new safety number");
    tmux.keys(&["C-k"]);
    wait_safety_number(&tmux, &changed).await;
    tmux.keys(&["a"]);
    tmux.wait_text("Bob: not verified").await;
    tmux.keys(&["Escape"]);
    tmux.wait_for("the pane closed", |s| !s.contains("Members and security keys")).await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: is this still you?").await;
    assert_eq!(bob.read_next(private, ann).await, "is this still you?");
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_key_that_does_not_open_is_replaced_when_the_person_asks() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
    let url = server.url.clone();
    // Ann's stored security key is one her password does not open: wrapped under another key,
    // as if someone with her password had replaced it from a client of their own.
    let (ann, token) = {
        let mut api = Client::new(&url).expect("client");
        api.register("ann@example.org", PASSWORD, Some("Ann"), Some("web")).await.expect("register");
        (api.identity().expect("signed in").user_id, api.access_token().await.expect("a token"))
    };
    let foreign = e2e::Identity::generate();
    let replaced = client()
        .put(format!("{url}/api/identity_key"))
        .bearer_auth(token.as_str())
        .json(&json!({
            "identity_key": foreign.public().to_json(),
            "identity_private_key": foreign.wrap(&e2e::WrapKey::from_bytes([7; 32]), ann),
            "password": e2e::derive("ann@example.org", PASSWORD).auth_secret,
        }))
        .send()
        .await
        .expect("replace Ann's identity");
    assert!(replaced.status().is_success(), "{}", replaced.status());

    // She signs in all the same, is told, and makes a new security key from the pane.
    let tmux = Tmux::start(dir.path(), &url);
    tmux.wait_text("Log in").await;
    tmux.type_text("ann@example.org");
    tmux.keys(&["Tab"]);
    tmux.type_text(PASSWORD);
    tmux.keys(&["Enter"]);
    tmux.wait_text("your security key does not open with this password").await;
    tmux.keys(&["C-k"]);
    tmux.wait_text("Press r to make a new one").await;
    tmux.keys(&["r"]);
    tmux.wait_text("you have a new security key").await;
    tmux.keys(&["Escape"]);
    tmux.wait_for("the pane closed", |s| !s.contains("Members and security keys")).await;

    // Bob writes to her new key, and her client opens it.
    let mut bob = Sdk::register(&url, "bob@example.org", "Bob").await;
    let private = bob.start_private(ann).await;
    bob.send(private, "hello to your new key").await;
    tmux.wait_for("Bob's conversation, unread", |s| line_with(s, "Bob").contains("Bob (1)")).await;
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("Bob: hello to your new key").await;
    assert!(!screen.contains('⚠'), "{screen}");
    tmux.type_text("it opens");
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: it opens").await;
    assert_eq!(bob.read_next(private, ann).await, "it opens");
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_key_that_does_not_open_is_replaced_when_the_person_asks() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
    let url = server.url.clone();
    let ann_sdk = Sdk::register(&url, "ann@example.org", "Ann").await;
    let ann = ann_sdk.id;
    let mut bob = Sdk::register(&url, "bob@example.org", "Bob").await;
    let private = bob.start_private(ann).await;
    // Ann's stored key for the conversation is signed by her, but wrapped under a key her
    // password does not make (as after a password reset).
    let pair = e2e::KeyPair::generate();
    let identity = ann_sdk.api.e2e_identity().expect("Ann's identity");
    let signed = e2e::sign_conversation_key(&identity, ann, private, &pair.public_jwk()).expect("sign");
    let wrapped = e2e::wrap_private_key(&e2e::WrapKey::from_bytes([7; 32]), private, &pair);
    ann_sdk.socket.join_conversation(private).await.expect("join");
    ann_sdk.socket.set_encryption_keys(private, &signed, &wrapped).await.expect("set the keys");
    drop(ann_sdk);
    let tmux = Tmux::start(dir.path(), &url);
    log_in(&tmux, "ann@example.org").await;
    tmux.wait_text("Bob").await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("⚠ your key for this conversation does not open").await;

    // Nothing can be sent there; what she wrote stays. A new key of hers (n) lets it go.
    tmux.type_text("new key, same me");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("not sent: your key for this conversation does not open").await;
    assert!(line_with(&screen, "new key, same me").starts_with('│'), "back in the composer:\n{screen}");
    tmux.keys(&["C-k"]);
    tmux.wait_text("press n to make a new one").await;
    tmux.keys(&["n"]);
    tmux.wait_text("you have a new key for Bob").await;
    tmux.keys(&["Escape"]);
    tmux.wait_for("the pane closed", |s| !s.contains("Members and security keys")).await;
    tmux.wait_text("Bob: not verified").await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: new key, same me").await;
    assert_eq!(bob.read_next(private, ann).await, "new key, same me");
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}
