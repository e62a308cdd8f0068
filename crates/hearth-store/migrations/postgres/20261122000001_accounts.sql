-- Accounts, profiles, device sessions and their tokens.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    confirmed_at  TIMESTAMPTZ,
    inserted_at   TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE profiles (
    user_id       UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    hidden        BOOLEAN NOT NULL DEFAULT FALSE,
    theme         TEXT NOT NULL DEFAULT 'day' CHECK (theme IN ('day', 'night')),
    magnification DOUBLE PRECISION NOT NULL DEFAULT 1.0 CHECK (magnification BETWEEN 0.7 AND 1.4),
    recents       TEXT NOT NULL DEFAULT '[]'
);

-- One row per login or linked device; the `device` claim of access tokens.
CREATE TABLE devices (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX devices_by_user ON devices (user_id);

-- SHA-256 of refresh tokens; a device's rows form its rotation family.
CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    device_id  UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    spent_at   TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_by_device ON refresh_tokens (device_id);

-- SHA-256 of email confirmation, password reset, email change and device link tokens.
CREATE TABLE one_time_tokens (
    token_hash  BYTEA PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    redeemed_at TIMESTAMPTZ
);
CREATE INDEX one_time_tokens_by_user ON one_time_tokens (user_id, kind);
