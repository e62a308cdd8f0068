-- The assistant: the free tier's daily allowance and the turns of every assistant thread.

-- Replies taken from the free tier, per user, UTC day ('YYYY-MM-DD') and kind. A reservation
-- is an upsert that increments only below the limit, so concurrent requests count exactly.
CREATE TABLE assistant_usage (
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day     TEXT NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('text', 'image')),
    used    INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (user_id, day, kind)
) STRICT;

-- One prompt and what came of it. `thread` groups the turns whose replies make the context of
-- the next (a client's `conversationId`, or the assistant conversation's id). `attempts` is the
-- attempt log as JSON: provider, key fingerprint, class, latency; never a key.
CREATE TABLE assistant_turns (
    id          BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    thread      TEXT NOT NULL,
    topic       TEXT,
    prompt      TEXT NOT NULL,
    reply       TEXT NOT NULL,
    provider    TEXT,
    answered    INTEGER NOT NULL CHECK (answered IN (0, 1)),
    attempts    TEXT NOT NULL,
    inserted_at INTEGER NOT NULL
) STRICT;
CREATE INDEX assistant_turns_by_thread ON assistant_turns (user_id, thread, inserted_at);

-- Every person's assistant conversation (at most one): readable by the server, its owner the
-- only member. The assistant's replies are message groups from a fixed sender id that is no
-- user (message groups have no foreign key to users since 20261130000001).
ALTER TABLE conversations ADD COLUMN assistant_of BLOB REFERENCES users (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX conversations_by_assistant_owner ON conversations (assistant_of) WHERE assistant_of IS NOT NULL;

-- Images the assistant generated, kept by hearth and served only to their owner.
CREATE TABLE assistant_images (
    id           BLOB PRIMARY KEY NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    bytes        BLOB NOT NULL,
    prompt       TEXT NOT NULL,
    provider     TEXT NOT NULL,
    inserted_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX assistant_images_by_user ON assistant_images (user_id);
