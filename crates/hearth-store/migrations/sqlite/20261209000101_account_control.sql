-- What administrators decide about accounts (issue 25): a disabled account cannot sign in or
-- refresh (its sessions are revoked when it is disabled), and the roles granted to it.
CREATE TABLE account_disabled (
    user_id     BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    disabled_at INTEGER NOT NULL,
    reason      TEXT NOT NULL
) STRICT;

CREATE TABLE account_roles (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('analyst', 'operator')),
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, role)
) STRICT;
