-- The assistant's knowledge base: question/answer entries per topic, loaded at start from
-- `<data_dir>/knowledge/<topic>.toml` (and the shipped `hearth` topic), found by full-text
-- search over the questions.
CREATE TABLE knowledge_entries (
    id       INTEGER PRIMARY KEY,
    topic    TEXT NOT NULL,
    question TEXT NOT NULL,
    answer   TEXT NOT NULL
) STRICT;
CREATE INDEX knowledge_entries_by_topic ON knowledge_entries (topic);

-- FTS5 over the questions, kept in step by triggers; porter stemming, so "starting" finds "start".
CREATE VIRTUAL TABLE knowledge_search USING fts5(
    question, content = 'knowledge_entries', content_rowid = 'id', tokenize = 'porter unicode61'
);
CREATE TRIGGER knowledge_entries_insert AFTER INSERT ON knowledge_entries BEGIN
    INSERT INTO knowledge_search (rowid, question) VALUES (new.id, new.question);
END;
CREATE TRIGGER knowledge_entries_delete AFTER DELETE ON knowledge_entries BEGIN
    INSERT INTO knowledge_search (knowledge_search, rowid, question) VALUES ('delete', old.id, old.question);
END;
