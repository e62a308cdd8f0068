//! The SQL, written once for both backends.
//!
//! sqlx binds `$1, $2, …` on SQLite and PostgreSQL alike, and every column type used here
//! (UUID, [`Timestamp`](crate::Timestamp), bool, f64, text, bytes) maps on both, so the
//! statements are identical. What differs — the pool type, how a write transaction
//! begins, the migrations directory — is passed to [`impl_store!`], which instantiates the
//! [`Store`](crate::Store) implementation for one backend.

use crate::{Profile, StoreError, StoreResult, Theme};

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

pub(crate) fn recents_json(recents: &[String]) -> String {
    serde_json::to_string(recents).expect("a list of strings always serializes")
}

pub(crate) const USER_COLUMNS: &str = "id, email, display_name, password_hash, confirmed_at, inserted_at, updated_at";
pub(crate) const DEVICE_COLUMNS: &str = "id, user_id, name, created_at, last_seen_at, revoked_at";

macro_rules! impl_store {
    ($store:ident, $db:ident, $name:literal, $migrations:literal) => {
        impl $store {
            async fn insert_session(
                tx: &mut sqlx::Transaction<'static, $db>,
                user_id: uuid::Uuid,
                session: &crate::NewSession,
            ) -> crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO devices (id, user_id, name, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)",
                )
                .bind(session.device_id)
                .bind(user_id)
                .bind(&session.name)
                .bind(session.created_at)
                .execute(&mut **tx)
                .await?;
                sqlx::query("INSERT INTO refresh_tokens (token_hash, device_id, expires_at) VALUES ($1, $2, $3)")
                    .bind(&session.refresh_token_hash[..])
                    .bind(session.device_id)
                    .bind(session.refresh_expires_at)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Revokes every session of the user and drops their refresh tokens.
            async fn revoke_sessions_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                user_id: uuid::Uuid,
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                sqlx::query("UPDATE devices SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(
                    "DELETE FROM refresh_tokens WHERE device_id IN (SELECT id FROM devices WHERE user_id = $1)",
                )
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Revokes every session of the user and every outstanding one-time token.
            async fn revoke_everything(
                tx: &mut sqlx::Transaction<'static, $db>,
                user_id: uuid::Uuid,
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                Self::revoke_sessions_in(tx, user_id, now).await?;
                sqlx::query("DELETE FROM one_time_tokens WHERE user_id = $1 AND redeemed_at IS NULL")
                    .bind(user_id)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn set_password_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                user_id: uuid::Uuid,
                password_hash: &str,
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                let updated = sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                    .bind(user_id)
                    .bind(password_hash)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                if updated.rows_affected() == 0 {
                    return Err(crate::StoreError::NotFound);
                }
                Self::revoke_everything(tx, user_id, now).await
            }
        }

        #[async_trait::async_trait]
        impl crate::Store for $store {
            async fn migrate(&self) -> crate::StoreResult<usize> {
                let migrator = sqlx::migrate!($migrations);
                let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&self.pool)
                    .await
                    .unwrap_or(0);
                migrator.run(&self.pool).await?;
                Ok(migrator.iter().count().saturating_sub(applied as usize))
            }

            fn backend(&self) -> &'static str {
                $name
            }

            async fn ping(&self) -> crate::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_account(&self, account: &crate::NewAccount) -> crate::StoreResult<()> {
                let user = &account.user;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO users (id, email, display_name, password_hash, confirmed_at, inserted_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(user.id)
                .bind(&user.email)
                .bind(&user.display_name)
                .bind(&user.password_hash)
                .bind(user.confirmed_at)
                .bind(user.inserted_at)
                .bind(user.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(crate::on_unique("email"))?;
                let profile = crate::Profile::default();
                sqlx::query(
                    "INSERT INTO profiles (user_id, hidden, theme, magnification, recents) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(user.id)
                .bind(profile.hidden)
                .bind(profile.theme.as_str())
                .bind(profile.magnification)
                .bind(crate::queries::recents_json(&profile.recents))
                .execute(&mut *tx)
                .await?;
                Self::insert_session(&mut tx, user.id, &account.session).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn user(&self, id: uuid::Uuid) -> crate::StoreResult<Option<crate::User>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM users WHERE id = $1",
                    crate::queries::USER_COLUMNS
                )))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn user_by_email(&self, email: &str) -> crate::StoreResult<Option<crate::User>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM users WHERE email = $1",
                    crate::queries::USER_COLUMNS
                )))
                .bind(email)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_users(
                &self,
                after: Option<uuid::Uuid>,
                limit: u32,
            ) -> crate::StoreResult<Vec<crate::UserSummary>> {
                let rows: Vec<(uuid::Uuid, String, String)> =
                    sqlx::query_as("SELECT id, email, display_name FROM users WHERE id > $1 ORDER BY id LIMIT $2")
                        // The nil UUID sorts before every real id on both backends.
                        .bind(after.unwrap_or(uuid::Uuid::nil()))
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, email, display_name)| crate::UserSummary { id, email, display_name })
                    .collect())
            }

            async fn set_display_name(
                &self,
                user_id: uuid::Uuid,
                display_name: &str,
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                let updated = sqlx::query("UPDATE users SET display_name = $2, updated_at = $3 WHERE id = $1")
                    .bind(user_id)
                    .bind(display_name)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                if updated.rows_affected() == 0 {
                    return Err(crate::StoreError::NotFound);
                }
                Ok(())
            }

            async fn replace_password(
                &self,
                user_id: uuid::Uuid,
                password_hash: &str,
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::set_password_in(&mut tx, user_id, password_hash, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_user(&self, user_id: uuid::Uuid) -> crate::StoreResult<()> {
                // Everything else references users with ON DELETE CASCADE.
                let deleted = sqlx::query("DELETE FROM users WHERE id = $1").bind(user_id).execute(&self.pool).await?;
                if deleted.rows_affected() == 0 {
                    return Err(crate::StoreError::NotFound);
                }
                Ok(())
            }

            async fn profile(&self, user_id: uuid::Uuid) -> crate::StoreResult<crate::Profile> {
                let row: crate::queries::ProfileRow =
                    sqlx::query_as("SELECT hidden, theme, magnification, recents FROM profiles WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or(crate::StoreError::NotFound)?;
                row.into_profile()
            }

            async fn update_profile(
                &self,
                user_id: uuid::Uuid,
                update: &crate::ProfileUpdate,
            ) -> crate::StoreResult<crate::Profile> {
                let row: crate::queries::ProfileRow = sqlx::query_as(
                    "UPDATE profiles SET hidden = COALESCE($2, hidden), theme = COALESCE($3, theme), \
                     magnification = COALESCE($4, magnification), recents = COALESCE($5, recents) \
                     WHERE user_id = $1 RETURNING hidden, theme, magnification, recents",
                )
                .bind(user_id)
                .bind(update.hidden)
                .bind(update.theme.map(crate::Theme::as_str))
                .bind(update.magnification)
                .bind(update.recents.as_deref().map(crate::queries::recents_json))
                .fetch_optional(&self.pool)
                .await?
                .ok_or(crate::StoreError::NotFound)?;
                row.into_profile()
            }

            async fn create_session(&self, user_id: uuid::Uuid, session: &crate::NewSession) -> crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::insert_session(&mut tx, user_id, session).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn device(&self, device_id: uuid::Uuid) -> crate::StoreResult<Option<crate::Device>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM devices WHERE id = $1",
                    crate::queries::DEVICE_COLUMNS
                )))
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn devices(&self, user_id: uuid::Uuid) -> crate::StoreResult<Vec<crate::Device>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM devices WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
                    crate::queries::DEVICE_COLUMNS
                )))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn revoke_device(
                &self,
                user_id: uuid::Uuid,
                device_id: uuid::Uuid,
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let revoked = sqlx::query(
                    "UPDATE devices SET revoked_at = $3 WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL",
                )
                .bind(user_id)
                .bind(device_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if revoked.rows_affected() == 0 {
                    return Err(crate::StoreError::NotFound);
                }
                sqlx::query("DELETE FROM refresh_tokens WHERE device_id = $1")
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn revoke_all_devices(&self, user_id: uuid::Uuid, now: crate::Timestamp) -> crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::revoke_sessions_in(&mut tx, user_id, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn rotate_refresh_token(
                &self,
                presented: &[u8; 32],
                successor: &[u8; 32],
                successor_expires_at: crate::Timestamp,
                now: crate::Timestamp,
            ) -> crate::StoreResult<crate::RefreshOutcome> {
                let mut tx = self.begin_write().await?;
                let spent: Option<uuid::Uuid> = sqlx::query_scalar(
                    "UPDATE refresh_tokens SET spent_at = $2 \
                     WHERE token_hash = $1 AND spent_at IS NULL AND expires_at > $2 RETURNING device_id",
                )
                .bind(&presented[..])
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(device_id) = spent else {
                    // Not live: either never issued / expired, or spent before — a replay.
                    let previous: Option<(uuid::Uuid, Option<crate::Timestamp>)> =
                        sqlx::query_as("SELECT device_id, spent_at FROM refresh_tokens WHERE token_hash = $1")
                            .bind(&presented[..])
                            .fetch_optional(&mut *tx)
                            .await?;
                    return match previous {
                        Some((device_id, Some(_))) => {
                            sqlx::query("UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                                .bind(device_id)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                            sqlx::query("DELETE FROM refresh_tokens WHERE device_id = $1 AND spent_at IS NULL")
                                .bind(device_id)
                                .execute(&mut *tx)
                                .await?;
                            tx.commit().await?;
                            Ok(crate::RefreshOutcome::Reused)
                        }
                        _ => Ok(crate::RefreshOutcome::Invalid),
                    };
                };
                let device: Option<crate::Device> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE devices SET last_seen_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING {}",
                    crate::queries::DEVICE_COLUMNS
                )))
                .bind(device_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(device) = device else {
                    // The session was revoked: the token is spent all the same.
                    tx.commit().await?;
                    return Ok(crate::RefreshOutcome::Invalid);
                };
                sqlx::query("INSERT INTO refresh_tokens (token_hash, device_id, expires_at) VALUES ($1, $2, $3)")
                    .bind(&successor[..])
                    .bind(device_id)
                    .bind(successor_expires_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(crate::RefreshOutcome::Rotated { device })
            }

            async fn issue_one_time_token(&self, token: &crate::NewOneTimeToken) -> crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                // A new token of a kind replaces the user's earlier unspent ones of that kind.
                sqlx::query("DELETE FROM one_time_tokens WHERE user_id = $1 AND kind = $2 AND redeemed_at IS NULL")
                    .bind(token.user_id)
                    .bind(token.kind.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO one_time_tokens (token_hash, user_id, kind, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&token.token_hash[..])
                .bind(token.user_id)
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
                kind: crate::OneTimeKind,
                now: crate::Timestamp,
            ) -> crate::StoreResult<Option<uuid::Uuid>> {
                Ok(sqlx::query_scalar(
                    "SELECT user_id FROM one_time_tokens \
                     WHERE token_hash = $1 AND kind = $2 AND redeemed_at IS NULL AND expires_at > $3",
                )
                .bind(&hash[..])
                .bind(kind.as_str())
                .bind(now)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn redeem_one_time_token(
                &self,
                hash: &[u8; 32],
                redemption: &crate::Redemption,
                now: crate::Timestamp,
            ) -> crate::StoreResult<uuid::Uuid> {
                let mut tx = self.begin_write().await?;
                // The conditional UPDATE is the lock: of concurrent redemptions exactly one
                // sees the row unspent.
                let owner: uuid::Uuid = sqlx::query_scalar(
                    "UPDATE one_time_tokens SET redeemed_at = $3 \
                     WHERE token_hash = $1 AND kind = $2 AND redeemed_at IS NULL AND expires_at > $3 \
                     RETURNING user_id",
                )
                .bind(&hash[..])
                .bind(redemption.kind().as_str())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(crate::StoreError::NotFound)?;
                match redemption {
                    crate::Redemption::ConfirmEmail => {
                        sqlx::query("UPDATE users SET confirmed_at = $2, updated_at = $2 WHERE id = $1")
                            .bind(owner)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    crate::Redemption::ResetPassword { password_hash } => {
                        Self::set_password_in(&mut tx, owner, password_hash, now).await?;
                    }
                    crate::Redemption::ChangeEmail { user_id, email } => {
                        if *user_id != owner {
                            return Err(crate::StoreError::NotFound);
                        }
                        sqlx::query("UPDATE users SET email = $2, confirmed_at = NULL, updated_at = $3 WHERE id = $1")
                            .bind(owner)
                            .bind(email)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(crate::on_unique("email"))?;
                        // A confirmation sent to the old address must not confirm the new one.
                        sqlx::query(
                            "DELETE FROM one_time_tokens WHERE user_id = $1 AND kind = $2 AND redeemed_at IS NULL",
                        )
                        .bind(owner)
                        .bind(crate::OneTimeKind::EmailConfirm.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    crate::Redemption::LinkDevice(session) => {
                        Self::insert_session(&mut tx, owner, session).await?;
                    }
                }
                tx.commit().await?;
                Ok(owner)
            }
        }
    };
}

pub(crate) use impl_store;
