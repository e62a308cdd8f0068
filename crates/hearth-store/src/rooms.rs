//! Rooms: group channels the server can read, like a guild's channels. Members post plain text;
//! moderators add members; the assistant's replies are messages without a sender.
//!
//! [`RoomStore`] is the area's part of the [`Store`](crate::Store) contract. Both backends run
//! the same statements but for full-text search (SQLite FTS5, PostgreSQL text search), so the
//! implementation is written once, in [`room_store_impl!`], and each backend's module
//! (`sqlite/rooms.rs`, `postgres/rooms.rs`) instantiates it with its search statement.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{StoreResult, Timestamp};

/// A room.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Room {
    /// Room id (UUIDv7).
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// What it is about.
    pub topic: Option<String>,
    /// Anyone may find and join a public room; a private one is joined when a moderator adds
    /// you.
    pub public: bool,
    /// Created.
    pub inserted_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// A room to create; its creator becomes its first member and moderator.
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// New id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// What it is about.
    pub topic: Option<String>,
    /// Public or private.
    pub public: bool,
    /// Who creates it.
    pub creator: Uuid,
    /// Now.
    pub now: Timestamp,
}

/// A room as one person sees it in their list.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RoomOfUser {
    /// The room.
    #[sqlx(flatten)]
    pub room: Room,
    /// Whether the person is a member.
    pub joined: bool,
    /// Whether the person moderates it.
    pub moderator: bool,
}

/// One member of a room.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RoomMember {
    /// The member.
    pub user_id: Uuid,
    /// Moderators add members and delete anyone's messages.
    pub moderator: bool,
    /// Joined.
    pub joined_at: Timestamp,
    /// Read everything up to then.
    pub read_at: Option<Timestamp>,
}

/// A message in a room.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RoomMessage {
    /// Message id (UUIDv7 made by the server: ids order the history).
    pub id: Uuid,
    /// Room.
    pub room_id: Uuid,
    /// The member who posted it; `None` for the assistant.
    pub sender_id: Option<Uuid>,
    /// The text.
    pub text: String,
    /// Posted.
    pub inserted_at: Timestamp,
    /// Last edited.
    pub updated_at: Timestamp,
}

/// A post to store.
#[derive(Debug, Clone)]
pub struct NewRoomMessage {
    /// New id (a UUIDv7 made now).
    pub id: Uuid,
    /// Room.
    pub room_id: Uuid,
    /// The poster, who must be a member; `None` for the assistant.
    pub sender_id: Option<Uuid>,
    /// The client's own id for this post: a repost with the same id from the same sender in
    /// the same room returns the first one instead of storing it twice.
    pub client_msg_id: Option<String>,
    /// The text.
    pub text: String,
    /// Now.
    pub now: Timestamp,
}

/// A room as administrators list it: every room, public or private, with what tells it apart.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminRoom {
    /// The room.
    pub room: Room,
    /// How many members it has.
    pub members: i64,
    /// Its moderators, in the order they joined.
    pub moderators: Vec<RoomModerator>,
    /// When its newest post was made, if it has one.
    pub last_post_at: Option<Timestamp>,
}

/// A moderator of a room, as administrators see them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RoomModerator {
    /// The moderator.
    pub user_id: Uuid,
    /// Their address.
    pub email: String,
}

/// The stored rooms.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Creates a room with its creator as moderator. [`StoreError::NotFound`](crate::StoreError::NotFound)
    /// if the creator does not exist.
    async fn create_room(&self, room: &NewRoom) -> StoreResult<Room>;

    /// The room, if it exists.
    async fn room(&self, id: Uuid) -> StoreResult<Option<Room>>;

    /// The rooms `user_id` is in and every public room, by id, after `after`, at most `limit`.
    async fn rooms_of(&self, user_id: Uuid, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<RoomOfUser>>;

    /// Every room, by id, after `after`, at most `limit`.
    async fn all_rooms(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<Room>>;

    /// Every room, public and private, as administrators list it: by id after `after`, at
    /// most `limit`; all, or those whose name or topic contains `search` (case-insensitively).
    async fn admin_rooms(&self, search: Option<&str>, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<AdminRoom>>;

    /// `user_id`'s membership of the room, if they are a member.
    async fn room_member(&self, room_id: Uuid, user_id: Uuid) -> StoreResult<Option<RoomMember>>;

    /// The room's first `limit` members: its moderators, then the others, each in the order
    /// they joined.
    async fn room_members(&self, room_id: Uuid, limit: u32) -> StoreResult<Vec<RoomMember>>;

    /// The room's members by id, after `after`, at most `limit`: the whole list a page at a
    /// time.
    async fn room_members_after(&self, room_id: Uuid, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<RoomMember>>;

    /// How many members the room has.
    async fn room_member_count(&self, room_id: Uuid) -> StoreResult<u64>;

    /// The rooms `user_id` is a member of, by id.
    async fn rooms_with_member(&self, user_id: Uuid) -> StoreResult<Vec<Uuid>>;

    /// Makes the member who joined first a moderator if the room has members but no moderator
    /// (its last one's account was deleted); returns who. Nothing changes otherwise.
    async fn appoint_room_successor(&self, room_id: Uuid) -> StoreResult<Option<Uuid>>;

    /// Everyone who shares with the user at least one room of at most `max_members` members
    /// (not the user), by id: whom the user sees in presence, besides conversation partners.
    async fn room_partners(&self, user_id: Uuid, max_members: u32) -> StoreResult<Vec<Uuid>>;

    /// Adds members (not moderators) in one transaction; returns those that were not members
    /// yet. [`StoreError::NotFound`](crate::StoreError::NotFound) (and nobody added) if the room
    /// or one of the users does not exist.
    async fn add_room_members(&self, room_id: Uuid, user_ids: &[Uuid], now: Timestamp) -> StoreResult<Vec<RoomMember>>;

    /// Removes a member. [`StoreError::NotFound`](crate::StoreError::NotFound) if not a member.
    /// A room is never left without a moderator while it has members: when the last moderator
    /// leaves, the member who joined first becomes one, in the same transaction, and is
    /// returned.
    async fn remove_room_member(&self, room_id: Uuid, user_id: Uuid) -> StoreResult<Option<Uuid>>;

    /// Marks the room read by `user_id` up to `now`. [`StoreError::NotFound`](crate::StoreError::NotFound)
    /// if not a member.
    async fn mark_room_read(&self, room_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<()>;

    /// Stores a post; returns it and whether it is new (false: a repost of an earlier
    /// `client_msg_id`, returned as first stored). A sender who is not a member (checked in the
    /// same transaction) is refused with [`StoreError::Rule`](crate::StoreError::Rule)`("not_a_member")`.
    async fn post_room_message(&self, message: &NewRoomMessage) -> StoreResult<(RoomMessage, bool)>;

    /// One message of the room.
    async fn room_message(&self, room_id: Uuid, message_id: Uuid) -> StoreResult<Option<RoomMessage>>;

    /// Replaces the text of `sender_id`'s message. [`StoreError::NotFound`](crate::StoreError::NotFound)
    /// if the room has no such message of theirs.
    async fn edit_room_message(
        &self,
        room_id: Uuid,
        message_id: Uuid,
        sender_id: Uuid,
        text: &str,
        now: Timestamp,
    ) -> StoreResult<RoomMessage>;

    /// Deletes a message; returns it. [`StoreError::NotFound`](crate::StoreError::NotFound) if the
    /// room has no such message.
    async fn delete_room_message(&self, room_id: Uuid, message_id: Uuid) -> StoreResult<RoomMessage>;

    /// The room's messages before the id `before` (exclusive), newest first, at most `limit`.
    async fn room_messages(&self, room_id: Uuid, before: Option<Uuid>, limit: u32) -> StoreResult<Vec<RoomMessage>>;

    /// The room's messages containing every word of `query` (whole words, any case), newest
    /// first, at most `limit`. Punctuation is not searched: a query without a letter or digit
    /// finds nothing.
    async fn search_room_messages(&self, room_id: Uuid, query: &str, limit: u32) -> StoreResult<Vec<RoomMessage>>;
}

/// The words of a search, without punctuation-only ones.
pub(crate) fn search_words(query: &str) -> Vec<&str> {
    query.split_whitespace().filter(|word| word.chars().any(char::is_alphanumeric)).collect()
}

/// A search as an FTS5 query: each word a quoted string (so nothing a person types is FTS5
/// syntax), all of them required.
pub(crate) fn fts5_query(words: &[&str]) -> String {
    words.iter().map(|word| format!("\"{}\"", word.replace('"', "\"\""))).collect::<Vec<_>>().join(" ")
}

pub(crate) const ROOM_COLUMNS: &str = "id, name, topic, public, inserted_at, updated_at";
pub(crate) const MESSAGE_COLUMNS: &str = "id, room_id, sender_id, text, inserted_at, updated_at";

pub(crate) const INSERT_ROOM: &str = "INSERT INTO rooms (id, name, topic, public, inserted_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $5) RETURNING id, name, topic, public, inserted_at, updated_at";
pub(crate) const INSERT_MEMBER: &str = "INSERT INTO room_members (room_id, user_id, moderator, joined_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, user_id) DO NOTHING";
pub(crate) const ROOM_BY_ID: &str = "SELECT id, name, topic, public, inserted_at, updated_at FROM rooms WHERE id = $1";
pub(crate) const MEMBER: &str =
    "SELECT user_id, moderator, joined_at, read_at FROM room_members WHERE room_id = $1 AND user_id = $2";
pub(crate) const MEMBER_COUNT: &str = "SELECT COUNT(*) FROM room_members WHERE room_id = $1";
pub(crate) const ROOMS_WITH_MEMBER: &str = "SELECT room_id FROM room_members WHERE user_id = $1 ORDER BY room_id";

/// The first `limit` members of `$1`, moderators first, each by joining time.
pub(crate) fn members(limit: u32) -> String {
    format!(
        "SELECT user_id, moderator, joined_at, read_at FROM room_members WHERE room_id = $1 \
         ORDER BY moderator DESC, joined_at, user_id{}",
        crate::sql::limit(limit)
    )
}

/// The members of `$1` after the id `$2`, by id, at most `limit`.
pub(crate) fn members_after(limit: u32) -> String {
    format!(
        "SELECT user_id, moderator, joined_at, read_at FROM room_members WHERE room_id = $1 AND user_id > $2 \
         ORDER BY user_id{}",
        crate::sql::limit(limit)
    )
}
pub(crate) const PARTNERS: &str = "SELECT DISTINCT other.user_id FROM room_members mine \
     JOIN room_members other ON other.room_id = mine.room_id \
     WHERE mine.user_id = $1 AND other.user_id <> $1 \
     AND (SELECT COUNT(*) FROM room_members size WHERE size.room_id = mine.room_id) <= $2 ORDER BY other.user_id";
pub(crate) const DELETE_MEMBER: &str = "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2";
/// Makes the earliest member of `$1` a moderator if it has none left; returns who.
pub(crate) const APPOINT_SUCCESSOR: &str = "UPDATE room_members SET moderator = TRUE \
     WHERE room_id = $1 AND user_id = (SELECT user_id FROM room_members WHERE room_id = $1 \
     ORDER BY joined_at, user_id LIMIT 1) \
     AND NOT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND moderator) RETURNING user_id";
pub(crate) const MARK_READ: &str = "UPDATE room_members SET read_at = $3 WHERE room_id = $1 AND user_id = $2";
pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO room_messages \
     (id, room_id, sender_id, client_msg_id, text, inserted_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
     RETURNING id, room_id, sender_id, text, inserted_at, updated_at";
pub(crate) const MESSAGE_BY_CLIENT_ID: &str = "SELECT id, room_id, sender_id, text, inserted_at, updated_at \
     FROM room_messages WHERE room_id = $1 AND sender_id = $2 AND client_msg_id = $3";
pub(crate) const MESSAGE_BY_ID: &str = "SELECT id, room_id, sender_id, text, inserted_at, updated_at \
     FROM room_messages WHERE room_id = $1 AND id = $2";
pub(crate) const EDIT_MESSAGE: &str = "UPDATE room_messages SET text = $4, updated_at = $5 \
     WHERE room_id = $1 AND id = $2 AND sender_id = $3 RETURNING id, room_id, sender_id, text, inserted_at, updated_at";
pub(crate) const DELETE_MESSAGE: &str = "DELETE FROM room_messages WHERE room_id = $1 AND id = $2 \
     RETURNING id, room_id, sender_id, text, inserted_at, updated_at";

/// The rooms `$1` is in and the public ones, after the id `$2`, at most `limit`.
pub(crate) fn rooms_of(limit: u32) -> String {
    format!(
        "SELECT r.id, r.name, r.topic, r.public, r.inserted_at, r.updated_at, \
         (m.user_id IS NOT NULL) AS joined, COALESCE(m.moderator, FALSE) AS moderator \
         FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $1 \
         WHERE (r.public OR m.user_id IS NOT NULL) AND r.id > $2 ORDER BY r.id{}",
        crate::sql::limit(limit)
    )
}

/// Every room after the id `$1`, at most `limit`.
pub(crate) fn all_rooms(limit: u32) -> String {
    format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id > $1 ORDER BY id{}", crate::sql::limit(limit))
}

/// Every room after the id `$1` whose name or topic matches the LIKE pattern `$2`, with its
/// member count and newest post time, at most `limit`.
pub(crate) fn admin_rooms(limit: u32) -> String {
    format!(
        "SELECT r.id, r.name, r.topic, r.public, r.inserted_at, r.updated_at, \
         (SELECT COUNT(*) FROM room_members m WHERE m.room_id = r.id), \
         (SELECT MAX(p.inserted_at) FROM room_messages p WHERE p.room_id = r.id) \
         FROM rooms r WHERE r.id > $1 \
         AND (lower(r.name) LIKE $2 ESCAPE '\\' OR lower(COALESCE(r.topic, '')) LIKE $2 ESCAPE '\\') \
         ORDER BY r.id{}",
        crate::sql::limit(limit)
    )
}

/// A row of [`admin_rooms`].
pub(crate) type AdminRoomRow = (Uuid, String, Option<String>, bool, Timestamp, Timestamp, i64, Option<Timestamp>);

/// The moderators of `$1` with their addresses, in the order they joined.
pub(crate) const MODERATORS: &str = "SELECT m.user_id, u.email FROM room_members m JOIN users u ON u.id = m.user_id \
     WHERE m.room_id = $1 AND m.moderator ORDER BY m.joined_at, m.user_id";

/// An [`AdminRoom`] from its row and moderators.
pub(crate) fn admin_room(row: AdminRoomRow, moderators: Vec<RoomModerator>) -> AdminRoom {
    let (id, name, topic, public, inserted_at, updated_at, members, last_post_at) = row;
    AdminRoom { room: Room { id, name, topic, public, inserted_at, updated_at }, members, moderators, last_post_at }
}

/// The messages of `$1` before the id `$2`, newest first, at most `limit`.
pub(crate) fn messages_before(limit: u32) -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM room_messages WHERE room_id = $1 AND id < $2 ORDER BY id DESC{}",
        crate::sql::limit(limit)
    )
}

/// Implements [`RoomStore`] for a backend whose struct has a read `pool`, `writer()` and
/// `begin_write()`; `$search` makes the full-text statement for a limit (bound: room `$1`, the
/// query `$2`) and `$query` turns the words of a search into what `$2` binds.
macro_rules! room_store_impl {
    ($store:ty, $search:expr, $query:expr) => {
        #[async_trait::async_trait]
        impl $crate::RoomStore for $store {
            async fn create_room(&self, room: &$crate::NewRoom) -> $crate::StoreResult<$crate::Room> {
                let mut tx = self.begin_write().await?;
                let created: $crate::Room = sqlx::query_as($crate::rooms::INSERT_ROOM)
                    .bind(room.id)
                    .bind(&room.name)
                    .bind(&room.topic)
                    .bind(room.public)
                    .bind(room.now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::sql::on_unique("room_id"))?;
                sqlx::query($crate::rooms::INSERT_MEMBER)
                    .bind(room.id)
                    .bind(room.creator)
                    .bind(true)
                    .bind(room.now)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::sql::on_foreign_key)?;
                tx.commit().await?;
                Ok(created)
            }

            async fn room(&self, id: uuid::Uuid) -> $crate::StoreResult<Option<$crate::Room>> {
                Ok(sqlx::query_as($crate::rooms::ROOM_BY_ID).bind(id).fetch_optional(&self.pool).await?)
            }

            async fn rooms_of(
                &self,
                user_id: uuid::Uuid,
                after: Option<uuid::Uuid>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::RoomOfUser>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe($crate::rooms::rooms_of(limit)))
                    .bind(user_id)
                    .bind(after.unwrap_or(uuid::Uuid::nil()))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn all_rooms(&self, after: Option<uuid::Uuid>, limit: u32) -> $crate::StoreResult<Vec<$crate::Room>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe($crate::rooms::all_rooms(limit)))
                    .bind(after.unwrap_or(uuid::Uuid::nil()))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn admin_rooms(
                &self,
                search: Option<&str>,
                after: Option<uuid::Uuid>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::AdminRoom>> {
                let rows: Vec<$crate::rooms::AdminRoomRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe($crate::rooms::admin_rooms(limit)))
                        .bind(after.unwrap_or(uuid::Uuid::nil()))
                        .bind($crate::admin::contains_pattern(search))
                        .fetch_all(&self.pool)
                        .await?;
                let mut rooms = Vec::with_capacity(rows.len());
                for row in rows {
                    let moderators: Vec<$crate::RoomModerator> =
                        sqlx::query_as($crate::rooms::MODERATORS).bind(row.0).fetch_all(&self.pool).await?;
                    rooms.push($crate::rooms::admin_room(row, moderators));
                }
                Ok(rooms)
            }

            async fn room_member(
                &self,
                room_id: uuid::Uuid,
                user_id: uuid::Uuid,
            ) -> $crate::StoreResult<Option<$crate::RoomMember>> {
                Ok(sqlx::query_as($crate::rooms::MEMBER).bind(room_id).bind(user_id).fetch_optional(&self.pool).await?)
            }

            async fn room_members(
                &self,
                room_id: uuid::Uuid,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::RoomMember>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe($crate::rooms::members(limit)))
                    .bind(room_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn room_members_after(
                &self,
                room_id: uuid::Uuid,
                after: Option<uuid::Uuid>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::RoomMember>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe($crate::rooms::members_after(limit)))
                    .bind(room_id)
                    .bind(after.unwrap_or(uuid::Uuid::nil()))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn rooms_with_member(&self, user_id: uuid::Uuid) -> $crate::StoreResult<Vec<uuid::Uuid>> {
                Ok(sqlx::query_scalar($crate::rooms::ROOMS_WITH_MEMBER).bind(user_id).fetch_all(&self.pool).await?)
            }

            async fn appoint_room_successor(&self, room_id: uuid::Uuid) -> $crate::StoreResult<Option<uuid::Uuid>> {
                Ok(sqlx::query_scalar($crate::rooms::APPOINT_SUCCESSOR)
                    .bind(room_id)
                    .fetch_optional(self.writer())
                    .await?)
            }

            async fn room_member_count(&self, room_id: uuid::Uuid) -> $crate::StoreResult<u64> {
                let count: i64 =
                    sqlx::query_scalar($crate::rooms::MEMBER_COUNT).bind(room_id).fetch_one(&self.pool).await?;
                Ok(u64::try_from(count).unwrap_or(0))
            }

            async fn room_partners(
                &self,
                user_id: uuid::Uuid,
                max_members: u32,
            ) -> $crate::StoreResult<Vec<uuid::Uuid>> {
                Ok(sqlx::query_scalar($crate::rooms::PARTNERS)
                    .bind(user_id)
                    .bind(i64::from(max_members))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn add_room_members(
                &self,
                room_id: uuid::Uuid,
                user_ids: &[uuid::Uuid],
                now: $crate::Timestamp,
            ) -> $crate::StoreResult<Vec<$crate::RoomMember>> {
                let mut tx = self.begin_write().await?;
                let mut added = Vec::new();
                for user_id in user_ids {
                    let inserted = sqlx::query($crate::rooms::INSERT_MEMBER)
                        .bind(room_id)
                        .bind(user_id)
                        .bind(false)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::sql::on_foreign_key)?;
                    if inserted.rows_affected() == 1 {
                        added.push($crate::RoomMember {
                            user_id: *user_id,
                            moderator: false,
                            joined_at: now,
                            read_at: None,
                        });
                    }
                }
                tx.commit().await?;
                Ok(added)
            }

            async fn remove_room_member(
                &self,
                room_id: uuid::Uuid,
                user_id: uuid::Uuid,
            ) -> $crate::StoreResult<Option<uuid::Uuid>> {
                let mut tx = self.begin_write().await?;
                let deleted =
                    sqlx::query($crate::rooms::DELETE_MEMBER).bind(room_id).bind(user_id).execute(&mut *tx).await?;
                $crate::sql::found(deleted.rows_affected())?;
                let successor: Option<uuid::Uuid> =
                    sqlx::query_scalar($crate::rooms::APPOINT_SUCCESSOR).bind(room_id).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(successor)
            }

            async fn mark_room_read(
                &self,
                room_id: uuid::Uuid,
                user_id: uuid::Uuid,
                now: $crate::Timestamp,
            ) -> $crate::StoreResult<()> {
                let marked = sqlx::query($crate::rooms::MARK_READ)
                    .bind(room_id)
                    .bind(user_id)
                    .bind(now)
                    .execute(self.writer())
                    .await?;
                $crate::sql::found(marked.rows_affected())
            }

            async fn post_room_message(
                &self,
                message: &$crate::NewRoomMessage,
            ) -> $crate::StoreResult<($crate::RoomMessage, bool)> {
                let mut tx = self.begin_write().await?;
                if let Some(sender_id) = message.sender_id {
                    let member: Option<$crate::RoomMember> = sqlx::query_as($crate::rooms::MEMBER)
                        .bind(message.room_id)
                        .bind(sender_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if member.is_none() {
                        return Err($crate::StoreError::Rule("not_a_member"));
                    }
                    if let Some(client_msg_id) = &message.client_msg_id {
                        let earlier: Option<$crate::RoomMessage> = sqlx::query_as($crate::rooms::MESSAGE_BY_CLIENT_ID)
                            .bind(message.room_id)
                            .bind(sender_id)
                            .bind(client_msg_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                        if let Some(earlier) = earlier {
                            return Ok((earlier, false));
                        }
                    }
                }
                let stored: $crate::RoomMessage = sqlx::query_as($crate::rooms::INSERT_MESSAGE)
                    .bind(message.id)
                    .bind(message.room_id)
                    .bind(message.sender_id)
                    .bind(&message.client_msg_id)
                    .bind(&message.text)
                    .bind(message.now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::sql::on_unique("client_msg_id"))
                    .map_err(|error| match error {
                        // The room went meanwhile.
                        $crate::StoreError::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                            $crate::StoreError::NotFound
                        }
                        other => other,
                    })?;
                tx.commit().await?;
                Ok((stored, true))
            }

            async fn room_message(
                &self,
                room_id: uuid::Uuid,
                message_id: uuid::Uuid,
            ) -> $crate::StoreResult<Option<$crate::RoomMessage>> {
                Ok(sqlx::query_as($crate::rooms::MESSAGE_BY_ID)
                    .bind(room_id)
                    .bind(message_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn edit_room_message(
                &self,
                room_id: uuid::Uuid,
                message_id: uuid::Uuid,
                sender_id: uuid::Uuid,
                text: &str,
                now: $crate::Timestamp,
            ) -> $crate::StoreResult<$crate::RoomMessage> {
                let edited: Option<$crate::RoomMessage> = sqlx::query_as($crate::rooms::EDIT_MESSAGE)
                    .bind(room_id)
                    .bind(message_id)
                    .bind(sender_id)
                    .bind(text)
                    .bind(now)
                    .fetch_optional(self.writer())
                    .await?;
                edited.ok_or($crate::StoreError::NotFound)
            }

            async fn delete_room_message(
                &self,
                room_id: uuid::Uuid,
                message_id: uuid::Uuid,
            ) -> $crate::StoreResult<$crate::RoomMessage> {
                let deleted: Option<$crate::RoomMessage> = sqlx::query_as($crate::rooms::DELETE_MESSAGE)
                    .bind(room_id)
                    .bind(message_id)
                    .fetch_optional(self.writer())
                    .await?;
                deleted.ok_or($crate::StoreError::NotFound)
            }

            async fn room_messages(
                &self,
                room_id: uuid::Uuid,
                before: Option<uuid::Uuid>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::RoomMessage>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe($crate::rooms::messages_before(limit)))
                    .bind(room_id)
                    .bind(before.unwrap_or(uuid::Uuid::max()))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn search_room_messages(
                &self,
                room_id: uuid::Uuid,
                query: &str,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::RoomMessage>> {
                let words = $crate::rooms::search_words(query);
                if words.is_empty() {
                    return Ok(Vec::new());
                }
                let make_query: fn(&[&str]) -> String = $query;
                let make_search: fn(u32) -> String = $search;
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(make_search(limit)))
                    .bind(room_id)
                    .bind(make_query(&words))
                    .fetch_all(&self.pool)
                    .await?)
            }
        }
    };
}
pub(crate) use room_store_impl;
