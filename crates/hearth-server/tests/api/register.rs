//! `POST /auth/register`, `POST /auth/confirm` and `POST /api/token/email_confirm`.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{EmailKind, PASSWORD, assert_keys, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_returns_201_with_the_session_reply() {
    let app = spawn_app().await;
    let reply = app.post("/auth/register", &json!({ "email": "  Ann@Example.ORG ", "password": PASSWORD })).await;
    let body = reply.expect_status(StatusCode::CREATED);

    assert_keys(body, &["user", "conversations", "users", "auth_token", "refresh_token"]);
    let user = &body["user"];
    let own = [
        "id",
        "email",
        "display_name",
        "hidden",
        "theme",
        "magnification",
        "recents",
        "identity_key",
        "identity_private_key",
    ];
    assert_keys(user, &own);
    let id = user["id"].as_str().expect("id is a string");
    assert_eq!(uuid::Uuid::parse_str(id).expect("id is a UUID").get_version_num(), 7);
    assert_eq!(user["email"], "ann@example.org", "email is trimmed and lowercased");
    assert_eq!(user["display_name"], "ann", "display name defaults to the address's local part");
    assert_eq!(user["hidden"], false);
    assert_eq!(user["theme"], "day");
    assert_eq!(user["magnification"].as_f64(), Some(1.0));
    assert_eq!(user["recents"], json!([]));
    // No identity until the client publishes one (`PUT /api/identity_key`).
    assert_eq!((&user["identity_key"], &user["identity_private_key"]), (&json!(null), &json!(null)));
    assert_eq!(body["conversations"], json!([]));
    assert_eq!(body["users"], json!([]));
    let auth_token = body["auth_token"].as_str().expect("auth_token");
    let refresh_token = body["refresh_token"].as_str().expect("refresh_token");
    assert_eq!(auth_token.split('.').count(), 3, "the access token is a JWT");
    assert!(refresh_token.len() >= 43, "32 random bytes, encoded: {refresh_token}");

    // The token works and names this user.
    let me = app.me(auth_token).await;
    assert_eq!(me.expect_status(StatusCode::OK), user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_keeps_a_given_display_name() {
    let app = spawn_app().await;
    let session =
        app.register_with(&json!({ "email": "bo@example.org", "password": PASSWORD, "display_name": "  Bo  " })).await;
    assert_eq!(session.body["user"]["display_name"], "Bo");
    assert_eq!(session.email, "bo@example.org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_email_in_any_case_is_409_email_taken() {
    let app = spawn_app().await;
    app.register("cy@example.org").await;
    for email in ["cy@example.org", "CY@Example.Org", " cY@EXAMPLE.ORG"] {
        let reply = app.post("/auth/register", &json!({ "email": email, "password": PASSWORD })).await;
        reply.expect_error(StatusCode::CONFLICT, "email_taken");
    }
    // The original account is untouched.
    app.login_ok("cy@example.org", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_fields_are_422_naming_the_field() {
    let app = spawn_app().await;
    for email in ["not-an-email", "", "a b@example.org", "@example.org"] {
        let reply = app.post("/auth/register", &json!({ "email": email, "password": PASSWORD })).await;
        reply.expect_invalid("email");
    }
    let reply = app.post("/auth/register", &json!({ "email": "dee@example.org", "password": "short" })).await;
    reply.expect_invalid("password");
    let reply = app
        .post(
            "/auth/register",
            &json!({ "email": "dee@example.org", "password": PASSWORD, "display_name": "x".repeat(101) }),
        )
        .await;
    reply.expect_invalid("display_name");
    let reply = app
        .post("/auth/register", &json!({ "email": "dee@example.org", "password": PASSWORD, "display_name": "   " }))
        .await;
    reply.expect_invalid("display_name");
    // None of them created the account.
    app.login("dee@example.org", PASSWORD).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // A 100-character name is fine.
    app.register_with(&json!({ "email": "dee@example.org", "password": PASSWORD, "display_name": "x".repeat(100) }))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_email_confirms_once() {
    let app = spawn_app().await;
    app.register("eve@example.org").await;
    let email = app.email(EmailKind::Confirm, "eve@example.org").await;
    assert!(email.body.contains(&format!("/#/confirm-email/{}", email.token)), "{}", email.body);

    let reply = app.post("/auth/confirm", &json!({ "token": email.token })).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(reply.text.is_empty());

    let again = app.post("/auth/confirm", &json!({ "token": email.token })).await;
    again.expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    let unknown = app.post("/auth/confirm", &json!({ "token": "no-such-token" })).await;
    unknown.expect_error(StatusCode::BAD_REQUEST, "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_confirmation_link_replaces_the_old_one() {
    let app = spawn_app().await;
    let session = app.register("fay@example.org").await;
    let first = app.email(EmailKind::Confirm, "fay@example.org").await;

    let reply = app.post_authed("/api/token/email_confirm", &session.auth_token, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let second = app.email(EmailKind::Confirm, "fay@example.org").await;
    assert_ne!(first.token, second.token);

    app.post("/auth/confirm", &json!({ "token": first.token }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    let reply = app.post("/auth/confirm", &json!({ "token": second.token })).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);

    // Requesting a link needs a session.
    let reply = app.send(app.request(reqwest::Method::POST, "/api/token/email_confirm", None)).await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}
