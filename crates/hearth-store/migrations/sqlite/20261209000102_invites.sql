-- Invite codes (issue 25): with accounts.registration = "invite", signing up takes one. Kept as
-- the SHA-256 of the code; each has a number of uses left and an expiry.
CREATE TABLE invites (
    code_hash  BLOB PRIMARY KEY NOT NULL,
    uses_left  INTEGER NOT NULL CHECK (uses_left >= 0),
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
) STRICT;
