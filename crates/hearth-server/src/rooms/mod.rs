//! Rooms, the domain: group channels the server can read, like a guild's channels. Creating,
//! listing, joining and leaving them, adding members, posting, editing and deleting posts,
//! history pages and search. The REST adapter (`http/rooms.rs`) and the socket adapter
//! (`realtime/room.rs`) both call in here; what each operation tells the room's members is
//! published from here, on `room:{id}`.
//!
//! Who may do what: anyone sees public rooms and may join them; a private room is seen by its
//! members only (anyone else gets the answer a room that does not exist gets); reading and
//! posting need a membership; moderators (a room's creator first) add members and delete
//! anyone's posts; a post is edited by its sender only.

pub mod assistant;
pub mod channel;
mod replies;

use hearth_store::{NewRoom, Room, RoomMember, StoreError, Timestamp};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

pub use replies::{Added, ListedRoom, MemberPage, Post, PostPage, RoomList, RoomSummary, SearchResults, Visibility};

use crate::error::{ApiError, ApiResult};
use crate::events::{Envelope, room_topic, user_topic};
use crate::state::AppState;

/// Longest room name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest room topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 500;
/// Most people one request adds.
pub const MAX_ADDED: usize = 100;
/// Longest search, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

pub(super) fn not_a_member() -> ApiError {
    ApiError::Forbidden { code: "not_a_member", message: "you are not a member of this room" }
}

fn not_a_moderator() -> ApiError {
    ApiError::Forbidden { code: "not_a_moderator", message: "only the room's moderators may do this" }
}

/// `POST /api/rooms`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateRoom {
    /// 1 to 100 characters (after trimming) without control characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// At most 500 characters without control characters; empty means none.
    #[schema(max_length = 500)]
    topic: Option<String>,
    /// Who may find and join it.
    visibility: Visibility,
}

/// `POST /api/rooms/{id}/members`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMembers {
    /// The people to add, 1 to 100.
    #[schema(min_items = 1, max_items = 100)]
    user_ids: Vec<Uuid>,
}

/// The room's name as given: trimmed, 1–100 characters, no control characters.
fn checked_name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    let length = name.chars().count();
    if length == 0 || length > MAX_NAME_CHARS {
        return Err(ApiError::invalid("name", format!("must be 1 to {MAX_NAME_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// The room's topic as given: trimmed, at most 500 characters, no control characters; empty is
/// none.
fn checked_topic(raw: Option<&str>) -> ApiResult<Option<String>> {
    let Some(topic) = raw.map(str::trim) else { return Ok(None) };
    if topic.chars().count() > MAX_TOPIC_CHARS {
        return Err(ApiError::invalid("topic", format!("must be at most {MAX_TOPIC_CHARS} characters")));
    }
    if topic.chars().any(char::is_control) {
        return Err(ApiError::invalid("topic", "must not contain control characters"));
    }
    Ok((!topic.is_empty()).then(|| topic.to_owned()))
}

/// Creates a room; its creator is its first member and moderator.
pub async fn create(state: &AppState, me: Uuid, request: CreateRoom) -> ApiResult<ListedRoom> {
    let name = checked_name(&request.name)?;
    let topic = checked_topic(request.topic.as_deref())?;
    let public = request.visibility == Visibility::Public;
    let new = NewRoom { id: Uuid::now_v7(), name, topic, public, creator: me, now: Timestamp::now() };
    let room = state.store.create_room(&new).await?;
    let listed = ListedRoom { room: (&room).into(), joined: true, moderator: true };
    state.publish_typed(user_topic(me), "new_room", &listed).await;
    Ok(listed)
}

/// The listing name page tokens of `me`'s room list are bound to.
fn rooms_listing(me: Uuid) -> String {
    format!("rooms:{me}")
}

/// The listing name page tokens of a room's history are bound to.
fn posts_listing(room_id: Uuid) -> String {
    format!("room_messages:{room_id}")
}

/// The rooms `me` is in and the public ones, by id, a page at a time.
pub async fn list(state: &AppState, me: Uuid, page_token: Option<&str>, size: u32) -> ApiResult<RoomList> {
    let listing = rooms_listing(me);
    let after = state.page_tokens.decode_id(&listing, page_token)?;
    let mut rooms = state.store.rooms_of(me, after, size + 1).await?;
    let page_token = state.page_tokens.next_page(&listing, &mut rooms, size, |last| last.room.id);
    Ok(RoomList { items: rooms.iter().map(ListedRoom::from).collect(), page_token })
}

/// A room as the caller may see it, and their membership: a private room they are not in is
/// not found, as a room that does not exist.
#[derive(Debug)]
pub struct Seen {
    pub(super) room: Room,
    pub(super) membership: Option<RoomMember>,
}

impl Seen {
    /// The room `room_id` if the caller may see it.
    pub async fn check(state: &AppState, room_id: Uuid, me: Uuid) -> ApiResult<Self> {
        let room = state.store.room(room_id).await?.ok_or(ApiError::NoSuch("room not found"))?;
        let membership = state.store.room_member(room_id, me).await?;
        if !room.public && membership.is_none() {
            return Err(ApiError::NoSuch("room not found"));
        }
        Ok(Self { room, membership })
    }

    /// The caller's membership, or a refusal.
    pub(super) fn member(&self) -> ApiResult<&RoomMember> {
        self.membership.as_ref().ok_or_else(not_a_member)
    }

    /// The room as the caller lists it.
    pub(super) fn listed(&self) -> ListedRoom {
        ListedRoom {
            room: (&self.room).into(),
            joined: self.membership.is_some(),
            moderator: self.membership.as_ref().is_some_and(|m| m.moderator),
        }
    }
}

/// Joins a public room (a no-op for a member); the members are told.
pub async fn join_public(state: &AppState, me: Uuid, room_id: Uuid) -> ApiResult<ListedRoom> {
    let seen = Seen::check(state, room_id, me).await?;
    if seen.membership.is_some() {
        return Ok(seen.listed());
    }
    if !seen.room.public {
        return Err(ApiError::NoSuch("room not found"));
    }
    let added = state.store.add_room_members(room_id, &[me], Timestamp::now()).await?;
    welcome(state, &seen.room, &added).await;
    Ok(ListedRoom { room: (&seen.room).into(), joined: true, moderator: false })
}

/// A moderator adds people; each new member is told to the room.
pub async fn add_members(state: &AppState, me: Uuid, room_id: Uuid, request: AddMembers) -> ApiResult<Added> {
    let seen = Seen::check(state, room_id, me).await?;
    if !seen.member()?.moderator {
        return Err(not_a_moderator());
    }
    if request.user_ids.is_empty() || request.user_ids.len() > MAX_ADDED {
        return Err(ApiError::invalid("user_ids", format!("must list 1 to {MAX_ADDED} people")));
    }
    let added =
        state.store.add_room_members(room_id, &request.user_ids, Timestamp::now()).await.map_err(
            |error| match error {
                StoreError::NotFound => ApiError::invalid("user_ids", "names someone who does not exist"),
                other => other.into(),
            },
        )?;
    welcome(state, &seen.room, &added).await;
    Ok(Added { user_ids: added.iter().map(|member| member.user_id).collect() })
}

/// Tells the room of its new members and each of them of the room (`new_room`, on every device),
/// and shows them and the room's members to each other in presence (presence in a room is its
/// members', up to `rooms.presence_max_members`).
/// The additions are stored by then: a failure to read the members is logged, not answered.
async fn welcome(state: &AppState, room: &Room, added: &[RoomMember]) {
    if added.is_empty() {
        return;
    }
    let max = state.settings.rooms.presence_max_members;
    let members: Vec<Uuid> = match state.store.room_members(room.id, max.saturating_add(1)).await {
        Ok(members) if members.len() <= max as usize => members.iter().map(|m| m.user_id).collect(),
        Ok(_) => Vec::new(),
        Err(error) => {
            tracing::error!(%error, room = %room.id, "room members not read to introduce the new ones");
            Vec::new()
        }
    };
    for member in added {
        state.publish(room_topic(room.id), "member_joined", json!({ "user_id": member.user_id })).await;
        let listed = ListedRoom { room: room.into(), joined: true, moderator: member.moderator };
        state.publish_typed(user_topic(member.user_id), "new_room", &listed).await;
        if !members.is_empty() {
            crate::presence::introduce_to(state, member.user_id, &members).await;
        }
    }
}

/// Leaves a room: the others are told, and the room's channel ends on every socket of the
/// caller. When the last moderator leaves, the member there longest becomes one (as Slack and
/// Discord hand on ownership), so that someone can still add people and remove posts.
pub async fn leave(state: &AppState, me: Uuid, room_id: Uuid) -> ApiResult<()> {
    let seen = Seen::check(state, room_id, me).await?;
    seen.member()?;
    let successor = state.store.remove_room_member(room_id, me).await.map_err(|error| match error {
        StoreError::NotFound => not_a_member(),
        other => other.into(),
    })?;
    announce_departure(state, room_id, me, successor).await;
    state.pubsub.publish(Envelope::CloseTopic { user: me, topic: room_topic(room_id) }).await;
    Ok(())
}

/// One page of a room's posts, newest first.
pub(super) async fn posts_page(
    state: &AppState,
    room_id: Uuid,
    before: Option<Uuid>,
    size: u32,
) -> ApiResult<PostPage> {
    let mut messages = state.store.room_messages(room_id, before, size + 1).await?;
    let page_token = state.page_tokens.next_page(&posts_listing(room_id), &mut messages, size, |last| last.id);
    Ok(PostPage { items: messages.iter().map(Post::from).collect(), page_token })
}

/// A member's account was deleted (its memberships with it): the room is told, and if it lost
/// its last moderator the member there longest becomes one. The account is gone by then: a
/// failure here is logged, not answered.
pub async fn member_gone(state: &AppState, room_id: Uuid, user_id: Uuid) {
    let successor = state.store.appoint_room_successor(room_id).await.unwrap_or_else(|error| {
        tracing::error!(%error, room = %room_id, "no moderator appointed after an account was deleted");
        None
    });
    announce_departure(state, room_id, user_id, successor).await;
}

/// Tells a room that `user_id` left it, and who moderates it now if that changed.
async fn announce_departure(state: &AppState, room_id: Uuid, user_id: Uuid, successor: Option<Uuid>) {
    state.publish(room_topic(room_id), "member_left", json!({ "user_id": user_id })).await;
    if let Some(successor) = successor {
        state.publish(room_topic(room_id), "moderator_appointed", json!({ "user_id": successor })).await;
    }
}

/// The listing name page tokens of a room's members are bound to.
fn members_listing(room_id: Uuid) -> String {
    format!("room_members:{room_id}")
}

/// A page of a room's members for a member, by id, after `page_token` when one is given.
pub async fn members(
    state: &AppState,
    me: Uuid,
    room_id: Uuid,
    page_token: Option<&str>,
    size: u32,
) -> ApiResult<MemberPage> {
    Seen::check(state, room_id, me).await?.member()?;
    let listing = members_listing(room_id);
    let after = state.page_tokens.decode_id(&listing, page_token)?;
    let mut members = state.store.room_members_after(room_id, after, size + 1).await?;
    let page_token = state.page_tokens.next_page(&listing, &mut members, size, |last| last.user_id);
    Ok(MemberPage { items: members.iter().map(channel::Member::from).collect(), page_token })
}

/// A page of a room's posts for a member, after `page_token` when one is given.
pub async fn history(
    state: &AppState,
    me: Uuid,
    room_id: Uuid,
    page_token: Option<&str>,
    size: u32,
) -> ApiResult<PostPage> {
    Seen::check(state, room_id, me).await?.member()?;
    let before = state.page_tokens.decode_id(&posts_listing(room_id), page_token)?;
    posts_page(state, room_id, before, size).await
}

/// The room's posts holding every word of `query`, newest first, at most `size`.
pub async fn search(state: &AppState, me: Uuid, room_id: Uuid, query: &str, size: u32) -> ApiResult<SearchResults> {
    let length = query.trim().chars().count();
    if length == 0 || query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid("q", format!("must be 1 to {MAX_QUERY_CHARS} characters")));
    }
    Seen::check(state, room_id, me).await?.member()?;
    let found = state.store.search_room_messages(room_id, query, size).await?;
    Ok(SearchResults { items: found.iter().map(Post::from).collect() })
}
