-- The assistant: the free tier's daily allowance and the turns of every assistant thread.

-- Replies taken from the free tier, per user, UTC day ('YYYY-MM-DD') and kind. A reservation
-- is an upsert that increments only below the limit, so concurrent requests count exactly.
CREATE TABLE assistant_usage (
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day     TEXT NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('text', 'image')),
    used    INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (user_id, day, kind)
);

-- One prompt and what came of it. `thread` groups the turns whose replies make the context of
-- the next (a client's `conversationId`, or the assistant conversation's id). `attempts` is the
-- attempt log as JSON: provider, key fingerprint, class, latency; never a key.
CREATE TABLE assistant_turns (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    thread      TEXT NOT NULL,
    topic       TEXT,
    prompt      TEXT NOT NULL,
    reply       TEXT NOT NULL,
    provider    TEXT,
    answered    BOOLEAN NOT NULL,
    attempts    TEXT NOT NULL,
    inserted_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX assistant_turns_by_thread ON assistant_turns (user_id, thread, inserted_at);

-- Every person's assistant conversation (at most one): readable by the server, its owner the
-- only member. The assistant's replies are message groups from a fixed sender id that is no
-- user, so message groups lose their foreign key to users, as on SQLite since 20261130000001
-- (`delete_user` deletes a user's sends itself).
ALTER TABLE conversations ADD COLUMN assistant_of UUID REFERENCES users (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX conversations_by_assistant_owner ON conversations (assistant_of) WHERE assistant_of IS NOT NULL;
ALTER TABLE message_groups DROP CONSTRAINT message_groups_sender_id_fkey;

-- Images the assistant generated, kept by hearth and served only to their owner.
CREATE TABLE assistant_images (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    bytes        BYTEA NOT NULL,
    prompt       TEXT NOT NULL,
    provider     TEXT NOT NULL,
    inserted_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX assistant_images_by_user ON assistant_images (user_id);
