//! Accounts on PostgreSQL: [`AccountStore`] with the shared SQL of `accounts.rs`.

use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::PostgresStore;
use crate::accounts::{self, ProfileRow, recents_json};
use crate::sql::{found, on_unique};
use crate::{
    AccountStore, DirectoryEntry, DirectoryPage, Identity, NewAccount, Profile, ProfileUpdate, StoreError, StoreResult,
    Timestamp, User,
};

#[async_trait]
impl AccountStore for PostgresStore {
    async fn create_account(&self, account: &NewAccount) -> StoreResult<()> {
        let user = &account.user;
        let mut tx = self.begin_write().await?;
        sqlx::query(accounts::INSERT_USER)
            .bind(user.id)
            .bind(&user.email)
            .bind(&user.display_name)
            .bind(&user.password_hash)
            .bind(user.confirmed_at)
            .bind(user.inserted_at)
            .bind(user.updated_at)
            .bind(accounts::display_name_key(&user.display_name))
            .execute(&mut *tx)
            .await
            .map_err(on_unique("email"))?;
        let profile = Profile::default();
        sqlx::query(accounts::INSERT_PROFILE)
            .bind(user.id)
            .bind(profile.hidden)
            .bind(profile.theme.as_str())
            .bind(profile.magnification)
            .bind(recents_json(&profile.recents))
            .execute(&mut *tx)
            .await?;
        super::sessions::insert_session(&mut tx, user.id, &account.session).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        Ok(sqlx::query_as(accounts::USER_BY_ID).bind(id).fetch_optional(&self.pool).await?)
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        Ok(sqlx::query_as(accounts::USER_BY_EMAIL).bind(email).fetch_optional(&self.pool).await?)
    }

    async fn directory(&self, page: &DirectoryPage<'_>) -> StoreResult<Vec<DirectoryEntry>> {
        let search = page.search.map(accounts::display_name_key);
        let rows = sqlx::query_as(AssertSqlSafe(accounts::directory(page.limit)))
            .bind(page.viewer)
            .bind(page.after.unwrap_or(Uuid::nil()))
            .bind(&search)
            .bind(search.as_deref().map(accounts::contains_pattern))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(accounts::directory_entry).collect())
    }

    async fn set_display_name(&self, user_id: Uuid, display_name: &str, now: Timestamp) -> StoreResult<()> {
        let updated = sqlx::query(accounts::SET_DISPLAY_NAME)
            .bind(user_id)
            .bind(display_name)
            .bind(now)
            .bind(accounts::display_name_key(display_name))
            .execute(self.writer())
            .await?;
        found(updated.rows_affected())
    }

    async fn replace_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        private_keys: Option<&[(Uuid, Vec<u8>)]>,
        identity_private_key: Option<&[u8]>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        match private_keys {
            Some(keys) => {
                super::conversations::replace_private_keys_in(&mut tx, user_id, keys, now).await?;
                super::sessions::rewrap_identity_in(&mut tx, user_id, identity_private_key).await?;
            }
            None if identity_private_key.is_some() => return Err(StoreError::Rule(accounts::IDENTITY_KEY_RULE)),
            None => {}
        }
        super::sessions::set_password_in(&mut tx, user_id, password_hash, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn identity(&self, user_id: Uuid) -> StoreResult<Option<Identity>> {
        let columns: Option<(Option<String>, Option<Vec<u8>>)> =
            sqlx::query_as(accounts::IDENTITY).bind(user_id).fetch_optional(&self.pool).await?;
        columns.map_or(Ok(None), accounts::identity)
    }

    async fn set_identity(&self, user_id: Uuid, identity: &Identity, replace: bool, now: Timestamp) -> StoreResult<()> {
        let statement = if replace { accounts::SET_IDENTITY } else { accounts::SET_FIRST_IDENTITY };
        let updated = sqlx::query(statement)
            .bind(user_id)
            .bind(&identity.public_key)
            .bind(&identity.sealed_private_key)
            .bind(now)
            .execute(self.writer())
            .await?;
        if updated.rows_affected() == 1 {
            return Ok(());
        }
        // Nothing changed: the user has an identity already, or there is no such user.
        let has: Option<bool> =
            sqlx::query_scalar(accounts::HAS_IDENTITY).bind(user_id).fetch_optional(self.writer()).await?;
        match has {
            Some(_) => Err(StoreError::Conflict("identity")),
            None => Err(StoreError::NotFound),
        }
    }

    async fn sealed_identity_private_keys(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<(Uuid, Vec<u8>)>> {
        Ok(sqlx::query_as(AssertSqlSafe(accounts::sealed_identity_private_keys_after(limit)))
            .bind(after.unwrap_or(Uuid::nil()))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn replace_sealed_identity_private_key(&self, user_id: Uuid, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        let swapped = sqlx::query(accounts::SWAP_SEALED_IDENTITY_PRIVATE_KEY)
            .bind(user_id)
            .bind(old)
            .bind(new)
            .execute(self.writer())
            .await?;
        Ok(swapped.rows_affected() == 1)
    }

    async fn delete_user(&self, user_id: Uuid) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(accounts::DELETE_USERS_MESSAGES).bind(user_id).execute(&mut *tx).await?;
        sqlx::query(accounts::DELETE_USERS_MESSAGE_GROUPS).bind(user_id).execute(&mut *tx).await?;
        let deleted = sqlx::query(accounts::DELETE_USER).bind(user_id).execute(&mut *tx).await?;
        found(deleted.rows_affected())?;
        tx.commit().await?;
        Ok(())
    }

    async fn profile(&self, user_id: Uuid) -> StoreResult<Profile> {
        let row: Option<ProfileRow> =
            sqlx::query_as(accounts::PROFILE).bind(user_id).fetch_optional(&self.pool).await?;
        row.ok_or(crate::StoreError::NotFound)?.into_profile()
    }

    async fn update_profile(&self, user_id: Uuid, update: &ProfileUpdate) -> StoreResult<Profile> {
        let row: Option<ProfileRow> = sqlx::query_as(accounts::UPDATE_PROFILE)
            .bind(user_id)
            .bind(update.hidden)
            .bind(update.theme.map(crate::Theme::as_str))
            .bind(update.magnification)
            .bind(update.recents.as_deref().map(recents_json))
            .fetch_optional(self.writer())
            .await?;
        row.ok_or(crate::StoreError::NotFound)?.into_profile()
    }
}
