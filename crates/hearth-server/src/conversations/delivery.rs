//! Handing each recipient their own copy of a message. Apart from the rest of the domain because
//! the assistant's replies are delivered the same way.

use hearth_store::MessageDelivery;

use super::replies::{Delivered, Message};
use crate::events::user_topic;
use crate::state::AppState;

/// Pushes each recipient their own copy on their `user:{id}` topic (`new_message` or
/// `edit_message`).
pub async fn deliver(state: &AppState, event: &str, delivery: &MessageDelivery) {
    for (recipient, message) in &delivery.messages {
        let payload = Delivered { conversation_id: delivery.conversation_id, message: &Message::from(message) };
        state.publish_typed(user_topic(*recipient), event, &payload).await;
    }
}
