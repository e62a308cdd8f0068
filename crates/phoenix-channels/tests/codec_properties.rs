//! Properties of the serializers: whatever one side encodes, the other decodes to the same
//! message; and no input — any bytes, any text, any JSON — panics the decoder.

use bytes::Bytes;
use phoenix_channels::{Frame, Message, Payload, Ref, Vsn};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// JSON without floats (serde_json's default float formatting is not an exact round trip,
/// and no part of the protocol depends on it).
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Refs as JSON clients send them: strings (JS) or numbers (other clients).
fn json_ref() -> impl Strategy<Value = Option<Ref>> {
    prop_oneof![
        Just(None),
        "[0-9]{1,6}".prop_map(|s| Some(Ref::text(s))),
        any::<u32>().prop_map(|n| Some(Ref(Value::from(n)))),
    ]
}

/// Refs in binary frames are non-empty strings (an empty one means "no ref").
fn binary_ref() -> impl Strategy<Value = Option<Ref>> {
    prop_oneof![Just(None), "[0-9a-z]{1,20}".prop_map(|s| Some(Ref::text(s)))]
}

/// Topics and events fitting a binary frame's one-byte lengths.
fn name() -> impl Strategy<Value = String> {
    ".{0,60}".prop_filter("at most 255 bytes", |s| s.len() <= 255)
}

fn bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..200).prop_map(Bytes::from)
}

proptest! {
    #[test]
    fn client_json_messages_round_trip(join_ref in json_ref(), msg_ref in json_ref(), topic in name(), event in name(), payload in json()) {
        let message = Message::new(join_ref, msg_ref, topic, event, Payload::Json(payload));
        for vsn in [Vsn::V1, Vsn::V2] {
            let frame = vsn.encode_for_server(&message).expect("encodes");
            prop_assert_eq!(vsn.decode(&frame).expect("decodes"), message.clone());
        }
    }

    #[test]
    fn client_binary_pushes_round_trip(join_ref in binary_ref(), msg_ref in binary_ref(), topic in name(), event in name(), payload in bytes()) {
        let message = Message::new(join_ref, msg_ref, topic, event, Payload::Binary(payload));
        let frame = Vsn::V2.encode_for_server(&message).expect("encodes");
        prop_assert!(matches!(frame, Frame::Binary(_)));
        prop_assert_eq!(Vsn::V2.decode(&frame).expect("decodes"), message);
    }

    #[test]
    fn server_json_messages_round_trip(join_ref in json_ref(), msg_ref in json_ref(), topic in name(), event in name(), payload in json()) {
        let message = Message::new(join_ref, msg_ref, topic, event, Payload::Json(payload));
        let frame = Vsn::V2.encode(&message).expect("encodes");
        prop_assert_eq!(Vsn::V2.decode_from_server(&frame).expect("decodes"), message.clone());
        // V1 frames from the server carry no join_ref.
        let frame = Vsn::V1.encode(&message).expect("encodes");
        prop_assert_eq!(Vsn::V1.decode_from_server(&frame).expect("decodes"), Message { join_ref: None, ..message });
    }

    #[test]
    fn server_replies_round_trip(join_ref in binary_ref(), msg_ref in binary_ref(), topic in name(), status in "[a-z]{1,10}", json in json(), raw in bytes()) {
        for response in [Payload::Json(json.clone()), Payload::Binary(raw.clone())] {
            let reply = Message::reply(join_ref.clone(), msg_ref.clone(), topic.clone(), status.clone(), response.clone());
            let decoded = Vsn::V2.decode_from_server(&Vsn::V2.encode(&reply).expect("encodes")).expect("decodes");
            prop_assert_eq!(decoded.reply_parts(), Some((status.as_str(), response)));
            prop_assert_eq!(decoded, reply);
        }
    }

    #[test]
    fn server_binary_pushes_and_broadcasts_round_trip(join_ref in binary_ref(), topic in name(), event in name(), payload in bytes()) {
        let message = Message::new(join_ref, None, topic, event, Payload::Binary(payload));
        let frame = Vsn::V2.encode(&message).expect("encodes");
        prop_assert_eq!(Vsn::V2.decode_from_server(&frame).expect("decodes"), message);
    }

    #[test]
    fn arbitrary_binary_frames_never_panic(raw in prop::collection::vec(any::<u8>(), 0..300)) {
        let frame = Frame::Binary(Bytes::from(raw));
        for vsn in [Vsn::V1, Vsn::V2] {
            let _ = vsn.decode(&frame);
            let _ = vsn.decode_from_server(&frame);
        }
    }

    #[test]
    fn arbitrary_text_frames_never_panic(text in ".{0,300}") {
        let frame = Frame::Text(Bytes::from(text));
        for vsn in [Vsn::V1, Vsn::V2] {
            let _ = vsn.decode(&frame);
            let _ = vsn.decode_from_server(&frame);
        }
    }

    #[test]
    fn arbitrary_json_decodes_only_with_string_topic_and_event(value in json()) {
        let frame = Frame::Text(Bytes::from(value.to_string()));
        for vsn in [Vsn::V1, Vsn::V2] {
            if let Ok(message) = vsn.decode(&frame) {
                // Whatever decoded must re-encode (the server can always answer it).
                prop_assert!(vsn.encode(&Message::reply(message.join_ref, message.msg_ref, message.topic, "error", Payload::empty())).is_ok());
            }
        }
    }

    #[test]
    fn five_element_arrays_decode_when_topic_and_event_are_strings(jr in json(), r in json(), topic in json(), event in json(), payload in json()) {
        let frame = Frame::Text(Bytes::from(Value::Array(vec![jr, r, topic.clone(), event.clone(), payload]).to_string()));
        let decoded = Vsn::V2.decode(&frame);
        prop_assert_eq!(decoded.is_ok(), topic.is_string() && event.is_string());
    }
}
