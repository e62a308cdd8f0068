-- The keyguard: AI-provider keys, sealed under a master key, each a person's own or the
-- operator's free-tier pool. They arrive through configure links, one-time tokens of kind
-- 'provider_key' or 'pool_key' (`one_time_tokens.kind` has no CHECK, so it needs no change).

-- `user_id` is NULL for the pool's keys. `sealed` is the keyguard's blob, never a plaintext
-- key; `last_four` and `fingerprint` tell keys apart without opening them. `failures` counts
-- failed requests since the last success.
CREATE TABLE provider_keys (
    id             UUID PRIMARY KEY,
    user_id        UUID REFERENCES users (id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    sealed         BYTEA NOT NULL,
    master_version INTEGER NOT NULL CHECK (master_version >= 0),
    last_four      TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    inserted_at    TIMESTAMPTZ NOT NULL,
    last_used_at   TIMESTAMPTZ,
    failures       INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0)
);
CREATE INDEX provider_keys_by_owner ON provider_keys (user_id, inserted_at);
