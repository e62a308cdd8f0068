//! How rooms and their posts look to clients: one type per object, for REST replies, channel
//! replies and pushes alike.

use hearth_store::{ASSISTANT_SENDER, Room, RoomMessage, RoomOfUser, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who may find and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed to everyone; anyone may join.
    Public,
    /// Seen by its members only; moderators add members.
    Private,
}

/// A room. Rooms are readable by the server: clients mark them as not end-to-end encrypted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoomSummary {
    /// Room id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// What it is about.
    #[schema(required)]
    pub topic: Option<String>,
    /// Public or private.
    pub visibility: Visibility,
    /// Created.
    #[schema(value_type = String, format = DateTime)]
    pub inserted_at: Timestamp,
    /// Last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&Room> for RoomSummary {
    fn from(room: &Room) -> Self {
        Self {
            id: room.id,
            name: room.name.clone(),
            topic: room.topic.clone(),
            visibility: if room.public { Visibility::Public } else { Visibility::Private },
            inserted_at: room.inserted_at,
            updated_at: room.updated_at,
        }
    }
}

/// A room as the caller sees it in their list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListedRoom {
    #[serde(flatten)]
    pub room: RoomSummary,
    /// Whether the caller is a member.
    pub joined: bool,
    /// Whether the caller moderates it.
    pub moderator: bool,
}

impl From<&RoomOfUser> for ListedRoom {
    fn from(listed: &RoomOfUser) -> Self {
        Self { room: (&listed.room).into(), joined: listed.joined, moderator: listed.moderator }
    }
}

/// The rooms the caller is in and the public rooms, a page at a time.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomList {
    /// The rooms, by id.
    pub items: Vec<ListedRoom>,
    /// Null on the last page.
    #[schema(required)]
    pub page_token: Option<String>,
}

/// A room's members, a page at a time.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    /// The members, by id.
    pub items: Vec<super::channel::Member>,
    /// Null on the last page.
    #[schema(required)]
    pub page_token: Option<String>,
}

/// A post in a room; `new_post` and `edit_post` pushes carry the same shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Post {
    /// Post id.
    pub id: Uuid,
    /// The room.
    pub room_id: Uuid,
    /// Who posted it (the assistant's fixed id for its answers).
    pub sender: Uuid,
    /// The text.
    pub text: String,
    /// Posted.
    #[schema(value_type = String, format = DateTime)]
    pub inserted_at: Timestamp,
    /// Last edited (the post time if never).
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&RoomMessage> for Post {
    fn from(message: &RoomMessage) -> Self {
        Self {
            id: message.id,
            room_id: message.room_id,
            sender: message.sender_id.unwrap_or(ASSISTANT_SENDER),
            text: message.text.clone(),
            inserted_at: message.inserted_at,
            updated_at: message.updated_at,
        }
    }
}

/// A page of a room's posts, newest first (seed 002's page shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct PostPage {
    /// The posts.
    pub items: Vec<Post>,
    /// Null on the last page.
    #[schema(required)]
    pub page_token: Option<String>,
}

/// Posts a search found, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    /// The posts.
    pub items: Vec<Post>,
}

/// Who a moderator's addition made members (those who were members already are not listed).
#[derive(Debug, Serialize, ToSchema)]
pub struct Added {
    /// The new members.
    pub user_ids: Vec<Uuid>,
}
