//! Rooms through the SDK against the real server: the REST calls (create, list, join, add
//! members, leave, history pages, search), the `room:{id}` channel (join reply, posts with
//! their acknowledgement, edits, deletions, typing, read marks) and its pushes as typed
//! [`Incoming`] events; and signing up by the server's policy, with an invite code made
//! through the real admin API (an SSH key made with `ssh-keygen`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hearth_client::ClientError;
use hearth_client::api::{ASSISTANT_ID, Client, Registration, Visibility};
use hearth_client::channels::{Events, Incoming, Socket, room_topic};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

mod common;
use common::{PASSWORD, TestServer};

/// The longest wait for an event.
const WAIT: Duration = Duration::from_secs(10);

/// A signed-in person with a socket.
struct Person {
    id: Uuid,
    api: Client,
    socket: Socket,
    events: Events,
}

impl Person {
    async fn sign_up(server: &TestServer, email: &str) -> Self {
        let api = server.registered(email).await;
        let id = api.identity().expect("signed in").user_id;
        let token = api.access_token().await.expect("a token");
        let socket = Socket::connect(&server.base_url, &token).await.expect("connect");
        let events = socket.events();
        Self { id, api, socket, events }
    }

    /// The next hearth event for which `wanted` holds.
    async fn next(&mut self, what: &str, wanted: impl Fn(&Incoming) -> bool) -> Incoming {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
                .expect("the socket is open");
            if let Some(incoming) = Incoming::parse(&event)
                && wanted(&incoming)
            {
                return incoming;
            }
        }
    }
}

#[track_caller]
fn assert_api_error<T: std::fmt::Debug>(result: Result<T, ClientError>, status: StatusCode, code: &str) {
    match result {
        Err(ClientError::Api { status: got, code: got_code, .. }) => {
            assert_eq!((got, got_code.as_str()), (status, code))
        }
        other => panic!("expected a {status} {code} API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_find_join_and_talk_in_a_public_room() {
    let server = TestServer::spawn().await;
    let mut ann = Person::sign_up(&server, "ann@example.org").await;
    let mut bob = Person::sign_up(&server, "bob@example.org").await;

    let made = ann.api.create_room("general", Some("everything"), Visibility::Public).await.expect("create");
    assert_eq!((made.name.as_str(), made.topic.as_deref()), ("general", Some("everything")));
    assert!(made.joined && made.moderator);
    let invalid = ann.api.create_room("   ", None, Visibility::Public).await;
    assert_api_error(invalid, StatusCode::UNPROCESSABLE_ENTITY, "invalid");

    // Bob finds it among the public rooms, not joined; the channel refuses him until he joins.
    let listed = bob.api.rooms(None).await.expect("list");
    let found = listed.items.iter().find(|room| room.id == made.id).expect("the public room is listed");
    assert!(!found.joined && !found.moderator && found.visibility == Visibility::Public);
    assert!(bob.socket.join_room(made.id).await.is_err(), "not a member yet");
    let joined = bob.api.join_room(made.id).await.expect("join");
    assert!(joined.joined && !joined.moderator);

    let ann_view = ann.socket.join_room(made.id).await.expect("Ann joins the channel");
    assert_eq!(ann_view.room.id, made.id);
    let bob_view = bob.socket.join_room(made.id).await.expect("Bob joins the channel");
    let members: Vec<Uuid> = bob_view.members.iter().map(|member| member.user_id).collect();
    assert!(members.contains(&ann.id) && members.contains(&bob.id), "{members:?}");
    assert!(bob_view.members.iter().any(|member| member.user_id == ann.id && member.moderator));
    assert!(bob_view.messages.items.is_empty());

    // A post is acknowledged with itself, and pushed to every member; a resend under the same
    // client_msg_id is the same post.
    let post = ann.socket.post(made.id, "hello room", Some("ann-1")).await.expect("post");
    assert_eq!((post.sender, post.room_id, post.text.as_str()), (ann.id, made.id, "hello room"));
    let pushed = bob.next("new_post", |i| matches!(i, Incoming::NewPost(p) if p.id == post.id)).await;
    assert_eq!(pushed, Incoming::NewPost(post.clone()));
    let again = ann.socket.post(made.id, "hello room", Some("ann-1")).await.expect("resend");
    assert_eq!(again.id, post.id, "a resend is not stored twice");
    assert!(ann.socket.post(made.id, "   ", None).await.is_err(), "an empty post is refused");

    // Only the sender edits; the edit is pushed.
    assert!(bob.socket.edit_post(made.id, post.id, "not yours").await.is_err());
    let edited = ann.socket.edit_post(made.id, post.id, "hello, room").await.expect("edit");
    assert!(edited.edited());
    let pushed = bob.next("edit_post", |i| matches!(i, Incoming::PostEdited(p) if p.id == post.id)).await;
    let Incoming::PostEdited(pushed) = pushed else { unreachable!("filtered") };
    assert_eq!(pushed.text, "hello, room");

    // Typing and read marks reach the others.
    bob.socket.room_typing(made.id, true).await.expect("typing");
    let typing = ann.next("typing", |i| matches!(i, Incoming::RoomTyping { .. })).await;
    assert_eq!(typing, Incoming::RoomTyping { room_id: made.id, user_id: bob.id, typing: true });
    bob.socket.read_room(made.id).await.expect("read");
    let read = ann.next("read_room", |i| matches!(i, Incoming::RoomRead { .. })).await;
    assert!(
        matches!(read, Incoming::RoomRead { room_id, user_id, read_at: Some(_) } if room_id == made.id && user_id == bob.id)
    );

    // History pages and search see the posts; the assistant answers an empty mention itself.
    let bobs = bob.socket.post(made.id, "the weather is fine", None).await.expect("post");
    let asked = bob.socket.post(made.id, "@assistant", None).await.expect("mention");
    let answer =
        ann.next("the assistant's post", |i| matches!(i, Incoming::NewPost(p) if p.sender == ASSISTANT_ID)).await;
    let Incoming::NewPost(answer) = answer else { unreachable!("filtered") };
    assert!(answer.text.contains("@assistant <question>"), "{}", answer.text);
    let page = bob.api.room_messages(made.id, None).await.expect("history");
    let ids: Vec<Uuid> = page.items.iter().map(|post| post.id).collect();
    assert_eq!(ids, vec![answer.id, asked.id, bobs.id, post.id], "newest first");
    assert_eq!(page.page_token, None);
    let found = ann.api.search_room(made.id, "WEATHER").await.expect("search");
    assert_eq!(found.iter().map(|post| post.id).collect::<Vec<_>>(), vec![bobs.id]);
    assert_api_error(ann.api.search_room(made.id, "").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid");

    // A moderator deletes anyone's post; a member only their own.
    assert!(bob.socket.delete_post(made.id, post.id).await.is_err(), "not Bob's");
    ann.socket.delete_post(made.id, bobs.id).await.expect("the moderator deletes");
    let deleted = bob.next("delete_post", |i| matches!(i, Incoming::PostDeleted { .. })).await;
    assert_eq!(deleted, Incoming::PostDeleted { room_id: made.id, message_id: bobs.id });

    // Bob leaves: Ann hears it, his channel ends, and the history is closed to him.
    bob.api.leave_room(made.id).await.expect("leave");
    let left = ann.next("member_left", |i| matches!(i, Incoming::RoomMemberLeft { .. })).await;
    assert_eq!(left, Incoming::RoomMemberLeft { room_id: made.id, user_id: bob.id });
    let topic = room_topic(made.id);
    let closed = bob.next("phx_close", |i| matches!(i, Incoming::ChannelClosed { .. })).await;
    assert_eq!(closed, Incoming::ChannelClosed { topic });
    assert_api_error(bob.api.room_messages(made.id, None).await, StatusCode::FORBIDDEN, "not_a_member");
    assert_api_error(bob.api.leave_room(made.id).await, StatusCode::FORBIDDEN, "not_a_member");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_room_is_unseen_until_a_moderator_adds_someone() {
    let server = TestServer::spawn().await;
    let mut ann = Person::sign_up(&server, "ann@example.org").await;
    let cy = Person::sign_up(&server, "cy@example.org").await;
    let room = ann.api.create_room("secret plans", None, Visibility::Private).await.expect("create");
    ann.socket.join_room(room.id).await.expect("join the channel");

    assert!(cy.api.rooms(None).await.expect("list").items.iter().all(|listed| listed.id != room.id));
    assert_api_error(cy.api.join_room(room.id).await, StatusCode::NOT_FOUND, "not_found");
    assert_api_error(cy.api.room_messages(room.id, None).await, StatusCode::NOT_FOUND, "not_found");
    assert_api_error(cy.api.add_room_members(room.id, &[cy.id]).await, StatusCode::NOT_FOUND, "not_found");

    let added = ann.api.add_room_members(room.id, &[cy.id, ann.id]).await.expect("add");
    assert_eq!(added, vec![cy.id], "Ann was a member already");
    let joined = ann.next("member_joined", |i| matches!(i, Incoming::RoomMemberJoined { .. })).await;
    assert_eq!(joined, Incoming::RoomMemberJoined { room_id: room.id, user_id: cy.id });
    let listed = cy.api.rooms(None).await.expect("list");
    assert!(listed.items.iter().any(|listed| listed.id == room.id && listed.joined && !listed.moderator));
    cy.socket.join_room(room.id).await.expect("Cy joins the channel");
    assert_api_error(cy.api.add_room_members(room.id, &[ann.id]).await, StatusCode::FORBIDDEN, "not_a_moderator");
}

/// An ed25519 key made by `ssh-keygen` in `dir`: the private key's path and its public line.
fn ssh_key(dir: &Path) -> (std::path::PathBuf, String) {
    let key = dir.join("admin");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "admin", "-f"])
        .arg(&key)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen (package openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("the public key");
    (key, public)
}

/// `ssh-keygen -Y sign -n hearth-admin` over `text`: the armored signature.
fn sign(key: &Path, text: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "hearth-admin", "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ssh-keygen -Y sign");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write the challenge");
    let output = child.wait_with_output().expect("ssh-keygen -Y sign");
    assert!(output.status.success(), "ssh-keygen -Y sign: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("an armored signature")
}

/// An invite code for one sign-up, made by an administrator through the admin API.
async fn invite_code(server: &TestServer, key: &Path) -> String {
    let http = reqwest::Client::new();
    let at = |path: &str| format!("{}{path}", server.base_url);
    let post = |path: &str, body: Value| http.post(at(path)).json(&body).send();
    let challenge: Value = post("/admin/challenge", json!({})).await.expect("challenge").json().await.expect("JSON");
    let challenge = challenge["challenge"].as_str().expect("a challenge").to_owned();
    let signature = sign(key, &challenge);
    let session: Value = post("/admin/session", json!({ "challenge": challenge, "signature": signature }))
        .await
        .expect("admin session")
        .error_for_status()
        .expect("signed in as an administrator")
        .json()
        .await
        .expect("JSON");
    let token = session["admin_token"].as_str().expect("an admin token");
    let invite: Value = http
        .post(at("/admin/invites"))
        .bearer_auth(token)
        .json(&json!({ "uses": 1 }))
        .send()
        .await
        .expect("make an invite")
        .error_for_status()
        .expect("an invite")
        .json()
        .await
        .expect("JSON");
    invite["code"].as_str().expect("a code").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_follows_the_servers_policy_and_takes_an_invite_code() {
    use hearth_server::settings::Registration as Policy;

    let open = TestServer::spawn().await;
    assert_eq!(open.client().registration().await.expect("policy"), Registration::Open);

    let closed = TestServer::spawn_with(|settings| settings.accounts.registration = Policy::Closed).await;
    let mut client = closed.client();
    assert_eq!(client.registration().await.expect("policy"), Registration::Closed);
    let refused = client.register_with_invite("ann@example.org", PASSWORD, None, None, Some("whatever")).await;
    assert_api_error(refused, StatusCode::FORBIDDEN, "registration_closed");

    let keys = tempfile::tempdir().expect("a directory for the key");
    let (key, public) = ssh_key(keys.path());
    let signers = keys.path().join("admin_keys");
    std::fs::write(&signers, public).expect("list the administrator");
    let invited = TestServer::spawn_with(|settings| {
        settings.accounts.registration = Policy::Invite;
        settings.admin.allowed_signers = Some(signers.clone());
    })
    .await;
    let mut client = invited.client();
    assert_eq!(client.registration().await.expect("policy"), Registration::Invite);
    assert_api_error(
        client.register("ann@example.org", PASSWORD, None, None).await,
        StatusCode::FORBIDDEN,
        "invite_required",
    );
    let made_up = client.register_with_invite("ann@example.org", PASSWORD, None, None, Some("made-up")).await;
    assert_api_error(made_up, StatusCode::FORBIDDEN, "invalid_invite");
    let code = invite_code(&invited, &key).await;
    let signed_in = client
        .register_with_invite("ann@example.org", PASSWORD, Some("Ann"), None, Some(&code))
        .await
        .expect("an invited sign-up");
    assert_eq!(signed_in.user.display_name, "Ann");
    let mut second = invited.client();
    let spent = second.register_with_invite("bob@example.org", PASSWORD, None, None, Some(&code)).await;
    assert_api_error(spent, StatusCode::FORBIDDEN, "invalid_invite");
}
