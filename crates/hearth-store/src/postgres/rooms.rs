//! Rooms on PostgreSQL: [`RoomStore`](crate::RoomStore) as `rooms.rs` writes it, searching with
//! PostgreSQL's text search (the `simple` configuration: no language's stemming assumed).

use super::PostgresStore;
use crate::rooms::{MESSAGE_COLUMNS, room_store_impl};

/// Messages of room `$1` matching every word of `$2`, newest first.
fn search(limit: u32) -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM room_messages WHERE room_id = $1 \
         AND search @@ plainto_tsquery('simple', $2) ORDER BY id DESC{}",
        crate::sql::limit(limit)
    )
}

/// The words, as `plainto_tsquery` reads them (it ignores punctuation itself).
fn words(words: &[&str]) -> String {
    words.join(" ")
}

room_store_impl!(PostgresStore, search, words);
