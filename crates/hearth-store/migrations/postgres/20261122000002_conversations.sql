-- Conversations, their members and keys, and messages (one row per recipient).

-- A private conversation has exactly two members, no alias, and `private_pair` set to
-- its members' textual ids, sorted and joined as '<lo>:<hi>': a pair has at most one.
CREATE TABLE conversations (
    id           UUID PRIMARY KEY,
    private      BOOLEAN NOT NULL,
    alias        TEXT,
    private_pair TEXT UNIQUE,
    inserted_at  TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CHECK (private = (private_pair IS NOT NULL)),
    CHECK (NOT private OR alias IS NULL)
);

CREATE TABLE conversation_members (
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at       TIMESTAMPTZ NOT NULL,
    read_at         TIMESTAMPTZ,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_by_user ON conversation_members (user_id);

-- A member's keys; they go when the membership does.
CREATE TABLE encryption_keys (
    conversation_id UUID NOT NULL,
    user_id         UUID NOT NULL,
    public_key      TEXT NOT NULL,
    -- Sealed with the vault key.
    private_key     BYTEA NOT NULL,
    inserted_at     TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (conversation_id, user_id),
    FOREIGN KEY (conversation_id, user_id) REFERENCES conversation_members (conversation_id, user_id)
        ON DELETE CASCADE
);

-- One send; `client_msg_id` makes resends idempotent.
CREATE TABLE message_groups (
    id              UUID PRIMARY KEY,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sender_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_msg_id   TEXT,
    inserted_at     TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (conversation_id, sender_id, client_msg_id)
);
CREATE INDEX message_groups_by_conversation ON message_groups (conversation_id, id);
CREATE INDEX message_groups_by_sender ON message_groups (sender_id);

-- Each recipient's ciphertext of a send.
CREATE TABLE messages (
    id               UUID PRIMARY KEY,
    message_group_id UUID NOT NULL REFERENCES message_groups (id) ON DELETE CASCADE,
    recipient_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content          TEXT NOT NULL,
    inserted_at      TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (message_group_id, recipient_id)
);
CREATE INDEX messages_by_recipient ON messages (recipient_id);
