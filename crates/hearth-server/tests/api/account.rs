//! `DELETE /api/account` and `GET /api/me`.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{PASSWORD, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_account_needs_the_password() {
    let app = spawn_app().await;
    let session = app.register("ann@example.org").await;
    let other_device = app.login_ok("ann@example.org", PASSWORD).await;
    let bystander = app.register("bo@example.org").await;

    let wrong = app.delete_authed("/api/account", &session.auth_token, Some(&json!({ "password": "not it" }))).await;
    wrong.expect_invalid("password");
    let missing = app.delete_authed("/api/account", &session.auth_token, Some(&json!({}))).await;
    missing.expect_invalid("password");
    app.assert_token_works(&session.auth_token).await;

    let reply = app.delete_authed("/api/account", &session.auth_token, Some(&json!({ "password": PASSWORD }))).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(reply.text.is_empty());

    app.login("ann@example.org", PASSWORD).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    for s in [&session, &other_device] {
        app.assert_token_refused(&s.auth_token).await;
        app.assert_refresh_refused(&s.refresh_token).await;
    }
    // Others are untouched and no longer list the user.
    app.assert_token_works(&bystander.auth_token).await;
    let users = app.get_authed("/api/users", &bystander.auth_token).await;
    let users = users.expect_status(StatusCode::OK)["items"].as_array().expect("items").clone();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["email"], "bo@example.org");

    // The address is free again.
    let again = app.register("ann@example.org").await;
    assert_ne!(again.user_id, session.user_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_returns_the_user_with_their_profile() {
    let app = spawn_app().await;
    let session = app.register("ann@example.org").await;
    let me = app.me(&session.auth_token).await;
    assert_eq!(me.expect_status(StatusCode::OK), &session.body["user"]);
}
