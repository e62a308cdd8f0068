//! One-time tokens are spent exactly once, even when many requests race for them.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{EmailKind, concurrently, spawn_app, str_field};

const RACERS: usize = 20;

/// Asserts exactly one success (`ok`) and `RACERS - 1` times 400.
fn assert_exactly_one_winner(statuses: &[StatusCode], ok: StatusCode) {
    let winners = statuses.iter().filter(|s| **s == ok).count();
    let losers = statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count();
    assert_eq!((winners, losers), (1, RACERS - 1), "statuses: {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_confirmations_succeed_once() {
    let app = spawn_app().await;
    app.register("ann@example.org").await;
    let email = app.email(EmailKind::Confirm, "ann@example.org").await;

    let statuses = concurrently(&app, RACERS, "/auth/confirm", &json!({ "token": email.token })).await;
    assert_exactly_one_winner(&statuses, StatusCode::NO_CONTENT);
    app.post("/auth/confirm", &json!({ "token": email.token }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_device_links_make_one_device() {
    let app = spawn_app().await;
    let session = app.register("ann@example.org").await;
    let reply = app.post_authed("/api/devices/link", &session.auth_token, None).await;
    let code = str_field(reply.expect_status(StatusCode::CREATED), "code");

    let statuses = concurrently(&app, RACERS, "/auth/device/link", &json!({ "code": code })).await;
    assert_exactly_one_winner(&statuses, StatusCode::OK);
    assert_eq!(app.devices(&session.auth_token).await.len(), 2, "exactly one new device");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_password_resets_succeed_once() {
    let app = spawn_app().await;
    app.register("ann@example.org").await;
    app.post("/auth/password/request", &json!({ "email": "ann@example.org" })).await;
    let email = app.email(EmailKind::PasswordReset, "ann@example.org").await;

    let body = json!({
        "token": email.token,
        "new_password": "a brand new password",
        "new_password_confirmation": "a brand new password",
    });
    let statuses = concurrently(&app, RACERS, "/auth/password/reset", &body).await;
    assert_exactly_one_winner(&statuses, StatusCode::NO_CONTENT);
    app.login_ok("ann@example.org", "a brand new password").await;
}
