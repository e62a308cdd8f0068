//! Seed 002's topics and events over a real socket, three users at once: starting
//! conversations, keys (sealed at rest), sending, editing and deleting (each recipient gets
//! only their copy), typing, reading, aliases, members, leaving, and every refusal.

use serde_json::{Value, json};

use crate::harness::{Session, TestApp, spawn_app};
use crate::socket_client::{Client, connect, next_json, reply_to, send};

/// A connected user with a counter for refs.
pub(crate) struct Peer {
    pub(crate) id: String,
    pub(crate) socket: Client,
    next_ref: u64,
}

impl Peer {
    pub(crate) async fn connect(app: &TestApp, session: &Session) -> Self {
        let socket = connect(app, &session.auth_token).await.expect("accepted");
        let mut peer = Self { id: session.user_id.clone(), socket, next_ref: 0 };
        let user_topic = format!("user:{}", peer.id);
        assert_eq!(peer.call(&user_topic, "phx_join", json!({})).await["status"], "ok");
        assert_eq!(peer.call("system:general", "phx_join", json!({})).await["status"], "ok");
        peer
    }

    /// Sends an event and returns its reply's payload (skipping pushes that arrive first).
    async fn call(&mut self, topic: &str, event: &str, payload: Value) -> Value {
        self.next_ref += 1;
        let r = self.next_ref.to_string();
        let join_ref = if event == "phx_join" { json!(r) } else { Value::Null };
        let frame = json!([join_ref, r, topic, event, payload]);
        send(&mut self.socket, frame).await;
        reply_to(&mut self.socket, &r).await[4].clone()
    }

    /// Joins `topic` (or sends another payload-less event) and returns the reply's status.
    pub(crate) async fn call_status(&mut self, topic: &str, event: &str) -> String {
        self.call(topic, event, json!({})).await["status"].as_str().expect("a status").to_owned()
    }

    pub(crate) async fn ok(&mut self, topic: &str, event: &str, payload: Value) -> Value {
        let reply = self.call(topic, event, payload).await;
        assert_eq!(reply["status"], "ok", "{event}: {reply}");
        reply["response"].clone()
    }

    pub(crate) async fn refused(&mut self, topic: &str, event: &str, payload: Value) -> String {
        let reply = self.call(topic, event, payload).await;
        assert_eq!(reply["status"], "error", "{event} should be refused: {reply}");
        reply["response"]["reason"].as_str().expect("a reason").to_owned()
    }

    /// Starts a private conversation with `other`, this peer's keys being `jwk(key_owner)` and
    /// `private_key`; returns the conversation's id.
    pub(crate) async fn start_private(&mut self, other: &str, key_owner: &str, private_key: Value) -> String {
        let payload = json!({"other_user_id": other, "public_key": jwk(key_owner), "private_key": private_key});
        let started = self.ok("system:general", "start_private_conversation", payload).await;
        started["conversation"]["id"].as_str().expect("id").to_owned()
    }

    /// Waits for a push of `event` on `topic`; returns its payload.
    pub(crate) async fn expect(&mut self, topic: &str, event: &str) -> Value {
        loop {
            let frame = next_json(&mut self.socket).await;
            if frame[2] == topic && frame[3] == event {
                return frame[4].clone();
            }
        }
    }
}

pub(crate) fn jwk(owner: &str) -> Value {
    json!({ "kty": "EC", "crv": "P-256", "x": format!("x-of-{owner}"), "y": format!("y-of-{owner}") })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_talk_by_the_rules() {
    let app = spawn_app().await;
    let (ann_s, bob_s, carol_s) = (
        app.register("ann@example.org").await,
        app.register("bob@example.org").await,
        app.register("carol@example.org").await,
    );
    let mut ann = Peer::connect(&app, &ann_s).await;
    let mut bob = Peer::connect(&app, &bob_s).await;
    let mut carol = Peer::connect(&app, &carol_s).await;
    let (ann_user, bob_user, carol_user) =
        (format!("user:{}", ann.id), format!("user:{}", bob.id), format!("user:{}", carol.id));

    // A private conversation; its private key is a canary that must be sealed at rest.
    let private_key_canary = "ann-private-key-canary-7f3a9";
    let started = ann
        .ok(
            "system:general",
            "start_private_conversation",
            json!({
                "other_user_id": bob.id, "public_key": jwk("ann"), "private_key": {"wrapped": private_key_canary}
            }),
        )
        .await;
    let conversation_id = started["conversation"]["id"].as_str().expect("id").to_owned();
    assert_eq!(started["conversation"]["private"], true);
    let topic = format!("conversation:{conversation_id}");
    let announced = bob.expect(&bob_user, "new_conversation").await;
    assert_eq!(announced["conversation"]["id"], json!(conversation_id));
    assert_eq!(announced["user_ids"].as_array().map(Vec::len), Some(2));
    ann.expect(&ann_user, "new_conversation").await;
    let again = ann
        .refused(
            "system:general",
            "start_private_conversation",
            json!({"other_user_id": bob.id, "public_key": {}, "private_key": {}}),
        )
        .await;
    assert!(again.contains("already exists"), "{again}");
    let myself = ann
        .refused(
            "system:general",
            "start_private_conversation",
            json!({"other_user_id": ann.id, "public_key": {}, "private_key": {}}),
        )
        .await;
    assert!(!myself.is_empty());

    // Joining: members only; the join payload has the keys and the member's own private key.
    let joined = ann.ok(&topic, "phx_join", json!({})).await;
    assert_eq!(joined["private_key"], json!({"wrapped": private_key_canary}));
    assert_eq!(joined["public_keys"][&ann.id], jwk("ann"));
    assert_eq!(joined["messages"], json!({"items": [], "page_token": null}));
    assert!(joined["read_times"].as_object().is_some_and(|r| r.len() == 2));
    assert_eq!(carol.refused(&topic, "phx_join", json!({})).await, "conversation not found");
    let bob_joined = bob.ok(&topic, "phx_join", json!({})).await;
    assert_eq!(bob_joined["private_key"], Value::Null, "bob has not set keys yet");
    bob.ok(&topic, "set_encryption_keys", json!({"public_key": jwk("bob"), "private_key": {"wrapped": "bob"}})).await;
    let keys = ann.expect(&topic, "set_encryption_keys").await;
    assert_eq!(keys, json!({"user_id": bob.id, "public_key": jwk("bob")}));

    // Sending: exactly the members, each receives only their own copy, on their user topic.
    let sent = ann
        .ok(
            &topic,
            "send_message",
            json!({"encrypted_messages": {ann.id.clone(): "for ann", bob.id.clone(): "for bob"}}),
        )
        .await;
    let group = sent["message"]["message_group"].as_str().expect("group").to_owned();
    assert_eq!(sent["message"]["content"], "for ann");
    let delivered = bob.expect(&bob_user, "new_message").await;
    assert_eq!(delivered["conversation_id"], json!(conversation_id));
    assert_eq!(delivered["message"]["content"], "for bob");
    assert_eq!(delivered["message"]["sender"], json!(ann.id));
    assert_eq!(ann.expect(&ann_user, "new_message").await["message"]["content"], "for ann");
    let missing = ann.refused(&topic, "send_message", json!({"encrypted_messages": {ann.id.clone(): "x"}})).await;
    assert!(missing.contains("exactly"), "{missing}");
    let extra = json!({"encrypted_messages": {ann.id.clone(): "x", bob.id.clone(): "y", carol.id.clone(): "z"}});
    assert!(ann.refused(&topic, "send_message", extra).await.contains("exactly"));
    let too_big = json!({"encrypted_messages": {ann.id.clone(): "x".repeat(65 * 1024), bob.id.clone(): "y"}});
    assert!(ann.refused(&topic, "send_message", too_big).await.contains("at most"));
    let malformed = ann.refused(&topic, "send_message", json!({"encrypted_messages": "nope"})).await;
    assert!(malformed.starts_with("invalid payload"), "{malformed}");

    // Idempotent resend: one message, one delivery.
    let payload =
        json!({"client_msg_id": "c-1", "encrypted_messages": {ann.id.clone(): "again a", bob.id.clone(): "again b"}});
    let first = ann.ok(&topic, "send_message", payload.clone()).await;
    let second = ann.ok(&topic, "send_message", payload).await;
    assert_eq!(first["message"]["id"], second["message"]["id"]);
    assert_eq!(bob.expect(&bob_user, "new_message").await["message"]["content"], "again b");

    // Edit and delete: the sender only.
    let edit = json!({"message_group_id": group, "encrypted_messages": {ann.id.clone(): "edited a", bob.id.clone(): "edited b"}});
    assert_eq!(bob.refused(&topic, "edit_message", edit.clone()).await, "not found");
    ann.ok(&topic, "edit_message", edit).await;
    let edited = bob.expect(&bob_user, "edit_message").await;
    assert_eq!(
        (edited["message"]["content"].clone(), edited["message"]["message_group"].clone()),
        (json!("edited b"), json!(group))
    );
    assert_eq!(bob.refused(&topic, "delete_message", json!({"message_group_id": group})).await, "not found");

    // Typing and reading are broadcast on the conversation.
    ann.ok(&topic, "start_typing", json!({})).await;
    assert_eq!(bob.expect(&topic, "start_typing").await, json!({"user_id": ann.id}));
    ann.ok(&topic, "finish_typing", json!({})).await;
    assert_eq!(bob.expect(&topic, "finish_typing").await, json!({"user_id": ann.id}));
    bob.ok(&topic, "read_conversation", json!({})).await;
    assert_eq!(ann.expect(&topic, "read_conversation").await["user_id"], json!(bob.id));

    // Private conversations: no alias, no new members, no leaving.
    assert!(!ann.refused(&topic, "change_alias", json!({"alias": "x"})).await.is_empty());
    assert!(!ann.refused(&topic, "modify_conversation", json!({"new_members": [carol.id]})).await.is_empty());
    assert!(!ann.refused(&topic, "leave_conversation", json!({})).await.is_empty());
    assert!(ann.refused(&topic, "no_such_event", json!({})).await.contains("unknown event"));

    ann.ok(&topic, "delete_message", json!({"message_group_id": group})).await;
    assert_eq!(bob.expect(&topic, "delete_message").await, json!({"message_group_id": group}));
    let history = app.get_authed(&format!("/api/messages?conversation_id={conversation_id}"), &bob_s.auth_token).await;
    let items = history.expect_status(reqwest::StatusCode::OK)["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1, "the deleted message is gone, the resend remains");
    assert_eq!(items[0]["content"], "again b");

    // A group: alias, adding a member, leaving.
    let group_started = ann
        .ok(
            "system:general",
            "start_group_conversation",
            json!({
                "user_ids": [bob.id], "public_key": jwk("ann"), "private_key": {"wrapped": "g"}, "alias": "Team"
            }),
        )
        .await;
    let group_id = group_started["conversation"]["id"].as_str().expect("id").to_owned();
    assert_eq!(group_started["conversation"]["alias"], "Team");
    let group_topic = format!("conversation:{group_id}");
    bob.expect(&bob_user, "new_conversation").await;
    ann.ok(&group_topic, "phx_join", json!({})).await;
    bob.ok(&group_topic, "phx_join", json!({})).await;
    ann.ok(&group_topic, "change_alias", json!({"alias": "Team 2"})).await;
    assert_eq!(bob.expect(&group_topic, "update_alias").await["alias"], "Team 2");
    let long_alias = ann.refused(&group_topic, "change_alias", json!({"alias": "a".repeat(101)})).await;
    assert!(long_alias.contains("100"), "{long_alias}");
    ann.ok(&group_topic, "modify_conversation", json!({"new_members": [carol.id]})).await;
    let added = carol.expect(&carol_user, "new_conversation").await;
    assert_eq!(added["user_ids"].as_array().map(Vec::len), Some(3));
    carol.ok(&group_topic, "phx_join", json!({})).await;
    let two = json!({"encrypted_messages": {ann.id.clone(): "a", bob.id.clone(): "b"}});
    assert!(ann.refused(&group_topic, "send_message", two).await.contains("exactly"), "carol must be included now");
    bob.ok(&group_topic, "leave_conversation", json!({})).await;
    assert_eq!(ann.expect(&group_topic, "leave_conversation").await, json!({"user_id": bob.id}));
    assert_eq!(bob.expect(&group_topic, "phx_close").await, json!({}));
    let after_leave = json!({"encrypted_messages": {ann.id.clone(): "a", carol.id.clone(): "c"}});
    ann.ok(&group_topic, "send_message", after_leave).await;
    assert_eq!(carol.expect(&carol_user, "new_message").await["message"]["content"], "c");

    // Renaming oneself is broadcast to everyone on system:general.
    carol.ok("system:general", "set_display_name", json!({"display_name": "Caroline"})).await;
    assert_eq!(
        ann.expect("system:general", "set_display_name").await,
        json!({"user_id": carol.id, "display_name": "Caroline"})
    );
    assert!(!carol.refused("system:general", "set_display_name", json!({"display_name": ""})).await.is_empty());
    let hidden = carol.call("system:general", "set_hidden", json!({"hidden": true})).await;
    assert_eq!(hidden, json!({"status": "ok", "response": "message_sent"}));

    // The session reply now lists conversations and the people in them.
    let relogin = app.login_ok(&ann_s.email, crate::harness::PASSWORD).await;
    assert_eq!(relogin.body["conversations"].as_array().map(Vec::len), Some(2));
    assert_eq!(relogin.body["users"].as_array().map(Vec::len), Some(2), "bob and carol");

    // At rest, the private key is sealed: the database files do not contain it.
    crate::harness::assert_no_file_contains(&app, private_key_canary);
}

/// Ann, Bob and Carol in a group, and Carol in a private conversation with Ann; every channel
/// joined. Returns the peers, the group's topic and the private conversation's topic.
async fn a_group_and_a_private_conversation(app: &TestApp) -> ([Peer; 3], [Session; 3], String, String) {
    let sessions = [
        app.register("ann@example.org").await,
        app.register("bob@example.org").await,
        app.register("carol@example.org").await,
    ];
    let mut ann = Peer::connect(app, &sessions[0]).await;
    let mut bob = Peer::connect(app, &sessions[1]).await;
    let mut carol = Peer::connect(app, &sessions[2]).await;
    let payload = json!({
        "user_ids": [bob.id, carol.id], "public_key": jwk("ann"), "private_key": {"wrapped": "g"}, "alias": "Team"
    });
    let started = ann.ok("system:general", "start_group_conversation", payload).await;
    let group_topic = format!("conversation:{}", started["conversation"]["id"].as_str().expect("id"));
    let private_id = ann.start_private(&carol.id, "ann", json!({"wrapped": "p"})).await;
    let private_topic = format!("conversation:{private_id}");
    for peer in [&mut ann, &mut bob, &mut carol] {
        peer.ok(&group_topic, "phx_join", json!({})).await;
    }
    ann.ok(&private_topic, "phx_join", json!({})).await;
    carol.ok(&private_topic, "phx_join", json!({})).await;
    ([ann, bob, carol], sessions, group_topic, private_topic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_left_a_group_cannot_edit_or_delete_their_messages_there_through_another_channel() {
    let app = spawn_app().await;
    let ([ann, bob, mut carol], sessions, group_topic, private_topic) = a_group_and_a_private_conversation(&app).await;
    let everyone = json!({"encrypted_messages": {ann.id.clone(): "a", bob.id.clone(): "b", carol.id.clone(): "c"}});
    let sent = carol.ok(&group_topic, "send_message", everyone).await;
    let group = sent["message"]["message_group"].as_str().expect("group").to_owned();
    carol.ok(&group_topic, "leave_conversation", json!({})).await;

    // Still a member of the private conversation, Carol sends through its channel.
    let rewrite = json!({"message_group_id": group, "encrypted_messages": {ann.id.clone(): "x", bob.id.clone(): "y"}});
    assert_eq!(carol.refused(&private_topic, "edit_message", rewrite).await, "not found");
    assert_eq!(carol.refused(&private_topic, "delete_message", json!({"message_group_id": group})).await, "not found");

    let group_id = group_topic.trim_start_matches("conversation:");
    let history = app.get_authed(&format!("/api/messages?conversation_id={group_id}"), &sessions[0].auth_token).await;
    let items = history.expect_status(reqwest::StatusCode::OK)["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["content"], "a", "the message is as it was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_ends_the_conversation_on_every_socket_of_the_member() {
    let app = spawn_app().await;
    let ([mut ann, mut bob, mut carol], _, group_topic, _) = a_group_and_a_private_conversation(&app).await;
    // Carol's second device, also on the group's channel.
    let phone_session = app.login_ok("carol@example.org", crate::harness::PASSWORD).await;
    let mut phone = Peer::connect(&app, &phone_session).await;
    phone.ok(&group_topic, "phx_join", json!({})).await;

    carol.ok(&group_topic, "leave_conversation", json!({})).await;
    assert_eq!(carol.expect(&group_topic, "phx_close").await, json!({}));
    assert_eq!(phone.expect(&group_topic, "phx_close").await, json!({}));

    // What the group says next reaches neither of her sockets. A message to Carol's user topic
    // sent afterwards is the marker: pushes reach a socket in the order they were published.
    ann.ok(&group_topic, "change_alias", json!({"alias": "Without Carol"})).await;
    // Bob, still a member, hears it.
    assert_eq!(bob.expect(&group_topic, "update_alias").await["alias"], "Without Carol");
    ann.ok(&group_topic, "start_typing", json!({})).await;
    bob.ok(&group_topic, "set_encryption_keys", json!({"public_key": jwk("bob-2"), "private_key": {"w": "b2"}})).await;
    ann.ok("system:general", "set_display_name", json!({"display_name": "Ann (marker)"})).await;
    for peer in [&mut carol, &mut phone] {
        loop {
            let frame = crate::socket_client::next_json(&mut peer.socket).await;
            assert_ne!(frame[2], json!(group_topic), "a push of a conversation she left: {frame}");
            if frame[2] == "system:general" && frame[3] == "set_display_name" {
                break;
            }
        }
    }
}

/// The client may choose a new conversation's id, so that it wraps its private key for the real
/// id before the conversation exists (no provisional id): the conversation gets exactly that id
/// and the creator's key under it. An id in use or the nil UUID is refused and starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_choose_a_new_conversations_id_but_not_one_in_use_or_the_nil_one() {
    let app = spawn_app().await;
    let (ann_s, bob_s) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let mut ann = Peer::connect(&app, &ann_s).await;
    let mut bob = Peer::connect(&app, &bob_s).await;

    let chosen = uuid::Uuid::now_v7().to_string();
    let wrapped = json!({"wrapped_for": chosen});
    let group = json!({
        "user_ids": [bob.id], "public_key": jwk("ann"), "private_key": wrapped, "conversation_id": chosen
    });
    let started = ann.ok("system:general", "start_group_conversation", group.clone()).await;
    assert_eq!(started["conversation"]["id"], json!(chosen));
    let announced = bob.expect(&format!("user:{}", bob.id), "new_conversation").await;
    assert_eq!(announced["conversation"]["id"], json!(chosen));
    let joined = ann.ok(&format!("conversation:{chosen}"), "phx_join", json!({})).await;
    assert_eq!(joined["private_key"], wrapped, "the creator's key is kept under the chosen id");

    // The same id again, for a group or a private conversation: refused, nothing started.
    let again = ann.call("system:general", "start_group_conversation", group).await;
    assert_eq!(again["response"]["error"], "conversation_id_taken", "{again}");
    let private = json!({
        "other_user_id": bob.id, "public_key": jwk("ann"), "private_key": {}, "conversation_id": chosen
    });
    let again = ann.call("system:general", "start_private_conversation", private).await;
    assert_eq!(again["response"]["error"], "conversation_id_taken", "{again}");
    let nil = json!({
        "other_user_id": bob.id, "public_key": jwk("ann"), "private_key": {},
        "conversation_id": uuid::Uuid::nil().to_string()
    });
    let refused = ann.call("system:general", "start_private_conversation", nil).await;
    assert_eq!(refused["response"]["error"], "invalid_conversation_id", "{refused}");
    let listed = app.get_authed("/api/conversations", &ann_s.auth_token).await;
    assert_eq!(listed.json["items"].as_array().map(Vec::len), Some(1), "only the group was started");
}

/// The sender's client may choose a message's group id (it puts the id inside the encrypted
/// message, docs/e2e.md): the group gets exactly that id. An id in use is refused with
/// `message_id_taken` and nothing is stored, the nil UUID with `invalid_message_id`; a resend
/// with the same `client_msg_id` is still the first send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_choose_a_messages_group_id_but_not_one_in_use_or_the_nil_one() {
    let app = spawn_app().await;
    let (ann_s, bob_s) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let mut ann = Peer::connect(&app, &ann_s).await;
    let mut bob = Peer::connect(&app, &bob_s).await;
    let conversation = ann.start_private(&bob.id, "ann", json!("v1.ann")).await;
    let topic = format!("conversation:{conversation}");
    ann.ok(&topic, "phx_join", json!({})).await;
    bob.ok(&topic, "phx_join", json!({})).await;
    let (ann_id, bob_id) = (ann.id.clone(), bob.id.clone());
    let copies =
        |tag: &str| json!({ann_id.clone(): format!("{tag} for ann"), bob_id.clone(): format!("{tag} for bob")});

    let chosen = uuid::Uuid::now_v7().to_string();
    let first = json!({"encrypted_messages": copies("first"), "client_msg_id": "c-1", "message_group_id": chosen});
    let sent = ann.ok(&topic, "send_message", first.clone()).await;
    assert_eq!(sent["message"]["message_group"], json!(chosen));
    let delivered = bob.expect(&format!("user:{bob_id}"), "new_message").await;
    assert_eq!(delivered["message"]["message_group"], json!(chosen));

    // A resend is the first send again, delivered once.
    let resent = ann.ok(&topic, "send_message", first).await;
    assert_eq!(resent["message"], sent["message"]);

    // The id in use, by another sender or without the client id: refused, nothing stored.
    let by_bob = json!({"encrypted_messages": copies("bob"), "message_group_id": chosen});
    let refused = bob.call(&topic, "send_message", by_bob).await;
    assert_eq!(refused["status"], "error", "{refused}");
    assert_eq!(refused["response"]["error"], "message_id_taken", "{refused}");
    let again = json!({"encrypted_messages": copies("again"), "message_group_id": chosen});
    assert_eq!(ann.call(&topic, "send_message", again).await["response"]["error"], "message_id_taken");
    let nil = json!({"encrypted_messages": copies("nil"), "message_group_id": uuid::Uuid::nil().to_string()});
    let refused = ann.call(&topic, "send_message", nil).await;
    assert_eq!(refused["response"]["error"], "invalid_message_id", "{refused}");
    let malformed = json!({"encrypted_messages": copies("bad"), "message_group_id": "not-a-uuid"});
    assert_eq!(ann.call(&topic, "send_message", malformed).await["response"]["error"], "invalid");
    let history = app.get_authed(&format!("/api/messages?conversation_id={conversation}"), &bob_s.auth_token).await;
    let items = history.expect_status(reqwest::StatusCode::OK)["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1, "only the first send was stored: {items:?}");
    assert_eq!(items[0]["content"], "first for bob");

    // Edits and deletes name the group by the chosen id.
    let edit = json!({"message_group_id": chosen, "encrypted_messages": copies("edited")});
    ann.ok(&topic, "edit_message", edit).await;
    ann.ok(&topic, "delete_message", json!({"message_group_id": chosen})).await;
    // A fresh id goes through; the largest id there is does not make it the newest for ever.
    let largest = uuid::Uuid::max().to_string();
    let sent = ann
        .ok(&topic, "send_message", json!({"encrypted_messages": copies("fresh"), "message_group_id": largest}))
        .await;
    assert_eq!(sent["message"]["message_group"], json!(largest));
    ann.ok(&topic, "send_message", json!({"encrypted_messages": copies("later")})).await;
    let history = app.get_authed(&format!("/api/messages?conversation_id={conversation}"), &bob_s.auth_token).await;
    let items = history.expect_status(reqwest::StatusCode::OK)["items"].as_array().expect("items").clone();
    let contents: Vec<&str> = items.iter().map(|item| item["content"].as_str().expect("content")).collect();
    assert_eq!(contents, ["later for bob", "fresh for bob"], "newest first, in the order they were sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_says_what_it_received_and_the_sender_sees_it_delivered_then_read() {
    let app = spawn_app().await;
    let ([mut ann, mut bob, mut carol], _sessions, group_topic, private_topic) =
        a_group_and_a_private_conversation(&app).await;
    let (group_id, private_id) =
        (group_topic.trim_start_matches("conversation:"), private_topic.trim_start_matches("conversation:"));
    let bob_user = format!("user:{}", bob.id);
    let everyone = json!({"encrypted_messages": {ann.id.clone(): "a", bob.id.clone(): "b", carol.id.clone(): "c"}});
    let sent = ann.ok(&group_topic, "send_message", everyone).await;
    let inserted_at = sent["message"]["inserted_at"].as_str().expect("inserted_at").to_owned();
    bob.expect(&bob_user, "new_message").await;

    // Bob's device received it: the members joined to the conversation hear when.
    let none = ann.ok(&group_topic, "phx_join", json!({})).await;
    assert_eq!(none["delivered_times"][&bob.id], Value::Null, "nothing received yet: {none}");
    assert_eq!(bob.ok(&bob_user, "delivered_conversation", json!({"conversation_id": group_id})).await, json!({}));
    let receipt = ann.expect(&group_topic, "delivered_conversation").await;
    assert_eq!(receipt["user_id"], json!(bob.id));
    let delivered_at = receipt["delivered_at"].as_str().expect("delivered_at").to_owned();
    assert!(delivered_at >= inserted_at, "{delivered_at} < {inserted_at}");
    let joined = ann.ok(&group_topic, "phx_join", json!({})).await;
    assert_eq!(joined["delivered_times"][&bob.id], json!(delivered_at));
    assert_eq!(joined["delivered_times"][&carol.id], Value::Null);
    assert_eq!(joined["read_times"][&bob.id], Value::Null, "received is not read");

    // Reading implies receiving: Carol's read moves her delivery time too.
    carol.ok(&group_topic, "read_conversation", json!({})).await;
    let read_at = ann.expect(&group_topic, "read_conversation").await["read_at"].clone();
    let joined = ann.ok(&group_topic, "phx_join", json!({})).await;
    assert_eq!(joined["delivered_times"][&carol.id], read_at);

    // Only for one's own conversations, with a conversation id, on one's own topic.
    let refused = bob.refused(&bob_user, "delivered_conversation", json!({"conversation_id": private_id})).await;
    assert_eq!(refused, "you are not a member of this conversation");
    let unknown = uuid::Uuid::now_v7().to_string();
    let refused = bob.refused(&bob_user, "delivered_conversation", json!({"conversation_id": unknown})).await;
    assert_eq!(refused, "you are not a member of this conversation");
    let refused = bob.refused(&bob_user, "delivered_conversation", json!({"conversation_id": "nope"})).await;
    assert!(refused.starts_with("invalid payload"), "{refused}");
    assert!(bob.refused(&bob_user, "delivered_conversation", json!({})).await.starts_with("invalid payload"));
    assert!(bob.refused(&bob_user, "no_such_event", json!({})).await.contains("unknown event"));
    let joined = carol.ok(&private_topic, "phx_join", json!({})).await;
    assert!(joined["delivered_times"].as_object().is_some_and(|times| !times.contains_key(&bob.id)));
}
