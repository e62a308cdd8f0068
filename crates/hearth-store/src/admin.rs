//! Administrators (issue 25): the challenges they sign, their sessions, and the audit log.
//!
//! [`AdminStore`] is the area's part of the [`Store`](crate::Store) contract; the SQL below is
//! what both backends run for it (`sqlite/admin.rs`, `postgres/admin.rs`). Challenges and
//! session tokens are kept as SHA-256 hashes only. The audit log is append-only: this contract
//! has no way to change or delete an entry. Its hash chain is computed by the caller (the
//! server's domain, which also verifies it) through the function handed to
//! [`AdminStore::append_audit_entry`], inside the transaction that reads the previous entry.

use async_trait::async_trait;

use uuid::Uuid;

use crate::{StoreResult, Timestamp};

/// How the hash of a new audit entry is made from the previous entry's hash (empty for the
/// first entry) and the entry itself (its `seq` and `prev_hash` filled in, `hash` empty).
pub type AuditChain<'a> = &'a (dyn Fn(&AuditEntry) -> Vec<u8> + Send + Sync);

/// Challenges, admin sessions and the audit log.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Keeps a challenge (the SHA-256 of its text) until `expires_at`.
    async fn create_admin_challenge(&self, challenge_hash: &[u8; 32], expires_at: Timestamp) -> StoreResult<()>;

    /// Marks the challenge used if it exists, is unused and `expires_at > now`; false
    /// otherwise (unknown, used already, or expired). Of concurrent calls, one wins.
    async fn use_admin_challenge(&self, challenge_hash: &[u8; 32], now: Timestamp) -> StoreResult<bool>;

    /// Keeps a one-time sign-in link's code (the SHA-256 of it) for the administrator whose
    /// key has `fingerprint`, until `expires_at`.
    async fn create_admin_link(
        &self,
        code_hash: &[u8; 32],
        fingerprint: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()>;

    /// Marks the link used if it exists, is unused and `expires_at > now`, and returns the
    /// fingerprint it was made for; `None` otherwise (unknown, used already, or expired). Of
    /// concurrent calls, one wins.
    async fn use_admin_link(&self, code_hash: &[u8; 32], now: Timestamp) -> StoreResult<Option<String>>;

    /// Keeps an admin session.
    async fn create_admin_session(&self, session: &AdminSession) -> StoreResult<()>;

    /// The session whose token hashes to `token_hash`, if `expires_at > now`.
    async fn admin_session(&self, token_hash: &[u8; 32], now: Timestamp) -> StoreResult<Option<AdminSession>>;

    /// Appends `entry` as the newest entry of the audit log, in one transaction with reading
    /// the previous one: `seq` is one more than the previous entry's (1 for the first),
    /// `prev_hash` is its hash (empty for the first) and `hash` is what `chain` makes of the
    /// entry so filled in. Returns the entry as stored.
    async fn append_audit_entry(&self, entry: NewAuditEntry, chain: AuditChain<'_>) -> StoreResult<AuditEntry>;

    /// The newest entries with `seq < before` (all when `None`), newest first, at most `limit`.
    async fn audit_entries_before(&self, before: Option<i64>, limit: u32) -> StoreResult<Vec<AuditEntry>>;

    /// The entries with `seq > after`, oldest first, at most `limit` (to walk the chain).
    async fn audit_entries_after(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditEntry>>;

    /// Accounts as administrators list them, by id after `after`, at most `limit`: all, or
    /// those whose email or display name contains `search` (case-insensitively).
    async fn admin_accounts(
        &self,
        search: Option<&str>,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<AdminAccount>>;

    /// Marks the account disabled (again, with this reason, if it was); false when there is no
    /// such account. Revoking its sessions is [`AccountStore::revoke_all_devices`](crate::AccountStore).
    async fn disable_account(&self, user_id: Uuid, reason: &str, at: Timestamp) -> StoreResult<bool>;

    /// Lifts the account's disabling, if any.
    async fn enable_account(&self, user_id: Uuid) -> StoreResult<()>;

    /// Whether the account is disabled.
    async fn account_disabled(&self, user_id: Uuid) -> StoreResult<bool>;

    /// Grants (`granted`) or takes back `role` (`analyst` or `operator`); granting one held
    /// already, or taking back one not held, changes nothing.
    async fn set_account_role(&self, user_id: Uuid, role: &str, granted: bool, at: Timestamp) -> StoreResult<()>;

    /// The roles the account holds, sorted.
    async fn account_roles(&self, user_id: Uuid) -> StoreResult<Vec<String>>;

    /// Keeps an invite code (the SHA-256 of it) good for `uses` sign-ups until `expires_at`.
    async fn create_invite(&self, invite: &Invite) -> StoreResult<()>;

    /// Spends one use of the invite if it has one left and `expires_at > now`; false otherwise
    /// (unknown, used up, expired). Of concurrent calls, only as many win as there were uses.
    async fn use_invite(&self, code_hash: &[u8; 32], now: Timestamp) -> StoreResult<bool>;

    /// Gives back a use spent by [`use_invite`](Self::use_invite) whose sign-up then failed.
    async fn return_invite_use(&self, code_hash: &[u8; 32]) -> StoreResult<()>;
}

/// An invite code as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// Sign-ups it is good for.
    pub uses: i32,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was made.
    pub created_at: Timestamp,
    /// The fingerprint of the administrator's key that made it.
    pub created_by: String,
}

/// The role that may run the analysis sandbox (a value of `account_roles.role`).
pub const ROLE_ANALYST: &str = "analyst";
/// The role that may add keys to the free tier's pool (a value of `account_roles.role`).
pub const ROLE_OPERATOR: &str = "operator";

/// An account as administrators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminAccount {
    /// The user's id.
    pub user_id: Uuid,
    /// Their address.
    pub email: String,
    /// Their display name.
    pub display_name: String,
    /// When the account was made.
    pub created_at: Timestamp,
    /// The latest any of its devices was seen, if it has any left.
    pub last_seen_at: Option<Timestamp>,
    /// How many device sessions are live (not revoked).
    pub devices: i64,
    /// When it was disabled and why, if it is.
    pub disabled: Option<(Timestamp, String)>,
    /// The roles it holds, sorted.
    pub roles: Vec<String>,
}

/// An admin session: who signed in (their key's fingerprint) and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    /// SHA-256 of the admin token.
    pub token_hash: [u8; 32],
    /// The SSH key's fingerprint, `SHA256:…`.
    pub fingerprint: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// What an audit entry records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When it happened.
    pub at: Timestamp,
    /// The acting key's fingerprint; `None` when no listed key acted (a refused sign-in).
    pub fingerprint: Option<String>,
    /// What was done, e.g. `admin.login`.
    pub action: String,
    /// What it was done to, if anything.
    pub target: Option<String>,
    /// The reason given, or why it was refused.
    pub reason: Option<String>,
    /// `ok` or `refused`.
    pub outcome: String,
}

/// An entry of the audit log as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its place in the chain, from 1.
    pub seq: i64,
    /// What it records.
    pub entry: NewAuditEntry,
    /// The previous entry's hash (empty for the first).
    pub prev_hash: Vec<u8>,
    /// This entry's hash.
    pub hash: Vec<u8>,
}

pub(crate) const CREATE_CHALLENGE: &str = "INSERT INTO admin_challenges (challenge_hash, expires_at) VALUES ($1, $2)";

pub(crate) const USE_CHALLENGE: &str = "UPDATE admin_challenges SET used_at = $2 \
     WHERE challenge_hash = $1 AND used_at IS NULL AND expires_at > $2";

/// Challenges dead for a day are of no more use (kept that long only to tell "used" in logs).
pub(crate) const FORGET_OLD_CHALLENGES: &str = "DELETE FROM admin_challenges WHERE expires_at < $1";

pub(crate) const CREATE_LINK: &str = "INSERT INTO admin_links (code_hash, fingerprint, expires_at) VALUES ($1, $2, $3)";

pub(crate) const USE_LINK: &str = "UPDATE admin_links SET used_at = $2 \
     WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING fingerprint";

/// Links dead for a day are of no more use.
pub(crate) const FORGET_OLD_LINKS: &str = "DELETE FROM admin_links WHERE expires_at < $1";

pub(crate) const CREATE_SESSION: &str =
    "INSERT INTO admin_sessions (token_hash, fingerprint, created_at, expires_at) VALUES ($1, $2, $3, $4)";

pub(crate) const SESSION: &str =
    "SELECT fingerprint, created_at, expires_at FROM admin_sessions WHERE token_hash = $1 AND expires_at > $2";

pub(crate) const LAST_ENTRY: &str = "SELECT seq, hash FROM admin_audit ORDER BY seq DESC LIMIT 1";

pub(crate) const APPEND_ENTRY: &str = "INSERT INTO admin_audit \
     (seq, at, fingerprint, action, target, reason, outcome, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

const ENTRY_COLUMNS: &str = "SELECT seq, at, fingerprint, action, target, reason, outcome, prev_hash, hash \
     FROM admin_audit";

pub(crate) fn entries_before(limit: u32) -> String {
    format!("{ENTRY_COLUMNS} WHERE seq < $1 ORDER BY seq DESC{}", crate::sql::limit(limit))
}

pub(crate) fn entries_after(limit: u32) -> String {
    format!("{ENTRY_COLUMNS} WHERE seq > $1 ORDER BY seq{}", crate::sql::limit(limit))
}

/// A row of `admin_audit` as selected by [`entries_before`] and [`entries_after`].
pub(crate) type EntryRow =
    (i64, Timestamp, Option<String>, String, Option<String>, Option<String>, String, Vec<u8>, Vec<u8>);

pub(crate) fn entry(row: EntryRow) -> AuditEntry {
    let (seq, at, fingerprint, action, target, reason, outcome, prev_hash, hash) = row;
    AuditEntry { seq, entry: NewAuditEntry { at, fingerprint, action, target, reason, outcome }, prev_hash, hash }
}

/// The entry that follows `last` (`(seq, hash)` of the newest, if any), hashed by `chain`.
pub(crate) fn next_entry(last: Option<(i64, Vec<u8>)>, entry: NewAuditEntry, chain: AuditChain<'_>) -> AuditEntry {
    let (seq, prev_hash) = last.map_or((1, Vec::new()), |(seq, hash)| (seq + 1, hash));
    let mut next = AuditEntry { seq, entry, prev_hash, hash: Vec::new() };
    next.hash = chain(&next);
    next
}

/// `$1`: the id the page starts after (the nil id for the first); `$2`: a LIKE pattern.
pub(crate) fn accounts_page(limit: u32) -> String {
    format!(
        "SELECT u.id, u.email, u.display_name, u.inserted_at, \
         (SELECT MAX(d.last_seen_at) FROM devices d WHERE d.user_id = u.id), \
         (SELECT COUNT(*) FROM devices d WHERE d.user_id = u.id AND d.revoked_at IS NULL), \
         x.disabled_at, x.reason \
         FROM users u LEFT JOIN account_disabled x ON x.user_id = u.id \
         WHERE u.id > $1 AND (lower(u.email) LIKE $2 ESCAPE '\\' OR lower(u.display_name) LIKE $2 ESCAPE '\\') \
         ORDER BY u.id{}",
        crate::sql::limit(limit)
    )
}

/// A row of [`accounts_page`].
pub(crate) type AccountRow =
    (Uuid, String, String, Timestamp, Option<Timestamp>, i64, Option<Timestamp>, Option<String>);

/// The LIKE pattern that finds `search` anywhere (its `%`, `_` and `\` taken literally).
pub(crate) fn contains_pattern(search: Option<&str>) -> String {
    let search = search.unwrap_or_default().to_lowercase();
    let escaped = search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

fn account(row: AccountRow, roles: Vec<String>) -> AdminAccount {
    let (user_id, email, display_name, created_at, last_seen_at, devices, disabled_at, reason) = row;
    AdminAccount {
        user_id,
        email,
        display_name,
        created_at,
        last_seen_at,
        devices,
        disabled: disabled_at.zip(reason),
        roles,
    }
}

pub(crate) const DISABLE_ACCOUNT: &str = "INSERT INTO account_disabled (user_id, disabled_at, reason) \
     SELECT id, $2, $3 FROM users WHERE id = $1 \
     ON CONFLICT (user_id) DO UPDATE SET disabled_at = excluded.disabled_at, reason = excluded.reason";

pub(crate) const ENABLE_ACCOUNT: &str = "DELETE FROM account_disabled WHERE user_id = $1";

pub(crate) const ACCOUNT_DISABLED: &str = "SELECT COUNT(*) FROM account_disabled WHERE user_id = $1";

pub(crate) const GRANT_ROLE: &str = "INSERT INTO account_roles (user_id, role, granted_at) VALUES ($1, $2, $3) \
     ON CONFLICT (user_id, role) DO NOTHING";

pub(crate) const REVOKE_ROLE: &str = "DELETE FROM account_roles WHERE user_id = $1 AND role = $2";

pub(crate) const ROLES: &str = "SELECT role FROM account_roles WHERE user_id = $1 ORDER BY role";

/// The roles of every account whose id is from `$1` to `$2`: a page of [`accounts_page`] is
/// such a range, so its roles take one query, not one per account.
pub(crate) const ROLES_IN_RANGE: &str =
    "SELECT user_id, role FROM account_roles WHERE user_id >= $1 AND user_id <= $2 ORDER BY user_id, role";

/// The accounts of a page, each with its roles from `roles` (rows of [`ROLES_IN_RANGE`]).
pub(crate) fn accounts(rows: Vec<AccountRow>, roles: Vec<(Uuid, String)>) -> Vec<AdminAccount> {
    let mut by_account: std::collections::HashMap<Uuid, Vec<String>> = std::collections::HashMap::new();
    for (user_id, role) in roles {
        by_account.entry(user_id).or_default().push(role);
    }
    rows.into_iter()
        .map(|row| {
            let roles = by_account.remove(&row.0).unwrap_or_default();
            account(row, roles)
        })
        .collect()
}

pub(crate) const CREATE_INVITE: &str =
    "INSERT INTO invites (code_hash, uses_left, expires_at, created_at, created_by) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const USE_INVITE: &str =
    "UPDATE invites SET uses_left = uses_left - 1 WHERE code_hash = $1 AND uses_left > 0 AND expires_at > $2";

pub(crate) const RETURN_INVITE_USE: &str = "UPDATE invites SET uses_left = uses_left + 1 WHERE code_hash = $1";

/// How long a dead challenge (or sign-in link) is kept before the next one clears it away.
pub(crate) const DEAD_CHALLENGES_KEPT_SECS: i64 = 24 * 3600;

/// Implements [`AdminStore`] for a backend whose struct has a read `pool`, `writer()` and
/// `begin_write()`, written once for both. `$serialize_appends` (an `Option<&str>`) is run first
/// in an audit append's transaction to serialize appends where that transaction does not already
/// (PostgreSQL's table lock; `None` on SQLite, whose write transactions are exclusive).
macro_rules! admin_store_impl {
    ($store:ty, $serialize_appends:expr) => {
        #[async_trait::async_trait]
        impl $crate::AdminStore for $store {
            async fn create_admin_challenge(
                &self,
                challenge_hash: &[u8; 32],
                expires_at: $crate::Timestamp,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query($crate::admin::FORGET_OLD_CHALLENGES)
                    .bind($crate::Timestamp::now().plus_secs(-$crate::admin::DEAD_CHALLENGES_KEPT_SECS))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($crate::admin::CREATE_CHALLENGE)
                    .bind(&challenge_hash[..])
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn use_admin_challenge(
                &self,
                challenge_hash: &[u8; 32],
                now: $crate::Timestamp,
            ) -> $crate::StoreResult<bool> {
                let used = sqlx::query($crate::admin::USE_CHALLENGE)
                    .bind(&challenge_hash[..])
                    .bind(now)
                    .execute(self.writer())
                    .await?;
                Ok(used.rows_affected() == 1)
            }

            async fn create_admin_link(
                &self,
                code_hash: &[u8; 32],
                fingerprint: &str,
                expires_at: $crate::Timestamp,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query($crate::admin::FORGET_OLD_LINKS)
                    .bind($crate::Timestamp::now().plus_secs(-$crate::admin::DEAD_CHALLENGES_KEPT_SECS))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($crate::admin::CREATE_LINK)
                    .bind(&code_hash[..])
                    .bind(fingerprint)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn use_admin_link(
                &self,
                code_hash: &[u8; 32],
                now: $crate::Timestamp,
            ) -> $crate::StoreResult<Option<String>> {
                Ok(sqlx::query_scalar($crate::admin::USE_LINK)
                    .bind(&code_hash[..])
                    .bind(now)
                    .fetch_optional(self.writer())
                    .await?)
            }

            async fn create_admin_session(&self, session: &$crate::AdminSession) -> $crate::StoreResult<()> {
                sqlx::query($crate::admin::CREATE_SESSION)
                    .bind(&session.token_hash[..])
                    .bind(&session.fingerprint)
                    .bind(session.created_at)
                    .bind(session.expires_at)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn admin_session(
                &self,
                token_hash: &[u8; 32],
                now: $crate::Timestamp,
            ) -> $crate::StoreResult<Option<$crate::AdminSession>> {
                let row: Option<(String, $crate::Timestamp, $crate::Timestamp)> =
                    sqlx::query_as($crate::admin::SESSION)
                        .bind(&token_hash[..])
                        .bind(now)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(fingerprint, created_at, expires_at)| $crate::AdminSession {
                    token_hash: *token_hash,
                    fingerprint,
                    created_at,
                    expires_at,
                }))
            }

            async fn append_audit_entry(
                &self,
                new: $crate::NewAuditEntry,
                chain: $crate::admin::AuditChain<'_>,
            ) -> $crate::StoreResult<$crate::AuditEntry> {
                let mut tx = self.begin_write().await?;
                // Appends are serialized, each reading the entry it chains from: SQLite's write
                // transactions are exclusive already (BEGIN IMMEDIATE); PostgreSQL locks the table,
                // letting readers on (they never see a half-appended chain: the row is one insert).
                if let Some(statement) = $serialize_appends {
                    sqlx::query(statement).execute(&mut *tx).await?;
                }
                let last: Option<(i64, Vec<u8>)> =
                    sqlx::query_as($crate::admin::LAST_ENTRY).fetch_optional(&mut *tx).await?;
                let next = $crate::admin::next_entry(last, new, chain);
                sqlx::query($crate::admin::APPEND_ENTRY)
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

            async fn audit_entries_before(
                &self,
                before: Option<i64>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::AuditEntry>> {
                let rows: Vec<$crate::admin::EntryRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe($crate::admin::entries_before(limit)))
                        .bind(before.unwrap_or(i64::MAX))
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map($crate::admin::entry).collect())
            }

            async fn audit_entries_after(
                &self,
                after: i64,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::AuditEntry>> {
                let rows: Vec<$crate::admin::EntryRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe($crate::admin::entries_after(limit)))
                        .bind(after)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map($crate::admin::entry).collect())
            }

            async fn admin_accounts(
                &self,
                search: Option<&str>,
                after: Option<uuid::Uuid>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::AdminAccount>> {
                let rows: Vec<$crate::admin::AccountRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe($crate::admin::accounts_page(limit)))
                        .bind(after.unwrap_or(uuid::Uuid::nil()))
                        .bind($crate::admin::contains_pattern(search))
                        .fetch_all(&self.pool)
                        .await?;
                let (Some(first), Some(last)) = (rows.first(), rows.last()) else { return Ok(Vec::new()) };
                let roles: Vec<(uuid::Uuid, String)> = sqlx::query_as($crate::admin::ROLES_IN_RANGE)
                    .bind(first.0)
                    .bind(last.0)
                    .fetch_all(&self.pool)
                    .await?;
                Ok($crate::admin::accounts(rows, roles))
            }

            async fn disable_account(
                &self,
                user_id: uuid::Uuid,
                reason: &str,
                at: $crate::Timestamp,
            ) -> $crate::StoreResult<bool> {
                let done = sqlx::query($crate::admin::DISABLE_ACCOUNT)
                    .bind(user_id)
                    .bind(at)
                    .bind(reason)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn enable_account(&self, user_id: uuid::Uuid) -> $crate::StoreResult<()> {
                sqlx::query($crate::admin::ENABLE_ACCOUNT).bind(user_id).execute(self.writer()).await?;
                Ok(())
            }

            async fn account_disabled(&self, user_id: uuid::Uuid) -> $crate::StoreResult<bool> {
                let (count,): (i64,) =
                    sqlx::query_as($crate::admin::ACCOUNT_DISABLED).bind(user_id).fetch_one(&self.pool).await?;
                Ok(count > 0)
            }

            async fn set_account_role(
                &self,
                user_id: uuid::Uuid,
                role: &str,
                granted: bool,
                at: $crate::Timestamp,
            ) -> $crate::StoreResult<()> {
                if granted {
                    sqlx::query($crate::admin::GRANT_ROLE)
                        .bind(user_id)
                        .bind(role)
                        .bind(at)
                        .execute(self.writer())
                        .await?;
                } else {
                    sqlx::query($crate::admin::REVOKE_ROLE).bind(user_id).bind(role).execute(self.writer()).await?;
                }
                Ok(())
            }

            async fn account_roles(&self, user_id: uuid::Uuid) -> $crate::StoreResult<Vec<String>> {
                let rows: Vec<(String,)> =
                    sqlx::query_as($crate::admin::ROLES).bind(user_id).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(|(role,)| role).collect())
            }

            async fn create_invite(&self, invite: &$crate::Invite) -> $crate::StoreResult<()> {
                sqlx::query($crate::admin::CREATE_INVITE)
                    .bind(&invite.code_hash[..])
                    .bind(invite.uses)
                    .bind(invite.expires_at)
                    .bind(invite.created_at)
                    .bind(&invite.created_by)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn use_invite(&self, code_hash: &[u8; 32], now: $crate::Timestamp) -> $crate::StoreResult<bool> {
                let used = sqlx::query($crate::admin::USE_INVITE)
                    .bind(&code_hash[..])
                    .bind(now)
                    .execute(self.writer())
                    .await?;
                Ok(used.rows_affected() == 1)
            }

            async fn return_invite_use(&self, code_hash: &[u8; 32]) -> $crate::StoreResult<()> {
                sqlx::query($crate::admin::RETURN_INVITE_USE).bind(&code_hash[..]).execute(self.writer()).await?;
                Ok(())
            }
        }
    };
}

pub(crate) use admin_store_impl;
