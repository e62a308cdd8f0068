-- The assistant's knowledge base: question/answer entries per topic, loaded at start from
-- `<data_dir>/knowledge/<topic>.toml` (and the shipped `hearth` topic), found by full-text
-- search over the questions (English stemming, so "starting" finds "start").
CREATE TABLE knowledge_entries (
    id       BIGSERIAL PRIMARY KEY,
    topic    TEXT NOT NULL,
    question TEXT NOT NULL,
    answer   TEXT NOT NULL,
    search   TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', question)) STORED
);
CREATE INDEX knowledge_entries_by_topic ON knowledge_entries (topic);
CREATE INDEX knowledge_entries_search ON knowledge_entries USING GIN (search);
