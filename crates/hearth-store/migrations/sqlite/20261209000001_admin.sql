-- Administrators sign in with SSH keys (issue 25): a challenge the server issued (SHA-256 of
-- its text, single use), then an admin session (SHA-256 of its token) naming the key's
-- fingerprint, which every audited action records.
CREATE TABLE admin_challenges (
    challenge_hash BLOB PRIMARY KEY NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
) STRICT;

CREATE TABLE admin_sessions (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;

-- Append-only and hash-chained: each entry's hash covers the previous entry's hash and its own
-- fields, so an edited or deleted entry breaks the chain. Nothing in hearth updates or deletes
-- a row.
CREATE TABLE admin_audit (
    seq         INTEGER PRIMARY KEY NOT NULL,
    at          INTEGER NOT NULL,
    fingerprint TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    reason      TEXT,
    outcome     TEXT NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
) STRICT;
