//! The audit log: every administrator's login and action, done or refused, appended to a hash
//! chain that [`verify`] walks.
//!
//! An entry's hash is SHA-256 over a domain label, the previous entry's hash and the entry's
//! own fields, each length-prefixed so that no two different entries hash the same bytes:
//! editing any field of a stored entry, or deleting an entry other than the newest, breaks the
//! chain at that place. Deleting the newest entries leaves a shorter chain that still holds, so
//! no walk of the log alone can notice it: whoever verifies keeps the newest entry they saw (a
//! witness outside the server, as `hearth admin audit --verify` and the admin page do) and asks
//! again with it, and the walk then checks that the chain still holds that entry, unchanged, at
//! its place.

use hearth_store::{AuditEntry, NewAuditEntry, Store, StoreError, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// What an admin login is recorded as.
pub const LOGIN: &str = "admin.login";
/// An account disabled.
pub const USER_DISABLE: &str = "user.disable";
/// An account enabled again.
pub const USER_ENABLE: &str = "user.enable";
/// An account deleted.
pub const USER_DELETE: &str = "user.delete";
/// A role granted.
pub const ROLE_GRANT: &str = "user.role.grant";
/// An invite code made.
pub const INVITE_CREATE: &str = "invite.create";
/// A role taken back.
pub const ROLE_REVOKE: &str = "user.role.revoke";
/// A room's posts read by an administrator.
pub const ROOM_READ: &str = "room.read";
/// A room's post deleted by an administrator.
pub const ROOM_MESSAGE_DELETE: &str = "room.message.delete";
/// A one-time link to the admin page made (`hearth admin open`).
pub const LINK_CREATE: &str = "admin.link.create";
/// A one-time link to the admin page opened (or refused).
pub const LINK_REDEEM: &str = "admin.link.redeem";

/// Longest cause of a refusal kept in the log.
const MAX_CAUSE_CHARS: usize = 200;

/// The outcome of an action that happened.
pub const OK: &str = "ok";
/// The outcome of an action that was refused.
pub const REFUSED: &str = "refused";

/// How many entries [`verify`] reads at a time.
const VERIFY_BATCH: u32 = 500;

/// The hash of `entry`, chained from its `prev_hash`.
pub fn entry_hash(entry: &AuditEntry) -> Vec<u8> {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    let optional = |text: &Option<String>| text.as_deref().map(|t| [&[1u8][..], t.as_bytes()].concat());
    field(b"hearth-admin-audit-v1");
    field(&entry.prev_hash);
    field(&entry.seq.to_be_bytes());
    field(&entry.entry.at.as_millis().to_be_bytes());
    field(&optional(&entry.entry.fingerprint).unwrap_or_default());
    field(entry.entry.action.as_bytes());
    field(&optional(&entry.entry.target).unwrap_or_default());
    field(&optional(&entry.entry.reason).unwrap_or_default());
    field(entry.entry.outcome.as_bytes());
    hash.finalize().to_vec()
}

/// Appends an entry to the log.
pub async fn append(store: &dyn Store, entry: NewAuditEntry) -> Result<AuditEntry, StoreError> {
    store.append_audit_entry(entry, &entry_hash).await
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BrokenEntry {
    /// The first entry that does not hold: its hash is not what its fields make, or it does not
    /// follow the entry before it (one was edited or deleted).
    pub seq: i64,
    /// What is wrong there, for a person.
    pub problem: &'static str,
}

/// An entry verified before, as its verifier kept it: where it was and its hash. A chain that
/// holds must still have it there: otherwise entries were deleted from the log's end (and
/// perhaps others appended since).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownEntry {
    /// Its place in the chain, from 1.
    pub seq: i64,
    /// Its hash, as lowercase hex.
    pub hash: String,
}

/// Whether the result of [`verify`] is a failure of the store rather than of the chain.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain is broken.
    #[error("the audit log's chain breaks at entry {}: {}", .0.seq, .0.problem)]
    Broken(BrokenEntry),
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Walks the whole chain, oldest first: how many entries hold, or the first that does not.
pub async fn verify(store: &dyn Store) -> Result<u64, VerifyError> {
    match walk(store, None).await {
        Ok(chain) => Ok(chain.entries),
        Err(Walked::Broken(entry, _)) => Err(VerifyError::Broken(entry)),
        Err(Walked::Store(error)) => Err(VerifyError::Store(error)),
    }
}

/// A chain that holds, as [`walk`] found it.
pub(crate) struct Chain {
    /// Its entries.
    pub entries: u64,
    /// The newest entry's place and hash (hex); `None` for an empty log.
    pub newest: Option<(i64, String)>,
}

/// How [`walk`] stopped short.
pub(crate) enum Walked {
    /// At this entry, after this many that hold.
    Broken(BrokenEntry, u64),
    /// The log could not be read.
    Store(StoreError),
}

/// The problem of a known entry that the chain no longer reaches.
const KNOWN_ENTRY_CUT: &str = "the log now ends before an entry verified earlier: its newest entries were deleted";
/// The problem of a known entry whose place now holds another.
const KNOWN_ENTRY_REPLACED: &str =
    "it is not the entry verified earlier at this place: the log was cut back and written on from here or before";

/// Walks the whole chain, oldest first: the chain if it holds (and, given a `known` entry,
/// still holds that one at its place), or the first entry that does not hold and how many held
/// before it.
pub(crate) async fn walk(store: &dyn Store, known: Option<&KnownEntry>) -> Result<Chain, Walked> {
    let mut previous: Option<AuditEntry> = None;
    let mut count = 0u64;
    loop {
        let after = previous.as_ref().map_or(0, |entry| entry.seq);
        let batch = store.audit_entries_after(after, VERIFY_BATCH).await.map_err(Walked::Store)?;
        if batch.is_empty() {
            break;
        }
        for entry in batch {
            check(previous.as_ref(), &entry).map_err(|broken| Walked::Broken(broken, count))?;
            if let Some(known) = known.filter(|known| known.seq == entry.seq)
                && hex::encode(&entry.hash) != known.hash
            {
                return Err(Walked::Broken(BrokenEntry { seq: known.seq, problem: KNOWN_ENTRY_REPLACED }, count));
            }
            count += 1;
            previous = Some(entry);
        }
    }
    let newest = previous.map(|entry| (entry.seq, hex::encode(&entry.hash)));
    if let Some(known) = known
        && newest.as_ref().is_none_or(|(seq, _)| *seq < known.seq)
    {
        let first_missing = newest.as_ref().map_or(1, |(seq, _)| seq + 1);
        return Err(Walked::Broken(BrokenEntry { seq: first_missing, problem: KNOWN_ENTRY_CUT }, count));
    }
    Ok(Chain { entries: count, newest })
}

fn check(previous: Option<&AuditEntry>, entry: &AuditEntry) -> Result<(), BrokenEntry> {
    let broken = |problem| Err(BrokenEntry { seq: entry.seq, problem });
    let (expected_seq, expected_prev) = previous.map_or((1, &[][..]), |p| (p.seq + 1, p.hash.as_slice()));
    if entry.seq != expected_seq {
        return broken("the entry before it is missing (deleted)");
    }
    if entry.prev_hash != expected_prev {
        return broken("it does not chain from the entry before it (that one was edited or replaced)");
    }
    if entry.hash != entry_hash(entry) {
        return broken("its fields do not match its hash (edited)");
    }
    Ok(())
}

/// An entry as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditItem {
    /// Its place in the chain, from 1.
    pub seq: i64,
    /// When it happened (RFC 3339).
    pub at: String,
    /// The acting key's fingerprint (`SHA256:…`); `null` when no listed key acted.
    pub fingerprint: Option<String>,
    /// What was done, e.g. `admin.login`.
    pub action: String,
    /// What it was done to.
    pub target: Option<String>,
    /// The reason given, or why it was refused.
    pub reason: Option<String>,
    /// `ok` or `refused`.
    pub outcome: String,
    /// This entry's hash (hex).
    pub hash: String,
}

impl From<AuditEntry> for AuditItem {
    fn from(stored: AuditEntry) -> Self {
        let AuditEntry { seq, entry, hash, .. } = stored;
        Self {
            seq,
            at: entry.at.to_rfc3339(),
            fingerprint: entry.fingerprint,
            action: entry.action,
            target: entry.target,
            reason: entry.reason,
            outcome: entry.outcome,
            hash: hex::encode(&hash),
        }
    }
}

/// A login refused or accepted, as recorded.
pub fn login(at: Timestamp, fingerprint: Option<String>, refusal: Option<&str>) -> NewAuditEntry {
    NewAuditEntry {
        at,
        fingerprint,
        action: LOGIN.to_owned(),
        target: None,
        reason: refusal.map(str::to_owned),
        outcome: if refusal.is_some() { REFUSED } else { OK }.to_owned(),
    }
}

/// Why an action was refused, in a few words for the log: the message its error tells the
/// client (never a secret: errors carry none), or "server error" for a failure of ours, whose
/// detail stays in the server's log.
pub fn cause(error: &ApiError) -> String {
    let text = match error {
        ApiError::Invalid(fields) => fields
            .iter()
            .map(|(field, problems)| format!("invalid {field}: {}", problems.join("; ")))
            .collect::<Vec<_>>()
            .join("; "),
        ApiError::Internal(_) => "server error".to_owned(),
        ApiError::NotFound => "not found".to_owned(),
        other => other.to_string(),
    };
    text.chars().take(MAX_CAUSE_CHARS).collect()
}

/// Records what an administrator did to `target` and hands back `result`: an entry `ok` with
/// the reason given, or `refused` with the [`cause`] of the error. A refusal that cannot be
/// recorded is logged, and the action's own error answered.
pub async fn record<T>(
    store: &dyn Store,
    fingerprint: Option<&str>,
    action: &str,
    target: Option<String>,
    reason: Option<String>,
    result: ApiResult<T>,
) -> ApiResult<T> {
    let (reason, outcome) = match &result {
        Ok(_) => (reason, OK),
        Err(error) => (Some(cause(error)), REFUSED),
    };
    let entry = NewAuditEntry {
        at: Timestamp::now(),
        fingerprint: fingerprint.map(str::to_owned),
        action: action.to_owned(),
        target,
        reason,
        outcome: outcome.to_owned(),
    };
    match (append(store, entry).await, result) {
        (Ok(_), result) => result,
        (Err(error), Ok(_)) => Err(error.into()),
        (Err(error), Err(refused)) => {
            tracing::error!(%error, action, "a refused administrator's action not recorded in the audit log");
            Err(refused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_and_the_previous_hash_count() {
        let entry = AuditEntry {
            seq: 2,
            entry: NewAuditEntry {
                at: Timestamp::from_millis(1_000),
                fingerprint: Some("SHA256:abc".to_owned()),
                action: LOGIN.to_owned(),
                target: Some("t".to_owned()),
                reason: Some("r".to_owned()),
                outcome: OK.to_owned(),
            },
            prev_hash: vec![7; 32],
            hash: Vec::new(),
        };
        let hash = entry_hash(&entry);
        let changes: [fn(&mut AuditEntry); 10] = [
            |e| e.seq = 3,
            |e| e.entry.at = Timestamp::from_millis(1_001),
            |e| e.entry.fingerprint = None,
            |e| e.entry.fingerprint = Some(String::new()),
            |e| e.entry.action = "admin.login2".to_owned(),
            |e| e.entry.target = None,
            |e| e.entry.reason = Some("R".to_owned()),
            |e| e.entry.outcome = REFUSED.to_owned(),
            |e| e.prev_hash[0] = 8,
            // Moving text from one field to the next is a change too (fields are length-prefixed).
            |e| (e.entry.target, e.entry.reason) = (Some("tr".to_owned()), Some(String::new())),
        ];
        for (n, change) in changes.iter().enumerate() {
            let mut changed = entry.clone();
            change(&mut changed);
            assert_ne!(entry_hash(&changed), hash, "change {n} left the hash as it was");
        }
        assert_eq!(entry_hash(&entry.clone()), hash, "the hash depends on nothing else");
    }
}
