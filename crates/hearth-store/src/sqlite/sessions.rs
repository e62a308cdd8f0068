//! Device sessions and one-time tokens on SQLite: [`SessionStore`] with the shared SQL of
//! `sessions.rs`. The session check every request makes reads on the calling thread when it
//! can (`reads.rs`).

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use super::SqliteStore;
use crate::sessions::{self, check_redemption};
use crate::sql::{found, on_unique};
use crate::{
    Device, NewOneTimeToken, NewSession, OneTimeKind, Redemption, RefreshOutcome, SessionStore, StoreError,
    StoreResult, Timestamp, accounts, provider_keys,
};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, user_id: Uuid, session: &NewSession) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_session(&mut tx, user_id, session).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn device(&self, device_id: Uuid) -> StoreResult<Option<Device>> {
        if let Some(read) = self.inline_reads().and_then(|reads| reads.device(device_id)) {
            return read;
        }
        Ok(sqlx::query_as(sessions::DEVICE_BY_ID).bind(device_id).fetch_optional(&self.pool).await?)
    }

    async fn devices(&self, user_id: Uuid) -> StoreResult<Vec<Device>> {
        Ok(sqlx::query_as(sessions::LIVE_DEVICES_OF_USER).bind(user_id).fetch_all(&self.pool).await?)
    }

    async fn revoke_device(&self, user_id: Uuid, device_id: Uuid, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let revoked = sqlx::query(sessions::REVOKE_DEVICE_OF_USER)
            .bind(user_id)
            .bind(device_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        found(revoked.rows_affected())?;
        void_one_time_tokens_of_device_in(&mut tx, device_id).await?;
        sqlx::query(sessions::DELETE_REFRESH_TOKENS_OF_DEVICE).bind(device_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_all_devices(&self, user_id: Uuid, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        // Signing out everywhere voids the one-time credentials too: a device-link code or
        // configure link made before would otherwise outlive every session.
        revoke_everything_in(&mut tx, user_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented: &[u8; 32],
        successor: &[u8; 32],
        successor_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<RefreshOutcome> {
        let mut tx = self.begin_write().await?;
        let spent: Option<Uuid> = sqlx::query_scalar(sessions::SPEND_REFRESH_TOKEN)
            .bind(&presented[..])
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(device_id) = spent else {
            // Not live: either never issued / expired, or spent before — a replay.
            let previous: Option<(Uuid, Option<Timestamp>)> =
                sqlx::query_as(sessions::REFRESH_TOKEN).bind(&presented[..]).fetch_optional(&mut *tx).await?;
            return match previous {
                Some((device_id, Some(_))) => {
                    sqlx::query(sessions::REVOKE_DEVICE).bind(device_id).bind(now).execute(&mut *tx).await?;
                    void_one_time_tokens_of_device_in(&mut tx, device_id).await?;
                    sqlx::query(sessions::DELETE_UNSPENT_REFRESH_TOKENS_OF_DEVICE)
                        .bind(device_id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(RefreshOutcome::Reused { device_id })
                }
                _ => Ok(RefreshOutcome::Invalid),
            };
        };
        let device: Option<Device> =
            sqlx::query_as(sessions::TOUCH_LIVE_DEVICE).bind(device_id).bind(now).fetch_optional(&mut *tx).await?;
        let Some(device) = device else {
            // The session was revoked: the token is spent all the same.
            tx.commit().await?;
            return Ok(RefreshOutcome::Invalid);
        };
        sqlx::query(sessions::INSERT_REFRESH_TOKEN)
            .bind(&successor[..])
            .bind(device_id)
            .bind(successor_expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated { device })
    }

    async fn issue_one_time_token(&self, token: &NewOneTimeToken) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        // Earlier unspent tokens of the user stop working: those of the new token's kind, and
        // for a configure link those of the other configure kind too.
        for replaced in token.kind.replaces() {
            sqlx::query(sessions::VOID_ONE_TIME_TOKENS_OF_KIND)
                .bind(token.user_id)
                .bind(replaced.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(sessions::INSERT_ONE_TIME_TOKEN)
            .bind(&token.token_hash[..])
            .bind(token.user_id)
            .bind(token.device_id)
            .bind(token.kind.as_str())
            .bind(token.created_at)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn peek_one_time_token(
        &self,
        hash: &[u8; 32],
        kind: OneTimeKind,
        now: Timestamp,
    ) -> StoreResult<Option<Uuid>> {
        Ok(sqlx::query_scalar(sessions::LIVE_ONE_TIME_TOKEN_OWNER)
            .bind(&hash[..])
            .bind(kind.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn redeem_one_time_token(
        &self,
        hash: &[u8; 32],
        redemption: &Redemption,
        now: Timestamp,
    ) -> StoreResult<Uuid> {
        check_redemption(redemption)?;
        let mut tx = self.begin_write().await?;
        let owner: Uuid = sqlx::query_scalar(sessions::SPEND_ONE_TIME_TOKEN)
            .bind(&hash[..])
            .bind(redemption.kind().as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        match redemption {
            Redemption::ConfirmEmail => {
                sqlx::query(accounts::CONFIRM_EMAIL).bind(owner).bind(now).execute(&mut *tx).await?;
            }
            Redemption::ResetPassword { password_hash } => {
                // The identity's private key was wrapped under the forgotten password.
                sqlx::query(accounts::CLEAR_IDENTITY).bind(owner).execute(&mut *tx).await?;
                set_password_in(&mut tx, owner, password_hash, now).await?;
            }
            Redemption::ChangeEmail { user_id, email, rekey } => {
                if *user_id != owner {
                    return Err(StoreError::NotFound);
                }
                sqlx::query(accounts::CHANGE_EMAIL)
                    .bind(owner)
                    .bind(email)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(on_unique("email"))?;
                // Whoever reads the old address's mail must not reach the moved account: a
                // confirmation would confirm the new address, a reset take it over. Every
                // other outstanding one-time token goes too (device links, configure links),
                // as when the password changes.
                void_one_time_tokens_in(&mut tx, owner).await?;
                if let Some(rekey) = rekey {
                    super::conversations::replace_private_keys_in(&mut tx, owner, &rekey.private_keys, now).await?;
                    rewrap_identity_in(&mut tx, owner, rekey.identity_private_key.as_deref()).await?;
                    set_password_in(&mut tx, owner, &rekey.password_hash, now).await?;
                }
            }
            Redemption::LinkDevice(session) => {
                insert_session(&mut tx, owner, session).await?;
            }
            Redemption::StoreProviderKey { user_id, key } => {
                if *user_id != owner {
                    return Err(StoreError::NotFound);
                }
                sqlx::query(provider_keys::INSERT_KEY)
                    .bind(key.id)
                    .bind(key.owner.user_id())
                    .bind(&key.provider)
                    .bind(&key.sealed)
                    .bind(provider_keys::master_version_column(key.master_version)?)
                    .bind(&key.last_four)
                    .bind(&key.fingerprint)
                    .bind(key.inserted_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(on_unique("provider_key"))?;
            }
        }
        tx.commit().await?;
        Ok(owner)
    }
}

/// Stores a device session of `user_id` with its first refresh token, in `tx`.
pub(super) async fn insert_session(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: Uuid,
    session: &NewSession,
) -> StoreResult<()> {
    sqlx::query(sessions::INSERT_DEVICE)
        .bind(session.device_id)
        .bind(user_id)
        .bind(&session.name)
        .bind(session.created_at)
        .execute(&mut **tx)
        .await?;
    sqlx::query(sessions::INSERT_REFRESH_TOKEN)
        .bind(&session.refresh_token_hash[..])
        .bind(session.device_id)
        .bind(session.refresh_expires_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Revokes every session of the user, drops their refresh tokens and voids every outstanding
/// one-time token, in `tx`.
pub(super) async fn revoke_everything_in(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: Uuid,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(sessions::REVOKE_DEVICES_OF_USER).bind(user_id).bind(now).execute(&mut **tx).await?;
    sqlx::query(sessions::DELETE_REFRESH_TOKENS_OF_USER).bind(user_id).execute(&mut **tx).await?;
    void_one_time_tokens_in(tx, user_id).await
}

/// Deletes every outstanding (unspent) one-time token of the user, in `tx`.
async fn void_one_time_tokens_in(tx: &mut Transaction<'static, Sqlite>, user_id: Uuid) -> StoreResult<()> {
    sqlx::query(sessions::VOID_ONE_TIME_TOKENS_OF_USER).bind(user_id).execute(&mut **tx).await?;
    Ok(())
}

/// Voids the one-time tokens a device session made (a device-link code, a configure link, an
/// email-change token), in `tx`: they die with the session.
async fn void_one_time_tokens_of_device_in(tx: &mut Transaction<'static, Sqlite>, device_id: Uuid) -> StoreResult<()> {
    sqlx::query(sessions::VOID_ONE_TIME_TOKENS_OF_DEVICE).bind(device_id).execute(&mut **tx).await?;
    Ok(())
}

/// Sets the user's password hash and revokes every session and outstanding one-time token,
/// in `tx`: a new credential ends every session the old one made.
/// [`StoreError::NotFound`](crate::StoreError::NotFound) if there is no such user.
pub(super) async fn set_password_in(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: Uuid,
    password_hash: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let updated =
        sqlx::query(accounts::SET_PASSWORD).bind(user_id).bind(password_hash).bind(now).execute(&mut **tx).await?;
    found(updated.rows_affected())?;
    revoke_everything_in(tx, user_id, now).await
}

/// Replaces the sealed private key of the user's identity with `rewrapped`, in `tx`, as a
/// re-keying does (a new credential, with every private key re-wrapped by the client):
/// [`StoreError::Rule`] unless `rewrapped` is given exactly when the user has an identity
/// (SQLite's write transaction holds the whole database, so the answer holds until it ends).
pub(super) async fn rewrap_identity_in(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: Uuid,
    rewrapped: Option<&[u8]>,
) -> StoreResult<()> {
    let has: Option<bool> = sqlx::query_scalar(accounts::HAS_IDENTITY).bind(user_id).fetch_optional(&mut **tx).await?;
    accounts::check_identity_rewrap(has, rewrapped)?;
    if let Some(sealed) = rewrapped {
        sqlx::query(accounts::SET_IDENTITY_PRIVATE_KEY).bind(user_id).bind(sealed).execute(&mut **tx).await?;
    }
    Ok(())
}
