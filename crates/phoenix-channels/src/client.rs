//! The client's transport: [`Frame`]s as the WebSocket messages of `tungstenite` (what
//! `tokio-tungstenite` sends and receives), so a client speaks the protocol with this crate's
//! codec and only owns its connection.

use bytes::Bytes;
use tungstenite::{Message as WsMessage, Utf8Bytes};

use crate::codec::Frame;

impl Frame {
    /// The data frame a WebSocket message carries; `None` for pings, pongs and closes.
    pub fn from_ws(message: WsMessage) -> Option<Frame> {
        match message {
            WsMessage::Text(text) => Some(Frame::Text(Bytes::from(text))),
            WsMessage::Binary(bytes) => Some(Frame::Binary(bytes)),
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Close(_) | WsMessage::Frame(_) => None,
        }
    }

    /// The WebSocket message that carries this frame.
    ///
    /// # Panics
    ///
    /// On a text frame that is not UTF-8, which the codec never writes.
    pub fn into_ws(self) -> WsMessage {
        match self {
            Frame::Text(bytes) => {
                WsMessage::Text(Utf8Bytes::try_from(bytes).expect("the codec writes valid UTF-8 in text frames"))
            }
            Frame::Binary(bytes) => WsMessage::Binary(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Message, Payload, Ref, Vsn};

    #[test]
    fn a_json_push_is_a_text_message_and_back() {
        let push =
            Message::new(Some(Ref::text("3")), Some(Ref::text("4")), "room:1", "msg", Payload::Json(json!({"x": 1})));
        let sent = Vsn::V2.encode_for_server(&push).expect("encodes").into_ws();
        assert_eq!(sent, WsMessage::text(r#"["3","4","room:1","msg",{"x":1}]"#));
        let frame = Frame::from_ws(sent).expect("a data frame");
        assert_eq!(Vsn::V2.decode(&frame), Ok(push));
    }

    #[test]
    fn a_binary_push_is_a_binary_message_and_back() {
        let push = Message::new(
            Some(Ref::text("3")),
            Some(Ref::text("5")),
            "room:1",
            "binmsg",
            Payload::Binary(Bytes::from_static(&[1, 2, 3])),
        );
        let sent = Vsn::V2.encode_for_server(&push).expect("encodes").into_ws();
        assert_eq!(sent, WsMessage::binary(&b"\x00\x01\x01\x06\x0635room:1binmsg\x01\x02\x03"[..]));
        let frame = Frame::from_ws(sent).expect("a data frame");
        assert_eq!(Vsn::V2.decode(&frame), Ok(push));
    }

    #[test]
    fn control_messages_carry_no_frame() {
        assert_eq!(Frame::from_ws(WsMessage::Ping(Bytes::new())), None);
        assert_eq!(Frame::from_ws(WsMessage::Close(None)), None);
    }
}
