//! `hearth chat` keeps what the person has (issue 24 §6), driven in tmux as in `chat.rs`: the
//! session between runs, text written while the server is away, their own messages to edit
//! or delete, the receipts of their messages, the assistant's links and images, and plain
//! words for what goes wrong. "Disconnected" is real: the test's server is stopped and
//! started again on the same port and data directory.

use std::net::SocketAddr;
use std::path::Path;

use hearth_client::api::Client;
use hearth_client::channels::Incoming;
use hearth_fake_provider::FakeProvider;

use crate::chat::{
    PASSWORD, Sdk, Tmux, ann_reads_bob_in_the_terminal, ann_without_a_client, line_with, log_in, server, server_with,
    stop,
};
use crate::harness::{BIN, free_port, hearth, run};

/// The kept session's file of the server at `url` (`http://127.0.0.1:PORT`).
fn session_file(tmux: &Tmux, url: &str) -> std::path::PathBuf {
    let host_port = url.trim_start_matches("http://").replace(':', "_");
    tmux.config_dir.join("sessions").join(format!("{host_port}.json"))
}

/// `hearth chat --logout` for the server at `url`, with the tmux client's configuration
/// directory: what it printed.
async fn logout(tmux: &Tmux, url: &str) -> String {
    let mut command = hearth(Path::new("."));
    command.env("HEARTH_CONFIG_DIR", &tmux.config_dir).args(["chat", "--logout", "--server", url]);
    let finished = run(command).await;
    assert!(finished.status.success(), "--logout failed: {}{}", finished.stdout, finished.stderr);
    finished.stdout
}

/// The names of `api`'s account's signed-in devices.
async fn device_names(api: &Client) -> Vec<String> {
    let mut names: Vec<String> = api.devices().await.expect("devices").into_iter().map(|d| d.name).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_is_kept_on_one_device_until_logout_and_an_ended_one_asks_to_sign_in() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
    let url = server.url.clone();
    let tmux = Tmux::start(dir.path(), &url);
    tmux.wait_text("Log in").await;
    tmux.keys(&["C-r"]);
    tmux.type_text("ann@example.org");
    tmux.keys(&["Tab"]);
    tmux.type_text(PASSWORD);
    tmux.keys(&["Enter"]);
    tmux.wait_text("signed in as").await;
    tmux.wait_text("● connected").await;

    // The session is in a file only Ann can read; nothing of it is on the screen.
    let file = session_file(&tmux, &url);
    let kept = std::fs::read_to_string(&file).expect("the kept session");
    let stored: serde_json::Value = serde_json::from_str(&kept).expect("JSON");
    let token = stored["refresh_token"].as_str().expect("a refresh token").to_owned();
    assert!(!tmux.screen().contains(&token));
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    }
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;

    // While she is away Bob writes; started again, the client is signed in at once (no
    // password) and opens his message with the kept key.
    let mut bob = Sdk::register(&url, "bob@example.org", "Bob").await;
    let ann = bob.user_id("ann@example.org").await;
    let private = bob.start_private(ann).await;
    bob.send(private, "are you still there?").await;
    tmux.restart(&url);
    tmux.wait_text("Ctrl-K security").await;
    tmux.wait_for("Bob's conversation, unread", |s| line_with(s, "Bob").contains("Bob (1)")).await;
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("Bob: are you still there?").await;
    assert!(!screen.contains("cannot be read") && !screen.contains("Log in"), "{screen}");
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    // The refresh token was used once and replaced in the file.
    let kept = std::fs::read_to_string(&file).expect("the kept session");
    assert!(!kept.contains(&token), "the newest refresh token is kept");

    // Two runs, one device.
    let mut ann_sdk = Client::new(&url).expect("client");
    ann_sdk.login("ann@example.org", PASSWORD, Some("sdk")).await.expect("log in");
    assert_eq!(device_names(&ann_sdk).await, ["hearth chat", "sdk"]);

    // --logout signs that device out and forgets the session; the next run asks to sign in.
    let said = logout(&tmux, &url).await;
    assert!(said.contains("signed out of"), "{said}");
    assert!(!file.exists(), "the kept session is removed");
    assert_eq!(device_names(&ann_sdk).await, ["sdk"]);
    tmux.restart(&url);
    tmux.wait_text("Log in").await;
    log_in(&tmux, "ann@example.org").await;
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;

    // A kept session that ended elsewhere (this device signed out from the SDK) falls back to
    // the sign-in form, saying so.
    let devices = ann_sdk.devices().await.expect("devices");
    let terminal = devices.iter().find(|device| device.name == "hearth chat").expect("the terminal's device");
    ann_sdk.revoke_device(terminal.id).await.expect("sign the terminal out");
    tmux.restart(&url);
    let screen = tmux.wait_text("your kept session has ended").await;
    assert!(screen.contains("Log in"), "{screen}");
    assert!(!file.exists(), "the ended session is forgotten");
    let said = logout(&tmux, &url).await;
    assert!(said.contains("no session kept"), "{said}");
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_sent_while_the_server_is_away_is_queued_and_goes_out_when_it_is_back() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeProvider::start().await.expect("start the fake provider");
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = server_with(dir.path(), &fake, listen).await;
    let url = server.url.clone();
    let (_, mut bob, private, tmux) = ann_reads_bob_in_the_terminal(dir.path(), &url, "ping").await;
    tmux.wait_text("● connected").await;

    // The server goes away: the status line says so.
    stop(server).await;
    tmux.wait_for("the connection lost", |s| s.contains("◌ reconnecting…") || s.contains("✕ server unreachable")).await;
    // What Ann sends now is shown as queued.
    tmux.type_text("written while you were away");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("you: written while you were away · queued").await;
    assert!(screen.contains("· 1 queued]"), "{screen}");
    // Esc does not quit while something is typed.
    tmux.type_text("a draft");
    tmux.keys(&["Escape"]);
    tmux.wait_text("Esc does not quit while you have typed text").await;
    tmux.keys(&["C-u"]);
    // Quitting with a queued message asks first; n stays.
    tmux.keys(&["Escape"]);
    tmux.wait_text("1 message is not sent yet and would be lost: quit anyway?").await;
    tmux.keys(&["n"]);
    tmux.wait_for("the question gone", |s| !s.contains("quit anyway?")).await;

    // The server is back on the same port: the client reconnects and sends what waited.
    let server = server_with(dir.path(), &fake, listen).await;
    tmux.wait_text("● connected").await;
    tmux.wait_for("the queued message sent", |s| {
        line_with(s, "you: written while you were away").contains("· sent") && !s.contains("queued")
    })
    .await;
    // Bob's own socket reconnects on its own backoff, which may end after the terminal's: his
    // calls are refused as `Reconnecting` until then.
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while bob.socket.is_reconnecting() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("Bob's socket back within 30 s");
    // Bob has it once, however often it was tried.
    let (page, _) = bob.join(private).await;
    let texts: Vec<_> = page.into_iter().filter_map(|(_, opened)| opened.text.ok()).collect();
    assert_eq!(texts, ["ping", "written while you were away"]);
    // Bob reads the conversation: Ann's message shows as read.
    bob.socket.read_conversation(private).await.expect("Bob reads");
    tmux.wait_for("read", |s| line_with(s, "you: written while you were away").contains("· read")).await;
    // Nothing queued any more: Esc quits without asking.
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;

    // Started while the server is away, the client says so in words and keeps trying with
    // the kept session; it is in as soon as the server is back.
    stop(server).await;
    tmux.restart(&url);
    let screen = tmux.wait_text("server unreachable: nothing answers at").await;
    assert!(screen.contains("trying again") && screen.contains("✕ server unreachable"), "{screen}");
    let server = server_with(dir.path(), &fake, listen).await;
    tmux.wait_text("● connected").await;
    tmux.wait_text("Ctrl-K security").await;
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_messages_are_edited_and_deleted_for_everyone() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
    let url = server.url.clone();
    let (ann, mut bob, private, tmux) = ann_reads_bob_in_the_terminal(dir.path(), &url, "hi").await;
    tmux.type_text("helo Bob");
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: helo Bob · sent").await;
    assert_eq!(bob.read_next(private, ann).await, "helo Bob");

    // Up (with nothing typed) chooses her last message; e puts it in the composer.
    tmux.keys(&["Up"]);
    tmux.wait_text("your message: e edit · d delete").await;
    tmux.keys(&["e"]);
    tmux.wait_text("Editing your message (Enter saves, Esc cancels)").await;
    tmux.keys(&["Home", "Right", "Right"]);
    tmux.type_text("l");
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: hello Bob (edited)").await;
    let edited = bob.next("the edit", |i| matches!(i, Incoming::EditMessage(d) if d.conversation_id == private)).await;
    let Incoming::EditMessage(edited) = edited else { unreachable!("filtered") };
    let opened = bob.keyring.open(private, &edited.message);
    assert_eq!(opened.text.as_deref(), Ok("hello Bob"));

    // d asks first; n keeps it, y deletes it for everyone.
    tmux.keys(&["Up"]);
    tmux.wait_text("your message: e edit · d delete").await;
    tmux.keys(&["d"]);
    tmux.wait_text("delete this message for everyone?").await;
    tmux.keys(&["n"]);
    tmux.wait_for("kept", |s| !s.contains("delete this message")).await;
    assert!(tmux.screen().contains("you: hello Bob (edited)"));
    tmux.keys(&["Up", "d"]);
    tmux.wait_text("delete this message for everyone?").await;
    tmux.keys(&["y"]);
    tmux.wait_for("deleted", |s| !s.contains("hello Bob") && s.contains("Bob: hi")).await;
    let deleted = bob
        .next(
            "the deletion",
            |i| matches!(i, Incoming::DeleteMessage { conversation_id, .. } if *conversation_id == private),
        )
        .await;
    assert!(
        matches!(deleted, Incoming::DeleteMessage { message_group_id, .. } if message_group_id == edited.message.message_group)
    );
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configure_link_is_one_clickable_line_and_images_are_saved_with_the_token() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
    let url = server.url.clone();
    let tmux = Tmux::start(dir.path(), &url);
    // Everything the client writes to its terminal, escape sequences included.
    let output = dir.path().join("pane-output");
    tmux.run(&["pipe-pane", "-O", "-t", "chat", &format!("cat >> '{}'", output.display())]);
    tmux.wait_text("Log in").await;
    tmux.keys(&["C-r"]);
    tmux.type_text("ann@example.org");
    tmux.keys(&["Tab"]);
    tmux.type_text(PASSWORD);
    tmux.keys(&["Enter"]);
    tmux.wait_text("signed in as").await;
    tmux.keys(&["C-a"]);
    tmux.wait_text("Message to Assistant").await;
    tmux.type_text("/configure");
    tmux.keys(&["Enter"]);
    let prefix = format!("{url}/configure/");
    let screen = tmux.wait_text(&prefix[..prefix.len() - 4]).await;
    // On one line of its own (shortened in the middle to fit the pane)…
    let shown = line_with(&screen, "/configure/").trim_matches(|c| c == '│' || c == ' ');
    assert!(shown.starts_with(&url) && !shown.contains(' '), "{screen}");
    // …and a hyperlink (OSC 8) to the whole address.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let link = loop {
        let written = String::from_utf8_lossy(&std::fs::read(&output).unwrap_or_default()).into_owned();
        if let Some(start) = written.find(&format!("\u{1b}]8;;{prefix}")) {
            let rest = &written[start + 5..];
            if let Some(end) = rest.find("\u{1b}\\") {
                break rest[..end].to_owned();
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no OSC 8 hyperlink to {prefix}…:\n{written:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let token = link.trim_start_matches(&prefix);
    assert_eq!(token.len(), 64 + 1 + 36, "the whole link: {link}");
    let page = crate::harness::client().get(&link).send().await.expect("the link opens");
    assert!(page.status().is_success(), "{}", page.status());

    // An image: saved where the screen says, the server's own bytes, fetched with the token.
    tmux.type_text("/image a lighthouse");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("image saved to ").await;
    let images = tmux.config_dir.join("images");
    let saved: Vec<_> = std::fs::read_dir(&images).expect("the images directory").flatten().collect();
    assert_eq!(saved.len(), 1, "{screen}");
    let path = saved[0].path();
    assert!(screen.replace(['│', '\n'], "").contains(&*images.to_string_lossy()), "{screen}");
    let bytes = std::fs::read(&path).expect("the image");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let id = path.file_stem().and_then(|stem| stem.to_str()).expect("named by its id");
    let mut api = Client::new(&url).expect("client");
    api.login("ann@example.org", PASSWORD, Some("sdk")).await.expect("log in");
    let (_, served) = api.assistant_image(id.parse().expect("a uuid")).await.expect("the image");
    assert_eq!(served, bytes);
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_shows_only_the_clients_options_and_an_unreachable_server_is_said_in_words() {
    let help = run({
        let mut command = hearth(Path::new("."));
        command.args(["chat", "--help"]);
        command
    })
    .await;
    assert!(help.status.success(), "{}", help.stderr);
    for own in ["--server", "--config-dir", "--logout"] {
        assert!(help.stdout.contains(own), "{own}:\n{}", help.stdout);
    }
    for other in ["--config ", "--config <", "--listen", "--data-dir", "--database-url"] {
        assert!(!help.stdout.contains(other), "{other}:\n{}", help.stdout);
    }
    assert!(BIN.ends_with("hearth"));
    if Tmux::missing() {
        return;
    }
    // Nothing listens on this port.
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("http://127.0.0.1:{}", free_port());
    let tmux = Tmux::start(dir.path(), &url);
    tmux.wait_text("Log in").await;
    tmux.type_text("ann@example.org");
    tmux.keys(&["Tab"]);
    tmux.type_text(PASSWORD);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("server unreachable: nothing answers at").await;
    assert!(screen.contains(&url) && !screen.contains("transport error"), "{screen}");
    // Esc does not quit the form with something typed in it; Ctrl-C does.
    tmux.keys(&["Escape"]);
    tmux.wait_text("Esc does not quit while something is typed").await;
    tmux.keys(&["C-c"]);
    tmux.wait_exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_show_as_sent_then_delivered_then_read_and_the_client_says_what_it_received() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
    let url = server.url.clone();
    // Ann and Carol have accounts, and no client running.
    let mut registered = Vec::new();
    for (email, name) in [("ann@example.org", "Ann"), ("carol@example.org", "Carol")] {
        let mut api = Client::new(&url).expect("client");
        api.register(email, PASSWORD, Some(name), Some("web")).await.expect("register");
        registered.push(api.identity().expect("signed in").user_id);
    }
    let (ann, carol) = (registered[0], registered[1]);
    let mut bob = Sdk::register(&url, "bob@example.org", "Bob").await;
    let private = bob.start_private(ann).await;
    bob.send(private, "hello Ann").await;

    // Ann's client says, as she signs in, that it received Bob's message; opening it reads it.
    let tmux = Tmux::start(dir.path(), &url);
    log_in(&tmux, "ann@example.org").await;
    let delivered = bob
        .next("Ann's delivery receipt", |i| matches!(i, Incoming::Delivered { user_id, .. } if *user_id == ann))
        .await;
    assert!(matches!(delivered, Incoming::Delivered { conversation_id, .. } if conversation_id == private));
    tmux.wait_for("Bob's conversation", |s| line_with(s, "Bob").contains("Bob (1)")).await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("Bob: hello Ann").await;
    bob.next("Ann read it", |i| matches!(i, Incoming::Read { user_id, .. } if *user_id == ann)).await;

    // Ann's answer: sent; delivered once Bob's device has it; read once he reads it.
    tmux.type_text("hello Bob");
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: hello Bob · sent").await;
    assert_eq!(bob.read_next(private, ann).await, "hello Bob");
    bob.socket.delivered_conversation(bob.id, private).await.expect("Bob's device has it");
    tmux.wait_text("you: hello Bob · delivered").await;
    bob.socket.read_conversation(private).await.expect("Bob reads");
    tmux.wait_text("you: hello Bob · read").await;
    // A message from Bob while the conversation is open: received and read at once.
    bob.send(private, "are you there?").await;
    tmux.wait_text("Bob: are you there?").await;
    bob.next("Ann's receipt", |i| matches!(i, Incoming::Delivered { user_id, .. } if *user_id == ann)).await;

    // A group with Carol, who has not signed in since she registered: partial states say
    // how many, and who.
    let keys = bob.keyring.start_conversation().expect("keys");
    bob.socket
        .start_group_conversation(
            keys.conversation_id,
            &[ann, carol],
            Some("Team"),
            &keys.public_key,
            &keys.private_key,
        )
        .await
        .expect("start the group");
    let team = keys.conversation_id;
    bob.join(team).await;
    tmux.wait_text("Team").await;
    // The newest conversation is at the top of the list.
    tmux.keys(&["Tab", "Up", "Up"]);
    tmux.wait_for("Team highlighted", |s| line_with(s, "Team").starts_with("│›")).await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("Message to Team").await;
    tmux.type_text("team meeting?");
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: team meeting? · sent").await;
    bob.socket.delivered_conversation(bob.id, team).await.expect("Bob's device has it");
    tmux.wait_text("you: team meeting? · delivered to 1 of 2").await;
    let mut carol_sdk = Sdk::login(&url, "carol@example.org").await;
    carol_sdk.join(team).await;
    carol_sdk.socket.read_conversation(team).await.expect("Carol reads");
    tmux.wait_text("you: team meeting? · read by Carol").await;
    bob.socket.read_conversation(team).await.expect("Bob reads");
    let screen = tmux
        .wait_for("read by everyone", |s| {
            let line = line_with(s, "you: team meeting?");
            line.contains("· read") && !line.contains("read by")
        })
        .await;
    assert!(!screen.contains("waiting for"), "{screen}");
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_people_picker_shows_only_contacts_addresses_and_finds_people_by_name_or_exact_address() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
    let url = server.url.clone();
    let ann = ann_without_a_client(&url).await;
    // Bob shares a conversation with Ann; Dave does not.
    let mut bob = Sdk::register(&url, "bob@example.org", "Bob").await;
    bob.start_private(ann).await;
    let mut dave = Client::new(&url).expect("client");
    dave.register("dave@example.org", PASSWORD, Some("Dave"), Some("web")).await.expect("register Dave");
    let tmux = Tmux::start(dir.path(), &url);
    log_in(&tmux, "ann@example.org").await;
    tmux.keys(&["C-n"]);
    let screen = tmux.wait_text("Bob <bob@example.org>").await;
    assert!(
        screen.contains("Dave") && !screen.contains("dave@example.org"),
        "a stranger's address is not shown:\n{screen}"
    );
    // By part of the name…
    tmux.type_text("av");
    let screen = tmux.wait_for("Dave only", |s| s.contains("[ ] Dave") && !s.contains("[ ] Bob")).await;
    assert!(!screen.contains("dave@example.org"), "{screen}");
    // …or by the exact address, which then shows.
    tmux.keys(&["C-u"]);
    tmux.type_text("DAVE@example.org");
    tmux.wait_text("[ ] Dave <dave@example.org>").await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("Message to Dave").await;
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}
