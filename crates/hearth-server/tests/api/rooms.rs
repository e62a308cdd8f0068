//! Rooms over REST: creating, listing, joining, adding members, leaving, and who may see and
//! read what. A private room is seen by its members only: anyone else gets the very answer a
//! room that does not exist gets.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Reply, Session, TestApp, assert_keys, spawn_app};

/// Creates a room as `owner`; returns its id.
pub async fn create_room(app: &TestApp, owner: &Session, name: &str, visibility: &str) -> String {
    let request = json!({ "name": name, "visibility": visibility });
    let reply = app.post_authed("/api/rooms", &owner.auth_token, Some(&request)).await;
    let body = reply.expect_status(StatusCode::CREATED).clone();
    assert_keys(&body, &["id", "name", "topic", "visibility", "inserted_at", "updated_at", "joined", "moderator"]);
    assert_eq!((body["joined"].as_bool(), body["moderator"].as_bool()), (Some(true), Some(true)));
    body["id"].as_str().expect("id").to_owned()
}

/// The caller's room list, one page: `(name, joined, moderator)` each.
async fn listed(app: &TestApp, session: &Session) -> Vec<(String, bool, bool)> {
    let body = app.get_authed("/api/rooms", &session.auth_token).await.expect_status(StatusCode::OK).clone();
    assert_keys(&body, &["items", "page_token"]);
    let items = body["items"].as_array().expect("items");
    items
        .iter()
        .map(|room| {
            let flag = |key: &str| room[key].as_bool().expect("a boolean");
            (room["name"].as_str().expect("name").to_owned(), flag("joined"), flag("moderator"))
        })
        .collect()
}

async fn add(app: &TestApp, room: &str, by: &Session, user_ids: Value) -> Reply {
    let body = json!({ "user_ids": user_ids });
    app.post_authed(&format!("/api/rooms/{room}/members"), &by.auth_token, Some(&body)).await
}

fn row(name: &str, joined: bool, moderator: bool) -> (String, bool, bool) {
    (name.to_owned(), joined, moderator)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_validates_and_the_creator_moderates() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let reply = app
        .post_authed(
            "/api/rooms",
            &ann.auth_token,
            Some(&json!({ "name": "  lobby  ", "topic": "say hi", "visibility": "public" })),
        )
        .await;
    let body = reply.expect_status(StatusCode::CREATED);
    assert_eq!(
        (body["name"].as_str(), body["topic"].as_str(), body["visibility"].as_str()),
        (Some("lobby"), Some("say hi"), Some("public"))
    );

    for (body, field) in [
        (json!({ "name": "", "visibility": "public" }), "name"),
        (json!({ "name": "   ", "visibility": "public" }), "name"),
        (json!({ "name": "x".repeat(101), "visibility": "public" }), "name"),
        (json!({ "name": "a\u{7}b", "visibility": "public" }), "name"),
        (json!({ "name": "ok", "topic": "t".repeat(501), "visibility": "public" }), "topic"),
        (json!({ "name": "ok", "visibility": "secret" }), "visibility"),
        (json!({ "name": "ok" }), "visibility"),
    ] {
        app.post_authed("/api/rooms", &ann.auth_token, Some(&body)).await.expect_invalid(field);
    }
    app.post_authed("/api/rooms", "not-a-token", Some(&json!({ "name": "x", "visibility": "public" })))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(listed(&app, &ann).await, [row("lobby", true, true)], "nothing refused was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_show_joined_rooms_and_public_ones_only() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    create_room(&app, &ann, "lobby", "public").await;
    create_room(&app, &ann, "secret", "private").await;
    create_room(&app, &bob, "bobs", "private").await;
    assert_eq!(listed(&app, &ann).await, [row("lobby", true, true), row("secret", true, true)]);
    assert_eq!(listed(&app, &bob).await, [row("lobby", false, false), row("bobs", true, true)]);

    // Pages.
    let first = app.get_authed("/api/rooms?page_size=1", &ann.auth_token).await.expect_status(StatusCode::OK).clone();
    assert_eq!(first["items"][0]["name"], "lobby");
    let token = first["page_token"].as_str().expect("a next page");
    let second = app.get_authed(&format!("/api/rooms?page_size=1&page_token={token}"), &ann.auth_token).await;
    let second = second.expect_status(StatusCode::OK);
    assert_eq!(second["items"][0]["name"], "secret");
    assert_eq!(second["page_token"], Value::Null);
    // Another person's token is not a page of theirs.
    let foreign = app.get_authed(&format!("/api/rooms?page_token={token}"), &bob.auth_token).await;
    foreign.expect_error(StatusCode::BAD_REQUEST, "invalid_page_token");
    app.get_authed("/api/rooms?page_size=0", &ann.auth_token).await.expect_invalid("page_size");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anyone_joins_a_public_room_and_nobody_learns_of_a_private_one() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let lobby = create_room(&app, &ann, "lobby", "public").await;
    let secret = create_room(&app, &ann, "secret", "private").await;

    let joined = app.post_authed(&format!("/api/rooms/{lobby}/join"), &bob.auth_token, None).await;
    let body = joined.expect_status(StatusCode::OK);
    assert_eq!((body["joined"].as_bool(), body["moderator"].as_bool()), (Some(true), Some(false)));
    // Again: nothing changes.
    app.post_authed(&format!("/api/rooms/{lobby}/join"), &bob.auth_token, None).await.expect_status(StatusCode::OK);
    assert_eq!(listed(&app, &bob).await, [row("lobby", true, false)]);

    // A private room answers exactly as a room that does not exist, on every route.
    let unknown = uuid::Uuid::now_v7().to_string();
    let routes = |room: &str| {
        [
            (reqwest::Method::POST, format!("/api/rooms/{room}/join"), None),
            (reqwest::Method::POST, format!("/api/rooms/{room}/members"), Some(json!({ "user_ids": [bob.user_id] }))),
            (reqwest::Method::POST, format!("/api/rooms/{room}/leave"), None),
            (reqwest::Method::GET, format!("/api/rooms/{room}/messages"), None),
            (reqwest::Method::GET, format!("/api/rooms/{room}/members"), None),
            (reqwest::Method::GET, format!("/api/rooms/{room}/search?q=hello"), None),
        ]
    };
    for ((method, private_path, body), (_, unknown_path, _)) in routes(&secret).into_iter().zip(routes(&unknown)) {
        let send = |path: String| {
            let mut request = app.request(method.clone(), &path, Some(&bob.auth_token));
            if let Some(body) = &body {
                request = request.json(body);
            }
            app.send(request)
        };
        let private = send(private_path.clone()).await;
        let missing = send(unknown_path).await;
        private.expect_error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!((private.status, &private.json), (missing.status, &missing.json), "{method} {private_path}");
    }
    app.post_authed("/api/rooms/not-a-uuid/join", &bob.auth_token, None).await.expect_invalid("id");
    assert_eq!(listed(&app, &bob).await, [row("lobby", true, false)], "still nothing of the private room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderators_add_members_and_nobody_else_does() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let cat = app.register("cat@example.org").await;
    let lobby = create_room(&app, &ann, "lobby", "public").await;
    let secret = create_room(&app, &ann, "secret", "private").await;

    let added = add(&app, &secret, &ann, json!([bob.user_id, ann.user_id])).await;
    assert_eq!(added.expect_status(StatusCode::OK), &json!({ "user_ids": [bob.user_id] }), "only the new member");
    assert_eq!(listed(&app, &bob).await, [row("lobby", false, false), row("secret", true, false)]);
    // A member who does not moderate.
    add(&app, &secret, &bob, json!([cat.user_id])).await.expect_error(StatusCode::FORBIDDEN, "not_a_moderator");
    // Someone outside a public room.
    add(&app, &lobby, &cat, json!([cat.user_id])).await.expect_error(StatusCode::FORBIDDEN, "not_a_member");
    // Nobody, too many, someone unknown (and then nobody is added).
    add(&app, &secret, &ann, json!([])).await.expect_invalid("user_ids");
    add(&app, &secret, &ann, json!(vec![cat.user_id.clone(); 101])).await.expect_invalid("user_ids");
    add(&app, &secret, &ann, json!([cat.user_id, uuid::Uuid::now_v7()])).await.expect_invalid("user_ids");
    add(&app, &secret, &ann, json!(["not-a-uuid"])).await.expect_invalid("user_ids[0]");
    assert_eq!(listed(&app, &cat).await, [row("lobby", false, false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_ends_reading() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let lobby = create_room(&app, &ann, "lobby", "public").await;
    let secret = create_room(&app, &ann, "secret", "private").await;
    app.post_authed(&format!("/api/rooms/{lobby}/join"), &bob.auth_token, None).await.expect_status(StatusCode::OK);
    let add = json!({ "user_ids": [bob.user_id] });
    app.post_authed(&format!("/api/rooms/{secret}/members"), &ann.auth_token, Some(&add))
        .await
        .expect_status(StatusCode::OK);
    for room in [&lobby, &secret] {
        let page = app.get_authed(&format!("/api/rooms/{room}/messages"), &bob.auth_token).await;
        assert_eq!(page.expect_status(StatusCode::OK), &json!({ "items": [], "page_token": null }));
        app.post_authed(&format!("/api/rooms/{room}/leave"), &bob.auth_token, None)
            .await
            .expect_status(StatusCode::NO_CONTENT);
    }
    // Outside a public room: known, but not readable.
    app.get_authed(&format!("/api/rooms/{lobby}/messages"), &bob.auth_token)
        .await
        .expect_error(StatusCode::FORBIDDEN, "not_a_member");
    app.get_authed(&format!("/api/rooms/{lobby}/search?q=x"), &bob.auth_token)
        .await
        .expect_error(StatusCode::FORBIDDEN, "not_a_member");
    app.get_authed(&format!("/api/rooms/{lobby}/members"), &bob.auth_token)
        .await
        .expect_error(StatusCode::FORBIDDEN, "not_a_member");
    app.post_authed(&format!("/api/rooms/{lobby}/leave"), &bob.auth_token, None)
        .await
        .expect_error(StatusCode::FORBIDDEN, "not_a_member");
    // Outside a private room: gone from sight.
    app.get_authed(&format!("/api/rooms/{secret}/messages"), &bob.auth_token)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.post_authed(&format!("/api/rooms/{secret}/leave"), &bob.auth_token, None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(listed(&app, &bob).await, [row("lobby", false, false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_search_refuse_bad_parameters() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let lobby = create_room(&app, &ann, "lobby", "public").await;
    let get = |path: String| {
        let (app, token) = (&app, ann.auth_token.clone());
        async move { app.get_authed(&path, &token).await }
    };
    get(format!("/api/rooms/{lobby}/messages?page_token=nonsense"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_page_token");
    get(format!("/api/rooms/{lobby}/messages?page_size=101")).await.expect_invalid("page_size");
    get(format!("/api/rooms/{lobby}/search")).await.expect_invalid("q");
    get(format!("/api/rooms/{lobby}/search?q=")).await.expect_invalid("q");
    get(format!("/api/rooms/{lobby}/search?q={}", "x".repeat(201))).await.expect_invalid("q");
    let found = get(format!("/api/rooms/{lobby}/search?q=%22hello%22%20OR%20NEAR(")).await;
    assert_eq!(found.expect_status(StatusCode::OK), &json!({ "items": [] }), "search syntax is only words");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_page_by_id_with_tokens_bound_to_the_room() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let cat = app.register("cat@example.org").await;
    let lobby = create_room(&app, &ann, "lobby", "public").await;
    let other = create_room(&app, &ann, "other", "public").await;
    for who in [&bob, &cat] {
        app.post_authed(&format!("/api/rooms/{lobby}/join"), &who.auth_token, None).await.expect_status(StatusCode::OK);
    }
    let mut expected = vec![ann.user_id.clone(), bob.user_id.clone(), cat.user_id.clone()];
    expected.sort();

    let first = app.get_authed(&format!("/api/rooms/{lobby}/members?page_size=2"), &cat.auth_token).await;
    let first = first.expect_status(StatusCode::OK).clone();
    let token = first["page_token"].as_str().expect("a second page").to_owned();
    let second =
        app.get_authed(&format!("/api/rooms/{lobby}/members?page_size=2&page_token={token}"), &cat.auth_token).await;
    let second = second.expect_status(StatusCode::OK).clone();
    assert_eq!(second["page_token"], Value::Null);
    let ids: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|page| page["items"].as_array().expect("items").clone())
        .map(|member| member["user_id"].as_str().expect("user_id").to_owned())
        .collect();
    assert_eq!(ids, expected);
    let moderators: Vec<bool> = [&first, &second]
        .iter()
        .flat_map(|page| page["items"].as_array().expect("items").clone())
        .map(|member| member["moderator"].as_bool().expect("moderator"))
        .collect();
    assert_eq!(moderators.iter().filter(|m| **m).count(), 1, "ann moderates");

    // A token of one room is no good for another.
    app.get_authed(&format!("/api/rooms/{other}/members?page_token={token}"), &ann.auth_token)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_page_token");
}
