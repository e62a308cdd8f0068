//! What administrators do in rooms (issue 25): list every room, public and private; read a
//! room's posts (audited as `room.read`: reading is an action too); delete a post with a reason
//! (audited; the members are told with `delete_post` on `room:{id}`, as when a moderator
//! deletes one). Rooms are the only conversations administrators can read: end-to-end
//! conversations reach the server as ciphertext only, and no administrator route touches them.

use std::collections::BTreeMap;

use hearth_store::{AdminRoom, Room};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::checked_reason;
use super::{Admin, audit};
use crate::error::{ApiError, ApiResult};
use crate::rooms::{Post, RoomSummary};
use crate::state::AppState;

/// The listing page tokens of the rooms list are bound to.
const ROOMS_LISTING: &str = "admin-rooms";
/// Longest search of the rooms list.
const MAX_QUERY_CHARS: usize = 200;

/// A room's moderator, as administrators see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Moderator {
    /// The moderator.
    pub user_id: Uuid,
    /// Their address.
    pub email: String,
}

/// A room as administrators list it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminRoomItem {
    #[serde(flatten)]
    room: RoomSummary,
    /// How many members it has.
    members: i64,
    /// Its moderators, in the order they joined.
    moderators: Vec<Moderator>,
    /// When its newest post was made (RFC 3339); null when it has none.
    #[schema(value_type = Option<String>, format = DateTime, required)]
    last_post_at: Option<hearth_store::Timestamp>,
}

impl From<AdminRoom> for AdminRoomItem {
    fn from(listed: AdminRoom) -> Self {
        Self {
            room: (&listed.room).into(),
            members: listed.members,
            moderators: listed
                .moderators
                .into_iter()
                .map(|moderator| Moderator { user_id: moderator.user_id, email: moderator.email })
                .collect(),
            last_post_at: listed.last_post_at,
        }
    }
}

/// A page of rooms, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminRoomPage {
    /// The rooms.
    pub items: Vec<AdminRoomItem>,
    /// Pass back as `page_token` for the next page; null on the last page.
    #[schema(required)]
    pub page_token: Option<String>,
}

/// A page of a room's posts as administrators read them: the members' page, and who sent each.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminPostPage {
    /// The posts, newest first.
    pub items: Vec<Post>,
    /// Pass back as `page_token` for the next page; null on the last page.
    #[schema(required)]
    pub page_token: Option<String>,
    /// The email address of each sender on this page, by id (an account deleted meanwhile is
    /// missing; the assistant is not a sender here).
    pub senders: BTreeMap<Uuid, String>,
}

/// One page of every room, public and private, after the one `page_token` ends at: all, or
/// those whose name or topic contains `query`.
pub async fn list(
    state: &AppState,
    query: Option<&str>,
    page_token: Option<&str>,
    size: u32,
) -> ApiResult<AdminRoomPage> {
    let search = match query.map(str::trim) {
        Some(query) if query.chars().count() > MAX_QUERY_CHARS => {
            return Err(ApiError::invalid("query", format!("must be at most {MAX_QUERY_CHARS} characters")));
        }
        Some("") | None => None,
        Some(query) => Some(query),
    };
    let after = state.page_tokens.decode_id(ROOMS_LISTING, page_token)?;
    // One extra row says whether another page exists.
    let mut rooms = state.store.admin_rooms(search, after, size + 1).await?;
    let next = state.page_tokens.next_page(ROOMS_LISTING, &mut rooms, size, |last| last.room.id);
    Ok(AdminRoomPage { items: rooms.into_iter().map(AdminRoomItem::from).collect(), page_token: next })
}

/// The listing name page tokens of a room's posts, as administrators read them, are bound to.
fn posts_listing(room_id: Uuid) -> String {
    format!("admin-room-messages:{room_id}")
}

/// The room's description in the audit log: its id and, as it is now, its name (the id alone
/// when there is no such room).
fn target(room_id: Uuid, room: Option<&Room>) -> String {
    match room {
        Some(room) => format!("room:{room_id} ({})", room.name),
        None => format!("room:{room_id}"),
    }
}

/// The room, or a 404.
fn existing(room: Option<Room>) -> ApiResult<Room> {
    room.ok_or(ApiError::NoSuch("No such room."))
}

/// A page of the room's posts, newest first, after `page_token` when one is given: the page a
/// member gets from `GET /api/rooms/{id}/messages`. Audited, read or refused.
pub async fn messages(
    state: &AppState,
    admin: &Admin,
    room_id: Uuid,
    page_token: Option<&str>,
    size: u32,
) -> ApiResult<AdminPostPage> {
    let room = state.store.room(room_id).await?;
    let target = target(room_id, room.as_ref());
    let read: ApiResult<AdminPostPage> = async {
        existing(room)?;
        let listing = posts_listing(room_id);
        let before = state.page_tokens.decode_id(&listing, page_token)?;
        let mut messages = state.store.room_messages(room_id, before, size + 1).await?;
        let page_token = state.page_tokens.next_page(&listing, &mut messages, size, |last| last.id);
        let mut senders = BTreeMap::new();
        for sender in messages.iter().filter_map(|message| message.sender_id) {
            if !senders.contains_key(&sender)
                && let Some(user) = state.store.user(sender).await?
            {
                senders.insert(sender, user.email);
            }
        }
        Ok(AdminPostPage { items: messages.iter().map(Post::from).collect(), page_token, senders })
    }
    .await;
    audit::record(&*state.store, Some(&admin.fingerprint), audit::ROOM_READ, Some(target), None, read).await
}

/// Deletes a post of the room, whoever sent it: the room's members get `delete_post`, as when a
/// moderator deletes one. Audited with the reason, or with why it was refused.
pub async fn delete_message(
    state: &AppState,
    admin: &Admin,
    room_id: Uuid,
    message_id: Uuid,
    reason: Option<&str>,
) -> ApiResult<()> {
    let room = state.store.room(room_id).await?;
    let target = format!("{} message:{message_id}", target(room_id, room.as_ref()));
    let deleted: ApiResult<String> = async {
        let reason = checked_reason(reason)?;
        existing(room)?;
        crate::rooms::channel::delete_post(state, room_id, message_id).await?;
        Ok(reason)
    }
    .await;
    let reason = deleted.as_ref().ok().cloned();
    let done = deleted.map(drop);
    audit::record(&*state.store, Some(&admin.fingerprint), audit::ROOM_MESSAGE_DELETE, Some(target), reason, done)
        .await?;
    tracing::info!(room = %room_id, message = %message_id, fingerprint = %admin.fingerprint, "room post deleted by an administrator");
    Ok(())
}
