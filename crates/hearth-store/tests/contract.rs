//! The storage contract: every test here runs against SQLite and against PostgreSQL.
//!
//! Each contract test is an `async fn(Arc<dyn Store>)`; [`contract!`] turns the list of them
//! into `sqlite::<name>` and `postgres::<name>` tests, each on a fresh database that lives
//! for the whole test. The PostgreSQL ones return early (after saying "skipped" on stderr)
//! when `HEARTH_TEST_POSTGRES_URL` is unset.

use std::sync::Arc;

use hearth_store::testing::TestDatabase;
use hearth_store::{
    ConnectOptions, Device, NewAccount, NewOneTimeToken, NewSession, OneTimeKind, Profile, ProfileUpdate, Redemption,
    RefreshOutcome, Store, StoreError, Theme, Timestamp, User, UserSummary,
};
use tokio::sync::Barrier;
use uuid::Uuid;

/// Generates a SQLite and a PostgreSQL test for each contract test.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let database = hearth_store::testing::TestDatabase::sqlite();
                    let store = super::connect(&database).await;
                    assert_eq!(store.backend(), "sqlite");
                    super::$name(store).await;
                    drop(database);
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!("contract::", stringify!($name));
                    let Some(database) = hearth_store::testing::TestDatabase::postgres(test).await else {
                        return;
                    };
                    let store = super::connect(&database).await;
                    assert_eq!(store.backend(), "postgres");
                    super::$name(store).await;
                    drop(database);
                }
            )*
        }
    };
}

contract!(
    migrate_is_idempotent,
    account_round_trips_every_field,
    duplicate_email_conflicts_and_writes_nothing,
    create_account_is_atomic,
    default_profile_and_partial_updates,
    profile_of_unknown_user_is_not_found,
    list_users_orders_and_pages_by_id,
    set_display_name_changes_only_the_name,
    delete_user_cascades,
    sessions_list_and_revoke,
    revoke_all_devices_revokes_only_that_users,
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
    link_device_creates_a_session,
    redeem_race_confirm_email_exactly_once,
    redeem_race_link_device_exactly_once,
    replace_password_revokes_sessions_and_tokens,
);

// --- helpers ---

const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

async fn connect(database: &TestDatabase) -> Arc<dyn Store> {
    hearth_store::connect(&ConnectOptions { url: database.url.clone(), max_connections: 8 })
        .await
        .expect("connect and migrate")
}

/// 32 random bytes, standing in for the SHA-256 of a token.
fn token_hash() -> [u8; 32] {
    let mut hash = [0; 32];
    hash[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    hash[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    hash
}

fn new_session(created_at: Timestamp) -> NewSession {
    NewSession {
        device_id: Uuid::now_v7(),
        name: "Firefox on Linux".to_owned(),
        refresh_token_hash: token_hash(),
        refresh_expires_at: created_at.plus_secs(30 * 24 * 3600),
        created_at,
    }
}

fn new_account(email: &str, now: Timestamp) -> NewAccount {
    NewAccount {
        user: User {
            id: Uuid::now_v7(),
            email: email.to_owned(),
            display_name: email.to_owned(),
            password_hash: PASSWORD_HASH.to_owned(),
            confirmed_at: None,
            inserted_at: now,
            updated_at: now,
        },
        session: new_session(now),
    }
}

async fn create_account(store: &Arc<dyn Store>, email: &str, now: Timestamp) -> NewAccount {
    let account = new_account(email, now);
    store.create_account(&account).await.expect("create account");
    account
}

async fn issue(store: &Arc<dyn Store>, user_id: Uuid, kind: OneTimeKind, now: Timestamp) -> [u8; 32] {
    let token =
        NewOneTimeToken { token_hash: token_hash(), user_id, kind, created_at: now, expires_at: now.plus_secs(3600) };
    store.issue_one_time_token(&token).await.expect("issue one-time token");
    token.token_hash
}

async fn user(store: &Arc<dyn Store>, id: Uuid) -> User {
    store.user(id).await.expect("read user").expect("user exists")
}

async fn device(store: &Arc<dyn Store>, id: Uuid) -> Device {
    store.device(id).await.expect("read device").expect("device exists")
}

async fn rotate(store: &Arc<dyn Store>, presented: &[u8; 32], now: Timestamp) -> ([u8; 32], RefreshOutcome) {
    let successor = token_hash();
    let outcome = store
        .rotate_refresh_token(presented, &successor, now.plus_secs(3600), now)
        .await
        .expect("rotate refresh token");
    (successor, outcome)
}

fn is_not_found<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::NotFound))
}

// --- migrations and health ---

async fn migrate_is_idempotent(store: Arc<dyn Store>) {
    assert!(matches!(store.backend(), "sqlite" | "postgres"), "backend {}", store.backend());
    store.ping().await.expect("ping");
    // `connect` already migrated.
    assert_eq!(store.migrate().await.expect("second migrate"), 0);
    assert_eq!(store.migrate().await.expect("third migrate"), 0);
    store.ping().await.expect("ping after migrate");
}

// --- accounts ---

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
    let users = store.list_users(None, 10).await.expect("list users");
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

    assert_eq!(store.list_users(None, 10).await.expect("list users"), vec![UserSummary::from(&first.user)]);
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

async fn list_users_orders_and_pages_by_id(store: Arc<dyn Store>) {
    assert_eq!(store.list_users(None, 10).await.expect("empty list"), vec![]);

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

    assert_eq!(store.list_users(None, 100).await.expect("list all"), expected);
    assert_eq!(store.list_users(None, 2).await.expect("first page"), expected[..2].to_vec());

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_users(after, 2).await.expect("page");
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
    assert_eq!(store.list_users(Some(expected[2].id), 10).await.expect("after third"), expected[3..].to_vec());
    assert_eq!(store.list_users(Some(expected[4].id), 10).await.expect("after last"), vec![]);
    assert_eq!(store.list_users(Some(Uuid::nil()), 10).await.expect("after nil"), expected);
    assert_eq!(store.list_users(Some(Uuid::max()), 10).await.expect("after max"), vec![]);
}

async fn set_display_name_changes_only_the_name(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let account = create_account(&store, "kim@example.com", now).await;
    let later = now.plus_secs(60);

    store.set_display_name(account.user.id, "Kim 김", later).await.expect("set display name");
    let expected = User { display_name: "Kim 김".to_owned(), updated_at: later, ..account.user.clone() };
    assert_eq!(user(&store, account.user.id).await, expected);
    let listed = store.list_users(None, 10).await.expect("list users");
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

// --- device sessions ---

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
    assert_eq!(outcome, RefreshOutcome::Reused);
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
    assert!(others.iter().all(|outcome| *outcome == RefreshOutcome::Reused), "{others:?}");
}

// --- one-time tokens ---

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
        Redemption::ChangeEmail { user_id: id, email: "changed@example.com".to_owned() },
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

    let later = now.plus_secs(120);
    let redemption = Redemption::ResetPassword { password_hash: "$argon2id$new".to_owned() };
    assert_eq!(store.redeem_one_time_token(&reset, &redemption, later).await.expect("redeem"), id);

    let expected = User { password_hash: "$argon2id$new".to_owned(), updated_at: later, ..account.user.clone() };
    assert_eq!(user(&store, id).await, expected);
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
    assert_eq!(user(&store, bystander.user.id).await, bystander.user);
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

    let wrong = Redemption::ChangeEmail { user_id: mallory.user.id, email: "mallory2@example.com".to_owned() };
    let result = store.redeem_one_time_token(&hash, &wrong, later).await;
    assert!(is_not_found(&result), "{result:?}");
    assert_eq!(user(&store, alice.user.id).await, alice.user);
    assert_eq!(user(&store, mallory.user.id).await, mallory.user);
    assert_eq!(store.user_by_email("mallory2@example.com").await.expect("user_by_email"), None);
    assert_eq!(
        store.peek_one_time_token(&hash, OneTimeKind::EmailChange, later).await.expect("peek"),
        Some(alice.user.id)
    );

    let right = Redemption::ChangeEmail { user_id: alice.user.id, email: "alice2@example.com".to_owned() };
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

    let taken = Redemption::ChangeEmail { user_id: alice.user.id, email: "bob@example.com".to_owned() };
    let result = store.redeem_one_time_token(&hash, &taken, later).await;
    assert!(matches!(result, Err(StoreError::Conflict("email"))), "{result:?}");
    assert_eq!(user(&store, alice.user.id).await, alice.user);
    assert_eq!(user(&store, bob.user.id).await, bob.user);
    assert_eq!(
        store.peek_one_time_token(&hash, OneTimeKind::EmailChange, later).await.expect("peek"),
        Some(alice.user.id),
        "a conflicting change must not spend the token"
    );

    let free = Redemption::ChangeEmail { user_id: alice.user.id, email: "alice@example.org".to_owned() };
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
    let redemption = Redemption::ChangeEmail { user_id: id, email: "new@example.com".to_owned() };
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
    store.replace_password(id, "$argon2id$replaced", later).await.expect("replace password");

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

    assert!(is_not_found(&store.replace_password(Uuid::now_v7(), "$argon2id$x", later).await));
}

// --- beyond the per-store contract ---

/// Number of migrations shipped for `backend`.
fn migration_count(backend: &str) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    std::fs::read_dir(dir)
        .expect("migrations directory")
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "sql")))
        .count()
}

/// `open` does not migrate; the first `migrate` applies everything, later ones (from any
/// connection) nothing.
async fn migrations_apply_once(database: &TestDatabase, backend: &str) {
    let options = ConnectOptions { url: database.url.clone(), max_connections: 2 };
    let store = hearth_store::open(&options).await.expect("open");
    assert_eq!(store.backend(), backend);
    store.ping().await.expect("ping before migrating");
    let expected = migration_count(backend);
    assert!(expected > 0);
    assert_eq!(store.migrate().await.expect("first migrate"), expected);
    assert_eq!(store.migrate().await.expect("second migrate"), 0);
    let again = hearth_store::connect(&options).await.expect("connect");
    assert_eq!(again.migrate().await.expect("migrate from a new pool"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrations_apply_once() {
    let database = TestDatabase::sqlite();
    migrations_apply_once(&database, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_apply_once() {
    let Some(database) = TestDatabase::postgres("contract::postgres_migrations_apply_once").await else {
        return;
    };
    migrations_apply_once(&database, "postgres").await;
}

#[tokio::test]
async fn unsupported_url_is_refused() {
    for url in ["mysql://localhost/hearth", "hearth.db", ""] {
        let result = hearth_store::connect(&ConnectOptions { url: url.to_owned(), max_connections: 1 }).await;
        assert!(matches!(result, Err(StoreError::UnsupportedUrl)), "{url}: {result:?}");
    }
}
