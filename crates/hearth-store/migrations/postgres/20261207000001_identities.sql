-- Each account's identity (docs/e2e.md): its public form (`identity_key`, JSON text as the
-- client wrote it) and its private form, wrapped by the client and sealed by the vault
-- (`identity_private_key`, table `users`, row the user id). Both or neither: an account made
-- before identities, or whose password was reset, has none until its client makes one.
--
-- Columns of `users` rather than a table of their own: an account has at most one identity,
-- every user object carries its public form, so the directory, the session reply and the
-- join reply read it from the row they already read (no join), and it goes with the account.
ALTER TABLE users ADD COLUMN identity_key TEXT;
ALTER TABLE users ADD COLUMN identity_private_key BYTEA;
ALTER TABLE users ADD CONSTRAINT users_identity_whole
    CHECK ((identity_key IS NULL) = (identity_private_key IS NULL));
