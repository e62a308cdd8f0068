//! `POST /api/token/email_change` and `PATCH /api/email`.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{EmailKind, PASSWORD, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_change_moves_the_account_to_the_new_address() {
    let app = spawn_app().await;
    let session = app.register("ann@example.org").await;
    let taken = app.register("bo@example.org").await;
    let old_confirmation = app.email(EmailKind::Confirm, "ann@example.org").await.token;

    let reply = app.post_authed("/api/token/email_change", &session.auth_token, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    // Sent to the current address.
    let email = app.email(EmailKind::EmailChange, "ann@example.org").await;
    assert!(email.body.contains(&format!("/#/change-email/{}", email.token)), "{}", email.body);
    let token = email.token;

    // Wrong password: 422, and the token is not spent.
    let wrong = app
        .patch_authed(
            "/api/email",
            &session.auth_token,
            &json!({ "token": token, "email": "ann.new@example.org", "password": "not my password" }),
        )
        .await;
    wrong.expect_invalid("password");

    // An address someone else has: 409, and the token is not spent.
    let conflict = app
        .patch_authed(
            "/api/email",
            &session.auth_token,
            &json!({ "token": token, "email": "BO@example.org", "password": PASSWORD }),
        )
        .await;
    conflict.expect_error(StatusCode::CONFLICT, "email_taken");

    // Not an address: 422.
    let invalid = app
        .patch_authed(
            "/api/email",
            &session.auth_token,
            &json!({ "token": token, "email": "nope", "password": PASSWORD }),
        )
        .await;
    invalid.expect_invalid("email");

    let reply = app
        .patch_authed(
            "/api/email",
            &session.auth_token,
            &json!({ "token": token, "email": "Ann.New@Example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(reply.text.is_empty());

    let me = app.me(&session.auth_token).await;
    assert_eq!(me.expect_status(StatusCode::OK)["email"], "ann.new@example.org");
    // The new address gets a confirmation link; the old address's link no longer confirms.
    let new_confirmation = app.email(EmailKind::Confirm, "ann.new@example.org").await.token;
    app.post("/auth/confirm", &json!({ "token": old_confirmation }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    let confirmed = app.post("/auth/confirm", &json!({ "token": new_confirmation })).await;
    assert_eq!(confirmed.status, StatusCode::NO_CONTENT, "{}", confirmed.text);
    // Signing in uses the new address.
    app.login_ok("ann.new@example.org", PASSWORD).await;
    app.login("ann@example.org", PASSWORD).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // The other account is untouched.
    assert_eq!(app.me(&taken.auth_token).await.expect_status(StatusCode::OK)["email"], "bo@example.org");

    // The token is spent.
    let reused = app
        .patch_authed(
            "/api/email",
            &session.auth_token,
            &json!({ "token": token, "email": "ann.third@example.org", "password": PASSWORD }),
        )
        .await;
    reused.expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    assert_eq!(app.me(&session.auth_token).await.expect_status(StatusCode::OK)["email"], "ann.new@example.org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_change_token_is_only_good_for_its_owner() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bo = app.register("bo@example.org").await;
    app.post_authed("/api/token/email_change", &ann.auth_token, None).await.expect_status(StatusCode::NO_CONTENT);
    let token = app.email(EmailKind::EmailChange, "ann@example.org").await.token;

    let reply = app
        .patch_authed(
            "/api/email",
            &bo.auth_token,
            &json!({ "token": token, "email": "bo2@example.org", "password": PASSWORD }),
        )
        .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    assert_eq!(app.me(&bo.auth_token).await.expect_status(StatusCode::OK)["email"], "bo@example.org");

    // Ann can still use it.
    let reply = app
        .patch_authed(
            "/api/email",
            &ann.auth_token,
            &json!({ "token": token, "email": "ann2@example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
}

/// A client whose keys derive from the email sends its new secret and re-wrapped keys with the
/// change: all of it happens in one transaction, and every session is signed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_change_can_bring_a_new_secret_and_rewrapped_keys() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let conversation =
        crate::channels::Peer::connect(&app, &ann).await.start_private(&bob.user_id, "ann", json!("v1.old")).await;
    app.post_authed("/api/token/email_change", &ann.auth_token, None).await;
    let token = app.email(EmailKind::EmailChange, "ann@example.org").await.token;
    let change = |extra: serde_json::Value| {
        let mut body = json!({ "token": token, "email": "ann@new.example.org", "password": PASSWORD });
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        let (app, auth) = (&app, ann.auth_token.clone());
        async move { app.patch_authed("/api/email", &auth, &body).await }
    };

    // Both or neither; and the keys must be exactly hers (the token survives each refusal).
    change(json!({ "new_password": "the new secret, long" })).await.expect_invalid("private_keys");
    change(json!({ "private_keys": {} })).await.expect_invalid("new_password");
    let stranger = uuid::Uuid::now_v7().to_string();
    let wrong = json!({ "new_password": "the new secret, long", "private_keys": {stranger: "v1.x"} });
    change(wrong).await.expect_error(StatusCode::CONFLICT, "keys_changed");
    app.assert_token_works(&ann.auth_token).await;

    let right = json!({ "new_password": "the new secret, long", "private_keys": {conversation.clone(): "v1.new"} });
    let reply = change(right).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    app.assert_token_refused(&ann.auth_token).await;
    assert_eq!(app.login("ann@example.org", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    let again = app.login_ok("ann@new.example.org", "the new secret, long").await;
    let keys = app.get_authed("/api/encryption_keys", &again.auth_token).await;
    assert_eq!(keys.json["private_keys"], json!({ conversation: "v1.new" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_change_voids_a_reset_mailed_to_the_old_address_and_every_other_one_time_token() {
    let app = spawn_app().await;
    let session = app.register("ann@example.org").await;
    // Outstanding before the change: a reset mailed to the old address, a device-link code.
    app.post("/auth/password/request", &json!({ "email": "ann@example.org" })).await;
    let reset = app.email(EmailKind::PasswordReset, "ann@example.org").await.token;
    let link = app.post_authed("/api/devices/link", &session.auth_token, None).await;
    let code = link.expect_status(StatusCode::CREATED)["code"].as_str().expect("code").to_owned();

    let reply = app.post_authed("/api/token/email_change", &session.auth_token, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let change = app.email(EmailKind::EmailChange, "ann@example.org").await.token;
    let body = json!({ "token": change, "email": "ann@new.example", "password": PASSWORD });
    let reply = app.patch_authed("/api/email", &session.auth_token, &body).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);

    // Whoever reads the old mailbox cannot take the moved account over.
    let takeover = json!({
        "token": reset, "new_password": "the attacker's password", "new_password_confirmation": "the attacker's password",
    });
    app.post("/auth/password/reset", &takeover).await.expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    app.login("ann@new.example", "the attacker's password")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.post("/auth/device/link", &json!({ "code": code }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_token");
    // The account itself is as it was, at its new address.
    app.login_ok("ann@new.example", PASSWORD).await;
    assert_eq!(app.devices(&session.auth_token).await.len(), 2);
}
