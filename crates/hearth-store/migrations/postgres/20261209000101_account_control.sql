-- What administrators decide about accounts (issue 25): a disabled account cannot sign in or
-- refresh (its sessions are revoked when it is disabled), and the roles granted to it.
CREATE TABLE account_disabled (
    user_id     UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    disabled_at TIMESTAMPTZ NOT NULL,
    reason      TEXT NOT NULL
);

CREATE TABLE account_roles (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('analyst', 'operator')),
    granted_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, role)
);
