//! `/metrics` on the real binary (issue 24 §8): HTTP requests by route template and status with
//! their latency, open sockets, joined topics, messages sent and delivered, login attempts and
//! refusals, and database failures, each moved by the events it counts.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{Api, tokens};
use crate::harness::{self, Hearth, WAIT};
use crate::socket::Socket;

/// The metrics text, read as a loopback client (the only kind `/metrics` answers by default).
async fn scrape(hearth: &Hearth) -> String {
    let response = harness::client().get(hearth.at("/metrics")).send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    response.text().await.expect("the metrics text")
}

/// Asserts that each of `lines` is a whole line of `text`.
fn assert_lines(text: &str, lines: &[&str]) {
    let missing: Vec<&&str> = lines.iter().filter(|line| !text.lines().any(|l| l == **line)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{text}");
}

/// Someone registered, with a socket on their user topic and `system:general`.
struct Member {
    id: Uuid,
    token: String,
    socket: Socket,
}

async fn member(hearth: &Hearth, api: &Api, email: &str) -> Member {
    let body = json!({"email": email, "password": "metrics-password-1", "display_name": email});
    let session = api.expect(201, Method::POST, "/auth/register", None, Some(body)).await;
    let (token, _) = tokens(&session);
    let id = session["user"]["id"].as_str().and_then(|id| id.parse().ok()).expect("a user id");
    let mut socket = Socket::connect(&hearth.url, &token).await;
    socket.call(&format!("user:{id}"), "phx_join", json!({})).await;
    socket.call("system:general", "phx_join", json!({})).await;
    Member { id, token, socket }
}

#[tokio::test]
async fn metrics_count_requests_sockets_topics_messages_logins_and_store_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    // At debug, the server says when it has let a socket go: the wait for a closed socket's
    // metrics is driven by that line.
    let hearth = Hearth::start(dir.path(), &data_dir, &[("RUST_LOG", "info,hearth_server::realtime=debug")]).await;
    let api = Api::new(harness::client(), &hearth.url);

    // Every series of a fixed label set is there from the start, at zero.
    let text = scrape(&hearth).await;
    assert_lines(
        &text,
        &[
            "hearth_sockets_open 0",
            r#"hearth_topics_joined{topic="system"} 0"#,
            r#"hearth_topics_joined{topic="user"} 0"#,
            r#"hearth_topics_joined{topic="conversation"} 0"#,
            r#"hearth_topics_joined{topic="other"} 0"#,
            "hearth_messages_sent_total 0",
            "hearth_messages_delivered_total 0",
            "hearth_login_attempts_total 0",
            r#"hearth_login_refusals_total{reason="wrong_credentials"} 0"#,
            r#"hearth_login_refusals_total{reason="rate_limited"} 0"#,
            "hearth_store_errors_total 0",
        ],
    );

    // Logins: one that succeeds, a wrong password, an email that is not one.
    let mut ann = member(&hearth, &api, "ann@example.org").await;
    let mut bob = member(&hearth, &api, "bob@example.org").await;
    let login = |email: &str, password: &str| json!({"email": email, "password": password});
    api.expect(200, Method::POST, "/auth/login", None, Some(login("ann@example.org", "metrics-password-1"))).await;
    api.expect(401, Method::POST, "/auth/login", None, Some(login("ann@example.org", "not-her-password"))).await;
    api.expect(422, Method::POST, "/auth/login", None, Some(login("not an email", "metrics-password-1"))).await;
    // A path with an id, and one that matches no route: labelled by template, never by path.
    let device = Uuid::new_v4();
    api.expect(404, Method::DELETE, &format!("/api/devices/{device}"), Some(&ann.token), None).await;
    api.expect(404, Method::GET, &format!("/no/such/{device}"), None, None).await;

    // A conversation both join, and a message with a copy for each.
    let payload = json!({"other_user_id": bob.id, "public_key": {"kty": "EC"}, "private_key": {"wrapped": "k"}});
    let started = ann.socket.call("system:general", "start_private_conversation", payload).await;
    let conversation = started["conversation"]["id"].as_str().expect("a conversation id").to_owned();
    let topic = format!("conversation:{conversation}");
    ann.socket.call(&topic, "phx_join", json!({})).await;
    bob.socket.call(&topic, "phx_join", json!({})).await;
    let copies = json!({"encrypted_messages": {ann.id.to_string(): "for ann", bob.id.to_string(): "for bob"}});
    ann.socket.call(&topic, "send_message", copies).await;
    let bob_topic = format!("user:{}", bob.id);
    loop {
        let frame: Value = bob.socket.next_frame().await;
        if frame[2] == bob_topic.as_str() && frame[3] == "new_message" {
            break;
        }
    }

    let text = scrape(&hearth).await;
    let device_route = r#"hearth_http_requests_total{method="DELETE",route="/api/devices/{id}",status="404"} 1"#;
    assert_lines(
        &text,
        &[
            "hearth_sockets_open 2",
            r#"hearth_topics_joined{topic="system"} 2"#,
            r#"hearth_topics_joined{topic="user"} 2"#,
            r#"hearth_topics_joined{topic="conversation"} 2"#,
            "hearth_messages_sent_total 1",
            "hearth_messages_delivered_total 2",
            "hearth_login_attempts_total 3",
            r#"hearth_login_refusals_total{reason="wrong_credentials"} 1"#,
            r#"hearth_login_refusals_total{reason="invalid"} 1"#,
            r#"hearth_login_refusals_total{reason="rate_limited"} 0"#,
            r#"hearth_http_requests_total{method="POST",route="/auth/login",status="200"} 1"#,
            r#"hearth_http_requests_total{method="POST",route="/auth/login",status="401"} 1"#,
            r#"hearth_http_requests_total{method="POST",route="/auth/login",status="422"} 1"#,
            r#"hearth_http_requests_total{method="POST",route="/auth/register",status="201"} 2"#,
            r#"hearth_http_requests_total{method="GET",route="/socket/websocket",status="101"} 2"#,
            device_route,
            r#"hearth_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
            r#"hearth_http_request_duration_seconds_count{method="POST",route="/auth/login"} 3"#,
            r#"hearth_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/auth/login"} 3"#,
        ],
    );
    assert!(!text.contains(&device.to_string()), "a path's id became a label value:\n{text}");
    assert!(!text.contains("metrics-password-1") && !text.contains("ann@example.org"), "{text}");

    // Bob goes: his socket and its three topics are no longer counted.
    let mark = hearth.process.mark();
    drop(bob.socket);
    hearth.process.wait_line(mark, WAIT, |line| line.contains("socket closed")).await;
    let text = scrape(&hearth).await;
    assert_lines(
        &text,
        &[
            "hearth_sockets_open 1",
            r#"hearth_topics_joined{topic="system"} 1"#,
            r#"hearth_topics_joined{topic="user"} 1"#,
            r#"hearth_topics_joined{topic="conversation"} 1"#,
        ],
    );

    // A database that refuses a write (a trigger added behind the server's back): the request
    // fails with a bare 500 and the failure is counted.
    let database = rusqlite::Connection::open(data_dir.join("hearth.db")).expect("the database opens");
    database
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE UPDATE ON profiles BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        )
        .expect("the trigger is added");
    let (status, body) = api.call(Method::PATCH, "/api/profile", Some(&ann.token), Some(json!({"hidden": true}))).await;
    assert_eq!((status.as_u16(), &body["error"]), (500, &json!("internal")), "{body}");
    assert!(!body.to_string().contains("disk on fire"), "{body}");
    assert_lines(&scrape(&hearth).await, &["hearth_store_errors_total 1"]);
    database.execute_batch("DROP TRIGGER refuse;").expect("the trigger is dropped");
    api.expect(200, Method::PATCH, "/api/profile", Some(&ann.token), Some(json!({"hidden": true}))).await;
    drop(ann.socket);
    hearth.stop().await;
}
