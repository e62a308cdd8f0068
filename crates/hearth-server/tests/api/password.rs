//! `PATCH /api/password` and the reset flow: `/auth/password/request`, `/confirm`, `/reset`.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{EmailKind, PASSWORD, assert_keys, spawn_app};

const NEW_PASSWORD: &str = "an entirely new passphrase";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_password_checks_the_current_one_and_the_confirmation() {
    let app = spawn_app().await;
    let session = app.register("ann@example.org").await;

    let wrong = app
        .patch_authed(
            "/api/password",
            &session.auth_token,
            &json!({ "password": "not my password", "new_password": NEW_PASSWORD, "new_password_confirmation": NEW_PASSWORD }),
        )
        .await;
    wrong.expect_invalid("password");

    let mismatch = app
        .patch_authed(
            "/api/password",
            &session.auth_token,
            &json!({ "password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_confirmation": "something else" }),
        )
        .await;
    mismatch.expect_invalid("new_password_confirmation");

    let short = app
        .patch_authed(
            "/api/password",
            &session.auth_token,
            &json!({ "password": PASSWORD, "new_password": "short", "new_password_confirmation": "short" }),
        )
        .await;
    short.expect_invalid("new_password");

    let missing = app.patch_authed("/api/password", &session.auth_token, &json!({ "password": PASSWORD })).await;
    missing.expect_invalid("new_password");

    // Nothing changed.
    app.assert_token_works(&session.auth_token).await;
    app.login_ok("ann@example.org", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_password_signs_out_everywhere() {
    let app = spawn_app().await;
    let first = app.register("ann@example.org").await;
    let second = app.login_ok("ann@example.org", PASSWORD).await;
    // Outstanding one-time tokens die with the old password too.
    let link = app.post_authed("/api/devices/link", &second.auth_token, None).await;
    let code = link.expect_status(StatusCode::CREATED)["code"].as_str().expect("code").to_owned();
    let confirm = app.email(EmailKind::Confirm, "ann@example.org").await.token;

    let reply = app
        .patch_authed(
            "/api/password",
            &first.auth_token,
            &json!({ "password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_confirmation": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(reply.text.is_empty());

    for session in [&first, &second] {
        app.assert_token_refused(&session.auth_token).await;
        app.assert_refresh_refused(&session.refresh_token).await;
    }
    app.login("ann@example.org", PASSWORD).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let again = app.login_ok("ann@example.org", NEW_PASSWORD).await;
    assert_eq!(app.devices(&again.auth_token).await.len(), 1);
    app.post("/auth/device/link", &json!({ "code": code }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    app.post("/auth/confirm", &json!({ "token": confirm }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_request_is_always_204_with_the_same_body() {
    let app = spawn_app().await;
    app.register("ann@example.org").await;

    let unknown = app.post("/auth/password/request", &json!({ "email": "nobody@example.org" })).await;
    let known = app.post("/auth/password/request", &json!({ "email": "ANN@example.org" })).await;
    assert_eq!(unknown.status, StatusCode::NO_CONTENT, "{}", unknown.text);
    assert_eq!(known.status, StatusCode::NO_CONTENT, "{}", known.text);
    assert_eq!(unknown.text, known.text);
    assert!(known.text.is_empty());
    assert_eq!(unknown.headers.get("content-type"), known.headers.get("content-type"));

    // The known address gets a link; the unknown one gets nothing.
    let email = app.email(EmailKind::PasswordReset, "ann@example.org").await;
    assert!(email.body.contains(&format!("/#/reset-password/{}", email.token)), "{}", email.body);
    assert!(app.emails_to("nobody@example.org").is_empty());

    // A malformed address is still a 422.
    app.post("/auth/password/request", &json!({ "email": "not an email" })).await.expect_invalid("email");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_by_email_sets_the_password_and_signs_out_everywhere() {
    let app = spawn_app().await;
    let first = app.register("ann@example.org").await;
    let second = app.login_ok("ann@example.org", PASSWORD).await;
    let link = app.post_authed("/api/devices/link", &second.auth_token, None).await;
    let code = link.expect_status(StatusCode::CREATED)["code"].as_str().expect("code").to_owned();
    app.post("/auth/password/request", &json!({ "email": "ann@example.org" })).await;
    let token = app.email(EmailKind::PasswordReset, "ann@example.org").await.token;

    // Whose token is it? (Does not spend it.)
    for _ in 0..2 {
        let reply = app.post("/auth/password/confirm", &json!({ "token": token })).await;
        let body = reply.expect_status(StatusCode::OK);
        assert_keys(body, &["success", "user"]);
        assert_eq!(body["success"], true);
        assert_keys(&body["user"], &["id", "email", "display_name", "identity_key"]);
        assert_eq!(body["user"]["id"], first.user_id.as_str());
        assert_eq!(body["user"]["email"], "ann@example.org");
        assert_eq!(body["user"]["display_name"], "ann");
    }

    let mismatch = app
        .post(
            "/auth/password/reset",
            &json!({ "token": token, "new_password": NEW_PASSWORD, "new_password_confirmation": "something else" }),
        )
        .await;
    mismatch.expect_invalid("new_password_confirmation");
    let short = app
        .post(
            "/auth/password/reset",
            &json!({ "token": token, "new_password": "short", "new_password_confirmation": "short" }),
        )
        .await;
    short.expect_invalid("new_password");

    // Seed 002's payload carries a `password` field too; it is accepted.
    let reply = app
        .post(
            "/auth/password/reset",
            &json!({
                "token": token,
                "password": "whatever I remember",
                "new_password": NEW_PASSWORD,
                "new_password_confirmation": NEW_PASSWORD,
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);

    for session in [&first, &second] {
        app.assert_token_refused(&session.auth_token).await;
        app.assert_refresh_refused(&session.refresh_token).await;
    }
    app.login("ann@example.org", PASSWORD).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.login_ok("ann@example.org", NEW_PASSWORD).await;
    // Other outstanding one-time tokens are revoked too.
    app.post("/auth/device/link", &json!({ "code": code }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_token");

    // The token is spent.
    let again = app
        .post(
            "/auth/password/reset",
            &json!({ "token": token, "new_password": "yet another password", "new_password_confirmation": "yet another password" }),
        )
        .await;
    again.expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    app.post("/auth/password/confirm", &json!({ "token": token }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    app.login_ok("ann@example.org", NEW_PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_foreign_reset_tokens_are_400() {
    let app = spawn_app().await;
    app.register("ann@example.org").await;
    let confirm = app.email(EmailKind::Confirm, "ann@example.org").await;
    for token in ["no-such-token", confirm.token.as_str()] {
        app.post("/auth/password/confirm", &json!({ "token": token }))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_token");
        app.post(
            "/auth/password/reset",
            &json!({ "token": token, "new_password": NEW_PASSWORD, "new_password_confirmation": NEW_PASSWORD }),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    }
    app.login_ok("ann@example.org", PASSWORD).await;
}
