-- One-time links that open the admin page signed in (`hearth admin open`): the SHA-256 of the
-- code only, the fingerprint of the administrator's key that asked for it, single use.
CREATE TABLE admin_links (
    code_hash   BYTEA PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
