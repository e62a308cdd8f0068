//! A bare Phoenix V2 socket client: frames are JSON arrays `[join_ref, ref, topic, event,
//! payload]`; join topics, push events, wait for replies and pushes (each wait bounded).

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::WAIT;

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One open socket.
pub struct Socket {
    stream: Stream,
    next_ref: u64,
}

impl Socket {
    /// Connects to the server at `base` (`http://127.0.0.1:PORT`) with an access token.
    pub async fn connect(base: &str, token: &str) -> Self {
        let host = base.strip_prefix("http://").unwrap_or_else(|| panic!("not a plain HTTP server: {base}"));
        let url = format!("ws://{host}/socket/websocket?token={token}&vsn=2.0.0");
        let (stream, _) = tokio_tungstenite::connect_async(url).await.expect("the socket connects");
        Self { stream, next_ref: 0 }
    }

    /// Sends `event` on `topic` and returns the frame's ref (a join is its own join ref).
    pub async fn push(&mut self, topic: &str, event: &str, payload: Value) -> String {
        self.next_ref += 1;
        let r = self.next_ref.to_string();
        let join_ref = if event == "phx_join" { json!(r) } else { Value::Null };
        let frame = json!([join_ref, r, topic, event, payload]);
        self.stream.send(Message::text(frame.to_string())).await.expect("the frame is sent");
        r
    }

    /// Sends `event` on `topic`, waits for its reply (pushes before it are dropped), asserts it
    /// is `ok` and returns its response.
    pub async fn call(&mut self, topic: &str, event: &str, payload: Value) -> Value {
        let r = self.push(topic, event, payload).await;
        loop {
            let frame = self.next_frame().await;
            if frame[3] == "phx_reply" && frame[1] == r.as_str() {
                assert_eq!(frame[4]["status"], "ok", "{event} on {topic}: {frame}");
                return frame[4]["response"].clone();
            }
        }
    }

    /// The next text frame, as JSON.
    pub async fn next_frame(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {WAIT:?}"))
                .expect("the socket is open")
                .expect("a frame");
            if let Message::Text(text) = message {
                return serde_json::from_str(&text).expect("a JSON frame");
            }
        }
    }
}
