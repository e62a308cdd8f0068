//! What administrators do to accounts (issue 25): the accounts list, disabling (sessions
//! revoked, sockets closed, sign-in and refresh refused), enabling, deleting, roles; each
//! action audited with the administrator's fingerprint, the account and the reason.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::admin::{Keys, SqliteOnly, audit, fingerprint, list_admins, public_line, sign_in};
use crate::channels::{Peer, jwk};
use crate::harness::{PASSWORD, TestApp, assert_keys, spawn_app, str_field};
use crate::socket_client::{self, Client};

/// A server with one administrator signed in: the app, the admin token, the key's fingerprint.
async fn app_with_admin() -> (TestApp, String, String, Keys) {
    let app = spawn_app().await;
    let keys = Keys::new();
    let key: PathBuf = keys.make("admin", "ed25519");
    list_admins(&app, &[public_line(&key)]);
    let token = sign_in(&app, &key).await;
    (app, token, fingerprint(&key), keys)
}

/// Waits (generously) for the server to close the socket.
async fn closes(client: &mut Client) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next()).await.expect("the socket closes") {
            Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return,
            Some(Ok(_)) => {}
        }
    }
}

/// The newest audit entry, checked to record `action` by `fingerprint` on the account `user_id`.
async fn last_action(app: &TestApp, token: &str, action: &str, fingerprint: &str, user_id: &str) -> Value {
    let newest = audit(app, token).await.first().cloned().expect("an entry");
    assert_eq!(
        (&newest["action"], &newest["fingerprint"], &newest["outcome"]),
        (&json!(action), &json!(fingerprint), &json!("ok"))
    );
    assert!(str_field(&newest, "target").contains(user_id), "{newest}");
    newest
}

async fn users(app: &TestApp, token: &str, query: &str) -> Value {
    app.get_authed(&format!("/admin/users{query}"), token).await.expect_status(StatusCode::OK).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accounts_list_shows_each_account_and_finds_and_pages() {
    let (app, token, _, _keys) = app_with_admin().await;
    let ann = app.register("ann@example.org").await;
    app.login_ok("ann@example.org", PASSWORD).await;
    app.register("bob@example.org").await;

    let all = users(&app, &token, "").await;
    let items = all["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_keys(
        &items[0],
        &[
            "created_at",
            "devices",
            "disabled",
            "disabled_reason",
            "display_name",
            "email",
            "id",
            "last_seen_at",
            "roles",
        ],
    );
    assert_eq!(items[0]["id"], json!(ann.user_id));
    assert_eq!(
        (&items[0]["email"], &items[0]["devices"], &items[0]["disabled"]),
        (&json!("ann@example.org"), &json!(2), &json!(false))
    );
    assert!(items[0]["last_seen_at"].is_string());
    assert_eq!(all["page_token"], Value::Null);

    let found = users(&app, &token, "?query=BOB").await;
    assert_eq!(found["items"].as_array().expect("items").len(), 1);
    assert_eq!(found["items"][0]["email"], "bob@example.org");
    // LIKE's wildcards are taken literally.
    assert_eq!(users(&app, &token, "?query=%25").await["items"], json!([]));

    let first = users(&app, &token, "?page_size=1").await;
    assert_eq!(first["items"][0]["email"], "ann@example.org");
    let next = str_field(&first, "page_token");
    let second = users(&app, &token, &format!("?page_size=1&page_token={next}")).await;
    assert_eq!(second["items"][0]["email"], "bob@example.org");
    assert_eq!(second["page_token"], Value::Null);
    app.get_authed("/admin/users?page_token=nonsense", &token)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_page_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_closes_sockets_and_refuses_sign_in_and_refresh_until_enabled() {
    let (app, token, key, _keys) = app_with_admin().await;
    let ann = app.register("ann@example.org").await;
    let path = format!("/admin/users/{}/disable", ann.user_id);

    // A reason is needed; without one nothing changes.
    for body in [json!({}), json!({ "reason": "  " })] {
        app.post_authed(&path, &token, Some(&body)).await.expect_invalid("reason");
    }
    app.assert_token_works(&ann.auth_token).await;
    let unknown = format!("/admin/users/{}/disable", uuid::Uuid::now_v7());
    app.post_authed(&unknown, &token, Some(&json!({ "reason": "spam" })))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    let mut socket = socket_client::connect(&app, &ann.auth_token).await.expect("a socket");
    let reply = app.post_authed(&path, &token, Some(&json!({ "reason": "spam" }))).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    closes(&mut socket).await;
    let entry = last_action(&app, &token, "user.disable", &key, &ann.user_id).await;
    assert_eq!(entry["reason"], "spam");

    app.assert_token_refused(&ann.auth_token).await;
    app.assert_refresh_refused(&ann.refresh_token).await;
    let refused = app.login("ann@example.org", PASSWORD).await;
    let body = refused.expect_error(StatusCode::FORBIDDEN, "account_disabled");
    assert!(str_field(body, "message").contains("disabled"), "{body}");
    assert!(socket_client::connect(&app, &ann.auth_token).await.is_err());
    let listed = users(&app, &token, "?query=ann").await;
    assert_eq!(
        (&listed["items"][0]["disabled"], &listed["items"][0]["disabled_reason"], &listed["items"][0]["devices"]),
        (&json!(true), &json!("spam"), &json!(0))
    );

    let reply = app.post_authed(&format!("/admin/users/{}/enable", ann.user_id), &token, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    last_action(&app, &token, "user.enable", &key, &ann.user_id).await;
    app.login_ok("ann@example.org", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_removes_the_account_and_everything_of_it() {
    let (app, token, key, _keys) = app_with_admin().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let roles = format!("/admin/users/{}/roles", ann.user_id);
    app.post_authed(&roles, &token, Some(&json!({ "role": "operator", "granted": true }))).await;
    let path = format!("/admin/users/{}", ann.user_id);
    app.delete_authed(&path, &token, Some(&json!({}))).await.expect_invalid("reason");
    app.assert_token_works(&ann.auth_token).await;

    // A conversation with Bob: memberships, sealed private keys, a message each way.
    let (mut ann_peer, mut bob_peer) = (Peer::connect(&app, &ann).await, Peer::connect(&app, &bob).await);
    let conversation = ann_peer.start_private(&bob.user_id, "ann", json!({ "wrapped": "ann" })).await;
    let topic = format!("conversation:{conversation}");
    bob_peer.ok(&topic, "phx_join", json!({})).await;
    let bobs_keys = json!({ "public_key": jwk("bob"), "private_key": { "wrapped": "bob" } });
    bob_peer.ok(&topic, "set_encryption_keys", bobs_keys).await;
    ann_peer.ok(&topic, "phx_join", json!({})).await;
    for (sender, who) in [(&mut ann_peer, "ann"), (&mut bob_peer, "bob")] {
        let copies =
            json!({ ann.user_id.clone(): format!("{who} to ann"), bob.user_id.clone(): format!("{who} to bob") });
        sender.ok(&topic, "send_message", json!({ "encrypted_messages": copies })).await;
    }
    let messages = format!("/api/messages?conversation_id={conversation}");
    let before = app.get_authed(&messages, &bob.auth_token).await;
    assert_eq!(before.expect_status(StatusCode::OK)["items"].as_array().expect("items").len(), 2);

    let reply = app.delete_authed(&path, &token, Some(&json!({ "reason": "asked by mail" }))).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    closes(&mut ann_peer.socket).await;
    // What Ann sent is gone from Bob's side too; what Bob sent stays his.
    let after = app.get_authed(&messages, &bob.auth_token).await;
    let after = after.expect_status(StatusCode::OK)["items"].clone();
    assert!(!after.to_string().contains("ann to bob"), "{after}");
    let entry = last_action(&app, &token, "user.delete", &key, &ann.user_id).await;
    assert_eq!(entry["reason"], "asked by mail");
    assert!(str_field(&entry, "target").contains("ann@example.org"), "the address is kept in the log");

    app.assert_token_refused(&ann.auth_token).await;
    app.login("ann@example.org", PASSWORD).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.assert_token_works(&bob.auth_token).await;
    let listed = users(&app, &token, "").await;
    assert_eq!(listed["items"].as_array().expect("items").len(), 1);
    // No row anywhere names the account (devices, profile, roles, memberships, messages, keys).
    let SqliteOnly(pool) = SqliteOnly::open(&app).await;
    let id = uuid::Uuid::parse_str(&ann.user_id).expect("an id");
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'").fetch_all(&pool).await.expect("tables");
    for (table,) in tables {
        let columns: Vec<(String,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT name FROM pragma_table_info('{table}')")))
                .fetch_all(&pool)
                .await
                .expect("columns");
        for (column,) in columns
            .iter()
            .filter(|(c,)| ["id", "user_id", "sender_id", "recipient_id", "owner_id"].contains(&c.as_str()))
        {
            let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM \"{table}\" WHERE \"{column}\" = $1"
            )))
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("count");
            assert_eq!(count, 0, "{table}.{column} still names the deleted account");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_granted_and_taken_back_and_audited() {
    let (app, token, key, _keys) = app_with_admin().await;
    let ann = app.register("ann@example.org").await;
    let path = format!("/admin/users/{}/roles", ann.user_id);
    for body in [json!({ "role": "root", "granted": true }), json!({ "role": "operator" })] {
        let reply = app.post_authed(&path, &token, Some(&body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
    }
    for (role, granted, expected) in [
        ("operator", true, json!(["operator"])),
        ("analyst", true, json!(["analyst", "operator"])),
        ("operator", false, json!(["analyst"])),
    ] {
        let reply = app.post_authed(&path, &token, Some(&json!({ "role": role, "granted": granted }))).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
        let action = if granted { "user.role.grant" } else { "user.role.revoke" };
        let entry = last_action(&app, &token, action, &key, &ann.user_id).await;
        assert!(str_field(&entry, "target").ends_with(&format!("role:{role}")), "{entry}");
        assert_eq!(users(&app, &token, "").await["items"][0]["roles"], expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_token_is_refused_on_every_account_action() {
    let (app, _token, _, _keys) = app_with_admin().await;
    let ann = app.register("ann@example.org").await;
    let id = &ann.user_id;
    let reason = json!({ "reason": "x" });
    let replies = [
        app.get_authed("/admin/users", &ann.auth_token).await,
        app.post_authed(&format!("/admin/users/{id}/disable"), &ann.auth_token, Some(&reason)).await,
        app.post_authed(&format!("/admin/users/{id}/enable"), &ann.auth_token, None).await,
        app.delete_authed(&format!("/admin/users/{id}"), &ann.auth_token, Some(&reason)).await,
        app.post_authed(
            &format!("/admin/users/{id}/roles"),
            &ann.auth_token,
            Some(&json!({ "role": "operator", "granted": true })),
        )
        .await,
    ];
    for reply in replies {
        reply.expect_error(StatusCode::FORBIDDEN, "admin_token_required");
    }
    app.assert_token_works(&ann.auth_token).await;
    app.login_ok("ann@example.org", PASSWORD).await;
}

/// Grants (or takes back) `role` to the account `user_id` through the admin API, signed in
/// with a key made for it (the server's only administrator).
pub(crate) async fn set_role(app: &TestApp, user_id: &str, role: &str, granted: bool) {
    let keys = Keys::new();
    let key = keys.make("admin", "ed25519");
    list_admins(app, &[public_line(&key)]);
    let token = sign_in(app, &key).await;
    let body = json!({ "role": role, "granted": granted });
    let reply = app.post_authed(&format!("/admin/users/{user_id}/roles"), &token, Some(&body)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_report_counts_keys_and_never_shows_one() {
    use hearth_ai::{ApiKey, ProviderName};
    let key = crate::assistant::fake_key(ProviderName::Groq, "ok");
    let app = crate::harness::spawn_app_with(|settings| {
        settings.keyguard.free_tier.keys.insert(ProviderName::Groq, vec![ApiKey::new(key.clone())]);
    })
    .await;
    let keys = Keys::new();
    let admin_key = keys.make("admin", "ed25519");
    list_admins(&app, &[public_line(&admin_key)]);
    let token = sign_in(&app, &admin_key).await;
    let reply = app.get_authed("/admin/providers", &token).await;
    let report = reply.expect_status(StatusCode::OK).clone();
    assert!(!reply.text.contains(&key), "a key reached the report");
    let items = report["items"].as_array().expect("items");
    let groq = items.iter().find(|item| item["provider"] == "groq").expect("groq is listed");
    assert_keys(
        groq,
        &["healthy", "images", "pool_keys", "provider", "refused", "resting", "settings_keys", "summary"],
    );
    assert_eq!((&groq["settings_keys"], &groq["pool_keys"], &groq["healthy"]), (&json!(1), &json!(0), &json!(1)));
    assert_eq!(groq["summary"], "1 free-tier key, healthy");
    let others = items.iter().filter(|item| item["provider"] != "groq");
    assert!(others.into_iter().all(|item| item["settings_keys"] == 0 && item["summary"] == "no free-tier key"));
    let person = app.register("ann@example.org").await;
    app.get_authed("/admin/providers", &person.auth_token)
        .await
        .expect_error(StatusCode::FORBIDDEN, "admin_token_required");
}
