//! The trust rules of docs/e2e.md against the real server: people written to while signed
//! out, keys published with a bearer token alone, the database changing delivered copies, the
//! server claiming a conversation is plain text, and accounts from before identities. Each
//! person is the SDK a client would use: a `Client`, a `Socket` and a `Keyring`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hearth_client::api::{Client, Message};
use hearth_client::channels::{self, Events, Incoming, SYSTEM_TOPIC, Socket, SocketOptions};
use hearth_client::e2e::{self, Flag, KeyPair};
use hearth_client::trust::{Keyring, Notice, Opened, TrustStore};
use hearth_client::{ClientError, TrustError};
use serde_json::{Value, json};
use uuid::Uuid;

mod common;
use common::{PASSWORD, TestServer};

/// The longest wait for an event that should arrive.
const WAIT: Duration = Duration::from_secs(10);

/// A signed-in person: their session, socket and keyring.
struct Person {
    id: Uuid,
    api: Arc<Client>,
    socket: Socket,
    events: Events,
    keyring: Keyring,
}

impl Person {
    /// Registers `email` (which makes and publishes the identity) and connects.
    async fn register(server: &TestServer, email: &str) -> Self {
        let mut api = server.client();
        api.register(email, PASSWORD, None, Some("trust test")).await.expect("register");
        Self::connect(server, api).await
    }

    /// Signs in as `email` on a new device.
    async fn login(server: &TestServer, email: &str) -> Self {
        let mut api = server.client();
        api.login(email, PASSWORD, Some("another device")).await.expect("login");
        Self::connect(server, api).await
    }

    async fn connect(server: &TestServer, api: Client) -> Self {
        let keyring = api.keyring(TrustStore::in_memory()).expect("an identity");
        let id = api.identity().expect("signed in").user_id;
        let api = Arc::new(api);
        let socket = Socket::connect_with_client(&server.base_url, api.clone(), SocketOptions::default())
            .await
            .expect("connect");
        let events = socket.events();
        socket.join(&channels::user_topic(id), json!({})).await.expect("the user topic");
        socket.join(SYSTEM_TOPIC, json!({})).await.expect("system:general");
        Self { id, api, socket, events, keyring }
    }

    /// Starts a private conversation with `other` under an id chosen here, and joins it.
    async fn start_with(&mut self, other: Uuid) -> Uuid {
        let keys = self.keyring.start_conversation().expect("keys");
        self.socket
            .start_private_conversation(keys.conversation_id, other, &keys.public_key, &keys.private_key)
            .await
            .expect("started");
        self.join(keys.conversation_id).await;
        keys.conversation_id
    }

    /// Joins (again), publishing whatever keys the keyring says to; the notices.
    async fn join(&mut self, id: Uuid) -> Vec<Notice> {
        let joined = self.socket.join_conversation(id).await.expect("join");
        let joining = self.keyring.join(&joined).expect("the keyring takes the join");
        if let Some(keys) = &joining.publish {
            self.socket.set_encryption_keys(id, &keys.public_key, &keys.private_key).await.expect("keys set");
        }
        joining.notices
    }

    /// Seals and sends `text`; the message group id.
    async fn send(&mut self, id: Uuid, text: &str) -> Uuid {
        let outgoing = self.keyring.seal(id, text, None).expect("sealed");
        self.socket.send_message(id, Some(outgoing.message_group_id), &outgoing.copies).await.expect("sent");
        outgoing.message_group_id
    }

    /// The person's copies of the conversation's messages, oldest first, opened and checked.
    async fn history(&mut self, id: Uuid) -> Vec<Opened> {
        let page = self.api.messages(id, None).await.expect("history");
        let oldest_first: Vec<Message> = page.items.into_iter().rev().collect();
        self.keyring.open_page(id, &oldest_first, false)
    }

    /// The `set_encryption_keys` of `user` setting `key` on the conversation's topic, as the
    /// keyring judges it.
    async fn key_event_of(&mut self, id: Uuid, user: Uuid, key: &str) -> Option<Notice> {
        let found = async {
            loop {
                let event = self.events.recv().await.expect("the socket is open");
                if let Some(Incoming::KeysSet { conversation_id, user_id, public_key }) = Incoming::parse(&event)
                    && conversation_id == id
                    && user_id == user
                    && public_key == key
                {
                    return self.keyring.member_key_set(id, user, &public_key);
                }
            }
        };
        tokio::time::timeout(WAIT, found).await.expect("the key event arrives")
    }
}

/// Ann and Bob, registered, in a private conversation both joined (so both keys are set).
async fn ann_and_bob(server: &TestServer) -> (Person, Person, Uuid) {
    let mut ann = Person::register(server, "ann@example.org").await;
    let mut bob = Person::register(server, "bob@example.org").await;
    let id = ann.start_with(bob.id).await;
    bob.join(id).await;
    ann.join(id).await;
    (ann, bob, id)
}

fn texts(opened: &[Opened]) -> Vec<Result<&str, &str>> {
    opened.iter().map(|opened| opened.text.as_deref().map_err(String::as_str)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_signed_out_while_a_conversation_starts_reads_everything_on_first_sign_in() {
    let server = TestServer::spawn().await;
    // Bob has an account and is signed out everywhere.
    let mut bob = server.client();
    bob.register("bob@example.org", PASSWORD, None, None).await.expect("register");
    let bob_id = bob.identity().expect("signed in").user_id;
    bob.signout_all().await.expect("signed out");
    drop(bob);

    let mut ann = Person::register(&server, "ann@example.org").await;
    let id = ann.start_with(bob_id).await;
    for text in ["one", "two", "three"] {
        ann.send(id, text).await;
    }

    // Bob signs in on a new device, joins for the first time and reads all three.
    let mut bob = Person::login(&server, "bob@example.org").await;
    assert_eq!(bob.join(id).await, []);
    let read = bob.history(id).await;
    assert_eq!(texts(&read), [Ok("one"), Ok("two"), Ok("three")]);
    assert!(read.iter().all(|opened| opened.flags.is_empty() && !opened.unchecked), "{read:?}");
    // Bob's key is published now: Ann's next copy for him uses it.
    ann.join(id).await;
    let outgoing = ann.keyring.seal(id, "four", None).expect("sealed");
    assert!(outgoing.copies[&bob.id].starts_with("v2."), "{}", outgoing.copies[&bob.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_published_with_a_bearer_token_alone_is_refused_by_the_other_member() {
    let server = TestServer::spawn().await;
    let (mut ann, mut bob, id) = ann_and_bob(&server).await;

    // An attacker with only a fresh access token of Bob's (no password, no wrap key) sets a
    // key of their own, and cannot replace Bob's identity.
    let token = server.access_token("bob@example.org").await;
    let attacker = Socket::connect(&server.base_url, &token).await.expect("connect with the token");
    attacker.join_conversation(id).await.expect("join as Bob");
    let attacker_key = KeyPair::generate();
    let unsigned = attacker_key.public_jwk();
    let forged = e2e::sign_conversation_key(&e2e::Identity::generate(), bob.id, id, &attacker_key.public_jwk())
        .expect("signed by an identity that is not Bob's");
    let junk = "v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA";
    attacker.set_encryption_keys(id, &unsigned, junk).await.expect("set");
    let refused = Some(Notice::KeyRefused { conversation: id, user: bob.id });
    assert_eq!(ann.key_event_of(id, bob.id, &unsigned).await, refused);
    attacker.set_encryption_keys(id, &forged, junk).await.expect("set");
    assert_eq!(ann.key_event_of(id, bob.id, &forged).await, refused);
    let replaced = reqwest::Client::new()
        .put(format!("{}/api/identity_key", server.base_url))
        .bearer_auth(&token)
        .json(&json!({
            "identity_key": e2e::Identity::generate().public().to_json(),
            "identity_private_key": {"signing": "v1.x", "agreement": "v1.y"},
        }))
        .send()
        .await
        .expect("send");
    assert_eq!(replaced.status(), 409);
    assert_eq!(replaced.json::<Value>().await.expect("JSON")["error"], "identity_exists");

    assert!(ann.join(id).await.contains(&Notice::KeyRefused { conversation: id, user: bob.id }));
    let group = ann.send(id, "door code is 4711").await;
    // Bob's copy is for his identity, which only Bob's client opens; not for the attacker's key.
    let copy = bob
        .api
        .messages(id, None)
        .await
        .expect("history")
        .items
        .into_iter()
        .find(|message| message.message_group == group)
        .expect("Bob's copy");
    assert!(copy.content.starts_with("v2i."), "{}", copy.content);
    assert_eq!(texts(&bob.history(id).await), [Ok("door code is 4711")]);
}

/// The server's SQLite database, to change what it delivers.
async fn database(server: &TestServer) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}", server.data_dir().join("hearth.db").display());
    sqlx::SqlitePool::connect(&url).await.expect("the server's database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_the_database_moved_redated_or_reordered_are_flagged() {
    let server = TestServer::spawn().await;
    let (mut ann, mut bob, id) = ann_and_bob(&server).await;
    let approval = ann.send(id, "Yes, I approve the transfer of 10 EUR").await;
    let later = ann.send(id, "see you tomorrow").await;
    let (first, second) = (ann.send(id, "first").await, ann.send(id, "second").await);
    let genuine = bob.history(id).await;
    assert!(genuine.iter().all(|opened| opened.flags.is_empty()), "{genuine:?}");

    let db = database(&server).await;
    let copy_of = |group: Uuid| {
        sqlx::query_scalar::<_, String>("SELECT content FROM messages WHERE message_group_id = ? AND recipient_id = ?")
            .bind(group)
            .bind(bob.id)
    };
    let set_content = "UPDATE messages SET content = ? WHERE message_group_id = ? AND recipient_id = ?";
    // The approval copied into a later message, which is moved a day later.
    let approval_copy = copy_of(approval).fetch_one(&db).await.expect("the approval");
    sqlx::query(set_content).bind(&approval_copy).bind(later).bind(bob.id).execute(&db).await.expect("copy");
    sqlx::query(
        "UPDATE messages SET inserted_at = inserted_at + 86400000, updated_at = updated_at + 86400000 \
         WHERE message_group_id = ? AND recipient_id = ?",
    )
    .bind(later)
    .bind(bob.id)
    .execute(&db)
    .await
    .expect("redate");
    // Two messages' contents swapped: each in the other's place.
    let (first_copy, second_copy) =
        (copy_of(first).fetch_one(&db).await.expect("first"), copy_of(second).fetch_one(&db).await.expect("second"));
    sqlx::query(set_content).bind(&second_copy).bind(first).bind(bob.id).execute(&db).await.expect("swap");
    sqlx::query(set_content).bind(&first_copy).bind(second).bind(bob.id).execute(&db).await.expect("swap");

    let read = bob.history(id).await;
    let flags: Vec<&[Flag]> = read.iter().map(|opened| opened.flags.as_slice()).collect();
    assert_eq!(
        flags,
        [
            &[][..],
            &[Flag::Substituted, Flag::Redated, Flag::Reordered][..],
            &[Flag::Substituted][..],
            &[Flag::Substituted, Flag::Reordered][..],
        ],
        "{read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_the_server_marks_as_the_assistants_stays_end_to_end() {
    let server = TestServer::spawn().await;
    let mut ann = Person::register(&server, "ann@example.org").await;
    let bob = Person::register(&server, "bob@example.org").await;
    let id = ann.start_with(bob.id).await;
    let db = database(&server).await;
    sqlx::query("UPDATE conversations SET assistant_of = ? WHERE id = ?")
        .bind(ann.id)
        .bind(id)
        .execute(&db)
        .await
        .expect("mark it as Ann's assistant conversation");
    let joined = ann.socket.join_conversation(id).await.expect("join");
    assert!(joined.conversation.assistant, "the server now says so");
    let joining = ann.keyring.join(&joined).expect("join");
    assert!(joining.notices.contains(&Notice::DowngradeRefused { conversation: id }));
    assert!(!ann.keyring.plaintext_allowed(id));
    let outgoing = ann.keyring.seal(id, "not for the server", None).expect("sealed");
    assert!(outgoing.copies.values().all(|copy| copy.starts_with("v2")), "{outgoing:?}");
    assert!(!outgoing.copies.values().any(|copy| copy.contains("not for the server")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_from_before_identities_migrates_on_sign_in_and_keeps_its_history() {
    let server = TestServer::spawn().await;
    // Two accounts as a client without identities made them: registered over plain REST,
    // keys unsigned, a v1 message.
    let register = |email: &'static str| {
        let base = server.base_url.clone();
        async move {
            let auth_secret =
                tokio::task::spawn_blocking(move || e2e::derive(email, PASSWORD).auth_secret).await.expect("derive");
            let reply: Value = reqwest::Client::new()
                .post(format!("{base}/auth/register"))
                .json(&json!({ "email": email, "password": auth_secret }))
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("a session reply");
            assert!(reply["user"]["identity_key"].is_null(), "{reply}");
            (reply["user"]["id"].as_str().expect("an id").parse::<Uuid>().expect("an id"), reply)
        }
    };
    let (ann_id, _) = register("ann@example.org").await;
    let (bob_id, _) = register("bob@example.org").await;
    let ann_wrap = e2e::derive("ann@example.org", PASSWORD).wrap_key;
    let bob_wrap = e2e::derive("bob@example.org", PASSWORD).wrap_key;
    let (ann_key, bob_key) = (KeyPair::generate(), KeyPair::generate());
    let id = Uuid::now_v7();
    let ann_socket =
        Socket::connect(&server.base_url, &server.access_token("ann@example.org").await).await.expect("ws");
    ann_socket.join(SYSTEM_TOPIC, json!({})).await.expect("system");
    ann_socket
        .start_private_conversation(id, bob_id, &ann_key.public_jwk(), &e2e::wrap_private_key(&ann_wrap, id, &ann_key))
        .await
        .expect("started");
    let bob_socket =
        Socket::connect(&server.base_url, &server.access_token("bob@example.org").await).await.expect("ws");
    bob_socket.join_conversation(id).await.expect("join");
    bob_socket
        .set_encryption_keys(id, &bob_key.public_jwk(), &e2e::wrap_private_key(&bob_wrap, id, &bob_key))
        .await
        .expect("keys");
    ann_socket.join_conversation(id).await.expect("join");
    let copies: BTreeMap<Uuid, String> = [(ann_id, &ann_key), (bob_id, &bob_key)]
        .into_iter()
        .map(|(member, key)| {
            (member, e2e::encrypt(&ann_key, ann_id, &key.public_jwk(), member, id, "from before").expect("v1"))
        })
        .collect();
    ann_socket.send_message(id, None, &copies).await.expect("sent");

    // Bob signs in with a current client: an identity is made, his key signed, history kept.
    let mut bob = Person::login(&server, "bob@example.org").await;
    assert!(bob.api.me().await.expect("me").identity_key.is_some(), "published");
    let notices = bob.join(id).await;
    assert_eq!(notices, [], "Ann has no identity yet: her old key reads her old messages");
    let read = bob.history(id).await;
    assert_eq!(texts(&read), [Ok("from before")]);
    assert!(read[0].unchecked, "an old message cannot be checked");
    // Ann has not signed in since: nobody can write to her yet.
    assert!(matches!(bob.keyring.seal(id, "x", None), Err(TrustError::Waiting(waiting)) if waiting == [ann_id]));
    // Ann signs in: now they can write to each other, and her old message still reads.
    let mut ann = Person::login(&server, "ann@example.org").await;
    ann.join(id).await;
    assert_eq!(texts(&ann.history(id).await), [Ok("from before")]);
    bob.join(id).await;
    bob.send(id, "welcome back").await;
    assert_eq!(texts(&ann.history(id).await), [Ok("from before"), Ok("welcome back")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_is_replaced_only_with_the_password_and_contacts_see_the_change() {
    let server = TestServer::spawn().await;
    let mut ann = Person::register(&server, "ann@example.org").await;
    let bob = Person::register(&server, "bob@example.org").await;
    let id = ann.start_with(bob.id).await;
    drop(bob);
    let mut bob_again = server.client();
    bob_again.login("bob@example.org", PASSWORD, None).await.expect("login");
    assert!(matches!(
        bob_again.replace_identity("not the password").await,
        Err(ClientError::Api { status, .. }) if status == 422
    ));
    bob_again.replace_identity(PASSWORD).await.expect("replaced with the password");
    let notices = ann.join(id).await;
    assert!(
        notices.iter().any(|notice| matches!(notice, Notice::IdentityChanged { was_verified: false, .. })),
        "{notices:?}"
    );
    assert!(matches!(ann.keyring.seal(id, "x", None), Err(TrustError::Blocked(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_to_a_group_while_signed_out_reads_what_was_sent_after() {
    let server = TestServer::spawn().await;
    let mut ann = Person::register(&server, "ann@example.org").await;
    let mut bob = Person::register(&server, "bob@example.org").await;
    let mut cy = server.client();
    cy.register("cy@example.org", PASSWORD, None, None).await.expect("register");
    let cy_id = cy.identity().expect("signed in").user_id;
    cy.signout_all().await.expect("signed out");
    drop(cy);

    let keys = ann.keyring.start_conversation().expect("keys");
    let id = keys.conversation_id;
    ann.socket
        .start_group_conversation(id, &[bob.id], Some("Team"), &keys.public_key, &keys.private_key)
        .await
        .expect("started");
    ann.join(id).await;
    bob.join(id).await;
    ann.socket.add_members(id, &[cy_id], None).await.expect("Cy added");
    // The members changed: joining again shows Cy and her identity.
    ann.join(id).await;
    let outgoing = ann.keyring.seal(id, "welcome, Cy", None).expect("sealed for all three");
    assert!(outgoing.copies[&cy_id].starts_with("v2i."), "{}", outgoing.copies[&cy_id]);
    assert!(outgoing.copies[&bob.id].starts_with("v2."));
    ann.socket.send_message(id, Some(outgoing.message_group_id), &outgoing.copies).await.expect("sent");

    let mut cy = Person::login(&server, "cy@example.org").await;
    assert_eq!(cy.join(id).await, []);
    assert_eq!(texts(&cy.history(id).await), [Ok("welcome, Cy")]);
    assert_eq!(texts(&bob.history(id).await), [Ok("welcome, Cy")]);
}
