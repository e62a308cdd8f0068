-- The turns stored in the order they are read: by user, thread, time and id, the table itself
-- being that B-tree (WITHOUT ROWID). Before, a turn went into three B-trees (the table by rowid,
-- the index of its id, and the index by thread), so each batch of turns wrote the last page of
-- the first two again besides the thread's page; a thread's context was read through the index
-- and then each row by its rowid. The turns are looked up only by user and thread (and deleted
-- with their user, found by the same key's first column), never by id alone; an id is a fresh
-- v7 UUID, and the key keeps it unique within its thread.
CREATE TABLE assistant_turns_clustered (
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    thread      TEXT NOT NULL,
    inserted_at INTEGER NOT NULL,
    id          BLOB NOT NULL,
    topic       TEXT,
    prompt      TEXT NOT NULL,
    reply       TEXT NOT NULL,
    provider    TEXT,
    answered    INTEGER NOT NULL CHECK (answered IN (0, 1)),
    attempts    TEXT NOT NULL,
    PRIMARY KEY (user_id, thread, inserted_at, id)
) STRICT, WITHOUT ROWID;
INSERT INTO assistant_turns_clustered
        (user_id, thread, inserted_at, id, topic, prompt, reply, provider, answered, attempts)
    SELECT user_id, thread, inserted_at, id, topic, prompt, reply, provider, answered, attempts
    FROM assistant_turns;
DROP TABLE assistant_turns;
ALTER TABLE assistant_turns_clustered RENAME TO assistant_turns;
