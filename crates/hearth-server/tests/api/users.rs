//! `GET /api/users`: paging with signed page tokens.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::channels::Peer;
use crate::harness::{PASSWORD, TestApp, assert_keys, spawn_app, spawn_app_with};

/// Registers `n` users (a few at a time) and returns their ids.
async fn register_many(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let sessions = futures::future::join_all(
            chunk.iter().map(|i| async move { app.register(&format!("user{i:03}@example.org")).await }),
        )
        .await;
        ids.extend(sessions.into_iter().map(|s| s.user_id));
    }
    ids
}

async fn page(app: &TestApp, token: &str, query: &str) -> (Vec<Value>, Option<String>) {
    let reply = app.get_authed(&format!("/api/users{query}"), token).await;
    let body = reply.expect_status(StatusCode::OK);
    assert_keys(body, &["items", "page_token"]);
    let items = body["items"].as_array().expect("items is an array").clone();
    for item in &items {
        assert_keys(item, &["id", "email", "display_name", "identity_key"]);
    }
    let next = match &body["page_token"] {
        Value::Null => None,
        Value::String(token) => Some(token.clone()),
        other => panic!("page_token is neither null nor a string: {other}"),
    };
    (items, next)
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|u| u["id"].as_str().expect("id").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_default_to_50_and_walk_every_user_once() {
    let app = spawn_app().await;
    let all = register_many(&app, 53).await;
    let token = app.login_ok("user000@example.org", crate::harness::PASSWORD).await.auth_token;

    // Default page size: 50.
    let (first, next) = page(&app, &token, "").await;
    assert_eq!(first.len(), 50);
    let next = next.expect("a second page");
    let (second, last) = page(&app, &token, &format!("?page_token={next}")).await;
    assert_eq!(second.len(), 3);
    assert_eq!(last, None);
    let mut default_walk = ids(&first);
    default_walk.extend(ids(&second));

    // page_size=2 walks every user exactly once, in id order.
    let mut walked = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            None => "?page_size=2".to_owned(),
            Some(token) => format!("?page_size=2&page_token={token}"),
        };
        let (items, next) = page(&app, &token, &query).await;
        pages += 1;
        assert!(items.len() <= 2);
        assert!(!items.is_empty(), "no empty pages");
        walked.extend(ids(&items));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages <= all.len(), "the walk does not end");
    }
    assert_eq!(pages, 27);
    assert_eq!(walked.len(), all.len());
    let unique: HashSet<&String> = walked.iter().collect();
    assert_eq!(unique.len(), all.len(), "no user twice");
    assert_eq!(unique, all.iter().collect::<HashSet<_>>(), "every user");
    let mut sorted = walked.clone();
    sorted.sort();
    assert_eq!(walked, sorted, "ordered by id");
    assert_eq!(walked, default_walk);

    // Display names come along (the address's local part unless chosen); emails only for oneself
    // here, since user000 shares no conversation with anyone.
    let (items, _) = page(&app, &token, "?page_size=100").await;
    assert_eq!(items.len(), 53);
    assert!(items.iter().any(|u| u["email"].is_null() && u["display_name"] == "user007"));
    assert_eq!(items.iter().filter(|u| !u["email"].is_null()).count(), 1);
    assert!(items.iter().any(|u| u["email"] == "user000@example.org"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_page_sizes_are_422() {
    let app = spawn_app().await;
    let token = app.register("ann@example.org").await.auth_token;
    for size in ["0", "101", "abc", "-1", "1.5", ""] {
        let reply = app.get_authed(&format!("/api/users?page_size={size}"), &token).await;
        reply.expect_invalid("page_size");
    }
    for size in ["1", "100"] {
        app.get_authed(&format!("/api/users?page_size={size}"), &token).await.expect_status(StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_random_page_tokens_are_400() {
    let app = spawn_app().await;
    register_many(&app, 3).await;
    let token = app.login_ok("user000@example.org", crate::harness::PASSWORD).await.auth_token;
    let (_, next) = page(&app, &token, "?page_size=1").await;
    let next = next.expect("a next page");
    page(&app, &token, &format!("?page_size=1&page_token={next}")).await;

    let mut tampered = next.clone().into_bytes();
    tampered[2] = if tampered[2] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ASCII");
    let random = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7_u8; 32])
    };
    let truncated = next[..next.len() - 1].to_owned();
    for bad in [tampered, random, truncated, "abcdef".to_owned(), "!!!".to_owned(), String::new()] {
        let reply = app.get_authed(&format!("/api/users?page_size=1&page_token={bad}"), &token).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "invalid_page_token");
    }

    // Needs a session.
    app.get("/api/users").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// Each listed person's email as `token`'s holder sees them, by display name.
async fn emails_seen(app: &TestApp, token: &str, query: &str) -> Vec<(String, Value)> {
    let (items, _) = page(app, token, query).await;
    let mut seen: Vec<(String, Value)> =
        items.iter().map(|u| (u["display_name"].as_str().expect("a name").to_owned(), u["email"].clone())).collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_are_shown_to_contacts_only_and_people_are_found_by_name_or_exact_address() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let body =
        serde_json::json!({"email": "carol@example.org", "password": PASSWORD, "display_name": "Carol Ödegaard"});
    let carol = app.register_with(&body).await;
    let mut ann_peer = Peer::connect(&app, &ann).await;
    ann_peer.start_private(&bob.user_id, "ann", serde_json::json!({"wrapped": "k"})).await;

    // Ann sees her own and Bob's (a conversation partner's) address; Carol's is private.
    let everyone = emails_seen(&app, &ann.auth_token, "").await;
    let email = |s: &str| Value::String(s.to_owned());
    assert_eq!(
        everyone,
        vec![
            ("Carol Ödegaard".to_owned(), Value::Null),
            ("ann".to_owned(), email("ann@example.org")),
            ("bob".to_owned(), email("bob@example.org")),
        ]
    );
    // Carol sees only her own.
    let carol_sees = emails_seen(&app, &carol.auth_token, "").await;
    assert_eq!(carol_sees.iter().filter(|(_, e)| !e.is_null()).count(), 1, "{carol_sees:?}");

    // Found by a part of the display name in any case, or by the exact address (then shown).
    assert_eq!(
        emails_seen(&app, &ann.auth_token, "?query=%C3%96DEGAARD").await,
        vec![("Carol Ödegaard".to_owned(), Value::Null)]
    );
    assert_eq!(
        emails_seen(&app, &ann.auth_token, "?query=%20carol%20").await,
        vec![("Carol Ödegaard".to_owned(), Value::Null)]
    );
    let by_address = emails_seen(&app, &ann.auth_token, "?query=Carol@Example.org").await;
    assert_eq!(by_address, vec![("Carol Ödegaard".to_owned(), email("carol@example.org"))]);
    // A part of an address finds nobody: the directory cannot be walked by domain.
    for part in ["example.org", "carol@", "@example.org", "arol@example.org"] {
        assert_eq!(emails_seen(&app, &ann.auth_token, &format!("?query={part}")).await, vec![], "{part}");
    }
    // A query pages like the whole list ("a": Ann and Carol).
    let (first, next) = page(&app, &ann.auth_token, "?query=a&page_size=1").await;
    assert_eq!(first.len(), 1);
    let (rest, last) =
        page(&app, &ann.auth_token, &format!("?query=a&page_size=1&page_token={}", next.expect("more"))).await;
    assert_eq!((rest.len(), last), (1, None));

    // An empty or over-long query is refused, naming it.
    for bad in ["", "%20%20", &"x".repeat(321)] {
        app.get_authed(&format!("/api/users?query={bad}"), &ann.auth_token).await.expect_invalid("query");
    }
    app.get_authed(&format!("/api/users?query={}", "x".repeat(320)), &ann.auth_token)
        .await
        .expect_status(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_may_show_everyones_email() {
    let app = spawn_app_with(|settings| {
        settings.directory.show_emails = hearth_server::settings::ShowEmails::Everyone;
    })
    .await;
    let ann = app.register("ann@example.org").await;
    app.register("bob@example.org").await;
    let seen = emails_seen(&app, &ann.auth_token, "").await;
    assert_eq!(
        seen,
        vec![
            ("ann".to_owned(), Value::String("ann@example.org".to_owned())),
            ("bob".to_owned(), Value::String("bob@example.org".to_owned())),
        ]
    );
}
