//! A question answered as it is written: each delta is published to a topic as it arrives, the
//! assistant conversation's and a room's alike (they differ only in the fields that say which
//! prompt a delta answers).

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::Question;
use crate::state::AppState;

/// Asks the providers, publishing each delta to `topic` as `assistant_delta`: the fields of
/// `names` (the reply's and the prompt's ids) with `index` (from 0) and `delta`. The whole
/// reply, or the refusal to tell the person.
pub async fn ask_streamed(state: &AppState, question: Question, topic: String, names: Map<String, Value>) -> String {
    let (deltas, mut received) = mpsc::unbounded_channel();
    let assistant = state.assistant.clone();
    let ask = async move {
        let result = assistant.ask(question, &deltas).await;
        // Dropping the sender ends the forwarding below once every delta is out.
        drop(deltas);
        result
    };
    let forward = async {
        let mut index: u64 = 0;
        while let Some(delta) = received.recv().await {
            let mut payload = names.clone();
            payload.insert("index".to_owned(), json!(index));
            payload.insert("delta".to_owned(), json!(delta));
            state.publish(topic.clone(), "assistant_delta", Value::Object(payload)).await;
            index += 1;
        }
    };
    let (result, ()) = tokio::join!(ask, forward);
    result.map_or_else(|refusal| refusal.message(), |reply| reply.text)
}
