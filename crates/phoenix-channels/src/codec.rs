//! Serializers: V1 (JSON objects) and V2 (JSON arrays in text frames, binary payloads in
//! binary frames), in both directions.
//!
//! V2 binary layouts (every length one unsigned byte, strings UTF-8):
//!
//! | kind | header | then |
//! |---|---|---|
//! | push `0` (client → server) | `0, jr, ref, topic, event` | join_ref, ref, topic, event, payload |
//! | push `0` (server → client) | `0, jr, topic, event` | join_ref, topic, event, payload |
//! | reply `1` | `1, jr, ref, topic, status` | join_ref, ref, topic, status, payload |
//! | broadcast `2` | `2, topic, event` | topic, event, payload |

use bytes::{BufMut as _, Bytes, BytesMut};
use serde_json::Value;

use crate::message::{Message, Payload, Ref};

const PUSH: u8 = 0;
const REPLY: u8 = 1;
const BROADCAST: u8 = 2;

/// A WebSocket data frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame; always valid UTF-8.
    Text(Bytes),
    /// A binary frame.
    Binary(Bytes),
}

impl Frame {
    fn text(text: String) -> Self {
        Frame::Text(Bytes::from(text))
    }
}

/// The serializer a socket speaks, chosen by the `vsn` connect parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vsn {
    /// `vsn` absent or `~> 1.0.0`: JSON objects, no binary.
    V1,
    /// `~> 2.0.0`: JSON arrays, binary frames.
    V2,
}

/// A `vsn` no serializer matches; the connection is refused (HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported serializer version")]
pub struct UnsupportedVsn;

/// Why a frame did not decode. Never contains the frame's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Text that is not JSON.
    #[error("frame is not valid JSON")]
    Json,
    /// JSON of the wrong shape (not an array of five, not an object with the fields, …).
    #[error("frame has the wrong shape: {0}")]
    Shape(&'static str),
    /// A binary frame is truncated, has an unknown kind, or non-UTF-8 strings.
    #[error("binary frame is malformed: {0}")]
    Binary(&'static str),
    /// Binary frames are not part of V1.
    #[error("binary frames need serializer 2.0.0")]
    BinaryInV1,
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// V1 has no binary payloads.
    #[error("binary payloads need serializer 2.0.0")]
    BinaryInV1,
    /// A string in a binary frame is longer than 255 bytes.
    #[error("{0} is longer than 255 bytes")]
    TooLong(&'static str),
    /// A message of this form has no binary layout (e.g. a push with a ref).
    #[error("{0}")]
    NoBinaryLayout(&'static str),
}

impl Vsn {
    /// Picks the serializer: absent → V1; `1.0.x` → V1; `2.0.x` → V2 (Elixir's `~> x.0.0`);
    /// anything else is refused.
    pub fn parse(vsn: Option<&str>) -> Result<Vsn, UnsupportedVsn> {
        let Some(vsn) = vsn else { return Ok(Vsn::V1) };
        let parts: Vec<Option<u64>> = vsn.split('.').map(|part| part.parse().ok()).collect();
        match parts.as_slice() {
            [Some(1), Some(0), Some(_)] => Ok(Vsn::V1),
            [Some(2), Some(0), Some(_)] => Ok(Vsn::V2),
            _ => Err(UnsupportedVsn),
        }
    }

    /// Server side: a frame from a client.
    pub fn decode(self, frame: &Frame) -> Result<Message, DecodeError> {
        match (self, frame) {
            (Vsn::V1, Frame::Text(text)) => decode_v1(text),
            (Vsn::V1, Frame::Binary(_)) => Err(DecodeError::BinaryInV1),
            (Vsn::V2, Frame::Text(text)) => decode_v2_json(text),
            (Vsn::V2, Frame::Binary(bytes)) => decode_client_binary(bytes),
        }
    }

    /// Server side: a frame for a client. Replies with a binary response and pushes or
    /// broadcasts with binary payloads become binary frames (V2 only); everything else JSON.
    pub fn encode(self, message: &Message) -> Result<Frame, EncodeError> {
        match (self, &message.payload) {
            (Vsn::V1, Payload::Binary(_)) => Err(EncodeError::BinaryInV1),
            (Vsn::V1, Payload::Json(payload)) => Ok(Frame::text(encode_v1(message, payload, false))),
            (Vsn::V2, Payload::Json(payload)) => Ok(Frame::text(encode_v2_json(message, payload))),
            (Vsn::V2, Payload::Binary(bytes)) => encode_server_binary(message, bytes).map(Frame::Binary),
        }
    }

    /// Client side: a frame for the server.
    pub fn encode_for_server(self, message: &Message) -> Result<Frame, EncodeError> {
        match (self, &message.payload) {
            (Vsn::V1, Payload::Binary(_)) => Err(EncodeError::BinaryInV1),
            (Vsn::V1, Payload::Json(payload)) => Ok(Frame::text(encode_v1(message, payload, true))),
            (Vsn::V2, Payload::Json(payload)) => Ok(Frame::text(encode_v2_json(message, payload))),
            (Vsn::V2, Payload::Binary(bytes)) => encode_client_binary(message, bytes).map(Frame::Binary),
        }
    }

    /// Client side: a frame from the server.
    pub fn decode_from_server(self, frame: &Frame) -> Result<Message, DecodeError> {
        match (self, frame) {
            (Vsn::V1, Frame::Text(text)) => decode_v1(text),
            (Vsn::V1, Frame::Binary(_)) => Err(DecodeError::BinaryInV1),
            (Vsn::V2, Frame::Text(text)) => decode_v2_json(text),
            (Vsn::V2, Frame::Binary(bytes)) => decode_server_binary(bytes),
        }
    }
}

fn optional_ref(value: Value) -> Option<Ref> {
    match value {
        Value::Null => None,
        other => Some(Ref(other)),
    }
}

fn ref_value(r: &Option<Ref>) -> Value {
    r.as_ref().map_or(Value::Null, |r| r.0.clone())
}

fn decode_v2_json(text: &[u8]) -> Result<Message, DecodeError> {
    let value: Value = serde_json::from_slice(text).map_err(|_| DecodeError::Json)?;
    let Value::Array(items) = value else { return Err(DecodeError::Shape("expected an array")) };
    if items.len() < 5 {
        return Err(DecodeError::Shape("expected [join_ref, ref, topic, event, payload]"));
    }
    // Elements beyond the fifth are ignored, as Phoenix does.
    let mut items = items.into_iter();
    let mut next = || items.next().unwrap_or(Value::Null);
    let (join_ref, msg_ref, topic, event, payload) = (next(), next(), next(), next(), next());
    let Value::String(topic) = topic else { return Err(DecodeError::Shape("topic must be a string")) };
    let Value::String(event) = event else { return Err(DecodeError::Shape("event must be a string")) };
    Ok(Message::new(optional_ref(join_ref), optional_ref(msg_ref), topic, event, Payload::Json(payload)))
}

fn encode_v2_json(message: &Message, payload: &Value) -> String {
    let frame = Value::Array(vec![
        ref_value(&message.join_ref),
        ref_value(&message.msg_ref),
        Value::String(message.topic.clone()),
        Value::String(message.event.clone()),
        payload.clone(),
    ]);
    frame.to_string()
}

fn decode_v1(text: &[u8]) -> Result<Message, DecodeError> {
    let value: Value = serde_json::from_slice(text).map_err(|_| DecodeError::Json)?;
    let Value::Object(mut map) = value else { return Err(DecodeError::Shape("expected an object")) };
    let Some(Value::String(topic)) = map.remove("topic") else {
        return Err(DecodeError::Shape("topic must be a string"));
    };
    let Some(Value::String(event)) = map.remove("event") else {
        return Err(DecodeError::Shape("event must be a string"));
    };
    let Some(payload) = map.remove("payload") else { return Err(DecodeError::Shape("payload is required")) };
    let Some(msg_ref) = map.remove("ref") else { return Err(DecodeError::Shape("ref is required")) };
    let join_ref = map.remove("join_ref").unwrap_or(Value::Null);
    Ok(Message::new(optional_ref(join_ref), optional_ref(msg_ref), topic, event, Payload::Json(payload)))
}

/// V1 frames from the server carry no join_ref; from clients they may.
fn encode_v1(message: &Message, payload: &Value, with_join_ref: bool) -> String {
    let mut map = serde_json::Map::new();
    map.insert("topic".into(), Value::String(message.topic.clone()));
    map.insert("event".into(), Value::String(message.event.clone()));
    map.insert("payload".into(), payload.clone());
    map.insert("ref".into(), ref_value(&message.msg_ref));
    if with_join_ref && let Some(join_ref) = &message.join_ref {
        map.insert("join_ref".into(), join_ref.0.clone());
    }
    Value::Object(map).to_string()
}

/// Reads length-prefixed strings from a binary frame.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn lengths<const N: usize>(&mut self) -> Result<[usize; N], DecodeError> {
        let mut lengths = [0; N];
        for length in &mut lengths {
            *length = usize::from(*self.bytes.get(self.at).ok_or(DecodeError::Binary("truncated header"))?);
            self.at += 1;
        }
        Ok(lengths)
    }

    fn string(&mut self, length: usize) -> Result<&'a str, DecodeError> {
        let end = self.at.checked_add(length).ok_or(DecodeError::Binary("truncated"))?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Binary("truncated"))?;
        self.at = end;
        std::str::from_utf8(slice).map_err(|_| DecodeError::Binary("a string is not UTF-8"))
    }

    fn optional_ref(&mut self, length: usize) -> Result<Option<Ref>, DecodeError> {
        let text = self.string(length)?;
        Ok((!text.is_empty()).then(|| Ref::text(text)))
    }

    fn rest(self, frame: &Bytes) -> Payload {
        Payload::Binary(frame.slice(self.at..))
    }
}

fn decode_client_binary(bytes: &Bytes) -> Result<Message, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    match reader.lengths::<1>()?[0] as u8 {
        PUSH => {
            let [jr, r, topic, event] = reader.lengths::<4>()?;
            let join_ref = reader.optional_ref(jr)?;
            let msg_ref = reader.optional_ref(r)?;
            let topic = reader.string(topic)?.to_owned();
            let event = reader.string(event)?.to_owned();
            Ok(Message::new(join_ref, msg_ref, topic, event, reader.rest(bytes)))
        }
        _ => Err(DecodeError::Binary("clients send only push frames (kind 0)")),
    }
}

fn decode_server_binary(bytes: &Bytes) -> Result<Message, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    match reader.lengths::<1>()?[0] as u8 {
        PUSH => {
            let [jr, topic, event] = reader.lengths::<3>()?;
            let join_ref = reader.optional_ref(jr)?;
            let topic = reader.string(topic)?.to_owned();
            let event = reader.string(event)?.to_owned();
            Ok(Message::new(join_ref, None, topic, event, reader.rest(bytes)))
        }
        REPLY => {
            let [jr, r, topic, status] = reader.lengths::<4>()?;
            let join_ref = reader.optional_ref(jr)?;
            let msg_ref = reader.optional_ref(r)?;
            let topic = reader.string(topic)?.to_owned();
            let status = reader.string(status)?.to_owned();
            Ok(Message::reply(join_ref, msg_ref, topic, status, reader.rest(bytes)))
        }
        BROADCAST => {
            let [topic, event] = reader.lengths::<2>()?;
            let topic = reader.string(topic)?.to_owned();
            let event = reader.string(event)?.to_owned();
            Ok(Message::new(None, None, topic, event, reader.rest(bytes)))
        }
        _ => Err(DecodeError::Binary("unknown frame kind")),
    }
}

fn length(text: &str, what: &'static str) -> Result<u8, EncodeError> {
    u8::try_from(text.len()).map_err(|_| EncodeError::TooLong(what))
}

fn binary_frame(kind: u8, strings: &[(&str, &'static str)], payload: &Bytes) -> Result<Bytes, EncodeError> {
    let mut frame =
        BytesMut::with_capacity(1 + strings.len() + strings.iter().map(|s| s.0.len()).sum::<usize>() + payload.len());
    frame.put_u8(kind);
    for (text, what) in strings {
        frame.put_u8(length(text, what)?);
    }
    for (text, _) in strings {
        frame.put_slice(text.as_bytes());
    }
    frame.put_slice(payload);
    Ok(frame.freeze())
}

fn ref_text(r: &Option<Ref>) -> String {
    r.as_ref().map(Ref::to_text).unwrap_or_default()
}

fn encode_server_binary(message: &Message, payload: &Bytes) -> Result<Bytes, EncodeError> {
    let join_ref = ref_text(&message.join_ref);
    let msg_ref = ref_text(&message.msg_ref);
    if let Some(status) = &message.reply_status {
        let parts = [(&*join_ref, "join_ref"), (&*msg_ref, "ref"), (&*message.topic, "topic"), (&**status, "status")];
        return binary_frame(REPLY, &parts, payload);
    }
    match (&message.join_ref, &message.msg_ref) {
        (None, None) => binary_frame(BROADCAST, &[(&message.topic, "topic"), (&message.event, "event")], payload),
        (Some(_), None) => binary_frame(
            PUSH,
            &[(&join_ref, "join_ref"), (&message.topic, "topic"), (&message.event, "event")],
            payload,
        ),
        (_, Some(_)) => Err(EncodeError::NoBinaryLayout("a server push with a ref has no binary layout")),
    }
}

fn encode_client_binary(message: &Message, payload: &Bytes) -> Result<Bytes, EncodeError> {
    let join_ref = ref_text(&message.join_ref);
    let msg_ref = ref_text(&message.msg_ref);
    let parts = [(&*join_ref, "join_ref"), (&*msg_ref, "ref"), (&*message.topic, "topic"), (&*message.event, "event")];
    binary_frame(PUSH, &parts, payload)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(s: &str) -> Frame {
        Frame::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn vsn_selects_serializers_like_phoenix() {
        assert_eq!(Vsn::parse(None), Ok(Vsn::V1));
        assert_eq!(Vsn::parse(Some("1.0.0")), Ok(Vsn::V1));
        assert_eq!(Vsn::parse(Some("2.0.0")), Ok(Vsn::V2));
        assert_eq!(Vsn::parse(Some("2.0.7")), Ok(Vsn::V2));
        for bad in ["", "2", "2.0", "2.1.0", "3.0.0", "2.0.0.1", "x.y.z", "2.0.-1"] {
            assert_eq!(Vsn::parse(Some(bad)), Err(UnsupportedVsn), "{bad}");
        }
    }

    #[test]
    fn v2_json_echoes_refs_exactly() {
        let message = Vsn::V2.decode(&text(r#"["3",7,"room:1","phx_join",{"a":1},"extra"]"#)).expect("decode");
        assert_eq!(message.join_ref, Some(Ref(json!("3"))));
        assert_eq!(message.msg_ref, Some(Ref(json!(7))));
        assert_eq!((message.topic.as_str(), message.event.as_str()), ("room:1", "phx_join"));
        let reply = Message::reply(message.join_ref, message.msg_ref, "room:1", "ok", Payload::empty());
        assert_eq!(
            Vsn::V2.encode(&reply).expect("encode"),
            text(r#"["3",7,"room:1","phx_reply",{"response":{},"status":"ok"}]"#)
        );
    }

    #[test]
    fn v1_frames_have_no_join_ref_from_the_server() {
        let message =
            Vsn::V1.decode(&text(r#"{"topic":"t","event":"e","payload":{},"ref":"1","join_ref":"1"}"#)).expect("v1");
        assert_eq!(message.join_ref, Some(Ref::text("1")));
        let encoded = Vsn::V1.encode(&message).expect("encode");
        let Frame::Text(bytes) = encoded else { panic!("text") };
        let value: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(value, json!({"topic":"t","event":"e","payload":{},"ref":"1"}));
        assert_eq!(
            Vsn::V1.decode(&text(r#"{"topic":"t","event":"e","payload":{}}"#)),
            Err(DecodeError::Shape("ref is required"))
        );
    }

    #[test]
    fn binary_push_from_the_js_client_decodes() {
        // [0,1,1,6,6,"3","5","room:1","binmsg",1,2,3] from PHOENIX.md §3.
        let mut bytes = vec![0u8, 1, 1, 6, 6];
        bytes.extend_from_slice(b"35room:1binmsg");
        bytes.extend_from_slice(&[1, 2, 3]);
        let message = Vsn::V2.decode(&Frame::Binary(Bytes::from(bytes))).expect("binary");
        assert_eq!(message.join_ref, Some(Ref::text("3")));
        assert_eq!(message.msg_ref, Some(Ref::text("5")));
        assert_eq!((message.topic.as_str(), message.event.as_str()), ("room:1", "binmsg"));
        assert_eq!(message.payload, Payload::Binary(Bytes::from_static(&[1, 2, 3])));
    }

    #[test]
    fn binary_reply_and_broadcast_layouts() {
        let reply = Message::reply(
            Some(Ref::text("3")),
            Some(Ref::text("5")),
            "room:1",
            "ok",
            Payload::Binary(Bytes::from_static(b"\x01")),
        );
        let Frame::Binary(bytes) = Vsn::V2.encode(&reply).expect("encode") else { panic!("binary") };
        assert_eq!(&bytes[..5], &[1, 1, 1, 6, 2]);
        assert_eq!(&bytes[5..], b"35room:1ok\x01");
        let broadcast = Message::new(None, None, "t", "e", Payload::Binary(Bytes::from_static(b"xy")));
        let Frame::Binary(bytes) = Vsn::V2.encode(&broadcast).expect("encode") else { panic!("binary") };
        assert_eq!(&bytes[..], b"\x02\x01\x01texy");
        assert_eq!(Vsn::V1.encode(&broadcast), Err(EncodeError::BinaryInV1));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for frame in [text("nope"), text("[]"), text("[1,2,3,4]"), text(r#"[null,null,1,"e",{}]"#), text("{}")] {
            assert!(Vsn::V2.decode(&frame).is_err());
        }
        for bytes in [&b""[..], &[0], &[0, 200, 0, 0, 0], &[1, 0, 0, 0, 0], &[0, 0, 0, 1, 0, 0xff]] {
            assert!(Vsn::V2.decode(&Frame::Binary(Bytes::copy_from_slice(bytes))).is_err(), "{bytes:?}");
        }
        assert_eq!(Vsn::V1.decode(&Frame::Binary(Bytes::new())), Err(DecodeError::BinaryInV1));
    }
}
