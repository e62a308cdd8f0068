//! Access tokens on `/api/*`: missing, garbage, tampered, expired and forged ones are 401.

use hearth_store::Timestamp;
use hearth_vault::ServerSecret;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde_json::json;

use crate::harness::{SECRET_KEY_BASE, TestApp, spawn_app, spawn_app_with};

fn craft_token(secret: &str, user_id: &str, device_id: &str, iat: i64, exp: i64) -> String {
    let key = ServerSecret::from_text(secret).expect("a valid secret").derive("access-token");
    let claims = json!({ "sub": user_id, "device": device_id, "iat": iat, "exp": exp });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key.as_ref()))
        .expect("sign the claims")
}

async fn assert_header_refused(app: &TestApp, authorization: &str) {
    let reply = app.send(app.client.get(app.url("/api/me")).header(AUTHORIZATION, authorization)).await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_garbage_and_tampered_tokens_are_401() {
    let app = spawn_app().await;
    let session = app.register("ann@example.org").await;
    app.assert_token_works(&session.auth_token).await;

    app.get("/api/me").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get("/api/devices").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.assert_token_refused("garbage").await;
    app.assert_token_refused("a.b.c").await;
    app.assert_token_refused("").await;
    assert_header_refused(&app, "Basic YW5uOnBhc3N3b3Jk").await;
    assert_header_refused(&app, &session.auth_token).await;

    // Flip a character in the middle of the signature.
    let signature_start = session.auth_token.rfind('.').expect("a JWT") + 1;
    let mut tampered = session.auth_token.clone().into_bytes();
    let i = signature_start + 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ASCII");
    assert_ne!(tampered, session.auth_token);
    app.assert_token_refused(&tampered).await;

    // Changing the claims without re-signing fails too.
    let parts: Vec<&str> = session.auth_token.split('.').collect();
    let other_claims = base64_url(
        &json!({ "sub": uuid::Uuid::now_v7(), "device": uuid::Uuid::now_v7(), "iat": 1, "exp": 9_999_999_999_i64 })
            .to_string(),
    );
    app.assert_token_refused(&format!("{}.{}.{}", parts[0], other_claims, parts[2])).await;

    // The genuine token still works.
    app.assert_token_works(&session.auth_token).await;
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_lifetime_token_is_dead_at_once() {
    let app = spawn_app_with(|s| s.auth.access_token_ttl_secs = 0).await;
    let session = app.register("bo@example.org").await;
    app.assert_token_refused(&session.auth_token).await;
    // Refreshing works (the refresh token has its own lifetime), but its access token is
    // just as dead.
    let refreshed = app.refresh(&session.refresh_token).await;
    let refreshed = refreshed.expect_status(StatusCode::OK);
    app.assert_token_refused(refreshed["auth_token"].as_str().expect("auth_token")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_tokens_need_the_right_key_and_an_unexpired_exp() {
    let app = spawn_app().await;
    let session = app.register("cy@example.org").await;
    let device_id = app.current_device(&session.auth_token).await;
    let now = Timestamp::now().as_secs();

    // Signed with the server's key and unexpired: accepted (so the key is the right one).
    let live = craft_token(SECRET_KEY_BASE, &session.user_id, &device_id, now, now + 600);
    app.assert_token_works(&live).await;

    // The same, but its exp has passed.
    let expired = craft_token(SECRET_KEY_BASE, &session.user_id, &device_id, now - 3600, now - 60);
    app.assert_token_refused(&expired).await;
    // exp == now: dead from the second it names.
    let expiring = craft_token(SECRET_KEY_BASE, &session.user_id, &device_id, now - 60, now);
    app.assert_token_refused(&expiring).await;

    // Signed with another key.
    let foreign =
        craft_token("another-secret-key-base-that-is-long-enough-0123", &session.user_id, &device_id, now, now + 600);
    app.assert_token_refused(&foreign).await;

    // The right key, but the device belongs to someone else.
    let other = app.register("dee@example.org").await;
    let forged = craft_token(SECRET_KEY_BASE, &other.user_id, &device_id, now, now + 600);
    app.assert_token_refused(&forged).await;

    // The right key, but no such device.
    let ghost = craft_token(SECRET_KEY_BASE, &session.user_id, &uuid::Uuid::now_v7().to_string(), now, now + 600);
    app.assert_token_refused(&ghost).await;

    // "alg": "none" is never accepted.
    let header = base64_url(r#"{"alg":"none","typ":"JWT"}"#);
    let claims =
        base64_url(&json!({ "sub": session.user_id, "device": device_id, "iat": now, "exp": now + 600 }).to_string());
    app.assert_token_refused(&format!("{header}.{claims}.")).await;
}
