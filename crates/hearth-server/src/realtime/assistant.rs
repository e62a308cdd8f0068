//! The assistant conversation on channels: a prompt sent there (an ordinary `send_message`)
//! is answered in a task of its own. The reply streams as `assistant_delta` events on
//! `conversation:{id}` and ends as an ordinary stored message from the assistant, pushed as
//! `new_message` on the owner's `user:{id}` topic. Commands (`/help`, `/quota`, `/providers`,
//! `/image`) and refusals (limits, failing providers) are answered the same way, so the
//! history shows them.

use hearth_store::Timestamp;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::conversation::deliver;
use super::events::{conversation_topic, publish};
use crate::assistant::commands::{Command, HELP};
use crate::assistant::{MAX_PROMPT_CHARS, Question, Refusal};
use crate::state::AppState;

/// A prompt the owner sent in their assistant conversation.
#[derive(Debug)]
pub struct Prompt {
    /// The assistant conversation.
    pub conversation_id: Uuid,
    /// Its owner.
    pub user_id: Uuid,
    /// The message group of the prompt.
    pub group: Uuid,
    /// What was written.
    pub text: String,
}

/// Answers `prompt` in the background; the prompt's own `send_message` reply is not delayed.
pub fn answer(state: AppState, prompt: Prompt) {
    tokio::spawn(async move {
        let reply_id = Uuid::now_v7();
        let text = reply_text(&state, &prompt, reply_id).await;
        match state.store.post_assistant_reply(reply_id, prompt.conversation_id, &text, Timestamp::now()).await {
            Ok(delivery) => deliver(&state, "new_message", &delivery).await,
            Err(error) => tracing::error!(%error, user = %prompt.user_id, "assistant reply not stored"),
        }
    });
}

async fn reply_text(state: &AppState, prompt: &Prompt, reply_id: Uuid) -> String {
    let assistant = &state.assistant;
    match Command::parse(&prompt.text) {
        Some(Command::Help) => HELP.to_owned(),
        Some(Command::Quota) => assistant.quota_report(prompt.user_id).await.unwrap_or_else(|error| {
            tracing::error!(%error, "quota report failed");
            Refusal::Store(error).message()
        }),
        Some(Command::Providers) => assistant.providers_report(),
        Some(Command::Image("")) => "Say what the image should show: /image <description>".to_owned(),
        Some(Command::Image(description)) if description.chars().count() > MAX_PROMPT_CHARS => too_long(),
        Some(Command::Image(description)) => {
            match assistant.image(prompt.user_id, &prompt.conversation_id.to_string(), description).await {
                Ok(image) => format!(
                    "Here is your image (made by {}):\n{}/api/assistant/images/{}",
                    image.provider, state.public_url, image.id
                ),
                Err(refusal) => refusal.message(),
            }
        }
        Some(Command::Unknown(name)) => format!("There is no command {name}.\n{HELP}"),
        None if prompt.text.trim().is_empty() => HELP.to_owned(),
        None if prompt.text.chars().count() > MAX_PROMPT_CHARS => too_long(),
        None => streamed(state, prompt, reply_id).await,
    }
}

fn too_long() -> String {
    format!("A prompt may be at most {MAX_PROMPT_CHARS} characters long.")
}

/// Asks the providers, publishing each delta as it arrives, numbered from 0.
async fn streamed(state: &AppState, prompt: &Prompt, reply_id: Uuid) -> String {
    let (deltas, mut received) = mpsc::unbounded_channel();
    let question = Question {
        user_id: prompt.user_id,
        thread: prompt.conversation_id.to_string(),
        new_thread: false,
        topic: None,
        prompt: prompt.text.clone(),
        keys: Vec::new(),
    };
    let assistant = state.assistant.clone();
    let ask = async move {
        let result = assistant.ask(question, &deltas).await;
        // Dropping the sender ends the forwarding below once every delta is out.
        drop(deltas);
        result
    };
    let topic = conversation_topic(prompt.conversation_id);
    let forward = async {
        let mut index: u64 = 0;
        while let Some(delta) = received.recv().await {
            let payload = json!({ "reply_id": reply_id, "prompt_group": prompt.group, "index": index, "delta": delta });
            publish(state, topic.clone(), "assistant_delta", payload).await;
            index += 1;
        }
    };
    let (result, ()) = tokio::join!(ask, forward);
    result.map_or_else(|refusal| refusal.message(), |reply| reply.text)
}
