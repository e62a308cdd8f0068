//! The rows hearth stores, as the rest of hearth sees them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{KeyOwner, NewProviderKey, Timestamp};

/// An account.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct User {
    /// Stable identity (UUIDv7).
    pub id: Uuid,
    /// Lowercased email address; unique.
    pub email: String,
    /// Name shown to others; defaults to the email.
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// When the email address was confirmed, if it was.
    pub confirmed_at: Option<Timestamp>,
    /// Created.
    pub inserted_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// The public form of the account's identity (docs/e2e.md), JSON text as its client wrote
    /// it; `None` before the client made one (and after a password reset). Set with
    /// [`AccountStore::set_identity`](crate::AccountStore::set_identity).
    pub identity_key: Option<String>,
}

/// What others may see of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    /// User id.
    pub id: Uuid,
    /// Email address.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// The public form of their identity, if they have one.
    pub identity_key: Option<String>,
}

/// What a directory page asks for ([`AccountStore::directory`](crate::AccountStore::directory)).
#[derive(Debug, Clone, Copy)]
pub struct DirectoryPage<'a> {
    /// Who is looking: their own email and their contacts' are visible to them.
    pub viewer: Uuid,
    /// Only people whose display name contains this, or whose email is exactly this, in any
    /// case; `None`: everyone.
    pub search: Option<&'a str>,
    /// Users after this id (`None`: from the first).
    pub after: Option<Uuid>,
    /// At most this many.
    pub limit: u32,
}

/// A person in the directory, as one viewer sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// Who they are.
    pub user: UserSummary,
    /// Whether the viewer may see their email: it is the viewer's own, they share a
    /// conversation, or the viewer searched for exactly that address.
    pub email_visible: bool,
}

impl From<&User> for UserSummary {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            identity_key: user.identity_key.clone(),
        }
    }
}

/// An account's identity as stored (docs/e2e.md): both forms are opaque to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The public form: JSON text as the client wrote it, shown to everyone.
    pub public_key: String,
    /// The private form (JSON text, wrapped by the client), sealed by the vault for the user's
    /// row; given back only to the account itself.
    pub sealed_private_key: Vec<u8>,
}

/// Colour theme preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Light.
    #[default]
    Day,
    /// Dark.
    Night,
}

impl Theme {
    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Day => "day",
            Theme::Night => "night",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" => Some(Theme::Day),
            "night" => Some(Theme::Night),
            _ => None,
        }
    }
}

/// A user's private preferences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Shown as offline even when connected.
    pub hidden: bool,
    /// Colour theme.
    pub theme: Theme,
    /// Text magnification, 0.7–1.4.
    pub magnification: f64,
    /// Recently viewed pages.
    pub recents: Vec<String>,
}

impl Default for Profile {
    fn default() -> Self {
        Self { hidden: false, theme: Theme::Day, magnification: 1.0, recents: Vec::new() }
    }
}

/// A change to some profile fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileUpdate {
    /// New hidden flag.
    pub hidden: Option<bool>,
    /// New theme.
    pub theme: Option<Theme>,
    /// New magnification.
    pub magnification: Option<f64>,
    /// New recents list (replaces the old one).
    pub recents: Option<Vec<String>>,
}

/// A device session: one per login or linked device. Its tokens stop working when it is
/// revoked.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Device {
    /// Device (session) id; the `device` claim of access tokens.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// A name for people (from the client, or its user agent).
    pub name: String,
    /// Logged in.
    pub created_at: Timestamp,
    /// Last login or refresh.
    pub last_seen_at: Timestamp,
    /// Revoked (signed out), if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A new account and its first device session, created together.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The user row.
    pub user: User,
    /// The first session.
    pub session: NewSession,
}

/// A device session with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// New device id.
    pub device_id: Uuid,
    /// Device name.
    pub name: String,
    /// SHA-256 of the first refresh token.
    pub refresh_token_hash: [u8; 32],
    /// When that refresh token expires.
    pub refresh_expires_at: Timestamp,
    /// Now.
    pub created_at: Timestamp,
}

/// What a one-time token is for. Tokens of one kind never redeem as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneTimeKind {
    /// Confirms the account's email address.
    EmailConfirm,
    /// Sets a new password without the old one.
    PasswordReset,
    /// Authorises changing the email address.
    EmailChange,
    /// Adds a device to the account.
    DeviceLink,
    /// A configure link: the provider key entered through it becomes the user's own.
    ProviderKey,
    /// An operator's configure link: the provider key entered through it joins the free
    /// tier's pool.
    PoolKey,
}

impl OneTimeKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OneTimeKind::EmailConfirm => "email_confirm",
            OneTimeKind::PasswordReset => "password_reset",
            OneTimeKind::EmailChange => "email_change",
            OneTimeKind::DeviceLink => "device_link",
            OneTimeKind::ProviderKey => "provider_key",
            OneTimeKind::PoolKey => "pool_key",
        }
    }

    /// The kinds whose unspent tokens a new token of this kind invalidates (its own among
    /// them): a user has at most one live configure link, whichever kind it is.
    pub fn replaces(self) -> &'static [OneTimeKind] {
        match self {
            OneTimeKind::EmailConfirm => &[OneTimeKind::EmailConfirm],
            OneTimeKind::PasswordReset => &[OneTimeKind::PasswordReset],
            OneTimeKind::EmailChange => &[OneTimeKind::EmailChange],
            OneTimeKind::DeviceLink => &[OneTimeKind::DeviceLink],
            OneTimeKind::ProviderKey | OneTimeKind::PoolKey => &[OneTimeKind::ProviderKey, OneTimeKind::PoolKey],
        }
    }
}

/// A one-time token to store (only its hash).
#[derive(Debug, Clone)]
pub struct NewOneTimeToken {
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// Whose token it is.
    pub user_id: Uuid,
    /// The device session that made it, if a session did (a device-link code, a configure
    /// link): revoking that session voids the token.
    pub device_id: Option<Uuid>,
    /// What it is for.
    pub kind: OneTimeKind,
    /// Issued.
    pub created_at: Timestamp,
    /// Good until.
    pub expires_at: Timestamp,
}

/// What redeeming a one-time token does, in the same transaction as spending it.
#[derive(Debug, Clone)]
pub enum Redemption {
    /// Marks the email address confirmed.
    ConfirmEmail,
    /// Sets the password hash and revokes every session and outstanding token of the user, and
    /// removes their identity: its private key was wrapped under the forgotten password, so it
    /// can never be opened again (their client makes a new one).
    ResetPassword {
        /// The new Argon2id hash.
        password_hash: String,
    },
    /// Changes the email address of `user_id` (the token must be theirs); the new
    /// address is unconfirmed, and every other outstanding one-time token of the user is
    /// voided (a reset or confirmation mailed to the old address must not reach the account).
    ChangeEmail {
        /// The user the token must belong to.
        user_id: Uuid,
        /// The new lowercased address.
        email: String,
        /// For an end-to-end client, whose key derivation is salted with the email: the new
        /// secret and the re-wrapped private keys, replaced in the same transaction.
        rekey: Option<Rekey>,
    },
    /// Creates a device session for the token's user.
    LinkDevice(NewSession),
    /// Stores a provider key entered through a configure link of `user_id` (the token must be
    /// theirs): a [`OneTimeKind::PoolKey`] link when the key is the pool's, a
    /// [`OneTimeKind::ProviderKey`] link when it is `user_id`'s own. A key owned by anyone
    /// else is refused with [`StoreError::Rule`](crate::StoreError::Rule).
    StoreProviderKey {
        /// The user the token must belong to.
        user_id: Uuid,
        /// The key to store.
        key: NewProviderKey,
    },
}

impl Redemption {
    /// The kind of token this redemption needs.
    pub fn kind(&self) -> OneTimeKind {
        match self {
            Redemption::ConfirmEmail => OneTimeKind::EmailConfirm,
            Redemption::ResetPassword { .. } => OneTimeKind::PasswordReset,
            Redemption::ChangeEmail { .. } => OneTimeKind::EmailChange,
            Redemption::LinkDevice(_) => OneTimeKind::DeviceLink,
            Redemption::StoreProviderKey { key, .. } => match key.owner {
                KeyOwner::Pool => OneTimeKind::PoolKey,
                KeyOwner::User(_) => OneTimeKind::ProviderKey,
            },
        }
    }
}

/// What changes with an email address when the client's keys derive from it (docs/ARCHITECTURE.md): the
/// hash of the new `auth_secret` (every session is then signed out, as by a password change)
/// and every private key of the user, re-wrapped ([`ConversationStore::replace_private_keys`]'s
/// rule), their identity's among them
/// ([`AccountStore::replace_password`](crate::AccountStore::replace_password)'s rule).
///
/// [`ConversationStore::replace_private_keys`]: crate::ConversationStore::replace_private_keys
#[derive(Clone)]
pub struct Rekey {
    /// The new password hash.
    pub password_hash: String,
    /// The user's sealed private keys, by conversation: exactly theirs.
    pub private_keys: Vec<(Uuid, Vec<u8>)>,
    /// Their identity's sealed private key: given exactly when they have an identity.
    pub identity_private_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Rekey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rekey")
            .field("private_keys", &self.private_keys.len())
            .field("identity_private_key", &self.identity_private_key.is_some())
            .finish_non_exhaustive()
    }
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// The token was live: it is now spent and its successor stored.
    Rotated {
        /// The session the token belongs to.
        device: Device,
    },
    /// The token had already been spent: someone holds a copy. The whole family (the
    /// device session) has been revoked.
    Reused {
        /// The revoked session.
        device_id: Uuid,
    },
    /// Unknown, expired, or its session is revoked.
    Invalid,
}
