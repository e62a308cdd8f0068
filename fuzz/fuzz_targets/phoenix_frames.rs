//! Phoenix Channels frames, every serializer: the input is one WebSocket frame, read as a text
//! frame (when it is UTF-8) and as a binary frame, by V1 and V2, from the server's side
//! (`Vsn::decode`) and from a client's (`Vsn::decode_from_server`). A frame that decodes must
//! encode again, as the other side would send it, and decode to the same message.

#![no_main]

use bytes::Bytes;
use hearth_fuzz::message_same;
use libfuzzer_sys::fuzz_target;
use phoenix_channels::{Frame, Message, Vsn};

fuzz_target!(|data: &[u8]| {
    let mut frames = vec![Frame::Binary(Bytes::copy_from_slice(data))];
    // A WebSocket text frame is always UTF-8 (the transport checks it before the codec).
    if std::str::from_utf8(data).is_ok() {
        frames.push(Frame::Text(Bytes::copy_from_slice(data)));
    }
    for vsn in [Vsn::V1, Vsn::V2] {
        for frame in &frames {
            // A client's frame, as the server reads it; then as the client would send it.
            if let Ok(message) = vsn.decode(frame) {
                let again = vsn.encode_for_server(&message).expect("a message decoded from a client encodes again");
                let decoded = vsn.decode(&again).expect("a re-encoded client frame decodes");
                assert!(message_same(&message, &decoded), "{vsn:?} client frame: {message:?} became {decoded:?}");
            }
            // The server's frame, as a client reads it; then as the server would send it.
            if let Ok(message) = vsn.decode_from_server(frame) {
                let again = vsn.encode(&message).expect("a message decoded from the server encodes again");
                let decoded = vsn.decode_from_server(&again).expect("a re-encoded server frame decodes");
                // V1 frames from the server carry no join_ref.
                let expected = match vsn {
                    Vsn::V1 => Message { join_ref: None, ..message },
                    Vsn::V2 => message,
                };
                assert!(message_same(&expected, &decoded), "{vsn:?} server frame: {expected:?} became {decoded:?}");
            }
        }
    }
});
