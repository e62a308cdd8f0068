//! The socket transport against a real WebSocket client: refusal before the upgrade,
//! subprotocols, heartbeats, joins and their ordering, replies, binary frames, size and idle
//! limits, garbage tolerance, and slow readers — with a toy application as the handler.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt as _, StreamExt as _};
use phoenix_channels::server::{Broadcast, ConnectRequest, Handler, Refused, Reply, SocketConfig, SocketHandle};
use phoenix_channels::{Payload, Vsn};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[derive(Clone, Default)]
struct App {
    sockets: Arc<Mutex<Vec<SocketHandle>>>,
    config: SocketConfig,
}

struct Toy {
    me: SocketHandle,
    app: App,
}

impl Handler for Toy {
    async fn opened(&mut self) {}

    async fn join(&mut self, topic: &str, payload: Payload) -> Result<Value, Value> {
        if topic == "room:forbidden" {
            return Err(json!({ "reason": "forbidden" }));
        }
        Ok(json!({ "joined": topic, "params": payload.as_json().cloned().unwrap_or(Value::Null) }))
    }

    async fn joined(&mut self, topic: &str) {
        let _ = self.me.push(topic, "presence_state", Payload::Json(json!({})));
    }

    async fn handle_in(&mut self, topic: &str, event: &str, payload: Payload) -> Option<Reply> {
        match event {
            "echo" => Some(Reply { status: "ok".into(), response: payload }),
            "shout" => {
                let broadcast = Broadcast::new(topic, "shout", payload);
                for socket in self.app.sockets.lock().expect("lock").iter() {
                    let _ = socket.broadcast(broadcast.clone());
                }
                Some(Reply::ok(json!({})))
            }
            "flood" => {
                for i in 0..100_000 {
                    if self.me.push(topic, "flood", Payload::Json(json!({ "i": i, "pad": "x".repeat(1000) }))).is_err()
                    {
                        break;
                    }
                }
                None
            }
            "burst" => {
                let count = payload.as_json().and_then(|p| p["count"].as_u64()).unwrap_or(0);
                for i in 0..count {
                    let _ = self.me.push(topic, "burst", Payload::Json(json!({ "i": i, "pad": "x".repeat(1000) })));
                }
                Some(Reply::ok(json!({ "queued": count })))
            }
            "kick" => {
                let _ = self.me.close_channel(topic);
                None
            }
            _ => Some(Reply::error("unknown event")),
        }
    }

    async fn left(&mut self, _topic: &str) {}

    async fn closed(&mut self) {}
}

async fn socket(
    State(app): State<App>,
    ws: WebSocketUpgrade,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let request = match ConnectRequest::parse(query.as_deref(), &headers) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    let token = request.param("token").map(str::to_owned).or_else(|| request.bearer_token.clone());
    if token.as_deref() != Some("good") {
        return Refused.into_response();
    }
    let config = app.config.clone();
    request.upgrade(ws, &config, move |me| {
        app.sockets.lock().expect("lock").push(me.clone());
        Toy { me, app }
    })
}

async fn serve(config: SocketConfig) -> SocketAddr {
    let app = App { sockets: Arc::default(), config };
    let router = axum::Router::new().route("/socket/websocket", axum::routing::get(socket)).with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    addr
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr, query: &str) -> Client {
    tokio_tungstenite::connect_async(format!("ws://{addr}/socket/websocket?{query}")).await.expect("connect").0
}

async fn send(client: &mut Client, frame: Value) {
    client.send(WsMessage::text(frame.to_string())).await.expect("send");
}

/// The next text frame as JSON (bounded wait).
async fn next_json(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .expect("a frame within 5 s")
            .expect("open")
            .expect("frame");
        match message {
            WsMessage::Text(text) => return serde_json::from_str(&text).expect("json"),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn close_code(client: &mut Client) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next()).await.expect("closed within 10 s") {
            Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test]
async fn refused_before_the_upgrade_with_403() {
    let addr = serve(SocketConfig::default()).await;
    for query in ["token=bad&vsn=2.0.0", "token=good&vsn=3.0.0", "vsn=2.0.0"] {
        let error = tokio_tungstenite::connect_async(format!("ws://{addr}/socket/websocket?{query}"))
            .await
            .expect_err("refused");
        let tokio_tungstenite::tungstenite::Error::Http(response) = error else { panic!("an HTTP refusal: {error:?}") };
        assert_eq!(response.status(), 403, "{query}");
    }
}

#[tokio::test]
async fn the_phoenix_subprotocol_is_selected_and_the_bearer_token_accepted() {
    let addr = serve(SocketConfig::default()).await;
    let mut request = format!("ws://{addr}/socket/websocket?vsn=2.0.0").into_client_request().expect("request");
    // "good" in standard base64 without padding, as the JS client sends it.
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "phoenix, base64url.bearer.phx.Z29vZA".parse().expect("header"));
    let (mut client, response) = tokio_tungstenite::connect_async(request).await.expect("accepted");
    assert_eq!(response.headers().get("sec-websocket-protocol").map(|v| v.as_bytes()), Some(&b"phoenix"[..]));
    send(&mut client, json!([null, "1", "phoenix", "heartbeat", {}])).await;
    assert_eq!(
        next_json(&mut client).await,
        json!([null, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
}

#[tokio::test]
async fn join_reply_comes_before_pushes_and_refs_echo_exactly() {
    let addr = serve(SocketConfig::default()).await;
    let mut client = connect(addr, "token=good&vsn=2.0.0").await;
    send(&mut client, json!([7, 7, "room:1", "phx_join", {"a": 1}])).await;
    assert_eq!(
        next_json(&mut client).await,
        json!([7, 7, "room:1", "phx_reply", {"status": "ok", "response": {"joined": "room:1", "params": {"a": 1}}}])
    );
    assert_eq!(next_json(&mut client).await, json!([7, null, "room:1", "presence_state", {}]));
    send(&mut client, json!([7, "8", "room:1", "echo", {"x": [1, 2]}])).await;
    assert_eq!(
        next_json(&mut client).await,
        json!([7, "8", "room:1", "phx_reply", {"status": "ok", "response": {"x": [1, 2]}}])
    );
    send(&mut client, json!([7, "9", "room:1", "nope", {}])).await;
    assert_eq!(next_json(&mut client).await[4], json!({"status": "error", "response": {"reason": "unknown event"}}));
}

#[tokio::test]
async fn refusals_unmatched_topics_and_garbage_leave_the_socket_up() {
    let addr = serve(SocketConfig::default()).await;
    let mut client = connect(addr, "token=good&vsn=2.0.0").await;
    send(&mut client, json!(["1", "1", "room:forbidden", "phx_join", {}])).await;
    assert_eq!(
        next_json(&mut client).await,
        json!(["1", "1", "room:forbidden", "phx_reply", {"status": "error", "response": {"reason": "forbidden"}}])
    );
    send(&mut client, json!(["1", "2", "room:nowhere", "echo", {}])).await;
    assert_eq!(
        next_json(&mut client).await,
        json!([null, "2", "room:nowhere", "phx_reply", {"status": "error", "response": {"reason": "unmatched topic"}}])
    );
    client.send(WsMessage::text("{not json")).await.expect("send");
    client.send(WsMessage::text("[1,2]")).await.expect("send");
    client.send(WsMessage::binary(vec![9u8, 1, 2])).await.expect("send");
    send(&mut client, json!([null, "3", "phoenix", "heartbeat", {}])).await;
    assert_eq!(next_json(&mut client).await[1], json!("3"), "still answering");
}

#[tokio::test]
async fn duplicate_joins_close_the_old_channel_after_the_new_reply() {
    let addr = serve(SocketConfig::default()).await;
    let mut client = connect(addr, "token=good&vsn=2.0.0").await;
    send(&mut client, json!(["1", "1", "room:1", "phx_join", {}])).await;
    next_json(&mut client).await;
    next_json(&mut client).await;
    send(&mut client, json!(["2", "2", "room:1", "phx_join", {}])).await;
    assert_eq!(next_json(&mut client).await[3], json!("phx_reply"), "the new join's reply first");
    assert_eq!(next_json(&mut client).await, json!(["1", "1", "room:1", "phx_close", {}]));
    assert_eq!(next_json(&mut client).await, json!(["2", null, "room:1", "presence_state", {}]));
    send(&mut client, json!(["2", "3", "room:1", "kick", {}])).await;
    assert_eq!(next_json(&mut client).await, json!(["2", "2", "room:1", "phx_close", {}]));
}

#[tokio::test]
async fn binary_pushes_get_binary_replies_and_broadcasts_reach_joined_sockets() {
    let addr = serve(SocketConfig::default()).await;
    let mut a = connect(addr, "token=good&vsn=2.0.0").await;
    let mut b = connect(addr, "token=good").await; // V1
    send(&mut a, json!(["1", "1", "room:1", "phx_join", {}])).await;
    next_json(&mut a).await;
    next_json(&mut a).await;
    b.send(WsMessage::text(json!({"topic": "room:1", "event": "phx_join", "payload": {}, "ref": "5"}).to_string()))
        .await
        .expect("send");
    assert_eq!(next_json(&mut b).await["payload"]["status"], "ok");
    next_json(&mut b).await;

    let mut frame = vec![0u8, 1, 1, 6, 4];
    frame.extend_from_slice(b"12room:1echo");
    frame.extend_from_slice(&[0xde, 0xad]);
    a.send(WsMessage::binary(frame)).await.expect("send");
    let reply =
        tokio::time::timeout(Duration::from_secs(5), a.next()).await.expect("reply").expect("open").expect("frame");
    let mut expected = vec![1u8, 1, 1, 6, 2];
    expected.extend_from_slice(b"12room:1ok");
    expected.extend_from_slice(&[0xde, 0xad]);
    assert_eq!(reply, WsMessage::binary(expected));

    send(&mut a, json!(["1", "3", "room:1", "shout", {"hi": true}])).await;
    // The reply is written when the handler returns; the broadcast it queued follows.
    assert_eq!(next_json(&mut a).await[1], json!("3"));
    assert_eq!(next_json(&mut a).await, json!([null, null, "room:1", "shout", {"hi": true}]));
    assert_eq!(
        next_json(&mut b).await,
        json!({"topic": "room:1", "event": "shout", "payload": {"hi": true}, "ref": null})
    );
}

/// Pushes queued while a turn runs go out after its reply, in order and all of them, also
/// when they are more than one write carries and more bytes than the write buffer holds.
#[tokio::test]
async fn a_burst_of_pushes_arrives_whole_and_in_order_after_the_reply() {
    let addr = serve(SocketConfig::default()).await;
    let mut client = connect(addr, "token=good&vsn=2.0.0").await;
    send(&mut client, json!(["1", "1", "room:1", "phx_join", {}])).await;
    next_json(&mut client).await;
    next_json(&mut client).await;
    let count = 200; // about 200 KB, within the queue's 256
    send(&mut client, json!(["1", "2", "room:1", "burst", {"count": count}])).await;
    assert_eq!(
        next_json(&mut client).await,
        json!(["1", "2", "room:1", "phx_reply", {"status": "ok", "response": {"queued": count}}])
    );
    for i in 0..count {
        let push = next_json(&mut client).await;
        assert_eq!((&push[2], &push[3], &push[4]["i"]), (&json!("room:1"), &json!("burst"), &json!(i)));
    }
    // The socket is still answering.
    send(&mut client, json!(["1", "3", "room:1", "echo", {"after": true}])).await;
    assert_eq!(next_json(&mut client).await[4]["response"], json!({"after": true}));
}

#[tokio::test]
async fn oversized_frames_close_with_1009() {
    let addr = serve(SocketConfig { max_message_size: 1024, ..SocketConfig::default() }).await;
    let mut client = connect(addr, "token=good&vsn=2.0.0").await;
    send(&mut client, json!([null, "1", "phoenix", "heartbeat", {"pad": "x".repeat(4096)}])).await;
    assert_eq!(close_code(&mut client).await, Some(CloseCode::Size));
}

#[tokio::test]
async fn idle_sockets_are_closed_with_1001() {
    let addr = serve(SocketConfig { idle_timeout: Duration::from_millis(200), ..SocketConfig::default() }).await;
    let mut client = connect(addr, "token=good&vsn=2.0.0").await;
    assert_eq!(close_code(&mut client).await, Some(CloseCode::Away));
}

#[tokio::test]
async fn a_socket_whose_queue_overflows_is_disconnected_not_buffered() {
    let addr = serve(SocketConfig { queue_capacity: 8, ..SocketConfig::default() }).await;
    let mut client = connect(addr, "token=good&vsn=2.0.0").await;
    send(&mut client, json!(["1", "1", "room:1", "phx_join", {}])).await;
    next_json(&mut client).await;
    // The handler queues far more than the queue holds before the socket can drain any.
    send(&mut client, json!(["1", "2", "room:1", "flood", {}])).await;
    let mut frames = 0;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next()).await.expect("progress") {
            Some(Ok(WsMessage::Close(frame))) => break frame.map(|f| f.code),
            Some(Ok(_)) => frames += 1,
            Some(Err(_)) | None => break None,
        }
    };
    assert_eq!(closed, Some(CloseCode::Away));
    assert!(frames < 100_000, "the flood was cut short ({frames} frames)");
}

#[test]
fn vsn_is_exported_for_applications() {
    assert_eq!(Vsn::parse(Some("2.0.0")), Ok(Vsn::V2));
}
