//! Rooms in `hearth chat` (issue 25), driven in tmux like `chat.rs`: a public room made by
//! Bob (the SDK) is found and joined in the terminal, posts cross both ways, edits and
//! deletions show, the room is marked as not end-to-end encrypted in the list and in its
//! header, `@assistant` answers stream in from the fake provider; Ann makes rooms of her own
//! and leaves one; a post written while the server is away waits and goes out once. And the
//! sign-up form on servers that take new accounts by invitation (with a code made through the
//! admin API by `hearth admin`) or not at all.

use std::net::SocketAddr;
use std::path::Path;

use hearth_client::api::{ASSISTANT_ID, Visibility};
use hearth_client::channels::Incoming;
use hearth_fake_provider::FakeProvider;

use crate::admin::listed_admin_key;
use crate::chat::{PASSWORD, Sdk, Tmux, ann_without_a_client, line_with, log_in, server, server_with, stop};
use crate::harness::{self, Hearth, free_port};

/// Whether a row of the conversation list (`│›# name` or `│ # name`) shows the room `name`.
fn listed_room(screen: &str, name: &str) -> bool {
    screen.lines().any(|line| line.starts_with(&format!("│ # {name}")) || line.starts_with(&format!("│›# {name}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_meet_in_a_public_room_and_ask_the_assistant_in_the_terminal() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _fake) = server(dir.path()).await;
    let url = server.url.clone();

    // Bob makes a public room and says something there.
    let mut bob = Sdk::register(&url, "bob@example.org", "Bob").await;
    let lobby = bob.api.create_room("lobby", Some("say hello"), Visibility::Public).await.expect("make the room");
    bob.socket.join_room(lobby.id).await.expect("Bob joins its channel");
    bob.socket.post(lobby.id, "welcome to the lobby", None).await.expect("post");

    // Ann finds it in the terminal's rooms dialog and joins it.
    let ann = ann_without_a_client(&url).await;
    let tmux = Tmux::start(dir.path(), &url);
    log_in(&tmux, "ann@example.org").await;
    tmux.keys(&["C-r"]);
    tmux.wait_text("# lobby — say hello").await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("Bob: welcome to the lobby").await;
    let joined =
        bob.next("Ann joining", |i| matches!(i, Incoming::RoomMemberJoined { user_id, .. } if *user_id == ann));
    assert_eq!(joined.await, Incoming::RoomMemberJoined { room_id: lobby.id, user_id: ann });

    // Marked as not end-to-end encrypted: under the list's heading of rooms, and in the header.
    let screen = tmux.wait_text("not end-to-end encrypted · public room · 2 members").await;
    assert!(listed_room(&screen, "lobby"), "the room is in the list:\n{screen}");
    assert!(
        screen.lines().any(|line| line.starts_with("│ not end-to-end encrypted")),
        "the list's rooms are marked:\n{screen}"
    );

    // Posts cross both ways; typing shows.
    tmux.type_text("hi Bob, from the terminal");
    let typing = bob.next("Ann typing", |i| matches!(i, Incoming::RoomTyping { typing: true, .. })).await;
    assert_eq!(typing, Incoming::RoomTyping { room_id: lobby.id, user_id: ann, typing: true });
    tmux.keys(&["Enter"]);
    tmux.wait_text("you: hi Bob, from the terminal").await;
    let posted = bob.next("Ann's post", |i| matches!(i, Incoming::NewPost(post) if post.sender == ann)).await;
    let Incoming::NewPost(posted) = posted else { unreachable!("filtered") };
    assert_eq!(posted.text, "hi Bob, from the terminal");
    bob.socket.room_typing(lobby.id, true).await.expect("Bob types");
    tmux.wait_text("Bob is typing…").await;
    let reply = bob.socket.post(lobby.id, "hello Ann", None).await.expect("Bob posts");
    tmux.wait_text("Bob: hello Ann").await;

    // Bob edits his post, then deletes his first one: the terminal shows both.
    bob.socket.edit_post(lobby.id, reply.id, "hello Ann, welcome").await.expect("Bob edits");
    tmux.wait_text("Bob: hello Ann, welcome (edited)").await;
    let first = bob.api.room_messages(lobby.id, None).await.expect("history").items;
    let welcome = first.iter().find(|post| post.text == "welcome to the lobby").expect("Bob's first post");
    bob.socket.delete_post(lobby.id, welcome.id).await.expect("Bob deletes");
    tmux.wait_for("Bob's first post gone", |s| !s.contains("welcome to the lobby")).await;

    // Ann edits her post (↑, e) and deletes it (↑, d, y), as with messages.
    tmux.keys(&["Up"]);
    tmux.wait_text("your message: e edit").await;
    tmux.keys(&["e"]);
    tmux.wait_text("Editing your message").await;
    tmux.keys(&["C-u"]);
    tmux.type_text("hi Bob, edited in the terminal");
    tmux.keys(&["Enter"]);
    let edited = bob.next("Ann's edit", |i| matches!(i, Incoming::PostEdited(post) if post.id == posted.id)).await;
    let Incoming::PostEdited(edited) = edited else { unreachable!("filtered") };
    assert_eq!(edited.text, "hi Bob, edited in the terminal");
    tmux.wait_text("you: hi Bob, edited in the terminal (edited)").await;
    tmux.keys(&["Up"]);
    tmux.wait_text("your message: e edit").await;
    tmux.keys(&["d"]);
    tmux.wait_text("delete this message for everyone?").await;
    tmux.keys(&["y"]);
    let deleted = bob.next("Ann's deletion", |i| matches!(i, Incoming::PostDeleted { .. })).await;
    assert_eq!(deleted, Incoming::PostDeleted { room_id: lobby.id, message_id: posted.id });
    tmux.wait_for("Ann's post gone", |s| !s.contains("edited in the terminal")).await;

    // @assistant: the answer streams into the room, then stands as the assistant's post.
    tmux.type_text("@assistant what is a room");
    tmux.keys(&["Enter"]);
    tmux.wait_text("assistant: groq reply to: what is a room").await;
    tmux.wait_text("the assistant's reply streamed in").await;
    let answer = bob.next("the answer", |i| matches!(i, Incoming::NewPost(post) if post.sender == ASSISTANT_ID)).await;
    let Incoming::NewPost(answer) = answer else { unreachable!("filtered") };
    assert!(answer.text.contains("groq reply to: what is a room"), "{}", answer.text);

    // Ann makes a private room (Ctrl-P) that Bob cannot see, then a public one he finds.
    tmux.keys(&["C-r"]);
    tmux.wait_text("New room's name").await;
    tmux.keys(&["Tab"]);
    tmux.type_text("ann only");
    tmux.keys(&["C-p"]);
    tmux.wait_text("private (only the people you add)").await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("not end-to-end encrypted · private room · 1 member · you moderate it").await;
    tmux.keys(&["C-r"]);
    tmux.wait_text("New room's name").await;
    tmux.keys(&["Tab"]);
    tmux.type_text("terminal talk");
    tmux.keys(&["Enter"]);
    tmux.wait_text("Message to terminal talk").await;
    tmux.wait_text("not end-to-end encrypted · public room · 1 member · you moderate it").await;
    let listed = bob.api.rooms(None).await.expect("Bob lists the rooms").items;
    assert!(listed.iter().all(|room| room.name != "ann only"), "a private room is not listed to others");
    let talk = listed.iter().find(|room| room.name == "terminal talk").expect("the public room is listed");
    assert!(!talk.joined);
    bob.api.join_room(talk.id).await.expect("Bob joins");
    bob.socket.join_room(talk.id).await.expect("Bob joins its channel");
    tmux.wait_text("Bob joined terminal talk").await;
    let found = bob.socket.post(talk.id, "found it", None).await.expect("post");
    tmux.wait_text("Bob: found it").await;

    // Ann moderates this room: ↑ takes Bob's post too, which she deletes (↑, d, y).
    tmux.keys(&["Up"]);
    tmux.wait_text("a post in the room you moderate: d delete").await;
    tmux.keys(&["d"]);
    tmux.wait_text("delete Bob's post for everyone").await;
    tmux.keys(&["y"]);
    let removed = bob.next("Ann removing his post", |i| matches!(i, Incoming::PostDeleted { .. })).await;
    assert_eq!(removed, Incoming::PostDeleted { room_id: talk.id, message_id: found.id });
    tmux.wait_for("Bob's post gone", |s| !s.contains("found it")).await;

    // Ann leaves it (Ctrl-L, y): Bob sees her go, and it leaves her list.
    tmux.keys(&["C-l"]);
    tmux.wait_text("leave the room terminal talk?").await;
    tmux.keys(&["y"]);
    let left = bob.next("Ann leaving", |i| matches!(i, Incoming::RoomMemberLeft { .. })).await;
    assert_eq!(left, Incoming::RoomMemberLeft { room_id: talk.id, user_id: ann });
    let screen = tmux.wait_text("you left terminal talk").await;
    assert!(!listed_room(&screen, "terminal talk"), "{screen}");
    assert!(listed_room(&screen, "lobby") && listed_room(&screen, "ann only"), "{screen}");

    // Bob adds Ann to a private room of his: it comes into her list by itself (new_room).
    let corner = bob.api.create_room("bobs corner", None, Visibility::Private).await.expect("make the room");
    bob.api.add_room_members(corner.id, &[ann]).await.expect("Bob adds Ann");
    let screen = tmux.wait_for("the room Ann was added to", |s| listed_room(s, "bobs corner")).await;
    assert!(listed_room(&screen, "lobby"), "{screen}");

    // Bob, the lobby's moderator, leaves it: Ann, there longest after him, moderates it now.
    bob.api.leave_room(lobby.id).await.expect("Bob leaves the lobby");
    tmux.wait_text("you now moderate lobby").await;

    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_written_while_the_server_is_away_is_queued_and_goes_out_once() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeProvider::start().await.expect("start the fake provider");
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = server_with(dir.path(), &fake, listen).await;
    let url = server.url.clone();
    let bob = Sdk::register(&url, "bob@example.org", "Bob").await;
    let lobby = bob.api.create_room("lobby", None, Visibility::Public).await.expect("make the room");
    ann_without_a_client(&url).await;
    let tmux = Tmux::start(dir.path(), &url);
    log_in(&tmux, "ann@example.org").await;
    tmux.keys(&["C-r"]);
    tmux.wait_text("# lobby").await;
    tmux.keys(&["Enter"]);
    tmux.wait_text("Message to lobby").await;
    tmux.wait_text("● connected").await;

    stop(server).await;
    tmux.wait_for("the connection lost", |s| s.contains("◌ reconnecting…") || s.contains("✕ server unreachable")).await;
    tmux.type_text("posted while you were away");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("you: posted while you were away · queued").await;
    assert!(screen.contains("· 1 queued]"), "{screen}");

    // Back on the same port: the client reconnects, rejoins the room and posts what waited.
    let server = server_with(dir.path(), &fake, listen).await;
    tmux.wait_text("● connected").await;
    tmux.wait_for("the queued post sent", |s| {
        line_with(s, "you: posted while you were away").contains("· sent") && !s.contains("queued")
    })
    .await;
    let posts = bob.api.room_messages(lobby.id, None).await.expect("the room's history").items;
    let texts: Vec<&str> = posts.iter().map(|post| post.text.as_str()).collect();
    assert_eq!(texts, ["posted while you were away"], "stored once, however often it was tried");
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(server).await;
}

/// `hearth admin ARGS` with the configuration directory `config`.
async fn admin(dir: &Path, config: &Path, args: &[&str]) -> harness::Finished {
    let mut command = harness::hearth(dir);
    command.arg("admin").args(args).env("HEARTH_CONFIG_DIR", config);
    harness::run(command).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_up_form_takes_an_invite_code_or_says_sign_up_is_closed() {
    if Tmux::missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, signers) = listed_admin_key(dir.path());
    let env = [("HEARTH_ADMIN__ALLOWED_SIGNERS", signers.as_str()), ("HEARTH_ACCOUNTS__REGISTRATION", "invite")];
    let server = Hearth::start(dir.path(), &dir.path().join("data"), &env).await;
    let url = server.url.clone();

    // An administrator makes a code with `hearth admin`.
    let config = dir.path().join("admin-config");
    let key = key.to_str().expect("a UTF-8 path");
    let login = admin(dir.path(), &config, &["login", "--server", &url, "--key", key]).await;
    assert!(login.status.success(), "{login:?}");
    let made = admin(dir.path(), &config, &["invites", "create"]).await;
    assert!(made.status.success(), "{made:?}");
    let code = made.stdout.trim().to_owned();

    // The sign-up form asks for it; a wrong one gets the server's words.
    let tmux = Tmux::start(dir.path(), &url);
    tmux.wait_text("Log in").await;
    tmux.keys(&["C-r"]);
    tmux.wait_text("Invite code").await;
    tmux.type_text("ann@example.org");
    tmux.keys(&["Tab"]);
    tmux.type_text(PASSWORD);
    tmux.keys(&["Tab"]);
    tmux.type_text("Ann");
    tmux.keys(&["Enter"]);
    tmux.wait_text("this server signs people up by invitation: enter your invite code").await;
    tmux.type_text("made-up");
    tmux.keys(&["Enter"]);
    tmux.wait_text("This invite code is unknown, used up or expired: ask the server's administrators for another.")
        .await;
    // The password went with the attempt: typed again, with the right code.
    tmux.keys(&["C-u"]);
    tmux.type_text(&code);
    tmux.keys(&["Up", "Up"]);
    tmux.type_text(PASSWORD);
    tmux.keys(&["Enter"]);
    tmux.wait_text("signed in as Ann <ann@example.org>").await;
    let screen = tmux.screen();
    assert!(!screen.contains(&code), "the code is not left on the screen:\n{screen}");
    tmux.keys(&["Escape"]);
    tmux.wait_exit().await;
    drop(tmux);

    // Where sign-up is closed, the form says so before anything is sent.
    let closed_dir = dir.path().join("closed");
    std::fs::create_dir_all(&closed_dir).expect("a directory");
    let closed =
        Hearth::start(&closed_dir, &closed_dir.join("data"), &[("HEARTH_ACCOUNTS__REGISTRATION", "closed")]).await;
    let tmux = Tmux::start(&closed_dir, &closed.url);
    tmux.wait_text("Log in").await;
    tmux.keys(&["C-r"]);
    tmux.wait_text("Sign-up is closed on this server: Ctrl-R to log in.").await;
    let screen = tmux.screen();
    assert!(!screen.contains("Invite code"), "no code to ask for:\n{screen}");
    tmux.keys(&["C-c"]);
    tmux.wait_exit().await;
    drop(tmux);
    stop(closed).await;
    stop(server).await;
}
