-- Rooms: group channels the server can read (plain text, not end-to-end encrypted).
CREATE TABLE rooms (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    topic       TEXT,
    public      BOOLEAN NOT NULL,
    inserted_at TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX rooms_public ON rooms (public, id);

CREATE TABLE room_members (
    room_id   UUID NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    moderator BOOLEAN NOT NULL,
    joined_at TIMESTAMPTZ NOT NULL,
    read_at   TIMESTAMPTZ,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_by_user ON room_members (user_id);

-- A message's id is a UUIDv7 the server makes, so ids order the history. A NULL sender is the
-- assistant; a person's messages go with their account.
CREATE TABLE room_messages (
    id            UUID PRIMARY KEY,
    room_id       UUID NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    sender_id     UUID REFERENCES users (id) ON DELETE CASCADE,
    client_msg_id TEXT,
    text          TEXT NOT NULL,
    inserted_at   TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    -- Full-text search ('simple': no language's stemming is assumed for a room).
    search        TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
    UNIQUE (room_id, sender_id, client_msg_id)
);
CREATE INDEX room_messages_by_room ON room_messages (room_id, id);
CREATE INDEX room_messages_by_sender ON room_messages (sender_id);
CREATE INDEX room_messages_search ON room_messages USING GIN (search);
