//! Administrators on Sqlite: [`AdminStore`] with the shared SQL of `admin.rs`.

use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::SqliteStore;
use crate::admin::{self, AccountRow, AuditChain, EntryRow, account, entry, next_entry};
use crate::{AdminAccount, AdminSession, AdminStore, AuditEntry, Invite, NewAuditEntry, StoreResult, Timestamp};

/// How long a dead challenge (or sign-in link) is kept before the next one clears it away.
const DEAD_CHALLENGES_KEPT_SECS: i64 = 24 * 3600;

#[async_trait]
impl AdminStore for SqliteStore {
    async fn create_admin_challenge(&self, challenge_hash: &[u8; 32], expires_at: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(admin::FORGET_OLD_CHALLENGES)
            .bind(Timestamp::now().plus_secs(-DEAD_CHALLENGES_KEPT_SECS))
            .execute(&mut *tx)
            .await?;
        sqlx::query(admin::CREATE_CHALLENGE).bind(&challenge_hash[..]).bind(expires_at).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn use_admin_challenge(&self, challenge_hash: &[u8; 32], now: Timestamp) -> StoreResult<bool> {
        let used = sqlx::query(admin::USE_CHALLENGE).bind(&challenge_hash[..]).bind(now).execute(self.writer()).await?;
        Ok(used.rows_affected() == 1)
    }

    async fn create_admin_link(
        &self,
        code_hash: &[u8; 32],
        fingerprint: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(admin::FORGET_OLD_LINKS)
            .bind(Timestamp::now().plus_secs(-DEAD_CHALLENGES_KEPT_SECS))
            .execute(&mut *tx)
            .await?;
        sqlx::query(admin::CREATE_LINK)
            .bind(&code_hash[..])
            .bind(fingerprint)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn use_admin_link(&self, code_hash: &[u8; 32], now: Timestamp) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(admin::USE_LINK).bind(&code_hash[..]).bind(now).fetch_optional(self.writer()).await?)
    }

    async fn create_admin_session(&self, session: &AdminSession) -> StoreResult<()> {
        sqlx::query(admin::CREATE_SESSION)
            .bind(&session.token_hash[..])
            .bind(&session.fingerprint)
            .bind(session.created_at)
            .bind(session.expires_at)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn admin_session(&self, token_hash: &[u8; 32], now: Timestamp) -> StoreResult<Option<AdminSession>> {
        let row: Option<(String, Timestamp, Timestamp)> =
            sqlx::query_as(admin::SESSION).bind(&token_hash[..]).bind(now).fetch_optional(&self.pool).await?;
        Ok(row.map(|(fingerprint, created_at, expires_at)| AdminSession {
            token_hash: *token_hash,
            fingerprint,
            created_at,
            expires_at,
        }))
    }

    async fn append_audit_entry(&self, new: NewAuditEntry, chain: AuditChain<'_>) -> StoreResult<AuditEntry> {
        let mut tx = self.begin_write().await?;
        // BEGIN IMMEDIATE: appends are serialized, each reading the entry it chains from.
        let last: Option<(i64, Vec<u8>)> = sqlx::query_as(admin::LAST_ENTRY).fetch_optional(&mut *tx).await?;
        let next = next_entry(last, new, chain);
        sqlx::query(admin::APPEND_ENTRY)
            .bind(next.seq)
            .bind(next.entry.at)
            .bind(&next.entry.fingerprint)
            .bind(&next.entry.action)
            .bind(&next.entry.target)
            .bind(&next.entry.reason)
            .bind(&next.entry.outcome)
            .bind(&next.prev_hash)
            .bind(&next.hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(next)
    }

    async fn audit_entries_before(&self, before: Option<i64>, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<EntryRow> = sqlx::query_as(AssertSqlSafe(admin::entries_before(limit)))
            .bind(before.unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(entry).collect())
    }

    async fn audit_entries_after(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<EntryRow> =
            sqlx::query_as(AssertSqlSafe(admin::entries_after(limit))).bind(after).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(entry).collect())
    }

    async fn admin_accounts(
        &self,
        search: Option<&str>,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<AdminAccount>> {
        let rows: Vec<AccountRow> = sqlx::query_as(AssertSqlSafe(admin::accounts_page(limit)))
            .bind(after.unwrap_or(Uuid::nil()))
            .bind(admin::contains_pattern(search))
            .fetch_all(&self.pool)
            .await?;
        let mut accounts = Vec::with_capacity(rows.len());
        for row in rows {
            let roles = self.account_roles(row.0).await?;
            accounts.push(account(row, roles));
        }
        Ok(accounts)
    }

    async fn disable_account(&self, user_id: Uuid, reason: &str, at: Timestamp) -> StoreResult<bool> {
        let done =
            sqlx::query(admin::DISABLE_ACCOUNT).bind(user_id).bind(at).bind(reason).execute(self.writer()).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn enable_account(&self, user_id: Uuid) -> StoreResult<()> {
        sqlx::query(admin::ENABLE_ACCOUNT).bind(user_id).execute(self.writer()).await?;
        Ok(())
    }

    async fn account_disabled(&self, user_id: Uuid) -> StoreResult<bool> {
        let (count,): (i64,) = sqlx::query_as(admin::ACCOUNT_DISABLED).bind(user_id).fetch_one(&self.pool).await?;
        Ok(count > 0)
    }

    async fn set_account_role(&self, user_id: Uuid, role: &str, granted: bool, at: Timestamp) -> StoreResult<()> {
        if granted {
            sqlx::query(admin::GRANT_ROLE).bind(user_id).bind(role).bind(at).execute(self.writer()).await?;
        } else {
            sqlx::query(admin::REVOKE_ROLE).bind(user_id).bind(role).execute(self.writer()).await?;
        }
        Ok(())
    }

    async fn account_roles(&self, user_id: Uuid) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(admin::ROLES).bind(user_id).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(role,)| role).collect())
    }

    async fn create_invite(&self, invite: &Invite) -> StoreResult<()> {
        sqlx::query(admin::CREATE_INVITE)
            .bind(&invite.code_hash[..])
            .bind(invite.uses)
            .bind(invite.expires_at)
            .bind(invite.created_at)
            .bind(&invite.created_by)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn use_invite(&self, code_hash: &[u8; 32], now: Timestamp) -> StoreResult<bool> {
        let used = sqlx::query(admin::USE_INVITE).bind(&code_hash[..]).bind(now).execute(self.writer()).await?;
        Ok(used.rows_affected() == 1)
    }

    async fn return_invite_use(&self, code_hash: &[u8; 32]) -> StoreResult<()> {
        sqlx::query(admin::RETURN_INVITE_USE).bind(&code_hash[..]).execute(self.writer()).await?;
        Ok(())
    }
}
