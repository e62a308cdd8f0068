//! What the fuzz targets share: comparisons that tolerate serde_json's float parsing, and the
//! canary check that error messages never quote a value a client sent.

use phoenix_channels::{Message, Payload, Ref};
use serde_json::Value;

/// Whether two JSON values are the same, floats within a few units in the last place: without
/// its `float_roundtrip` feature (off in hearth), serde_json may read a float it printed itself
/// one unit off, which no part of the protocol depends on.
pub fn json_same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 8.0 * f64::EPSILON * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(key, x)| y.get(key).is_some_and(|y| json_same(x, y)))
        }
        _ => a == b,
    }
}

fn ref_same(a: &Option<Ref>, b: &Option<Ref>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => json_same(&a.0, &b.0),
        (None, None) => true,
        _ => false,
    }
}

/// Whether two messages are the same (see [`json_same`] for floats).
pub fn message_same(a: &Message, b: &Message) -> bool {
    let payload_same = match (&a.payload, &b.payload) {
        (Payload::Json(x), Payload::Json(y)) => json_same(x, y),
        (Payload::Binary(x), Payload::Binary(y)) => x == y,
        _ => false,
    };
    ref_same(&a.join_ref, &b.join_ref)
        && ref_same(&a.msg_ref, &b.msg_ref)
        && a.topic == b.topic
        && a.event == b.event
        && a.reply_status == b.reply_status
        && payload_same
}

/// Appended to every string value by [`with_canaries`]; no input contains it (a target skips
/// one that does), so an error message containing it quotes a value.
pub const CANARY: &str = "Qz7xCANARYx7zQ";

/// `value` with [`CANARY`] appended to every string value (object keys are left alone: they
/// are what names the fields).
pub fn with_canaries(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(format!("{text}{CANARY}")),
        Value::Array(items) => Value::Array(items.iter().map(with_canaries).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), with_canaries(v))).collect()),
        other => other.clone(),
    }
}

/// The element of `list` that `pick` selects.
pub fn pick<T: Copy>(pick: u8, list: &[T]) -> T {
    list[usize::from(pick) % list.len()]
}
