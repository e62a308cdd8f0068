//! The channel client against the real server, in-process: the whole end-to-end encrypted
//! path (docs/phoenix.md and docs/ARCHITECTURE.md) with only the SDK, and how refusals and closes surface.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hearth_client::api::Client;
use hearth_client::channels::{
    self, ChannelError, DeliveredMessage, Events, Incoming, NewConversation, Presence, SYSTEM_TOPIC, Socket,
    SocketOptions,
};
use hearth_client::e2e::{self, KeyPair};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

mod common;
use common::{PASSWORD, TestServer};

/// The longest wait for an event that should arrive.
const WAIT: Duration = Duration::from_secs(10);

/// The payload of the next `event` on `topic`, skipping other events.
async fn next_event(events: &mut Events, topic: &str, event: &str) -> Value {
    let wanted = async {
        loop {
            let incoming = events.recv().await.expect("the socket is open");
            if incoming.topic == topic && incoming.event == event {
                return incoming.payload;
            }
        }
    };
    tokio::time::timeout(WAIT, wanted).await.unwrap_or_else(|_| panic!("no {event} on {topic} within {WAIT:?}"))
}

/// A registered user with a connected socket (on a session of its own).
struct Person {
    id: Uuid,
    api: Client,
    socket: Socket,
    events: Events,
    /// Who this person sees online, kept up to date by [`Person::next`].
    presence: Presence,
}

/// Ann, Bob and Cy, signed up, each on their own user topic and system:general.
async fn three_people(server: &TestServer) -> [Person; 3] {
    let people = [
        Person::sign_up(server, "ann@example.org").await,
        Person::sign_up(server, "bob@example.org").await,
        Person::sign_up(server, "cy@example.org").await,
    ];
    for person in &people {
        person.join_own_topics().await;
    }
    people
}

impl Person {
    async fn sign_up(server: &TestServer, email: &str) -> Self {
        let api = server.registered(email).await;
        let id = api.identity().expect("signed in").user_id;
        let socket = Socket::connect(&server.base_url, &server.access_token(email).await).await.expect("connect");
        let events = socket.events();
        Self { id, api, socket, events, presence: Presence::new() }
    }

    fn wrap_key(&self) -> &e2e::WrapKey {
        self.api.wrap_key().expect("a wrap key")
    }

    /// Joins `user:{own id}` and `system:general`.
    async fn join_own_topics(&self) {
        self.socket.join(&channels::user_topic(self.id), json!({})).await.expect("joins the user topic");
        self.socket.join(SYSTEM_TOPIC, json!({})).await.expect("joins system:general");
    }

    /// The next hearth event for which `wanted` holds, within [`WAIT`]; every presence event
    /// on the way updates [`Person::presence`].
    async fn next(&mut self, what: &str, wanted: impl Fn(&Incoming) -> bool) -> Incoming {
        let (events, presence) = (&mut self.events, &mut self.presence);
        let found = async {
            loop {
                let event = events.recv().await.expect("the socket is open");
                presence.apply(&event);
                if let Some(incoming) = Incoming::parse(&event).filter(|incoming| wanted(incoming)) {
                    return incoming;
                }
            }
        };
        tokio::time::timeout(WAIT, found).await.unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
    }

    /// Waits (at most [`WAIT`]) until exactly `users` are shown online to this person.
    async fn sees_exactly(&mut self, users: &[Uuid]) {
        let mut expected = users.to_vec();
        expected.sort();
        let (events, presence) = (&mut self.events, &mut self.presence);
        let seen = async {
            while presence.online() != expected {
                let event = events.recv().await.expect("the socket is open");
                presence.apply(&event);
            }
        };
        if tokio::time::timeout(WAIT, seen).await.is_err() {
            panic!("expected to see {expected:?} online, saw {:?}", self.presence.online());
        }
    }

    /// Each member's copy of `text` from this person, encrypted with `pair`.
    fn copies(&self, pair: &KeyPair, id: Uuid, keys: &BTreeMap<Uuid, String>, text: &str) -> BTreeMap<Uuid, String> {
        keys.iter()
            .map(|(member, key)| (*member, e2e::encrypt(pair, self.id, key, *member, id, text).expect("encrypt")))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ann_and_bob_exchange_an_end_to_end_encrypted_message_through_the_sdk() {
    let server = TestServer::spawn().await;
    let mut ann = Person::sign_up(&server, "ann@example.org").await;
    let mut bob = Person::sign_up(&server, "bob@example.org").await;
    ann.socket.join(&channels::user_topic(ann.id), json!({})).await.expect("ann joins her user topic");
    ann.socket.join(SYSTEM_TOPIC, json!({})).await.expect("ann joins system:general");
    bob.socket.join(&channels::user_topic(bob.id), json!({})).await.expect("bob joins his user topic");

    // Ann starts the conversation under an id she chose, so her key is wrapped for it from
    // the start.
    let ann_pair = KeyPair::generate();
    let chosen = Uuid::now_v7();
    let first_wrap = e2e::wrap_private_key(ann.wrap_key(), chosen, &ann_pair);
    let started = ann
        .socket
        .start_private_conversation(chosen, bob.id, &ann_pair.public_jwk(), &first_wrap)
        .await
        .expect("started");
    let id = started.conversation.id;
    assert_eq!(id, chosen);
    assert!(started.conversation.private);
    assert_eq!(started.user_ids.len(), 2);
    assert!(started.user_ids.contains(&ann.id) && started.user_ids.contains(&bob.id));
    let topic = channels::conversation_topic(id);
    ann.socket.join_conversation(id).await.expect("ann joins the conversation");
    let ann_wrapped = e2e::wrap_private_key(ann.wrap_key(), id, &ann_pair);
    ann.socket.set_encryption_keys(id, &ann_pair.public_jwk(), &ann_wrapped).await.expect("ann's keys");

    // Bob learns of it on his user topic, joins, and sets his own keys.
    let announced: NewConversation =
        serde_json::from_value(next_event(&mut bob.events, &channels::user_topic(bob.id), "new_conversation").await)
            .expect("a new conversation");
    assert_eq!(announced, started);
    let bob_joined = bob.socket.join_conversation(id).await.expect("bob joins the conversation");
    assert_eq!(bob_joined.private_key, None, "bob has no keys yet");
    assert_eq!(bob_joined.public_keys.get(&ann.id), Some(&ann_pair.public_jwk()));
    let bob_pair = KeyPair::generate();
    let bob_wrapped = e2e::wrap_private_key(bob.wrap_key(), id, &bob_pair);
    bob.socket.set_encryption_keys(id, &bob_pair.public_jwk(), &bob_wrapped).await.expect("bob's keys");
    // Ann hears of Bob's keys (after her own).
    let mut keys_event = next_event(&mut ann.events, &topic, "set_encryption_keys").await;
    if keys_event["user_id"] == json!(ann.id) {
        keys_event = next_event(&mut ann.events, &topic, "set_encryption_keys").await;
    }
    assert_eq!(keys_event, json!({ "user_id": bob.id, "public_key": bob_pair.public_jwk() }));

    // Ann joins again: everyone's public keys and her own private key, which only her wrap
    // key opens.
    let ann_joined = ann.socket.join_conversation(id).await.expect("ann joins again");
    assert_eq!(ann_joined.conversation.id, id);
    assert_eq!(ann_joined.public_keys.len(), 2);
    let wrapped = ann_joined.private_key.as_deref().expect("ann's private key");
    let unwrapped = e2e::unwrap_private_key(ann.wrap_key(), id, wrapped).expect("ann's key unwraps");
    assert_eq!(unwrapped.public_jwk(), ann_pair.public_jwk());
    assert!(e2e::unwrap_private_key(bob.wrap_key(), id, wrapped).is_err(), "bob's wrap key does not open it");

    let plaintext = "Hello Bob <script>alert(1)</script> — ça va? 🔐";
    let encrypted: BTreeMap<Uuid, String> = ann_joined
        .public_keys
        .iter()
        .map(|(member, public_jwk)| {
            let content = e2e::encrypt(&unwrapped, ann.id, public_jwk, *member, id, plaintext).expect("encrypt");
            (*member, content)
        })
        .collect();
    let sent = ann.socket.send_message(id, None, &encrypted).await.expect("sent");
    assert_eq!((sent.sender, &sent.content), (ann.id, &encrypted[&ann.id]));

    // Bob's copy arrives on his user topic and only his key opens it.
    let delivered: DeliveredMessage =
        serde_json::from_value(next_event(&mut bob.events, &channels::user_topic(bob.id), "new_message").await)
            .expect("a delivered message");
    assert_eq!((delivered.conversation_id, delivered.message.sender), (id, ann.id));
    assert_eq!(delivered.message.message_group, sent.message_group);
    let ann_public = &bob_joined.public_keys[&ann.id];
    let read = e2e::decrypt(&bob_pair, bob.id, ann_public, ann.id, id, &delivered.message.content).expect("decrypt");
    assert_eq!(read, plaintext);
    // Ann's own copy reaches her user topic too, readable with her key.
    let own: DeliveredMessage =
        serde_json::from_value(next_event(&mut ann.events, &channels::user_topic(ann.id), "new_message").await)
            .expect("her own copy");
    let own_text = e2e::decrypt(&unwrapped, ann.id, &ann_pair.public_jwk(), ann.id, id, &own.message.content);
    assert_eq!(own_text.expect("decrypt"), plaintext);
    // The REST history holds the same ciphertext.
    let history = bob.api.messages(id, None).await.expect("history");
    assert_eq!(history.items, vec![delivered.message.clone()]);

    // Typing and reading reach the other member; only the sender edits and deletes.
    bob.socket.typing(id, true).await.expect("bob types");
    assert_eq!(next_event(&mut ann.events, &topic, "start_typing").await, json!({ "user_id": bob.id }));
    bob.socket.delivered_conversation(bob.id, id).await.expect("bob's device received it");
    let receipt = next_event(&mut ann.events, &topic, "delivered_conversation").await;
    assert_eq!(receipt["user_id"], json!(bob.id));
    bob.socket.read_conversation(id).await.expect("bob reads");
    assert_eq!(next_event(&mut ann.events, &topic, "read_conversation").await["user_id"], json!(bob.id));
    let edited_text = "Hello Bob (edited)";
    let edited: BTreeMap<Uuid, String> = ann_joined
        .public_keys
        .iter()
        .map(|(member, public_jwk)| {
            (*member, e2e::encrypt(&unwrapped, ann.id, public_jwk, *member, id, edited_text).expect("encrypt"))
        })
        .collect();
    let refused = bob.socket.edit_message(id, sent.message_group, &edited).await;
    assert!(matches!(refused, Err(ChannelError::Refused { .. })), "{refused:?}");
    ann.socket.edit_message(id, sent.message_group, &edited).await.expect("ann edits");
    let edit = next_event(&mut bob.events, &channels::user_topic(bob.id), "edit_message").await;
    let content = edit["message"]["content"].as_str().expect("the new ciphertext");
    let read = e2e::decrypt(&bob_pair, bob.id, ann_public, ann.id, id, content).expect("decrypt the edit");
    assert_eq!(read, edited_text);
    assert!(bob.socket.delete_message(id, sent.message_group).await.is_err(), "only the sender deletes");
    ann.socket.delete_message(id, sent.message_group).await.expect("ann deletes");
    let deleted = next_event(&mut bob.events, &channels::user_topic(bob.id), "delete_message").await;
    assert_eq!(deleted["message_group_id"], json!(sent.message_group));
    assert!(bob.api.messages(id, None).await.expect("history").items.is_empty());
    // Ann's user topic has her copies of the edit and the delete as well; drop them.
    next_event(&mut ann.events, &channels::user_topic(ann.id), "delete_message").await;

    // One more message, kept: Ann reads it again after changing her password.
    let kept: BTreeMap<Uuid, String> = ann_joined
        .public_keys
        .iter()
        .map(|(member, public_jwk)| {
            (*member, e2e::encrypt(&unwrapped, ann.id, public_jwk, *member, id, "kept for later").expect("encrypt"))
        })
        .collect();
    ann.socket.send_message(id, None, &kept).await.expect("sent");

    // Ann changes her password: her private key is re-wrapped on the way, so on a new socket
    // (the change signed every session out) her history still reads, with the new wrap key only.
    let old_wrap_key = e2e::WrapKey::from_bytes(*ann.wrap_key().expose_secret());
    let signed_in =
        ann.api.change_password("ann@example.org", PASSWORD, "a brand new password", None).await.expect("changed");
    assert_eq!(signed_in.user.id, ann.id);
    let token = ann.api.access_token().await.expect("a new session");
    let socket = Socket::connect(&server.base_url, &token).await.expect("connect again");
    let rejoined = socket.join_conversation(id).await.expect("rejoin");
    let rewrapped = rejoined.private_key.as_deref().expect("her private key");
    assert!(e2e::unwrap_private_key(&old_wrap_key, id, rewrapped).is_err(), "the old wrap key no longer opens it");
    let key = e2e::unwrap_private_key(ann.wrap_key(), id, rewrapped).expect("the new wrap key does");
    let history = ann.api.messages(id, None).await.expect("her history");
    let earlier = e2e::decrypt(&key, ann.id, &ann_pair.public_jwk(), ann.id, id, &history.items[0].content);
    assert_eq!(earlier.expect("still readable"), "kept for later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_the_servers_reason_and_keep_the_socket_up() {
    let server = TestServer::spawn().await;
    let ann = Person::sign_up(&server, "ann@example.org").await;
    let bob = Person::sign_up(&server, "bob@example.org").await;

    let not_joined = ann.socket.push(SYSTEM_TOPIC, "set_hidden", json!({ "hidden": true })).await;
    assert_eq!(not_joined, Err(ChannelError::Refused { reason: "unmatched topic".into() }));
    let someone_else = ann.socket.join(&channels::user_topic(bob.id), json!({})).await;
    assert_eq!(someone_else, Err(ChannelError::Refused { reason: "you can only join your own user topic".into() }));
    let stranger = ann.socket.join_conversation(Uuid::now_v7()).await;
    assert_eq!(stranger, Err(ChannelError::Refused { reason: "conversation not found".into() }));

    // The socket is still up: a join and an invalid event get their own answers.
    ann.socket.join(SYSTEM_TOPIC, json!({})).await.expect("ann joins system:general");
    let invalid = ann.socket.push(SYSTEM_TOPIC, "set_hidden", json!({ "hidden": "yes" })).await;
    assert!(matches!(invalid, Err(ChannelError::Refused { reason }) if reason.contains("hidden")));
    let to_herself = ann.socket.start_private_conversation(Uuid::now_v7(), ann.id, "{}", "x").await;
    assert!(matches!(to_herself, Err(ChannelError::Refused { .. })));
    assert!(!ann.socket.is_closed());

    // A bad token is refused before the upgrade, and the error does not show it.
    let refused = Socket::connect(&server.base_url, "not-a-token").await.expect_err("refused");
    assert_eq!(refused, ChannelError::Rejected { status: 403 });
    assert!(!refused.to_string().contains("not-a-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_device_closes_the_socket_for_calls_and_subscribers() {
    let server = TestServer::spawn().await;
    let mut ann = Person::sign_up(&server, "ann@example.org").await;
    ann.socket.join(SYSTEM_TOPIC, json!({})).await.expect("ann joins system:general");

    let devices = ann.api.devices().await.expect("devices");
    let socket_device = devices.iter().find(|d| d.name == "socket").expect("the socket's session");
    ann.api.revoke_device(socket_device.id).await.expect("revoked");

    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match ann.events.recv().await {
                Ok(_) | Err(ChannelError::Lagged { .. }) => continue,
                Err(error) => return error,
            }
        }
    })
    .await
    .expect("the socket closes");
    let ChannelError::Closed { code } = closed else { panic!("expected a close, got {closed:?}") };
    assert_eq!(ann.socket.push(SYSTEM_TOPIC, "set_hidden", json!({ "hidden": true })).await, Err(closed));
    assert!(ann.socket.is_closed());
    assert_eq!(code, Some(1001), "the server closes for a recoverable reason (going away)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_the_socket_open_and_close_ends_it() {
    let server = TestServer::spawn().await;
    let api = server.registered("ann@example.org").await;
    let me = api.identity().expect("signed in").user_id;
    let options = SocketOptions { heartbeat_interval: Duration::from_millis(20), ..SocketOptions::default() };
    let token = server.access_token("ann@example.org").await;
    let socket = Socket::connect_with(&server.base_url, &token, options).await.expect("connect");
    // An unanswered heartbeat would close the socket at the next one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!socket.is_closed());
    socket.join(&channels::user_topic(me), json!({})).await.expect("still answering");

    let mut events = socket.events();
    socket.close().await;
    assert_eq!(events.recv().await, Err(ChannelError::Closed { code: Some(1000) }));
}

/// A server on a fixed port and data directory that can be stopped (its sockets close with
/// 1001) and started again in their place.
struct Restartable {
    listen: SocketAddr,
    stop: oneshot::Sender<()>,
    running: JoinHandle<()>,
}

impl Restartable {
    async fn start(data_dir: &Path, listen: SocketAddr) -> Self {
        let mut settings = hearth_server::Settings::default();
        settings.server.listen = listen;
        settings.data_dir = data_dir.to_path_buf();
        settings.secrets.secret_key_base =
            Some(hearth_server::settings::SecretText::new("hearth-client-tests-secret-key-base-0123456789"));
        settings.auth.password_hashing =
            hearth_vault::PasswordParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
        settings.auth.attempts_per_address_per_minute = 100_000;
        settings.auth.attempts_per_account_per_minute = 100_000;
        let server = hearth_server::Server::build(settings).await.expect("build the server");
        let listen = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            server.run(stopped).await.expect("the server runs");
        });
        Self { listen, stop, running }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// Stops the server (closing every socket with 1001) and starts it again on the same
    /// port and data directory.
    async fn restart(self, data_dir: &Path) -> Self {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.running).await.expect("the server stops").expect("cleanly");
        Self::start(data_dir, self.listen).await
    }
}

/// The next event that is not a lag notice, within [`WAIT`].
async fn next_outcome(events: &mut Events) -> Result<channels::Event, ChannelError> {
    let outcome = async {
        loop {
            match events.recv().await {
                Err(ChannelError::Lagged { .. }) => continue,
                other => return other,
            }
        }
    };
    tokio::time::timeout(WAIT, outcome).await.expect("an event or the close in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_reconnects_and_rejoins_after_the_server_restarts() {
    let data_dir = tempfile::tempdir().expect("temporary data directory");
    let mut server = Restartable::start(data_dir.path(), SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let base_url = server.base_url();
    let mut ann_api = Client::new(&base_url).expect("client");
    ann_api.register("ann@example.org", PASSWORD, None, Some("ann's laptop")).await.expect("ann registers");
    let mut bob_api = Client::new(&base_url).expect("client");
    bob_api.register("bob@example.org", PASSWORD, None, Some("bob's laptop")).await.expect("bob registers");
    let (ann_id, bob_id) = (ann_api.identity().expect("ann").user_id, bob_api.identity().expect("bob").user_id);
    let (ann_api, bob_api) = (Arc::new(ann_api), Arc::new(bob_api));
    let options = SocketOptions::default();
    let ann = Socket::connect_with_client(&base_url, ann_api.clone(), options.clone()).await.expect("ann connects");
    let bob = Socket::connect_with_client(&base_url, bob_api.clone(), options).await.expect("bob connects");
    let (mut ann_events, mut bob_events) = (ann.events(), bob.events());

    // Ann joins her user topic and a conversation with Bob; both set keys.
    let ann_topic = channels::user_topic(ann_id);
    ann.join(&ann_topic, json!({})).await.expect("ann joins her user topic");
    ann.join(SYSTEM_TOPIC, json!({})).await.expect("ann joins system:general");
    let ann_pair = KeyPair::generate();
    let chosen = Uuid::now_v7();
    let wrapped = e2e::wrap_private_key(ann_api.wrap_key().expect("wrap key"), chosen, &ann_pair);
    let started =
        ann.start_private_conversation(chosen, bob_id, &ann_pair.public_jwk(), &wrapped).await.expect("started");
    let id = started.conversation.id;
    ann.join_conversation(id).await.expect("ann joins the conversation");
    bob.join_conversation(id).await.expect("bob joins the conversation");
    let bob_pair = KeyPair::generate();
    let bob_wrapped = e2e::wrap_private_key(bob_api.wrap_key().expect("wrap key"), id, &bob_pair);
    bob.set_encryption_keys(id, &bob_pair.public_jwk(), &bob_wrapped).await.expect("bob's keys");

    server = server.restart(data_dir.path()).await;

    // Both sockets come back by themselves, with their topics rejoined.
    let reconnected = loop {
        let event = next_outcome(&mut ann_events).await.expect("ann's socket stays up");
        if (event.topic.as_str(), event.event.as_str()) == ("phoenix", "reconnected") {
            break event.payload;
        }
    };
    let mut expected = vec![ann_topic.clone(), channels::conversation_topic(id), SYSTEM_TOPIC.to_owned()];
    expected.sort();
    assert_eq!(reconnected, json!({ "rejoined": expected, "failed": [] }));
    next_event(&mut bob_events, "phoenix", "reconnected").await;
    assert!(!ann.is_closed() && !ann.is_reconnecting());

    // A message Bob sends now reaches Ann's subscriber; her history has it too.
    let contents = BTreeMap::from([(ann_id, "for ann".to_owned()), (bob_id, "for bob".to_owned())]);
    let sent = bob.send_message(id, None, &contents).await.expect("bob sends after the restart");
    let delivered: DeliveredMessage =
        serde_json::from_value(next_event(&mut ann_events, &ann_topic, "new_message").await).expect("delivered");
    assert_eq!((delivered.conversation_id, delivered.message.sender), (id, bob_id));
    assert_eq!(delivered.message.message_group, sent.message_group);
    let history = ann_api.messages(id, None).await.expect("history");
    assert_eq!(history.items, vec![delivered.message]);

    ann.close().await;
    bob.close().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_device_of_a_client_socket_ends_it_instead_of_retrying() {
    let server = TestServer::spawn().await;
    let api = Arc::new(server.registered("ann@example.org").await);
    let socket =
        Socket::connect_with_client(&server.base_url, api.clone(), SocketOptions::default()).await.expect("connect");
    socket.join(SYSTEM_TOPIC, json!({})).await.expect("ann joins system:general");
    let mut events = socket.events();

    // Revoked from another session of hers: the socket is closed with 1001, its reconnect is
    // refused, and refreshing the revoked session fails too.
    let mut other = server.client();
    other.login("ann@example.org", PASSWORD, Some("phone")).await.expect("signed in");
    let devices = other.devices().await.expect("devices");
    let laptop = devices.iter().find(|d| d.name == "first device").expect("the socket's session");
    other.revoke_device(laptop.id).await.expect("revoked");

    let closed = loop {
        match next_outcome(&mut events).await {
            Ok(_) => continue,
            Err(error) => break error,
        }
    };
    assert_eq!(closed, ChannelError::Closed { code: Some(1001) });
    assert!(socket.is_closed());
    assert_eq!(socket.push(SYSTEM_TOPIC, "set_hidden", json!({ "hidden": true })).await, Err(closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_three_talks_is_renamed_grows_and_loses_a_member() {
    let server = TestServer::spawn().await;
    let [mut ann, mut bob, mut cy] = three_people(&server).await;

    // Ann starts it; repeats and herself among the ids count once.
    let ann_pair = KeyPair::generate();
    let chosen = Uuid::now_v7();
    let first_wrap = e2e::wrap_private_key(ann.wrap_key(), chosen, &ann_pair);
    let started = ann
        .socket
        .start_group_conversation(
            chosen,
            &[bob.id, cy.id, ann.id, bob.id],
            Some("Team"),
            &ann_pair.public_jwk(),
            &first_wrap,
        )
        .await
        .expect("started");
    let id = started.conversation.id;
    assert!(!started.conversation.private && !started.conversation.assistant);
    assert_eq!(started.conversation.alias.as_deref(), Some("Team"));
    let mut members = started.user_ids.clone();
    members.sort();
    let mut expected = vec![ann.id, bob.id, cy.id];
    expected.sort();
    assert_eq!(members, expected);
    for person in [&mut bob, &mut cy] {
        let announced = person.next("new_conversation", |i| matches!(i, Incoming::NewConversation(_))).await;
        assert_eq!(announced, Incoming::NewConversation(started.clone()));
    }

    // Everyone joins and sets keys; Ann's key is wrapped again for the real id.
    ann.socket.join_conversation(id).await.expect("ann joins");
    let wrapped = e2e::wrap_private_key(ann.wrap_key(), id, &ann_pair);
    ann.socket.set_encryption_keys(id, &ann_pair.public_jwk(), &wrapped).await.expect("ann's keys");
    let mut pairs = BTreeMap::new();
    for person in [&bob, &cy] {
        person.socket.join_conversation(id).await.expect("joins");
        let pair = KeyPair::generate();
        let wrapped = e2e::wrap_private_key(person.wrap_key(), id, &pair);
        person.socket.set_encryption_keys(id, &pair.public_jwk(), &wrapped).await.expect("keys");
        pairs.insert(person.id, pair);
    }
    let mut keys = BTreeMap::from([(ann.id, ann_pair.public_jwk())]);
    while keys.len() < 3 {
        let set = ann.next("set_encryption_keys", |i| matches!(i, Incoming::KeysSet { .. })).await;
        if let Incoming::KeysSet { conversation_id, user_id, public_key } = set {
            assert_eq!(conversation_id, id);
            keys.insert(user_id, public_key);
        }
    }
    assert_eq!(keys[&bob.id], pairs[&bob.id].public_jwk());

    // One message, a copy per member: each opens only their own.
    let sent = ann.socket.send_message(id, None, &ann.copies(&ann_pair, id, &keys, "hello team")).await.expect("sent");
    for person in [&mut bob, &mut cy] {
        let delivered = person.next("new_message", |i| matches!(i, Incoming::NewMessage(_))).await;
        let Incoming::NewMessage(delivered) = delivered else { unreachable!("filtered") };
        assert_eq!(delivered.message.message_group, sent.message_group);
        let pair = &pairs[&person.id];
        let text = e2e::decrypt(pair, person.id, &keys[&ann.id], ann.id, id, &delivered.message.content);
        assert_eq!(text.expect("decrypt"), "hello team");
    }
    // Bob's device says it received it: Ann hears it typed, and so does a later join.
    bob.socket.delivered_conversation(bob.id, id).await.expect("bob's receipt");
    let receipt = ann.next("delivered_conversation", |i| matches!(i, Incoming::Delivered { .. })).await;
    let Incoming::Delivered { conversation_id, user_id, delivered_at } = receipt else { unreachable!("filtered") };
    assert_eq!((conversation_id, user_id), (id, bob.id));
    let joined = cy.socket.join_conversation(id).await.expect("cy joins again");
    assert_eq!(joined.delivered_times.get(&bob.id), Some(&Some(delivered_at)));
    assert_eq!(joined.delivered_times.get(&cy.id), Some(&None));

    // Bob renames it: Ann hears of it.
    let renamed = bob.socket.change_alias(id, Some("Team 2")).await.expect("renamed");
    assert_eq!((renamed.id, renamed.alias.as_deref()), (id, Some("Team 2")));
    let alias = ann.next("update_alias", |i| matches!(i, Incoming::AliasChanged { .. })).await;
    assert_eq!(alias, Incoming::AliasChanged { conversation_id: id, alias: Some("Team 2".to_owned()) });

    // Ann adds Dee, who hears of the conversation with its four members.
    let mut dee = Person::sign_up(&server, "dee@example.org").await;
    dee.join_own_topics().await;
    let grown = ann.socket.add_members(id, &[dee.id], None).await.expect("added");
    assert_eq!(grown.user_ids.len(), 4);
    assert_eq!(grown.conversation.alias.as_deref(), Some("Team 2"));
    let Incoming::NewConversation(announced) =
        dee.next("new_conversation", |i| matches!(i, Incoming::NewConversation(_))).await
    else {
        unreachable!("filtered")
    };
    assert!(announced.user_ids.contains(&dee.id) && announced.conversation.id == id);

    // Cy leaves: the others hear it, and messages must now name exactly Ann, Bob and Dee.
    cy.socket.leave_conversation(id).await.expect("cy leaves");
    let left = ann.next("leave_conversation", |i| matches!(i, Incoming::MemberLeft { .. })).await;
    assert_eq!(left, Incoming::MemberLeft { conversation_id: id, user_id: cy.id });
    let refused = ann.socket.send_message(id, None, &ann.copies(&ann_pair, id, &keys, "with cy")).await;
    assert!(matches!(&refused, Err(ChannelError::Refused { reason }) if reason.contains("exactly")), "{refused:?}");

    // Renaming oneself reaches everyone on system:general.
    cy.socket.set_display_name("Cyrille").await.expect("renamed");
    let renamed = ann.next("set_display_name", |i| matches!(i, Incoming::DisplayName { .. })).await;
    assert_eq!(renamed, Incoming::DisplayName { user_id: cy.id, display_name: "Cyrille".to_owned() });
    assert!(matches!(cy.socket.set_display_name("").await, Err(ChannelError::Refused { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_shows_partners_only_and_never_the_hidden() {
    let server = TestServer::spawn().await;
    let [mut ann, mut bob, mut cy] = three_people(&server).await;
    // Strangers see only themselves.
    ann.sees_exactly(&[ann.id]).await;
    bob.sees_exactly(&[bob.id]).await;
    cy.sees_exactly(&[cy.id]).await;

    // A private conversation introduces Ann and Bob to each other.
    let pair = KeyPair::generate();
    let chosen = Uuid::now_v7();
    let wrapped = e2e::wrap_private_key(ann.wrap_key(), chosen, &pair);
    ann.socket.start_private_conversation(chosen, bob.id, &pair.public_jwk(), &wrapped).await.expect("started");
    ann.sees_exactly(&[ann.id, bob.id]).await;
    bob.sees_exactly(&[ann.id, bob.id]).await;
    assert!(ann.presence.is_online(bob.id) && ann.presence.devices(bob.id).len() == 1);

    // Cy hides, then joins a group with them: she sees them, they do not see her.
    cy.socket.set_hidden(true).await.expect("cy hides");
    cy.sees_exactly(&[]).await;
    let chosen = Uuid::now_v7();
    let wrapped = e2e::wrap_private_key(ann.wrap_key(), chosen, &pair);
    ann.socket
        .start_group_conversation(chosen, &[bob.id, cy.id], None, &pair.public_jwk(), &wrapped)
        .await
        .expect("group");
    cy.sees_exactly(&[ann.id, bob.id]).await;
    // Bob renames himself after the group started: once Ann hears that, she would have heard
    // any presence of Cy's published with the group.
    bob.socket.set_display_name("Bobby").await.expect("renamed");
    ann.next("set_display_name", |i| matches!(i, Incoming::DisplayName { .. })).await;
    assert!(!ann.presence.is_online(cy.id), "a hidden user is shown to nobody");

    // Showing herself, Cy appears to both; leaving, she disappears.
    cy.socket.set_hidden(false).await.expect("cy shows herself");
    ann.sees_exactly(&[ann.id, bob.id, cy.id]).await;
    bob.sees_exactly(&[ann.id, bob.id, cy.id]).await;
    // Dropping the socket closes it.
    drop(cy);
    ann.sees_exactly(&[ann.id, bob.id]).await;
    bob.sees_exactly(&[ann.id, bob.id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_conversation_is_one_per_person_and_takes_plain_prompts() {
    let server = TestServer::spawn().await;
    let mut ann = Person::sign_up(&server, "ann@example.org").await;
    ann.join_own_topics().await;

    let started = ann.socket.start_assistant_conversation().await.expect("started");
    assert!(started.conversation.assistant);
    assert_eq!(started.user_ids, vec![ann.id]);
    let again = ann.socket.start_assistant_conversation().await.expect("the same");
    assert_eq!(again.conversation.id, started.conversation.id);
    let id = started.conversation.id;
    let joined = ann.socket.join_conversation(id).await.expect("joins");
    assert!(joined.conversation.assistant && joined.private_key.is_none());

    // The prompt is stored as written. No provider is configured, so the assistant's answer
    // says so; it arrives all the same, as an ordinary message from someone else.
    let prompt = ann.socket.send_prompt(id, ann.id, "hello there").await.expect("sent");
    assert_eq!((prompt.sender, prompt.content.as_str()), (ann.id, "hello there"));
    let me = ann.id;
    let answer =
        ann.next("the assistant's answer", |i| matches!(i, Incoming::NewMessage(d) if d.message.sender != me)).await;
    let Incoming::NewMessage(answer) = answer else { unreachable!("filtered") };
    assert_eq!(answer.conversation_id, id);
    assert!(!answer.message.content.is_empty());
    // It cannot be grown or left.
    assert!(ann.socket.add_members(id, &[Uuid::now_v7()], None).await.is_err());
    assert!(ann.socket.leave_conversation(id).await.is_err());
}
