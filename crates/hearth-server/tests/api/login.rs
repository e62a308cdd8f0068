//! `POST /auth/login`, how request bodies are rejected, and the attempt limits.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::json;

use crate::harness::{PASSWORD, Reply, TestApp, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_returns_the_session_reply_for_a_new_device() {
    let app = spawn_app().await;
    let registered = app.register("ann@example.org").await;
    let session = app.login_ok("ANN@example.org", PASSWORD).await;
    assert_eq!(session.user_id, registered.user_id);
    assert_eq!(session.body["user"], registered.body["user"]);
    assert_eq!(session.body["conversations"], json!([]));
    assert_eq!(session.body["users"], json!([]));
    assert_ne!(session.refresh_token, registered.refresh_token);
    app.assert_token_works(&session.auth_token).await;
    assert_eq!(app.devices(&session.auth_token).await.len(), 2, "login starts a second device session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let app = spawn_app().await;
    app.register("bo@example.org").await;
    let wrong_password = app.login("bo@example.org", "not the password").await;
    let unknown_email = app.login("nobody@example.org", PASSWORD).await;
    wrong_password.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    unknown_email.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(wrong_password.json, unknown_email.json);
    assert_eq!(wrong_password.text, unknown_email.text);
}

async fn post_raw(app: &TestApp, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> Reply {
    let mut request = app.client.post(app.url("/auth/login")).body(body);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    app.send(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let bodies = [
        "{not json",
        "",
        "{\"email\": \"a@example.org\", \"password\": \"xxxxxxxxxx\"} trailing",
        "[1,",
        // Truncated after a value of the wrong type: malformed all the same.
        "{\"email\": 12345,",
        "{\"email\": \"a@example.org\", \"password\": ",
    ];
    for body in bodies {
        let reply = post_raw(&app, Some("application/json"), body).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "malformed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_field_is_422_naming_it() {
    let app = spawn_app().await;
    let reply = app.post("/auth/login", &json!({ "email": "ann@example.org" })).await;
    assert_eq!(reply.expect_invalid("password"), ["is required"]);
    let reply = app.post("/auth/login", &json!({ "password": PASSWORD })).await;
    assert_eq!(reply.expect_invalid("email"), ["is required"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_typed_field_is_422_without_echoing_the_value() {
    let app = spawn_app().await;
    let reply = app.post("/auth/login", &json!({ "email": "ann@example.org", "password": 8_675_309_123_u64 })).await;
    reply.expect_invalid("password");
    assert!(!reply.text.contains("8675309123"), "the value is echoed: {}", reply.text);

    let reply = app.post("/auth/login", &json!({ "email": -42_424_242, "password": PASSWORD })).await;
    reply.expect_invalid("email");
    assert!(!reply.text.contains("42424242"), "the value is echoed: {}", reply.text);

    let reply = app
        .post("/auth/login", &json!({ "email": "ann@example.org", "password": PASSWORD, "device_name": 31337 }))
        .await;
    reply.expect_invalid("device_name");
    assert!(!reply.text.contains("31337"), "the value is echoed: {}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_content_type_is_400() {
    let app = spawn_app().await;
    app.register("ann@example.org").await;
    let body = json!({ "email": "ann@example.org", "password": PASSWORD }).to_string();
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let reply = post_raw(&app, content_type, body.clone()).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "malformed");
    }
    // With a charset parameter it is still JSON.
    let reply = post_raw(&app, Some("application/json; charset=utf-8"), body).await;
    reply.expect_status(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_413_json() {
    let app = spawn_app().await;
    let padding = "x".repeat(1024 * 1024);
    let body = json!({ "email": "ann@example.org", "password": padding }).to_string();
    assert!(body.len() > 1024 * 1024);
    let reply = post_raw(&app, Some("application/json"), body).await;
    reply.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

/// Asserts a 429 with `Retry-After` and a matching `retryAfter`.
fn assert_rate_limited(reply: &Reply) {
    reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let header: u64 = reply
        .headers
        .get(RETRY_AFTER)
        .expect("a Retry-After header")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=60).contains(&header), "Retry-After: {header}");
    assert_eq!(reply.json["retryAfter"].as_u64(), Some(header), "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_limited_per_account() {
    let app = spawn_app_with(|s| s.auth.attempts_per_account_per_minute = 3).await;
    app.register("ann@example.org").await;
    app.register("bo@example.org").await;
    for _ in 0..3 {
        app.login("ann@example.org", "wrong password").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // The limit holds even for the right password, and for the address in another case.
    assert_rate_limited(&app.login("ann@example.org", PASSWORD).await);
    assert_rate_limited(&app.login("Ann@Example.org", PASSWORD).await);
    // Another account from the same address is not affected.
    app.login_ok("bo@example.org", PASSWORD).await;
    // Unknown accounts are limited the same way (the limiter does not reveal existence).
    for _ in 0..3 {
        app.login("ghost@example.org", PASSWORD).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert_rate_limited(&app.login("ghost@example.org", PASSWORD).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_limited_per_address() {
    let app = spawn_app_with(|s| s.auth.attempts_per_address_per_minute = 3).await;
    for n in 0..3 {
        let reply = app.login(&format!("user{n}@example.org"), PASSWORD).await;
        reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert_rate_limited(&app.login("user3@example.org", PASSWORD).await);
    // X-Forwarded-For from an untrusted peer is not believed, so it does not reset the limit.
    let reply = app
        .send(
            app.client
                .post(app.url("/auth/login"))
                .header("x-forwarded-for", "203.0.113.7")
                .json(&json!({ "email": "user4@example.org", "password": PASSWORD })),
        )
        .await;
    assert_rate_limited(&reply);
}
