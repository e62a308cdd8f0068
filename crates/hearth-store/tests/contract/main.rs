//! The storage contract: every test here runs against SQLite and against PostgreSQL.
//!
//! One module per area of the store. Each contract test is an `async fn(Arc<dyn Store>)`; in
//! each module, [`contract!`] turns the list of them into `<area>::sqlite::<name>` and
//! `<area>::postgres::<name>` tests, each on a fresh database that lives for the whole test.
//! The PostgreSQL ones return early (after saying "skipped" on stderr) when
//! `HEARTH_TEST_POSTGRES_URL` is unset. The helpers below are shared by every area.

/// Generates a SQLite and a PostgreSQL test for each contract test of the module it is used in.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let database = hearth_store::testing::TestDatabase::sqlite();
                    let store = crate::connect(&database).await;
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
                    let test = concat!(module_path!(), "::", stringify!($name));
                    let Some(database) = hearth_store::testing::TestDatabase::postgres(test).await else {
                        return;
                    };
                    let store = crate::connect(&database).await;
                    assert_eq!(store.backend(), "postgres");
                    super::$name(store).await;
                    drop(database);
                }
            )*
        }
    };
}

mod accounts;
mod admin;
mod assistant;
mod conversations;
mod migrations;
mod provider_keys;
mod rooms;
mod sessions;

use std::sync::Arc;

use hearth_store::testing::TestDatabase;
use hearth_store::{
    ConnectOptions, Device, NewAccount, NewOneTimeToken, NewSession, OneTimeKind, RefreshOutcome, Store, StoreError,
    Timestamp, User,
};
use uuid::Uuid;

pub(crate) const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

pub(crate) async fn connect(database: &TestDatabase) -> Arc<dyn Store> {
    hearth_store::connect(&ConnectOptions { url: database.url.clone(), max_connections: 8 })
        .await
        .expect("connect and migrate")
}

/// 32 random bytes, standing in for the SHA-256 of a token.
pub(crate) fn token_hash() -> [u8; 32] {
    let mut hash = [0; 32];
    hash[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    hash[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    hash
}

pub(crate) fn new_session(created_at: Timestamp) -> NewSession {
    NewSession {
        device_id: Uuid::now_v7(),
        name: "Firefox on Linux".to_owned(),
        refresh_token_hash: token_hash(),
        refresh_expires_at: created_at.plus_secs(30 * 24 * 3600),
        created_at,
    }
}

pub(crate) fn new_account(email: &str, now: Timestamp) -> NewAccount {
    NewAccount {
        user: User {
            id: Uuid::now_v7(),
            email: email.to_owned(),
            display_name: email.to_owned(),
            password_hash: PASSWORD_HASH.to_owned(),
            confirmed_at: None,
            inserted_at: now,
            updated_at: now,
            identity_key: None,
        },
        session: new_session(now),
    }
}

pub(crate) async fn create_account(store: &Arc<dyn Store>, email: &str, now: Timestamp) -> NewAccount {
    let account = new_account(email, now);
    store.create_account(&account).await.expect("create account");
    account
}

pub(crate) async fn issue(store: &Arc<dyn Store>, user_id: Uuid, kind: OneTimeKind, now: Timestamp) -> [u8; 32] {
    issue_from(store, user_id, None, kind, now).await
}

/// Issues a token made by the device session `device_id`, if any.
pub(crate) async fn issue_from(
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
pub(crate) async fn one_of_each(
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

pub(crate) async fn live_kinds(
    store: &Arc<dyn Store>,
    tokens: &[(OneTimeKind, [u8; 32])],
    now: Timestamp,
) -> Vec<OneTimeKind> {
    let mut live = Vec::new();
    for (kind, hash) in tokens {
        if store.peek_one_time_token(hash, *kind, now).await.expect("peek").is_some() {
            live.push(*kind);
        }
    }
    live
}

pub(crate) async fn user(store: &Arc<dyn Store>, id: Uuid) -> User {
    store.user(id).await.expect("read user").expect("user exists")
}

pub(crate) async fn device(store: &Arc<dyn Store>, id: Uuid) -> Device {
    store.device(id).await.expect("read device").expect("device exists")
}

pub(crate) async fn rotate(store: &Arc<dyn Store>, presented: &[u8; 32], now: Timestamp) -> ([u8; 32], RefreshOutcome) {
    let successor = token_hash();
    let outcome = store
        .rotate_refresh_token(presented, &successor, now.plus_secs(3600), now)
        .await
        .expect("rotate refresh token");
    (successor, outcome)
}

pub(crate) fn is_not_found<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::NotFound))
}
