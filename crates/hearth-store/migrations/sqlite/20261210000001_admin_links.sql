-- One-time links that open the admin page signed in (`hearth admin open`): the SHA-256 of the
-- code only, the fingerprint of the administrator's key that asked for it, single use.
CREATE TABLE admin_links (
    code_hash   BLOB PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;
