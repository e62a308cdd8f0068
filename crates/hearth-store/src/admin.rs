//! Administrators (issue 25): the challenges they sign, their sessions, and the audit log.
//!
//! [`AdminStore`] is the area's part of the [`Store`](crate::Store) contract; the SQL below is
//! what both backends run for it (`sqlite/admin.rs`, `postgres/admin.rs`). Challenges and
//! session tokens are kept as SHA-256 hashes only. The audit log is append-only: this contract
//! has no way to change or delete an entry. Its hash chain is computed by the caller (the
//! server's domain, which also verifies it) through the function handed to
//! [`AdminStore::append_audit_entry`], inside the transaction that reads the previous entry.

use async_trait::async_trait;

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
