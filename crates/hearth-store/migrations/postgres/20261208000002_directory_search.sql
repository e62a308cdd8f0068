-- The directory finds people by display name, whatever the case: each name's lowercase form,
-- made by the store (Rust's Unicode lowercase; SQLite's lower() knows only A-Z). Rows from
-- before are filled in by the store when it migrates.
ALTER TABLE users ADD COLUMN display_name_key TEXT;
-- A name nobody chose was the address itself, which would show every address to everyone in
-- the directory: such names become the address's local part (what sign-up now gives).
UPDATE users SET display_name = split_part(email, '@', 1)
 WHERE display_name = email AND position('@' in email) > 1;
