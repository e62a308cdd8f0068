-- Accounts, profiles, device sessions and their tokens.
-- Ids are UUIDs stored as 16-byte blobs; times are integer milliseconds since the epoch.

CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    confirmed_at  INTEGER,
    inserted_at   INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE profiles (
    user_id       BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hidden        INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1)),
    theme         TEXT NOT NULL DEFAULT 'day' CHECK (theme IN ('day', 'night')),
    magnification REAL NOT NULL DEFAULT 1.0 CHECK (magnification BETWEEN 0.7 AND 1.4),
    recents       TEXT NOT NULL DEFAULT '[]'
) STRICT;

-- One row per login or linked device; the `device` claim of access tokens.
CREATE TABLE devices (
    id           BLOB PRIMARY KEY NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;
CREATE INDEX devices_by_user ON devices (user_id);

-- SHA-256 of refresh tokens; a device's rows form its rotation family.
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    device_id  BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER
) STRICT;
CREATE INDEX refresh_tokens_by_device ON refresh_tokens (device_id);

-- SHA-256 of email confirmation, password reset, email change and device link tokens.
CREATE TABLE one_time_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    redeemed_at INTEGER
) STRICT;
CREATE INDEX one_time_tokens_by_user ON one_time_tokens (user_id, kind);
