//! A bare Phoenix V2 socket client for tests: connect, send a frame, read the next JSON
//! frame, wait for the reply to a ref.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::harness::TestApp;

/// A client WebSocket.
pub type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects with the token as the `token` param; the HTTP status when refused.
pub async fn connect(app: &TestApp, token: &str) -> Result<Client, u16> {
    let url = format!("ws://{}/socket/websocket?token={token}&vsn=2.0.0", app.addr);
    match tokio_tungstenite::connect_async(url).await {
        Ok((client, _)) => Ok(client),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("connect failed: {other}"),
    }
}

/// Sends one V2 JSON frame.
pub async fn send(client: &mut Client, frame: Value) {
    client.send(WsMessage::text(frame.to_string())).await.expect("send");
}

/// The next text frame as JSON (binary and control frames are skipped; at most 5 s).
pub async fn next_json(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .expect("a frame within 5 s")
            .expect("open")
            .expect("frame");
        if let WsMessage::Text(text) = message {
            return serde_json::from_str(&text).expect("json");
        }
    }
}

/// The JSON reply frame to `msg_ref` (pushes before it, e.g. presence, are skipped).
pub async fn reply_to(client: &mut Client, msg_ref: &str) -> Value {
    loop {
        let frame = next_json(client).await;
        if frame[3] == "phx_reply" && frame[1] == msg_ref {
            return frame;
        }
    }
}
