-- Conversations, their members and keys, and messages (one row per recipient).
-- Ids are UUIDs stored as 16-byte blobs; times are integer milliseconds since the epoch.

-- A private conversation has exactly two members, no alias, and `private_pair` set to
-- its members' textual ids, sorted and joined as '<lo>:<hi>': a pair has at most one.
CREATE TABLE conversations (
    id           BLOB PRIMARY KEY NOT NULL,
    private      INTEGER NOT NULL CHECK (private IN (0, 1)),
    alias        TEXT,
    private_pair TEXT UNIQUE,
    inserted_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    CHECK ((private = 1) = (private_pair IS NOT NULL)),
    CHECK (private = 0 OR alias IS NULL)
) STRICT;

CREATE TABLE conversation_members (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at       INTEGER NOT NULL,
    read_at         INTEGER,
    PRIMARY KEY (conversation_id, user_id)
) STRICT;
CREATE INDEX conversation_members_by_user ON conversation_members (user_id);

-- A member's keys; they go when the membership does.
CREATE TABLE encryption_keys (
    conversation_id BLOB NOT NULL,
    user_id         BLOB NOT NULL,
    public_key      TEXT NOT NULL,
    -- Sealed with the vault key.
    private_key     BLOB NOT NULL,
    inserted_at     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id),
    FOREIGN KEY (conversation_id, user_id) REFERENCES conversation_members (conversation_id, user_id)
        ON DELETE CASCADE
) STRICT;

-- One send; `client_msg_id` makes resends idempotent.
CREATE TABLE message_groups (
    id              BLOB PRIMARY KEY NOT NULL,
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sender_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_msg_id   TEXT,
    inserted_at     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (conversation_id, sender_id, client_msg_id)
) STRICT;
CREATE INDEX message_groups_by_conversation ON message_groups (conversation_id, id);
CREATE INDEX message_groups_by_sender ON message_groups (sender_id);

-- Each recipient's ciphertext of a send.
CREATE TABLE messages (
    id               BLOB PRIMARY KEY NOT NULL,
    message_group_id BLOB NOT NULL REFERENCES message_groups (id) ON DELETE CASCADE,
    recipient_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content          TEXT NOT NULL,
    inserted_at      INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (message_group_id, recipient_id)
) STRICT;
CREATE INDEX messages_by_recipient ON messages (recipient_id);
