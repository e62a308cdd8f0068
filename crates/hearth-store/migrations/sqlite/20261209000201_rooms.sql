-- Rooms: group channels the server can read (plain text, not end-to-end encrypted).
CREATE TABLE rooms (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    topic       TEXT,
    public      INTEGER NOT NULL CHECK (public IN (0, 1)),
    inserted_at INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX rooms_public ON rooms (public, id);

CREATE TABLE room_members (
    room_id   BLOB NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    moderator INTEGER NOT NULL CHECK (moderator IN (0, 1)),
    joined_at INTEGER NOT NULL,
    read_at   INTEGER,
    PRIMARY KEY (room_id, user_id)
) STRICT;
CREATE INDEX room_members_by_user ON room_members (user_id);

-- A message's id is a UUIDv7 the server makes, so ids order the history. A NULL sender is the
-- assistant; a person's messages go with their account. `seq` is the row's key for the search
-- index: an INTEGER PRIMARY KEY, which (unlike an implicit rowid) a VACUUM or a backup's
-- `VACUUM INTO` never renumbers.
CREATE TABLE room_messages (
    seq           INTEGER PRIMARY KEY,
    id            BLOB NOT NULL UNIQUE,
    room_id       BLOB NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    sender_id     BLOB REFERENCES users (id) ON DELETE CASCADE,
    client_msg_id TEXT,
    text          TEXT NOT NULL,
    inserted_at   INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (room_id, sender_id, client_msg_id)
) STRICT;
CREATE INDEX room_messages_by_room ON room_messages (room_id, id);
CREATE INDEX room_messages_by_sender ON room_messages (sender_id);

-- Full-text search over the messages (an external-content FTS5 table kept by triggers).
CREATE VIRTUAL TABLE room_messages_search USING fts5 (text, content = 'room_messages', content_rowid = 'seq');
CREATE TRIGGER room_messages_search_insert AFTER INSERT ON room_messages BEGIN
    INSERT INTO room_messages_search (rowid, text) VALUES (new.seq, new.text);
END;
CREATE TRIGGER room_messages_search_delete AFTER DELETE ON room_messages BEGIN
    INSERT INTO room_messages_search (room_messages_search, rowid, text) VALUES ('delete', old.seq, old.text);
END;
CREATE TRIGGER room_messages_search_update AFTER UPDATE OF text ON room_messages BEGIN
    INSERT INTO room_messages_search (room_messages_search, rowid, text) VALUES ('delete', old.seq, old.text);
    INSERT INTO room_messages_search (rowid, text) VALUES (new.seq, new.text);
END;
