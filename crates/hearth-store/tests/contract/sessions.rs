//! Device sessions and one-time tokens: listing and revoking sessions, refresh-token rotation and
//! reuse detection, issuing, peeking and redeeming one-time tokens (also under races).

use std::sync::Arc;

use hearth_store::{
    Device, NewOneTimeToken, NewSession, OneTimeKind, Redemption, RefreshOutcome, Store, StoreError, Timestamp, User,
};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::accounts::identity;
use crate::{
    PASSWORD_HASH, create_account, device, is_not_found, issue, issue_from, live_kinds, new_account, new_session,
    one_of_each, rotate, token_hash, user,
};

contract!(
    sessions_list_and_revoke,
    revoke_all_devices_revokes_only_that_users,
    revoking_a_session_voids_the_one_time_tokens_it_made,
    signing_out_everywhere_voids_every_one_time_token,
    a_replayed_refresh_token_voids_its_sessions_one_time_tokens,
    refresh_rotation_and_reuse_detection,
    refresh_unknown_expired_or_revoked_is_invalid,
    refresh_race_rotates_exactly_once,
    one_time_issue_and_peek,
    confirm_email_redeems_once,
    redeem_wrong_kind_or_expired_is_not_found,
    issuing_again_invalidates_earlier_token_of_that_kind,
    reset_password_revokes_sessions_and_tokens,
    change_email_for_another_user_is_not_found,
    change_email_to_taken_address_conflicts,
    change_email_clears_confirmation,
    change_email_voids_every_other_one_time_token,
    link_device_creates_a_session,
    redeem_race_confirm_email_exactly_once,
    redeem_race_link_device_exactly_once,
    replace_password_revokes_sessions_and_tokens,
);

async fn sessions_list_and_revoke(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let alice = create_account(&store, "alice@example.com", now).await;
    let bob = create_account(&store, "bob@example.com", now).await;
    let first = device(&store, alice.session.device_id).await;

    // Created a minute earlier but with a later (larger) id: listed first all the same.
    let earlier = NewSession { name: "Phone".to_owned(), ..new_session(now.plus_secs(-60)) };
    store.create_session(alice.user.id, &earlier).await.expect("create session");
    let earlier_device = Device {
        id: earlier.device_id,
        user_id: alice.user.id,
        name: "Phone".to_owned(),
        created_at: earlier.created_at,
        last_seen_at: earlier.created_at,
        revoked_at: None,
    };
    assert_eq!(device(&store, earlier.device_id).await, earlier_device);
    assert_eq!(store.devices(alice.user.id).await.expect("devices"), vec![earlier_device.clone(), first.clone()]);
    assert_eq!(store.devices(bob.user.id).await.expect("bob's devices").len(), 1);

    // Bob cannot revoke Alice's device.
    let later = now.plus_secs(10);
    assert!(is_not_found(&store.revoke_device(bob.user.id, earlier.device_id, later).await));
    assert_eq!(device(&store, earlier.device_id).await, earlier_device);
    assert_eq!(store.devices(alice.user.id).await.expect("devices").len(), 2);

    // Alice can.
    store.revoke_device(alice.user.id, earlier.device_id, later).await.expect("revoke");
    assert_eq!(device(&store, earlier.device_id).await, Device { revoked_at: Some(later), ..earlier_device.clone() });
    assert_eq!(store.devices(alice.user.id).await.expect("devices"), vec![first.clone()]);
    assert_eq!(rotate(&store, &earlier.refresh_token_hash, later).await.1, RefreshOutcome::Invalid);

    // Twice is not found, and does not move revoked_at.
    assert!(is_not_found(&store.revoke_device(alice.user.id, earlier.device_id, later.plus_secs(5)).await));
    assert_eq!(device(&store, earlier.device_id).await.revoked_at, Some(later));
    assert!(is_not_found(&store.revoke_device(alice.user.id, Uuid::now_v7(), later).await));

    // The other session still works.
    let (_, outcome) = rotate(&store, &alice.session.refresh_token_hash, later).await;
    assert!(matches!(outcome, RefreshOutcome::Rotated { .. }), "{outcome:?}");
}

async fn revoke_all_devices_revokes_only_that_users(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let alice = create_account(&store, "alice@example.com", now).await;
    let bob = create_account(&store, "bob@example.com", now).await;
    let second = new_session(now);
    store.create_session(alice.user.id, &second).await.expect("create session");
    // One already revoked keeps its original revocation time.
    let old = new_session(now);
    store.create_session(alice.user.id, &old).await.expect("create session");
    store.revoke_device(alice.user.id, old.device_id, now).await.expect("revoke");
    assert_eq!(store.devices(alice.user.id).await.expect("devices").len(), 2);

    let later = now.plus_secs(30);
    store.revoke_all_devices(alice.user.id, later).await.expect("revoke all");
    assert_eq!(store.devices(alice.user.id).await.expect("devices"), vec![]);
    assert_eq!(device(&store, alice.session.device_id).await.revoked_at, Some(later));
    assert_eq!(device(&store, second.device_id).await.revoked_at, Some(later));
    assert_eq!(device(&store, old.device_id).await.revoked_at, Some(now));
    assert_eq!(rotate(&store, &alice.session.refresh_token_hash, later).await.1, RefreshOutcome::Invalid);
    assert_eq!(rotate(&store, &second.refresh_token_hash, later).await.1, RefreshOutcome::Invalid);

    // Bob is still signed in.
    assert_eq!(store.devices(bob.user.id).await.expect("devices").len(), 1);
    let (_, outcome) = rotate(&store, &bob.session.refresh_token_hash, later).await;
    assert!(matches!(outcome, RefreshOutcome::Rotated { .. }), "{outcome:?}");

    // Nothing left to revoke is not an error.
    store.revoke_all_devices(alice.user.id, later).await.expect("revoke all again");
}

async fn revoking_a_session_voids_the_one_time_tokens_it_made(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let alice = create_account(&store, "alice@example.com", now).await;
    let phone = new_session(now);
    store.create_session(alice.user.id, &phone).await.expect("create session");
    let laptop = alice.session.device_id;
    let from_phone = one_of_each(&store, alice.user.id, Some(phone.device_id), now).await;
    let from_laptop = issue_from(&store, alice.user.id, Some(laptop), OneTimeKind::PoolKey, now).await;
    let later = now.plus_secs(10);
    assert_eq!(live_kinds(&store, &from_phone, later).await.len(), 4, "the pool link replaced the own-key link");

    store.revoke_device(alice.user.id, phone.device_id, later).await.expect("revoke");
    assert_eq!(live_kinds(&store, &from_phone, later).await, vec![]);
    let link = Redemption::LinkDevice(new_session(later));
    assert!(is_not_found(&store.redeem_one_time_token(&from_phone[3].1, &link, later).await));
    // The other session's token lives on.
    assert_eq!(
        store.peek_one_time_token(&from_laptop, OneTimeKind::PoolKey, later).await.expect("peek"),
        Some(alice.user.id)
    );
}

async fn signing_out_everywhere_voids_every_one_time_token(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let alice = create_account(&store, "alice@example.com", now).await;
    let bob = create_account(&store, "bob@example.com", now).await;
    let made_by_a_session = one_of_each(&store, alice.user.id, Some(alice.session.device_id), now).await;
    let made_without = one_of_each(&store, alice.user.id, None, now).await;
    let bobs = one_of_each(&store, bob.user.id, Some(bob.session.device_id), now).await;
    let later = now.plus_secs(10);

    store.revoke_all_devices(alice.user.id, later).await.expect("revoke all");
    assert_eq!(live_kinds(&store, &made_by_a_session, later).await, vec![]);
    assert_eq!(live_kinds(&store, &made_without, later).await, vec![]);
    let link = Redemption::LinkDevice(new_session(later));
    assert!(is_not_found(&store.redeem_one_time_token(&made_without[3].1, &link, later).await));
    assert_eq!(live_kinds(&store, &bobs, later).await.len(), 5, "another user's tokens are untouched");
}

async fn a_replayed_refresh_token_voids_its_sessions_one_time_tokens(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let alice = create_account(&store, "alice@example.com", now).await;
    let other = new_session(now);
    store.create_session(alice.user.id, &other).await.expect("create session");
    let first = alice.session.refresh_token_hash;
    let t1 = now.plus_secs(60);
    let (_, outcome) = rotate(&store, &first, t1).await;
    assert!(matches!(outcome, RefreshOutcome::Rotated { .. }), "{outcome:?}");
    let from_it = issue_from(&store, alice.user.id, Some(alice.session.device_id), OneTimeKind::DeviceLink, t1).await;
    let from_other = issue_from(&store, alice.user.id, Some(other.device_id), OneTimeKind::ProviderKey, t1).await;

    let t2 = now.plus_secs(120);
    assert_eq!(rotate(&store, &first, t2).await.1, RefreshOutcome::Reused { device_id: alice.session.device_id });
    assert_eq!(store.peek_one_time_token(&from_it, OneTimeKind::DeviceLink, t2).await.expect("peek"), None);
    assert_eq!(
        store.peek_one_time_token(&from_other, OneTimeKind::ProviderKey, t2).await.expect("peek"),
        Some(alice.user.id)
    );
}

async fn refresh_rotation_and_reuse_detection(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "rota@example.com", now).await;
    let original = device(&store, account.session.device_id).await;
    let first = account.session.refresh_token_hash;

    let t1 = now.plus_secs(60);
    let (second, outcome) = rotate(&store, &first, t1).await;
    let expected = Device { last_seen_at: t1, ..original.clone() };
    assert_eq!(outcome, RefreshOutcome::Rotated { device: expected.clone() });
    assert_eq!(device(&store, original.id).await, expected);

    // The successor works in turn.
    let t2 = now.plus_secs(120);
    let (third, outcome) = rotate(&store, &second, t2).await;
    assert_eq!(outcome, RefreshOutcome::Rotated { device: Device { last_seen_at: t2, ..original.clone() } });

    // Replaying the first (spent) token is reuse: the whole session goes.
    let t3 = now.plus_secs(180);
    let (_, outcome) = rotate(&store, &first, t3).await;
    assert_eq!(outcome, RefreshOutcome::Reused { device_id: original.id });
    let revoked = device(&store, original.id).await;
    assert_eq!(revoked.revoked_at, Some(t3));
    assert_eq!(store.devices(account.user.id).await.expect("devices"), vec![]);

    // The live successor no longer rotates, however often it is presented.
    assert_eq!(rotate(&store, &third, t3).await.1, RefreshOutcome::Invalid);
    assert_eq!(rotate(&store, &third, t3).await.1, RefreshOutcome::Invalid);
    assert_eq!(device(&store, original.id).await.revoked_at, Some(t3));
}

async fn refresh_unknown_expired_or_revoked_is_invalid(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "inv@example.com", now).await;

    assert_eq!(rotate(&store, &token_hash(), now).await.1, RefreshOutcome::Invalid);

    // Expired: invalid, and neither spent nor treated as reuse.
    let expired = NewSession { refresh_expires_at: now.plus_secs(-1), ..new_session(now.plus_secs(-3600)) };
    store.create_session(account.user.id, &expired).await.expect("create session");
    assert_eq!(rotate(&store, &expired.refresh_token_hash, now).await.1, RefreshOutcome::Invalid);
    assert_eq!(rotate(&store, &expired.refresh_token_hash, now).await.1, RefreshOutcome::Invalid);
    let expired_device = device(&store, expired.device_id).await;
    assert_eq!(expired_device.revoked_at, None);
    assert_eq!(expired_device.last_seen_at, expired.created_at);

    // A token presented after its expiry time, too.
    let (_, outcome) =
        rotate(&store, &account.session.refresh_token_hash, account.session.refresh_expires_at.plus_secs(1)).await;
    assert_eq!(outcome, RefreshOutcome::Invalid);

    // Revoked session.
    let revoked = new_session(now);
    store.create_session(account.user.id, &revoked).await.expect("create session");
    store.revoke_device(account.user.id, revoked.device_id, now).await.expect("revoke");
    assert_eq!(rotate(&store, &revoked.refresh_token_hash, now.plus_secs(1)).await.1, RefreshOutcome::Invalid);
    assert_eq!(device(&store, revoked.device_id).await.revoked_at, Some(now));

    // The untouched first session is still fine.
    let (_, outcome) = rotate(&store, &account.session.refresh_token_hash, now.plus_secs(2)).await;
    assert!(matches!(outcome, RefreshOutcome::Rotated { .. }), "{outcome:?}");
}

async fn refresh_race_rotates_exactly_once(store: Arc<dyn Store>) {
    const RACERS: usize = 20;
    let now = Timestamp::now();
    let account = create_account(&store, "race@example.com", now).await;
    let presented = account.session.refresh_token_hash;
    let barrier = Arc::new(Barrier::new(RACERS));

    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let successor = token_hash();
                barrier.wait().await;
                let outcome = store.rotate_refresh_token(&presented, &successor, now.plus_secs(3600), now).await;
                (successor, outcome)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut others = Vec::new();
    for task in tasks {
        let (successor, outcome) = task.await.expect("task");
        match outcome.expect("rotate") {
            RefreshOutcome::Rotated { device } => winners.push((successor, device)),
            other => others.push(other),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}, others: {others:?}");
    assert_eq!(winners[0].1.id, account.session.device_id);
    // Everyone else presented a token that was spent by then.
    let family = RefreshOutcome::Reused { device_id: account.session.device_id };
    assert!(others.iter().all(|outcome| *outcome == family), "{others:?}");
}

async fn one_time_issue_and_peek(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "peek@example.com", now).await;
    let other = create_account(&store, "other@example.com", now).await;
    let id = account.user.id;
    let kinds =
        [OneTimeKind::EmailConfirm, OneTimeKind::PasswordReset, OneTimeKind::EmailChange, OneTimeKind::DeviceLink];

    let mut hashes = Vec::new();
    for kind in kinds {
        hashes.push((kind, issue(&store, id, kind, now).await));
    }
    let other_hash = issue(&store, other.user.id, OneTimeKind::EmailConfirm, now).await;

    let later = now.plus_secs(60);
    for (kind, hash) in &hashes {
        for wrong in kinds {
            let peeked = store.peek_one_time_token(hash, wrong, later).await.expect("peek");
            let expected = (wrong == *kind).then_some(id);
            assert_eq!(peeked, expected, "{kind:?} token peeked as {wrong:?}");
        }
        // Peeking twice does not spend it.
        assert_eq!(store.peek_one_time_token(hash, *kind, later).await.expect("peek"), Some(id));
        // Expired (issued with an hour to live).
        let expired = store.peek_one_time_token(hash, *kind, now.plus_secs(3601)).await.expect("peek expired");
        assert_eq!(expired, None);
    }
    assert_eq!(
        store.peek_one_time_token(&other_hash, OneTimeKind::EmailConfirm, later).await.expect("peek"),
        Some(other.user.id)
    );
    assert_eq!(store.peek_one_time_token(&token_hash(), OneTimeKind::EmailConfirm, later).await.expect("peek"), None);

    // A token issued already expired never peeks.
    let stale = NewOneTimeToken {
        device_id: None,
        token_hash: token_hash(),
        user_id: id,
        kind: OneTimeKind::DeviceLink,
        created_at: now.plus_secs(-7200),
        expires_at: now.plus_secs(-3600),
    };
    store.issue_one_time_token(&stale).await.expect("issue stale");
    assert_eq!(store.peek_one_time_token(&stale.token_hash, OneTimeKind::DeviceLink, now).await.expect("peek"), None);
}

async fn confirm_email_redeems_once(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "confirm@example.com", now).await;
    let hash = issue(&store, account.user.id, OneTimeKind::EmailConfirm, now).await;
    assert_eq!(user(&store, account.user.id).await.confirmed_at, None);

    let later = now.plus_secs(90);
    let owner = store.redeem_one_time_token(&hash, &Redemption::ConfirmEmail, later).await.expect("redeem");
    assert_eq!(owner, account.user.id);
    let expected = User { confirmed_at: Some(later), updated_at: later, ..account.user.clone() };
    assert_eq!(user(&store, account.user.id).await, expected);

    assert!(is_not_found(&store.redeem_one_time_token(&hash, &Redemption::ConfirmEmail, later.plus_secs(1)).await));
    assert_eq!(store.peek_one_time_token(&hash, OneTimeKind::EmailConfirm, later).await.expect("peek"), None);
    // The failed second redemption changed nothing.
    assert_eq!(user(&store, account.user.id).await, expected);
}

async fn redeem_wrong_kind_or_expired_is_not_found(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "wrong@example.com", now).await;
    let id = account.user.id;
    let hash = issue(&store, id, OneTimeKind::EmailConfirm, now).await;
    let later = now.plus_secs(10);

    let attempts = [
        Redemption::ResetPassword { password_hash: "new hash".to_owned() },
        Redemption::ChangeEmail { user_id: id, email: "changed@example.com".to_owned(), rekey: None },
        Redemption::LinkDevice(new_session(later)),
    ];
    for redemption in &attempts {
        let result = store.redeem_one_time_token(&hash, redemption, later).await;
        assert!(is_not_found(&result), "{redemption:?}: {result:?}");
    }
    let Redemption::LinkDevice(session) = &attempts[2] else { unreachable!() };
    assert_eq!(store.device(session.device_id).await.expect("device"), None);
    assert_eq!(user(&store, id).await, account.user);

    // Unknown token.
    assert!(is_not_found(&store.redeem_one_time_token(&token_hash(), &Redemption::ConfirmEmail, later).await));

    // Expired (an hour to live): not found, and not spent either.
    let result = store.redeem_one_time_token(&hash, &Redemption::ConfirmEmail, now.plus_secs(3601)).await;
    assert!(is_not_found(&result), "{result:?}");
    assert_eq!(user(&store, id).await.confirmed_at, None);

    // None of that spent it.
    assert_eq!(store.redeem_one_time_token(&hash, &Redemption::ConfirmEmail, later).await.expect("redeem"), id);
    assert_eq!(user(&store, id).await.confirmed_at, Some(later));
}

async fn issuing_again_invalidates_earlier_token_of_that_kind(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "again@example.com", now).await;
    let other = create_account(&store, "other@example.com", now).await;
    let id = account.user.id;

    let first = issue(&store, id, OneTimeKind::EmailConfirm, now).await;
    let reset = issue(&store, id, OneTimeKind::PasswordReset, now).await;
    let others = issue(&store, other.user.id, OneTimeKind::EmailConfirm, now).await;
    let second = issue(&store, id, OneTimeKind::EmailConfirm, now.plus_secs(1)).await;

    let later = now.plus_secs(2);
    assert_eq!(store.peek_one_time_token(&first, OneTimeKind::EmailConfirm, later).await.expect("peek"), None);
    assert!(is_not_found(&store.redeem_one_time_token(&first, &Redemption::ConfirmEmail, later).await));
    assert_eq!(user(&store, id).await.confirmed_at, None);

    // Other kinds and other users' tokens are unaffected.
    assert_eq!(store.peek_one_time_token(&reset, OneTimeKind::PasswordReset, later).await.expect("peek"), Some(id));
    assert_eq!(
        store.peek_one_time_token(&others, OneTimeKind::EmailConfirm, later).await.expect("peek"),
        Some(other.user.id)
    );

    assert_eq!(store.redeem_one_time_token(&second, &Redemption::ConfirmEmail, later).await.expect("redeem"), id);
    assert_eq!(user(&store, id).await.confirmed_at, Some(later));
}

async fn reset_password_revokes_sessions_and_tokens(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "reset@example.com", now).await;
    let bystander = create_account(&store, "bystander@example.com", now).await;
    let id = account.user.id;
    let second = new_session(now);
    store.create_session(id, &second).await.expect("create session");
    let confirm = issue(&store, id, OneTimeKind::EmailConfirm, now).await;
    let link = issue(&store, id, OneTimeKind::DeviceLink, now).await;
    let change = issue(&store, id, OneTimeKind::EmailChange, now).await;
    let bystander_link = issue(&store, bystander.user.id, OneTimeKind::DeviceLink, now).await;
    let reset = issue(&store, id, OneTimeKind::PasswordReset, now).await;
    // Both have an identity; the reset takes the account's (it cannot be opened any more).
    for (user_id, tag) in [(id, "reset"), (bystander.user.id, "bystander")] {
        store.set_identity(user_id, &identity(tag), false, now).await.expect("identity");
    }

    let later = now.plus_secs(120);
    let redemption = Redemption::ResetPassword { password_hash: "$argon2id$new".to_owned() };
    assert_eq!(store.redeem_one_time_token(&reset, &redemption, later).await.expect("redeem"), id);

    let expected = User { password_hash: "$argon2id$new".to_owned(), updated_at: later, ..account.user.clone() };
    assert_eq!(user(&store, id).await, expected);
    assert_eq!(store.identity(id).await.expect("identity"), None, "the reset removed the identity");
    assert_eq!(store.identity(bystander.user.id).await.expect("identity"), Some(identity("bystander")));
    assert_eq!(store.devices(id).await.expect("devices"), vec![]);
    assert_eq!(device(&store, account.session.device_id).await.revoked_at, Some(later));
    assert_eq!(device(&store, second.device_id).await.revoked_at, Some(later));
    assert_eq!(rotate(&store, &account.session.refresh_token_hash, later).await.1, RefreshOutcome::Invalid);
    assert_eq!(rotate(&store, &second.refresh_token_hash, later).await.1, RefreshOutcome::Invalid);
    for (hash, kind) in
        [(confirm, OneTimeKind::EmailConfirm), (link, OneTimeKind::DeviceLink), (change, OneTimeKind::EmailChange)]
    {
        assert_eq!(store.peek_one_time_token(&hash, kind, later).await.expect("peek"), None, "{kind:?}");
    }
    assert!(is_not_found(&store.redeem_one_time_token(&confirm, &Redemption::ConfirmEmail, later).await));
    assert!(is_not_found(&store.redeem_one_time_token(&reset, &redemption, later).await));

    // The bystander keeps everything.
    let bystander_now = User { identity_key: Some(identity("bystander").public_key), ..bystander.user.clone() };
    assert_eq!(user(&store, bystander.user.id).await, bystander_now);
    assert_eq!(store.devices(bystander.user.id).await.expect("devices").len(), 1);
    assert_eq!(
        store.peek_one_time_token(&bystander_link, OneTimeKind::DeviceLink, later).await.expect("peek"),
        Some(bystander.user.id)
    );
}

async fn change_email_for_another_user_is_not_found(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let alice = create_account(&store, "alice@example.com", now).await;
    let mallory = create_account(&store, "mallory@example.com", now).await;
    let hash = issue(&store, alice.user.id, OneTimeKind::EmailChange, now).await;
    let later = now.plus_secs(5);

    let wrong =
        Redemption::ChangeEmail { user_id: mallory.user.id, email: "mallory2@example.com".to_owned(), rekey: None };
    let result = store.redeem_one_time_token(&hash, &wrong, later).await;
    assert!(is_not_found(&result), "{result:?}");
    assert_eq!(user(&store, alice.user.id).await, alice.user);
    assert_eq!(user(&store, mallory.user.id).await, mallory.user);
    assert_eq!(store.user_by_email("mallory2@example.com").await.expect("user_by_email"), None);
    assert_eq!(
        store.peek_one_time_token(&hash, OneTimeKind::EmailChange, later).await.expect("peek"),
        Some(alice.user.id)
    );

    let right = Redemption::ChangeEmail { user_id: alice.user.id, email: "alice2@example.com".to_owned(), rekey: None };
    assert_eq!(store.redeem_one_time_token(&hash, &right, later).await.expect("redeem"), alice.user.id);
    assert_eq!(user(&store, alice.user.id).await.email, "alice2@example.com");
    assert_eq!(user(&store, mallory.user.id).await, mallory.user);
}

async fn change_email_to_taken_address_conflicts(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let alice = create_account(&store, "alice@example.com", now).await;
    let bob = create_account(&store, "bob@example.com", now).await;
    let hash = issue(&store, alice.user.id, OneTimeKind::EmailChange, now).await;
    let later = now.plus_secs(5);

    let taken = Redemption::ChangeEmail { user_id: alice.user.id, email: "bob@example.com".to_owned(), rekey: None };
    let result = store.redeem_one_time_token(&hash, &taken, later).await;
    assert!(matches!(result, Err(StoreError::Conflict("email"))), "{result:?}");
    assert_eq!(user(&store, alice.user.id).await, alice.user);
    assert_eq!(user(&store, bob.user.id).await, bob.user);
    assert_eq!(
        store.peek_one_time_token(&hash, OneTimeKind::EmailChange, later).await.expect("peek"),
        Some(alice.user.id),
        "a conflicting change must not spend the token"
    );

    let free = Redemption::ChangeEmail { user_id: alice.user.id, email: "alice@example.org".to_owned(), rekey: None };
    assert_eq!(store.redeem_one_time_token(&hash, &free, later).await.expect("redeem"), alice.user.id);
    assert_eq!(user(&store, alice.user.id).await.email, "alice@example.org");
}

async fn change_email_clears_confirmation(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let mut account = new_account("old@example.com", now);
    account.user.confirmed_at = Some(now);
    store.create_account(&account).await.expect("create account");
    let id = account.user.id;
    let confirm = issue(&store, id, OneTimeKind::EmailConfirm, now).await;
    let change = issue(&store, id, OneTimeKind::EmailChange, now).await;

    let later = now.plus_secs(30);
    let redemption = Redemption::ChangeEmail { user_id: id, email: "new@example.com".to_owned(), rekey: None };
    assert_eq!(store.redeem_one_time_token(&change, &redemption, later).await.expect("redeem"), id);

    let expected =
        User { email: "new@example.com".to_owned(), confirmed_at: None, updated_at: later, ..account.user.clone() };
    assert_eq!(user(&store, id).await, expected);
    assert_eq!(store.user_by_email("old@example.com").await.expect("user_by_email"), None);
    assert_eq!(store.user_by_email("new@example.com").await.expect("user_by_email"), Some(expected.clone()));

    // A confirmation meant for the old address is gone.
    assert_eq!(store.peek_one_time_token(&confirm, OneTimeKind::EmailConfirm, later).await.expect("peek"), None);
    assert!(is_not_found(&store.redeem_one_time_token(&confirm, &Redemption::ConfirmEmail, later).await));
    assert_eq!(user(&store, id).await.confirmed_at, None);

    // The change token is spent; sessions were not touched.
    assert!(is_not_found(&store.redeem_one_time_token(&change, &redemption, later).await));
    assert_eq!(store.devices(id).await.expect("devices").len(), 1);

    // The old address is free again.
    create_account(&store, "old@example.com", later).await;
}

async fn change_email_voids_every_other_one_time_token(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let alice = create_account(&store, "alice@example.com", now).await;
    let bob = create_account(&store, "bob@example.com", now).await;
    let device = Some(alice.session.device_id);
    let outstanding = one_of_each(&store, alice.user.id, device, now).await;
    let pool = issue_from(&store, bob.user.id, None, OneTimeKind::PoolKey, now).await;
    // The change's own token replaced the one issued above; issued last, it is the live one.
    let change = issue_from(&store, alice.user.id, device, OneTimeKind::EmailChange, now).await;
    let later = now.plus_secs(10);
    assert_eq!(live_kinds(&store, &outstanding, later).await.len(), 4);

    let redemption =
        Redemption::ChangeEmail { user_id: alice.user.id, email: "alice@new.example".to_owned(), rekey: None };
    assert_eq!(store.redeem_one_time_token(&change, &redemption, later).await.expect("redeem"), alice.user.id);
    assert_eq!(live_kinds(&store, &outstanding, later).await, vec![]);
    let reset = Redemption::ResetPassword { password_hash: PASSWORD_HASH.to_owned() };
    assert!(is_not_found(&store.redeem_one_time_token(&outstanding[1].1, &reset, later).await));
    assert_eq!(user(&store, alice.user.id).await.password_hash, alice.user.password_hash);
    // Sessions stay (the email alone changed); another user's token stays.
    assert_eq!(store.devices(alice.user.id).await.expect("devices").len(), 1);
    assert_eq!(store.peek_one_time_token(&pool, OneTimeKind::PoolKey, later).await.expect("peek"), Some(bob.user.id));
}

async fn link_device_creates_a_session(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "link@example.com", now).await;
    let id = account.user.id;
    let hash = issue(&store, id, OneTimeKind::DeviceLink, now).await;

    let later = now.plus_secs(15);

    // A link whose session cannot be stored (its id is taken) fails as a whole: the token
    // stays unspent.
    let clash = NewSession { device_id: account.session.device_id, ..new_session(later) };
    let result = store.redeem_one_time_token(&hash, &Redemption::LinkDevice(clash), later).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(store.peek_one_time_token(&hash, OneTimeKind::DeviceLink, later).await.expect("peek"), Some(id));
    assert_eq!(device(&store, account.session.device_id).await.created_at, now);

    let session = NewSession { name: "Tablet".to_owned(), ..new_session(later) };
    let owner = store.redeem_one_time_token(&hash, &Redemption::LinkDevice(session.clone()), later).await;
    assert_eq!(owner.expect("redeem"), id);

    let linked = Device {
        id: session.device_id,
        user_id: id,
        name: "Tablet".to_owned(),
        created_at: later,
        last_seen_at: later,
        revoked_at: None,
    };
    assert_eq!(device(&store, session.device_id).await, linked);
    let devices = store.devices(id).await.expect("devices");
    assert_eq!(devices.iter().map(|device| device.id).collect::<Vec<_>>(), vec![account.session.device_id, linked.id]);

    // Its refresh token was stored with it.
    let t = later.plus_secs(1);
    let (_, outcome) = rotate(&store, &session.refresh_token_hash, t).await;
    assert_eq!(outcome, RefreshOutcome::Rotated { device: Device { last_seen_at: t, ..linked } });

    // Spent: a second link makes nothing.
    let again = new_session(later);
    assert!(is_not_found(&store.redeem_one_time_token(&hash, &Redemption::LinkDevice(again.clone()), later).await));
    assert_eq!(store.device(again.device_id).await.expect("device"), None);
    assert_eq!(store.devices(id).await.expect("devices").len(), 2);
}

async fn redeem_race_confirm_email_exactly_once(store: Arc<dyn Store>) {
    const RACERS: usize = 20;
    let now = Timestamp::now();
    let account = create_account(&store, "race@example.com", now).await;
    let hash = issue(&store, account.user.id, OneTimeKind::EmailConfirm, now).await;
    let barrier = Arc::new(Barrier::new(RACERS));

    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            let at = now.plus_secs(i as i64 + 1);
            tokio::spawn(async move {
                barrier.wait().await;
                (at, store.redeem_one_time_token(&hash, &Redemption::ConfirmEmail, at).await)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut not_found = 0;
    for task in tasks {
        match task.await.expect("task") {
            (at, Ok(owner)) => winners.push((at, owner)),
            (_, Err(StoreError::NotFound)) => not_found += 1,
            (_, Err(error)) => panic!("unexpected error: {error:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(not_found, RACERS - 1);
    let (at, owner) = winners[0];
    assert_eq!(owner, account.user.id);
    assert_eq!(user(&store, account.user.id).await.confirmed_at, Some(at));
}

async fn redeem_race_link_device_exactly_once(store: Arc<dyn Store>) {
    const RACERS: usize = 20;
    let now = Timestamp::now();
    let account = create_account(&store, "race@example.com", now).await;
    let hash = issue(&store, account.user.id, OneTimeKind::DeviceLink, now).await;
    let barrier = Arc::new(Barrier::new(RACERS));

    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            let session = new_session(now);
            tokio::spawn(async move {
                barrier.wait().await;
                let result = store.redeem_one_time_token(&hash, &Redemption::LinkDevice(session.clone()), now).await;
                (session.device_id, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut not_found = 0;
    for task in tasks {
        match task.await.expect("task") {
            (device_id, Ok(owner)) => winners.push((device_id, owner)),
            (_, Err(StoreError::NotFound)) => not_found += 1,
            (_, Err(error)) => panic!("unexpected error: {error:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(not_found, RACERS - 1);
    let (linked, owner) = winners[0];
    assert_eq!(owner, account.user.id);
    let devices = store.devices(account.user.id).await.expect("devices");
    let mut ids: Vec<_> = devices.iter().map(|device| device.id).collect();
    ids.sort();
    let mut expected = vec![account.session.device_id, linked];
    expected.sort();
    assert_eq!(ids, expected, "exactly one device was linked");
}

async fn replace_password_revokes_sessions_and_tokens(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "replace@example.com", now).await;
    let bystander = create_account(&store, "bystander@example.com", now).await;
    let id = account.user.id;
    let second = new_session(now);
    store.create_session(id, &second).await.expect("create session");
    let tokens = [
        (issue(&store, id, OneTimeKind::EmailConfirm, now).await, OneTimeKind::EmailConfirm),
        (issue(&store, id, OneTimeKind::PasswordReset, now).await, OneTimeKind::PasswordReset),
        (issue(&store, id, OneTimeKind::EmailChange, now).await, OneTimeKind::EmailChange),
        (issue(&store, id, OneTimeKind::DeviceLink, now).await, OneTimeKind::DeviceLink),
    ];
    let bystander_reset = issue(&store, bystander.user.id, OneTimeKind::PasswordReset, now).await;

    let later = now.plus_secs(45);
    store.replace_password(id, "$argon2id$replaced", None, None, later).await.expect("replace password");

    let expected = User { password_hash: "$argon2id$replaced".to_owned(), updated_at: later, ..account.user.clone() };
    assert_eq!(user(&store, id).await, expected);
    assert_eq!(store.devices(id).await.expect("devices"), vec![]);
    assert_eq!(device(&store, account.session.device_id).await.revoked_at, Some(later));
    assert_eq!(device(&store, second.device_id).await.revoked_at, Some(later));
    assert_eq!(rotate(&store, &account.session.refresh_token_hash, later).await.1, RefreshOutcome::Invalid);
    assert_eq!(rotate(&store, &second.refresh_token_hash, later).await.1, RefreshOutcome::Invalid);
    for (hash, kind) in &tokens {
        assert_eq!(store.peek_one_time_token(hash, *kind, later).await.expect("peek"), None, "{kind:?}");
    }
    let reset = Redemption::ResetPassword { password_hash: "$argon2id$sneaky".to_owned() };
    assert!(is_not_found(&store.redeem_one_time_token(&tokens[1].0, &reset, later).await));
    assert_eq!(user(&store, id).await.password_hash, "$argon2id$replaced");

    // The bystander keeps everything.
    assert_eq!(user(&store, bystander.user.id).await, bystander.user);
    assert_eq!(store.devices(bystander.user.id).await.expect("devices").len(), 1);
    assert_eq!(
        store.peek_one_time_token(&bystander_reset, OneTimeKind::PasswordReset, later).await.expect("peek"),
        Some(bystander.user.id)
    );

    assert!(is_not_found(&store.replace_password(Uuid::now_v7(), "$argon2id$x", None, None, later).await));
}
