//! Administrators in rooms (issue 25): every room listed, private ones too; a room's posts read
//! (audited); a post deleted with a reason (audited, and pushed to the members as
//! `delete_post`); refusals audited too; one-time links to the admin page (`POST /admin/links`,
//! `POST /admin/links/redeem`): single use, 60 seconds, for the same key, audited.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin::{Keys, SqliteOnly, audit, fingerprint, list_admins, public_line, sign_in};
use crate::channels::Peer;
use crate::harness::{TestApp, assert_keys, spawn_app, str_field};
use crate::rooms::create_room;

/// A server with one administrator signed in: the app, the admin token, the key's fingerprint.
async fn app_with_admin() -> (TestApp, String, String, Keys) {
    let app = spawn_app().await;
    let keys = Keys::new();
    let key: PathBuf = keys.make("admin", "ed25519");
    list_admins(&app, &[public_line(&key)]);
    let token = sign_in(&app, &key).await;
    (app, token, fingerprint(&key), keys)
}

/// The newest audit entry, checked to be `action` by `fingerprint` with `outcome`.
async fn newest(app: &TestApp, token: &str, action: &str, fingerprint: &str, outcome: &str) -> Value {
    let entry = audit(app, token).await.first().cloned().expect("an entry");
    assert_eq!(
        (&entry["action"], &entry["fingerprint"], &entry["outcome"]),
        (&json!(action), &json!(fingerprint), &json!(outcome)),
        "{entry}"
    );
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_every_room_and_read_a_private_one_audited() {
    let (app, token, key, _keys) = app_with_admin().await;
    let (ann, bob) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let lobby = create_room(&app, &ann, "lobby", "public").await;
    let secret = create_room(&app, &bob, "secret", "private").await;
    let mut bob_peer = Peer::connect(&app, &bob).await;
    let topic = format!("room:{secret}");
    bob_peer.ok(&topic, "phx_join", json!({})).await;
    for text in ["first", "second", "third"] {
        bob_peer.ok(&topic, "post", json!({ "text": text })).await;
    }

    let reply = app.get_authed("/admin/rooms", &token).await;
    let listed = reply.expect_status(StatusCode::OK).clone();
    assert_keys(&listed, &["items", "page_token"]);
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.iter().map(|room| room["id"].clone()).collect::<Vec<_>>(), [json!(lobby), json!(secret)]);
    assert_keys(
        &items[1],
        &["id", "inserted_at", "last_post_at", "members", "moderators", "name", "topic", "updated_at", "visibility"],
    );
    assert_eq!((&items[1]["visibility"], &items[1]["members"]), (&json!("private"), &json!(1)));
    assert_eq!(items[1]["moderators"], json!([{ "user_id": bob.user_id, "email": "bob@example.org" }]));
    assert!(items[1]["last_post_at"].is_string());
    assert_eq!(items[0]["last_post_at"], Value::Null);
    let found = app.get_authed("/admin/rooms?query=SECR", &token).await;
    assert_eq!(found.expect_status(StatusCode::OK)["items"][0]["id"], json!(secret));
    let first = app.get_authed("/admin/rooms?page_size=1", &token).await.expect_status(StatusCode::OK).clone();
    let next = format!("/admin/rooms?page_size=1&page_token={}", str_field(&first, "page_token"));
    let second = app.get_authed(&next, &token).await.expect_status(StatusCode::OK).clone();
    assert_eq!((&second["items"][0]["id"], &second["page_token"]), (&json!(secret), &Value::Null));
    let bad_token = app.get_authed("/admin/rooms?page_token=nonsense", &token).await;
    bad_token.expect_error(StatusCode::BAD_REQUEST, "invalid_page_token");

    // The private room's posts, newest first, in the members' page shape; each read audited.
    let path = format!("/admin/rooms/{secret}/messages");
    let page = app.get_authed(&format!("{path}?page_size=2"), &token).await.expect_status(StatusCode::OK).clone();
    assert_keys(&page, &["items", "page_token", "senders"]);
    let sender = str_field(&page["items"][0], "sender");
    assert_eq!(page["senders"], json!({ sender: "bob@example.org" }), "who sent the page's posts");
    let texts = |page: &Value| page["items"].as_array().expect("items").iter().map(|p| p["text"].clone()).collect();
    assert_eq!(texts(&page), vec![json!("third"), json!("second")]);
    assert_keys(&page["items"][0], &["id", "room_id", "sender", "text", "inserted_at", "updated_at"]);
    let entry = newest(&app, &token, "room.read", &key, "ok").await;
    assert_eq!(entry["target"], json!(format!("room:{secret} (secret)")));
    let rest = format!("{path}?page_size=2&page_token={}", str_field(&page, "page_token"));
    let rest = app.get_authed(&rest, &token).await.expect_status(StatusCode::OK).clone();
    assert_eq!((texts(&rest), &rest["page_token"]), (vec![json!("first")], &Value::Null));
    // A member's page token is not an administrator's, and the other way round.
    let members = app.get_authed(&format!("/api/rooms/{secret}/messages?page_size=1"), &bob.auth_token).await;
    let members_token = str_field(members.expect_status(StatusCode::OK), "page_token");
    let mixed = app.get_authed(&format!("{path}?page_token={members_token}"), &token).await;
    mixed.expect_error(StatusCode::BAD_REQUEST, "invalid_page_token");

    // A room that does not exist, and an id that is none: 404 (audited, refused) and 422.
    let unknown = uuid::Uuid::now_v7();
    let missing = app.get_authed(&format!("/admin/rooms/{unknown}/messages"), &token).await;
    missing.expect_error(StatusCode::NOT_FOUND, "not_found");
    let entry = newest(&app, &token, "room.read", &key, "refused").await;
    assert_eq!((&entry["target"], &entry["reason"]), (&json!(format!("room:{unknown}")), &json!("No such room.")));
    app.get_authed("/admin/rooms/not-a-room/messages", &token).await.expect_invalid("id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_deletion_reaches_the_members_and_is_audited_refusals_too() {
    let (app, token, key, _keys) = app_with_admin().await;
    let (ann, bob) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let room = create_room(&app, &ann, "lobby", "public").await;
    app.post_authed(&format!("/api/rooms/{room}/join"), &bob.auth_token, None).await.expect_status(StatusCode::OK);
    let topic = format!("room:{room}");
    let (mut ann_peer, mut bob_peer) = (Peer::connect(&app, &ann).await, Peer::connect(&app, &bob).await);
    ann_peer.ok(&topic, "phx_join", json!({})).await;
    bob_peer.ok(&topic, "phx_join", json!({})).await;
    let spam = bob_peer.ok(&topic, "post", json!({ "text": "buy cheap watches" })).await;
    ann_peer.expect(&topic, "new_post").await;
    let post_id = str_field(&spam, "id");
    let path = format!("/admin/rooms/{room}/messages/{post_id}");

    // Without a reason: 422, nothing deleted, and the refusal is in the log.
    for body in [json!({}), json!({ "reason": " " })] {
        app.delete_authed(&path, &token, Some(&body)).await.expect_invalid("reason");
    }
    let entry = newest(&app, &token, "room.message.delete", &key, "refused").await;
    assert!(str_field(&entry, "reason").contains("invalid reason"), "{entry}");

    let reply = app.delete_authed(&path, &token, Some(&json!({ "reason": "spam" }))).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    // Every member hears it, the sender too, as when a moderator deletes.
    assert_eq!(ann_peer.expect(&topic, "delete_post").await, json!({ "message_id": post_id }));
    assert_eq!(bob_peer.expect(&topic, "delete_post").await, json!({ "message_id": post_id }));
    let history = app.get_authed(&format!("/api/rooms/{room}/messages"), &ann.auth_token).await;
    assert_eq!(history.expect_status(StatusCode::OK)["items"], json!([]));
    let entry = newest(&app, &token, "room.message.delete", &key, "ok").await;
    assert_eq!(entry["reason"], "spam");
    assert_eq!(entry["target"], json!(format!("room:{room} (lobby) message:{post_id}")));

    // Deleting it again, or in a room that does not exist: 404, audited as refused.
    let again = app.delete_authed(&path, &token, Some(&json!({ "reason": "spam" }))).await;
    again.expect_error(StatusCode::NOT_FOUND, "not_found");
    let entry = newest(&app, &token, "room.message.delete", &key, "refused").await;
    assert_eq!(entry["reason"], "no post with this id in this room");
    let elsewhere = format!("/admin/rooms/{}/messages/{post_id}", uuid::Uuid::now_v7());
    let missing = app.delete_authed(&elsewhere, &token, Some(&json!({ "reason": "spam" }))).await;
    missing.expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(newest(&app, &token, "room.message.delete", &key, "refused").await["reason"], "No such room.");
    let malformed = format!("/admin/rooms/{room}/messages/not-a-post");
    app.delete_authed(&malformed, &token, Some(&json!({ "reason": "spam" }))).await.expect_invalid("message_id");

    // A failed account action is audited too.
    let nobody = uuid::Uuid::now_v7();
    let disable = format!("/admin/users/{nobody}/disable");
    let reply = app.post_authed(&disable, &token, Some(&json!({ "reason": "x" }))).await;
    reply.expect_error(StatusCode::NOT_FOUND, "not_found");
    let entry = newest(&app, &token, "user.disable", &key, "refused").await;
    assert_eq!((&entry["target"], &entry["reason"]), (&json!(format!("user:{nobody}")), &json!("No such account.")));
    let verified = app.get_authed("/admin/audit/verify", &token).await;
    assert_eq!(verified.expect_status(StatusCode::OK)["verified"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_token_is_refused_on_every_room_and_link_route() {
    let (app, _token, _, _keys) = app_with_admin().await;
    let ann = app.register("ann@example.org").await;
    let room = create_room(&app, &ann, "mine", "private").await;
    let post = uuid::Uuid::now_v7();
    let replies = [
        app.get_authed("/admin/rooms", &ann.auth_token).await,
        app.get_authed(&format!("/admin/rooms/{room}/messages"), &ann.auth_token).await,
        app.delete_authed(
            &format!("/admin/rooms/{room}/messages/{post}"),
            &ann.auth_token,
            Some(&json!({ "reason": "x" })),
        )
        .await,
        app.post_authed("/admin/links", &ann.auth_token, None).await,
    ];
    for reply in replies {
        reply.expect_error(StatusCode::FORBIDDEN, "admin_token_required");
    }
    // Without any token: 401.
    app.get("/admin/rooms").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let unsigned = app.send(app.request(reqwest::Method::POST, "/admin/links", None)).await;
    unsigned.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn redeem(app: &TestApp, code: &str) -> crate::harness::Reply {
    app.post("/admin/links/redeem", &json!({ "code": code })).await
}

/// A new link's code, checked to be `<public URL>/admin#<code>`.
async fn new_link(app: &TestApp, token: &str) -> String {
    let reply = app.post_authed("/admin/links", token, None).await;
    let link = reply.expect_status(StatusCode::CREATED).clone();
    assert_keys(&link, &["expires_at", "url"]);
    let url = str_field(&link, "url");
    let code = url.strip_prefix(&format!("{}/admin#", app.base_url)).unwrap_or_else(|| panic!("{url}"));
    assert_eq!(code.len(), 43, "32 random bytes, base64url");
    let expires_at = chrono::DateTime::parse_from_rfc3339(&str_field(&link, "expires_at")).expect("RFC 3339");
    let lifetime = expires_at.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((50..=60).contains(&lifetime), "{lifetime} s");
    code.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_signs_in_once_as_the_same_key_within_a_minute() {
    let (app, token, key, _keys) = app_with_admin().await;
    let mut codes = Vec::new();
    let code = new_link(&app, &token).await;
    codes.push(code.clone());
    assert_eq!(newest(&app, &token, "admin.link.create", &key, "ok").await["reason"], Value::Null);

    let reply = redeem(&app, &code).await;
    let login = reply.expect_status(StatusCode::OK).clone();
    assert_keys(&login, &["admin_token", "expires_at", "fingerprint"]);
    assert_eq!(login["fingerprint"], json!(key));
    let fresh = str_field(&login, "admin_token");
    assert_ne!(fresh, token);
    app.get_authed("/admin/rooms", &fresh).await.expect_status(StatusCode::OK);
    newest(&app, &fresh, "admin.link.redeem", &key, "ok").await;

    // Single use (a spent link names no key any more: it is refused as an unknown one).
    let again = redeem(&app, &code).await;
    let message = str_field(again.expect_error(StatusCode::UNAUTHORIZED, "unauthorized"), "message");
    assert!(message.contains("hearth admin open"), "{message}");
    let entry = audit(&app, &fresh).await.first().cloned().expect("an entry");
    assert_eq!((&entry["action"], &entry["outcome"]), (&json!("admin.link.redeem"), &json!("refused")));
    assert!(str_field(&entry, "reason").contains("used, expired or unknown"), "{entry}");

    // Expired: its 60 seconds spent (moved back in the database rather than waited for).
    let code = new_link(&app, &token).await;
    codes.push(code.clone());
    let SqliteOnly(pool) = SqliteOnly::open(&app).await;
    sqlx::query("UPDATE admin_links SET expires_at = expires_at - 61000").execute(&pool).await.expect("age");
    redeem(&app, &code).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");

    // Unknown codes, of the right length or not, are refused alike and audited without a key.
    for made_up in ["A".repeat(43), "short".to_owned()] {
        let reply = redeem(&app, &made_up).await;
        let message = str_field(reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized"), "message");
        assert_eq!(
            message,
            "This sign-in link is used, expired or unknown: run hearth admin open again for a new one."
        );
        let entry = audit(&app, &fresh).await.first().cloned().expect("an entry");
        assert_eq!(
            (&entry["action"], &entry["outcome"], &entry["fingerprint"]),
            (&json!("admin.link.redeem"), &json!("refused"), &Value::Null)
        );
    }
    redeem(&app, "").await.expect_invalid("code");
    app.post("/admin/links/redeem", &json!({})).await.expect_invalid("code");

    // A link whose key was taken off the list signs nobody in.
    let code = new_link(&app, &token).await;
    codes.push(code.clone());
    list_admins(&app, &[]);
    let reply = redeem(&app, &code).await;
    let message = str_field(reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized"), "message");
    assert!(message.contains("no longer an administrator's key"), "{message}");

    // No code reached the server's log or the audit log.
    let log = crate::harness::captured_log();
    let entries = serde_json::to_string(&audit(&app, &token).await).expect("JSON");
    for code in codes {
        assert!(!log.contains(&code) && !entries.contains(&code), "a link's code was kept");
    }
}
