//! Provider keys on SQLite: [`ProviderKeyStore`] with the shared SQL of `provider_keys.rs`.

use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::SqliteStore;
use crate::provider_keys::{self, in_key_order, keys, master_version_column, versions};
use crate::sql::found;
use crate::{KeyOwner, ProviderKeyStore, StoreResult, StoredProviderKey, Timestamp};

#[async_trait]
impl ProviderKeyStore for SqliteStore {
    async fn provider_keys(&self, owner: KeyOwner) -> StoreResult<Vec<StoredProviderKey>> {
        keys(sqlx::query_as(provider_keys::KEYS_OF_OWNER).bind(owner.user_id()).fetch_all(&self.pool).await?)
    }

    async fn delete_provider_key(&self, owner: KeyOwner, id: Uuid) -> StoreResult<()> {
        let deleted = sqlx::query(provider_keys::DELETE_KEY_OF_OWNER)
            .bind(owner.user_id())
            .bind(id)
            .execute(self.writer())
            .await?;
        found(deleted.rows_affected())
    }

    async fn delete_provider_keys_of(&self, owner: KeyOwner, provider: &str) -> StoreResult<u64> {
        let deleted = sqlx::query(provider_keys::DELETE_KEYS_OF_OWNER_FOR_PROVIDER)
            .bind(owner.user_id())
            .bind(provider)
            .execute(self.writer())
            .await?;
        Ok(deleted.rows_affected())
    }

    async fn record_key_outcomes(&self, outcomes: &[(Uuid, bool)], now: Timestamp) -> StoreResult<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let ordered = in_key_order(outcomes);
        let mut tx = self.begin_write().await?;
        for (id, succeeded) in ordered {
            let statement = if *succeeded {
                sqlx::query(provider_keys::KEY_SUCCEEDED).bind(id).bind(now)
            } else {
                sqlx::query(provider_keys::KEY_FAILED).bind(id)
            };
            statement.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn all_provider_keys(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<StoredProviderKey>> {
        keys(
            sqlx::query_as(AssertSqlSafe(provider_keys::keys_after(limit)))
                .bind(after.unwrap_or(Uuid::nil()))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn replace_sealed_provider_key(
        &self,
        id: Uuid,
        old: &[u8],
        new: &[u8],
        master_version: u32,
    ) -> StoreResult<bool> {
        let replaced = sqlx::query(provider_keys::SWAP_SEALED_KEY)
            .bind(id)
            .bind(old)
            .bind(new)
            .bind(master_version_column(master_version)?)
            .execute(self.writer())
            .await?;
        Ok(replaced.rows_affected() == 1)
    }

    async fn provider_key_versions(&self) -> StoreResult<Vec<(u32, u64)>> {
        versions(sqlx::query_as(provider_keys::KEYS_PER_VERSION).fetch_all(&self.pool).await?)
    }
}
