//! What the server answers, typed: the shapes of `crates/hearth-server/src/http/replies.rs`
//! and of each resource's replies. Unknown fields are ignored, so a newer server that adds
//! fields still parses.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

/// A user as they see themselves: identity and profile (`GET /api/me`, `user` of a session
/// reply).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct User {
    /// The user's id.
    pub id: Uuid,
    /// The email address, as the server normalized it.
    pub email: String,
    /// The display name (the address's local part unless set).
    pub display_name: String,
    /// Shown as offline to others even when connected.
    pub hidden: bool,
    /// The colour theme.
    pub theme: Theme,
    /// Text magnification, 0.7 to 1.4.
    pub magnification: f64,
    /// Recently viewed pages.
    pub recents: Vec<String>,
    /// The user's published identity key (docs/e2e.md), if their client made one yet.
    #[serde(default)]
    pub identity_key: Option<serde_json::Value>,
    /// The user's identity private keys wrapped under their wrap key (only in their own
    /// views). No secret without the wrap key, and `Debug` shows it: it is opaque.
    #[serde(default)]
    pub identity_private_key: Option<serde_json::Value>,
}

/// A profile's colour theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Light.
    Day,
    /// Dark.
    Night,
}

/// What others see of a user (`GET /api/users`, `users` of a session reply).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublicUser {
    /// The user's id.
    pub id: Uuid,
    /// The email address; `None` where the server keeps it private (people one shares no
    /// conversation with, unless found by typing their exact address).
    pub email: Option<String>,
    /// The display name.
    pub display_name: String,
    /// Their published identity key (docs/e2e.md), if their client made one yet.
    #[serde(default)]
    pub identity_key: Option<serde_json::Value>,
}

/// A conversation the user is a member of.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Conversation {
    /// The conversation's id.
    pub id: Uuid,
    /// A private conversation has exactly two members, no alias, and cannot be left.
    pub private: bool,
    /// The group's name, if set.
    pub alias: Option<String>,
    /// Created.
    pub inserted_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// The user's assistant conversation: the server can read it (not end-to-end encrypted).
    #[serde(default)]
    pub assistant: bool,
    /// Messages from others newer than the user's last read (`GET /api/conversations` only;
    /// 0 elsewhere, and from servers that do not count them).
    #[serde(default)]
    pub unread: u64,
    /// When the newest message was sent, if there is one (`GET /api/conversations` only).
    #[serde(default)]
    pub last_message_at: Option<DateTime<Utc>>,
}

/// What register and login return (the tokens stay inside the [`Client`](super::Client)).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SignedIn {
    /// The signed-in user with their profile.
    pub user: User,
    /// The user's conversations.
    pub conversations: Vec<Conversation>,
    /// Every user who shares a conversation with the user.
    pub users: Vec<PublicUser>,
}

/// One message as the caller sees it: the caller's own copy of a message group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    /// This copy's id.
    pub id: Uuid,
    /// The send it belongs to: one group, one copy per member. Edits and deletes name it.
    pub message_group: Uuid,
    /// Who sent it.
    pub sender: Uuid,
    /// The ciphertext for the caller (`v1.<nonce>.<ciphertext>`, see [`crate::e2e::decrypt`]),
    /// or plain text in the assistant conversation.
    pub content: String,
    /// Sent.
    pub inserted_at: DateTime<Utc>,
    /// Last edited.
    pub updated_at: DateTime<Utc>,
}

/// A page of a conversation's history, newest first (`GET /api/messages`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MessagePage {
    /// The messages, newest first.
    pub items: Vec<Message>,
    /// Pass back for the next (older) page; `None` on the last page.
    pub page_token: Option<String>,
}

/// A page of every user on the server (`GET /api/users`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserPage {
    /// The users.
    pub items: Vec<PublicUser>,
    /// Pass back for the next page; `None` on the last page.
    pub page_token: Option<String>,
}

/// A signed-in device of the user's (`GET /api/devices`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Device {
    /// The device's id (for [`revoke_device`](super::Client::revoke_device)).
    pub id: Uuid,
    /// Its name: the `device_name` given at sign-in, or its user agent.
    pub name: String,
    /// Signed in.
    pub created_at: DateTime<Utc>,
    /// Last seen.
    pub last_seen_at: DateTime<Utc>,
    /// Whether it is the device asking.
    pub current: bool,
}

/// One of the user's stored AI provider keys (`GET /api/keys`): never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProviderKey {
    /// The key's id.
    pub id: Uuid,
    /// `gemini`, `groq`, `cerebras`, `openrouter`, `openai` or `anthropic`.
    pub provider: String,
    /// The key's last four characters.
    pub last_four: String,
    /// Added.
    pub added_at: DateTime<Utc>,
    /// Last answered, if ever.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Failures since it last answered.
    pub failures: u32,
    /// `healthy`, or `cooling_down` after repeated failures.
    pub status: String,
    /// Seconds it still rests, when cooling down.
    #[serde(default)]
    pub cooling_down_for: Option<u64>,
}

/// `{"items": […]}` of the list endpoints.
#[derive(Deserialize)]
pub(super) struct Items<T> {
    pub items: Vec<T>,
}

/// `{"conversation_id": …}` of `GET /api/conversations/private/{user_id}`.
#[derive(Deserialize)]
pub(super) struct PrivateConversation {
    pub conversation_id: Option<Uuid>,
}

/// hearth's error body.
#[derive(Deserialize)]
pub(super) struct ErrorBody {
    pub error: String,
    pub message: String,
    #[serde(default)]
    pub fields: Option<std::collections::BTreeMap<String, Vec<String>>>,
    #[serde(default, rename = "retryAfter")]
    pub retry_after: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Private and group conversations start over the socket, so the REST tests only see
    // empty histories: the message shape (hearth-server's `message_json`) is checked here.
    #[test]
    fn a_history_page_parses() {
        let (id, group, sender) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let json = format!(
            r#"{{"items":[{{"id":"{id}","sender":"{sender}","content":"v1.abc.def",
                "inserted_at":"2026-11-22T10:00:00.123Z","updated_at":"2026-11-22T10:05:00.000Z",
                "message_group":"{group}"}}],"page_token":null}}"#
        );
        let page: MessagePage = serde_json::from_str(&json).expect("a page");
        assert_eq!(page.page_token, None);
        let message = &page.items[0];
        assert_eq!((message.id, message.message_group, message.sender), (id, group, sender));
        assert_eq!(message.content, "v1.abc.def");
        assert_eq!(message.inserted_at.timestamp_subsec_millis(), 123);
    }

    #[test]
    fn an_assistant_conversation_says_so_and_others_need_not() {
        let base = r#""id":"0190b6a8-0000-7000-8000-000000000000","private":false,"alias":null,
            "inserted_at":"2026-11-22T10:00:00.000Z","updated_at":"2026-11-22T10:00:00.000Z""#;
        let plain: Conversation = serde_json::from_str(&format!("{{{base}}}")).expect("conversation");
        let assistant: Conversation =
            serde_json::from_str(&format!(r#"{{{base},"assistant":true}}"#)).expect("conversation");
        assert!(!plain.assistant && assistant.assistant);
    }

    #[test]
    fn a_listed_conversation_may_carry_its_unread_count_and_last_message_time() {
        let base = r#""id":"0190b6a8-0000-7000-8000-000000000000","private":true,"alias":null,
            "inserted_at":"2026-11-22T10:00:00.000Z","updated_at":"2026-11-22T10:00:00.000Z""#;
        let older: Conversation = serde_json::from_str(&format!("{{{base}}}")).expect("conversation");
        assert_eq!((older.unread, older.last_message_at), (0, None));
        let listed: Conversation =
            serde_json::from_str(&format!(r#"{{{base},"unread":3,"last_message_at":"2026-11-22T11:00:00.000Z"}}"#))
                .expect("conversation");
        assert_eq!(listed.unread, 3);
        assert_eq!(listed.last_message_at.map(|t| t.to_rfc3339()), Some("2026-11-22T11:00:00+00:00".to_owned()));
        let empty: Conversation =
            serde_json::from_str(&format!(r#"{{{base},"unread":0,"last_message_at":null}}"#)).expect("conversation");
        assert_eq!(empty.last_message_at, None);
    }
}
