//! Administrators: single-use, expiring challenges; admin sessions; the audit log appended in
//! a chain (each entry given the previous one's hash), paged both ways.

use std::sync::Arc;

use hearth_store::{AdminSession, AuditEntry, Invite, NewAuditEntry, Store, Timestamp};
use tokio::sync::Barrier;

use crate::{create_account, token_hash};

contract!(
    challenge_is_used_once,
    expired_or_unknown_challenge_is_refused,
    challenge_race_has_one_winner,
    admin_link_is_used_once_before_it_expires,
    admin_session_lives_until_it_expires,
    audit_entries_chain_from_the_previous_hash,
    audit_entries_page_both_ways,
    concurrent_appends_make_one_chain,
    accounts_are_listed_found_and_paged,
    disabling_and_roles_are_kept_and_go_with_the_account,
    invite_uses_are_spent_once_each_even_racing,
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

async fn admin_link_is_used_once_before_it_expires(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let (hash, late) = (token_hash(), token_hash());
    store.create_admin_link(&hash, "SHA256:abc", now.plus_secs(60)).await.expect("create");
    store.create_admin_link(&late, "SHA256:def", now.plus_secs(60)).await.expect("create");
    assert_eq!(store.use_admin_link(&token_hash(), now).await.expect("unknown"), None);
    assert_eq!(store.use_admin_link(&late, now.plus_secs(60)).await.expect("at expiry"), None, "dead at expires_at");
    assert_eq!(store.use_admin_link(&hash, now).await.expect("use"), Some("SHA256:abc".to_owned()));
    assert_eq!(store.use_admin_link(&hash, now).await.expect("use again"), None, "a link is single use");
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

async fn accounts_are_listed_found_and_paged(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let ann = create_account(&store, "ann@example.org", now).await;
    let bob = create_account(&store, "bob_100%@example.org", now.plus_secs(1)).await;
    let all = store.admin_accounts(None, None, 10).await.expect("list");
    assert_eq!(all.iter().map(|a| a.email.as_str()).collect::<Vec<_>>(), ["ann@example.org", "bob_100%@example.org"]);
    assert_eq!((all[0].devices, all[0].last_seen_at, &all[0].disabled), (1, Some(now), &None));
    assert_eq!(all[0].created_at, now);
    // Case-insensitive, and LIKE's wildcards taken literally.
    let found = store.admin_accounts(Some("BOB_100%"), None, 10).await.expect("search");
    assert_eq!(found.iter().map(|a| a.user_id).collect::<Vec<_>>(), [bob.user.id]);
    assert!(store.admin_accounts(Some("n_"), None, 10).await.expect("search").is_empty());
    let first = store.admin_accounts(None, None, 1).await.expect("page");
    assert_eq!(first[0].user_id, ann.user.id);
    let next = store.admin_accounts(None, Some(ann.user.id), 10).await.expect("next page");
    assert_eq!(next.iter().map(|a| a.user_id).collect::<Vec<_>>(), [bob.user.id]);
    store.revoke_all_devices(ann.user.id, now).await.expect("revoke");
    let ann_now = &store.admin_accounts(Some("ann"), None, 10).await.expect("list")[0];
    assert_eq!(ann_now.devices, 0, "revoked devices are not counted");

    // Each account listed with its own roles, whatever the page or the search.
    let cara = create_account(&store, "cara@example.org", now.plus_secs(2)).await;
    for (user, role) in [(ann.user.id, "operator"), (cara.user.id, "operator"), (cara.user.id, "analyst")] {
        store.set_account_role(user, role, true, now).await.expect("grant");
    }
    let roles = |accounts: &[hearth_store::AdminAccount]| -> Vec<(String, Vec<String>)> {
        accounts.iter().map(|a| (a.email.clone(), a.roles.clone())).collect()
    };
    let owned = |email: &str, roles: &[&str]| (email.to_owned(), roles.iter().map(|r| (*r).to_owned()).collect());
    let (ann_roles, bob_roles, cara_roles) = (
        owned("ann@example.org", &["operator"]),
        owned("bob_100%@example.org", &[]),
        owned("cara@example.org", &["analyst", "operator"]),
    );
    let all = store.admin_accounts(None, None, 10).await.expect("list");
    assert_eq!(roles(&all), [ann_roles.clone(), bob_roles.clone(), cara_roles.clone()]);
    assert_eq!(roles(&store.admin_accounts(None, None, 1).await.expect("page")), [ann_roles]);
    assert_eq!(
        roles(&store.admin_accounts(None, Some(ann.user.id), 10).await.expect("next")),
        [bob_roles, cara_roles.clone()]
    );
    assert_eq!(roles(&store.admin_accounts(Some("cara"), None, 10).await.expect("search")), [cara_roles]);
}

async fn disabling_and_roles_are_kept_and_go_with_the_account(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let ann = create_account(&store, "ann@example.org", now).await.user.id;
    assert!(!store.account_disabled(ann).await.expect("disabled?"));
    assert!(store.disable_account(ann, "spam", now).await.expect("disable"));
    assert!(store.disable_account(ann, "more spam", now.plus_secs(1)).await.expect("disable again"));
    assert!(!store.disable_account(uuid::Uuid::now_v7(), "x", now).await.expect("nobody"), "no such account");
    assert!(store.account_disabled(ann).await.expect("disabled?"));
    let listed = &store.admin_accounts(None, None, 10).await.expect("list")[0];
    assert_eq!(listed.disabled, Some((now.plus_secs(1), "more spam".to_owned())));
    store.enable_account(ann).await.expect("enable");
    assert!(!store.account_disabled(ann).await.expect("disabled?"));

    for role in ["operator", "analyst", "operator"] {
        store.set_account_role(ann, role, true, now).await.expect("grant");
    }
    assert_eq!(store.account_roles(ann).await.expect("roles"), ["analyst", "operator"]);
    store.set_account_role(ann, "operator", false, now).await.expect("take back");
    store.set_account_role(ann, "operator", false, now).await.expect("take back again");
    assert_eq!(store.account_roles(ann).await.expect("roles"), ["analyst"]);
    assert!(store.set_account_role(ann, "root", true, now).await.is_err(), "only the two roles exist");

    store.disable_account(ann, "gone", now).await.expect("disable");
    store.delete_user(ann).await.expect("delete");
    assert!(!store.account_disabled(ann).await.expect("disabled?"));
    assert!(store.account_roles(ann).await.expect("roles").is_empty());
}

async fn invite_uses_are_spent_once_each_even_racing(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let invite = |uses| Invite {
        code_hash: token_hash(),
        uses,
        expires_at: now.plus_secs(60),
        created_at: now,
        created_by: "SHA256:abc".to_owned(),
    };
    let two = invite(2);
    store.create_invite(&two).await.expect("create");
    assert!(store.use_invite(&two.code_hash, now).await.expect("use"));
    store.return_invite_use(&two.code_hash).await.expect("give back");
    assert!(store.use_invite(&two.code_hash, now).await.expect("use"));
    assert!(store.use_invite(&two.code_hash, now).await.expect("use"));
    assert!(!store.use_invite(&two.code_hash, now).await.expect("used up"));
    assert!(!store.use_invite(&token_hash(), now).await.expect("unknown"));
    let expiring = invite(5);
    store.create_invite(&expiring).await.expect("create");
    assert!(!store.use_invite(&expiring.code_hash, now.plus_secs(60)).await.expect("at expiry"));

    let one = invite(3);
    store.create_invite(&one).await.expect("create");
    let barrier = Arc::new(Barrier::new(12));
    let racers: Vec<_> = (0..12)
        .map(|_| {
            let (store, barrier, hash) = (store.clone(), barrier.clone(), one.code_hash);
            tokio::spawn(async move {
                barrier.wait().await;
                store.use_invite(&hash, now).await.expect("use")
            })
        })
        .collect();
    let mut wins = 0;
    for racer in racers {
        wins += usize::from(racer.await.expect("racer"));
    }
    assert_eq!(wins, 3, "as many as it has uses");
}
