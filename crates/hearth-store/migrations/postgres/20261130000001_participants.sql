-- Everyone who has been a member of a conversation (rows stay when they leave): deleting a
-- user finds their message rows through these (see `delete_user`; on SQLite the per-user
-- message indexes are gone, and the SQL is shared).
CREATE TABLE conversation_participants (
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_participants_by_user ON conversation_participants (user_id);

INSERT INTO conversation_participants (conversation_id, user_id)
    SELECT conversation_id, user_id FROM conversation_members
    UNION SELECT conversation_id, sender_id FROM message_groups
    UNION SELECT g.conversation_id, m.recipient_id FROM messages m JOIN message_groups g ON g.id = m.message_group_id;
