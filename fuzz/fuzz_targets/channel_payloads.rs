//! Every channel event's payload parsing (hearth-server's `events::parse` for each event's
//! request type): the first byte picks the event, the rest is the payload's JSON text. A refusal
//! is an error reply that never quotes a value the client sent (checked with a canary appended to
//! every string value).

#![no_main]

use hearth_fuzz::{CANARY, pick, with_canaries};
use hearth_server::fuzzing::{CHANNEL_EVENTS, parse_channel_payload};
use libfuzzer_sys::fuzz_target;
use phoenix_channels::Payload;
use phoenix_channels::server::Reply;
use serde_json::Value;

fn reason(reply: &Reply) -> String {
    assert_eq!(reply.status, "error", "a refusal is an error reply: {reply:?}");
    match &reply.response {
        Payload::Json(response) => response["reason"].as_str().expect("an error reply has a reason").to_owned(),
        Payload::Binary(_) => panic!("an error reply is JSON: {reply:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, json)) = data.split_first() else { return };
    let (topic, event) = pick(choice, CHANNEL_EVENTS);
    // The frame decoder hands handlers JSON values only.
    let Ok(payload) = serde_json::from_slice::<Value>(json) else { return };
    if let Err(reply) = parse_channel_payload(topic, event, payload.clone()) {
        reason(&reply);
    }
    if json.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()) {
        return;
    }
    if let Err(reply) = parse_channel_payload(topic, event, with_canaries(&payload)) {
        let reason = reason(&reply);
        assert!(!reason.contains(CANARY), "{topic}:{event} quotes a value: {reason:?}");
    }
});
