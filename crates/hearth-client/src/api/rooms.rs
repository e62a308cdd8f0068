//! Rooms over REST (`/api/rooms`): group channels the server can read, like a guild's channels.
//! They are **not end-to-end encrypted**: posts are plain text the server stores and searches,
//! and clients say so wherever a room is shown. Posting, editing and deleting happen on the
//! room's channel ([`Socket::join_room`](crate::channels::Socket::join_room)); this module
//! creates, lists, joins and leaves rooms, adds members, pages through history and searches it.
//! It also reads the server's sign-up policy ([`Client::registration`]).

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Client, ClientError, read_json};

/// The sender of the assistant's messages: its replies in the assistant conversation and its
/// answers to `@assistant` in rooms. A fixed id that is no user's.
pub const ASSISTANT_ID: Uuid = Uuid::from_u128(0x0000_0000_0000_0000_0000_0000_a551_0001);

/// Who may find and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed to everyone on the server; anyone may join.
    Public,
    /// Seen by its members only; its moderators add people.
    Private,
}

/// A room as the caller sees it (`GET /api/rooms`, the join reply's `room`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Room {
    /// The room's id.
    pub id: Uuid,
    /// Its name (1–100 characters).
    pub name: String,
    /// What it is about, if said.
    #[serde(default)]
    pub topic: Option<String>,
    /// Public or private.
    pub visibility: Visibility,
    /// Created.
    pub inserted_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Whether the caller is a member (a public room listed to browse is not joined).
    pub joined: bool,
    /// Whether the caller moderates it (adds members, deletes anyone's posts).
    pub moderator: bool,
}

/// A page of a room's members, by id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberPage {
    /// The members.
    pub items: Vec<crate::channels::RoomMember>,
    /// Pass back for the next page; `None` on the last page.
    pub page_token: Option<String>,
}

/// A page of rooms, by id: the caller's rooms and every public one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomPage {
    /// The rooms.
    pub items: Vec<Room>,
    /// Pass back for the next page; `None` on the last page.
    pub page_token: Option<String>,
}

/// A post in a room, in plain text (`new_post` and `edit_post` carry the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Post {
    /// The post's id (what edits and deletes name).
    pub id: Uuid,
    /// The room.
    pub room_id: Uuid,
    /// Who posted it: [`ASSISTANT_ID`] for the assistant's answers.
    pub sender: Uuid,
    /// The text, 1–4 000 characters.
    pub text: String,
    /// Posted.
    pub inserted_at: DateTime<Utc>,
    /// Last edited (the post time if never).
    pub updated_at: DateTime<Utc>,
}

impl Post {
    /// Whether the post was edited since it was posted.
    pub fn edited(&self) -> bool {
        self.updated_at > self.inserted_at
    }
}

/// A page of a room's posts, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PostPage {
    /// The posts, newest first.
    pub items: Vec<Post>,
    /// Pass back for the next (older) page; `None` on the last page.
    pub page_token: Option<String>,
}

/// Who may sign up on a server (`GET /auth/registration`, the `accounts.registration` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// Anyone.
    Open,
    /// Anyone with an invite code from an administrator
    /// ([`Client::register_with_invite`]).
    Invite,
    /// Nobody: accounts are not being made.
    Closed,
}

#[derive(Deserialize)]
struct RegistrationPolicy {
    registration: Registration,
}

#[derive(Serialize)]
struct NewRoom<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    visibility: Visibility,
}

#[derive(Serialize)]
struct AddMembers<'a> {
    user_ids: &'a [Uuid],
}

#[derive(Deserialize)]
struct Added {
    user_ids: Vec<Uuid>,
}

#[derive(Deserialize)]
struct SearchResults {
    items: Vec<Post>,
}

impl Client {
    /// # GET /auth/registration
    ///
    /// Who may sign up here, so that a sign-up form can ask for an invite code (or say that
    /// sign-up is closed) before the person fills it in. Needs no session.
    pub async fn registration(&self) -> Result<Registration, ClientError> {
        let response = self.http.get(self.url("auth/registration")).send().await?;
        let policy: RegistrationPolicy = read_json("GET /auth/registration", response).await?;
        Ok(policy.registration)
    }

    /// # POST /api/rooms
    ///
    /// Creates a room with the caller as its first member and moderator. `name` is 1–100
    /// characters, `topic` at most 500 (422 `invalid` otherwise, with `fields`).
    pub async fn create_room(
        &self,
        name: &str,
        topic: Option<&str>,
        visibility: Visibility,
    ) -> Result<Room, ClientError> {
        let url = self.url("api/rooms");
        let body = NewRoom { name, topic, visibility };
        let response = self.authorized(|http| http.post(url.clone()).json(&body)).await?;
        read_json("POST /api/rooms", response).await
    }

    /// # GET /api/rooms
    ///
    /// A page (50) of the rooms the caller is in and the public rooms to browse (those with
    /// [`Room::joined`] false), by id: the first page with `page_token` `None`.
    pub async fn rooms(&self, page_token: Option<&str>) -> Result<RoomPage, ClientError> {
        let mut url = self.url("api/rooms");
        if let Some(token) = page_token {
            url.query_pairs_mut().append_pair("page_token", token);
        }
        self.get("GET /api/rooms", url).await
    }

    /// # POST /api/rooms/{id}/join
    ///
    /// Joins a public room (joining one's own room again changes nothing). A private room the
    /// caller is not in is a 404, as one that does not exist.
    pub async fn join_room(&self, room_id: Uuid) -> Result<Room, ClientError> {
        let url = self.url(&format!("api/rooms/{room_id}/join"));
        let response = self.authorized(|http| http.post(url.clone())).await?;
        read_json("POST /api/rooms/{id}/join", response).await
    }

    /// # POST /api/rooms/{id}/members
    ///
    /// A moderator adds 1–100 people; the reply is those who were not members yet. Anyone but
    /// a moderator is refused with 403 (`not_a_member`, `not_a_moderator`); an unknown user is a
    /// 422.
    pub async fn add_room_members(&self, room_id: Uuid, user_ids: &[Uuid]) -> Result<Vec<Uuid>, ClientError> {
        let url = self.url(&format!("api/rooms/{room_id}/members"));
        let body = AddMembers { user_ids };
        let response = self.authorized(|http| http.post(url.clone()).json(&body)).await?;
        let added: Added = read_json("POST /api/rooms/{id}/members", response).await?;
        Ok(added.user_ids)
    }

    /// # POST /api/rooms/{id}/leave
    ///
    /// Leaves a room: the members see `member_left`, and the server ends the caller's channel
    /// on it (`phx_close`), so it is not rejoined after a reconnect.
    pub async fn leave_room(&self, room_id: Uuid) -> Result<(), ClientError> {
        let url = self.url(&format!("api/rooms/{room_id}/leave"));
        self.call_without_reply("POST /api/rooms/{id}/leave", Method::POST, url).await
    }

    /// # GET /api/rooms/{id}/messages
    ///
    /// A page (50) of a room's posts, newest first: the first page with `page_token` `None`
    /// (the join reply holds it too), then the next with the previous page's token. Members
    /// only (403 `not_a_member`; a private room is a 404 to others).
    pub async fn room_messages(&self, room_id: Uuid, page_token: Option<&str>) -> Result<PostPage, ClientError> {
        let mut url = self.url(&format!("api/rooms/{room_id}/messages"));
        if let Some(token) = page_token {
            url.query_pairs_mut().append_pair("page_token", token);
        }
        self.get("GET /api/rooms/{id}/messages", url).await
    }

    /// # GET /api/rooms/{id}/members
    ///
    /// A page (50) of a room's members, by id: the first with `page_token` `None`, then the next
    /// with the previous page's token. Members only (403 `not_a_member`; a private room is a
    /// 404 to others). The join reply has only the first hundred.
    pub async fn room_members(&self, room_id: Uuid, page_token: Option<&str>) -> Result<MemberPage, ClientError> {
        let mut url = self.url(&format!("api/rooms/{room_id}/members"));
        if let Some(token) = page_token {
            url.query_pairs_mut().append_pair("page_token", token);
        }
        self.get("GET /api/rooms/{id}/members", url).await
    }

    /// # GET /api/rooms/{id}/search
    ///
    /// The room's posts containing every word of `query` (whole words, any case), newest
    /// first, at most 50. `query` is 1–200 characters (a 422 otherwise). Members only.
    pub async fn search_room(&self, room_id: Uuid, query: &str) -> Result<Vec<Post>, ClientError> {
        let mut url = self.url(&format!("api/rooms/{room_id}/search"));
        url.query_pairs_mut().append_pair("q", query);
        let found: SearchResults = self.get("GET /api/rooms/{id}/search", url).await?;
        Ok(found.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_room_and_a_post_parse() {
        let id = Uuid::now_v7();
        let room: Room = serde_json::from_value(serde_json::json!({
            "id": id, "name": "general", "topic": null, "visibility": "public",
            "inserted_at": "2026-12-06T10:00:00.000Z", "updated_at": "2026-12-06T10:00:00.000Z",
            "joined": false, "moderator": false,
        }))
        .expect("a room");
        assert_eq!((room.id, room.visibility, room.joined), (id, Visibility::Public, false));
        let post: Post = serde_json::from_value(serde_json::json!({
            "id": Uuid::now_v7(), "room_id": id, "sender": ASSISTANT_ID, "text": "hello",
            "inserted_at": "2026-12-06T10:00:00.000Z", "updated_at": "2026-12-06T10:01:00.000Z",
        }))
        .expect("a post");
        assert!(post.edited());
        assert_eq!(post.sender.to_string(), "00000000-0000-0000-0000-0000a5510001");
    }
}
