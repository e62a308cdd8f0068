//! Identity keys (docs/e2e.md): `PUT /api/identity_key` publishes them (replacing one needs the
//! current password); the account's own views carry both forms, everyone else's the public one,
//! and a conversation's join reply every member's; the people who share a conversation hear of
//! each change. Password and email changes re-wrap the private form with the other keys; a
//! password reset removes the identity.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::channels::{Peer, jwk};
use crate::harness::{EmailKind, PASSWORD, Reply, Session, TestApp, assert_keys, spawn_app};

/// The public form of `owner`'s identity (`version` tells replacements apart).
fn public_form(owner: &str, version: u32) -> Value {
    json!({"signing": jwk(&format!("{owner}-signing-{version}")), "agreement": jwk(&format!("{owner}-agreement-{version}"))})
}

/// The private form of `owner`'s identity, as a client wraps it.
fn private_form(owner: &str, version: u32) -> Value {
    json!({"signing": format!("v1.{owner}-signing-{version}"), "agreement": format!("v1.{owner}-agreement-{version}")})
}

async fn put_identity(app: &TestApp, session: &Session, body: &Value) -> Reply {
    app.send(app.request(Method::PUT, "/api/identity_key", Some(&session.auth_token)).json(body)).await
}

/// Publishes `owner`'s identity `version` without a password; asserts the 204.
async fn publish(app: &TestApp, session: &Session, owner: &str, version: u32) {
    let body =
        json!({"identity_key": public_form(owner, version), "identity_private_key": private_form(owner, version)});
    let reply = put_identity(app, session, &body).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(reply.text.is_empty());
}

/// The account as its owner sees it.
async fn me(app: &TestApp, session: &Session) -> Value {
    app.me(&session.auth_token).await.expect_status(StatusCode::OK).clone()
}

/// `user_id` in the directory, as `reader` sees it.
async fn listed(app: &TestApp, reader: &Session, user_id: &str) -> Value {
    let reply = app.get_authed("/api/users", &reader.auth_token).await;
    let items = reply.expect_status(StatusCode::OK)["items"].as_array().expect("items").clone();
    items.into_iter().find(|user| user["id"] == user_id).unwrap_or_else(|| panic!("{user_id} is not listed"))
}

/// Ann and Bob, Bob's socket joined to their private conversation. Returns both sessions, Bob's
/// peer and the conversation's topic.
async fn ann_and_bob(app: &TestApp) -> (Session, Session, Peer, String) {
    let (ann, bob) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let conversation = Peer::connect(app, &ann).await.start_private(&bob.user_id, "ann", json!("v1.ann")).await;
    let topic = format!("conversation:{conversation}");
    let mut bob_peer = Peer::connect(app, &bob).await;
    bob_peer.ok(&topic, "phx_join", json!({})).await;
    (ann, bob, bob_peer, topic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_identity_is_shown_in_full_to_its_owner_and_in_public_to_others() {
    let app = spawn_app().await;
    let (ann, bob, mut bob_peer, topic) = ann_and_bob(&app).await;
    // Before: null everywhere, the fields there all the same.
    let before = me(&app, &ann).await;
    assert_eq!((&before["identity_key"], &before["identity_private_key"]), (&Value::Null, &Value::Null));
    assert_eq!(listed(&app, &bob, &ann.user_id).await["identity_key"], Value::Null);

    // The private form carries a canary: sealed at rest like every private key.
    let canary = "identity-private-canary-3c9e1b";
    let private = json!({"signing": format!("v1.{canary}"), "agreement": "v1.agreement"});
    let body = json!({"identity_key": public_form("ann", 1), "identity_private_key": private});
    let reply = put_identity(&app, &ann, &body).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    crate::harness::assert_no_file_contains(&app, canary);

    // Bob, who shares a conversation with her, hears of it.
    let pushed = bob_peer.expect(&topic, "identity_key").await;
    assert_eq!(pushed, json!({"user_id": ann.user_id, "identity_key": public_form("ann", 1)}));

    // Her own views: both forms.
    let own = me(&app, &ann).await;
    assert_eq!((&own["identity_key"], &own["identity_private_key"]), (&public_form("ann", 1), &private));
    let signed_in = app.login_ok("ann@example.org", PASSWORD).await;
    assert_eq!(signed_in.body["user"]["identity_private_key"], private);
    let refreshed = app.refresh(&signed_in.refresh_token).await;
    assert_eq!(refreshed.expect_status(StatusCode::OK)["user"]["identity_key"], public_form("ann", 1));

    // Everyone else: the public form only, wherever they see her.
    let in_directory = listed(&app, &bob, &ann.user_id).await;
    assert_keys(&in_directory, &["id", "email", "display_name", "identity_key"]);
    assert_eq!(in_directory["identity_key"], public_form("ann", 1));
    let bobs_session = app.login_ok("bob@example.org", PASSWORD).await;
    let users = bobs_session.body["users"].as_array().expect("users").clone();
    assert_eq!(users.len(), 1);
    assert_keys(&users[0], &["id", "email", "display_name", "identity_key"]);
    assert_eq!(users[0]["identity_key"], public_form("ann", 1));
    assert!(!bobs_session.body.to_string().contains(canary));
    assert_eq!(bobs_session.body["user"]["identity_key"], Value::Null, "Bob has none yet");

    // The join reply: every member's, null for Bob.
    let joined = bob_peer.ok(&topic, "phx_join", json!({})).await;
    assert_eq!(joined["identity_keys"], json!({ann.user_id.clone(): public_form("ann", 1), bob.user_id.clone(): null}));
    assert!(!joined.to_string().contains(canary));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_an_identity_needs_the_current_password() {
    let app = spawn_app().await;
    let (ann, _bob, mut bob_peer, topic) = ann_and_bob(&app).await;
    publish(&app, &ann, "ann", 1).await;
    bob_peer.expect(&topic, "identity_key").await;
    let second = json!({"identity_key": public_form("ann", 2), "identity_private_key": private_form("ann", 2)});

    // A bearer token alone cannot replace it.
    let refused = put_identity(&app, &ann, &second).await;
    let body = refused.expect_error(StatusCode::CONFLICT, "identity_exists");
    assert!(body["message"].as_str().is_some_and(|message| message.contains("password")), "{body}");
    // Nor can a wrong password (the same answer as any wrong current password).
    let mut wrong = second.clone();
    wrong["password"] = json!("not my password");
    put_identity(&app, &ann, &wrong).await.expect_invalid("password");
    let own = me(&app, &ann).await;
    assert_eq!((&own["identity_key"], &own["identity_private_key"]), (&public_form("ann", 1), &private_form("ann", 1)));

    // With it: replaced, and Bob hears of the new one.
    let mut right = second.clone();
    right["password"] = json!(PASSWORD);
    let reply = put_identity(&app, &ann, &right).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let pushed = bob_peer.expect(&topic, "identity_key").await;
    assert_eq!(pushed, json!({"user_id": ann.user_id, "identity_key": public_form("ann", 2)}));
    let own = me(&app, &ann).await;
    assert_eq!((&own["identity_key"], &own["identity_private_key"]), (&public_form("ann", 2), &private_form("ann", 2)));
    // The session is untouched.
    app.assert_token_works(&ann.auth_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_of_the_wrong_shape_are_422_and_change_nothing() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let good_public = public_form("ann", 1);
    let good_private = private_form("ann", 1);
    let huge = "k".repeat(17 * 1024);
    let public_problems = [
        json!(null),
        json!("a string"),
        json!([good_public.clone()]),
        json!({"signing": jwk("s")}),
        json!({"signing": "a string", "agreement": jwk("a")}),
        json!({"signing": jwk("s"), "agreement": null}),
        json!({"signing": {"x": huge}, "agreement": jwk("a")}),
    ];
    for bad in public_problems {
        let body = json!({"identity_key": bad, "identity_private_key": good_private});
        put_identity(&app, &ann, &body).await.expect_invalid("identity_key");
    }
    let private_problems = [
        json!({"signing": "v1.s"}),
        json!({"signing": {"wrapped": 1}, "agreement": "v1.a"}),
        json!({"signing": "v1.s", "agreement": 7}),
        json!("v1.both"),
        json!({"signing": huge, "agreement": "v1.a"}),
    ];
    for bad in private_problems {
        let body = json!({"identity_key": good_public, "identity_private_key": bad});
        put_identity(&app, &ann, &body).await.expect_invalid("identity_private_key");
    }
    // Both wrong: both named.
    let both = put_identity(&app, &ann, &json!({"identity_key": {}, "identity_private_key": {}})).await;
    both.expect_invalid("identity_key");
    both.expect_invalid("identity_private_key");
    // Missing fields, wrong types, not JSON.
    put_identity(&app, &ann, &json!({"identity_key": good_public})).await.expect_invalid("identity_private_key");
    put_identity(&app, &ann, &json!({"identity_private_key": good_private})).await.expect_invalid("identity_key");
    let body = json!({"identity_key": good_public, "identity_private_key": good_private, "password": 5});
    put_identity(&app, &ann, &body).await.expect_invalid("password");
    let not_json = app
        .request(Method::PUT, "/api/identity_key", Some(&ann.auth_token))
        .body("{")
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    app.send(not_json).await.expect_error(StatusCode::BAD_REQUEST, "malformed");
    let anonymous = app.send(app.request(Method::PUT, "/api/identity_key", None).json(&json!({}))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let own = me(&app, &ann).await;
    assert_eq!((&own["identity_key"], &own["identity_private_key"]), (&Value::Null, &Value::Null));

    // With an identity, a replacement of the wrong shape is refused before the password is.
    publish(&app, &ann, "ann", 1).await;
    let body =
        json!({"identity_key": {"signing": jwk("s")}, "identity_private_key": good_private, "password": PASSWORD});
    put_identity(&app, &ann, &body).await.expect_invalid("identity_key");
    assert_eq!(me(&app, &ann).await["identity_key"], public_form("ann", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_rewraps_the_identity_with_the_other_keys() {
    let app = spawn_app().await;
    let (ann, bob, _bob_peer, topic) = ann_and_bob(&app).await;
    let conversation = topic.trim_start_matches("conversation:").to_owned();
    let new_password = "a new password, longer";
    let change = |session: &Session, extra: Value| {
        let mut body =
            json!({"password": PASSWORD, "new_password": new_password, "new_password_confirmation": new_password});
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        let (app, token) = (&app, session.auth_token.clone());
        async move { app.patch_authed("/api/password", &token, &body).await }
    };

    // Bob has no identity: re-keying with an identity key is not exactly his keys.
    let bobs = json!({"private_keys": {}, "identity_private_key": private_form("bob", 1)});
    change(&bob, bobs).await.expect_error(StatusCode::CONFLICT, "keys_changed");
    app.assert_token_works(&bob.auth_token).await;

    publish(&app, &ann, "ann", 1).await;
    // Re-keying without the identity's private key: refused, nothing changes.
    let without = json!({"private_keys": {conversation.clone(): "v1.new"}});
    let refused = change(&ann, without).await;
    let body = refused.expect_error(StatusCode::CONFLICT, "keys_changed");
    assert!(body["message"].as_str().is_some_and(|message| message.contains("identity_private_key")), "{body}");
    // The identity's without the others: 422; and of the wrong shape: 422.
    change(&ann, json!({"identity_private_key": private_form("ann", 2)})).await.expect_invalid("identity_private_key");
    let misshapen =
        json!({"private_keys": {conversation.clone(): "v1.new"}, "identity_private_key": {"signing": "v1.s"}});
    change(&ann, misshapen).await.expect_invalid("identity_private_key");
    app.assert_token_works(&ann.auth_token).await;
    let own = me(&app, &ann).await;
    assert_eq!(own["identity_private_key"], private_form("ann", 1));
    let keys = app.get_authed("/api/encryption_keys", &ann.auth_token).await;
    assert_eq!(keys.json["private_keys"][&conversation], "v1.ann");

    // Both: replaced in the password change's transaction; the public form stays.
    let both =
        json!({"private_keys": {conversation.clone(): "v1.new"}, "identity_private_key": private_form("ann", 2)});
    let changed = change(&ann, both).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
    app.assert_token_refused(&ann.auth_token).await;
    let again = app.login_ok("ann@example.org", new_password).await;
    let own = me(&app, &again).await;
    assert_eq!((&own["identity_key"], &own["identity_private_key"]), (&public_form("ann", 1), &private_form("ann", 2)));
    let keys = app.get_authed("/api/encryption_keys", &again.auth_token).await;
    assert_eq!(keys.json["private_keys"], json!({conversation: "v1.new"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_change_that_rekeys_rewraps_the_identity_too() {
    let app = spawn_app().await;
    let (ann, _bob, _bob_peer, topic) = ann_and_bob(&app).await;
    let conversation = topic.trim_start_matches("conversation:").to_owned();
    publish(&app, &ann, "ann", 1).await;
    app.post_authed("/api/token/email_change", &ann.auth_token, None).await;
    let token = app.email(EmailKind::EmailChange, "ann@example.org").await.token;
    let change = |extra: Value| {
        let mut body = json!({"token": token, "email": "ann@new.example.org", "password": PASSWORD});
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        let (app, auth) = (&app, ann.auth_token.clone());
        async move { app.patch_authed("/api/email", &auth, &body).await }
    };
    let rekey = json!({"new_password": "the new secret, long", "private_keys": {conversation.clone(): "v1.new"}});

    change(rekey.clone()).await.expect_error(StatusCode::CONFLICT, "keys_changed");
    change(json!({"identity_private_key": private_form("ann", 2)})).await.expect_invalid("identity_private_key");
    assert_eq!(me(&app, &ann).await["email"], "ann@example.org", "nothing changed; the token is still good");

    let mut with_identity = rekey;
    with_identity["identity_private_key"] = private_form("ann", 2);
    let reply = change(with_identity).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let again = app.login_ok("ann@new.example.org", "the new secret, long").await;
    let own = me(&app, &again).await;
    assert_eq!((&own["identity_key"], &own["identity_private_key"]), (&public_form("ann", 1), &private_form("ann", 2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_removes_the_identity_and_says_so() {
    let app = spawn_app().await;
    let (ann, bob, mut bob_peer, topic) = ann_and_bob(&app).await;
    publish(&app, &ann, "ann", 1).await;
    bob_peer.expect(&topic, "identity_key").await;

    app.post("/auth/password/request", &json!({"email": "ann@example.org"})).await;
    let token = app.email(EmailKind::PasswordReset, "ann@example.org").await.token;
    let new_password = "a fresh start, please";
    let body = json!({"token": token, "new_password": new_password, "new_password_confirmation": new_password});
    let reply = app.post("/auth/password/reset", &body).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);

    // Bob hears that it is gone; it is gone from every view.
    let pushed = bob_peer.expect(&topic, "identity_key").await;
    assert_eq!(pushed, json!({"user_id": ann.user_id, "identity_key": null}));
    let again = app.login_ok("ann@example.org", new_password).await;
    assert_eq!(again.body["user"]["identity_key"], Value::Null);
    assert_eq!(again.body["user"]["identity_private_key"], Value::Null);
    assert_eq!(listed(&app, &bob, &ann.user_id).await["identity_key"], Value::Null);
    let joined = bob_peer.ok(&topic, "phx_join", json!({})).await;
    assert_eq!(joined["identity_keys"][&ann.user_id], Value::Null);
    // Her conversation keys stay (they no longer open; the reset page says so).
    let keys = app.get_authed("/api/encryption_keys", &again.auth_token).await;
    assert_eq!(keys.json["private_keys"].as_object().map(|keys| keys.len()), Some(1));

    // Her client makes a new one, as a first one: no password needed.
    publish(&app, &again, "ann", 2).await;
    let pushed = bob_peer.expect(&topic, "identity_key").await;
    assert_eq!(pushed["identity_key"], public_form("ann", 2));
}
