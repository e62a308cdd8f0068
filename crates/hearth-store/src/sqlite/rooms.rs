//! Rooms on SQLite: [`RoomStore`](crate::RoomStore) as `rooms.rs` writes it, searching with FTS5.

use super::SqliteStore;
use crate::rooms::{MESSAGE_COLUMNS, fts5_query, room_store_impl};

/// Messages of room `$1` matching the FTS5 query `$2`, newest first.
fn search(limit: u32) -> String {
    let columns = MESSAGE_COLUMNS.split(", ").map(|column| format!("m.{column}")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT {columns} FROM room_messages_search s JOIN room_messages m ON m.seq = s.rowid \
         WHERE room_messages_search MATCH $2 AND m.room_id = $1 ORDER BY m.id DESC{}",
        crate::sql::limit(limit)
    )
}

room_store_impl!(SqliteStore, search, fts5_query);
