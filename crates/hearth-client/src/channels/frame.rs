//! Serializer 2.0.0 JSON frames: `[join_ref, ref, topic, event, payload]`.

use serde_json::{Value, json};

/// One V2 JSON frame. Refs are kept as the exact JSON values sent or received (PHOENIX.md §2:
/// refs are opaque); this client sends decimal strings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame {
    pub join_ref: Value,
    pub reference: Value,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

impl Frame {
    /// The text of the frame.
    pub fn encode(&self) -> String {
        json!([self.join_ref, self.reference, self.topic, self.event, self.payload]).to_string()
    }

    /// A frame from its text; `None` for anything that is not a V2 JSON frame (extra
    /// elements are ignored, as Phoenix does).
    pub fn decode(text: &str) -> Option<Self> {
        let Value::Array(mut parts) = serde_json::from_str(text).ok()? else { return None };
        if parts.len() < 5 {
            return None;
        }
        parts.truncate(5);
        let payload = parts.pop()?;
        let event = parts.pop()?.as_str()?.to_owned();
        let topic = parts.pop()?.as_str()?.to_owned();
        let reference = parts.pop()?;
        let join_ref = parts.pop()?;
        Some(Self { join_ref, reference, topic, event, payload })
    }

    /// The ref as the string key pending calls are filed under (`None` when null).
    pub fn reference_key(&self) -> Option<String> {
        ref_key(&self.reference)
    }
}

/// A ref value as a map key: strings as themselves, numbers in decimal, null as `None`.
pub(crate) fn ref_key(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_a_push() {
        let frame = Frame {
            join_ref: json!("3"),
            reference: json!("4"),
            topic: "room:1".into(),
            event: "msg".into(),
            payload: json!({"x": 1}),
        };
        assert_eq!(frame.encode(), r#"["3","4","room:1","msg",{"x":1}]"#);
        assert_eq!(Frame::decode(&frame.encode()), Some(frame));
    }

    #[test]
    fn decodes_broadcasts_and_ignores_extra_elements() {
        let frame = Frame::decode(r#"[null,null,"room:1","presence_diff",{},"extra"]"#).expect("a frame");
        assert_eq!((&frame.join_ref, frame.reference_key()), (&Value::Null, None));
        assert_eq!(frame.event, "presence_diff");
        assert_eq!(ref_key(&json!(7)), Some("7".to_owned()));
    }

    #[test]
    fn rejects_what_is_not_a_v2_frame() {
        for text in ["{}", "[1,2,3,4]", r#"[null,null,1,"e",{}]"#, "not json"] {
            assert_eq!(Frame::decode(text), None, "{text}");
        }
    }
}
