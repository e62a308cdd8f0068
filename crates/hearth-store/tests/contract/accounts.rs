//! Accounts: creating users with their profile and first session, reading, listing, renaming and
//! deleting them, and their identities.

use std::sync::Arc;

use hearth_store::{
    Device, DirectoryPage, Identity, OneTimeKind, Profile, ProfileUpdate, Redemption, RefreshOutcome, Store,
    StoreError, Theme, Timestamp, User, UserSummary,
};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::{create_account, device, is_not_found, issue, new_account, new_session, rotate, user};

contract!(
    account_round_trips_every_field,
    duplicate_email_conflicts_and_writes_nothing,
    create_account_is_atomic,
    default_profile_and_partial_updates,
    profile_of_unknown_user_is_not_found,
    list_users_orders_and_pages_by_id,
    set_display_name_changes_only_the_name,
    delete_user_cascades,
    an_identity_is_published_once_then_replaced,
    of_concurrent_first_identities_one_is_stored,
    a_rekeying_rewraps_the_identity_or_changes_nothing,
    sealed_identity_private_keys_page_and_compare_and_swap,
);

/// An identity whose two forms are tagged with `tag` (the store reads neither).
pub(crate) fn identity(tag: &str) -> Identity {
    Identity {
        public_key: format!(r#"{{"signing":{{"tag":"{tag}"}},"agreement":{{"tag":"{tag}"}}}}"#),
        sealed_private_key: format!("sealed identity {tag}").into_bytes(),
    }
}

async fn account_round_trips_every_field(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let mut account = new_account("ada@example.com", now);
    account.user.display_name = "Ada Lovelace — 数学者".to_owned();
    // Three distinct instants, none on a whole second.
    account.user.confirmed_at = Some(Timestamp::from_millis(now.as_millis() - 12_345));
    account.user.inserted_at = Timestamp::from_millis(now.as_millis() - 1_001);
    account.user.updated_at = now;
    store.create_account(&account).await.expect("create account");

    let by_id = store.user(account.user.id).await.expect("user").expect("user exists");
    assert_eq!(by_id, account.user);
    let by_email = store.user_by_email("ada@example.com").await.expect("user_by_email").expect("found by email");
    assert_eq!(by_email, account.user);

    assert_eq!(store.user(Uuid::now_v7()).await.expect("unknown user"), None);
    assert_eq!(store.user_by_email("nobody@example.com").await.expect("unknown email"), None);

    // The first session came with the account.
    let expected = Device {
        id: account.session.device_id,
        user_id: account.user.id,
        name: account.session.name.clone(),
        created_at: now,
        last_seen_at: now,
        revoked_at: None,
    };
    assert_eq!(store.device(expected.id).await.expect("device"), Some(expected.clone()));
    assert_eq!(store.devices(account.user.id).await.expect("devices"), vec![expected.clone()]);

    // And its refresh token was stored.
    let later = now.plus_secs(5);
    let (_, outcome) = rotate(&store, &account.session.refresh_token_hash, later).await;
    assert_eq!(outcome, RefreshOutcome::Rotated { device: Device { last_seen_at: later, ..expected } });
}

async fn duplicate_email_conflicts_and_writes_nothing(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let first = create_account(&store, "grace@example.com", now).await;

    let second = new_account("grace@example.com", now.plus_secs(1));
    let result = store.create_account(&second).await;
    assert!(matches!(result, Err(StoreError::Conflict("email"))), "{result:?}");

    assert_eq!(store.user(second.user.id).await.expect("user"), None);
    assert_eq!(store.device(second.session.device_id).await.expect("device"), None);
    assert_eq!(store.devices(second.user.id).await.expect("devices"), vec![]);
    assert!(is_not_found(&store.profile(second.user.id).await));
    let (_, outcome) = rotate(&store, &second.session.refresh_token_hash, now.plus_secs(2)).await;
    assert_eq!(outcome, RefreshOutcome::Invalid);

    // The first account is untouched.
    assert_eq!(store.user_by_email("grace@example.com").await.expect("user_by_email"), Some(first.user.clone()));
    assert_eq!(store.devices(first.user.id).await.expect("devices").len(), 1);
    let users = listed(&store, None, 10).await.expect("list users");
    assert_eq!(users, vec![UserSummary::from(&first.user)]);

    // The same account, retried with a free address, goes through.
    let mut retry = second.clone();
    retry.user.email = "grace.hopper@example.com".to_owned();
    store.create_account(&retry).await.expect("create with a free address");
    assert_eq!(user(&store, retry.user.id).await, retry.user);
}

async fn create_account_is_atomic(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let first = create_account(&store, "first@example.com", now).await;

    // The user row would go in, but the first session's device id is taken.
    let mut clash = new_account("second@example.com", now);
    clash.session.device_id = first.session.device_id;
    let result = store.create_account(&clash).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(store.user(clash.user.id).await.expect("user"), None);
    assert_eq!(store.user_by_email("second@example.com").await.expect("user_by_email"), None);
    assert!(is_not_found(&store.profile(clash.user.id).await));
    assert_eq!(device(&store, first.session.device_id).await.user_id, first.user.id);

    // Likewise a refresh token hash that is taken.
    let mut clash = new_account("third@example.com", now);
    clash.session.refresh_token_hash = first.session.refresh_token_hash;
    let result = store.create_account(&clash).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(store.user(clash.user.id).await.expect("user"), None);
    assert_eq!(store.device(clash.session.device_id).await.expect("device"), None);

    assert_eq!(listed(&store, None, 10).await.expect("list users"), vec![UserSummary::from(&first.user)]);
}

async fn default_profile_and_partial_updates(store: Arc<dyn Store>) {
    let account = create_account(&store, "lin@example.com", Timestamp::now()).await;
    let id = account.user.id;

    let profile = store.profile(id).await.expect("profile");
    assert!(!profile.hidden);
    assert_eq!(profile.theme, Theme::Day);
    assert_eq!(profile.magnification, 1.0);
    assert!(profile.recents.is_empty());
    assert_eq!(profile, Profile::default());

    let updated = store.update_profile(id, &ProfileUpdate { hidden: Some(true), ..Default::default() }).await;
    let expected = Profile { hidden: true, ..Profile::default() };
    assert_eq!(updated.expect("update hidden"), expected);
    assert_eq!(store.profile(id).await.expect("profile"), expected);

    let updated = store.update_profile(id, &ProfileUpdate { theme: Some(Theme::Night), ..Default::default() }).await;
    let expected = Profile { theme: Theme::Night, ..expected };
    assert_eq!(updated.expect("update theme"), expected);

    let updated = store.update_profile(id, &ProfileUpdate { magnification: Some(1.25), ..Default::default() }).await;
    let expected = Profile { magnification: 1.25, ..expected };
    assert_eq!(updated.expect("update magnification"), expected);

    let recents = vec![
        "/rooms/café".to_owned(),
        "/dm/日本語のページ".to_owned(),
        "🔥 emoji".to_owned(),
        "quote \" backslash \\ newline \n tab \t".to_owned(),
        String::new(),
    ];
    let updated =
        store.update_profile(id, &ProfileUpdate { recents: Some(recents.clone()), ..Default::default() }).await;
    let expected = Profile { recents, ..expected };
    assert_eq!(updated.expect("update recents"), expected);
    assert_eq!(store.profile(id).await.expect("profile"), expected);

    // An empty update changes nothing.
    let updated = store.update_profile(id, &ProfileUpdate::default()).await.expect("empty update");
    assert_eq!(updated, expected);

    // Several fields at once; the rest stay.
    let update = ProfileUpdate { hidden: Some(false), magnification: Some(0.7), ..Default::default() };
    let expected = Profile { hidden: false, magnification: 0.7, ..expected };
    assert_eq!(store.update_profile(id, &update).await.expect("update two fields"), expected);

    // Recents are replaced, not appended; an empty list clears them.
    let update = ProfileUpdate { recents: Some(vec![]), ..Default::default() };
    let expected = Profile { recents: vec![], ..expected };
    assert_eq!(store.update_profile(id, &update).await.expect("clear recents"), expected);
    assert_eq!(store.profile(id).await.expect("profile"), expected);

    // Another user's profile was not touched.
    let other = create_account(&store, "other@example.com", Timestamp::now()).await;
    assert_eq!(store.profile(other.user.id).await.expect("other profile"), Profile::default());
}

async fn profile_of_unknown_user_is_not_found(store: Arc<dyn Store>) {
    let unknown = Uuid::now_v7();
    assert!(is_not_found(&store.profile(unknown).await));
    let update = ProfileUpdate { hidden: Some(true), ..Default::default() };
    assert!(is_not_found(&store.update_profile(unknown, &update).await));
}

/// A directory page as nobody in particular sees it: the users only.
async fn listed(
    store: &Arc<dyn Store>,
    after: Option<Uuid>,
    limit: u32,
) -> hearth_store::StoreResult<Vec<UserSummary>> {
    let page = DirectoryPage { viewer: Uuid::nil(), search: None, after, limit };
    Ok(store.directory(&page).await?.into_iter().map(|entry| entry.user).collect())
}

async fn list_users_orders_and_pages_by_id(store: Arc<dyn Store>) {
    assert_eq!(listed(&store, None, 10).await.expect("empty list"), vec![]);

    let now = Timestamp::now();
    let mut expected = Vec::new();
    for i in 0..5 {
        let mut account = new_account(&format!("user{i}@example.com"), now);
        // Random (v4) ids, so creation order is not id order.
        account.user.id = Uuid::new_v4();
        account.user.display_name = format!("User {i}");
        store.create_account(&account).await.expect("create account");
        expected.push(UserSummary::from(&account.user));
    }
    expected.sort_by_key(|user| user.id);

    assert_eq!(listed(&store, None, 100).await.expect("list all"), expected);
    assert_eq!(listed(&store, None, 2).await.expect("first page"), expected[..2].to_vec());

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = listed(&store, after, 2).await.expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2, "page too long: {page:?}");
        after = page.last().map(|user| user.id);
        pages.push(page);
        assert!(pages.len() <= 5, "paging does not terminate");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
    assert_eq!(pages.concat(), expected);

    // `after` is exclusive, and need not be an existing id.
    assert_eq!(listed(&store, Some(expected[2].id), 10).await.expect("after third"), expected[3..].to_vec());
    assert_eq!(listed(&store, Some(expected[4].id), 10).await.expect("after last"), vec![]);
    assert_eq!(listed(&store, Some(Uuid::nil()), 10).await.expect("after nil"), expected);
    assert_eq!(listed(&store, Some(Uuid::max()), 10).await.expect("after max"), vec![]);
}

async fn set_display_name_changes_only_the_name(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "kim@example.com", now).await;
    let later = now.plus_secs(60);

    store.set_display_name(account.user.id, "Kim 김", later).await.expect("set display name");
    let expected = User { display_name: "Kim 김".to_owned(), updated_at: later, ..account.user.clone() };
    assert_eq!(user(&store, account.user.id).await, expected);
    let listed = listed(&store, None, 10).await.expect("list users");
    assert_eq!(listed, vec![UserSummary::from(&expected)]);

    assert!(is_not_found(&store.set_display_name(Uuid::now_v7(), "Nobody", later).await));
}

async fn delete_user_cascades(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let doomed = create_account(&store, "doomed@example.com", now).await;
    let keeper = create_account(&store, "keeper@example.com", now).await;
    let second = new_session(now);
    store.create_session(doomed.user.id, &second).await.expect("second session");
    store
        .update_profile(doomed.user.id, &ProfileUpdate { hidden: Some(true), ..Default::default() })
        .await
        .expect("profile");
    let confirm = issue(&store, doomed.user.id, OneTimeKind::EmailConfirm, now).await;
    let keeper_confirm = issue(&store, keeper.user.id, OneTimeKind::EmailConfirm, now).await;

    store.delete_user(doomed.user.id).await.expect("delete user");

    assert_eq!(store.user(doomed.user.id).await.expect("user"), None);
    assert_eq!(store.user_by_email("doomed@example.com").await.expect("user_by_email"), None);
    assert_eq!(store.device(doomed.session.device_id).await.expect("device"), None);
    assert_eq!(store.device(second.device_id).await.expect("device"), None);
    assert_eq!(store.devices(doomed.user.id).await.expect("devices"), vec![]);
    assert!(is_not_found(&store.profile(doomed.user.id).await));
    let later = now.plus_secs(1);
    assert_eq!(rotate(&store, &doomed.session.refresh_token_hash, later).await.1, RefreshOutcome::Invalid);
    assert_eq!(rotate(&store, &second.refresh_token_hash, later).await.1, RefreshOutcome::Invalid);
    assert_eq!(store.peek_one_time_token(&confirm, OneTimeKind::EmailConfirm, later).await.expect("peek"), None);
    assert!(is_not_found(&store.redeem_one_time_token(&confirm, &Redemption::ConfirmEmail, later).await));

    // The address is free again.
    create_account(&store, "doomed@example.com", later).await;

    // Nothing of the other user went.
    assert_eq!(user(&store, keeper.user.id).await, keeper.user);
    assert_eq!(store.devices(keeper.user.id).await.expect("devices").len(), 1);
    assert_eq!(
        store.peek_one_time_token(&keeper_confirm, OneTimeKind::EmailConfirm, later).await.expect("peek"),
        Some(keeper.user.id)
    );

    assert!(is_not_found(&store.delete_user(doomed.user.id).await));
    assert!(is_not_found(&store.delete_user(Uuid::now_v7()).await));
}

async fn an_identity_is_published_once_then_replaced(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let ada = create_account(&store, "ada@example.com", now).await;
    let bob = create_account(&store, "bob@example.com", now).await;
    let id = ada.user.id;
    assert_eq!(store.identity(id).await.expect("identity"), None);
    assert_eq!(user(&store, id).await.identity_key, None);

    // The first one needs nothing.
    let later = now.plus_secs(1);
    store.set_identity(id, &identity("first"), false, later).await.expect("first identity");
    assert_eq!(store.identity(id).await.expect("identity"), Some(identity("first")));
    let expected = User { identity_key: Some(identity("first").public_key), updated_at: later, ..ada.user.clone() };
    assert_eq!(user(&store, id).await, expected);
    assert_eq!(store.user_by_email("ada@example.com").await.expect("by email"), Some(expected.clone()));
    // Everyone sees its public form.
    let listed = listed(&store, None, 10).await.expect("list users");
    assert_eq!(listed, vec![UserSummary::from(&expected), UserSummary::from(&bob.user)]);
    assert_eq!(listed[0].identity_key, Some(identity("first").public_key));

    // Another first one conflicts and changes nothing.
    let refused = store.set_identity(id, &identity("second"), false, later.plus_secs(1)).await;
    assert!(matches!(refused, Err(StoreError::Conflict("identity"))), "{refused:?}");
    assert_eq!(store.identity(id).await.expect("identity"), Some(identity("first")));
    assert_eq!(user(&store, id).await, expected);

    // A replacement goes through whatever was there.
    let latest = later.plus_secs(2);
    store.set_identity(id, &identity("second"), true, latest).await.expect("replace");
    assert_eq!(store.identity(id).await.expect("identity"), Some(identity("second")));
    let replaced = user(&store, id).await;
    assert_eq!((replaced.identity_key, replaced.updated_at), (Some(identity("second").public_key), latest));

    // Bob has none; nobody has none and cannot get one.
    assert_eq!(store.identity(bob.user.id).await.expect("identity"), None);
    assert_eq!(store.identity(Uuid::now_v7()).await.expect("nobody's"), None);
    for replace in [false, true] {
        assert!(is_not_found(&store.set_identity(Uuid::now_v7(), &identity("ghost"), replace, latest).await));
    }

    // It goes with the account.
    store.delete_user(id).await.expect("delete");
    assert_eq!(store.identity(id).await.expect("identity"), None);
}

async fn of_concurrent_first_identities_one_is_stored(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let id = create_account(&store, "ada@example.com", now).await.user.id;
    const TRIES: usize = 8;
    let barrier = Arc::new(Barrier::new(TRIES));
    let tasks: Vec<_> = (0..TRIES)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.set_identity(id, &identity(&format!("try {i}")), false, now).await.map(|()| i)
            })
        })
        .collect();
    let mut stored = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(i) => stored.push(i),
            Err(StoreError::Conflict("identity")) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored.len(), 1, "exactly one first identity: {stored:?}");
    let winner = identity(&format!("try {}", stored[0]));
    assert_eq!(store.identity(id).await.expect("identity"), Some(winner));
}

async fn a_rekeying_rewraps_the_identity_or_changes_nothing(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "ada@example.com", now).await;
    let id = account.user.id;
    let hash = |store: Arc<dyn Store>| async move { user(&store, id).await.password_hash };
    let rule = |result: &Result<(), StoreError>| matches!(result, Err(StoreError::Rule(_)));
    // She has no conversation keys, so the empty set is exactly hers.
    let no_keys: &[(Uuid, Vec<u8>)] = &[];

    // Without an identity: an identity key to re-wrap is refused, none is fine.
    let refused = store.replace_password(id, "$argon2id$a", Some(no_keys), Some(b"sealed"), now).await;
    assert!(rule(&refused), "{refused:?}");
    assert_eq!(hash(store.clone()).await, account.user.password_hash);
    store.replace_password(id, "$argon2id$a", Some(no_keys), None, now).await.expect("re-keyed");
    assert_eq!(hash(store.clone()).await, "$argon2id$a");

    // With one: a re-keying that leaves it out is refused, and so is one without the other keys.
    store.set_identity(id, &identity("ada"), false, now).await.expect("identity");
    let refused = store.replace_password(id, "$argon2id$b", Some(no_keys), None, now).await;
    assert!(rule(&refused), "{refused:?}");
    let refused = store.replace_password(id, "$argon2id$b", None, Some(b"rewrapped"), now).await;
    assert!(rule(&refused), "{refused:?}");
    assert_eq!(hash(store.clone()).await, "$argon2id$a");
    assert_eq!(store.identity(id).await.expect("identity"), Some(identity("ada")));

    // Re-wrapped with the rest: replaced with the password, the public form kept.
    store.replace_password(id, "$argon2id$c", Some(no_keys), Some(b"rewrapped"), now).await.expect("re-keyed");
    assert_eq!(hash(store.clone()).await, "$argon2id$c");
    let rewrapped = Identity { public_key: identity("ada").public_key, sealed_private_key: b"rewrapped".to_vec() };
    assert_eq!(store.identity(id).await.expect("identity"), Some(rewrapped.clone()));

    // A password change that does not re-key leaves it as it is.
    store.replace_password(id, "$argon2id$d", None, None, now).await.expect("changed");
    assert_eq!(store.identity(id).await.expect("identity"), Some(rewrapped));
    assert!(is_not_found(&store.replace_password(Uuid::now_v7(), "$argon2id$e", Some(no_keys), None, now).await));
}

async fn sealed_identity_private_keys_page_and_compare_and_swap(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    assert_eq!(store.sealed_identity_private_keys(None, 10).await.expect("none yet"), vec![]);
    let mut expected = Vec::new();
    for i in 0..4 {
        let mut account = new_account(&format!("user{i}@example.com"), now);
        // Random (v4) ids, so creation order is not id order.
        account.user.id = Uuid::new_v4();
        store.create_account(&account).await.expect("create account");
        // One of them has no identity and is never listed.
        if i != 2 {
            let tagged = identity(&format!("user {i}"));
            store.set_identity(account.user.id, &tagged, false, now).await.expect("identity");
            expected.push((account.user.id, tagged.sealed_private_key));
        }
    }
    expected.sort();
    assert_eq!(store.sealed_identity_private_keys(None, 10).await.expect("all"), expected);
    assert_eq!(store.sealed_identity_private_keys(None, 2).await.expect("first page"), expected[..2].to_vec());
    let after = Some(expected[1].0);
    assert_eq!(store.sealed_identity_private_keys(after, 2).await.expect("second page"), expected[2..].to_vec());
    assert_eq!(store.sealed_identity_private_keys(Some(Uuid::nil()), 10).await.expect("after nil"), expected);
    assert_eq!(store.sealed_identity_private_keys(Some(Uuid::max()), 10).await.expect("after max"), vec![]);

    let (id, old) = expected[0].clone();
    assert!(!store.replace_sealed_identity_private_key(id, b"not the old one", b"new").await.expect("swap"));
    assert!(store.replace_sealed_identity_private_key(id, &old, b"resealed").await.expect("swap"));
    let identity = store.identity(id).await.expect("identity").expect("has one");
    assert_eq!(identity.sealed_private_key, b"resealed");
    assert!(!store.replace_sealed_identity_private_key(id, &old, b"other").await.expect("changed meanwhile"));
    assert!(!store.replace_sealed_identity_private_key(Uuid::now_v7(), &old, b"x").await.expect("nobody"));
}
