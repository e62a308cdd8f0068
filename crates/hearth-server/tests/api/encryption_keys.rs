//! `GET /api/encryption_keys` and `PUT /api/encryption_keys`: a client reads every private key
//! it stored and puts them all back re-wrapped (after a password change), all or nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::channels::{Peer, jwk};
use crate::harness::{PASSWORD, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_keys_are_read_and_replaced_all_at_once() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let mut peer = Peer::connect(&app, &ann).await;
    let private = peer.start_private(&bob.user_id, "ann", json!({"wrapped": "ann-1"})).await;
    let started = peer
        .ok(
            "system:general",
            "start_group_conversation",
            json!({"user_ids": [bob.user_id], "public_key": jwk("ann"), "private_key": "v1.ann-2", "alias": "Team"}),
        )
        .await;
    let group = started["conversation"]["id"].as_str().expect("id").to_owned();
    // Bob's own conversation without Ann's keys is not hers to re-wrap.
    Peer::connect(&app, &bob)
        .await
        .start_private(&app.register("cy@example.org").await.user_id, "bob", json!("b"))
        .await;

    let listed = app.get_authed("/api/encryption_keys", &ann.auth_token).await;
    assert_eq!(
        listed.expect_status(StatusCode::OK),
        &json!({"private_keys": {private.clone(): {"wrapped": "ann-1"}, group.clone(): "v1.ann-2"}})
    );

    let put = |body: serde_json::Value| {
        let request = app.request(Method::PUT, "/api/encryption_keys", Some(&ann.auth_token)).json(&body);
        app.send(request)
    };
    // Not exactly hers: refused, nothing changed.
    put(json!({"private_keys": {private.clone(): "new-1"}})).await.expect_error(StatusCode::CONFLICT, "keys_changed");
    let other = uuid::Uuid::now_v7().to_string();
    let extra = json!({"private_keys": {private.clone(): "new-1", group.clone(): "new-2", other: "new-3"}});
    put(extra).await.expect_error(StatusCode::CONFLICT, "keys_changed");
    put(json!({"private_keys": {"not-an-id": "x"}})).await.expect_invalid("private_keys");
    put(json!({"private_keys": {private.clone(): null, group.clone(): "new-2"}})).await.expect_invalid("private_keys");
    let huge = "k".repeat(20_000);
    put(json!({"private_keys": {private.clone(): huge, group.clone(): "new-2"}})).await.expect_invalid("private_keys");
    assert!(put(json!({"keys": {}})).await.status.is_client_error());
    let unchanged = app.get_authed("/api/encryption_keys", &ann.auth_token).await;
    assert_eq!(unchanged.json, listed.json);

    // Exactly hers: all replaced, and the conversation's join reply gives the new one.
    let rewrapped = json!({"private_keys": {private.clone(): {"wrapped": "new-1"}, group.clone(): "v1.new-2"}});
    assert_eq!(put(rewrapped.clone()).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get_authed("/api/encryption_keys", &ann.auth_token).await.json, rewrapped);
    let joined = peer.ok(&format!("conversation:{group}"), "phx_join", json!({})).await;
    assert_eq!(joined["private_key"], "v1.new-2");
    // Sealed at rest, as every private key.
    crate::harness::assert_no_file_contains(&app, "v1.new-2");

    let anonymous = app.send(app.request(Method::GET, "/api/encryption_keys", None)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_replaces_the_private_keys_in_the_same_transaction() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let conversation = Peer::connect(&app, &ann).await.start_private(&bob.user_id, "ann", json!("v1.old")).await;
    let change = |private_keys: serde_json::Value| {
        let body = json!({
            "password": PASSWORD,
            "new_password": "a new password, longer",
            "new_password_confirmation": "a new password, longer",
            "private_keys": private_keys,
        });
        let (app, token) = (&app, ann.auth_token.clone());
        async move { app.patch_authed("/api/password", &token, &body).await }
    };

    // A set that is not exactly hers: neither the password nor a key changes.
    let wrong = json!({uuid::Uuid::now_v7().to_string(): "v1.new"});
    change(wrong).await.expect_error(StatusCode::CONFLICT, "keys_changed");
    app.assert_token_works(&ann.auth_token).await;
    let listed = app.get_authed("/api/encryption_keys", &ann.auth_token).await;
    assert_eq!(listed.json["private_keys"][&conversation], "v1.old");

    let changed = change(json!({conversation.clone(): "v1.new"})).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
    app.assert_token_refused(&ann.auth_token).await;
    let again = app.login_ok("ann@example.org", "a new password, longer").await;
    let listed = app.get_authed("/api/encryption_keys", &again.auth_token).await;
    assert_eq!(listed.json["private_keys"], json!({conversation: "v1.new"}));
}
