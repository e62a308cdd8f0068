-- Where each message group sits in its conversation's history: a UUIDv7 the server makes when
-- it stores the group. History was ordered by the group's id, which the server made the same
-- way; now a client may choose that id (`message_group_id`, docs/e2e.md), and what it chooses
-- must not decide where the message sits in everyone's history. Groups stored before keep
-- their id as their key, so their order does not change (nor do page tokens made before).
ALTER TABLE message_groups ADD COLUMN history_key BLOB NOT NULL DEFAULT X'00000000000000000000000000000000';
UPDATE message_groups SET history_key = id;
-- History pages (and a conversation's groups) by this index; the one by id goes.
CREATE INDEX message_groups_by_history_key ON message_groups (conversation_id, history_key);
DROP INDEX message_groups_by_conversation;
