//! `POST /auth/refresh`: rotation, reuse detection, expiry.

use reqwest::StatusCode;

use crate::harness::{PASSWORD, Session, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_the_refresh_token() {
    let app = spawn_app().await;
    let session = app.register("ann@example.org").await;
    let device = app.current_device(&session.auth_token).await;

    let reply = app.refresh(&session.refresh_token).await;
    let refreshed = Session::from_reply(reply.expect_status(StatusCode::OK).clone());
    assert_eq!(refreshed.user_id, session.user_id);
    assert_eq!(refreshed.body["user"], session.body["user"]);
    assert_ne!(refreshed.refresh_token, session.refresh_token);
    app.assert_token_works(&refreshed.auth_token).await;
    // Same device session, not a new one.
    assert_eq!(app.current_device(&refreshed.auth_token).await, device);
    assert_eq!(app.devices(&refreshed.auth_token).await.len(), 1);

    // And again with the successor.
    let reply = app.refresh(&refreshed.refresh_token).await;
    let third = Session::from_reply(reply.expect_status(StatusCode::OK).clone());
    assert_ne!(third.refresh_token, refreshed.refresh_token);
    assert_ne!(third.refresh_token, session.refresh_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_spent_refresh_token_revokes_the_family() {
    let app = spawn_app().await;
    let victim = app.register("ann@example.org").await;
    let bystander = app.login_ok("ann@example.org", PASSWORD).await;

    let reply = app.refresh(&victim.refresh_token).await;
    let successor = Session::from_reply(reply.expect_status(StatusCode::OK).clone());

    // The old token is presented again: someone holds a copy.
    app.assert_refresh_refused(&victim.refresh_token).await;
    // The successor dies with it, and so does the device's access token.
    app.assert_refresh_refused(&successor.refresh_token).await;
    app.assert_token_refused(&successor.auth_token).await;
    app.assert_token_refused(&victim.auth_token).await;
    // Presenting the spent token yet again stays refused.
    app.assert_refresh_refused(&victim.refresh_token).await;

    // Only that device: the user's other session goes on.
    app.assert_token_works(&bystander.auth_token).await;
    assert_eq!(app.devices(&bystander.auth_token).await.len(), 1);
    app.refresh(&bystander.refresh_token).await.expect_status(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_refresh_tokens_are_401() {
    let app = spawn_app().await;
    let session = app.register("ann@example.org").await;
    app.assert_refresh_refused("no-such-refresh-token").await;
    app.assert_refresh_refused("").await;
    // An access token is not a refresh token.
    app.assert_refresh_refused(&session.auth_token).await;
    // A missing token field is a 422, not a 401.
    app.post("/auth/refresh", &serde_json::json!({})).await.expect_invalid("token");
    // None of that hurt the real session.
    app.refresh(&session.refresh_token).await.expect_status(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_refresh_token_is_401() {
    let app = spawn_app_with(|s| s.auth.refresh_token_ttl_secs = 0).await;
    let session = app.register("ann@example.org").await;
    app.assert_token_works(&session.auth_token).await;
    app.assert_refresh_refused(&session.refresh_token).await;
}
