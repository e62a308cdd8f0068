//! The Phoenix socket at /socket/websocket: authentication before the upgrade, topic join
//! rules, and revocation reaching live sockets. Also the REST side of conversations.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::harness::{PASSWORD, spawn_app};
use crate::socket_client::{Client, connect, next_json, reply_to, send};

/// Joins a topic and returns the reply's payload.
async fn join(client: &mut Client, topic: &str) -> Value {
    send(client, json!(["1", "1", topic, "phx_join", {}])).await;
    let reply = reply_to(client, "1").await;
    assert_eq!((&reply[2], &reply[3]), (&json!(topic), &json!("phx_reply")), "{reply}");
    reply[4].clone()
}

/// Waits for the server to close the socket; its close code.
async fn closed_with(client: &mut Client) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), client.next()).await.expect("closed within 5 s") {
            Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_need_a_live_access_token_before_the_upgrade() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    assert_eq!(connect(&app, "garbage").await.err(), Some(403));
    assert_eq!(connect(&app, "").await.err(), Some(403));
    let url = format!("ws://{}/socket/websocket?token={}&vsn=9.0.0", app.addr, ann.auth_token);
    assert!(tokio_tungstenite::connect_async(url).await.is_err(), "unknown vsn is refused");
    let mut socket = connect(&app, &ann.auth_token).await.expect("accepted");
    send(&mut socket, json!([null, "7", "phoenix", "heartbeat", {}])).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!([null, "7", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_joined_only_by_who_may() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let mut socket = connect(&app, &ann.auth_token).await.expect("accepted");
    assert_eq!(join(&mut socket, "system:general").await["status"], "ok");
    assert_eq!(join(&mut socket, &format!("user:{}", ann.user_id)).await["status"], "ok");
    let other = join(&mut socket, &format!("user:{}", bob.user_id)).await;
    assert_eq!(other["status"], "error");
    assert!(other["response"]["reason"].as_str().is_some_and(|r| !r.is_empty()));
    let unknown = join(&mut socket, &format!("conversation:{}", uuid::Uuid::now_v7())).await;
    assert_eq!(
        unknown,
        json!({"status": "error", "response": {"error": "not_found", "reason": "conversation not found"}})
    );
    assert_eq!(join(&mut socket, "room:lobby").await["response"]["reason"], "unknown topic");
    // Still up after every refusal.
    send(&mut socket, json!([null, "9", "phoenix", "heartbeat", {}])).await;
    let heartbeat = loop {
        let frame = next_json(&mut socket).await;
        if frame[3] == "phx_reply" {
            break frame;
        }
    };
    assert_eq!(heartbeat[1], "9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_device_closes_its_sockets_and_it_cannot_reconnect() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let phone = app.login_device(&ann.email, PASSWORD, "phone").await;
    let mut phone_socket = connect(&app, &phone.auth_token).await.expect("accepted");
    let mut laptop_socket = connect(&app, &ann.auth_token).await.expect("accepted");
    join(&mut phone_socket, &format!("user:{}", ann.user_id)).await;

    let devices = app.get_authed("/api/devices", &ann.auth_token).await;
    let devices = devices.expect_status(StatusCode::OK)["items"].as_array().expect("items").clone();
    let phone_id =
        devices.iter().find(|d| d["name"] == "phone").expect("phone listed")["id"].as_str().expect("id").to_owned();
    app.delete_authed(&format!("/api/devices/{phone_id}"), &ann.auth_token, None)
        .await
        .expect_status(StatusCode::NO_CONTENT);

    assert_eq!(closed_with(&mut phone_socket).await, Some(CloseCode::Away), "1001: clients reconnect");
    assert_eq!(connect(&app, &phone.auth_token).await.err(), Some(403));
    // The other device's socket is untouched.
    send(&mut laptop_socket, json!([null, "2", "phoenix", "heartbeat", {}])).await;
    assert_eq!(next_json(&mut laptop_socket).await[1], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_closes_its_sessions_sockets() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let laptop = app.login_device(&ann.email, PASSWORD, "laptop").await;
    let mut stolen_socket = connect(&app, &ann.auth_token).await.expect("accepted");
    let mut laptop_socket = connect(&app, &laptop.auth_token).await.expect("accepted");
    join(&mut stolen_socket, &format!("user:{}", ann.user_id)).await;

    app.refresh(&ann.refresh_token).await.expect_status(StatusCode::OK);
    // The spent token again: someone holds a copy, so the whole session goes, sockets too.
    app.assert_refresh_refused(&ann.refresh_token).await;
    assert_eq!(closed_with(&mut stolen_socket).await, Some(CloseCode::Away));
    assert_eq!(connect(&app, &ann.auth_token).await.err(), Some(403));
    send(&mut laptop_socket, json!([null, "2", "phoenix", "heartbeat", {}])).await;
    assert_eq!(next_json(&mut laptop_socket).await[1], "2", "another session's socket stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signout_all_and_password_changes_close_every_socket_of_the_user() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let second = app.login_ok(&ann.email, PASSWORD).await;
    let mut a = connect(&app, &ann.auth_token).await.expect("accepted");
    let mut b = connect(&app, &second.auth_token).await.expect("accepted");
    app.post_authed("/api/signout_all", &ann.auth_token, None).await.expect_status(StatusCode::NO_CONTENT);
    assert_eq!(closed_with(&mut a).await, Some(CloseCode::Away));
    assert_eq!(closed_with(&mut b).await, Some(CloseCode::Away));
    assert_eq!(connect(&app, &second.auth_token).await.err(), Some(403));

    let fresh = app.login_ok(&ann.email, PASSWORD).await;
    let mut c = connect(&app, &fresh.auth_token).await.expect("accepted");
    let change = json!({"password": PASSWORD, "new_password": "another password 2", "new_password_confirmation": "another password 2"});
    app.patch_authed("/api/password", &fresh.auth_token, &change).await.expect_status(StatusCode::NO_CONTENT);
    assert_eq!(closed_with(&mut c).await, Some(CloseCode::Away));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_endpoints_answer_for_the_caller_only() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let list = app.get_authed("/api/conversations", &ann.auth_token).await;
    assert_eq!(list.expect_status(StatusCode::OK), &json!({"items": []}));
    let private = app.get_authed(&format!("/api/conversations/private/{}", bob.user_id), &ann.auth_token).await;
    assert_eq!(private.expect_status(StatusCode::OK), &json!({"conversation_id": null}));
    // Malformed is 422, nobody is 404 (the rule of every route that takes an id).
    let malformed = app.get_authed("/api/conversations/private/not-a-uuid", &ann.auth_token).await;
    assert_eq!(malformed.expect_invalid("user_id"), ["must be a UUID"]);
    let nobody = format!("/api/conversations/private/{}", uuid::Uuid::now_v7());
    app.get_authed(&nobody, &ann.auth_token).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get_authed("/api/messages", &ann.auth_token).await.expect_invalid("conversation_id");
    let unknown = format!("/api/messages?conversation_id={}", uuid::Uuid::now_v7());
    app.get_authed(&unknown, &ann.auth_token).await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

/// A V2 binary push frame, as the JS client writes one for an `ArrayBuffer` payload.
fn binary_push(join_ref: &str, msg_ref: &str, topic: &str, event: &str, payload: &[u8]) -> Vec<u8> {
    let lengths = [join_ref, msg_ref, topic, event].map(|s| u8::try_from(s.len()).expect("short"));
    let mut frame = vec![0];
    frame.extend_from_slice(&lengths);
    for part in [join_ref, msg_ref, topic, event] {
        frame.extend_from_slice(part.as_bytes());
    }
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_binary_answers_a_binary_push_with_the_same_bytes_in_a_binary_reply() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let mut socket = connect(&app, &ann.auth_token).await.expect("accepted");
    assert_eq!(join(&mut socket, "system:general").await["status"], "ok");
    let payload: Vec<u8> = (0..=255).collect();
    let push = binary_push("1", "5", "system:general", "echo_binary", &payload);
    socket.send(WsMessage::binary(push)).await.expect("send");
    let reply = loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("open")
            .expect("frame");
        if let WsMessage::Binary(bytes) = message {
            break bytes;
        }
    };
    let mut expected = vec![1, 1, 1, 14, 2];
    expected.extend_from_slice(b"15system:generalok");
    expected.extend_from_slice(&payload);
    assert_eq!(reply.to_vec(), expected, "kind 1 (reply), join_ref, ref, topic, status \"ok\", the same bytes");

    // A JSON payload is refused; a binary one for a JSON event gets a JSON error reply.
    send(&mut socket, json!(["1", "6", "system:general", "echo_binary", {}])).await;
    let refused = reply_to(&mut socket, "6").await;
    assert_eq!(refused[4]["status"], "error", "{refused}");
    socket.send(WsMessage::binary(binary_push("1", "7", "system:general", "set_hidden", b"x"))).await.expect("send");
    assert_eq!(
        reply_to(&mut socket, "7").await,
        json!(["1", "7", "system:general", "phx_reply", {"status": "error", "response": {"error": "json_expected", "reason": "expected a JSON payload"}}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_closes_sockets_with_1001() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let mut socket = connect(&app, &ann.auth_token).await.expect("accepted");
    join(&mut socket, "system:general").await;
    drop(app); // stops the server
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::Away), "a close frame, not a dropped connection");
}
