//! The REST client against the real server, in-process on `127.0.0.1:0` with a temporary
//! data directory and cheap password hashing.

use std::sync::Arc;
use std::time::Duration;

use hearth_client::ClientError;
use hearth_client::api::{Client, Theme};
use hearth_client::channels::{SYSTEM_TOPIC, Socket};
use hearth_client::e2e::{self, KeyPair};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

mod common;
use common::{PASSWORD, TestServer};

/// Access-token lifetime of the refresh tests. Tokens expire at a whole second
/// (`exp = floor(now) + ttl`), so with 1 s a refreshed token could die a millisecond later,
/// before its retry; 2 s leaves every refreshed token at least a second.
const SHORT_TTL_SECS: i64 = 2;

#[track_caller]
fn assert_api_error(result: Result<impl std::fmt::Debug, ClientError>, status: StatusCode, code: &str) {
    match result {
        Err(ClientError::Api { status: got, code: got_code, .. }) => {
            assert_eq!((got, got_code.as_str()), (status, code));
        }
        other => panic!("expected a {status} {code} API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_login_on_a_second_client_is_the_same_user() {
    let server = TestServer::spawn().await;
    let mut first = server.client();
    let registered = first.register("Ada@Example.org", PASSWORD, Some("Ada"), Some("laptop")).await.expect("register");
    assert_eq!(registered.user.email, "ada@example.org");
    assert_eq!(registered.user.display_name, "Ada");
    assert_eq!(registered.user.theme, Theme::Day);
    assert!(!registered.user.hidden);

    let mut second = server.client();
    let logged_in = second.login("ada@example.org", PASSWORD, Some("phone")).await.expect("login");
    assert_eq!(logged_in.user, registered.user);
    assert_eq!(logged_in.conversations, registered.conversations);

    let (one, two) = (first.identity().expect("signed in"), second.identity().expect("signed in"));
    assert_eq!((one.user_id, two.user_id), (registered.user.id, registered.user.id));
    assert_ne!(one.device_id, two.device_id, "each sign-in is its own device");
    // The same password and (case-insensitive) email give the same wrap key on both devices.
    assert_eq!(
        first.wrap_key().expect("wrap key").expose_secret(),
        second.wrap_key().expect("wrap key").expose_secret()
    );

    // The devices list knows both, by name, and which one is asking.
    let devices = second.devices().await.expect("devices");
    assert_eq!(devices.len(), 2);
    let current = devices.iter().find(|d| d.current).expect("a current device");
    assert_eq!((current.id, current.name.as_str()), (two.device_id, "phone"));
    assert!(devices.iter().any(|d| d.id == one.device_id && d.name == "laptop" && !d.current));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_never_receives_the_password() {
    let server = TestServer::spawn().await;
    let _client = server.registered("bo@example.org").await;
    let login = |password: String| {
        let url = format!("{}/auth/login", server.base_url);
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({ "email": "bo@example.org", "password": password }))
                .send()
                .await
                .expect("send")
                .status()
        }
    };
    // The stored secret is not the password: logging in with it fails…
    assert_eq!(login(PASSWORD.to_owned()).await, StatusCode::UNAUTHORIZED);
    // …and is the auth_secret derived from it.
    let derived = e2e::derive("bo@example.org", PASSWORD);
    assert_eq!(login(derived.auth_secret.clone()).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_calls_read_the_server_replies() {
    let server = TestServer::spawn().await;
    let ada = server.registered("ada@example.org").await;
    let bo = server.registered("bo@example.org").await;
    let (ada_id, bo_id) = (ada.identity().expect("ada").user_id, bo.identity().expect("bo").user_id);

    let me = ada.me().await.expect("me");
    assert_eq!((me.id, me.email.as_str(), me.display_name.as_str()), (ada_id, "ada@example.org", "ada"));

    let users = ada.users(None, None).await.expect("users");
    assert!(users.page_token.is_none(), "two users fit on one page");
    let mut ids: Vec<Uuid> = users.items.iter().map(|u| u.id).collect();
    ids.sort();
    let mut expected = vec![ada_id, bo_id];
    expected.sort();
    assert_eq!(ids, expected);

    // Private conversations start over the socket; none exists yet.
    assert_eq!(ada.private_conversation_with(bo_id).await.expect("private"), None);
    let conversations = ada.conversations().await.expect("conversations");
    assert!(conversations.iter().all(|c| !c.private), "{conversations:?}");
    for conversation in &conversations {
        let page = ada.messages(conversation.id, None).await.expect("messages of an own conversation");
        assert!(page.items.len() <= 50);
    }
    assert!(ada.keys().await.expect("keys").is_empty());

    let devices = ada.devices().await.expect("devices");
    assert_eq!(devices.len(), 1);
    assert!(devices[0].current);
    assert_eq!(devices[0].id, ada.identity().expect("ada").device_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_become_typed_api_errors() {
    let server = TestServer::spawn().await;
    let ada = server.registered("ada@example.org").await;

    assert_api_error(
        server.client().register("ada@example.org", PASSWORD, None, None).await,
        StatusCode::CONFLICT,
        "email_taken",
    );
    assert_api_error(
        server.client().login("ada@example.org", "wrong password", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_api_error(
        server.client().login("nobody@example.org", PASSWORD, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // The server sees only the derived auth_secret, so the client refuses a short password.
    let short = server.client().register("bea@example.org", "seven c", None, None).await;
    assert!(matches!(short, Err(ClientError::PasswordTooShort)), "{short:?}");

    match server.client().register("not an email", PASSWORD, None, None).await {
        Err(ClientError::Api { status, code, fields, .. }) => {
            assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid"));
            assert!(fields.contains_key("email"), "{fields:?}");
        }
        other => panic!("expected a 422, got {other:?}"),
    }

    // Someone else's conversation, or none, is a 404; a tampered page token a 400.
    assert_api_error(ada.messages(Uuid::now_v7(), None).await, StatusCode::NOT_FOUND, "not_found");
    assert_api_error(ada.users(None, Some("tampered")).await, StatusCode::BAD_REQUEST, "invalid_page_token");
    assert_api_error(ada.revoke_device(Uuid::now_v7()).await, StatusCode::NOT_FOUND, "not_found");

    // Calls that need a session say so before asking the server.
    assert!(matches!(server.client().me().await, Err(ClientError::NotSignedIn)));
    // A server that is not there is a transport error.
    let mut nowhere = Client::new("http://127.0.0.1:9").expect("client");
    assert!(matches!(nowhere.login("ada@example.org", PASSWORD, None).await, Err(ClientError::Transport(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_transparently() {
    let server = TestServer::spawn_with(|s| s.auth.access_token_ttl_secs = SHORT_TTL_SECS).await;
    let client = server.registered("ada@example.org").await;
    client.me().await.expect("a fresh token works");
    assert_eq!(client.refresh_count(), 0);

    // Past the token's expiry; the server's clock decides, so there is nothing to wait on.
    tokio::time::sleep(Duration::from_secs(SHORT_TTL_SECS as u64)).await;
    let me = client.me().await.expect("refreshed and retried");
    assert_eq!(Some(me.id), client.identity().map(|i| i.user_id));
    assert_eq!(client.refresh_count(), 1);
    // Still the same device session.
    let devices = client.devices().await.expect("devices");
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].id, client.identity().expect("signed in").device_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_after_expiry_refresh_once() {
    let server = TestServer::spawn_with(|s| s.auth.access_token_ttl_secs = SHORT_TTL_SECS).await;
    let client = Arc::new(server.registered("ada@example.org").await);
    tokio::time::sleep(Duration::from_secs(SHORT_TTL_SECS as u64)).await;

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..10 {
        let client = client.clone();
        calls.spawn(async move {
            if i % 2 == 0 { client.me().await.map(|_| ()) } else { client.conversations().await.map(|_| ()) }
        });
    }
    while let Some(result) = calls.join_next().await {
        result.expect("the task ran").expect("every call succeeds");
    }
    assert_eq!(client.refresh_count(), 1, "one refresh for all ten");
    // Had a spent refresh token been presented again, the server would have signed the
    // device out: it has not.
    client.me().await.expect("the session is alive");
    assert_eq!(client.devices().await.expect("devices").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_signing_out_everywhere_calls_fail_with_401() {
    let server = TestServer::spawn().await;
    let laptop = server.registered("ada@example.org").await;
    let mut phone = server.client();
    phone.login("ada@example.org", PASSWORD, Some("phone")).await.expect("login");

    laptop.signout_all().await.expect("sign out everywhere");
    // This client knows its session is over.
    let error = laptop.me().await.expect_err("signed out");
    assert!(matches!(error, ClientError::NotSignedIn) && error.needs_sign_in());
    // The other device learns it from the server: a 401 that refreshing cannot cure…
    let error = phone.me().await.expect_err("signed out");
    assert_eq!((error.status(), error.code()), (Some(StatusCode::UNAUTHORIZED), Some("unauthorized")));
    assert!(error.needs_sign_in());
    // …after which it has no session either.
    assert!(matches!(phone.conversations().await, Err(ClientError::NotSignedIn)));
    assert_eq!(phone.refresh_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_is_signed_out() {
    let server = TestServer::spawn().await;
    let laptop = server.registered("ada@example.org").await;
    let mut phone = server.client();
    phone.login("ada@example.org", PASSWORD, Some("phone")).await.expect("login");

    laptop.revoke_device(phone.identity().expect("phone").device_id).await.expect("revoke");
    assert_api_error(phone.me().await, StatusCode::UNAUTHORIZED, "unauthorized");
    laptop.me().await.expect("the laptop is still signed in");

    laptop.revoke_device(laptop.identity().expect("laptop").device_id).await.expect("revoke itself");
    assert!(matches!(laptop.me().await, Err(ClientError::NotSignedIn)));
}

#[tokio::test]
async fn debug_output_holds_no_secret() {
    let server = TestServer::spawn().await;
    let client = server.registered("ada@example.org").await;
    let debug = format!("{client:?}");
    let derived = e2e::derive("ada@example.org", PASSWORD);
    assert!(!debug.contains(PASSWORD) && !debug.contains(&derived.auth_secret), "{debug}");
    assert!(!debug.contains("eyJ"), "no JWT: {debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_change_rewraps_the_keys_so_history_stays_readable() {
    let server = TestServer::spawn().await;
    let mut ann = server.registered("ann@example.org").await;
    let bob = server.registered("bob@example.org").await;
    let (ann_id, bob_id) = (ann.identity().expect("ann").user_id, bob.identity().expect("bob").user_id);

    // Ann and Bob share an encrypted message.
    let ann_socket =
        Socket::connect(&server.base_url, &ann.access_token().await.expect("token")).await.expect("connect");
    ann_socket.join(SYSTEM_TOPIC, json!({})).await.expect("ann joins system:general");
    let ann_pair = KeyPair::generate();
    let chosen = Uuid::now_v7();
    let first_wrap = e2e::wrap_private_key(ann.wrap_key().expect("wrap key"), chosen, &ann_pair);
    let started = ann_socket
        .start_private_conversation(chosen, bob_id, &ann_pair.public_jwk(), &first_wrap)
        .await
        .expect("started");
    let id = started.conversation.id;
    ann_socket.join_conversation(id).await.expect("ann joins");
    let wrapped = e2e::wrap_private_key(ann.wrap_key().expect("wrap key"), id, &ann_pair);
    ann_socket.set_encryption_keys(id, &ann_pair.public_jwk(), &wrapped).await.expect("ann's keys");
    let bob_socket =
        Socket::connect(&server.base_url, &bob.access_token().await.expect("token")).await.expect("connect");
    bob_socket.join_conversation(id).await.expect("bob joins");
    let bob_pair = KeyPair::generate();
    let bob_wrapped = e2e::wrap_private_key(bob.wrap_key().expect("wrap key"), id, &bob_pair);
    bob_socket.set_encryption_keys(id, &bob_pair.public_jwk(), &bob_wrapped).await.expect("bob's keys");
    let copies = [(ann_id, &ann_pair.public_jwk()), (bob_id, &bob_pair.public_jwk())]
        .into_iter()
        .map(|(member, key)| {
            (member, e2e::encrypt(&ann_pair, ann_id, key, member, id, "before the move").expect("encrypt"))
        })
        .collect();
    ann_socket.send_message(id, None, &copies).await.expect("sent");
    ann_socket.close().await;

    // The token goes to the current address.
    ann.request_email_change().await.expect("a token is sent");
    let token = server.emailed_code("ann@example.org", "Change the email address").await;
    let old_wrap_key = e2e::WrapKey::from_bytes(*ann.wrap_key().expect("wrap key").expose_secret());

    // A wrong password derives keys that open nothing: refused before the server is asked.
    let wrong = ann.change_email(&token, "ann@new.example.org", "not the password", None).await;
    assert!(matches!(wrong, Err(ClientError::Crypto(_))), "{wrong:?}");

    let signed_in =
        ann.change_email(&token, "Ann@New.example.org", PASSWORD, Some("laptop")).await.expect("email changed");
    assert_eq!((signed_in.user.id, signed_in.user.email.as_str()), (ann_id, "ann@new.example.org"));
    // Signed in again at the new address, with the wrap key that derives from it.
    let derived = e2e::derive("ann@new.example.org", PASSWORD);
    assert_eq!(ann.wrap_key().expect("wrap key").expose_secret(), derived.wrap_key.expose_secret());
    assert_ne!(old_wrap_key.expose_secret(), derived.wrap_key.expose_secret());
    assert_api_error(
        server.client().login("ann@example.org", PASSWORD, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let mut elsewhere = server.client();
    elsewhere.login("ann@new.example.org", PASSWORD, Some("phone")).await.expect("the new address signs in");

    // The stored private key was re-wrapped: the new wrap key opens it, the old one no longer
    // does, and the message sent before the move still reads.
    let socket = Socket::connect(&server.base_url, &ann.access_token().await.expect("token")).await.expect("connect");
    let joined = socket.join_conversation(id).await.expect("ann joins again");
    let rewrapped = joined.private_key.as_deref().expect("her private key");
    assert!(e2e::unwrap_private_key(&old_wrap_key, id, rewrapped).is_err());
    let key = e2e::unwrap_private_key(ann.wrap_key().expect("wrap key"), id, rewrapped).expect("it opens");
    assert_eq!(key.public_jwk(), ann_pair.public_jwk());
    let history = ann.messages(id, None).await.expect("history");
    let text = e2e::decrypt(&key, ann_id, &ann_pair.public_jwk(), ann_id, id, &history.items[0].content);
    assert_eq!(text.expect("still readable"), "before the move");

    // The token was spent.
    let again = ann.change_email(&token, "ann@third.example.org", PASSWORD, None).await;
    assert_api_error(again, StatusCode::BAD_REQUEST, "invalid_token");
}
