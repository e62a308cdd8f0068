//! The REST JSON bodies: hearth-server's `extract::parse_json` for the body type of every
//! endpoint that takes one. The first byte picks the endpoint, the rest is the body. An error
//! never quotes a value the client sent (checked with a canary appended to every string value
//! of a body that is JSON).

#![no_main]

use hearth_fuzz::{CANARY, pick, with_canaries};
use hearth_server::ApiError;
use hearth_server::fuzzing::{REST_BODIES, parse_rest_body};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Everything of an error a client sees or a log gets.
fn text(error: &ApiError) -> String {
    match error {
        ApiError::Invalid(fields) => fields
            .iter()
            .map(|(field, problems)| format!("{field}: {}", problems.join(", ")))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else { return };
    let endpoint = pick(choice, REST_BODIES);
    let parsed = parse_rest_body(endpoint, body);
    assert!(
        matches!(parsed, Ok(()) | Err(ApiError::BadRequest { .. } | ApiError::Invalid(_))),
        "{endpoint}: a body is accepted, malformed (400) or invalid (422): {parsed:?}"
    );
    let Ok(value) = serde_json::from_slice::<Value>(body) else { return };
    if body.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()) {
        return;
    }
    let marked = serde_json::to_vec(&with_canaries(&value)).expect("a JSON value serializes");
    if let Err(error) = parse_rest_body(endpoint, &marked) {
        let text = text(&error);
        assert!(!text.contains(CANARY), "{endpoint} quotes a value: {text:?}");
    }
});
