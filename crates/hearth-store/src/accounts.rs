//! Accounts: users, their profiles, their passwords, their identities (docs/e2e.md), and
//! deleting them with all they own.
//!
//! [`AccountStore`] is the area's part of the [`Store`](crate::Store) contract; the SQL below
//! is what both backends run for it (`sqlite/accounts.rs`, `postgres/accounts.rs`).

use async_trait::async_trait;
use uuid::Uuid;

use crate::{
    DirectoryEntry, DirectoryPage, Identity, NewAccount, Profile, ProfileUpdate, StoreError, StoreResult, Theme,
    Timestamp, User, UserSummary,
};

/// Users and their profiles.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates a user, their default profile and first device session.
    /// [`StoreError::Conflict`]`("email")` if the address is taken. The user starts without an
    /// identity (`identity_key` is not read): it comes with [`AccountStore::set_identity`].
    async fn create_account(&self, account: &NewAccount) -> StoreResult<()>;

    /// A user by id.
    async fn user(&self, id: Uuid) -> StoreResult<Option<User>>;

    /// A user by (lowercased) email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;

    /// Users ordered by id, starting after `after`, at most `limit`.
    async fn directory(&self, page: &DirectoryPage<'_>) -> StoreResult<Vec<DirectoryEntry>>;

    /// Sets the display name.
    async fn set_display_name(&self, user_id: Uuid, display_name: &str, now: Timestamp) -> StoreResult<()>;

    /// Sets a new password hash and revokes every session and outstanding one-time token; with
    /// `private_keys`, replaces the user's sealed private keys in the same transaction, as
    /// [`ConversationStore::replace_private_keys`](crate::ConversationStore::replace_private_keys)
    /// does (and refuses, changing nothing, as it does), and their identity's sealed private key
    /// with `identity_private_key`, which must be given exactly when they have an identity
    /// ([`StoreError::Rule`] otherwise, and nothing changes). `identity_private_key` without
    /// `private_keys` is refused the same way.
    async fn replace_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        private_keys: Option<&[(Uuid, Vec<u8>)]>,
        identity_private_key: Option<&[u8]>,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// The user's identity, if they have one.
    async fn identity(&self, user_id: Uuid) -> StoreResult<Option<Identity>>;

    /// Stores the user's identity. Unless `replace`, only if they have none:
    /// [`StoreError::Conflict`]`("identity")` if they have one (decided in the same statement,
    /// so of two first publications one wins and the other conflicts).
    /// [`StoreError::NotFound`] if there is no such user.
    async fn set_identity(&self, user_id: Uuid, identity: &Identity, replace: bool, now: Timestamp) -> StoreResult<()>;

    /// Sealed identity private keys by user id, after `after`, at most `limit` (for re-sealing
    /// under a new vault key).
    async fn sealed_identity_private_keys(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<(Uuid, Vec<u8>)>>;

    /// Replaces the user's sealed identity private key if it is still `old` (false if it
    /// changed meanwhile).
    async fn replace_sealed_identity_private_key(&self, user_id: Uuid, old: &[u8], new: &[u8]) -> StoreResult<bool>;

    /// Deletes the user and everything that belongs to them.
    async fn delete_user(&self, user_id: Uuid) -> StoreResult<()>;

    /// The user's profile.
    async fn profile(&self, user_id: Uuid) -> StoreResult<Profile>;

    /// Applies a profile change and returns the whole profile.
    async fn update_profile(&self, user_id: Uuid, update: &ProfileUpdate) -> StoreResult<Profile>;
}

pub(crate) const INSERT_USER: &str = "INSERT INTO users (id, email, display_name, password_hash, confirmed_at, inserted_at, \
     updated_at, display_name_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(crate) const INSERT_PROFILE: &str =
    "INSERT INTO profiles (user_id, hidden, theme, magnification, recents) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const USER_BY_ID: &str = "SELECT id, email, display_name, password_hash, confirmed_at, inserted_at, updated_at, \
     identity_key FROM users WHERE id = $1";

pub(crate) const USER_BY_EMAIL: &str = "SELECT id, email, display_name, password_hash, confirmed_at, inserted_at, updated_at, \
     identity_key FROM users WHERE email = $1";

/// A directory page: users after the id `$2` (the nil UUID, which sorts before every real id on
/// both backends, stands for "from the start"), at most `limit`, matching the search `$3` (null:
/// everyone) by display name (`$4`, a LIKE pattern of `$3`) or exact email. With each, whether
/// the viewer `$1` may see their email: their own, a person they share a conversation with, or
/// one they found by typing the address.
pub(crate) fn directory(limit: u32) -> String {
    format!(
        "SELECT u.id, u.email, u.display_name, u.identity_key, \
           COALESCE(u.id = $1 OR u.email = $3 OR EXISTS (SELECT 1 FROM conversation_members mine \
             JOIN conversation_members theirs ON theirs.conversation_id = mine.conversation_id \
             WHERE mine.user_id = $1 AND theirs.user_id = u.id), FALSE) AS contact \
         FROM users u WHERE u.id > $2 AND ($3 IS NULL OR u.display_name_key LIKE $4 ESCAPE '\\' OR u.email = $3) \
         ORDER BY u.id{}",
        crate::sql::limit(limit)
    )
}

/// The form of a display name the directory searches: Unicode lowercase.
pub(crate) fn display_name_key(display_name: &str) -> String {
    display_name.to_lowercase()
}

/// A LIKE pattern matching text that contains `text` (already lowercase), its own `%`, `_` and
/// `\` taken literally.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Users whose `display_name_key` is still to be made (rows from before it existed).
pub(crate) const USERS_WITHOUT_NAME_KEY: &str = "SELECT id, display_name FROM users WHERE display_name_key IS NULL";

pub(crate) const SET_NAME_KEY: &str = "UPDATE users SET display_name_key = $2 WHERE id = $1";

pub(crate) const SET_DISPLAY_NAME: &str =
    "UPDATE users SET display_name = $2, updated_at = $3, display_name_key = $4 WHERE id = $1";

pub(crate) const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";

pub(crate) const CONFIRM_EMAIL: &str = "UPDATE users SET confirmed_at = $2, updated_at = $2 WHERE id = $1";

pub(crate) const IDENTITY: &str = "SELECT identity_key, identity_private_key FROM users WHERE id = $1";

/// Stores the identity of `$1` whatever it had.
pub(crate) const SET_IDENTITY: &str =
    "UPDATE users SET identity_key = $2, identity_private_key = $3, updated_at = $4 WHERE id = $1";

/// Stores the identity of `$1` only if it has none: the condition and the write are one
/// statement, so two first publications cannot both succeed.
pub(crate) const SET_FIRST_IDENTITY: &str = "UPDATE users SET identity_key = $2, identity_private_key = $3, updated_at = $4 \
     WHERE id = $1 AND identity_key IS NULL";

/// Whether `$1` has an identity (no row: no such user).
pub(crate) const HAS_IDENTITY: &str = "SELECT identity_key IS NOT NULL FROM users WHERE id = $1";

/// Replaces the sealed private key of `$1`'s identity (a password change re-wrapped it).
pub(crate) const SET_IDENTITY_PRIVATE_KEY: &str =
    "UPDATE users SET identity_private_key = $2 WHERE id = $1 AND identity_key IS NOT NULL";

/// Removes the identity of `$1` (a password reset: the old one cannot be opened any more).
pub(crate) const CLEAR_IDENTITY: &str =
    "UPDATE users SET identity_key = NULL, identity_private_key = NULL WHERE id = $1";

/// Sealed identity private keys after the user `$1`, at most `limit` (the nil UUID: from the
/// start).
pub(crate) fn sealed_identity_private_keys_after(limit: u32) -> String {
    format!(
        "SELECT id, identity_private_key FROM users WHERE id > $1 AND identity_private_key IS NOT NULL \
         ORDER BY id{}",
        crate::sql::limit(limit)
    )
}

/// Replaces the sealed identity private key of `$1` with `$3` if it is still `$2`.
pub(crate) const SWAP_SEALED_IDENTITY_PRIVATE_KEY: &str =
    "UPDATE users SET identity_private_key = $3 WHERE id = $1 AND identity_private_key = $2";

pub(crate) const CHANGE_EMAIL: &str = "UPDATE users SET email = $2, confirmed_at = NULL, updated_at = $3 WHERE id = $1";

/// Message rows have no per-user index (every send would have to update it), so the user's
/// copies are found through the conversations they took part in.
pub(crate) const DELETE_USERS_MESSAGES: &str = "DELETE FROM messages WHERE recipient_id = $1 AND message_group_id IN \
     (SELECT g.id FROM conversation_participants p JOIN message_groups g ON g.conversation_id = p.conversation_id \
      WHERE p.user_id = $1)";

/// The user's sends, found as their copies are ([`DELETE_USERS_MESSAGES`]).
pub(crate) const DELETE_USERS_MESSAGE_GROUPS: &str = "DELETE FROM message_groups WHERE sender_id = $1 AND conversation_id IN \
     (SELECT conversation_id FROM conversation_participants WHERE user_id = $1)";

/// Everything else references users with `ON DELETE CASCADE`.
pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

pub(crate) const PROFILE: &str = "SELECT hidden, theme, magnification, recents FROM profiles WHERE user_id = $1";

/// Each field is changed only when given (`NULL` keeps it).
pub(crate) const UPDATE_PROFILE: &str = "UPDATE profiles SET hidden = COALESCE($2, hidden), theme = COALESCE($3, theme), \
     magnification = COALESCE($4, magnification), recents = COALESCE($5, recents) \
     WHERE user_id = $1 RETURNING hidden, theme, magnification, recents";

/// A profile as stored: the theme as text and the recents as a JSON array.
#[derive(sqlx::FromRow)]
pub(crate) struct ProfileRow {
    pub hidden: bool,
    pub theme: String,
    pub magnification: f64,
    pub recents: String,
}

impl ProfileRow {
    pub fn into_profile(self) -> StoreResult<Profile> {
        Ok(Profile {
            hidden: self.hidden,
            theme: Theme::parse(&self.theme).ok_or(StoreError::Corrupt("profiles.theme"))?,
            magnification: self.magnification,
            recents: serde_json::from_str(&self.recents).map_err(|_| StoreError::Corrupt("profiles.recents"))?,
        })
    }
}

/// The recents as stored: a JSON array.
pub(crate) fn recents_json(recents: &[String]) -> String {
    serde_json::to_string(recents).expect("a list of strings always serializes")
}

/// A directory entry from its row `(id, email, display_name, identity_key, contact)`.
pub(crate) fn directory_entry(
    (id, email, display_name, identity_key, email_visible): (Uuid, String, String, Option<String>, bool),
) -> DirectoryEntry {
    DirectoryEntry { user: UserSummary { id, email, display_name, identity_key }, email_visible }
}

/// A user summary from its row `(id, email, display_name, identity_key)`.
pub(crate) fn user_summary(
    (id, email, display_name, identity_key): (Uuid, String, String, Option<String>),
) -> UserSummary {
    UserSummary { id, email, display_name, identity_key }
}

/// The rule a re-keying (a password or email change with re-wrapped keys) breaks when it does
/// not re-wrap the identity's private key exactly when the account has an identity.
pub const IDENTITY_KEY_RULE: &str =
    "identity_private_key must be re-wrapped too exactly when the account has an identity";

/// An identity from its columns `(identity_key, identity_private_key)`; `None` when the user
/// has none (the two are set and cleared together).
pub(crate) fn identity(columns: (Option<String>, Option<Vec<u8>>)) -> StoreResult<Option<Identity>> {
    match columns {
        (Some(public_key), Some(sealed_private_key)) => Ok(Some(Identity { public_key, sealed_private_key })),
        (None, None) => Ok(None),
        _ => Err(StoreError::Corrupt("users.identity_key")),
    }
}

/// What a re-keying must do with the identity: [`StoreError::Rule`] unless the identity's
/// private key is re-wrapped exactly when the user has an identity (`has_identity`: `None`
/// when there is no such user).
pub(crate) fn check_identity_rewrap(has_identity: Option<bool>, rewrapped: Option<&[u8]>) -> StoreResult<()> {
    match (has_identity, rewrapped) {
        (None, _) => Err(StoreError::NotFound),
        (Some(true), Some(_)) | (Some(false), None) => Ok(()),
        _ => Err(StoreError::Rule(IDENTITY_KEY_RULE)),
    }
}
