//! hearth's events (docs/phoenix.md), typed: what a client hears on `user:{id}`,
//! `conversation:{id}`, `room:{id}` and `system:general`, read from an [`Event`].

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::conversation::{DeliveredMessage, NewConversation, SYSTEM_TOPIC, as_key_text};
use super::socket::Event;
use crate::api::Post;

/// One piece of a streamed assistant reply (`assistant_delta` on the assistant
/// conversation's topic). The pieces of a reply arrive numbered from 0, in order; the whole
/// reply then arrives as an ordinary `new_message` whose `message_group` is `reply_id`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AssistantDelta {
    /// The assistant conversation (from the topic).
    #[serde(skip)]
    pub conversation_id: Uuid,
    /// The reply this piece belongs to: the `message_group` of the final message.
    pub reply_id: Uuid,
    /// The message group of the prompt it answers.
    pub prompt_group: Uuid,
    /// Its position in the reply, from 0.
    pub index: u64,
    /// The text to append.
    pub delta: String,
}

/// One piece of the assistant's streamed answer to a post that mentioned it
/// (`assistant_delta` on `room:{id}`). The pieces arrive numbered from 0, in order; the whole
/// answer then arrives as a `new_post` whose `id` is `reply_id`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomAssistantDelta {
    /// The room (from the topic).
    #[serde(skip)]
    pub room_id: Uuid,
    /// The answer this piece belongs to: the id of the post it becomes.
    pub reply_id: Uuid,
    /// The post that mentioned the assistant.
    pub prompt_id: Uuid,
    /// Its position in the answer, from 0.
    pub index: u64,
    /// The text to append.
    pub delta: String,
}

/// A hearth event, typed ([`Incoming::parse`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Incoming {
    /// `new_conversation` on `user:{id}`: the user is in a conversation that started, or in
    /// a group whose members or alias changed (`modify_conversation`): the members listed
    /// are then the current ones.
    NewConversation(NewConversation),
    /// `new_room` on `user:{id}`: the user is in a room now (they made or joined it, on this
    /// device or another, or a moderator added them).
    NewRoom(crate::api::Room),
    /// `new_message` on `user:{id}`: the user's own copy of a message (their own sends
    /// included, and the assistant's replies).
    NewMessage(DeliveredMessage),
    /// `edit_message` on `user:{id}`: the user's copy of an edited message.
    EditMessage(DeliveredMessage),
    /// `delete_message` on `user:{id}`: a message group was deleted by its sender.
    DeleteMessage {
        /// The conversation it was in.
        conversation_id: Uuid,
        /// The deleted message group.
        message_group_id: Uuid,
    },
    /// `start_typing` (`typing: true`) or `finish_typing` on `conversation:{id}`.
    Typing {
        /// The conversation.
        conversation_id: Uuid,
        /// Who is (or stopped) typing.
        user_id: Uuid,
        /// Started (true) or finished (false).
        typing: bool,
    },
    /// `read_conversation` on `conversation:{id}`: a member read the conversation.
    Read {
        /// The conversation.
        conversation_id: Uuid,
        /// Who read it.
        user_id: Uuid,
        /// When.
        read_at: Option<DateTime<Utc>>,
    },
    /// `delivered_conversation` on `conversation:{id}`: a member's device received the
    /// conversation up to `delivered_at` (a delivery receipt).
    Delivered {
        /// The conversation.
        conversation_id: Uuid,
        /// Whose device.
        user_id: Uuid,
        /// Every message inserted at or before it has reached them.
        delivered_at: DateTime<Utc>,
    },
    /// `set_encryption_keys` on `conversation:{id}`: a member set (or replaced) their keys.
    KeysSet {
        /// The conversation.
        conversation_id: Uuid,
        /// Whose keys.
        user_id: Uuid,
        /// Their public JWK text.
        public_key: String,
    },
    /// `identity_key` on `conversation:{id}`: a member published a new identity (docs/e2e.md);
    /// feed it to [`Keyring::learn_identity`](crate::trust::Keyring::learn_identity).
    IdentityKey {
        /// The conversation it was announced in.
        conversation_id: Uuid,
        /// Whose identity.
        user_id: Uuid,
        /// Their identity key.
        identity_key: Value,
    },
    /// `update_alias` on `conversation:{id}`: the group was renamed.
    AliasChanged {
        /// The conversation.
        conversation_id: Uuid,
        /// The new name, if any.
        alias: Option<String>,
    },
    /// `leave_conversation` on `conversation:{id}`: a member left the group.
    MemberLeft {
        /// The conversation.
        conversation_id: Uuid,
        /// Who left.
        user_id: Uuid,
    },
    /// `assistant_delta` on the assistant conversation's topic.
    AssistantDelta(AssistantDelta),
    /// `new_post` on `room:{id}`: a post in a room (the caller's own included, and the
    /// assistant's answers, from [`ASSISTANT_ID`](crate::api::ASSISTANT_ID)).
    NewPost(Post),
    /// `edit_post` on `room:{id}`: a post's new text.
    PostEdited(Post),
    /// `delete_post` on `room:{id}`: a post was deleted (by its sender, a moderator or an
    /// administrator).
    PostDeleted {
        /// The room.
        room_id: Uuid,
        /// The deleted post.
        message_id: Uuid,
    },
    /// `member_joined` on `room:{id}`: someone joined the room or was added to it.
    RoomMemberJoined {
        /// The room.
        room_id: Uuid,
        /// Who.
        user_id: Uuid,
    },
    /// `member_left` on `room:{id}`: a member left the room.
    RoomMemberLeft {
        /// The room.
        room_id: Uuid,
        /// Who.
        user_id: Uuid,
    },
    /// `moderator_appointed` on `room:{id}`: the room's last moderator left and this member,
    /// there longest, moderates it now.
    RoomModeratorAppointed {
        /// The room.
        room_id: Uuid,
        /// Who moderates it now.
        user_id: Uuid,
    },
    /// `start_typing` (`typing: true`) or `finish_typing` on `room:{id}`.
    RoomTyping {
        /// The room.
        room_id: Uuid,
        /// Who is (or stopped) typing.
        user_id: Uuid,
        /// Started (true) or finished (false).
        typing: bool,
    },
    /// `read_room` on `room:{id}`: a member read the room.
    RoomRead {
        /// The room.
        room_id: Uuid,
        /// Who read it.
        user_id: Uuid,
        /// When.
        read_at: Option<DateTime<Utc>>,
    },
    /// `assistant_delta` on `room:{id}`.
    RoomAssistantDelta(RoomAssistantDelta),
    /// `set_display_name` on `system:general`: someone renamed themselves.
    DisplayName {
        /// Who.
        user_id: Uuid,
        /// Their new name.
        display_name: String,
    },
    /// `presence_state` or `presence_diff` on `system:general`: give the event to a
    /// [`Presence`](super::Presence).
    Presence,
    /// The socket reconnected (`reconnected` on topic `phoenix`): catch up over REST.
    Reconnected {
        /// The topics joined again.
        rejoined: Vec<String>,
        /// The topics whose rejoin was refused (no longer joined).
        failed: Vec<String>,
    },
    /// The server ended the channel on a topic (`phx_close`, after leaving a group or a room,
    /// or `phx_error`); it is no longer joined.
    ChannelClosed {
        /// The topic.
        topic: String,
    },
}

#[derive(Deserialize)]
struct UserOnly {
    user_id: Uuid,
}

#[derive(Deserialize)]
struct ReadPayload {
    user_id: Uuid,
    #[serde(default)]
    read_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct DeliveredPayload {
    user_id: Uuid,
    delivered_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct IdentityPayload {
    user_id: Uuid,
    identity_key: Value,
}

#[derive(Deserialize)]
struct KeysPayload {
    user_id: Uuid,
    public_key: Value,
}

#[derive(Deserialize)]
struct AliasPayload {
    alias: Option<String>,
}

#[derive(Deserialize)]
struct DeletePayload {
    conversation_id: Uuid,
    message_group_id: Uuid,
}

#[derive(Deserialize)]
struct PostIdPayload {
    message_id: Uuid,
}

#[derive(Deserialize)]
struct DisplayNamePayload {
    user_id: Uuid,
    display_name: String,
}

#[derive(Deserialize)]
struct ReconnectedPayload {
    rejoined: Vec<String>,
    failed: Vec<String>,
}

impl Incoming {
    /// The event as one of hearth's, or `None`: an event this SDK does not know, or one whose
    /// payload is not of the documented shape (a newer server may add events; nothing the
    /// server sends makes this panic). `delete_message` on `conversation:{id}` is `None` too:
    /// the user topic carries the same deletion, with the conversation named.
    pub fn parse(event: &Event) -> Option<Self> {
        let payload = &event.payload;
        if let Some(id) = event.topic.strip_prefix("conversation:") {
            let conversation_id: Uuid = id.parse().ok()?;
            return match event.event.as_str() {
                "start_typing" | "finish_typing" => {
                    let UserOnly { user_id } = from(payload)?;
                    Some(Self::Typing { conversation_id, user_id, typing: event.event == "start_typing" })
                }
                "read_conversation" => {
                    let ReadPayload { user_id, read_at } = from(payload)?;
                    Some(Self::Read { conversation_id, user_id, read_at })
                }
                "delivered_conversation" => {
                    let DeliveredPayload { user_id, delivered_at } = from(payload)?;
                    Some(Self::Delivered { conversation_id, user_id, delivered_at })
                }
                "set_encryption_keys" => {
                    let KeysPayload { user_id, public_key } = from(payload)?;
                    Some(Self::KeysSet { conversation_id, user_id, public_key: as_key_text(public_key)? })
                }
                "identity_key" => {
                    let IdentityPayload { user_id, identity_key } = from(payload)?;
                    Some(Self::IdentityKey { conversation_id, user_id, identity_key })
                }
                "update_alias" => {
                    let AliasPayload { alias } = from(payload)?;
                    Some(Self::AliasChanged { conversation_id, alias })
                }
                "leave_conversation" => {
                    let UserOnly { user_id } = from(payload)?;
                    Some(Self::MemberLeft { conversation_id, user_id })
                }
                "assistant_delta" => {
                    let delta: AssistantDelta = from(payload)?;
                    Some(Self::AssistantDelta(AssistantDelta { conversation_id, ..delta }))
                }
                "phx_close" | "phx_error" => Some(Self::ChannelClosed { topic: event.topic.clone() }),
                _ => None,
            };
        }
        if let Some(id) = event.topic.strip_prefix("room:") {
            let room_id: Uuid = id.parse().ok()?;
            return match event.event.as_str() {
                "new_post" => from(payload).map(Self::NewPost),
                "edit_post" => from(payload).map(Self::PostEdited),
                "delete_post" => {
                    let PostIdPayload { message_id } = from(payload)?;
                    Some(Self::PostDeleted { room_id, message_id })
                }
                "member_joined" => {
                    let UserOnly { user_id } = from(payload)?;
                    Some(Self::RoomMemberJoined { room_id, user_id })
                }
                "member_left" => {
                    let UserOnly { user_id } = from(payload)?;
                    Some(Self::RoomMemberLeft { room_id, user_id })
                }
                "moderator_appointed" => {
                    let UserOnly { user_id } = from(payload)?;
                    Some(Self::RoomModeratorAppointed { room_id, user_id })
                }
                "start_typing" | "finish_typing" => {
                    let UserOnly { user_id } = from(payload)?;
                    Some(Self::RoomTyping { room_id, user_id, typing: event.event == "start_typing" })
                }
                "read_room" => {
                    let ReadPayload { user_id, read_at } = from(payload)?;
                    Some(Self::RoomRead { room_id, user_id, read_at })
                }
                "assistant_delta" => {
                    let delta: RoomAssistantDelta = from(payload)?;
                    Some(Self::RoomAssistantDelta(RoomAssistantDelta { room_id, ..delta }))
                }
                "phx_close" | "phx_error" => Some(Self::ChannelClosed { topic: event.topic.clone() }),
                _ => None,
            };
        }
        if event.topic.starts_with("user:") {
            return match event.event.as_str() {
                "new_conversation" => from(payload).map(Self::NewConversation),
                "new_room" => from(payload).map(Self::NewRoom),
                "new_message" => from(payload).map(Self::NewMessage),
                "edit_message" => from(payload).map(Self::EditMessage),
                "delete_message" => {
                    let DeletePayload { conversation_id, message_group_id } = from(payload)?;
                    Some(Self::DeleteMessage { conversation_id, message_group_id })
                }
                _ => None,
            };
        }
        match (event.topic.as_str(), event.event.as_str()) {
            (SYSTEM_TOPIC, "presence_state" | "presence_diff") => Some(Self::Presence),
            (SYSTEM_TOPIC, "set_display_name") => {
                let DisplayNamePayload { user_id, display_name } = from(payload)?;
                Some(Self::DisplayName { user_id, display_name })
            }
            ("phoenix", "reconnected") => {
                let ReconnectedPayload { rejoined, failed } = from(payload)?;
                Some(Self::Reconnected { rejoined, failed })
            }
            _ => None,
        }
    }
}

fn from<T: DeserializeOwned>(payload: &Value) -> Option<T> {
    T::deserialize(payload).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(topic: &str, name: &str, payload: Value) -> Event {
        Event { topic: topic.to_owned(), event: name.to_owned(), payload }
    }

    #[test]
    fn conversation_events_name_their_conversation_from_the_topic() {
        let (conversation, user) = (Uuid::now_v7(), Uuid::now_v7());
        let topic = format!("conversation:{conversation}");
        let typing = Incoming::parse(&event(&topic, "start_typing", json!({ "user_id": user })));
        assert_eq!(typing, Some(Incoming::Typing { conversation_id: conversation, user_id: user, typing: true }));
        let keys = Incoming::parse(&event(
            &topic,
            "set_encryption_keys",
            json!({ "user_id": user, "public_key": {"kty": "EC"} }),
        ));
        assert_eq!(
            keys,
            Some(Incoming::KeysSet {
                conversation_id: conversation,
                user_id: user,
                public_key: r#"{"kty":"EC"}"#.into()
            })
        );
        let (reply, prompt) = (Uuid::now_v7(), Uuid::now_v7());
        let delta = json!({ "reply_id": reply, "prompt_group": prompt, "index": 2, "delta": "word " });
        let Some(Incoming::AssistantDelta(delta)) = Incoming::parse(&event(&topic, "assistant_delta", delta)) else {
            panic!("an assistant delta");
        };
        assert_eq!(
            (delta.conversation_id, delta.reply_id, delta.index, delta.delta.as_str()),
            (conversation, reply, 2, "word ")
        );
    }

    #[test]
    fn room_events_name_their_room_from_the_topic() {
        let (room, user, post) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let topic = format!("room:{room}");
        let posted = json!({ "id": post, "room_id": room, "sender": user, "text": "hi",
            "inserted_at": "2026-12-06T10:00:00.000Z", "updated_at": "2026-12-06T10:00:00.000Z" });
        let Some(Incoming::NewPost(new)) = Incoming::parse(&event(&topic, "new_post", posted.clone())) else {
            panic!("a new post");
        };
        assert_eq!((new.id, new.room_id, new.text.as_str()), (post, room, "hi"));
        assert!(matches!(Incoming::parse(&event(&topic, "edit_post", posted)), Some(Incoming::PostEdited(_))));
        assert_eq!(
            Incoming::parse(&event(&topic, "delete_post", json!({ "message_id": post }))),
            Some(Incoming::PostDeleted { room_id: room, message_id: post })
        );
        assert_eq!(
            Incoming::parse(&event(&topic, "member_left", json!({ "user_id": user }))),
            Some(Incoming::RoomMemberLeft { room_id: room, user_id: user })
        );
        assert_eq!(
            Incoming::parse(&event(&topic, "moderator_appointed", json!({ "user_id": user }))),
            Some(Incoming::RoomModeratorAppointed { room_id: room, user_id: user })
        );
        assert_eq!(
            Incoming::parse(&event(&topic, "finish_typing", json!({ "user_id": user }))),
            Some(Incoming::RoomTyping { room_id: room, user_id: user, typing: false })
        );
        let delta = json!({ "reply_id": post, "prompt_id": post, "index": 0, "delta": "groq " });
        let Some(Incoming::RoomAssistantDelta(delta)) = Incoming::parse(&event(&topic, "assistant_delta", delta))
        else {
            panic!("an assistant delta");
        };
        assert_eq!((delta.room_id, delta.delta.as_str()), (room, "groq "));
        assert_eq!(Incoming::parse(&event(&topic, "new_post", json!({ "id": "x" }))), None);
        assert_eq!(Incoming::parse(&event("room:nope", "new_post", json!({}))), None);
    }

    #[test]
    fn malformed_or_unknown_events_are_none() {
        let topic = format!("conversation:{}", Uuid::now_v7());
        assert_eq!(Incoming::parse(&event(&topic, "start_typing", json!({ "user_id": "nobody" }))), None);
        assert_eq!(Incoming::parse(&event("conversation:not-a-uuid", "start_typing", json!({}))), None);
        assert_eq!(Incoming::parse(&event(&topic, "something_new", json!({}))), None);
        assert_eq!(Incoming::parse(&event("user:x", "new_message", json!({ "message": 1 }))), None);
        assert_eq!(Incoming::parse(&event(SYSTEM_TOPIC, "presence_diff", json!({}))), Some(Incoming::Presence));
    }
}
