//! `GET /api/devices`, `DELETE /api/devices/{id}`, `POST /api/devices/link` and
//! `POST /auth/device/link`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{PASSWORD, Session, assert_keys, spawn_app, spawn_app_with, str_field};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_lists_every_live_session_and_marks_the_current_one() {
    let app = spawn_app().await;
    let first = app.register("ann@example.org").await;
    let laptop = app.login_device("ann@example.org", PASSWORD, "laptop").await;
    let phone = app.login_device("ann@example.org", PASSWORD, "  phone\u{7}  ").await;

    let devices = app.devices(&laptop.auth_token).await;
    assert_eq!(devices.len(), 3, "{devices:?}");
    for device in &devices {
        assert_keys(device, &["id", "name", "created_at", "last_seen_at", "current"]);
        uuid::Uuid::parse_str(&str_field(device, "id")).expect("device ids are UUIDs");
        chrono::DateTime::parse_from_rfc3339(&str_field(device, "created_at")).expect("RFC 3339");
        chrono::DateTime::parse_from_rfc3339(&str_field(device, "last_seen_at")).expect("RFC 3339");
    }
    let names: Vec<&str> = devices.iter().map(|d| d["name"].as_str().expect("name")).collect();
    assert!(names.contains(&"laptop"), "{names:?}");
    assert!(names.contains(&"phone"), "names are trimmed and lose control characters: {names:?}");
    let current: Vec<&Value> = devices.iter().filter(|d| d["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["name"], "laptop");

    // Each token sees its own device as current.
    let ids = [
        app.current_device(&first.auth_token).await,
        app.current_device(&laptop.auth_token).await,
        app.current_device(&phone.auth_token).await,
    ];
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_ne!(ids[0], ids[2]);

    // Another user sees only their own.
    let other = app.register("bo@example.org").await;
    assert_eq!(app.devices(&other.auth_token).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_device_kills_its_tokens_at_once() {
    let app = spawn_app().await;
    let keeper = app.register("ann@example.org").await;
    let victim = app.login_device("ann@example.org", PASSWORD, "stolen phone").await;
    app.assert_token_works(&victim.auth_token).await;
    let victim_id = app.current_device(&victim.auth_token).await;

    let reply = app.delete_authed(&format!("/api/devices/{victim_id}"), &keeper.auth_token, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(reply.text.is_empty());

    // The very next request with the revoked session's token is refused, and so is its
    // refresh token.
    app.assert_token_refused(&victim.auth_token).await;
    app.assert_refresh_refused(&victim.refresh_token).await;
    // The revoking session goes on.
    app.assert_token_works(&keeper.auth_token).await;
    let devices = app.devices(&keeper.auth_token).await;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["current"], true);
    app.refresh(&keeper.refresh_token).await.expect_status(StatusCode::OK);

    // Revoking it again: it is no longer a live device of the user.
    let again = app.delete_authed(&format!("/api/devices/{victim_id}"), &keeper.auth_token, None).await;
    again.expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_unknown_or_foreign_device_is_404_and_a_malformed_id_422() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bo = app.register("bo@example.org").await;
    let bo_device = app.current_device(&bo.auth_token).await;

    let unknown = uuid::Uuid::now_v7();
    for id in [unknown.to_string(), bo_device.clone()] {
        let reply = app.delete_authed(&format!("/api/devices/{id}"), &ann.auth_token, None).await;
        reply.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    // A malformed id (even one that is not UTF-8) is a 422 naming the parameter, in JSON.
    for id in ["not-a-uuid", "123", "%ff%fe"] {
        let reply = app.delete_authed(&format!("/api/devices/{id}"), &ann.auth_token, None).await;
        assert_eq!(reply.expect_invalid("id"), ["must be a UUID"], "{id}");
    }
    // Someone else's device is untouched.
    app.assert_token_works(&bo.auth_token).await;
    app.refresh(&bo.refresh_token).await.expect_status(StatusCode::OK);
    // Revoking needs a session.
    let reply = app.send(app.request(reqwest::Method::DELETE, &format!("/api/devices/{bo_device}"), None)).await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn link_code(app: &crate::harness::TestApp, session: &Session) -> String {
    let reply = app.post_authed("/api/devices/link", &session.auth_token, None).await;
    let body = reply.expect_status(StatusCode::CREATED);
    assert_keys(body, &["code", "expires_at"]);
    let expires_at = chrono::DateTime::parse_from_rfc3339(&str_field(body, "expires_at")).expect("RFC 3339");
    assert!(expires_at > chrono::Utc::now(), "the code is valid for a while: {expires_at}");
    str_field(body, "code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_code_signs_in_a_new_device_once() {
    let app = spawn_app().await;
    let session = app.register("ann@example.org").await;
    let code = link_code(&app, &session).await;

    let reply = app.post("/auth/device/link", &json!({ "code": code, "device_name": "tablet" })).await;
    let linked = Session::from_reply(reply.expect_status(StatusCode::OK).clone());
    assert_eq!(linked.user_id, session.user_id);
    assert_eq!(linked.body["user"], session.body["user"]);
    assert_ne!(linked.refresh_token, session.refresh_token);
    app.assert_token_works(&linked.auth_token).await;

    let devices = app.devices(&linked.auth_token).await;
    assert_eq!(devices.len(), 2);
    let current: Vec<&Value> = devices.iter().filter(|d| d["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["name"], "tablet");
    assert_ne!(app.current_device(&session.auth_token).await, str_field(current[0], "id"));
    app.refresh(&linked.refresh_token).await.expect_status(StatusCode::OK);

    // The code works once.
    let again = app.post("/auth/device/link", &json!({ "code": code })).await;
    again.expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    let unknown = app.post("/auth/device/link", &json!({ "code": "no-such-code" })).await;
    unknown.expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    assert_eq!(app.devices(&session.auth_token).await.len(), 2);

    // Making a code needs a session.
    let reply = app.send(app.request(reqwest::Method::POST, "/api/devices/link", None)).await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_one_time_tokens_are_not_link_codes() {
    let app = spawn_app().await;
    app.register("ann@example.org").await;
    let confirm = app.email(crate::harness::EmailKind::Confirm, "ann@example.org").await;
    let reply = app.post("/auth/device/link", &json!({ "code": confirm.token })).await;
    reply.expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    // And the confirmation token is still good for what it is.
    let reply = app.post("/auth/confirm", &json!({ "token": confirm.token })).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_code_is_400() {
    let app = spawn_app_with(|s| s.auth.device_link_ttl_secs = 0).await;
    let session = app.register("ann@example.org").await;
    let reply = app.post_authed("/api/devices/link", &session.auth_token, None).await;
    let code = str_field(reply.expect_status(StatusCode::CREATED), "code");
    let reply = app.post("/auth/device/link", &json!({ "code": code })).await;
    reply.expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    assert_eq!(app.devices(&session.auth_token).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_or_replayed_session_takes_its_device_link_codes_with_it() {
    let app = spawn_app().await;
    let keeper = app.register("ann@example.org").await;
    let stolen = app.login_device("ann@example.org", PASSWORD, "stolen phone").await;
    let code_of = |reply: &crate::harness::Reply| str_field(reply.expect_status(StatusCode::CREATED), "code");
    let stolen_code = code_of(&app.post_authed("/api/devices/link", &stolen.auth_token, None).await);

    // Revoking the session that made the code voids the code.
    let stolen_id = app.current_device(&stolen.auth_token).await;
    let reply = app.delete_authed(&format!("/api/devices/{stolen_id}"), &keeper.auth_token, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    app.post("/auth/device/link", &json!({ "code": stolen_code }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_token");

    // So does the replay of a spent refresh token, which revokes its session.
    let copied = app.login_device("ann@example.org", PASSWORD, "copied laptop").await;
    let rotated = Session::from_reply(app.refresh(&copied.refresh_token).await.expect_status(StatusCode::OK).clone());
    let copied_code = code_of(&app.post_authed("/api/devices/link", &rotated.auth_token, None).await);
    app.assert_refresh_refused(&copied.refresh_token).await;
    app.post("/auth/device/link", &json!({ "code": copied_code }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_token");

    // The keeper's own code is untouched by either.
    let keepers_code = code_of(&app.post_authed("/api/devices/link", &keeper.auth_token, None).await);
    app.post("/auth/device/link", &json!({ "code": keepers_code })).await.expect_status(StatusCode::OK);
}
