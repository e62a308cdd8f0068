//! The SQL, written once for both backends.
//!
//! sqlx binds `$1, $2, …` on SQLite and PostgreSQL alike, and every column type used here
//! (UUID, [`Timestamp`](crate::Timestamp), bool, f64, text, bytes) maps on both, so the
//! statements are identical. What differs — the pool type, how a write transaction
//! begins, the migrations directory — is passed to [`impl_store!`], which instantiates the
//! [`Store`](crate::Store) implementation for one backend.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::{
    KeyOwner, NewConversation, Profile, Redemption, StoreError, StoreResult, StoredProviderKey, Theme, Timestamp,
};

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

/// A provider key as stored: the owner as a nullable user id, the counters as `INTEGER`s.
#[derive(sqlx::FromRow)]
pub(crate) struct ProviderKeyRow {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub provider: String,
    pub sealed: Vec<u8>,
    pub master_version: i32,
    pub last_four: String,
    pub fingerprint: String,
    pub inserted_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub failures: i32,
}

impl ProviderKeyRow {
    pub fn into_key(self) -> StoreResult<StoredProviderKey> {
        Ok(StoredProviderKey {
            id: self.id,
            owner: KeyOwner::from_user_id(self.user_id),
            provider: self.provider,
            sealed: self.sealed,
            master_version: u32::try_from(self.master_version)
                .map_err(|_| StoreError::Corrupt("provider_keys.master_version"))?,
            last_four: self.last_four,
            fingerprint: self.fingerprint,
            inserted_at: self.inserted_at,
            last_used_at: self.last_used_at,
            failures: u32::try_from(self.failures).map_err(|_| StoreError::Corrupt("provider_keys.failures"))?,
        })
    }
}

/// Provider keys as listed, from their rows.
pub(crate) fn provider_keys(rows: Vec<ProviderKeyRow>) -> StoreResult<Vec<StoredProviderKey>> {
    rows.into_iter().map(ProviderKeyRow::into_key).collect()
}

/// A master version as stored (`INTEGER`, which holds up to 2³¹ − 1 on PostgreSQL).
pub(crate) fn master_version_column(master_version: u32) -> StoreResult<i32> {
    i32::try_from(master_version).map_err(|_| StoreError::Rule("a master key version is below 2^31"))
}

/// Checks what a redemption would store against the rules, before its token is looked at.
pub(crate) fn check_redemption(redemption: &Redemption) -> StoreResult<()> {
    if let Redemption::StoreProviderKey { user_id, key } = redemption {
        if key.owner.user_id().is_some_and(|owner| owner != *user_id) {
            return Err(StoreError::Rule("a configure link stores a key for its owner or for the pool"));
        }
        master_version_column(key.master_version)?;
    }
    Ok(())
}

/// [`StoreError::NotFound`] when a statement that targets one row changed none.
pub(crate) fn found(rows_affected: u64) -> StoreResult<()> {
    if rows_affected == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

pub(crate) fn recents_json(recents: &[String]) -> String {
    serde_json::to_string(recents).expect("a list of strings always serializes")
}

pub(crate) const USER_COLUMNS: &str = "id, email, display_name, password_hash, confirmed_at, inserted_at, updated_at";
pub(crate) const DEVICE_COLUMNS: &str = "id, user_id, name, created_at, last_seen_at, revoked_at";
pub(crate) const CONVERSATION_COLUMNS: &str =
    "id, private, alias, inserted_at, updated_at, assistant_of IS NOT NULL AS assistant";
pub(crate) const PROVIDER_KEY_COLUMNS: &str =
    "id, user_id, provider, sealed, master_version, last_four, fingerprint, inserted_at, last_used_at, failures";

/// Selects the provider keys of the owner bound to `$1` ([`KeyOwner::user_id`]: NULL for the
/// pool). Each arm can use the `(user_id, inserted_at)` index, which `IS NOT DISTINCT FROM`
/// cannot on PostgreSQL.
pub(crate) const KEY_OWNER_IS_1: &str = "(user_id = $1 OR ($1 IS NULL AND user_id IS NULL))";

/// The rule a send or edit breaks when its recipients are not the conversation's members.
pub(crate) const RECIPIENTS_RULE: &str = "encrypted_messages must name exactly the conversation's members";

/// ` LIMIT n`, written into the statement instead of bound. SQLite's planner reads a bound
/// `LIMIT ?` and so marks the prepared statement stale whenever it is bound again: every
/// execution parsed and planned the statement anew (seen as `sqlite3Reprepare` under
/// `sqlite3_step` in profiles). `n` is an integer, so it cannot change what the statement does.
/// Each page size in use gets its own cached statement; a client that keeps changing its page
/// size costs what every page cost before: a fresh plan.
pub(crate) fn limit(n: u32) -> String {
    format!(" LIMIT {n}")
}

/// One device session by id (`$1`), as [`DEVICE_COLUMNS`].
pub(crate) fn device_by_id() -> &'static str {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"));
    &SQL
}

/// The latest `limit` turns of the assistant thread `$2` of user `$1`, newest first.
pub(crate) fn assistant_turns(limit: u32) -> String {
    format!(
        "SELECT id, user_id, thread, topic, prompt, reply, provider, answered, attempts, inserted_at \
         FROM assistant_turns WHERE user_id = $1 AND thread = $2 ORDER BY inserted_at DESC, id DESC{}",
        self::limit(limit)
    )
}

/// A message row with its recipient:
/// `(recipient_id, id, message_group, sender, content, inserted_at, updated_at)`.
pub(crate) type MessageRow = (Uuid, Uuid, Uuid, Uuid, String, crate::Timestamp, crate::Timestamp);

/// Checks a conversation to create against the rules; returns its `private_pair` (the two
/// members' textual ids sorted and joined by `:`) when it is private.
pub(crate) fn check_new_conversation(conversation: &NewConversation) -> StoreResult<Option<String>> {
    let members = &conversation.members;
    if conversation.private && (members.len() != 2 || conversation.alias.is_some()) {
        return Err(StoreError::Rule("a private conversation has exactly two members and no alias"));
    }
    let distinct: BTreeSet<Uuid> = members.iter().copied().collect();
    if distinct.len() != members.len() || !distinct.contains(&conversation.creator) {
        return Err(StoreError::Rule("a conversation's members are distinct and include its creator"));
    }
    Ok(conversation.private.then(|| {
        let pair: Vec<String> = distinct.iter().map(Uuid::to_string).collect();
        pair.join(":")
    }))
}

/// The `private_pair` of the private conversation between `a` and `b`.
pub(crate) fn private_pair(a: Uuid, b: Uuid) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("{lo}:{hi}")
}

/// [`StoreError::Rule`] unless the recipients are exactly the members.
pub(crate) fn check_recipients(members: &BTreeSet<Uuid>, contents: &BTreeMap<Uuid, String>) -> StoreResult<()> {
    if contents.keys().eq(members.iter()) { Ok(()) } else { Err(StoreError::Rule(RECIPIENTS_RULE)) }
}

/// `$share_lock` and `$update_lock` end a `SELECT … FROM conversations WHERE id = $1` to lock
/// that row against membership changes (shared: sends and edits) or for one (exclusive:
/// adding and leaving), until the transaction ends. PostgreSQL needs `FOR SHARE` / `FOR NO
/// KEY UPDATE`; SQLite passes empty strings, as its write transactions (`BEGIN IMMEDIATE`)
/// hold the whole database already.
macro_rules! impl_store {
    ($store:ident, $db:ident, $name:literal, $migrations:literal, $share_lock:literal, $update_lock:literal) => {
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
                Self::void_one_time_tokens_in(tx, user_id).await
            }

            /// Deletes every outstanding (unspent) one-time token of the user.
            async fn void_one_time_tokens_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                user_id: uuid::Uuid,
            ) -> crate::StoreResult<()> {
                sqlx::query("DELETE FROM one_time_tokens WHERE user_id = $1 AND redeemed_at IS NULL")
                    .bind(user_id)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Voids the one-time tokens a device session made (a device-link code, a configure
            /// link, an email-change token): they die with the session.
            async fn void_one_time_tokens_of_device_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                device_id: uuid::Uuid,
            ) -> crate::StoreResult<()> {
                sqlx::query("DELETE FROM one_time_tokens WHERE device_id = $1 AND redeemed_at IS NULL")
                    .bind(device_id)
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
                crate::queries::found(updated.rows_affected())?;
                Self::revoke_everything(tx, user_id, now).await
            }

            /// Replaces every sealed private key of `user_id`; `keys` must name exactly the
            /// conversations where the user has one, each once.
            async fn replace_private_keys_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                user_id: uuid::Uuid,
                keys: &[(uuid::Uuid, Vec<u8>)],
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                let mut stored: Vec<uuid::Uuid> =
                    sqlx::query_scalar("SELECT conversation_id FROM encryption_keys WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_all(&mut **tx)
                        .await?;
                stored.sort();
                let mut given: Vec<uuid::Uuid> = keys.iter().map(|(conversation_id, _)| *conversation_id).collect();
                given.sort();
                if given != stored {
                    return Err(crate::StoreError::Rule(
                        "the keys must be exactly those of your conversations, each once",
                    ));
                }
                for (conversation_id, sealed) in keys {
                    sqlx::query(
                        "UPDATE encryption_keys SET private_key = $3, updated_at = $4 \
                         WHERE conversation_id = $1 AND user_id = $2",
                    )
                    .bind(conversation_id)
                    .bind(user_id)
                    .bind(sealed)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            /// Locks the conversation against membership changes until the transaction
            /// ends and returns its current members (none if it does not exist).
            async fn members_locked_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                conversation_id: uuid::Uuid,
            ) -> crate::StoreResult<std::collections::BTreeSet<uuid::Uuid>> {
                sqlx::query(concat!("SELECT id FROM conversations WHERE id = $1", $share_lock))
                    .bind(conversation_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                let members: Vec<uuid::Uuid> =
                    sqlx::query_scalar("SELECT user_id FROM conversation_members WHERE conversation_id = $1")
                        .bind(conversation_id)
                        .fetch_all(&mut **tx)
                        .await?;
                Ok(members.into_iter().collect())
            }

            /// Locks the conversation for a membership change until the transaction ends;
            /// whether it is private, or `None` if it does not exist.
            async fn lock_for_membership_change_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                conversation_id: uuid::Uuid,
            ) -> crate::StoreResult<Option<bool>> {
                Ok(sqlx::query_scalar(concat!("SELECT private FROM conversations WHERE id = $1", $update_lock))
                    .bind(conversation_id)
                    .fetch_optional(&mut **tx)
                    .await?)
            }

            async fn conversation_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                conversation_id: uuid::Uuid,
            ) -> crate::StoreResult<crate::Conversation> {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM conversations WHERE id = $1",
                    crate::queries::CONVERSATION_COLUMNS
                )))
                .bind(conversation_id)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or(crate::StoreError::NotFound)
            }

            /// Records that `user` took part in `conversation_id` (kept after they leave, so
            /// deleting the user finds their messages there).
            async fn add_participant_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                conversation_id: uuid::Uuid,
                user: uuid::Uuid,
            ) -> crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO conversation_participants (conversation_id, user_id) VALUES ($1, $2) \
                     ON CONFLICT (conversation_id, user_id) DO NOTHING",
                )
                .bind(conversation_id)
                .bind(user)
                .execute(&mut **tx)
                .await
                .map_err(crate::on_foreign_key)?;
                Ok(())
            }

            /// Every recipient's copy of a message group.
            async fn delivery_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                message_group: uuid::Uuid,
                fresh: bool,
            ) -> crate::StoreResult<crate::MessageDelivery> {
                let conversation_id: uuid::Uuid =
                    sqlx::query_scalar("SELECT conversation_id FROM message_groups WHERE id = $1")
                        .bind(message_group)
                        .fetch_optional(&mut **tx)
                        .await?
                        .ok_or(crate::StoreError::NotFound)?;
                let rows: Vec<crate::queries::MessageRow> = sqlx::query_as(
                    "SELECT m.recipient_id, m.id, m.message_group_id, g.sender_id, m.content, m.inserted_at, m.updated_at \
                     FROM messages m JOIN message_groups g ON g.id = m.message_group_id \
                     WHERE m.message_group_id = $1",
                )
                .bind(message_group)
                .fetch_all(&mut **tx)
                .await?;
                let messages = rows
                    .into_iter()
                    .map(|(recipient, id, message_group, sender, content, inserted_at, updated_at)| {
                        (recipient, crate::StoredMessage { id, message_group, sender, content, inserted_at, updated_at })
                    })
                    .collect();
                Ok(crate::MessageDelivery { conversation_id, messages, fresh })
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
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT id, email, display_name FROM users WHERE id > $1 ORDER BY id{}",
                        crate::queries::limit(limit)
                    )))
                    // The nil UUID sorts before every real id on both backends.
                    .bind(after.unwrap_or(uuid::Uuid::nil()))
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
                    .execute(self.writer())
                    .await?;
                crate::queries::found(updated.rows_affected())?;
                Ok(())
            }

            async fn replace_password(
                &self,
                user_id: uuid::Uuid,
                password_hash: &str,
                private_keys: Option<&[(uuid::Uuid, Vec<u8>)]>,
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                if let Some(keys) = private_keys {
                    Self::replace_private_keys_in(&mut tx, user_id, keys, now).await?;
                }
                Self::set_password_in(&mut tx, user_id, password_hash, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_user(&self, user_id: uuid::Uuid) -> crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                // Message rows have no per-user index (every send would have to update it), so
                // the user's are found through the conversations they took part in.
                sqlx::query(
                    "DELETE FROM messages WHERE recipient_id = $1 AND message_group_id IN \
                     (SELECT g.id FROM conversation_participants p JOIN message_groups g ON g.conversation_id = p.conversation_id \
                      WHERE p.user_id = $1)",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM message_groups WHERE sender_id = $1 AND conversation_id IN \
                     (SELECT conversation_id FROM conversation_participants WHERE user_id = $1)",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                // Everything else references users with ON DELETE CASCADE.
                let deleted = sqlx::query("DELETE FROM users WHERE id = $1").bind(user_id).execute(&mut *tx).await?;
                crate::queries::found(deleted.rows_affected())?;
                tx.commit().await?;
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
                .fetch_optional(self.writer())
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
                if let Some(read) = self.inline_reads().and_then(|reads| reads.device(device_id)) {
                    return read;
                }
                Ok(sqlx::query_as(crate::queries::device_by_id()).bind(device_id).fetch_optional(&self.pool).await?)
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
                crate::queries::found(revoked.rows_affected())?;
                Self::void_one_time_tokens_of_device_in(&mut tx, device_id).await?;
                sqlx::query("DELETE FROM refresh_tokens WHERE device_id = $1")
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn revoke_all_devices(&self, user_id: uuid::Uuid, now: crate::Timestamp) -> crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                // Signing out everywhere voids the one-time credentials too: a device-link code
                // or configure link made before would otherwise outlive every session.
                Self::revoke_everything(&mut tx, user_id, now).await?;
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
                            Self::void_one_time_tokens_of_device_in(&mut tx, device_id).await?;
                            // The spent ones stay: a further replay is still seen as one.
                            sqlx::query("DELETE FROM refresh_tokens WHERE device_id = $1 AND spent_at IS NULL")
                                .bind(device_id)
                                .execute(&mut *tx)
                                .await?;
                            tx.commit().await?;
                            Ok(crate::RefreshOutcome::Reused { device_id })
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
                // Earlier unspent tokens of the user stop working: those of the new token's kind,
                // and for a configure link those of the other configure kind too.
                for replaced in token.kind.replaces() {
                    sqlx::query(
                        "DELETE FROM one_time_tokens WHERE user_id = $1 AND kind = $2 AND redeemed_at IS NULL",
                    )
                    .bind(token.user_id)
                    .bind(replaced.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO one_time_tokens (token_hash, user_id, device_id, kind, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
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
                crate::queries::check_redemption(redemption)?;
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
                    crate::Redemption::ChangeEmail { user_id, email, rekey } => {
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
                        // Whoever reads the old address's mail must not reach the moved account:
                        // a confirmation would confirm the new address, a reset take it over.
                        // Every other outstanding one-time token goes too (device links,
                        // configure links), as when the password changes.
                        Self::void_one_time_tokens_in(&mut tx, owner).await?;
                        if let Some(rekey) = rekey {
                            Self::replace_private_keys_in(&mut tx, owner, &rekey.private_keys, now).await?;
                            Self::set_password_in(&mut tx, owner, &rekey.password_hash, now).await?;
                        }
                    }
                    crate::Redemption::LinkDevice(session) => {
                        Self::insert_session(&mut tx, owner, session).await?;
                    }
                    crate::Redemption::StoreProviderKey { user_id, key } => {
                        if *user_id != owner {
                            return Err(crate::StoreError::NotFound);
                        }
                        sqlx::query(
                            "INSERT INTO provider_keys \
                             (id, user_id, provider, sealed, master_version, last_four, fingerprint, inserted_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(key.id)
                        .bind(key.owner.user_id())
                        .bind(&key.provider)
                        .bind(&key.sealed)
                        .bind(crate::queries::master_version_column(key.master_version)?)
                        .bind(&key.last_four)
                        .bind(&key.fingerprint)
                        .bind(key.inserted_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(crate::on_unique("provider_key"))?;
                    }
                }
                tx.commit().await?;
                Ok(owner)
            }

            async fn create_conversation(
                &self,
                conversation: &crate::NewConversation,
            ) -> crate::StoreResult<crate::Conversation> {
                let private_pair = crate::queries::check_new_conversation(conversation)?;
                let mut tx = self.begin_write().await?;
                let created: crate::Conversation = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO conversations (id, private, alias, private_pair, inserted_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING {}",
                    crate::queries::CONVERSATION_COLUMNS
                )))
                .bind(conversation.id)
                .bind(conversation.private)
                .bind(&conversation.alias)
                .bind(&private_pair)
                .bind(conversation.now)
                .fetch_one(&mut *tx)
                .await
                .map_err(crate::on_unique("private_conversation"))?;
                for member in &conversation.members {
                    sqlx::query(
                        "INSERT INTO conversation_members (conversation_id, user_id, joined_at) VALUES ($1, $2, $3)",
                    )
                    .bind(conversation.id)
                    .bind(member)
                    .bind(conversation.now)
                    .execute(&mut *tx)
                    .await
                    .map_err(crate::on_foreign_key)?;
                    Self::add_participant_in(&mut tx, conversation.id, *member).await?;
                }
                sqlx::query(
                    "INSERT INTO encryption_keys (conversation_id, user_id, public_key, private_key, inserted_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(conversation.id)
                .bind(conversation.creator)
                .bind(&conversation.creator_keys.public_key)
                .bind(&conversation.creator_keys.sealed_private_key)
                .bind(conversation.now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn conversation(&self, id: uuid::Uuid) -> crate::StoreResult<Option<crate::Conversation>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM conversations WHERE id = $1",
                    crate::queries::CONVERSATION_COLUMNS
                )))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn conversations_of(&self, user_id: uuid::Uuid) -> crate::StoreResult<Vec<crate::Conversation>> {
                Ok(sqlx::query_as(
                    "SELECT c.id, c.private, c.alias, c.inserted_at, c.updated_at, c.assistant_of IS NOT NULL AS assistant \
                     FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id \
                     WHERE m.user_id = $1 ORDER BY c.inserted_at, c.id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn conversation_activity(
                &self,
                user_id: uuid::Uuid,
            ) -> crate::StoreResult<Vec<crate::ConversationActivity>> {
                // Counted over the member's own copies: a message sent before they joined
                // has none, so it was never theirs to read.
                Ok(sqlx::query_as(
                    "SELECT c.id AS conversation_id, \
                       (SELECT COUNT(*) FROM message_groups g \
                          JOIN messages copy ON copy.message_group_id = g.id AND copy.recipient_id = $1 \
                         WHERE g.conversation_id = c.id AND g.sender_id <> $1 \
                           AND (m.read_at IS NULL OR g.inserted_at > m.read_at)) AS unread, \
                       (SELECT MAX(g.inserted_at) FROM message_groups g WHERE g.conversation_id = c.id) AS last_message_at \
                     FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id \
                     WHERE m.user_id = $1 ORDER BY c.inserted_at, c.id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn member_ids(&self, conversation_id: uuid::Uuid) -> crate::StoreResult<Vec<uuid::Uuid>> {
                Ok(sqlx::query_scalar(
                    "SELECT user_id FROM conversation_members WHERE conversation_id = $1 ORDER BY joined_at, user_id",
                )
                .bind(conversation_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn conversation_partners(&self, user_id: uuid::Uuid) -> crate::StoreResult<Vec<crate::UserSummary>> {
                let rows: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(
                    "SELECT DISTINCT u.id, u.email, u.display_name \
                     FROM conversation_members mine \
                     JOIN conversation_members theirs ON theirs.conversation_id = mine.conversation_id \
                     JOIN users u ON u.id = theirs.user_id \
                     WHERE mine.user_id = $1 AND theirs.user_id <> $1 ORDER BY u.id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, email, display_name)| crate::UserSummary { id, email, display_name })
                    .collect())
            }

            async fn private_conversation_between(
                &self,
                a: uuid::Uuid,
                b: uuid::Uuid,
            ) -> crate::StoreResult<Option<uuid::Uuid>> {
                Ok(sqlx::query_scalar("SELECT id FROM conversations WHERE private_pair = $1")
                    .bind(crate::queries::private_pair(a, b))
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn read_times(
                &self,
                conversation_id: uuid::Uuid,
            ) -> crate::StoreResult<Vec<(uuid::Uuid, Option<crate::Timestamp>)>> {
                Ok(sqlx::query_as(
                    "SELECT user_id, read_at FROM conversation_members WHERE conversation_id = $1 \
                     ORDER BY joined_at, user_id",
                )
                .bind(conversation_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn mark_read(
                &self,
                conversation_id: uuid::Uuid,
                user_id: uuid::Uuid,
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                let updated = sqlx::query(
                    "UPDATE conversation_members SET read_at = $3 WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(conversation_id)
                .bind(user_id)
                .bind(now)
                .execute(self.writer())
                .await?;
                crate::queries::found(updated.rows_affected())?;
                Ok(())
            }

            async fn set_alias(
                &self,
                conversation_id: uuid::Uuid,
                alias: Option<&str>,
                now: crate::Timestamp,
            ) -> crate::StoreResult<crate::Conversation> {
                let updated: Option<crate::Conversation> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE conversations SET alias = $2, updated_at = $3 WHERE id = $1 AND NOT private RETURNING {}",
                    crate::queries::CONVERSATION_COLUMNS
                )))
                .bind(conversation_id)
                .bind(alias)
                .bind(now)
                .fetch_optional(self.writer())
                .await?;
                if let Some(conversation) = updated {
                    return Ok(conversation);
                }
                // Whether a conversation can be private never changes, so this tells why.
                let private: Option<bool> = sqlx::query_scalar("SELECT private FROM conversations WHERE id = $1")
                    .bind(conversation_id)
                    .fetch_optional(&self.pool)
                    .await?;
                match private {
                    Some(true) => Err(crate::StoreError::Rule("a private conversation has no alias")),
                    _ => Err(crate::StoreError::NotFound),
                }
            }

            async fn add_members(
                &self,
                conversation_id: uuid::Uuid,
                users: &[uuid::Uuid],
                now: crate::Timestamp,
            ) -> crate::StoreResult<crate::Conversation> {
                let mut tx = self.begin_write().await?;
                match Self::lock_for_membership_change_in(&mut tx, conversation_id).await? {
                    None => return Err(crate::StoreError::NotFound),
                    Some(true) => return Err(crate::StoreError::Rule("a private conversation cannot get new members")),
                    Some(false) => {}
                }
                let mut added = 0;
                for user in users {
                    added += sqlx::query(
                        "INSERT INTO conversation_members (conversation_id, user_id, joined_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (conversation_id, user_id) DO NOTHING",
                    )
                    .bind(conversation_id)
                    .bind(user)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(crate::on_foreign_key)?
                    .rows_affected();
                    Self::add_participant_in(&mut tx, conversation_id, *user).await?;
                }
                if added > 0 {
                    sqlx::query("UPDATE conversations SET updated_at = $2 WHERE id = $1")
                        .bind(conversation_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                let conversation = Self::conversation_in(&mut tx, conversation_id).await?;
                tx.commit().await?;
                Ok(conversation)
            }

            async fn leave_conversation(&self, conversation_id: uuid::Uuid, user_id: uuid::Uuid) -> crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                match Self::lock_for_membership_change_in(&mut tx, conversation_id).await? {
                    None => return Err(crate::StoreError::NotFound),
                    Some(true) => return Err(crate::StoreError::Rule("a private conversation cannot be left")),
                    Some(false) => {}
                }
                // The member's keys go with the membership (ON DELETE CASCADE).
                let deleted = sqlx::query("DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2")
                    .bind(conversation_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                crate::queries::found(deleted.rows_affected())?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_encryption_keys(
                &self,
                conversation_id: uuid::Uuid,
                user_id: uuid::Uuid,
                keys: &crate::EncryptionKeys,
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                // Only members have a row to reference: anyone else breaks the foreign key.
                sqlx::query(
                    "INSERT INTO encryption_keys (conversation_id, user_id, public_key, private_key, inserted_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) \
                     ON CONFLICT (conversation_id, user_id) DO UPDATE \
                     SET public_key = excluded.public_key, private_key = excluded.private_key, updated_at = excluded.updated_at",
                )
                .bind(conversation_id)
                .bind(user_id)
                .bind(&keys.public_key)
                .bind(&keys.sealed_private_key)
                .bind(now)
                .execute(self.writer())
                .await
                .map_err(crate::on_foreign_key)?;
                Ok(())
            }

            async fn public_keys(&self, conversation_id: uuid::Uuid) -> crate::StoreResult<Vec<(uuid::Uuid, String)>> {
                Ok(sqlx::query_as(
                    "SELECT user_id, public_key FROM encryption_keys WHERE conversation_id = $1 ORDER BY user_id",
                )
                .bind(conversation_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn sealed_private_key(
                &self,
                conversation_id: uuid::Uuid,
                user_id: uuid::Uuid,
            ) -> crate::StoreResult<Option<Vec<u8>>> {
                Ok(sqlx::query_scalar(
                    "SELECT private_key FROM encryption_keys WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(conversation_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn sealed_private_keys_of(
                &self,
                user_id: uuid::Uuid,
            ) -> crate::StoreResult<Vec<(uuid::Uuid, Vec<u8>)>> {
                let mut keys: Vec<(uuid::Uuid, Vec<u8>)> =
                    sqlx::query_as("SELECT conversation_id, private_key FROM encryption_keys WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_all(&self.pool)
                        .await?;
                keys.sort_by_key(|(conversation_id, _)| *conversation_id);
                Ok(keys)
            }

            async fn replace_private_keys(
                &self,
                user_id: uuid::Uuid,
                keys: &[(uuid::Uuid, Vec<u8>)],
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::replace_private_keys_in(&mut tx, user_id, keys, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn send_message(&self, message: &crate::NewMessageGroup) -> crate::StoreResult<crate::MessageDelivery> {
                self.sends.submit(message.clone()).await.unwrap_or(Err(crate::StoreError::WriterStopped))
            }

            async fn edit_message(
                &self,
                message_group: uuid::Uuid,
                sender: uuid::Uuid,
                contents: &std::collections::BTreeMap<uuid::Uuid, String>,
                now: crate::Timestamp,
            ) -> crate::StoreResult<crate::MessageDelivery> {
                let mut tx = self.begin_write().await?;
                // The sender must still be a member of the conversation the group is in, whatever
                // channel the request came through: someone who left cannot rewrite the past.
                let (conversation_id, sent_at): (uuid::Uuid, crate::Timestamp) = sqlx::query_as(
                    "UPDATE message_groups SET updated_at = $3 WHERE id = $1 AND sender_id = $2 \
                     AND EXISTS (SELECT 1 FROM conversation_members m \
                                 WHERE m.conversation_id = message_groups.conversation_id AND m.user_id = $2) \
                     RETURNING conversation_id, inserted_at",
                )
                .bind(message_group)
                .bind(sender)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(crate::StoreError::NotFound)?;
                let members = Self::members_locked_in(&mut tx, conversation_id).await?;
                crate::queries::check_recipients(&members, contents)?;
                // Copies of people who have left since go; those who joined since get one,
                // dated when the message was sent.
                sqlx::query(
                    "DELETE FROM messages WHERE message_group_id = $1 AND recipient_id NOT IN \
                     (SELECT user_id FROM conversation_members WHERE conversation_id = $2)",
                )
                .bind(message_group)
                .bind(conversation_id)
                .execute(&mut *tx)
                .await?;
                for (recipient, content) in contents {
                    sqlx::query(
                        "INSERT INTO messages (id, message_group_id, recipient_id, content, inserted_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (message_group_id, recipient_id) DO UPDATE \
                         SET content = excluded.content, updated_at = excluded.updated_at",
                    )
                    .bind(uuid::Uuid::now_v7())
                    .bind(message_group)
                    .bind(recipient)
                    .bind(content)
                    .bind(sent_at)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                let delivery = Self::delivery_in(&mut tx, message_group, true).await?;
                tx.commit().await?;
                Ok(delivery)
            }

            async fn delete_message(&self, message_group: uuid::Uuid, sender: uuid::Uuid) -> crate::StoreResult<uuid::Uuid> {
                // The copies go with the group (ON DELETE CASCADE). As for an edit, the sender must
                // still be a member of the group's conversation.
                sqlx::query_scalar(
                    "DELETE FROM message_groups WHERE id = $1 AND sender_id = $2 \
                     AND EXISTS (SELECT 1 FROM conversation_members m \
                                 WHERE m.conversation_id = message_groups.conversation_id AND m.user_id = $2) \
                     RETURNING conversation_id",
                )
                    .bind(message_group)
                    .bind(sender)
                    .fetch_optional(self.writer())
                    .await?
                    .ok_or(crate::StoreError::NotFound)
            }

            async fn messages_page(
                &self,
                conversation_id: uuid::Uuid,
                recipient: uuid::Uuid,
                before: Option<uuid::Uuid>,
                limit: u32,
            ) -> crate::StoreResult<Vec<crate::StoredMessage>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT m.id, m.message_group_id AS message_group, g.sender_id AS sender, m.content, \
                     m.inserted_at, m.updated_at \
                     FROM message_groups g JOIN messages m ON m.message_group_id = g.id \
                     WHERE g.conversation_id = $1 AND m.recipient_id = $2 AND g.id < $3 \
                     ORDER BY g.id DESC{}",
                    crate::queries::limit(limit)
                )))
                .bind(conversation_id)
                .bind(recipient)
                // The max UUID sorts after every real id on both backends (bytewise).
                .bind(before.unwrap_or(uuid::Uuid::max()))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn sealed_private_keys(
                &self,
                after: Option<(uuid::Uuid, uuid::Uuid)>,
                limit: u32,
            ) -> crate::StoreResult<Vec<crate::SealedKeyRow>> {
                let (conversation_id, user_id) = after.unwrap_or_default();
                let rows: Vec<(uuid::Uuid, uuid::Uuid, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT conversation_id, user_id, private_key FROM encryption_keys \
                     WHERE $1 OR (conversation_id, user_id) > ($2, $3) \
                     ORDER BY conversation_id, user_id{}",
                    crate::queries::limit(limit)
                )))
                .bind(after.is_none())
                .bind(conversation_id)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(conversation_id, user_id, sealed_private_key)| crate::SealedKeyRow {
                        conversation_id,
                        user_id,
                        sealed_private_key,
                    })
                    .collect())
            }

            async fn replace_sealed_private_key(
                &self,
                conversation_id: uuid::Uuid,
                user_id: uuid::Uuid,
                old: &[u8],
                new: &[u8],
            ) -> crate::StoreResult<bool> {
                let replaced = sqlx::query(
                    "UPDATE encryption_keys SET private_key = $4 \
                     WHERE conversation_id = $1 AND user_id = $2 AND private_key = $3",
                )
                .bind(conversation_id)
                .bind(user_id)
                .bind(old)
                .bind(new)
                .execute(self.writer())
                .await?;
                Ok(replaced.rows_affected() == 1)
            }

            async fn take_allowance(
                &self,
                user_id: uuid::Uuid,
                day: &str,
                kind: crate::AllowanceKind,
                limit: u32,
            ) -> crate::StoreResult<Option<u32>> {
                let limit = i32::try_from(limit).unwrap_or(i32::MAX);
                if limit == 0 {
                    return Ok(None);
                }
                // The update happens only below the limit; when it does not, nothing is returned.
                let used: Option<i32> = sqlx::query_scalar(
                    "INSERT INTO assistant_usage (user_id, day, kind, used) VALUES ($1, $2, $3, 1) \
                     ON CONFLICT (user_id, day, kind) DO UPDATE SET used = assistant_usage.used + 1 \
                     WHERE assistant_usage.used < $4 \
                     RETURNING used",
                )
                .bind(user_id)
                .bind(day)
                .bind(kind.as_str())
                .bind(limit)
                .fetch_optional(self.writer())
                .await?;
                Ok(used.map(|used| u32::try_from(used).unwrap_or_default()))
            }

            async fn refund_allowance(
                &self,
                user_id: uuid::Uuid,
                day: &str,
                kind: crate::AllowanceKind,
            ) -> crate::StoreResult<()> {
                sqlx::query(
                    "UPDATE assistant_usage SET used = used - 1 \
                     WHERE user_id = $1 AND day = $2 AND kind = $3 AND used > 0",
                )
                .bind(user_id)
                .bind(day)
                .bind(kind.as_str())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn allowance_used(
                &self,
                user_id: uuid::Uuid,
                day: &str,
                kind: crate::AllowanceKind,
            ) -> crate::StoreResult<u32> {
                let used: Option<i32> =
                    sqlx::query_scalar("SELECT used FROM assistant_usage WHERE user_id = $1 AND day = $2 AND kind = $3")
                        .bind(user_id)
                        .bind(day)
                        .bind(kind.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(used.map_or(0, |used| u32::try_from(used).unwrap_or_default()))
            }

            async fn record_assistant_turn(&self, turn: &crate::AssistantTurn) -> crate::StoreResult<()> {
                self.turns.submit(turn.clone()).await.unwrap_or(Err(crate::StoreError::WriterStopped))
            }

            async fn assistant_conversation(
                &self,
                user_id: uuid::Uuid,
            ) -> crate::StoreResult<Option<crate::Conversation>> {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM conversations WHERE assistant_of = $1",
                    crate::queries::CONVERSATION_COLUMNS
                )))
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn create_assistant_conversation(
                &self,
                id: uuid::Uuid,
                user_id: uuid::Uuid,
                now: crate::Timestamp,
            ) -> crate::StoreResult<(crate::Conversation, bool)> {
                let mut tx = self.begin_write().await?;
                // A second (racing) creation finds the owner's unique index taken: nothing is
                // inserted and the existing conversation is returned.
                let created: Option<crate::Conversation> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO conversations (id, private, alias, assistant_of, inserted_at, updated_at) \
                     VALUES ($1, FALSE, NULL, $2, $3, $3) ON CONFLICT DO NOTHING RETURNING {}",
                    crate::queries::CONVERSATION_COLUMNS
                )))
                .bind(id)
                .bind(user_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(crate::on_foreign_key)?;
                let Some(created) = created else {
                    drop(tx);
                    let existing = self.assistant_conversation(user_id).await?;
                    return existing.map(|conversation| (conversation, false)).ok_or(crate::StoreError::NotFound);
                };
                sqlx::query("INSERT INTO conversation_members (conversation_id, user_id, joined_at) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                Self::add_participant_in(&mut tx, id, user_id).await?;
                tx.commit().await?;
                Ok((created, true))
            }

            async fn post_assistant_reply(
                &self,
                group_id: uuid::Uuid,
                conversation_id: uuid::Uuid,
                content: &str,
                now: crate::Timestamp,
            ) -> crate::StoreResult<crate::MessageDelivery> {
                let mut tx = self.begin_write().await?;
                let owner: Option<uuid::Uuid> = sqlx::query_scalar(
                    "SELECT assistant_of FROM conversations WHERE id = $1 AND assistant_of IS NOT NULL",
                )
                .bind(conversation_id)
                .fetch_optional(&mut *tx)
                .await?;
                let owner = owner.ok_or(crate::StoreError::NotFound)?;
                sqlx::query(
                    "INSERT INTO message_groups (id, conversation_id, sender_id, client_msg_id, inserted_at, updated_at) \
                     VALUES ($1, $2, $3, NULL, $4, $4)",
                )
                .bind(group_id)
                .bind(conversation_id)
                .bind(crate::ASSISTANT_SENDER)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let message_id = uuid::Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO messages (id, message_group_id, recipient_id, content, inserted_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(message_id)
                .bind(group_id)
                .bind(owner)
                .bind(content)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                let message = crate::StoredMessage {
                    id: message_id,
                    message_group: group_id,
                    sender: crate::ASSISTANT_SENDER,
                    content: content.to_owned(),
                    inserted_at: now,
                    updated_at: now,
                };
                Ok(crate::MessageDelivery {
                    conversation_id,
                    messages: std::collections::BTreeMap::from([(owner, message)]),
                    fresh: true,
                })
            }

            async fn store_assistant_image(&self, image: &crate::AssistantImage) -> crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO assistant_images (id, user_id, content_type, bytes, prompt, provider, inserted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(image.id)
                .bind(image.user_id)
                .bind(&image.content_type)
                .bind(&image.bytes)
                .bind(&image.prompt)
                .bind(&image.provider)
                .bind(image.inserted_at)
                .execute(self.writer())
                .await
                .map_err(crate::on_foreign_key)?;
                Ok(())
            }

            async fn assistant_image(
                &self,
                id: uuid::Uuid,
                user_id: uuid::Uuid,
            ) -> crate::StoreResult<Option<crate::AssistantImage>> {
                type Row = (uuid::Uuid, uuid::Uuid, String, Vec<u8>, String, String, crate::Timestamp);
                let row: Option<Row> = sqlx::query_as(
                    "SELECT id, user_id, content_type, bytes, prompt, provider, inserted_at \
                     FROM assistant_images WHERE id = $1 AND user_id = $2",
                )
                .bind(id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(id, user_id, content_type, bytes, prompt, provider, inserted_at)| {
                    crate::AssistantImage { id, user_id, content_type, bytes, prompt, provider, inserted_at }
                }))
            }

            async fn replace_knowledge(&self, entries: &[crate::KnowledgeEntry]) -> crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM knowledge_entries").execute(&mut *tx).await?;
                for entry in entries {
                    sqlx::query("INSERT INTO knowledge_entries (topic, question, answer) VALUES ($1, $2, $3)")
                        .bind(&entry.topic)
                        .bind(&entry.question)
                        .bind(&entry.answer)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn search_knowledge(
                &self,
                topic: &str,
                words: &[String],
                limit: u32,
            ) -> crate::StoreResult<Vec<crate::KnowledgeEntry>> {
                // Only letters and digits reach the search syntax: no operator can be injected.
                let words: Vec<String> = words
                    .iter()
                    .map(|word| word.chars().filter(|c| c.is_alphanumeric()).collect::<String>())
                    .filter(|word| !word.is_empty())
                    .collect();
                if words.is_empty() {
                    return Ok(Vec::new());
                }
                let rows: Vec<(String, String, String)> = self.search_knowledge_rows(topic, &words, limit).await?;
                Ok(rows.into_iter().map(|(topic, question, answer)| crate::KnowledgeEntry { topic, question, answer }).collect())
            }

            async fn assistant_turns(
                &self,
                user_id: uuid::Uuid,
                thread: &str,
                limit: u32,
            ) -> crate::StoreResult<Vec<crate::AssistantTurn>> {
                if let Some(read) = self.inline_reads().and_then(|reads| reads.assistant_turns(user_id, thread, limit)) {
                    return read;
                }
                type Row = (
                    uuid::Uuid,
                    uuid::Uuid,
                    String,
                    Option<String>,
                    String,
                    String,
                    Option<String>,
                    bool,
                    String,
                    crate::Timestamp,
                );
                let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(crate::queries::assistant_turns(limit)))
                .bind(user_id)
                .bind(thread)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, user_id, thread, topic, prompt, reply, provider, answered, attempts, inserted_at)| {
                        crate::AssistantTurn {
                            id,
                            user_id,
                            thread,
                            topic,
                            prompt,
                            reply,
                            provider,
                            answered,
                            attempts,
                            inserted_at,
                        }
                    })
                    .collect())
            }

            async fn provider_keys(
                &self,
                owner: crate::KeyOwner,
            ) -> crate::StoreResult<Vec<crate::StoredProviderKey>> {
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM provider_keys WHERE {} ORDER BY inserted_at, id",
                    crate::queries::PROVIDER_KEY_COLUMNS,
                    crate::queries::KEY_OWNER_IS_1
                )))
                .bind(owner.user_id())
                .fetch_all(&self.pool)
                .await?;
                crate::queries::provider_keys(rows)
            }

            async fn delete_provider_key(&self, owner: crate::KeyOwner, id: uuid::Uuid) -> crate::StoreResult<()> {
                let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM provider_keys WHERE {} AND id = $2",
                    crate::queries::KEY_OWNER_IS_1
                )))
                .bind(owner.user_id())
                .bind(id)
                .execute(self.writer())
                .await?;
                crate::queries::found(deleted.rows_affected())
            }

            async fn delete_provider_keys_of(&self, owner: crate::KeyOwner, provider: &str) -> crate::StoreResult<u64> {
                let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM provider_keys WHERE {} AND provider = $2",
                    crate::queries::KEY_OWNER_IS_1
                )))
                .bind(owner.user_id())
                .bind(provider)
                .execute(self.writer())
                .await?;
                Ok(deleted.rows_affected())
            }

            async fn record_key_outcomes(
                &self,
                outcomes: &[(uuid::Uuid, bool)],
                now: crate::Timestamp,
            ) -> crate::StoreResult<()> {
                if outcomes.is_empty() {
                    return Ok(());
                }
                // In id order, so that concurrent calls lock rows in the same order and cannot
                // deadlock (PostgreSQL); the sort is stable, so one key's outcomes keep theirs.
                let mut ordered: Vec<&(uuid::Uuid, bool)> = outcomes.iter().collect();
                ordered.sort_by_key(|(id, _)| *id);
                let mut tx = self.begin_write().await?;
                for (id, succeeded) in ordered {
                    let statement = if *succeeded {
                        sqlx::query("UPDATE provider_keys SET last_used_at = $2, failures = 0 WHERE id = $1")
                            .bind(id)
                            .bind(now)
                    } else {
                        sqlx::query("UPDATE provider_keys SET failures = failures + 1 WHERE id = $1").bind(id)
                    };
                    statement.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn all_provider_keys(
                &self,
                after: Option<uuid::Uuid>,
                limit: u32,
            ) -> crate::StoreResult<Vec<crate::StoredProviderKey>> {
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM provider_keys WHERE id > $1 ORDER BY id{}",
                    crate::queries::PROVIDER_KEY_COLUMNS,
                    crate::queries::limit(limit)
                )))
                // The nil UUID sorts before every real id on both backends.
                .bind(after.unwrap_or(uuid::Uuid::nil()))
                .fetch_all(&self.pool)
                .await?;
                crate::queries::provider_keys(rows)
            }

            async fn replace_sealed_provider_key(
                &self,
                id: uuid::Uuid,
                old: &[u8],
                new: &[u8],
                master_version: u32,
            ) -> crate::StoreResult<bool> {
                let replaced = sqlx::query(
                    "UPDATE provider_keys SET sealed = $3, master_version = $4 WHERE id = $1 AND sealed = $2",
                )
                .bind(id)
                .bind(old)
                .bind(new)
                .bind(crate::queries::master_version_column(master_version)?)
                .execute(self.writer())
                .await?;
                Ok(replaced.rows_affected() == 1)
            }

            async fn provider_key_versions(&self) -> crate::StoreResult<Vec<(u32, u64)>> {
                let rows: Vec<(i32, i64)> = sqlx::query_as(
                    "SELECT master_version, COUNT(*) FROM provider_keys GROUP BY master_version ORDER BY master_version",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(version, count)| match (u32::try_from(version), u64::try_from(count)) {
                        (Ok(version), Ok(count)) => Ok((version, count)),
                        _ => Err(crate::StoreError::Corrupt("provider_keys.master_version")),
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use impl_store;
