//! Device sessions with their refresh tokens, and one-time tokens (email confirmation, password
//! reset, email change, device links, configure links).
//!
//! [`SessionStore`] is the area's part of the [`Store`](crate::Store) contract; the SQL below
//! is what both backends run for it (`sqlite/sessions.rs`, `postgres/sessions.rs`).

use async_trait::async_trait;
use uuid::Uuid;

use crate::{
    Device, NewOneTimeToken, NewSession, OneTimeKind, Redemption, RefreshOutcome, StoreError, StoreResult, Timestamp,
};

/// Device sessions and one-time tokens.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a device session with its first refresh token.
    async fn create_session(&self, user_id: Uuid, session: &NewSession) -> StoreResult<()>;

    /// A device session, revoked or not.
    async fn device(&self, device_id: Uuid) -> StoreResult<Option<Device>>;

    /// The user's live (unrevoked) device sessions, oldest first.
    async fn devices(&self, user_id: Uuid) -> StoreResult<Vec<Device>>;

    /// Revokes one of the user's sessions and voids the one-time tokens it made;
    /// [`StoreError::NotFound`] if it is not theirs or already revoked. (A replayed refresh
    /// token, [`SessionStore::rotate_refresh_token`], revokes its session the same way.)
    async fn revoke_device(&self, user_id: Uuid, device_id: Uuid, now: Timestamp) -> StoreResult<()>;

    /// Revokes every session of the user and voids every outstanding one-time token.
    async fn revoke_all_devices(&self, user_id: Uuid, now: Timestamp) -> StoreResult<()>;

    /// Spends a refresh token and stores its successor, detecting reuse.
    async fn rotate_refresh_token(
        &self,
        presented: &[u8; 32],
        successor: &[u8; 32],
        successor_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<RefreshOutcome>;

    // --- one-time tokens ---

    /// Stores a one-time token, deleting the user's unspent tokens of the kinds it replaces
    /// ([`OneTimeKind::replaces`]).
    async fn issue_one_time_token(&self, token: &NewOneTimeToken) -> StoreResult<()>;

    /// The owner of a live (unspent, unexpired) token of `kind`, without spending it.
    async fn peek_one_time_token(
        &self,
        hash: &[u8; 32],
        kind: OneTimeKind,
        now: Timestamp,
    ) -> StoreResult<Option<Uuid>>;

    /// Spends a live token of the redemption's kind and performs the redemption, in one
    /// transaction; returns the token's owner. Exactly one of any number of concurrent
    /// redemptions of the same token succeeds; the rest get [`StoreError::NotFound`].
    async fn redeem_one_time_token(
        &self,
        hash: &[u8; 32],
        redemption: &Redemption,
        now: Timestamp,
    ) -> StoreResult<Uuid>;
}

pub(crate) const INSERT_DEVICE: &str =
    "INSERT INTO devices (id, user_id, name, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)";

pub(crate) const INSERT_REFRESH_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, device_id, expires_at) VALUES ($1, $2, $3)";

/// One device session by id (`$1`). The SQLite backend also runs it outside sqlx
/// (`sqlite/reads.rs`), so it decodes the columns by position, in this order.
pub(crate) const DEVICE_BY_ID: &str =
    "SELECT id, user_id, name, created_at, last_seen_at, revoked_at FROM devices WHERE id = $1";

pub(crate) const LIVE_DEVICES_OF_USER: &str = "SELECT id, user_id, name, created_at, last_seen_at, revoked_at FROM devices \
     WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id";

pub(crate) const REVOKE_DEVICES_OF_USER: &str =
    "UPDATE devices SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";

pub(crate) const DELETE_REFRESH_TOKENS_OF_USER: &str =
    "DELETE FROM refresh_tokens WHERE device_id IN (SELECT id FROM devices WHERE user_id = $1)";

/// Revokes the device `$2` if it is the user `$1`'s and live.
pub(crate) const REVOKE_DEVICE_OF_USER: &str =
    "UPDATE devices SET revoked_at = $3 WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL";

pub(crate) const REVOKE_DEVICE: &str = "UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

pub(crate) const DELETE_REFRESH_TOKENS_OF_DEVICE: &str = "DELETE FROM refresh_tokens WHERE device_id = $1";

/// The spent ones stay: a further replay is still seen as one.
pub(crate) const DELETE_UNSPENT_REFRESH_TOKENS_OF_DEVICE: &str =
    "DELETE FROM refresh_tokens WHERE device_id = $1 AND spent_at IS NULL";

/// Spends the live refresh token `$1` at `$2`; returns its device.
pub(crate) const SPEND_REFRESH_TOKEN: &str = "UPDATE refresh_tokens SET spent_at = $2 \
     WHERE token_hash = $1 AND spent_at IS NULL AND expires_at > $2 RETURNING device_id";

pub(crate) const REFRESH_TOKEN: &str = "SELECT device_id, spent_at FROM refresh_tokens WHERE token_hash = $1";

pub(crate) const TOUCH_LIVE_DEVICE: &str = "UPDATE devices SET last_seen_at = $2 WHERE id = $1 AND revoked_at IS NULL \
     RETURNING id, user_id, name, created_at, last_seen_at, revoked_at";

pub(crate) const VOID_ONE_TIME_TOKENS_OF_USER: &str =
    "DELETE FROM one_time_tokens WHERE user_id = $1 AND redeemed_at IS NULL";

pub(crate) const VOID_ONE_TIME_TOKENS_OF_DEVICE: &str =
    "DELETE FROM one_time_tokens WHERE device_id = $1 AND redeemed_at IS NULL";

pub(crate) const VOID_ONE_TIME_TOKENS_OF_KIND: &str =
    "DELETE FROM one_time_tokens WHERE user_id = $1 AND kind = $2 AND redeemed_at IS NULL";

pub(crate) const INSERT_ONE_TIME_TOKEN: &str = "INSERT INTO one_time_tokens (token_hash, user_id, device_id, kind, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const LIVE_ONE_TIME_TOKEN_OWNER: &str = "SELECT user_id FROM one_time_tokens \
     WHERE token_hash = $1 AND kind = $2 AND redeemed_at IS NULL AND expires_at > $3";

/// Spends the live token `$1` of kind `$2` at `$3`; returns its owner. The conditional
/// `UPDATE` is the lock: of concurrent redemptions exactly one sees the row unspent.
pub(crate) const SPEND_ONE_TIME_TOKEN: &str = "UPDATE one_time_tokens SET redeemed_at = $3 \
     WHERE token_hash = $1 AND kind = $2 AND redeemed_at IS NULL AND expires_at > $3 \
     RETURNING user_id";

/// Checks what a redemption would store against the rules, before its token is looked at.
pub(crate) fn check_redemption(redemption: &Redemption) -> StoreResult<()> {
    if let Redemption::StoreProviderKey { user_id, key } = redemption {
        if key.owner.user_id().is_some_and(|owner| owner != *user_id) {
            return Err(StoreError::Rule("a configure link stores a key for its owner or for the pool"));
        }
        crate::provider_keys::master_version_column(key.master_version)?;
    }
    Ok(())
}
