//! Typed calls for a room's channel, `room:{id}` (members only): joining with the room, its
//! members and the newest posts; posting (acknowledged once stored), editing and deleting
//! posts; typing and read marks. Posts are plain text: rooms are not end-to-end encrypted.
//! What arrives on the topic is read by [`Incoming::parse`](super::Incoming::parse).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::conversation::typed;
use super::{ChannelError, Socket};
use crate::api::{Post, PostPage, Room};

/// A room's topic; only its members may join it.
pub fn room_topic(room_id: Uuid) -> String {
    format!("room:{room_id}")
}

/// One member of a room, as the join reply lists them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomMember {
    /// The member.
    pub user_id: Uuid,
    /// Moderators add members and delete anyone's posts.
    pub moderator: bool,
    /// When they last read the room (`None`: never).
    #[serde(default)]
    pub read_at: Option<DateTime<Utc>>,
}

/// The reply to joining `room:{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JoinedRoom {
    /// The room, as the caller sees it.
    pub room: Room,
    /// The first hundred members (moderators, then by joining) and the caller;
    /// [`Client::room_members`](crate::api::Client::room_members) pages through them all.
    pub members: Vec<RoomMember>,
    /// How many members the room has.
    pub member_count: u64,
    /// The newest page of posts, newest first.
    pub messages: PostPage,
}

impl Socket {
    /// Joins `room:{id}`: the room, its members and its newest posts. A room the caller is
    /// not a member of is refused (`room not found` for a private one; a public one is joined
    /// first with [`Client::join_room`](crate::api::Client::join_room)).
    pub async fn join_room(&self, room_id: Uuid) -> Result<JoinedRoom, ChannelError> {
        typed(self.join(&room_topic(room_id), json!({})).await?)
    }

    /// `post` on the joined room: the reply, once the post is stored, is the post; every
    /// joined member (the caller included) receives it as `new_post`. `client_msg_id` (1–100
    /// bytes) makes a resend after a lost reply answer with the same post instead of storing
    /// it twice. A post starting with `@assistant` asks the assistant, whose answer streams in
    /// as [`RoomAssistantDelta`](super::RoomAssistantDelta)s and then arrives as a `new_post`
    /// from [`ASSISTANT_ID`](crate::api::ASSISTANT_ID).
    pub async fn post(&self, room_id: Uuid, text: &str, client_msg_id: Option<&str>) -> Result<Post, ChannelError> {
        let mut payload = json!({ "text": text });
        if let Some(id) = client_msg_id {
            payload["client_msg_id"] = json!(id);
        }
        typed(self.push(&room_topic(room_id), "post", payload).await?)
    }

    /// `edit_post`: new text for one of the caller's own posts; the reply is the post as it is
    /// now, and the members receive it as `edit_post`.
    pub async fn edit_post(&self, room_id: Uuid, message_id: Uuid, text: &str) -> Result<Post, ChannelError> {
        let payload = json!({ "message_id": message_id, "text": text });
        typed(self.push(&room_topic(room_id), "edit_post", payload).await?)
    }

    /// `delete_post`: deletes one of the caller's posts, or anyone's for a moderator; the
    /// members receive `delete_post` with its id.
    pub async fn delete_post(&self, room_id: Uuid, message_id: Uuid) -> Result<(), ChannelError> {
        let payload = json!({ "message_id": message_id });
        self.push(&room_topic(room_id), "delete_post", payload).await.map(drop)
    }

    /// `start_typing` (`typing: true`) or `finish_typing` on the joined room: the members see
    /// `{user_id}`.
    pub async fn room_typing(&self, room_id: Uuid, typing: bool) -> Result<(), ChannelError> {
        let event = if typing { "start_typing" } else { "finish_typing" };
        self.push(&room_topic(room_id), event, json!({})).await.map(drop)
    }

    /// `read_room`: marks the room read by the caller now; the members see
    /// `{user_id, read_at}`.
    pub async fn read_room(&self, room_id: Uuid) -> Result<(), ChannelError> {
        self.push(&room_topic(room_id), "read_room", json!({})).await.map(drop)
    }
}
