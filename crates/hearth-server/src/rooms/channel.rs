//! A room's channel, the domain side: what a member sees on joining `room:{id}`, posting,
//! editing and deleting posts, typing and read marks. Each operation re-checks membership (a
//! member removed meanwhile is refused) and publishes what it changed on the room's topic.

use hearth_store::{NewRoomMessage, RoomMember, StoreError, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::assistant::{self, Mention};
use super::{ListedRoom, Post, PostPage, Seen, not_a_member, posts_page};
use crate::error::{ApiError, ApiResult};
use crate::events::room_topic;
use crate::state::AppState;

/// Posts in the join reply.
pub const FIRST_PAGE: u32 = 50;
/// Members in the join reply (the caller is added when not among them): a room of ten thousand
/// would otherwise send a megabyte to every member at every reconnection.
pub const JOIN_REPLY_MEMBERS: u32 = 100;
/// Longest post, in characters.
pub const MAX_POST_CHARS: usize = 4000;
/// Longest `client_msg_id`, in bytes.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 100;

/// One member of a room.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Member {
    /// The member.
    pub user_id: Uuid,
    /// Moderators add members and delete anyone's posts.
    pub moderator: bool,
    /// Read everything up to then (null before the first time).
    #[schema(value_type = Option<String>, format = DateTime, required)]
    pub read_at: Option<Timestamp>,
}

impl From<&RoomMember> for Member {
    fn from(member: &RoomMember) -> Self {
        Self { user_id: member.user_id, moderator: member.moderator, read_at: member.read_at }
    }
}

/// What a member gets on joining `room:{id}`.
#[derive(Debug, Serialize)]
pub struct JoinView {
    /// The room.
    pub room: ListedRoom,
    /// The first [`JOIN_REPLY_MEMBERS`] members (moderators first, then by joining), and the
    /// caller.
    pub members: Vec<Member>,
    /// How many members the room has.
    pub member_count: u64,
    /// The first page of posts.
    pub messages: PostPage,
}

/// A post's text: 1–4 000 characters, not only spaces.
fn checked_text(text: &str) -> ApiResult<()> {
    if text.trim().is_empty() || text.chars().count() > MAX_POST_CHARS {
        return Err(ApiError::refused("invalid_text", format!("text must be 1 to {MAX_POST_CHARS} characters")));
    }
    Ok(())
}

/// What a member sees on joining the room's channel: the room, its first members and how many
/// there are, the first page of posts. Anyone else is refused: a private room as if it did not
/// exist.
pub async fn join_channel(state: &AppState, me: Uuid, room_id: Uuid) -> ApiResult<JoinView> {
    let seen = Seen::check(state, room_id, me).await?;
    let mine = seen.member()?;
    let mut members: Vec<Member> =
        state.store.room_members(room_id, JOIN_REPLY_MEMBERS).await?.iter().map(Member::from).collect();
    if !members.iter().any(|member| member.user_id == me) {
        members.push(Member::from(mine));
    }
    let member_count = state.store.room_member_count(room_id).await?;
    let messages = posts_page(state, room_id, None, FIRST_PAGE).await?;
    Ok(JoinView { room: seen.listed(), members, member_count, messages })
}

/// `post`.
#[derive(Debug, Deserialize)]
pub struct NewPost {
    text: String,
    client_msg_id: Option<String>,
}

/// `edit_post`.
#[derive(Debug, Deserialize)]
pub struct EditPost {
    message_id: Uuid,
    text: String,
}

/// `delete_post`.
#[derive(Debug, Deserialize)]
pub struct DeletePost {
    message_id: Uuid,
}

/// Typing started or stopped.
#[derive(Debug, Clone, Copy)]
pub enum Typing {
    /// `start_typing`.
    Started,
    /// `finish_typing`.
    Finished,
}

/// A member acting in a room's channel. Membership is checked again by every event: a member
/// removed meanwhile is refused.
#[derive(Debug, Clone, Copy)]
pub struct InRoom<'a> {
    state: &'a AppState,
    room_id: Uuid,
    me: Uuid,
}

impl<'a> InRoom<'a> {
    /// The caller acting in `room_id`.
    pub fn new(state: &'a AppState, room_id: Uuid, me: Uuid) -> Self {
        Self { state, room_id, me }
    }

    async fn membership(&self) -> ApiResult<RoomMember> {
        self.state.store.room_member(self.room_id, self.me).await?.ok_or_else(not_a_member)
    }

    /// Stores a post (the store checks membership in the same transaction) and pushes it to the
    /// room; the reply, after the commit, is the post.
    pub async fn post(&self, request: NewPost) -> ApiResult<Post> {
        checked_text(&request.text)?;
        if request.client_msg_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > MAX_CLIENT_MSG_ID_BYTES) {
            return Err(ApiError::refused("invalid_client_msg_id", "client_msg_id must be 1 to 100 characters"));
        }
        let message = NewRoomMessage {
            id: Uuid::now_v7(),
            room_id: self.room_id,
            sender_id: Some(self.me),
            client_msg_id: request.client_msg_id,
            text: request.text,
            now: Timestamp::now(),
        };
        let (stored, fresh) = self.state.store.post_room_message(&message).await.map_err(|error| match error {
            StoreError::Rule("not_a_member") => not_a_member(),
            other => other.into(),
        })?;
        let post = Post::from(&stored);
        if fresh {
            self.state.publish_typed(room_topic(self.room_id), "new_post", &post).await;
            if let Some(prompt) = assistant::mentioned(&post.text) {
                let mention =
                    Mention { room_id: self.room_id, user_id: self.me, prompt_id: post.id, prompt: prompt.to_owned() };
                assistant::answer(self.state.clone(), mention);
            }
        }
        Ok(post)
    }

    /// Replaces the text of one of the caller's posts.
    pub async fn edit(&self, request: EditPost) -> ApiResult<Post> {
        checked_text(&request.text)?;
        self.membership().await?;
        let edited = self
            .state
            .store
            .edit_room_message(self.room_id, request.message_id, self.me, &request.text, Timestamp::now())
            .await
            .map_err(|error| match error {
                StoreError::NotFound => ApiError::NoSuch("no post of yours with this id in this room"),
                other => other.into(),
            })?;
        let post = Post::from(&edited);
        self.state.publish_typed(room_topic(self.room_id), "edit_post", &post).await;
        Ok(post)
    }

    /// Deletes a post: the caller's own, or anyone's for a moderator.
    pub async fn delete(&self, request: DeletePost) -> ApiResult<serde_json::Value> {
        let membership = self.membership().await?;
        let not_found = || ApiError::NoSuch("no post with this id in this room");
        let message = self.state.store.room_message(self.room_id, request.message_id).await?.ok_or_else(not_found)?;
        if message.sender_id != Some(self.me) && !membership.moderator {
            return Err(ApiError::Forbidden {
                code: "not_the_sender",
                message: "only the sender or a moderator may delete a post",
            });
        }
        delete_post(self.state, self.room_id, request.message_id).await
    }

    /// Tells the room the caller started or stopped typing.
    pub async fn typing(&self, typing: Typing) -> ApiResult<()> {
        self.membership().await?;
        let event = match typing {
            Typing::Started => "start_typing",
            Typing::Finished => "finish_typing",
        };
        self.state.publish(room_topic(self.room_id), event, json!({ "user_id": self.me })).await;
        Ok(())
    }

    /// Marks the room read by the caller now.
    pub async fn read(&self) -> ApiResult<()> {
        let now = Timestamp::now();
        self.state.store.mark_room_read(self.room_id, self.me, now).await.map_err(|error| match error {
            StoreError::NotFound => not_a_member(),
            other => other.into(),
        })?;
        let payload = json!({ "user_id": self.me, "read_at": now });
        self.state.publish(room_topic(self.room_id), "read_room", payload).await;
        Ok(())
    }
}

/// Deletes a post whoever sent it and tells the room (`delete_post`): a moderator's or an
/// administrator's removal, once they are known to be allowed.
pub async fn delete_post(state: &AppState, room_id: Uuid, message_id: Uuid) -> ApiResult<serde_json::Value> {
    state.store.delete_room_message(room_id, message_id).await.map_err(|error| match error {
        StoreError::NotFound => ApiError::NoSuch("no post with this id in this room"),
        other => other.into(),
    })?;
    let payload = json!({ "message_id": message_id });
    state.publish(room_topic(room_id), "delete_post", payload.clone()).await;
    Ok(payload)
}
