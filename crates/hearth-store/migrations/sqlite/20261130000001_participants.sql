-- A send writes fewer randomly placed pages: the per-user indexes of message groups (by sender)
-- and messages (by recipient), which every send updated, are gone. They existed only so that
-- deleting a user could find their rows; that now goes through the conversations the user took
-- part in, kept below even after they leave.

-- Everyone who has been a member of a conversation (rows stay when they leave).
CREATE TABLE conversation_participants (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, user_id)
) STRICT;
CREATE INDEX conversation_participants_by_user ON conversation_participants (user_id);

INSERT INTO conversation_participants (conversation_id, user_id)
    SELECT conversation_id, user_id FROM conversation_members
    UNION SELECT conversation_id, sender_id FROM message_groups
    UNION SELECT g.conversation_id, m.recipient_id FROM messages m JOIN message_groups g ON g.id = m.message_group_id;

-- The message tables again, without foreign keys to users: with one, deleting a user makes
-- SQLite look for referencing rows, a full scan without the per-user index. Deleting a user
-- deletes their message rows first (see `delete_user`). The new tables are filled before the
-- old ones are dropped, children first, so no cascade reaches the copies.
CREATE TABLE message_groups_new (
    id              BLOB PRIMARY KEY NOT NULL,
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sender_id       BLOB NOT NULL,
    client_msg_id   TEXT,
    inserted_at     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
INSERT INTO message_groups_new (id, conversation_id, sender_id, client_msg_id, inserted_at, updated_at)
    SELECT id, conversation_id, sender_id, client_msg_id, inserted_at, updated_at FROM message_groups;

CREATE TABLE messages_new (
    id               BLOB PRIMARY KEY NOT NULL,
    message_group_id BLOB NOT NULL REFERENCES message_groups_new (id) ON DELETE CASCADE,
    recipient_id     BLOB NOT NULL,
    content          TEXT NOT NULL,
    inserted_at      INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (message_group_id, recipient_id)
) STRICT;
INSERT INTO messages_new (id, message_group_id, recipient_id, content, inserted_at, updated_at)
    SELECT id, message_group_id, recipient_id, content, inserted_at, updated_at FROM messages;

DROP TABLE messages;
DROP TABLE message_groups;
ALTER TABLE message_groups_new RENAME TO message_groups;
ALTER TABLE messages_new RENAME TO messages;

CREATE INDEX message_groups_by_conversation ON message_groups (conversation_id, id);
-- Only sends with a `client_msg_id` need the uniqueness; the others skip this index.
CREATE UNIQUE INDEX message_groups_by_client_msg_id ON message_groups (conversation_id, sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
