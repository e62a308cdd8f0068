//! The storage contract: every test here runs against SQLite and against PostgreSQL.
//!
//! Each contract test is an `async fn(Arc<dyn Store>)`; [`contract!`] turns the list of them
//! into `sqlite::<name>` and `postgres::<name>` tests, each on a fresh database that lives
//! for the whole test. The PostgreSQL ones return early (after saying "skipped" on stderr)
//! when `HEARTH_TEST_POSTGRES_URL` is unset.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_store::testing::TestDatabase;
use hearth_store::{
    ASSISTANT_SENDER, AllowanceKind, AssistantImage, AssistantTurn, ConnectOptions, Conversation, Device,
    EncryptionKeys, KeyOwner, KnowledgeEntry, MessageDelivery, NewAccount, NewConversation, NewMessageGroup,
    NewOneTimeToken, NewProviderKey, NewSession, OneTimeKind, Profile, ProfileUpdate, Redemption, RefreshOutcome,
    SealedKeyRow, Store, StoreError, StoredMessage, StoredProviderKey, Theme, Timestamp, User, UserSummary,
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
    create_and_read_conversations,
    private_conversation_is_unique_per_pair,
    conversation_rules,
    unknown_member_is_not_found_and_writes_nothing,
    conversations_of_members_and_partners,
    read_times_and_mark_read,
    unread_counts_follow_read_times,
    alias_and_members_of_groups_only,
    leave_removes_member_and_keys,
    encryption_keys_upsert,
    private_keys_are_replaced_all_at_once_or_not_at_all,
    an_email_change_can_rekey_in_its_transaction,
    send_message_to_exactly_the_members,
    client_msg_id_makes_resends_idempotent,
    concurrent_resends_store_one_group,
    concurrent_sends_each_get_their_own_outcome,
    a_send_the_database_refuses_fails_alone,
    edit_message_follows_the_members,
    delete_message_removes_every_copy,
    who_left_can_neither_edit_nor_delete_their_messages,
    messages_page_newest_first,
    sealed_private_keys_page_and_compare_and_swap,
    delete_user_removes_conversation_rows,
    delete_user_removes_sends_where_they_left,
    allowance_is_exact_under_concurrency,
    allowance_counts_per_day_and_kind_and_refunds,
    assistant_turns_newest_first_per_thread,
    concurrent_turns_are_all_stored_and_a_bad_one_fails_alone,
    one_assistant_conversation_per_person,
    assistant_replies_reach_only_the_owner,
    assistant_images_only_for_their_owner,
    knowledge_is_searched_by_words_within_a_topic,
    configure_link_stores_a_key_for_its_owner_only,
    configure_link_of_another_user_is_not_found,
    configure_link_replaces_earlier_links_of_either_kind,
    expired_configure_link_is_refused,
    redeem_race_provider_key_exactly_once,
    delete_provider_key_of_another_owner_is_not_found,
    delete_provider_keys_of_counts,
    record_key_outcomes_tracks_use_and_failures,
    all_provider_keys_pages_by_id,
    replace_sealed_provider_key_compares_and_swaps,
    provider_key_versions_count_per_version,
    delete_user_removes_their_provider_keys_not_the_pools,
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
    issue_from(store, user_id, None, kind, now).await
}

/// Issues a token made by the device session `device_id`, if any.
async fn issue_from(
    store: &Arc<dyn Store>,
    user_id: Uuid,
    device_id: Option<Uuid>,
    kind: OneTimeKind,
    now: Timestamp,
) -> [u8; 32] {
    let token = NewOneTimeToken {
        token_hash: token_hash(),
        user_id,
        device_id,
        kind,
        created_at: now,
        expires_at: now.plus_secs(3600),
    };
    store.issue_one_time_token(&token).await.expect("issue one-time token");
    token.token_hash
}

/// Every kind of one-time token, each issued for `user_id` (by `device_id` where given).
async fn one_of_each(
    store: &Arc<dyn Store>,
    user_id: Uuid,
    device_id: Option<Uuid>,
    now: Timestamp,
) -> Vec<(OneTimeKind, [u8; 32])> {
    let mut tokens = Vec::new();
    // A user has one live configure link, of either kind: the pool's is issued on its own.
    for kind in [
        OneTimeKind::EmailConfirm,
        OneTimeKind::PasswordReset,
        OneTimeKind::EmailChange,
        OneTimeKind::DeviceLink,
        OneTimeKind::ProviderKey,
    ] {
        tokens.push((kind, issue_from(store, user_id, device_id, kind, now).await));
    }
    tokens
}

async fn live_kinds(store: &Arc<dyn Store>, tokens: &[(OneTimeKind, [u8; 32])], now: Timestamp) -> Vec<OneTimeKind> {
    let mut live = Vec::new();
    for (kind, hash) in tokens {
        if store.peek_one_time_token(hash, *kind, now).await.expect("peek").is_some() {
            live.push(*kind);
        }
    }
    live
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
    store.replace_password(id, "$argon2id$replaced", None, later).await.expect("replace password");

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

    assert!(is_not_found(&store.replace_password(Uuid::now_v7(), "$argon2id$x", None, later).await));
}

// --- conversations ---

const RECIPIENTS_RULE: &str = "encrypted_messages must name exactly the conversation's members";

fn keys(tag: &str) -> EncryptionKeys {
    EncryptionKeys {
        public_key: format!(r#"{{"kty":"EC","crv":"P-256","tag":"{tag}"}}"#),
        sealed_private_key: format!("sealed {tag}").into_bytes(),
    }
}

fn new_conversation(creator: Uuid, members: &[Uuid], private: bool, now: Timestamp) -> NewConversation {
    NewConversation {
        id: Uuid::now_v7(),
        private,
        alias: None,
        creator,
        members: members.to_vec(),
        creator_keys: keys(&format!("{creator}")),
        now,
    }
}

/// Accounts `<name>@example.com` for each name, in order (so their ids ascend).
async fn people<const N: usize>(store: &Arc<dyn Store>, names: [&str; N], now: Timestamp) -> [User; N] {
    let mut users = Vec::new();
    for name in names {
        users.push(create_account(store, &format!("{name}@example.com"), now).await.user);
    }
    users.try_into().expect("one user per name")
}

async fn group(store: &Arc<dyn Store>, creator: Uuid, members: &[Uuid], now: Timestamp) -> Conversation {
    let conversation =
        NewConversation { alias: Some("Team".to_owned()), ..new_conversation(creator, members, false, now) };
    store.create_conversation(&conversation).await.expect("create group")
}

async fn private(store: &Arc<dyn Store>, a: Uuid, b: Uuid, now: Timestamp) -> Conversation {
    store.create_conversation(&new_conversation(a, &[a, b], true, now)).await.expect("create private conversation")
}

/// A distinct ciphertext for each recipient.
fn contents(tag: &str, recipients: &[Uuid]) -> BTreeMap<Uuid, String> {
    recipients.iter().map(|recipient| (*recipient, format!("{tag} for {recipient}"))).collect()
}

fn message(conversation_id: Uuid, sender: Uuid, contents: BTreeMap<Uuid, String>, now: Timestamp) -> NewMessageGroup {
    NewMessageGroup { id: Uuid::now_v7(), conversation_id, sender, client_msg_id: None, contents, now }
}

async fn send(
    store: &Arc<dyn Store>,
    conversation_id: Uuid,
    sender: Uuid,
    tag: &str,
    recipients: &[Uuid],
    now: Timestamp,
) -> MessageDelivery {
    let delivery = store
        .send_message(&message(conversation_id, sender, contents(tag, recipients), now))
        .await
        .expect("send message");
    assert!(delivery.fresh);
    delivery
}

async fn page(store: &Arc<dyn Store>, conversation_id: Uuid, recipient: Uuid) -> Vec<StoredMessage> {
    store.messages_page(conversation_id, recipient, None, 100).await.expect("messages page")
}

fn is_rule<T: std::fmt::Debug>(result: &Result<T, StoreError>, rule: &str) -> bool {
    matches!(result, Err(StoreError::Rule(r)) if *r == rule)
}

async fn create_and_read_conversations(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;

    let new_group = NewConversation {
        alias: Some("Team ☕".to_owned()),
        // The creator need not come first.
        ..new_conversation(ada.id, &[cy.id, ada.id, bob.id], false, now)
    };
    let created = store.create_conversation(&new_group).await.expect("create group");
    let expected = Conversation {
        id: new_group.id,
        private: false,
        alias: Some("Team ☕".to_owned()),
        inserted_at: now,
        updated_at: now,
        assistant: false,
    };
    assert_eq!(created, expected);
    assert_eq!(store.conversation(new_group.id).await.expect("conversation"), Some(expected.clone()));
    // Everyone joined at once: by id.
    assert_eq!(store.member_ids(new_group.id).await.expect("members"), vec![ada.id, bob.id, cy.id]);
    assert_eq!(
        store.read_times(new_group.id).await.expect("read times"),
        vec![(ada.id, None), (bob.id, None), (cy.id, None)]
    );
    // Only the creator's keys came with it.
    assert_eq!(
        store.public_keys(new_group.id).await.expect("public keys"),
        vec![(ada.id, new_group.creator_keys.public_key.clone())]
    );
    assert_eq!(
        store.sealed_private_key(new_group.id, ada.id).await.expect("sealed key"),
        Some(new_group.creator_keys.sealed_private_key.clone())
    );
    assert_eq!(store.sealed_private_key(new_group.id, bob.id).await.expect("sealed key"), None);

    // A group of one is fine.
    let alone = store.create_conversation(&new_conversation(cy.id, &[cy.id], false, now)).await.expect("alone");
    assert_eq!(alone.alias, None);
    assert_eq!(store.member_ids(alone.id).await.expect("members"), vec![cy.id]);

    let later = now.plus_secs(1);
    let new_private = new_conversation(bob.id, &[bob.id, ada.id], true, later);
    let created = store.create_conversation(&new_private).await.expect("create private");
    let expected = Conversation {
        id: new_private.id,
        private: true,
        alias: None,
        inserted_at: later,
        updated_at: later,
        assistant: false,
    };
    assert_eq!(created, expected);
    assert_eq!(store.conversation(new_private.id).await.expect("conversation"), Some(expected));
    assert_eq!(store.member_ids(new_private.id).await.expect("members"), vec![ada.id, bob.id]);
    assert_eq!(
        store.public_keys(new_private.id).await.expect("public keys"),
        vec![(bob.id, new_private.creator_keys.public_key.clone())]
    );
    assert_eq!(store.private_conversation_between(ada.id, bob.id).await.expect("between"), Some(new_private.id));
    assert_eq!(store.private_conversation_between(bob.id, ada.id).await.expect("between"), Some(new_private.id));
    assert_eq!(store.private_conversation_between(ada.id, cy.id).await.expect("between"), None);
    assert_eq!(store.private_conversation_between(ada.id, ada.id).await.expect("between"), None);

    assert_eq!(store.conversation(Uuid::now_v7()).await.expect("unknown conversation"), None);
    assert_eq!(store.member_ids(Uuid::now_v7()).await.expect("unknown members"), Vec::<Uuid>::new());
}

async fn private_conversation_is_unique_per_pair(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let first = private(&store, ada.id, bob.id, now).await;

    for (creator, members) in [(ada.id, [ada.id, bob.id]), (bob.id, [bob.id, ada.id]), (bob.id, [ada.id, bob.id])] {
        let again = new_conversation(creator, &members, true, now.plus_secs(1));
        let result = store.create_conversation(&again).await;
        assert!(matches!(result, Err(StoreError::Conflict("private_conversation"))), "{result:?}");
        assert_eq!(store.conversation(again.id).await.expect("conversation"), None);
        assert_eq!(store.member_ids(again.id).await.expect("members"), Vec::<Uuid>::new());
        assert_eq!(store.sealed_private_key(again.id, creator).await.expect("sealed key"), None);
    }
    assert_eq!(store.conversations_of(ada.id).await.expect("conversations"), vec![first.clone()]);
    assert_eq!(store.conversations_of(bob.id).await.expect("conversations"), vec![first.clone()]);
    assert_eq!(store.private_conversation_between(bob.id, ada.id).await.expect("between"), Some(first.id));

    // Other pairs, and groups of the same two, are fine.
    let other = private(&store, cy.id, ada.id, now).await;
    assert_eq!(store.private_conversation_between(ada.id, cy.id).await.expect("between"), Some(other.id));
    group(&store, ada.id, &[ada.id, bob.id], now).await;
    group(&store, bob.id, &[ada.id, bob.id], now).await;
    assert_eq!(store.conversations_of(ada.id).await.expect("conversations").len(), 4);
}

async fn conversation_rules(store: Arc<dyn Store>) {
    const PRIVATE_RULE: &str = "a private conversation has exactly two members and no alias";
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;

    let broken = [
        (new_conversation(ada.id, &[ada.id, bob.id, cy.id], true, now), Some(PRIVATE_RULE)),
        (new_conversation(ada.id, &[ada.id], true, now), Some(PRIVATE_RULE)),
        (
            NewConversation { alias: Some("Us".to_owned()), ..new_conversation(ada.id, &[ada.id, bob.id], true, now) },
            Some(PRIVATE_RULE),
        ),
        (new_conversation(ada.id, &[bob.id, cy.id], true, now), None),
        (new_conversation(ada.id, &[ada.id, ada.id], true, now), None),
        (new_conversation(ada.id, &[bob.id, cy.id], false, now), None),
        (new_conversation(ada.id, &[ada.id, bob.id, ada.id], false, now), None),
        (new_conversation(ada.id, &[], false, now), None),
    ];
    for (conversation, rule) in &broken {
        let result = store.create_conversation(conversation).await;
        match rule {
            Some(rule) => assert!(is_rule(&result, rule), "{conversation:?}: {result:?}"),
            None => assert!(matches!(result, Err(StoreError::Rule(_))), "{conversation:?}: {result:?}"),
        }
        assert_eq!(store.conversation(conversation.id).await.expect("conversation"), None);
    }
    for user in [&ada, &bob, &cy] {
        assert_eq!(store.conversations_of(user.id).await.expect("conversations"), vec![]);
    }
    assert_eq!(store.private_conversation_between(ada.id, bob.id).await.expect("between"), None);
    assert_eq!(store.private_conversation_between(bob.id, cy.id).await.expect("between"), None);
}

async fn unknown_member_is_not_found_and_writes_nothing(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let ghost = Uuid::now_v7();

    let attempts = [
        new_conversation(ada.id, &[ada.id, bob.id, ghost], false, now),
        new_conversation(ada.id, &[ada.id, ghost], true, now),
        // An unknown creator, too.
        new_conversation(ghost, &[ghost, ada.id], false, now),
    ];
    for conversation in &attempts {
        let result = store.create_conversation(conversation).await;
        assert!(is_not_found(&result), "{result:?}");
        assert_eq!(store.conversation(conversation.id).await.expect("conversation"), None);
        assert_eq!(store.member_ids(conversation.id).await.expect("members"), Vec::<Uuid>::new());
        assert_eq!(store.public_keys(conversation.id).await.expect("public keys"), vec![]);
    }
    assert_eq!(store.conversations_of(ada.id).await.expect("conversations"), vec![]);
    assert_eq!(store.conversations_of(bob.id).await.expect("conversations"), vec![]);
    assert_eq!(store.private_conversation_between(ada.id, ghost).await.expect("between"), None);
    assert_eq!(store.sealed_private_keys(None, 100).await.expect("sealed keys"), vec![]);

    // The failed private conversation did not claim the pair.
    let ghost_account = NewAccount {
        user: User { id: ghost, ..new_account("ghost@example.com", now).user },
        ..new_account("ghost@example.com", now)
    };
    store.create_account(&ghost_account).await.expect("create ghost");
    private(&store, ghost, ada.id, now).await;
}

async fn conversations_of_members_and_partners(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    // Created first, so the smallest id.
    let [late, ada, bob, cy, dee, eve] = people(&store, ["late", "ada", "bob", "cy", "dee", "eve"], now).await;

    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let dm = private(&store, bob.id, cy.id, now.plus_secs(1)).await;
    // Created an hour earlier (but with a larger id): listed first.
    let old = group(&store, cy.id, &[cy.id, ada.id, bob.id, dee.id], now.plus_secs(-3600)).await;

    assert_eq!(store.conversations_of(ada.id).await.expect("conversations"), vec![old.clone(), team.clone()]);
    assert_eq!(
        store.conversations_of(bob.id).await.expect("conversations"),
        vec![old.clone(), team.clone(), dm.clone()]
    );
    assert_eq!(store.conversations_of(cy.id).await.expect("conversations"), vec![old.clone(), dm.clone()]);
    assert_eq!(store.conversations_of(dee.id).await.expect("conversations"), vec![old.clone()]);
    assert_eq!(store.conversations_of(eve.id).await.expect("conversations"), vec![]);

    // Bob shares two conversations with Ada and with Cy: each is listed once.
    let summaries = |users: &[&User]| users.iter().map(|user| UserSummary::from(*user)).collect::<Vec<_>>();
    assert_eq!(store.conversation_partners(ada.id).await.expect("partners"), summaries(&[&bob, &cy, &dee]));
    assert_eq!(store.conversation_partners(bob.id).await.expect("partners"), summaries(&[&ada, &cy, &dee]));
    assert_eq!(store.conversation_partners(dee.id).await.expect("partners"), summaries(&[&ada, &bob, &cy]));
    assert_eq!(store.conversation_partners(eve.id).await.expect("partners"), vec![]);

    // Joining later puts one last, whatever their id.
    store.add_members(team.id, &[late.id], now.plus_secs(60)).await.expect("add late");
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![ada.id, bob.id, late.id]);
    assert_eq!(store.conversation_partners(late.id).await.expect("partners"), summaries(&[&ada, &bob]));
    assert_eq!(store.conversation_partners(ada.id).await.expect("partners"), summaries(&[&late, &bob, &cy, &dee]));
    assert_eq!(
        store.read_times(team.id).await.expect("read times").into_iter().map(|(id, _)| id).collect::<Vec<_>>(),
        vec![ada.id, bob.id, late.id]
    );

    assert_eq!(store.private_conversation_between(cy.id, bob.id).await.expect("between"), Some(dm.id));
    assert_eq!(store.private_conversation_between(ada.id, bob.id).await.expect("between"), None);
}

async fn read_times_and_mark_read(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let other = group(&store, ada.id, &[ada.id, bob.id], now).await;

    assert_eq!(store.read_times(team.id).await.expect("read times"), vec![(ada.id, None), (bob.id, None)]);
    let t1 = now.plus_secs(10);
    store.mark_read(team.id, bob.id, t1).await.expect("mark read");
    assert_eq!(store.read_times(team.id).await.expect("read times"), vec![(ada.id, None), (bob.id, Some(t1))]);
    let t2 = now.plus_secs(20);
    store.mark_read(team.id, bob.id, t2).await.expect("mark read again");
    store.mark_read(team.id, ada.id, t1).await.expect("mark read");
    assert_eq!(store.read_times(team.id).await.expect("read times"), vec![(ada.id, Some(t1)), (bob.id, Some(t2))]);
    // Only that conversation.
    assert_eq!(store.read_times(other.id).await.expect("read times"), vec![(ada.id, None), (bob.id, None)]);

    assert!(is_not_found(&store.mark_read(team.id, cy.id, t2).await));
    assert!(is_not_found(&store.mark_read(Uuid::now_v7(), ada.id, t2).await));
    assert_eq!(store.read_times(team.id).await.expect("read times").len(), 2);
    assert_eq!(store.read_times(Uuid::now_v7()).await.expect("unknown conversation"), vec![]);
}

async fn unread_counts_follow_read_times(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let quiet = group(&store, bob.id, &[bob.id, ada.id], now).await;
    let activity = |user: Uuid| {
        let store = store.clone();
        async move {
            store
                .conversation_activity(user)
                .await
                .expect("activity")
                .into_iter()
                .map(|a| (a.conversation_id, a.unread, a.last_message_at))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(activity(ada.id).await, vec![(team.id, 0, None), (quiet.id, 0, None)]);

    send(&store, team.id, bob.id, "one", &[ada.id, bob.id], now.plus_secs(1)).await;
    send(&store, team.id, bob.id, "two", &[ada.id, bob.id], now.plus_secs(2)).await;
    send(&store, team.id, ada.id, "mine", &[ada.id, bob.id], now.plus_secs(3)).await;
    let last = Some(now.plus_secs(3));
    // Her own message is not unread for her; both of bob's are.
    assert_eq!(activity(ada.id).await, vec![(team.id, 2, last), (quiet.id, 0, None)]);
    assert_eq!(activity(bob.id).await, vec![(team.id, 1, last), (quiet.id, 0, None)]);

    store.mark_read(team.id, ada.id, now.plus_secs(2)).await.expect("mark read");
    assert_eq!(activity(ada.id).await[0], (team.id, 0, last));
    send(&store, team.id, bob.id, "three", &[ada.id, bob.id], now.plus_secs(4)).await;
    assert_eq!(activity(ada.id).await[0], (team.id, 1, Some(now.plus_secs(4))));

    // A newcomer has no copy of what was sent before they joined: nothing unread for them.
    store.add_members(team.id, &[cy.id], now.plus_secs(5)).await.expect("add cy");
    assert_eq!(activity(cy.id).await, vec![(team.id, 0, Some(now.plus_secs(4)))]);
    assert_eq!(activity(Uuid::now_v7()).await, vec![]);
}

async fn alias_and_members_of_groups_only(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy, dee] = people(&store, ["ada", "bob", "cy", "dee"], now).await;
    let dm = private(&store, ada.id, bob.id, now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let later = now.plus_secs(10);

    let result = store.set_alias(dm.id, Some("Us"), later).await;
    assert!(is_rule(&result, "a private conversation has no alias"), "{result:?}");
    assert!(is_rule(&store.set_alias(dm.id, None, later).await, "a private conversation has no alias"));
    let result = store.add_members(dm.id, &[cy.id], later).await;
    assert!(is_rule(&result, "a private conversation cannot get new members"), "{result:?}");
    let result = store.leave_conversation(dm.id, bob.id).await;
    assert!(is_rule(&result, "a private conversation cannot be left"), "{result:?}");
    assert_eq!(store.conversation(dm.id).await.expect("conversation"), Some(dm.clone()));
    assert_eq!(store.member_ids(dm.id).await.expect("members"), vec![ada.id, bob.id]);

    let t1 = now.plus_secs(1);
    let renamed = store.set_alias(team.id, Some("Night shift 🌙"), t1).await.expect("set alias");
    let expected = Conversation { alias: Some("Night shift 🌙".to_owned()), updated_at: t1, ..team.clone() };
    assert_eq!(renamed, expected);
    assert_eq!(store.conversation(team.id).await.expect("conversation"), Some(expected));
    let t2 = now.plus_secs(2);
    let cleared = store.set_alias(team.id, None, t2).await.expect("clear alias");
    let expected = Conversation { alias: None, updated_at: t2, ..team.clone() };
    assert_eq!(cleared, expected);
    assert_eq!(store.conversation(team.id).await.expect("conversation"), Some(expected.clone()));
    assert!(is_not_found(&store.set_alias(Uuid::now_v7(), Some("x"), t2).await));

    let t3 = now.plus_secs(3);
    let grown = store.add_members(team.id, &[cy.id], t3).await.expect("add member");
    let expected = Conversation { updated_at: t3, ..expected };
    assert_eq!(grown, expected);
    assert_eq!(store.conversation(team.id).await.expect("conversation"), Some(expected.clone()));
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![ada.id, bob.id, cy.id]);
    assert_eq!(store.read_times(team.id).await.expect("read times")[2], (cy.id, None));

    // Adding members again changes nothing, not even updated_at.
    let t4 = now.plus_secs(4);
    let same = store.add_members(team.id, &[cy.id, ada.id, cy.id], t4).await.expect("add members again");
    assert_eq!(same, expected);
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![ada.id, bob.id, cy.id]);
    assert_eq!(store.add_members(team.id, &[], t4).await.expect("add nobody"), expected);

    // An unknown user: nobody is added.
    let result = store.add_members(team.id, &[dee.id, Uuid::now_v7()], t4).await;
    assert!(is_not_found(&result), "{result:?}");
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![ada.id, bob.id, cy.id]);
    assert_eq!(store.conversation(team.id).await.expect("conversation"), Some(expected));
    assert!(is_not_found(&store.add_members(Uuid::now_v7(), &[dee.id], t4).await));
    assert_eq!(store.conversations_of(dee.id).await.expect("conversations"), vec![]);
}

async fn leave_removes_member_and_keys(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;
    let other = group(&store, ada.id, &[ada.id, bob.id], now).await;
    store.set_encryption_keys(team.id, bob.id, &keys("bob"), now).await.expect("bob's keys");
    store.set_encryption_keys(other.id, bob.id, &keys("bob other"), now).await.expect("bob's other keys");
    let before = send(&store, team.id, ada.id, "hello", &[ada.id, bob.id, cy.id], now).await;

    store.leave_conversation(team.id, bob.id).await.expect("leave");
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![ada.id, cy.id]);
    assert_eq!(store.conversations_of(bob.id).await.expect("conversations"), vec![other.clone()]);
    assert_eq!(
        store.public_keys(team.id).await.expect("public keys"),
        vec![(ada.id, keys(&ada.id.to_string()).public_key)]
    );
    assert_eq!(store.sealed_private_key(team.id, bob.id).await.expect("sealed key"), None);
    // Their keys elsewhere stay, and so do their copies of earlier messages.
    assert_eq!(
        store.sealed_private_key(other.id, bob.id).await.expect("sealed key"),
        Some(keys("bob other").sealed_private_key)
    );
    assert_eq!(page(&store, team.id, bob.id).await, vec![before.messages[&bob.id].clone()]);

    // No longer a member.
    assert!(is_not_found(&store.leave_conversation(team.id, bob.id).await));
    assert!(is_not_found(&store.set_encryption_keys(team.id, bob.id, &keys("bob"), now).await));
    assert!(is_not_found(&store.mark_read(team.id, bob.id, now).await));
    let result = store.send_message(&message(team.id, bob.id, contents("hi", &[ada.id, cy.id]), now)).await;
    assert!(is_not_found(&result), "{result:?}");
    assert!(is_not_found(&store.leave_conversation(Uuid::now_v7(), ada.id).await));

    // Everyone may leave; the conversation stays.
    store.leave_conversation(team.id, ada.id).await.expect("leave");
    store.leave_conversation(team.id, cy.id).await.expect("leave");
    assert_eq!(store.member_ids(team.id).await.expect("members"), Vec::<Uuid>::new());
    assert_eq!(store.public_keys(team.id).await.expect("public keys"), vec![]);
    assert!(store.conversation(team.id).await.expect("conversation").is_some());
}

fn wrong_set(conversation: Uuid) -> Vec<(Uuid, Vec<u8>)> {
    vec![(conversation, b"only one".to_vec())]
}

async fn private_keys_are_replaced_all_at_once_or_not_at_all(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let first = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let second = group(&store, bob.id, &[ada.id, bob.id], now).await;
    store.set_encryption_keys(second.id, ada.id, &keys("ada second"), now).await.expect("ada's keys");
    let mut expected = vec![
        (first.id, keys(&ada.id.to_string()).sealed_private_key),
        (second.id, keys("ada second").sealed_private_key),
    ];
    expected.sort();
    assert_eq!(store.sealed_private_keys_of(ada.id).await.expect("keys"), expected);

    // One missing, one of someone else's conversation, one twice: refused, nothing changed.
    let lonely = group(&store, bob.id, &[bob.id], now).await;
    for wrong in [
        vec![(first.id, b"new 1".to_vec())],
        vec![(first.id, b"new 1".to_vec()), (second.id, b"new 2".to_vec()), (lonely.id, b"new 3".to_vec())],
        vec![(first.id, b"new 1".to_vec()), (first.id, b"new 1".to_vec())],
    ] {
        let refused = store.replace_private_keys(ada.id, &wrong, now).await;
        assert!(matches!(refused, Err(StoreError::Rule(_))), "{refused:?}");
        assert_eq!(store.sealed_private_keys_of(ada.id).await.expect("keys"), expected);
    }
    // With a password change, the same rule, in the same transaction: refused, neither changes.
    let before = store.user(ada.id).await.expect("user").expect("ada").password_hash;
    let refused = store.replace_password(ada.id, "$argon2id$new", Some(&wrong_set(first.id)), now).await;
    assert!(matches!(refused, Err(StoreError::Rule(_))), "{refused:?}");
    assert_eq!(store.user(ada.id).await.expect("user").expect("ada").password_hash, before);
    assert_eq!(store.sealed_private_keys_of(ada.id).await.expect("keys"), expected);

    // Exactly hers: all replaced; bob's untouched.
    let new = vec![(second.id, b"new 2".to_vec()), (first.id, b"new 1".to_vec())];
    store.replace_password(ada.id, "$argon2id$new", Some(&new), now.plus_secs(1)).await.expect("replace");
    assert_eq!(store.user(ada.id).await.expect("user").expect("ada").password_hash, "$argon2id$new");
    assert_eq!(store.sealed_private_key(first.id, ada.id).await.expect("sealed"), Some(b"new 1".to_vec()));
    assert_eq!(store.sealed_private_key(second.id, ada.id).await.expect("sealed"), Some(b"new 2".to_vec()));
    assert_eq!(
        store.sealed_private_key(second.id, bob.id).await.expect("sealed"),
        Some(keys(&bob.id.to_string()).sealed_private_key)
    );
    let newer = vec![(first.id, b"newer 1".to_vec()), (second.id, b"newer 2".to_vec())];
    store.replace_private_keys(ada.id, &newer, now.plus_secs(2)).await.expect("replace alone");
    assert_eq!(store.sealed_private_keys_of(ada.id).await.expect("keys").len(), 2);
    assert_eq!(store.sealed_private_key(first.id, ada.id).await.expect("sealed"), Some(b"newer 1".to_vec()));
    assert_eq!(store.sealed_private_keys_of(Uuid::now_v7()).await.expect("nobody's"), vec![]);
}

async fn an_email_change_can_rekey_in_its_transaction(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let token = issue(&store, ada.id, OneTimeKind::EmailChange, now).await;
    let change = |private_keys: Vec<(Uuid, Vec<u8>)>| Redemption::ChangeEmail {
        user_id: ada.id,
        email: "ada@new.example.com".to_owned(),
        rekey: Some(hearth_store::Rekey { password_hash: "$argon2id$rekeyed".to_owned(), private_keys }),
    };

    // Not exactly her keys: nothing happens, and the token is still good.
    let refused = store.redeem_one_time_token(&token, &change(wrong_set(Uuid::now_v7())), now).await;
    assert!(matches!(refused, Err(StoreError::Rule(_))), "{refused:?}");
    assert_eq!(user(&store, ada.id).await.email, ada.email);

    store.redeem_one_time_token(&token, &change(vec![(team.id, b"rekeyed".to_vec())]), now).await.expect("redeem");
    let changed = user(&store, ada.id).await;
    assert_eq!((changed.email.as_str(), changed.password_hash.as_str()), ("ada@new.example.com", "$argon2id$rekeyed"));
    assert_eq!(store.sealed_private_key(team.id, ada.id).await.expect("sealed"), Some(b"rekeyed".to_vec()));
    assert_eq!(store.devices(ada.id).await.expect("devices"), vec![], "signed out as by a password change");
}

async fn encryption_keys_upsert(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, bob.id, &[ada.id, bob.id], now).await;
    let bob_keys = keys(&bob.id.to_string());

    let ada_keys = keys("ada");
    store.set_encryption_keys(team.id, ada.id, &ada_keys, now.plus_secs(1)).await.expect("set keys");
    assert_eq!(
        store.public_keys(team.id).await.expect("public keys"),
        vec![(ada.id, ada_keys.public_key.clone()), (bob.id, bob_keys.public_key.clone())]
    );
    assert_eq!(store.sealed_private_key(team.id, ada.id).await.expect("sealed"), Some(ada_keys.sealed_private_key));

    // Again: replaced.
    let replaced =
        EncryptionKeys { public_key: "{\"kty\":\"OKP\"}".to_owned(), sealed_private_key: vec![0, 1, 2, 255] };
    store.set_encryption_keys(team.id, ada.id, &replaced, now.plus_secs(2)).await.expect("replace keys");
    assert_eq!(
        store.public_keys(team.id).await.expect("public keys"),
        vec![(ada.id, replaced.public_key.clone()), (bob.id, bob_keys.public_key.clone())]
    );
    assert_eq!(store.sealed_private_key(team.id, ada.id).await.expect("sealed"), Some(replaced.sealed_private_key));
    assert_eq!(store.sealed_private_key(team.id, bob.id).await.expect("sealed"), Some(bob_keys.sealed_private_key));

    assert!(is_not_found(&store.set_encryption_keys(team.id, cy.id, &keys("cy"), now).await));
    assert!(is_not_found(&store.set_encryption_keys(Uuid::now_v7(), ada.id, &keys("ada"), now).await));
    assert!(is_not_found(&store.set_encryption_keys(team.id, Uuid::now_v7(), &keys("ghost"), now).await));
    assert_eq!(store.public_keys(team.id).await.expect("public keys").len(), 2);
    assert_eq!(store.sealed_private_key(team.id, cy.id).await.expect("sealed"), None);
}

async fn send_message_to_exactly_the_members(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy, dee] = people(&store, ["ada", "bob", "cy", "dee"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;
    let members = [ada.id, bob.id, cy.id];

    let sent = message(team.id, ada.id, contents("hello", &members), now);
    let delivery = store.send_message(&sent).await.expect("send");
    assert!(delivery.fresh);
    assert_eq!(delivery.conversation_id, team.id);
    assert_eq!(delivery.messages.keys().copied().collect::<Vec<_>>(), members.to_vec());
    let mut ids = Vec::new();
    for (recipient, stored) in &delivery.messages {
        assert_eq!(stored.message_group, sent.id);
        assert_eq!(stored.sender, ada.id);
        assert_eq!(stored.content, format!("hello for {recipient}"));
        assert_eq!((stored.inserted_at, stored.updated_at), (now, now));
        ids.push(stored.id);
        // Each recipient reads their own copy.
        assert_eq!(page(&store, team.id, *recipient).await, vec![stored.clone()]);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one message per recipient");

    let later = now.plus_secs(1);
    let broken = [
        // Someone missing.
        (message(team.id, ada.id, contents("missing", &[ada.id, bob.id]), later), true),
        // Someone extra.
        (message(team.id, ada.id, contents("extra", &[ada.id, bob.id, cy.id, dee.id]), later), true),
        // Someone else instead.
        (message(team.id, ada.id, contents("swapped", &[ada.id, bob.id, dee.id]), later), true),
        (message(team.id, ada.id, BTreeMap::new(), later), true),
        // Not a member.
        (message(team.id, dee.id, contents("outsider", &members), later), false),
        (message(Uuid::now_v7(), ada.id, contents("nowhere", &[ada.id]), later), false),
    ];
    for (attempt, rule) in &broken {
        let result = store.send_message(attempt).await;
        if *rule {
            assert!(is_rule(&result, RECIPIENTS_RULE), "{result:?}");
        } else {
            assert!(is_not_found(&result), "{result:?}");
        }
        // Nothing of it was stored.
        assert!(is_not_found(&store.delete_message(attempt.id, attempt.sender).await));
    }
    for recipient in members {
        assert_eq!(page(&store, team.id, recipient).await, vec![delivery.messages[&recipient].clone()]);
    }
    assert_eq!(page(&store, team.id, dee.id).await, vec![]);

    // Any member may send.
    let reply = send(&store, team.id, cy.id, "reply", &members, later).await;
    assert_eq!(reply.messages[&ada.id].sender, cy.id);
    assert_eq!(page(&store, team.id, ada.id).await.len(), 2);
}

async fn client_msg_id_makes_resends_idempotent(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let other = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let members = [ada.id, bob.id];

    let first = NewMessageGroup {
        client_msg_id: Some("client-1".to_owned()),
        ..message(team.id, ada.id, contents("first", &members), now)
    };
    let delivery = store.send_message(&first).await.expect("send");
    assert!(delivery.fresh);

    // A resend (new group id, time, even different content) returns the first send.
    let resend = NewMessageGroup {
        client_msg_id: Some("client-1".to_owned()),
        ..message(team.id, ada.id, contents("resend", &members), now.plus_secs(5))
    };
    let again = store.send_message(&resend).await.expect("resend");
    assert_eq!(again, MessageDelivery { fresh: false, ..delivery.clone() });
    // Without checking the recipients again.
    let sloppy = NewMessageGroup {
        client_msg_id: Some("client-1".to_owned()),
        ..message(team.id, ada.id, contents("sloppy", &[cy.id]), now.plus_secs(6))
    };
    assert_eq!(
        store.send_message(&sloppy).await.expect("resend"),
        MessageDelivery { fresh: false, ..delivery.clone() }
    );
    assert!(is_not_found(&store.delete_message(resend.id, ada.id).await));
    assert_eq!(page(&store, team.id, bob.id).await, vec![delivery.messages[&bob.id].clone()]);

    // The same client id from another sender, or in another conversation, is another send.
    let from_bob = NewMessageGroup {
        client_msg_id: Some("client-1".to_owned()),
        ..message(team.id, bob.id, contents("bob", &members), now)
    };
    assert!(store.send_message(&from_bob).await.expect("send").fresh);
    let elsewhere = NewMessageGroup {
        client_msg_id: Some("client-1".to_owned()),
        ..message(other.id, ada.id, contents("elsewhere", &members), now)
    };
    assert!(store.send_message(&elsewhere).await.expect("send").fresh);
    // A different client id is a different send; no client id never deduplicates.
    let second = NewMessageGroup {
        client_msg_id: Some("client-2".to_owned()),
        ..message(team.id, ada.id, contents("second", &members), now)
    };
    assert!(store.send_message(&second).await.expect("send").fresh);
    send(&store, team.id, ada.id, "plain", &members, now).await;
    send(&store, team.id, ada.id, "plain", &members, now).await;
    assert_eq!(page(&store, team.id, bob.id).await.len(), 5);

    // A failed first attempt claims nothing.
    let failed = NewMessageGroup {
        client_msg_id: Some("client-3".to_owned()),
        ..message(team.id, ada.id, contents("failed", &[ada.id]), now)
    };
    assert!(is_rule(&store.send_message(&failed).await, RECIPIENTS_RULE));
    let retry = NewMessageGroup { contents: contents("retry", &members), ..failed.clone() };
    assert!(store.send_message(&retry).await.expect("retry").fresh);
}

async fn concurrent_resends_store_one_group(store: Arc<dyn Store>) {
    const RACERS: usize = 10;
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;
    let members = [ada.id, bob.id, cy.id];
    let barrier = Arc::new(Barrier::new(RACERS));

    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            let send = NewMessageGroup {
                client_msg_id: Some("same".to_owned()),
                ..message(team.id, ada.id, contents(&format!("try {i}"), &members), now)
            };
            tokio::spawn(async move {
                barrier.wait().await;
                store.send_message(&send).await
            })
        })
        .collect();
    let mut deliveries = Vec::new();
    for task in tasks {
        deliveries.push(task.await.expect("task").expect("send"));
    }
    let fresh: Vec<_> = deliveries.iter().filter(|delivery| delivery.fresh).collect();
    assert_eq!(fresh.len(), 1, "{deliveries:#?}");
    let winner = fresh[0].clone();
    for delivery in &deliveries {
        assert_eq!(delivery.messages, winner.messages);
    }
    let group_id = winner.messages[&ada.id].message_group;
    for recipient in members {
        let copies = page(&store, team.id, recipient).await;
        assert_eq!(copies, vec![winner.messages[&recipient].clone()]);
        assert_eq!(copies[0].message_group, group_id);
    }
}

/// Sends that arrive together are committed together; each must still get the outcome it
/// would have had alone, and a refused one must not take the others down with it.
async fn concurrent_sends_each_get_their_own_outcome(store: Arc<dyn Store>) {
    const ROUNDS: usize = 20;
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let pair = private(&store, bob.id, cy.id, now).await;
    let missing = Uuid::now_v7();

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Expect {
        Stored,
        Resend,
        NotFound,
        Rule,
    }
    let mut sends = Vec::new();
    for round in 0..ROUNDS {
        let tag = format!("r{round}");
        sends.push((Expect::Stored, message(team.id, ada.id, contents(&tag, &[ada.id, bob.id]), now)));
        sends.push((Expect::Stored, message(pair.id, cy.id, contents(&tag, &[bob.id, cy.id]), now)));
        sends.push((Expect::Rule, message(team.id, bob.id, contents(&tag, &[bob.id]), now)));
        sends.push((Expect::NotFound, message(team.id, cy.id, contents(&tag, &[ada.id, bob.id]), now)));
        sends.push((Expect::NotFound, message(missing, ada.id, contents(&tag, &[ada.id]), now)));
        let keyed = NewMessageGroup {
            client_msg_id: Some(format!("k{round}")),
            ..message(pair.id, bob.id, contents(&tag, &[bob.id, cy.id]), now)
        };
        sends.push((Expect::Stored, keyed.clone()));
        sends.push((Expect::Resend, NewMessageGroup { id: Uuid::now_v7(), ..keyed }));
    }
    let barrier = Arc::new(Barrier::new(sends.len()));
    let tasks: Vec<_> = sends
        .iter()
        .map(|(_, send)| {
            let (store, barrier, send) = (store.clone(), barrier.clone(), send.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.send_message(&send).await
            })
        })
        .collect();
    // A keyed send and its resend race: either may be the one stored; the other returns
    // the same delivery.
    let mut by_key: BTreeMap<String, Vec<MessageDelivery>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (index, ((expected, send), task)) in sends.iter().zip(tasks).enumerate() {
        let result = task.await.expect("task");
        let got = match &result {
            Ok(delivery) if delivery.fresh => Expect::Stored,
            Ok(_) => Expect::Resend,
            Err(StoreError::NotFound) => Expect::NotFound,
            Err(StoreError::Rule(_)) => Expect::Rule,
            Err(other) => panic!("unexpected error {other}"),
        };
        match (&send.client_msg_id, result) {
            (Some(key), Ok(delivery)) => by_key.entry(key.clone()).or_default().push(delivery),
            _ if got != *expected => wrong.push((index, *expected, got)),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
    assert_eq!(by_key.len(), ROUNDS);
    for (key, deliveries) in &by_key {
        assert_eq!(deliveries.len(), 2, "{key}");
        assert_eq!(deliveries.iter().filter(|d| d.fresh).count(), 1, "{key}: {deliveries:#?}");
        assert_eq!(deliveries[0].messages, deliveries[1].messages, "{key}");
    }
    // Exactly what the successful sends stored, once each.
    assert_eq!(page(&store, team.id, ada.id).await.len(), ROUNDS);
    assert_eq!(page(&store, team.id, bob.id).await.len(), ROUNDS);
    assert_eq!(page(&store, pair.id, bob.id).await.len(), 2 * ROUNDS);
    assert_eq!(page(&store, pair.id, cy.id).await.len(), 2 * ROUNDS);
}

/// A send the database itself refuses (PostgreSQL stores no NUL character in text; SQLite
/// does) fails alone, even when it was committed in one batch with others.
async fn a_send_the_database_refuses_fails_alone(store: Arc<dyn Store>) {
    const GOOD: usize = 30;
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let members = [ada.id, bob.id];
    let mut sends: Vec<NewMessageGroup> =
        (0..GOOD).map(|i| message(team.id, ada.id, contents(&format!("good {i}"), &members), now)).collect();
    sends.insert(GOOD / 2, message(team.id, bob.id, contents("nul \0 inside", &members), now));
    let barrier = Arc::new(Barrier::new(sends.len()));
    let tasks: Vec<_> = sends
        .iter()
        .map(|send| {
            let (store, barrier, send) = (store.clone(), barrier.clone(), send.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.send_message(&send).await
            })
        })
        .collect();
    let mut nul_stored = false;
    for (send, task) in sends.iter().zip(tasks) {
        let result = task.await.expect("task");
        if send.sender == bob.id {
            match result {
                Ok(delivery) => nul_stored = delivery.fresh,
                Err(error) => assert!(matches!(error, StoreError::Database(_)), "{error:?}"),
            }
        } else {
            assert!(result.expect("a good send is stored").fresh);
        }
    }
    assert_eq!(nul_stored, store.backend() == "sqlite");
    assert_eq!(page(&store, team.id, bob.id).await.len(), GOOD + usize::from(nul_stored));
}

async fn edit_message_follows_the_members(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let sent = send(&store, team.id, ada.id, "v1", &[ada.id, bob.id], now).await;
    let group_id = sent.messages[&ada.id].message_group;
    let t1 = now.plus_secs(1);

    // Only the sender may edit.
    assert!(is_not_found(&store.edit_message(group_id, bob.id, &contents("bob's", &[ada.id, bob.id]), t1).await));
    assert!(is_not_found(&store.edit_message(Uuid::now_v7(), ada.id, &contents("v2", &[ada.id, bob.id]), t1).await));
    let result = store.edit_message(group_id, ada.id, &contents("v2", &[ada.id]), t1).await;
    assert!(is_rule(&result, RECIPIENTS_RULE), "{result:?}");
    assert_eq!(page(&store, team.id, bob.id).await, vec![sent.messages[&bob.id].clone()]);

    let edited = store.edit_message(group_id, ada.id, &contents("v2", &[ada.id, bob.id]), t1).await.expect("edit");
    assert!(edited.fresh);
    assert_eq!(edited.conversation_id, team.id);
    for (recipient, stored) in &edited.messages {
        let original = &sent.messages[recipient];
        let expected = StoredMessage { content: format!("v2 for {recipient}"), updated_at: t1, ..original.clone() };
        assert_eq!(*stored, expected);
        assert_eq!(page(&store, team.id, *recipient).await, vec![expected]);
    }

    // Cy joins: an edit must now include them, and gives them a copy.
    let t2 = now.plus_secs(2);
    store.add_members(team.id, &[cy.id], t2).await.expect("add cy");
    let result = store.edit_message(group_id, ada.id, &contents("v3", &[ada.id, bob.id]), t2).await;
    assert!(is_rule(&result, RECIPIENTS_RULE), "{result:?}");
    assert_eq!(page(&store, team.id, cy.id).await, vec![]);
    let t3 = now.plus_secs(3);
    let edited = store.edit_message(group_id, ada.id, &contents("v3", &[ada.id, bob.id, cy.id]), t3).await;
    let edited = edited.expect("edit with cy");
    assert_eq!(edited.messages.keys().copied().collect::<Vec<_>>(), vec![ada.id, bob.id, cy.id]);
    let cy_copy = &edited.messages[&cy.id];
    assert!(sent.messages.values().all(|stored| stored.id != cy_copy.id), "a new id for cy's copy");
    assert_eq!(cy_copy.content, format!("v3 for {}", cy.id));
    assert_eq!((cy_copy.message_group, cy_copy.sender, cy_copy.updated_at), (group_id, ada.id, t3));
    assert_eq!(page(&store, team.id, cy.id).await, vec![cy_copy.clone()]);
    assert_eq!(edited.messages[&bob.id].id, sent.messages[&bob.id].id);
    assert_eq!(edited.messages[&bob.id].content, format!("v3 for {}", bob.id));

    // Bob leaves: his copy stays until the next edit, which drops it.
    store.leave_conversation(team.id, bob.id).await.expect("leave");
    assert_eq!(page(&store, team.id, bob.id).await.len(), 1);
    let t4 = now.plus_secs(4);
    let edited = store.edit_message(group_id, ada.id, &contents("v4", &[ada.id, cy.id]), t4).await.expect("edit");
    assert_eq!(edited.messages.keys().copied().collect::<Vec<_>>(), vec![ada.id, cy.id]);
    assert_eq!(edited.messages[&cy.id].id, cy_copy.id);
    assert_eq!(page(&store, team.id, bob.id).await, vec![]);
    assert_eq!(page(&store, team.id, ada.id).await, vec![edited.messages[&ada.id].clone()]);
}

async fn delete_message_removes_every_copy(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let doomed = send(&store, team.id, ada.id, "doomed", &[ada.id, bob.id], now).await;
    let kept = send(&store, team.id, bob.id, "kept", &[ada.id, bob.id], now).await;
    let doomed_id = doomed.messages[&ada.id].message_group;

    assert!(is_not_found(&store.delete_message(doomed_id, bob.id).await));
    assert_eq!(page(&store, team.id, bob.id).await.len(), 2);

    assert_eq!(store.delete_message(doomed_id, ada.id).await.expect("delete"), team.id);
    for recipient in [ada.id, bob.id] {
        assert_eq!(page(&store, team.id, recipient).await, vec![kept.messages[&recipient].clone()]);
    }
    assert!(is_not_found(&store.delete_message(doomed_id, ada.id).await));
    let result = store.edit_message(doomed_id, ada.id, &contents("zombie", &[ada.id, bob.id]), now).await;
    assert!(is_not_found(&result), "{result:?}");
    assert!(is_not_found(&store.delete_message(Uuid::now_v7(), ada.id).await));
}

async fn who_left_can_neither_edit_nor_delete_their_messages(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;
    let said = send(&store, team.id, cy.id, "before leaving", &[ada.id, bob.id, cy.id], now).await;
    let said_id = said.messages[&cy.id].message_group;
    store.leave_conversation(team.id, cy.id).await.expect("leave");

    let result = store.edit_message(said_id, cy.id, &contents("rewritten", &[ada.id, bob.id]), now).await;
    assert!(is_not_found(&result), "{result:?}");
    assert!(is_not_found(&store.delete_message(said_id, cy.id).await));
    for recipient in [ada.id, bob.id] {
        assert_eq!(page(&store, team.id, recipient).await, vec![said.messages[&recipient].clone()]);
    }
}

async fn messages_page_newest_first(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let other = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;

    let mut groups = Vec::new();
    for i in 0..5 {
        let sender = if i == 2 { bob.id } else { ada.id };
        // The clock goes backwards: history is ordered by the (time-ordered) group id.
        let at = now.plus_secs(-i);
        groups.push(send(&store, team.id, sender, &format!("m{i}"), &[ada.id, bob.id], at).await);
        send(&store, other.id, ada.id, "noise", &[ada.id, bob.id, cy.id], at).await;
    }
    let bobs = |indices: &[usize]| indices.iter().map(|i| groups[*i].messages[&bob.id].clone()).collect::<Vec<_>>();
    let group_id = |i: usize| groups[i].messages[&bob.id].message_group;

    let first = store.messages_page(team.id, bob.id, None, 2).await.expect("first page");
    assert_eq!(first, bobs(&[4, 3]));
    let second = store.messages_page(team.id, bob.id, Some(group_id(3)), 2).await.expect("second page");
    assert_eq!(second, bobs(&[2, 1]));
    assert_eq!(second[0].sender, bob.id);
    assert_eq!(second[0].content, format!("m2 for {}", bob.id));
    let third = store.messages_page(team.id, bob.id, Some(group_id(1)), 2).await.expect("third page");
    assert_eq!(third, bobs(&[0]));
    assert_eq!(store.messages_page(team.id, bob.id, Some(group_id(0)), 2).await.expect("past the end"), vec![]);

    assert_eq!(store.messages_page(team.id, bob.id, None, 100).await.expect("all"), bobs(&[4, 3, 2, 1, 0]));
    assert_eq!(store.messages_page(team.id, bob.id, None, 0).await.expect("none"), vec![]);
    // `before` is exclusive and need not be a group of this conversation.
    assert_eq!(store.messages_page(team.id, bob.id, Some(Uuid::nil()), 10).await.expect("before nil"), vec![]);
    assert_eq!(store.messages_page(team.id, bob.id, Some(Uuid::max()), 10).await.expect("before max").len(), 5);
    // Ada sees her own copies.
    let adas = store.messages_page(team.id, ada.id, None, 2).await.expect("ada's page");
    assert_eq!(adas, vec![groups[4].messages[&ada.id].clone(), groups[3].messages[&ada.id].clone()]);
    // Cy is not in that conversation.
    assert_eq!(page(&store, team.id, cy.id).await, vec![]);
    assert_eq!(page(&store, other.id, cy.id).await.len(), 5);
}

async fn sealed_private_keys_page_and_compare_and_swap(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let mut expected = Vec::new();
    for (creator, members) in
        [(ada.id, vec![ada.id, bob.id, cy.id]), (cy.id, vec![cy.id, bob.id]), (bob.id, vec![bob.id])]
    {
        // Random ids, so creation order is not key order.
        let new = NewConversation { id: Uuid::new_v4(), ..new_conversation(creator, &members, false, now) };
        store.create_conversation(&new).await.expect("create");
        expected.push(SealedKeyRow {
            conversation_id: new.id,
            user_id: creator,
            sealed_private_key: new.creator_keys.sealed_private_key.clone(),
        });
        for member in members.into_iter().filter(|member| *member != creator) {
            let keys = keys(&format!("{member} in {}", new.id));
            store.set_encryption_keys(new.id, member, &keys, now).await.expect("set keys");
            expected.push(SealedKeyRow {
                conversation_id: new.id,
                user_id: member,
                sealed_private_key: keys.sealed_private_key,
            });
        }
    }
    expected.sort_by_key(|row| (row.conversation_id, row.user_id));
    assert_eq!(expected.len(), 6);

    assert_eq!(store.sealed_private_keys(None, 100).await.expect("all"), expected);
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store.sealed_private_keys(after, 2).await.expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2, "page too long: {page:?}");
        after = page.last().map(|row| (row.conversation_id, row.user_id));
        pages.push(page);
        assert!(pages.len() <= 4, "paging does not terminate");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 2]);
    assert_eq!(pages.concat(), expected);
    // `after` compares the pair: the same conversation's later users come next.
    let (c, u) = (expected[0].conversation_id, expected[0].user_id);
    assert_eq!(store.sealed_private_keys(Some((c, u)), 100).await.expect("after first"), expected[1..].to_vec());
    assert_eq!(store.sealed_private_keys(Some((c, Uuid::nil())), 100).await.expect("after nil user"), expected);
    assert_eq!(
        store.sealed_private_keys(Some((c, Uuid::max())), 100).await.expect("after max user").len(),
        6 - { expected.iter().filter(|row| row.conversation_id == c).count() }
    );
    assert_eq!(store.sealed_private_keys(Some((Uuid::max(), Uuid::max())), 100).await.expect("after max"), vec![]);

    // Compare and swap.
    let row = &expected[3];
    let (conversation_id, user_id) = (row.conversation_id, row.user_id);
    let resealed = b"resealed under the new vault key".to_vec();
    let swapped = store.replace_sealed_private_key(conversation_id, user_id, b"not the old one", &resealed).await;
    assert!(!swapped.expect("stale replace"));
    assert_eq!(
        store.sealed_private_key(conversation_id, user_id).await.expect("sealed"),
        Some(row.sealed_private_key.clone())
    );
    let swapped = store.replace_sealed_private_key(conversation_id, user_id, &row.sealed_private_key, &resealed).await;
    assert!(swapped.expect("replace"));
    assert_eq!(store.sealed_private_key(conversation_id, user_id).await.expect("sealed"), Some(resealed.clone()));
    // The old value no longer matches.
    let again = store.replace_sealed_private_key(conversation_id, user_id, &row.sealed_private_key, b"other").await;
    assert!(!again.expect("replace again"));
    assert_eq!(store.sealed_private_key(conversation_id, user_id).await.expect("sealed"), Some(resealed.clone()));
    let missing = store.replace_sealed_private_key(Uuid::now_v7(), user_id, &resealed, b"other").await;
    assert!(!missing.expect("replace missing"));
    // Only that row changed.
    let mut after_swap = expected.clone();
    after_swap[3].sealed_private_key = resealed;
    assert_eq!(store.sealed_private_keys(None, 100).await.expect("all"), after_swap);
}

async fn delete_user_removes_conversation_rows(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;
    let dm = private(&store, bob.id, ada.id, now).await;
    store.set_encryption_keys(team.id, bob.id, &keys("bob"), now).await.expect("keys");
    store.set_encryption_keys(dm.id, ada.id, &keys("ada"), now).await.expect("keys");
    let from_ada = send(&store, team.id, ada.id, "from ada", &[ada.id, bob.id, cy.id], now).await;
    let from_bob = send(&store, team.id, bob.id, "from bob", &[ada.id, bob.id, cy.id], now).await;
    send(&store, dm.id, ada.id, "dm", &[ada.id, bob.id], now).await;

    store.delete_user(ada.id).await.expect("delete user");

    assert_eq!(store.conversations_of(ada.id).await.expect("conversations"), vec![]);
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![bob.id, cy.id]);
    assert_eq!(store.member_ids(dm.id).await.expect("members"), vec![bob.id]);
    assert_eq!(store.public_keys(team.id).await.expect("public keys"), vec![(bob.id, keys("bob").public_key)]);
    assert_eq!(
        store.public_keys(dm.id).await.expect("public keys"),
        vec![(bob.id, keys(&bob.id.to_string()).public_key)]
    );
    let sealed = store.sealed_private_keys(None, 100).await.expect("sealed keys");
    assert_eq!(sealed.len(), 2);
    assert!(sealed.iter().all(|row| row.user_id == bob.id), "{sealed:?}");
    let summaries = store.conversation_partners(bob.id).await.expect("partners");
    assert_eq!(summaries, vec![UserSummary::from(&cy)]);

    // Ada's sends are gone from everyone's history; her copies of others' sends too.
    for recipient in [bob.id, cy.id] {
        assert_eq!(page(&store, team.id, recipient).await, vec![from_bob.messages[&recipient].clone()]);
    }
    assert_eq!(page(&store, dm.id, bob.id).await, vec![]);
    let bob_group = from_bob.messages[&bob.id].message_group;
    let edited = store.edit_message(bob_group, bob.id, &contents("edited", &[bob.id, cy.id]), now).await;
    assert_eq!(edited.expect("edit").messages.keys().copied().collect::<Vec<_>>(), vec![bob.id, cy.id]);
    let ada_group = from_ada.messages[&bob.id].message_group;
    assert!(is_not_found(&store.delete_message(ada_group, ada.id).await));

    // The conversations, and the others' use of them, carry on.
    assert!(store.conversation(team.id).await.expect("conversation").is_some());
    send(&store, team.id, cy.id, "still here", &[bob.id, cy.id], now).await;
}

/// A user's sends and copies go with them also where they had left, and nobody else's do.
async fn delete_user_removes_sends_where_they_left(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let club = group(&store, bob.id, &[bob.id, ada.id, cy.id], now).await;
    send(&store, club.id, ada.id, "before leaving", &[ada.id, bob.id, cy.id], now).await;
    let to_ada = send(&store, club.id, bob.id, "to ada", &[ada.id, bob.id, cy.id], now).await;
    store.leave_conversation(club.id, ada.id).await.expect("leave");
    let after = send(&store, club.id, cy.id, "after", &[bob.id, cy.id], now).await;
    assert_eq!(page(&store, club.id, ada.id).await.len(), 2);

    store.delete_user(ada.id).await.expect("delete user");

    for recipient in [bob.id, cy.id] {
        let expected = vec![after.messages[&recipient].clone(), to_ada.messages[&recipient].clone()];
        assert_eq!(page(&store, club.id, recipient).await, expected);
    }
    assert_eq!(page(&store, club.id, ada.id).await, vec![]);
}

async fn allowance_is_exact_under_concurrency(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada] = people(&store, ["ada"], now).await;
    let start = Arc::new(Barrier::new(100));
    let takers: Vec<_> = (0..100)
        .map(|_| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.take_allowance(ada.id, "2026-11-30", AllowanceKind::Text, 20).await.expect("take")
            })
        })
        .collect();
    let mut granted = Vec::new();
    for taker in takers {
        if let Some(used) = taker.await.expect("taker") {
            granted.push(used);
        }
    }
    granted.sort_unstable();
    assert_eq!(granted, (1..=20).collect::<Vec<u32>>(), "each of 20 units granted once");
    assert_eq!(store.allowance_used(ada.id, "2026-11-30", AllowanceKind::Text).await.expect("used"), 20);
}

async fn allowance_counts_per_day_and_kind_and_refunds(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let take = |user, day, kind| {
        let store = store.clone();
        async move { store.take_allowance(user, day, kind, 2).await.expect("take") }
    };
    assert_eq!(take(ada.id, "2026-11-30", AllowanceKind::Image).await, Some(1));
    assert_eq!(take(ada.id, "2026-11-30", AllowanceKind::Image).await, Some(2));
    assert_eq!(take(ada.id, "2026-11-30", AllowanceKind::Image).await, None);
    // Another kind, another day, another user: their own counts.
    assert_eq!(take(ada.id, "2026-11-30", AllowanceKind::Text).await, Some(1));
    assert_eq!(take(ada.id, "2026-12-01", AllowanceKind::Image).await, Some(1));
    assert_eq!(take(bob.id, "2026-11-30", AllowanceKind::Image).await, Some(1));
    // A refund frees one unit; refunds never go below zero.
    store.refund_allowance(ada.id, "2026-11-30", AllowanceKind::Image).await.expect("refund");
    assert_eq!(take(ada.id, "2026-11-30", AllowanceKind::Image).await, Some(2));
    for _ in 0..3 {
        store.refund_allowance(bob.id, "2026-11-30", AllowanceKind::Image).await.expect("refund");
    }
    assert_eq!(store.allowance_used(bob.id, "2026-11-30", AllowanceKind::Image).await.expect("used"), 0);
    store.refund_allowance(bob.id, "2020-01-01", AllowanceKind::Text).await.expect("refund of nothing");
    // A limit of zero grants nothing.
    assert_eq!(store.take_allowance(bob.id, "2026-11-30", AllowanceKind::Text, 0).await.expect("take"), None);
    // Deleting the account deletes its counts.
    store.delete_user(ada.id).await.expect("delete");
    assert_eq!(store.allowance_used(ada.id, "2026-11-30", AllowanceKind::Image).await.expect("used"), 0);
}

async fn assistant_turns_newest_first_per_thread(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let turn = |user_id, thread: &str, n: i64, answered: bool| AssistantTurn {
        id: Uuid::now_v7(),
        user_id,
        thread: thread.to_owned(),
        topic: Some("dsa".to_owned()),
        prompt: format!("question {n}"),
        reply: format!("answer {n}"),
        provider: answered.then(|| "groq".to_owned()),
        answered,
        attempts: r#"[{"provider":"groq","key":"0011223344556677","outcome":"answered","latency_ms":3}]"#.to_owned(),
        inserted_at: now.plus_secs(n),
    };
    let turns: Vec<AssistantTurn> =
        (0..5).map(|n| turn(ada.id, "conv_1", n, n != 3)).chain([turn(ada.id, "conv_2", 9, true)]).collect();
    for turn in &turns {
        store.record_assistant_turn(turn).await.expect("record");
    }
    store.record_assistant_turn(&turn(bob.id, "conv_1", 7, true)).await.expect("record bob's");
    let newest = store.assistant_turns(ada.id, "conv_1", 3).await.expect("turns");
    assert_eq!(newest, vec![turns[4].clone(), turns[3].clone(), turns[2].clone()]);
    assert!(!newest[1].answered && newest[1].provider.is_none());
    assert_eq!(store.assistant_turns(ada.id, "conv_2", 10).await.expect("turns"), vec![turns[5].clone()]);
    assert_eq!(store.assistant_turns(ada.id, "conv_3", 10).await.expect("turns"), vec![]);
    store.delete_user(ada.id).await.expect("delete");
    assert_eq!(store.assistant_turns(ada.id, "conv_1", 10).await.expect("turns"), vec![]);
    assert_eq!(store.assistant_turns(bob.id, "conv_1", 10).await.expect("turns").len(), 1);
}

async fn concurrent_turns_are_all_stored_and_a_bad_one_fails_alone(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada] = people(&store, ["ada"], now).await;
    let turn = |user_id, n: i64| AssistantTurn {
        id: Uuid::now_v7(),
        user_id,
        thread: "conv_busy".to_owned(),
        topic: None,
        prompt: format!("question {n}"),
        reply: format!("answer {n}"),
        provider: Some("groq".to_owned()),
        answered: true,
        attempts: "[]".to_owned(),
        inserted_at: now.plus_secs(n),
    };
    // More than one batch's worth at once, with one turn of nobody (refused by its foreign key)
    // among them: it fails, and only it.
    let nobody = Uuid::now_v7();
    let writers: Vec<_> = (0..300)
        .map(|n| {
            let (store, turn) = (store.clone(), turn(if n == 150 { nobody } else { ada.id }, n));
            tokio::spawn(async move { store.record_assistant_turn(&turn).await })
        })
        .collect();
    let mut failed = Vec::new();
    for (n, writer) in writers.into_iter().enumerate() {
        if writer.await.expect("writer").is_err() {
            failed.push(n);
        }
    }
    assert_eq!(failed, [150]);
    assert_eq!(store.assistant_turns(ada.id, "conv_busy", 1000).await.expect("turns").len(), 299);
}

async fn one_assistant_conversation_per_person(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    assert_eq!(store.assistant_conversation(ada.id).await.expect("look up"), None);
    // Racing first uses make one conversation.
    let start = Arc::new(Barrier::new(8));
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.create_assistant_conversation(Uuid::now_v7(), ada.id, now).await.expect("create")
            })
        })
        .collect();
    let mut made = Vec::new();
    for racer in racers {
        made.push(racer.await.expect("racer"));
    }
    assert_eq!(made.iter().filter(|(_, created)| *created).count(), 1, "one creation wins");
    let conversation = made[0].0.clone();
    assert!(made.iter().all(|(c, _)| *c == conversation));
    assert!(conversation.assistant && !conversation.private && conversation.alias.is_none());
    assert_eq!(store.assistant_conversation(ada.id).await.expect("look up"), Some(conversation.clone()));
    assert_eq!(store.member_ids(conversation.id).await.expect("members"), vec![ada.id]);
    assert_eq!(store.conversations_of(ada.id).await.expect("list"), vec![conversation.clone()]);
    // Bob's is his own; ordinary conversations are no assistant's.
    let (bobs, created) = store.create_assistant_conversation(Uuid::now_v7(), bob.id, now).await.expect("bob's");
    assert!(created && bobs.id != conversation.id);
    let club = group(&store, ada.id, &[ada.id, bob.id], now).await;
    assert!(!club.assistant);
    assert!(!store.conversation(club.id).await.expect("read").expect("exists").assistant);
    // A user that does not exist has none.
    let nobody = store.create_assistant_conversation(Uuid::now_v7(), Uuid::now_v7(), now).await;
    assert!(is_not_found(&nobody), "{nobody:?}");
}

async fn assistant_replies_reach_only_the_owner(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let (conversation, _) = store.create_assistant_conversation(Uuid::now_v7(), ada.id, now).await.expect("create");
    let prompt = send(&store, conversation.id, ada.id, "what is a heap?", &[ada.id], now).await;
    let reply_group = Uuid::now_v7();
    let later = now.plus_secs(1);
    let delivery =
        store.post_assistant_reply(reply_group, conversation.id, "a tree with an order", later).await.expect("reply");
    assert!(delivery.fresh);
    assert_eq!(delivery.conversation_id, conversation.id);
    assert_eq!(delivery.messages.keys().copied().collect::<Vec<_>>(), vec![ada.id]);
    let reply = &delivery.messages[&ada.id];
    assert_eq!(
        (reply.sender, reply.message_group, reply.content.as_str()),
        (ASSISTANT_SENDER, reply_group, "a tree with an order")
    );
    assert_eq!(page(&store, conversation.id, ada.id).await, vec![reply.clone(), prompt.messages[&ada.id].clone()]);
    // Only into an assistant conversation.
    let club = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let refused = store.post_assistant_reply(Uuid::now_v7(), club.id, "no", now).await;
    assert!(is_not_found(&refused), "{refused:?}");
    // Deleting the owner deletes the conversation and the assistant's replies in it.
    store.delete_user(ada.id).await.expect("delete");
    assert_eq!(store.conversation(conversation.id).await.expect("read"), None);
    assert_eq!(store.assistant_conversation(ada.id).await.expect("look up"), None);
}

async fn assistant_images_only_for_their_owner(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let image = AssistantImage {
        id: Uuid::now_v7(),
        user_id: ada.id,
        content_type: "image/png".to_owned(),
        bytes: b"\x89PNG\r\n\x1a\n and the rest".to_vec(),
        prompt: "a lighthouse".to_owned(),
        provider: "openai".to_owned(),
        inserted_at: now,
    };
    store.store_assistant_image(&image).await.expect("store");
    assert_eq!(store.assistant_image(image.id, ada.id).await.expect("read"), Some(image.clone()));
    assert_eq!(store.assistant_image(image.id, bob.id).await.expect("read"), None, "not bob's");
    assert_eq!(store.assistant_image(Uuid::now_v7(), ada.id).await.expect("read"), None);
    store.delete_user(ada.id).await.expect("delete");
    assert_eq!(store.assistant_image(image.id, ada.id).await.expect("read"), None);
}

async fn knowledge_is_searched_by_words_within_a_topic(store: Arc<dyn Store>) {
    let entry = |topic: &str, question: &str| KnowledgeEntry {
        topic: topic.to_owned(),
        question: question.to_owned(),
        answer: format!("answer to {question}"),
    };
    let entries = [
        entry("hearth", "How do I start a private conversation?"),
        entry("hearth", "How do I change my password?"),
        entry("dsa", "What is a binary tree?"),
        entry("dsa", "What is a heap?"),
    ];
    store.replace_knowledge(&entries).await.expect("load");
    let search = |topic: &'static str, words: &[&str]| {
        let store = store.clone();
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        async move { store.search_knowledge(topic, &words, 5).await.expect("search") }
    };
    // Stemming: "starting" finds "start".
    assert_eq!(search("hearth", &["starting", "conversations"]).await, vec![entries[0].clone()]);
    // Any word may match; the best match comes first.
    assert_eq!(search("dsa", &["binary", "tree", "heap"]).await.first(), Some(&entries[2]));
    assert_eq!(search("dsa", &["heap"]).await, vec![entries[3].clone()]);
    // Only the topic asked about.
    assert_eq!(search("hearth", &["heap"]).await, vec![]);
    assert_eq!(search("nothing", &["heap"]).await, vec![]);
    // Search syntax in the words is ignored, not run.
    assert_eq!(search("dsa", &["heap*", "(tree)", "NEAR(", "-", "|", "!"]).await.len(), 2);
    assert_eq!(search("dsa", &["heap\" OR \"tree"]).await, vec![], "one word: heapORtree");
    assert_eq!(search("dsa", &["\"", "'"]).await, vec![]);
    assert_eq!(search("dsa", &[]).await, vec![]);
    // Replacing drops what was there.
    store.replace_knowledge(&entries[..1]).await.expect("reload");
    assert_eq!(search("dsa", &["heap"]).await, vec![]);
    assert_eq!(search("hearth", &["start"]).await, vec![entries[0].clone()]);
}

// --- provider keys ---

/// A key of `owner` for `provider`, sealed (as far as the store knows) under master key 1.
fn provider_key(owner: KeyOwner, provider: &str, inserted_at: Timestamp) -> NewProviderKey {
    let id = Uuid::now_v7();
    NewProviderKey {
        id,
        owner,
        provider: provider.to_owned(),
        sealed: format!("sealed {id}").into_bytes(),
        master_version: 1,
        last_four: "wxyz".to_owned(),
        fingerprint: id.simple().to_string()[..16].to_owned(),
        inserted_at,
    }
}

/// The key as listed right after it was stored.
fn stored(key: &NewProviderKey) -> StoredProviderKey {
    StoredProviderKey {
        id: key.id,
        owner: key.owner,
        provider: key.provider.clone(),
        sealed: key.sealed.clone(),
        master_version: key.master_version,
        last_four: key.last_four.clone(),
        fingerprint: key.fingerprint.clone(),
        inserted_at: key.inserted_at,
        last_used_at: None,
        failures: 0,
    }
}

/// Issues `user_id` a configure link of the kind `key` needs; returns its hash and the
/// redemption that stores `key` through it.
async fn configure_link(store: &Arc<dyn Store>, user_id: Uuid, key: &NewProviderKey) -> ([u8; 32], Redemption) {
    let redemption = Redemption::StoreProviderKey { user_id, key: key.clone() };
    let hash = issue(store, user_id, redemption.kind(), key.inserted_at).await;
    (hash, redemption)
}

/// Stores `key` the only way keys are stored: through a configure link of `user_id`.
async fn store_key(store: &Arc<dyn Store>, user_id: Uuid, key: &NewProviderKey) {
    let (hash, redemption) = configure_link(store, user_id, key).await;
    let owner = store.redeem_one_time_token(&hash, &redemption, key.inserted_at).await.expect("store provider key");
    assert_eq!(owner, user_id);
}

async fn keys_of(store: &Arc<dyn Store>, owner: KeyOwner) -> Vec<StoredProviderKey> {
    store.provider_keys(owner).await.expect("provider keys")
}

async fn configure_link_stores_a_key_for_its_owner_only(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, operator] = people(&store, ["ada", "operator"], now).await;
    let own = provider_key(KeyOwner::User(ada.id), "groq", now);
    let pool = provider_key(KeyOwner::Pool, "groq", now);
    assert_eq!(Redemption::StoreProviderKey { user_id: ada.id, key: own.clone() }.kind(), OneTimeKind::ProviderKey);
    assert_eq!(Redemption::StoreProviderKey { user_id: ada.id, key: pool.clone() }.kind(), OneTimeKind::PoolKey);

    let (hash, redemption) = configure_link(&store, ada.id, &own).await;
    assert_eq!(store.peek_one_time_token(&hash, OneTimeKind::ProviderKey, now).await.expect("peek"), Some(ada.id));
    assert_eq!(store.peek_one_time_token(&hash, OneTimeKind::PoolKey, now).await.expect("peek"), None);
    // A pool key through a person's own link is the wrong kind.
    let as_pool = Redemption::StoreProviderKey { user_id: ada.id, key: pool.clone() };
    assert!(is_not_found(&store.redeem_one_time_token(&hash, &as_pool, now).await));
    // A key for someone else through Ada's link breaks a rule, and spends nothing.
    let for_operator = provider_key(KeyOwner::User(operator.id), "groq", now);
    let misdirected = Redemption::StoreProviderKey { user_id: ada.id, key: for_operator };
    let result = store.redeem_one_time_token(&hash, &misdirected, now).await;
    assert!(matches!(result, Err(StoreError::Rule(_))), "{result:?}");
    // A master version PostgreSQL's INTEGER cannot hold is refused before anything is spent.
    let too_new = provider_key(KeyOwner::User(ada.id), "groq", now);
    let too_new =
        Redemption::StoreProviderKey { user_id: ada.id, key: NewProviderKey { master_version: u32::MAX, ..too_new } };
    let result = store.redeem_one_time_token(&hash, &too_new, now).await;
    assert!(matches!(result, Err(StoreError::Rule(_))), "{result:?}");
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![]);

    assert_eq!(store.redeem_one_time_token(&hash, &redemption, now).await.expect("redeem"), ada.id);
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![stored(&own)]);
    // Spent: a second redemption stores nothing.
    let again =
        Redemption::StoreProviderKey { user_id: ada.id, key: provider_key(KeyOwner::User(ada.id), "groq", now) };
    assert!(is_not_found(&store.redeem_one_time_token(&hash, &again, now).await));
    assert!(is_not_found(&store.redeem_one_time_token(&hash, &redemption, now).await));
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![stored(&own)]);

    // The operator's pool link stores a key of the pool, not the operator's.
    store_key(&store, operator.id, &pool).await;
    assert_eq!(keys_of(&store, KeyOwner::Pool).await, vec![stored(&pool)]);
    assert_eq!(keys_of(&store, KeyOwner::User(operator.id)).await, vec![]);
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![stored(&own)]);

    // Oldest first: by time entered, then by id.
    let older = provider_key(KeyOwner::User(ada.id), "openai", now.plus_secs(-60));
    let same_time = provider_key(KeyOwner::User(ada.id), "gemini", now);
    store_key(&store, ada.id, &same_time).await;
    store_key(&store, ada.id, &older).await;
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![stored(&older), stored(&own), stored(&same_time)]);
    assert_eq!(keys_of(&store, KeyOwner::Pool).await, vec![stored(&pool)]);
}

async fn configure_link_of_another_user_is_not_found(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [alice, mallory] = people(&store, ["alice", "mallory"], now).await;
    for owner in [KeyOwner::User(alice.id), KeyOwner::Pool] {
        let key = provider_key(owner, "groq", now);
        let (hash, redemption) = configure_link(&store, alice.id, &key).await;
        let kind = redemption.kind();
        // Mallory presents Alice's link as her own.
        let mallorys = match owner {
            KeyOwner::User(_) => KeyOwner::User(mallory.id),
            KeyOwner::Pool => KeyOwner::Pool,
        };
        let stolen = Redemption::StoreProviderKey { user_id: mallory.id, key: provider_key(mallorys, "groq", now) };
        let result = store.redeem_one_time_token(&hash, &stolen, now).await;
        assert!(is_not_found(&result), "{owner:?}: {result:?}");
        assert_eq!(keys_of(&store, KeyOwner::User(mallory.id)).await, vec![]);
        assert_eq!(keys_of(&store, owner).await, vec![]);
        assert_eq!(store.peek_one_time_token(&hash, kind, now).await.expect("peek"), Some(alice.id), "not spent");

        assert_eq!(store.redeem_one_time_token(&hash, &redemption, now).await.expect("redeem"), alice.id);
        assert_eq!(keys_of(&store, owner).await, vec![stored(&key)]);
    }
    assert_eq!(keys_of(&store, KeyOwner::User(mallory.id)).await, vec![]);
}

async fn configure_link_replaces_earlier_links_of_either_kind(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let own = provider_key(KeyOwner::User(ada.id), "groq", now);
    let pool = provider_key(KeyOwner::Pool, "groq", now);
    assert_eq!(OneTimeKind::ProviderKey.replaces(), OneTimeKind::PoolKey.replaces());
    assert_eq!(OneTimeKind::DeviceLink.replaces(), &[OneTimeKind::DeviceLink]);

    let confirm = issue(&store, ada.id, OneTimeKind::EmailConfirm, now).await;
    let bobs_key = provider_key(KeyOwner::User(bob.id), "groq", now);
    let (bobs_link, bobs_redemption) = configure_link(&store, bob.id, &bobs_key).await;

    // Own, then pool: the pool link replaces the own one.
    let (first, first_redemption) = configure_link(&store, ada.id, &own).await;
    let (second, second_redemption) = configure_link(&store, ada.id, &pool).await;
    assert_eq!(store.peek_one_time_token(&first, OneTimeKind::ProviderKey, now).await.expect("peek"), None);
    assert!(is_not_found(&store.redeem_one_time_token(&first, &first_redemption, now).await));
    // Pool, then own: the own link replaces the pool one.
    let (third, third_redemption) = configure_link(&store, ada.id, &own).await;
    assert_eq!(store.peek_one_time_token(&second, OneTimeKind::PoolKey, now).await.expect("peek"), None);
    assert!(is_not_found(&store.redeem_one_time_token(&second, &second_redemption, now).await));
    // The same kind again replaces it too.
    let (fourth, fourth_redemption) = configure_link(&store, ada.id, &own).await;
    assert!(is_not_found(&store.redeem_one_time_token(&third, &third_redemption, now).await));
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![]);
    assert_eq!(keys_of(&store, KeyOwner::Pool).await, vec![]);

    // Other kinds and other people's links are untouched, and other kinds replace no link.
    issue(&store, ada.id, OneTimeKind::DeviceLink, now).await;
    assert_eq!(store.peek_one_time_token(&confirm, OneTimeKind::EmailConfirm, now).await.expect("peek"), Some(ada.id));
    assert_eq!(store.redeem_one_time_token(&fourth, &fourth_redemption, now).await.expect("redeem"), ada.id);
    assert_eq!(store.redeem_one_time_token(&bobs_link, &bobs_redemption, now).await.expect("redeem bob's"), bob.id);
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![stored(&own)]);
    assert_eq!(keys_of(&store, KeyOwner::User(bob.id)).await, vec![stored(&bobs_key)]);

    // A spent link is not an earlier unspent one: issuing again leaves its key alone.
    configure_link(&store, ada.id, &pool).await;
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![stored(&own)]);
}

async fn expired_configure_link_is_refused(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada] = people(&store, ["ada"], now).await;
    for owner in [KeyOwner::User(ada.id), KeyOwner::Pool] {
        let key = provider_key(owner, "groq", now);
        let (hash, redemption) = configure_link(&store, ada.id, &key).await;
        // Issued with an hour to live.
        let result = store.redeem_one_time_token(&hash, &redemption, now.plus_secs(3601)).await;
        assert!(is_not_found(&result), "{owner:?}: {result:?}");
        assert_eq!(keys_of(&store, owner).await, vec![]);
        assert_eq!(store.redeem_one_time_token(&hash, &redemption, now.plus_secs(3599)).await.expect("redeem"), ada.id);
        assert_eq!(keys_of(&store, owner).await, vec![stored(&key)]);
    }
}

async fn redeem_race_provider_key_exactly_once(store: Arc<dyn Store>) {
    const RACERS: usize = 20;
    let now = Timestamp::now();
    let [ada] = people(&store, ["ada"], now).await;
    let hash = issue(&store, ada.id, OneTimeKind::ProviderKey, now).await;
    let barrier = Arc::new(Barrier::new(RACERS));

    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let key = provider_key(KeyOwner::User(ada.id), "groq", now);
            tokio::spawn(async move {
                barrier.wait().await;
                let redemption = Redemption::StoreProviderKey { user_id: ada.id, key: key.clone() };
                (key, store.redeem_one_time_token(&hash, &redemption, now).await)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut not_found = 0;
    for task in tasks {
        match task.await.expect("task") {
            (key, Ok(owner)) => winners.push((key, owner)),
            (_, Err(StoreError::NotFound)) => not_found += 1,
            (_, Err(error)) => panic!("unexpected error: {error:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(not_found, RACERS - 1);
    let (key, owner) = &winners[0];
    assert_eq!(*owner, ada.id);
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![stored(key)], "exactly one key was stored");
    assert_eq!(store.all_provider_keys(None, 100).await.expect("all keys").len(), 1);
}

async fn delete_provider_key_of_another_owner_is_not_found(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let adas = provider_key(KeyOwner::User(ada.id), "groq", now);
    let bobs = provider_key(KeyOwner::User(bob.id), "groq", now);
    let pool = provider_key(KeyOwner::Pool, "groq", now);
    for (user_id, key) in [(ada.id, &adas), (bob.id, &bobs), (ada.id, &pool)] {
        store_key(&store, user_id, key).await;
    }

    for (owner, id) in [
        (KeyOwner::User(ada.id), bobs.id),
        (KeyOwner::User(ada.id), pool.id),
        (KeyOwner::Pool, adas.id),
        (KeyOwner::User(bob.id), adas.id),
        (KeyOwner::User(ada.id), Uuid::now_v7()),
    ] {
        let result = store.delete_provider_key(owner, id).await;
        assert!(is_not_found(&result), "{owner:?} deleting {id}: {result:?}");
    }
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![stored(&adas)]);
    assert_eq!(keys_of(&store, KeyOwner::User(bob.id)).await, vec![stored(&bobs)]);
    assert_eq!(keys_of(&store, KeyOwner::Pool).await, vec![stored(&pool)]);

    store.delete_provider_key(KeyOwner::User(bob.id), bobs.id).await.expect("delete bob's");
    store.delete_provider_key(KeyOwner::Pool, pool.id).await.expect("delete the pool's");
    assert_eq!(keys_of(&store, KeyOwner::User(bob.id)).await, vec![]);
    assert_eq!(keys_of(&store, KeyOwner::Pool).await, vec![]);
    assert!(is_not_found(&store.delete_provider_key(KeyOwner::User(bob.id), bobs.id).await));
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![stored(&adas)]);
}

async fn delete_provider_keys_of_counts(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let adas = [
        provider_key(KeyOwner::User(ada.id), "groq", now),
        provider_key(KeyOwner::User(ada.id), "groq", now.plus_secs(1)),
        provider_key(KeyOwner::User(ada.id), "openai", now.plus_secs(2)),
    ];
    for key in &adas {
        store_key(&store, ada.id, key).await;
    }
    let bobs = provider_key(KeyOwner::User(bob.id), "groq", now);
    let pool = provider_key(KeyOwner::Pool, "groq", now);
    store_key(&store, bob.id, &bobs).await;
    store_key(&store, bob.id, &pool).await;

    assert_eq!(store.delete_provider_keys_of(KeyOwner::User(ada.id), "groq").await.expect("delete"), 2);
    assert_eq!(store.delete_provider_keys_of(KeyOwner::User(ada.id), "groq").await.expect("delete again"), 0);
    assert_eq!(store.delete_provider_keys_of(KeyOwner::User(ada.id), "gemini").await.expect("delete none"), 0);
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![stored(&adas[2])]);
    assert_eq!(keys_of(&store, KeyOwner::User(bob.id)).await, vec![stored(&bobs)]);
    assert_eq!(keys_of(&store, KeyOwner::Pool).await, vec![stored(&pool)]);
    assert_eq!(store.delete_provider_keys_of(KeyOwner::Pool, "groq").await.expect("delete the pool's"), 1);
    assert_eq!(keys_of(&store, KeyOwner::Pool).await, vec![]);
    assert_eq!(keys_of(&store, KeyOwner::User(bob.id)).await, vec![stored(&bobs)]);
}

async fn record_key_outcomes_tracks_use_and_failures(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada] = people(&store, ["ada"], now).await;
    let failing = provider_key(KeyOwner::User(ada.id), "groq", now);
    let working = provider_key(KeyOwner::Pool, "groq", now.plus_secs(1));
    let idle = provider_key(KeyOwner::User(ada.id), "openai", now.plus_secs(2));
    for key in [&failing, &working, &idle] {
        store_key(&store, ada.id, key).await;
    }

    store.record_key_outcomes(&[], now).await.expect("nothing to record");
    let t1 = now.plus_secs(10);
    let outcomes = [(failing.id, false), (working.id, true), (Uuid::now_v7(), true), (failing.id, false)];
    store.record_key_outcomes(&outcomes, t1).await.expect("record");
    let failed_twice = StoredProviderKey { failures: 2, ..stored(&failing) };
    let used_at_t1 = StoredProviderKey { last_used_at: Some(t1), ..stored(&working) };
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![failed_twice.clone(), stored(&idle)]);
    assert_eq!(keys_of(&store, KeyOwner::Pool).await, vec![used_at_t1.clone()]);

    // A success clears the failures; a failure keeps the last use.
    let t2 = now.plus_secs(20);
    store.record_key_outcomes(&[(working.id, false), (failing.id, true)], t2).await.expect("record");
    assert_eq!(
        keys_of(&store, KeyOwner::User(ada.id)).await,
        vec![StoredProviderKey { last_used_at: Some(t2), ..stored(&failing) }, stored(&idle)]
    );
    assert_eq!(keys_of(&store, KeyOwner::Pool).await, vec![StoredProviderKey { failures: 1, ..used_at_t1 }]);

    // One key's outcomes count in the order given.
    let t3 = now.plus_secs(30);
    store.record_key_outcomes(&[(idle.id, true), (idle.id, false), (idle.id, false)], t3).await.expect("record");
    let idle_now = StoredProviderKey { last_used_at: Some(t3), failures: 2, ..stored(&idle) };
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await[1], idle_now);
    // Only unknown ids: nothing changes.
    store.record_key_outcomes(&[(Uuid::now_v7(), false)], t3).await.expect("record unknown");
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await[1], idle_now);
}

async fn all_provider_keys_pages_by_id(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    assert_eq!(store.all_provider_keys(None, 10).await.expect("none yet"), vec![]);
    let mut expected = Vec::new();
    for (user_id, owner) in [
        (ada.id, KeyOwner::User(ada.id)),
        (bob.id, KeyOwner::User(bob.id)),
        (ada.id, KeyOwner::Pool),
        (bob.id, KeyOwner::User(bob.id)),
        (ada.id, KeyOwner::Pool),
    ] {
        // Random ids, so the order entered is not the order of ids.
        let key = NewProviderKey { id: Uuid::new_v4(), ..provider_key(owner, "groq", now) };
        store_key(&store, user_id, &key).await;
        expected.push(stored(&key));
    }
    expected.sort_by_key(|key| key.id);

    assert_eq!(store.all_provider_keys(None, 100).await.expect("all"), expected);
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store.all_provider_keys(after, 2).await.expect("page");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|key| key.id);
        pages.push(page);
        assert!(pages.len() <= 3, "paging does not terminate");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
    assert_eq!(pages.concat(), expected);
    assert_eq!(store.all_provider_keys(Some(expected[2].id), 100).await.expect("after"), expected[3..].to_vec());
    assert_eq!(store.all_provider_keys(Some(Uuid::max()), 100).await.expect("after max"), vec![]);
    assert_eq!(store.all_provider_keys(None, 0).await.expect("limit 0"), vec![]);
}

async fn replace_sealed_provider_key_compares_and_swaps(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada] = people(&store, ["ada"], now).await;
    let key = provider_key(KeyOwner::User(ada.id), "groq", now);
    let other = provider_key(KeyOwner::Pool, "groq", now);
    store_key(&store, ada.id, &key).await;
    store_key(&store, ada.id, &other).await;
    let resealed = b"resealed under master key 2".to_vec();

    let stale = store.replace_sealed_provider_key(key.id, b"not the old one", &resealed, 2).await;
    assert!(!stale.expect("stale replace"));
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![stored(&key)]);
    let too_new = store.replace_sealed_provider_key(key.id, &key.sealed, &resealed, u32::MAX).await;
    assert!(matches!(too_new, Err(StoreError::Rule(_))), "{too_new:?}");

    assert!(store.replace_sealed_provider_key(key.id, &key.sealed, &resealed, 2).await.expect("replace"));
    let replaced = StoredProviderKey { sealed: resealed.clone(), master_version: 2, ..stored(&key) };
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![replaced.clone()]);
    // The old blob no longer matches; an unknown key matches nothing.
    assert!(!store.replace_sealed_provider_key(key.id, &key.sealed, b"other", 3).await.expect("replace again"));
    assert!(!store.replace_sealed_provider_key(Uuid::now_v7(), &resealed, b"other", 3).await.expect("missing"));
    assert_eq!(keys_of(&store, KeyOwner::User(ada.id)).await, vec![replaced]);
    assert_eq!(keys_of(&store, KeyOwner::Pool).await, vec![stored(&other)], "only that key changed");
}

async fn provider_key_versions_count_per_version(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada] = people(&store, ["ada"], now).await;
    assert_eq!(store.provider_key_versions().await.expect("versions"), vec![]);
    let keys: Vec<NewProviderKey> = [3, 1, 3, 3]
        .into_iter()
        .map(|master_version| NewProviderKey { master_version, ..provider_key(KeyOwner::Pool, "groq", now) })
        .collect();
    for key in &keys {
        store_key(&store, ada.id, key).await;
    }
    assert_eq!(store.provider_key_versions().await.expect("versions"), vec![(1, 1), (3, 3)]);
    assert!(store.replace_sealed_provider_key(keys[1].id, &keys[1].sealed, b"v2", 2).await.expect("reseal"));
    assert!(store.replace_sealed_provider_key(keys[2].id, &keys[2].sealed, b"v2", 2).await.expect("reseal"));
    assert_eq!(store.provider_key_versions().await.expect("versions"), vec![(2, 2), (3, 2)]);
}

async fn delete_user_removes_their_provider_keys_not_the_pools(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [operator, bob] = people(&store, ["operator", "bob"], now).await;
    let own = provider_key(KeyOwner::User(operator.id), "groq", now);
    let pool = provider_key(KeyOwner::Pool, "groq", now);
    let bobs = provider_key(KeyOwner::User(bob.id), "groq", now);
    store_key(&store, operator.id, &own).await;
    // Entered by the operator, but the pool's.
    store_key(&store, operator.id, &pool).await;
    store_key(&store, bob.id, &bobs).await;
    let pending = provider_key(KeyOwner::User(operator.id), "openai", now);
    let (link, redemption) = configure_link(&store, operator.id, &pending).await;

    store.delete_user(operator.id).await.expect("delete user");
    assert_eq!(keys_of(&store, KeyOwner::User(operator.id)).await, vec![]);
    assert_eq!(keys_of(&store, KeyOwner::Pool).await, vec![stored(&pool)]);
    assert_eq!(keys_of(&store, KeyOwner::User(bob.id)).await, vec![stored(&bobs)]);
    let mut remaining = vec![stored(&pool), stored(&bobs)];
    remaining.sort_by_key(|key| key.id);
    assert_eq!(store.all_provider_keys(None, 100).await.expect("all"), remaining);
    // Their unspent link went with them.
    assert!(is_not_found(&store.redeem_one_time_token(&link, &redemption, now).await));
    assert_eq!(store.provider_key_versions().await.expect("versions"), vec![(1, 2)]);
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

/// A SQLite database with messages from before `20261130000001_participants` keeps them
/// through that migration, and what it changes works on them: resends are still found and
/// deleting a user still finds their rows, also where they had left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_messages_survive_the_participants_migration() {
    let database = TestDatabase::sqlite();
    let pool = sqlite_migrated_before(&database, "20261130000001").await;
    let now = Timestamp::now();
    let [ada, bob] = [Uuid::now_v7(), Uuid::now_v7()];
    for (id, name) in [(ada, "ada"), (bob, "bob")] {
        insert_user_row(&pool, id, name, now).await;
    }
    let club = Uuid::now_v7();
    sqlx::query("INSERT INTO conversations (id, private, inserted_at, updated_at) VALUES ($1, 0, $2, $2)")
        .bind(club)
        .bind(now)
        .execute(&pool)
        .await
        .expect("conversation");
    // Ada has left: only Bob is a member now.
    sqlx::query("INSERT INTO conversation_members (conversation_id, user_id, joined_at) VALUES ($1, $2, $3)")
        .bind(club)
        .bind(bob)
        .bind(now)
        .execute(&pool)
        .await
        .expect("member");
    let (from_ada, from_bob) = (Uuid::now_v7(), Uuid::now_v7());
    for (group, sender, client_msg_id) in [(from_ada, ada, Some("k")), (from_bob, bob, None)] {
        sqlx::query(
            "INSERT INTO message_groups (id, conversation_id, sender_id, client_msg_id, inserted_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(group)
        .bind(club)
        .bind(sender)
        .bind(client_msg_id)
        .bind(now)
        .execute(&pool)
        .await
        .expect("group");
        for recipient in [ada, bob] {
            sqlx::query(
                "INSERT INTO messages (id, message_group_id, recipient_id, content, inserted_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(Uuid::now_v7())
            .bind(group)
            .bind(recipient)
            .bind(format!("{group} for {recipient}"))
            .bind(now)
            .execute(&pool)
            .await
            .expect("message");
        }
    }
    pool.close().await;

    let store = connect(&database).await;
    let contents_of = |messages: Vec<StoredMessage>| messages.into_iter().map(|m| m.content).collect::<Vec<_>>();
    assert_eq!(
        contents_of(page(&store, club, bob).await),
        [format!("{from_bob} for {bob}"), format!("{from_ada} for {bob}")]
    );
    // A resend of Ada's keyed send is still recognised (before membership is checked).
    let mut resend = message(club, ada, contents("again", &[ada, bob]), now);
    resend.client_msg_id = Some("k".to_owned());
    let delivery = store.send_message(&resend).await.expect("resend");
    assert!(!delivery.fresh);
    assert_eq!(delivery.messages[&bob].message_group, from_ada);

    store.delete_user(ada).await.expect("delete user");
    assert_eq!(contents_of(page(&store, club, bob).await), [format!("{from_bob} for {bob}")]);
    assert_eq!(page(&store, club, ada).await, vec![]);
}

/// A pool on `database` with the shipped SQLite migrations before `migration` applied.
async fn sqlite_migrated_before(database: &TestDatabase, migration: &str) -> sqlx::SqlitePool {
    let earlier = tempfile::tempdir().expect("temporary directory");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&shipped).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        if name.as_str() < migration {
            std::fs::copy(&path, earlier.path().join(&name)).expect("copy migration");
        }
    }
    let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&database.url)
        .expect("url")
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.expect("pool");
    sqlx::migrate::Migrator::new(earlier.path()).await.expect("migrator").run(&pool).await.expect("old schema");
    pool
}

/// A user row written straight into `pool`'s database.
async fn insert_user_row(pool: &sqlx::SqlitePool, id: Uuid, name: &str, now: Timestamp) {
    sqlx::query("INSERT INTO users (id, email, display_name, password_hash, inserted_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
        .bind(id)
        .bind(format!("{name}@example.com"))
        .bind(name)
        .bind(PASSWORD_HASH)
        .bind(now)
        .execute(pool)
        .await
        .expect("user");
}

/// Turns stored before `20261204000001_assistant_turns_clustered` are all there after it, read
/// in the same order, and still go with their user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_turns_survive_the_clustered_turns_migration() {
    let database = TestDatabase::sqlite();
    let pool = sqlite_migrated_before(&database, "20261204000001").await;
    let now = Timestamp::now();
    let ada = Uuid::now_v7();
    insert_user_row(&pool, ada, "ada", now).await;
    // Two turns at the same millisecond, told apart by their ids, and one later.
    let ids = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let times = [now, now, Timestamp::from_millis(now.as_millis() + 1)];
    for (n, (id, at)) in ids.iter().zip(times).enumerate() {
        sqlx::query(
            "INSERT INTO assistant_turns (id, user_id, thread, topic, prompt, reply, provider, answered, attempts, inserted_at) \
             VALUES ($1, $2, 'conv_1', NULL, $3, $4, 'groq', 1, '[]', $5)",
        )
        .bind(id)
        .bind(ada)
        .bind(format!("prompt {n}"))
        .bind(format!("reply {n}"))
        .bind(at)
        .execute(&pool)
        .await
        .expect("turn");
    }
    pool.close().await;

    let store = connect(&database).await;
    let turns = store.assistant_turns(ada, "conv_1", 10).await.expect("turns");
    let read: Vec<(Uuid, &str, &str)> = turns.iter().map(|t| (t.id, t.prompt.as_str(), t.reply.as_str())).collect();
    assert_eq!(
        read,
        [(ids[2], "prompt 2", "reply 2"), (ids[1], "prompt 1", "reply 1"), (ids[0], "prompt 0", "reply 0")]
    );
    store.delete_user(ada).await.expect("delete user");
    assert_eq!(store.assistant_turns(ada, "conv_1", 10).await.expect("turns"), vec![]);
}
