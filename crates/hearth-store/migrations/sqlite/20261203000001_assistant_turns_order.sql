-- A thread's context is read newest first, the id breaking ties (`ORDER BY inserted_at DESC,
-- id DESC`). Without the id in the index, every read sorted the thread's turns on the side
-- (SQLite built a temporary B-tree for it on each assistant request).
DROP INDEX assistant_turns_by_thread;
CREATE INDEX assistant_turns_by_thread ON assistant_turns (user_id, thread, inserted_at, id);
