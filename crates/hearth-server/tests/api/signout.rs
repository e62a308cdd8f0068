//! `POST /api/signout_all`.

use reqwest::StatusCode;

use crate::harness::{PASSWORD, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signout_all_revokes_every_session() {
    let app = spawn_app().await;
    let sessions = [
        app.register("ann@example.org").await,
        app.login_ok("ann@example.org", PASSWORD).await,
        app.login_ok("ann@example.org", PASSWORD).await,
    ];
    // A refreshed session, whose refresh token is the rotated successor.
    let refreshed = app.refresh(&sessions[2].refresh_token).await;
    let refreshed = crate::harness::Session::from_reply(refreshed.expect_status(StatusCode::OK).clone());
    let other_user = app.register("bo@example.org").await;

    let reply = app.post_authed("/api/signout_all", &sessions[1].auth_token, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(reply.text.is_empty());

    for session in sessions.iter().chain([&refreshed]) {
        app.assert_token_refused(&session.auth_token).await;
    }
    for session in sessions.iter().chain([&refreshed]) {
        app.assert_refresh_refused(&session.refresh_token).await;
    }

    // Other users are unaffected, and signing in again works.
    app.assert_token_works(&other_user.auth_token).await;
    let again = app.login_ok("ann@example.org", PASSWORD).await;
    assert_eq!(app.devices(&again.auth_token).await.len(), 1);

    // Signing out needs a session.
    let reply = app.send(app.request(reqwest::Method::POST, "/api/signout_all", None)).await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signout_all_voids_device_link_codes() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let link = app.post_authed("/api/devices/link", &ann.auth_token, None).await;
    let code = link.expect_status(StatusCode::CREATED)["code"].as_str().expect("code").to_owned();
    let bo = app.register("bo@example.org").await;
    let link = app.post_authed("/api/devices/link", &bo.auth_token, None).await;
    let bos_code = link.expect_status(StatusCode::CREATED)["code"].as_str().expect("code").to_owned();

    let reply = app.post_authed("/api/signout_all", &ann.auth_token, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);

    // Whoever holds the code gets no session of the account that signed out everywhere.
    let redeemed = app.post("/auth/device/link", &serde_json::json!({ "code": code })).await;
    redeemed.expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    let again = app.login_ok("ann@example.org", PASSWORD).await;
    assert_eq!(app.devices(&again.auth_token).await.len(), 1);
    // Another user's code still works.
    app.post("/auth/device/link", &serde_json::json!({ "code": bos_code })).await.expect_status(StatusCode::OK);
}
