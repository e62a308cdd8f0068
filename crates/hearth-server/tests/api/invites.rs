//! Sign-up control (issue 25): `accounts.registration` open, invite or closed; invite codes
//! made by administrators, one-use or N uses, expiring, and 20 racing registrations on a
//! one-use code making exactly one account.

use hearth_server::settings::Registration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin::{Keys, SqliteOnly, audit, list_admins, public_line, sign_in};
use crate::harness::{PASSWORD, TestApp, spawn_app_with, str_field};

/// A server with `registration` and one administrator signed in: the app and the admin token.
async fn server(registration: Registration) -> (TestApp, String) {
    let app = spawn_app_with(|settings| {
        settings.accounts.registration = registration;
        settings.auth.attempts_per_address_per_minute = 1000;
    })
    .await;
    let keys = Keys::new();
    let key = keys.make("admin", "ed25519");
    list_admins(&app, &[public_line(&key)]);
    let token = sign_in(&app, &key).await;
    (app, token)
}

async fn invite(app: &TestApp, token: &str, terms: Value) -> Value {
    let reply = app.post_authed("/admin/invites", token, Some(&terms)).await;
    reply.expect_status(StatusCode::CREATED).clone()
}

async fn register(app: &TestApp, email: &str, invite: Option<&str>) -> crate::harness::Reply {
    let mut body = json!({ "email": email, "password": PASSWORD });
    if let Some(code) = invite {
        body["invite"] = json!(code);
    }
    app.post("/auth/register", &body).await
}

/// What `GET /auth/registration` (open to anyone) says the policy is.
async fn policy(app: &TestApp) -> String {
    str_field(app.get("/auth/registration").await.expect_status(StatusCode::OK), "registration")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_server_takes_anyone_and_a_closed_one_nobody() {
    let (open, _) = server(Registration::Open).await;
    assert_eq!(policy(&open).await, "open");
    register(&open, "ann@example.org", None).await.expect_status(StatusCode::CREATED);
    register(&open, "bob@example.org", Some("whatever")).await.expect_status(StatusCode::CREATED);

    let (closed, token) = server(Registration::Closed).await;
    assert_eq!(policy(&closed).await, "closed");
    let code = str_field(&invite(&closed, &token, json!({})).await, "code");
    for code in [None, Some(code.as_str())] {
        let reply = register(&closed, "ann@example.org", code).await;
        let body = reply.expect_error(StatusCode::FORBIDDEN, "registration_closed");
        assert!(str_field(body, "message").contains("no new accounts"), "{body}");
    }
    closed.login("ann@example.org", PASSWORD).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_server_takes_a_live_code_for_as_many_uses_as_it_has() {
    let (app, token) = server(Registration::Invite).await;
    assert_eq!(policy(&app).await, "invite");
    let missing = register(&app, "ann@example.org", None).await;
    assert!(str_field(missing.expect_error(StatusCode::FORBIDDEN, "invite_required"), "message").contains("invite"));
    register(&app, "ann@example.org", Some("made-up")).await.expect_error(StatusCode::FORBIDDEN, "invalid_invite");

    let made = invite(&app, &token, json!({ "uses": 2, "expires_in_secs": 3600 })).await;
    let code = str_field(&made, "code");
    assert_eq!(made["uses"], 2);
    // The code is kept hashed, and the audit log names it without it.
    let entry = audit(&app, &token).await.first().cloned().expect("an entry");
    assert_eq!(entry["action"], "invite.create");
    assert!(!entry.to_string().contains(&code), "{entry}");
    crate::harness::assert_no_file_contains(&app, &code);

    register(&app, "ann@example.org", Some(&code)).await.expect_status(StatusCode::CREATED);
    // A sign-up that fails (the address is taken) gives its use back.
    register(&app, "ann@example.org", Some(&code)).await.expect_error(StatusCode::CONFLICT, "email_taken");
    register(&app, "bob@example.org", Some(&code)).await.expect_status(StatusCode::CREATED);
    register(&app, "cy@example.org", Some(&code)).await.expect_error(StatusCode::FORBIDDEN, "invalid_invite");

    // An expired code: its expiry moved into the past behind the server's back.
    let in_a_month = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let made = invite(&app, &token, json!({ "expires_at": in_a_month })).await;
    let code = str_field(&made, "code");
    let SqliteOnly(pool) = SqliteOnly::open(&app).await;
    sqlx::query("UPDATE invites SET expires_at = 0").execute(&pool).await.expect("expire");
    register(&app, "cy@example.org", Some(&code)).await.expect_error(StatusCode::FORBIDDEN, "invalid_invite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_terms_out_of_range_are_refused() {
    let (app, token) = server(Registration::Invite).await;
    for (terms, field) in [
        (json!({ "uses": 0 }), "uses"),
        (json!({ "uses": 1001 }), "uses"),
        (json!({ "expires_in_secs": 10 }), "expires_in_secs"),
        (json!({ "expires_at": "yesterday" }), "expires_at"),
        (json!({ "expires_at": "2001-01-01T00:00:00Z" }), "expires_at"),
        (json!({ "expires_in_secs": 3600, "expires_at": "2099-01-01T00:00:00Z" }), "expires_at"),
    ] {
        app.post_authed("/admin/invites", &token, Some(&terms)).await.expect_invalid(field);
    }
    let person = app.post("/auth/register", &json!({})).await;
    assert_eq!(person.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", person.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_racing_registrations_on_a_one_use_code_make_one_account() {
    let (app, token) = server(Registration::Invite).await;
    let code = str_field(&invite(&app, &token, json!({})).await, "code");
    let requests = (0..20).map(|n| {
        let body = json!({ "email": format!("racer{n}@example.org"), "password": PASSWORD, "invite": code });
        let request = app.client.post(app.url("/auth/register")).json(&body);
        tokio::spawn(async move { request.send().await.map(|reply| reply.status()) })
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|handle| handle.expect("request task").expect("send"))
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::FORBIDDEN), "{statuses:?}");
    let listed = app.get_authed("/admin/users", &token).await;
    assert_eq!(listed.expect_status(StatusCode::OK)["items"].as_array().expect("items").len(), 1);
}
