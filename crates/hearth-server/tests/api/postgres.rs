//! The core flows against PostgreSQL (skipped unless `HEARTH_TEST_POSTGRES_URL` is set):
//! register, login, refresh with reuse detection, one-time tokens under a race, and text the
//! database cannot store; and, with a table lock to hold a join mid-way, an event published
//! during a join.

use hearth_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::json;

use crate::channels::{Peer, jwk};
use crate::harness::{EmailKind, PASSWORD, Session, TestApp, concurrently, spawn_app_with, str_field};
use crate::socket_client::{reply_to, send};

/// A server on a fresh PostgreSQL database. The database comes first so it outlives the
/// server when both are dropped.
async fn spawn_on_postgres(test: &str) -> Option<(TestDatabase, TestApp)> {
    let database = TestDatabase::postgres(test).await?;
    let url = database.url.clone();
    let app = spawn_app_with(|s| s.database.url = Some(url)).await;
    Some((database, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_and_refresh_on_postgres() {
    let Some((_database, app)) = spawn_on_postgres("api::postgres::register_login_and_refresh_on_postgres").await
    else {
        return;
    };
    app.get("/health").await.expect_status(StatusCode::OK);

    let registered = app.register("Ann@Example.org").await;
    assert_eq!(registered.email, "ann@example.org");
    app.post("/auth/register", &json!({ "email": "ANN@example.org", "password": PASSWORD }))
        .await
        .expect_error(StatusCode::CONFLICT, "email_taken");

    let wrong = app.login("ann@example.org", "wrong password").await;
    let unknown = app.login("nobody@example.org", PASSWORD).await;
    wrong.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(wrong.json, unknown.json);
    let session = app.login_ok("ann@example.org", PASSWORD).await;
    app.assert_token_works(&session.auth_token).await;

    let reply = app.refresh(&session.refresh_token).await;
    let successor = Session::from_reply(reply.expect_status(StatusCode::OK).clone());
    assert_ne!(successor.refresh_token, session.refresh_token);
    app.assert_token_works(&successor.auth_token).await;

    // Reuse of the spent token revokes the device: its successor and access tokens too.
    app.assert_refresh_refused(&session.refresh_token).await;
    app.assert_refresh_refused(&successor.refresh_token).await;
    app.assert_token_refused(&successor.auth_token).await;
    // The registration's session is another device and goes on.
    app.assert_token_works(&registered.auth_token).await;
    app.refresh(&registered.refresh_token).await.expect_status(StatusCode::OK);
    app.assert_refresh_refused("no-such-token").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_tokens_are_spent_once_on_postgres() {
    let Some((_database, app)) = spawn_on_postgres("api::postgres::one_time_tokens_are_spent_once_on_postgres").await
    else {
        return;
    };
    let session = app.register("ann@example.org").await;

    let token = app.email(EmailKind::Confirm, "ann@example.org").await.token;
    let statuses = concurrently(&app, 20, "/auth/confirm", &json!({ "token": token })).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::NO_CONTENT).count();
    let rejected = statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count();
    assert_eq!((ok, rejected), (1, 19), "{statuses:?}");

    let reply = app.post_authed("/api/devices/link", &session.auth_token, None).await;
    let code = str_field(reply.expect_status(StatusCode::CREATED), "code");
    let statuses = concurrently(&app, 20, "/auth/device/link", &json!({ "code": code })).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let rejected = statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count();
    assert_eq!((ok, rejected), (1, 19), "{statuses:?}");
    assert_eq!(app.devices(&session.auth_token).await.len(), 2);
}

/// PostgreSQL stores no NUL character in text. Text carrying one is refused with a reason
/// before it reaches the database, the socket stays up, and sends around it still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_with_a_nul_character_is_refused_on_postgres() {
    let Some((_database, app)) =
        spawn_on_postgres("api::postgres::text_with_a_nul_character_is_refused_on_postgres").await
    else {
        return;
    };
    let (ann_s, bob_s) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let mut ann = Peer::connect(&app, &ann_s).await;
    let refused = ann.refused("system:general", "set_display_name", json!({"display_name": "Ann\u{0}"})).await;
    assert!(refused.contains("NUL"), "{refused}");
    let conversation_id = ann.start_private(&bob_s.user_id, "ann", json!({"k": "v"})).await;
    let topic = format!("conversation:{conversation_id}");
    ann.ok(&topic, "phx_join", json!({})).await;
    let to_both = |text: &str| json!({ "encrypted_messages": { &ann_s.user_id: text, &bob_s.user_id: text } });
    ann.ok(&topic, "send_message", to_both("before")).await;
    let refused = ann.refused(&topic, "send_message", to_both("nul \u{0} inside")).await;
    assert!(refused.contains("NUL"), "{refused}");
    ann.ok(&topic, "send_message", to_both("after")).await;
    let history = app.get_authed(&format!("/api/messages?conversation_id={conversation_id}"), &ann_s.auth_token).await;
    let items = history.expect_status(StatusCode::OK)["items"].as_array().expect("items").clone();
    let texts: Vec<&str> = items.iter().map(|m| m["content"].as_str().expect("content")).collect();
    assert_eq!(texts, ["after", "before"]);
}

/// An event published while a join is reading the conversation reaches the joining socket,
/// after the join's reply. The join is held at its last read (the first page of messages) by a
/// lock on the messages table while the other member renames the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_during_a_join_follows_its_reply_on_postgres() {
    let Some((database, app)) =
        spawn_on_postgres("api::postgres::an_event_published_during_a_join_follows_its_reply_on_postgres").await
    else {
        return;
    };
    let (ann_s, bob_s) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let mut ann = Peer::connect(&app, &ann_s).await;
    let mut bob = Peer::connect(&app, &bob_s).await;
    let started = ann
        .ok(
            "system:general",
            "start_group_conversation",
            json!({"user_ids": [bob.id], "public_key": jwk("ann"), "private_key": {"wrapped": "g"}, "alias": "Team"}),
        )
        .await;
    let topic = format!("conversation:{}", started["conversation"]["id"].as_str().expect("id"));
    ann.ok(&topic, "phx_join", json!({})).await;

    let pool = sqlx::PgPool::connect(&database.url).await.expect("a connection to the test database");
    let mut lock = pool.begin().await.expect("a transaction");
    sqlx::query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.expect("the lock");
    send(&mut bob.socket, json!(["held", "held", topic, "phx_join", {}])).await;
    // Until the join waits for the lock, it is still reading.
    let mut waits = 0;
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_locks WHERE NOT granted")
        .fetch_one(&pool)
        .await
        .expect("pg_locks")
        == 0
    {
        waits += 1;
        assert!(waits < 500, "the join never reached the locked table");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    ann.ok(&topic, "change_alias", json!({"alias": "Team 2"})).await;
    lock.rollback().await.expect("the lock released");

    let reply = reply_to(&mut bob.socket, "held").await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    assert_eq!(bob.expect(&topic, "update_alias").await["alias"], "Team 2");
}
