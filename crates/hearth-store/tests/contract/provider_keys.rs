//! Provider keys: stored through configure links only, listed, deleted, their outcomes recorded,
//! re-sealed, and counted per master version.

use std::sync::Arc;

use hearth_store::{
    KeyOwner, NewProviderKey, OneTimeKind, Redemption, Store, StoreError, StoredProviderKey, Timestamp,
};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::conversations::people;
use crate::{is_not_found, issue};

contract!(
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
