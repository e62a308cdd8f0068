//! `@assistant <prompt>` in a room: the assistant answers in the room, on the mentioning
//! person's own keys or the free tier (their limits, their turns as context), streamed as
//! `assistant_delta` pushes on `room:{id}`, and its reply is stored as a room post without a
//! sender (shown as the assistant's fixed id) and pushed as `new_post`.

use hearth_store::{NewRoomMessage, Timestamp};
use serde_json::{Map, json};
use uuid::Uuid;

use super::Post;
use crate::assistant::Question;
use crate::assistant::stream::ask_streamed;
use crate::events::room_topic;
use crate::state::AppState;

/// What a post starts with to ask the assistant.
pub const MENTION: &str = "@assistant";

/// The prompt of a post that mentions the assistant first (`@assistant <prompt>`, any case),
/// or `None` for any other post.
pub fn mentioned(text: &str) -> Option<&str> {
    let text = text.trim_start();
    let head = text.get(..MENTION.len())?;
    let rest = &text[MENTION.len()..];
    let ends_word = rest.chars().next().is_none_or(char::is_whitespace);
    (head.eq_ignore_ascii_case(MENTION) && ends_word).then(|| rest.trim())
}

/// A mention to answer.
#[derive(Debug)]
pub struct Mention {
    /// The room.
    pub room_id: Uuid,
    /// Who mentioned the assistant: their keys, limits and context answer.
    pub user_id: Uuid,
    /// The post that mentioned it.
    pub prompt_id: Uuid,
    /// What was asked.
    pub prompt: String,
}

/// Answers in the background; the mentioning post's own reply is not delayed.
pub fn answer(state: AppState, mention: Mention) {
    tokio::spawn(async move {
        // The reply's id is made now, so that its deltas name the post they become; it sorts
        // the reply right after the question it answers.
        let reply_id = Uuid::now_v7();
        let text = if mention.prompt.is_empty() {
            format!("Ask me something: {MENTION} <question>")
        } else {
            streamed(&state, &mention, reply_id).await
        };
        let reply = NewRoomMessage {
            id: reply_id,
            room_id: mention.room_id,
            sender_id: None,
            client_msg_id: None,
            text,
            now: Timestamp::now(),
        };
        match state.store.post_room_message(&reply).await {
            Ok((stored, _)) => state.publish_typed(room_topic(mention.room_id), "new_post", &Post::from(&stored)).await,
            Err(error) => tracing::error!(%error, room = %mention.room_id, "the assistant's room reply was not stored"),
        }
    });
}

/// Asks the providers as the mentioning person, publishing each delta to the room as it
/// arrives; the whole reply, or the refusal to tell.
async fn streamed(state: &AppState, mention: &Mention, reply_id: Uuid) -> String {
    let question = Question {
        user_id: mention.user_id,
        thread: room_topic(mention.room_id),
        new_thread: false,
        topic: None,
        prompt: mention.prompt.clone(),
        keys: Vec::new(),
    };
    let names =
        Map::from_iter([("reply_id".to_owned(), json!(reply_id)), ("prompt_id".to_owned(), json!(mention.prompt_id))]);
    ask_streamed(state, question, room_topic(mention.room_id), names).await
}

#[cfg(test)]
mod tests {
    use super::mentioned;

    #[test]
    fn a_mention_is_the_first_word_in_any_case() {
        assert_eq!(mentioned("@assistant what is a room?"), Some("what is a room?"));
        assert_eq!(mentioned("  @Assistant   hi  "), Some("hi"));
        assert_eq!(mentioned("@assistant"), Some(""));
        assert_eq!(mentioned("@assistant\nmany\nlines"), Some("many\nlines"));
        assert_eq!(mentioned("@assistants are people too"), None);
        assert_eq!(mentioned("hey @assistant"), None);
        assert_eq!(mentioned("@assist"), None);
        assert_eq!(mentioned("@é"), None);
    }
}
