//! The socket transport against a real WebSocket client: refusal before the upgrade,
//! subprotocols, heartbeats, joins and their ordering, replies, binary frames, size and idle
//! limits, garbage tolerance, and slow readers — with a toy application as the handler.
//!
//! The server runs as applications run it, on a [`Listener`] whose connections take broadcasts
//! directly; [`serve_through_queues`] runs it on a plain listener, where every broadcast goes
//! through the socket's queue, and the tests of broadcasts run on both.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt as _, StreamExt as _};
use phoenix_channels::server::{
    Broadcast, ConnectRequest, Handler, Listener, Outbox, Refused, Reply, ServeConnections, SocketConfig, SocketHandle,
};
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
            "shout_many" => {
                let payload = payload.as_json().cloned().unwrap_or(Value::Null);
                let from = payload["from"].as_u64().unwrap_or(0);
                let count = payload["count"].as_u64().unwrap_or(0);
                let pad = "x".repeat(usize::try_from(payload["pad"].as_u64().unwrap_or(0)).unwrap_or(0));
                let sockets = self.app.sockets.lock().expect("lock").clone();
                for i in from..from + count {
                    let broadcast = Broadcast::new(topic, "shout", Payload::Json(json!({ "i": i, "pad": pad })));
                    for socket in &sockets {
                        let _ = socket.broadcast(broadcast.clone());
                    }
                }
                Some(Reply::ok(json!({})))
            }
            "flood" => {
                let pad = "x".repeat(payload.as_json().and_then(|p| p["pad"].as_u64()).map_or(1000, |n| n as usize));
                for i in 0..100_000 {
                    if self.me.push(topic, "flood", Payload::Json(json!({ "i": i, "pad": pad }))).is_err() {
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
    outbox: Option<Extension<Outbox>>,
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
    request.upgrade(ws, &config, outbox.map(|Extension(outbox)| outbox), move |me| {
        app.sockets.lock().expect("lock").push(me.clone());
        Toy { me, app }
    })
}

/// The server as applications run it: broadcasts are written directly when they can be.
async fn serve(config: SocketConfig) -> SocketAddr {
    serve_app(config).await.0
}

/// [`serve`], and the application with the handles of its sockets.
async fn serve_app(config: SocketConfig) -> (SocketAddr, App) {
    let (router, listener, app) = app(config).await;
    let addr = listener.local_addr().expect("addr");
    let listener = Listener::from(listener);
    tokio::spawn(async move { axum::serve(listener, ServeConnections(router)).await.expect("serve") });
    (addr, app)
}

/// The server on a plain listener: no outbox, every broadcast through the socket's queue.
async fn serve_through_queues(config: SocketConfig) -> SocketAddr {
    let (router, listener, _) = app(config).await;
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    addr
}

async fn app(config: SocketConfig) -> (axum::Router, tokio::net::TcpListener, App) {
    let app = App { sockets: Arc::default(), config };
    let router = axum::Router::new().route("/socket/websocket", axum::routing::get(socket)).with_state(app.clone());
    (router, tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"), app)
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr, query: &str) -> Client {
    tokio_tungstenite::connect_async(format!("ws://{addr}/socket/websocket?{query}")).await.expect("connect").0
}

async fn send(client: &mut Client, frame: Value) {
    client.send(WsMessage::text(frame.to_string())).await.expect("send");
}

/// The next frame of any kind (bounded wait).
async fn next_frame(client: &mut Client) -> WsMessage {
    tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .expect("a frame within 5 s")
        .expect("open")
        .expect("frame")
}

/// The next text frame as JSON (bounded wait).
async fn next_json(client: &mut Client) -> Value {
    loop {
        match next_frame(client).await {
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
    binary_pushes_and_broadcasts(serve(SocketConfig::default()).await).await;
}

#[tokio::test]
async fn binary_pushes_get_binary_replies_and_broadcasts_reach_joined_sockets_through_queues() {
    binary_pushes_and_broadcasts(serve_through_queues(SocketConfig::default()).await).await;
}

async fn binary_pushes_and_broadcasts(addr: SocketAddr) {
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
    let reply = next_frame(&mut a).await;
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

    // A binary broadcast: V2 sockets get it as a binary broadcast frame, byte for byte (an idle
    // one written directly, the shouter's own copy through its queue); V1 cannot carry it.
    let mut c = connect(addr, "token=good&vsn=2.0.0").await;
    send(&mut c, json!(["1", "1", "room:1", "phx_join", {}])).await;
    next_json(&mut c).await;
    next_json(&mut c).await;
    let mut shout = vec![0u8, 1, 1, 6, 5];
    shout.extend_from_slice(b"14room:1shout");
    shout.extend_from_slice(&[0xca, 0xfe]);
    a.send(WsMessage::binary(shout)).await.expect("send");
    let mut broadcast = vec![2u8, 6, 5];
    broadcast.extend_from_slice(b"room:1shout");
    broadcast.extend_from_slice(&[0xca, 0xfe]);
    for client in [&mut c, &mut a] {
        loop {
            if let WsMessage::Binary(bytes) = next_frame(client).await {
                assert_eq!(bytes, broadcast);
                break;
            }
        }
    }
    send(&mut b, json!({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "9"})).await;
    assert_eq!(next_json(&mut b).await["ref"], json!("9"), "V1 got nothing before its heartbeat's reply");
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

/// The first `n` elements of a V2 frame.
fn head(frame: &Value, n: usize) -> Value {
    Value::Array(frame.as_array().map(|elements| elements[..n.min(elements.len())].to_vec()).unwrap_or_default())
}

/// Joins `topic` and reads the reply and the `presence_state` push that follows it.
async fn join(client: &mut Client, topic: &str) {
    send(client, json!(["1", "1", topic, "phx_join", {}])).await;
    assert_eq!(next_json(client).await[3], json!("phx_reply"));
    assert_eq!(next_json(client).await[3], json!("presence_state"));
}

/// A reader that reads slowly, and stops for a while, as another socket broadcasts thousands of
/// large frames and its own task writes a burst: whatever the kernel takes at each write, the
/// frames arrive whole (each one parses), each sequence in order and complete.
async fn broadcasts_and_pushes_interleave_whole(addr: SocketAddr) {
    let mut reader = connect(addr, "token=good&vsn=2.0.0").await;
    let mut shouter = connect(addr, "token=good&vsn=2.0.0").await;
    join(&mut reader, "room:1").await;
    join(&mut shouter, "room:1").await;
    let (rounds, per_round, bursts) = (20, 40, 200);
    let shouting = tokio::spawn(async move {
        for round in 0..rounds {
            let shout =
                json!(["1", "2", "room:1", "shout_many", {"from": round * per_round, "count": per_round, "pad": 9000}]);
            send(&mut shouter, shout).await;
            while next_json(&mut shouter).await[3] != json!("phx_reply") {}
        }
    });
    send(&mut reader, json!(["1", "2", "room:1", "burst", {"count": bursts}])).await;
    // The reader's socket buffers fill before it reads anything.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut next_shout, mut next_burst, mut replied, mut frames) = (0, 0, false, 0u64);
    while next_shout < rounds * per_round || next_burst < bursts || !replied {
        let frame = next_json(&mut reader).await;
        frames += 1;
        if frames % 16 == 0 {
            // Slowly: the kernel takes part of a frame now and then.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        match frame[3].as_str() {
            Some("shout") => {
                assert_eq!(frame[4]["i"], json!(next_shout), "shouts in order");
                next_shout += 1;
            }
            Some("burst") => {
                assert!(replied, "the reply comes before what its turn queued");
                assert_eq!(frame[4]["i"], json!(next_burst), "pushes in order");
                next_burst += 1;
            }
            Some("phx_reply") => replied = true,
            other => panic!("unexpected {other:?}: {frame}"),
        }
    }
    shouting.await.expect("the shouter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_written_directly_and_the_sockets_own_frames_arrive_whole_and_in_order() {
    broadcasts_and_pushes_interleave_whole(
        serve(SocketConfig { queue_capacity: 8192, ..SocketConfig::default() }).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_through_queues_and_the_sockets_own_frames_arrive_whole_and_in_order() {
    let addr = serve_through_queues(SocketConfig { queue_capacity: 8192, ..SocketConfig::default() }).await;
    broadcasts_and_pushes_interleave_whole(addr).await;
}

/// A socket joining while broadcasts on its topic pour in hears its join reply first, and from
/// the first broadcast it gets on, every later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_joining_amid_broadcasts_gets_its_reply_first_then_every_broadcast() {
    let addr = serve(SocketConfig { queue_capacity: 8192, ..SocketConfig::default() }).await;
    let mut shouter = connect(addr, "token=good&vsn=2.0.0").await;
    join(&mut shouter, "room:1").await;
    let mut joiner = connect(addr, "token=good&vsn=2.0.0").await;
    let (rounds, per_round) = (40, 200);
    let shouting = tokio::spawn(async move {
        for round in 0..rounds {
            let from = round * per_round;
            send(
                &mut shouter,
                json!(["1", "2", "room:1", "shout_many", {"from": from, "count": per_round, "pad": 10}]),
            )
            .await;
            while next_json(&mut shouter).await[3] != json!("phx_reply") {}
        }
        shouter
    });
    // Some rounds have gone out before the join, more follow during and after it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    send(&mut joiner, json!(["5", "5", "room:1", "phx_join", {}])).await;
    assert_eq!(head(&next_json(&mut joiner).await, 4), json!(["5", "5", "room:1", "phx_reply"]));
    let last = rounds * per_round - 1;
    let mut previous: Option<u64> = None;
    while previous != Some(last) {
        let frame = next_json(&mut joiner).await;
        if frame[3] == json!("presence_state") {
            continue;
        }
        assert_eq!(frame[3], json!("shout"), "{frame}");
        let i = frame[4]["i"].as_u64().expect("a number");
        if let Some(previous) = previous {
            assert_eq!(i, previous + 1, "none missing or out of order after the first");
        }
        previous = Some(i);
    }
    shouting.await.expect("the shouter");
}

/// Once the leave reply is out, no broadcast of that topic follows it.
#[tokio::test]
async fn after_leaving_no_broadcast_of_the_topic_arrives() {
    let addr = serve(SocketConfig::default()).await;
    let mut leaver = connect(addr, "token=good&vsn=2.0.0").await;
    let mut shouter = connect(addr, "token=good&vsn=2.0.0").await;
    join(&mut leaver, "room:1").await;
    join(&mut shouter, "room:1").await;
    send(&mut leaver, json!(["1", "2", "room:1", "phx_leave", {}])).await;
    assert_eq!(head(&next_json(&mut leaver).await, 4), json!(["1", "2", "room:1", "phx_reply"]));
    assert_eq!(next_json(&mut leaver).await[3], json!("phx_close"));
    send(&mut shouter, json!(["1", "3", "room:1", "shout_many", {"count": 50, "pad": 10}])).await;
    let mut shouted = 0;
    while shouted < 50 {
        shouted += u64::from(next_json(&mut shouter).await[3] == json!("shout"));
    }
    send(&mut leaver, json!([null, "9", "phoenix", "heartbeat", {}])).await;
    assert_eq!(head(&next_json(&mut leaver).await, 2), json!([null, "9"]), "the heartbeat's reply, no shout before it");
}

/// A socket that reads nothing while broadcasts pour in: once the kernel takes no more, they
/// queue, and a full queue disconnects it; the broadcaster is unaffected, and what the reader
/// finds when it reads again is whole frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_reads_nothing_is_disconnected_when_broadcasts_fill_its_queue() {
    let addr = serve(SocketConfig { queue_capacity: 8, ..SocketConfig::default() }).await;
    let mut sleeper = connect(addr, "token=good&vsn=2.0.0").await;
    let mut shouter = connect(addr, "token=good&vsn=2.0.0").await;
    join(&mut sleeper, "room:1").await;
    join(&mut shouter, "room:1").await;
    // 2 000 × 20 KB: far more than socket buffers hold. The shouter's own copies go through
    // its queue while its turn runs, so it shouts in rounds that its queue holds.
    for round in 0..250 {
        send(&mut shouter, json!(["1", round.to_string(), "room:1", "shout_many", {"count": 8, "pad": 20_000}])).await;
        let mut replied = false;
        let mut shouts = 0;
        while !replied || shouts < 8 {
            match next_json(&mut shouter).await[3].as_str() {
                Some("phx_reply") => replied = true,
                Some("shout") => shouts += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let mut frames = 0;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), sleeper.next()).await.expect("progress") {
            Some(Ok(WsMessage::Close(frame))) => break frame.map(|f| f.code),
            Some(Ok(WsMessage::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).expect("whole frames");
                assert_eq!(frame[4]["i"].as_u64().map(|i| i < 8), Some(true));
                frames += 1;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    // The close frame too waited behind what it never read: it gets it, or the connection just
    // ends (the server gives it a second to take the frame).
    assert!(matches!(closed, Some(CloseCode::Away) | None), "{closed:?}");
    assert!(frames < 2000, "cut short ({frames} frames)");
}

/// A peer that reads nothing cannot keep its socket: the write it holds up never finishes, yet
/// once its queue overflows the socket ends (its task finishes, the connection is dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_stuck_writing_to_a_peer_that_reads_nothing_still_ends() {
    let (addr, app) = serve_app(SocketConfig { queue_capacity: 8, ..SocketConfig::default() }).await;
    let mut client = connect(addr, "token=good&vsn=2.0.0").await;
    join(&mut client, "room:1").await;
    // 1 MB pushes: the eight the queue holds are far more than the socket buffers take.
    send(&mut client, json!(["1", "2", "room:1", "flood", {"pad": 1_000_000}])).await;
    let socket = app.sockets.lock().expect("lock").first().cloned().expect("the socket");
    tokio::time::timeout(Duration::from_secs(5), async {
        while !socket.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the socket ended within 5 s though its peer reads nothing");
    drop(client);
}

#[test]
fn vsn_is_exported_for_applications() {
    assert_eq!(Vsn::parse(Some("2.0.0")), Ok(Vsn::V2));
}
