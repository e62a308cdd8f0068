-- Administrators sign in with SSH keys (issue 25): a challenge the server issued (SHA-256 of
-- its text, single use), then an admin session (SHA-256 of its token) naming the key's
-- fingerprint, which every audited action records.
CREATE TABLE admin_challenges (
    challenge_hash BYTEA PRIMARY KEY,
    expires_at     TIMESTAMPTZ NOT NULL,
    used_at        TIMESTAMPTZ
);

CREATE TABLE admin_sessions (
    token_hash  BYTEA PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- Append-only and hash-chained: each entry's hash covers the previous entry's hash and its own
-- fields, so an edited or deleted entry breaks the chain. Nothing in hearth updates or deletes
-- a row.
CREATE TABLE admin_audit (
    seq         BIGINT PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    fingerprint TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    reason      TEXT,
    outcome     TEXT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);
