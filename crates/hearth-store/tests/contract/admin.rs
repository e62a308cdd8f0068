//! Administrators: single-use, expiring challenges; admin sessions; the audit log appended in
//! a chain (each entry given the previous one's hash), paged both ways.

use std::sync::Arc;

use hearth_store::{AdminSession, AuditEntry, NewAuditEntry, Store, Timestamp};
use tokio::sync::Barrier;

use crate::token_hash;

contract!(
    challenge_is_used_once,
    expired_or_unknown_challenge_is_refused,
    challenge_race_has_one_winner,
    admin_session_lives_until_it_expires,
    audit_entries_chain_from_the_previous_hash,
    audit_entries_page_both_ways,
    concurrent_appends_make_one_chain,
);

/// A stand-in for the server's hash: the previous hash, then the entry's seq and action.
fn chain(entry: &AuditEntry) -> Vec<u8> {
    let mut hash = entry.prev_hash.clone();
    hash.extend_from_slice(format!("|{}:{}", entry.seq, entry.entry.action).as_bytes());
    hash
}

fn login(at: Timestamp, action: &str) -> NewAuditEntry {
    NewAuditEntry {
        at,
        fingerprint: Some("SHA256:abc".to_owned()),
        action: action.to_owned(),
        target: None,
        reason: None,
        outcome: "ok".to_owned(),
    }
}

async fn challenge_is_used_once(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let hash = token_hash();
    store.create_admin_challenge(&hash, now.plus_secs(60)).await.expect("create");
    assert!(store.use_admin_challenge(&hash, now).await.expect("use"));
    assert!(!store.use_admin_challenge(&hash, now).await.expect("use again"), "a challenge is single use");
}

async fn expired_or_unknown_challenge_is_refused(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let hash = token_hash();
    store.create_admin_challenge(&hash, now.plus_secs(60)).await.expect("create");
    assert!(!store.use_admin_challenge(&hash, now.plus_secs(60)).await.expect("use at expiry"), "dead at expires_at");
    assert!(!store.use_admin_challenge(&token_hash(), now).await.expect("unknown"));
    // Refused while expired, so still unused: but never usable again, as time only moves on.
    assert!(store.use_admin_challenge(&hash, now.plus_secs(59)).await.expect("before expiry"));
}

async fn challenge_race_has_one_winner(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let hash = token_hash();
    store.create_admin_challenge(&hash, now.plus_secs(60)).await.expect("create");
    let barrier = Arc::new(Barrier::new(10));
    let racers: Vec<_> = (0..10)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.use_admin_challenge(&hash, now).await.expect("use")
            })
        })
        .collect();
    let mut wins = 0;
    for racer in racers {
        wins += usize::from(racer.await.expect("racer"));
    }
    assert_eq!(wins, 1);
}

async fn admin_session_lives_until_it_expires(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let session = AdminSession {
        token_hash: token_hash(),
        fingerprint: "SHA256:abc".to_owned(),
        created_at: now,
        expires_at: now.plus_secs(900),
    };
    store.create_admin_session(&session).await.expect("create");
    assert_eq!(store.admin_session(&session.token_hash, now).await.expect("read"), Some(session.clone()));
    assert_eq!(store.admin_session(&session.token_hash, now.plus_secs(900)).await.expect("read"), None);
    assert_eq!(store.admin_session(&token_hash(), now).await.expect("read"), None);
}

async fn audit_entries_chain_from_the_previous_hash(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let first = store.append_audit_entry(login(now, "first"), &chain).await.expect("append");
    assert_eq!((first.seq, first.prev_hash.as_slice(), first.hash.as_slice()), (1, &b""[..], &b"|1:first"[..]));
    let refused = NewAuditEntry {
        fingerprint: None,
        target: Some("someone".to_owned()),
        reason: Some("why".to_owned()),
        outcome: "refused".to_owned(),
        ..login(now.plus_secs(1), "second")
    };
    let second = store.append_audit_entry(refused.clone(), &chain).await.expect("append");
    assert_eq!(second.seq, 2);
    assert_eq!(second.prev_hash, first.hash);
    assert_eq!(second.hash, b"|1:first|2:second");
    assert_eq!(second.entry, refused);
    let stored = store.audit_entries_after(0, 10).await.expect("read");
    assert_eq!(stored, vec![first, second]);
}

async fn audit_entries_page_both_ways(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    for n in 0..5 {
        store.append_audit_entry(login(now.plus_secs(n), &format!("a{n}")), &chain).await.expect("append");
    }
    let seqs = |entries: Vec<AuditEntry>| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.audit_entries_before(None, 2).await.expect("page")), [5, 4]);
    assert_eq!(seqs(store.audit_entries_before(Some(4), 2).await.expect("page")), [3, 2]);
    assert_eq!(seqs(store.audit_entries_before(Some(2), 2).await.expect("page")), [1]);
    assert_eq!(seqs(store.audit_entries_after(0, 2).await.expect("page")), [1, 2]);
    assert_eq!(seqs(store.audit_entries_after(2, 10).await.expect("page")), [3, 4, 5]);
    assert!(store.audit_entries_after(5, 10).await.expect("page").is_empty());
}

async fn concurrent_appends_make_one_chain(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let barrier = Arc::new(Barrier::new(8));
    let appenders: Vec<_> = (0..8)
        .map(|n| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.append_audit_entry(login(now, &format!("c{n}")), &chain).await.expect("append")
            })
        })
        .collect();
    for appender in appenders {
        appender.await.expect("appender");
    }
    let entries = store.audit_entries_after(0, 100).await.expect("read");
    assert_eq!(entries.len(), 8);
    for (n, entry) in entries.iter().enumerate() {
        assert_eq!(entry.seq, n as i64 + 1);
        let previous = if n == 0 { Vec::new() } else { entries[n - 1].hash.clone() };
        assert_eq!(entry.prev_hash, previous, "entry {} chains from the one before", entry.seq);
        assert_eq!(entry.hash, chain(entry));
    }
}
