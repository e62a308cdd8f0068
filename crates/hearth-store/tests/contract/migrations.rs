//! Migrations and health: `migrate` on both backends, opening without migrating, refusing unknown
//! URLs, and SQLite databases kept through the migrations that rewrote their tables.

use std::sync::Arc;

use hearth_store::testing::TestDatabase;
use hearth_store::{ConnectOptions, Store, StoreError, StoredMessage, Timestamp};
use uuid::Uuid;

use crate::conversations::{contents, message, page};
use crate::{PASSWORD_HASH, connect};

contract!(migrate_is_idempotent);

async fn migrate_is_idempotent(store: Arc<dyn Store>) {
    assert!(matches!(store.backend(), "sqlite" | "postgres"), "backend {}", store.backend());
    store.ping().await.expect("ping");
    // `connect` already migrated.
    assert_eq!(store.migrate().await.expect("second migrate"), 0);
    assert_eq!(store.migrate().await.expect("third migrate"), 0);
    store.ping().await.expect("ping after migrate");
}

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
    let Some(database) = TestDatabase::postgres("contract::migrations::postgres_migrations_apply_once").await else {
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
