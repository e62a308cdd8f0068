//! `room:{id}` over a real socket: joining (members only), posting, editing, deleting
//! (sender or moderator), typing and read marks, members joining and leaving, and every
//! refusal; what is posted is what REST pages and search return; `@assistant` answered in
//! the room.

use hearth_ai::{ApiKey, ProviderName};
use hearth_fake_provider::FakeProvider;
use reqwest::StatusCode;
use serde_json::json;

use crate::assistant::{ASSISTANT, fake_key, spawn_with_fake};
use crate::channels::Peer;
use crate::harness::{TestApp, assert_keys, spawn_app};
use crate::rooms::create_room;
use crate::socket_client::next_json;

async fn history(app: &TestApp, token: &str, room: &str) -> Vec<String> {
    let page = app.get_authed(&format!("/api/rooms/{room}/messages"), token).await;
    let items = page.expect_status(StatusCode::OK)["items"].as_array().expect("items").clone();
    items.iter().map(|post| post["text"].as_str().expect("text").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_post_edit_and_delete_and_the_room_hears_it() {
    let app = spawn_app().await;
    let (ann_s, bob_s, cat_s) = (
        app.register("ann@example.org").await,
        app.register("bob@example.org").await,
        app.register("cat@example.org").await,
    );
    let room = create_room(&app, &ann_s, "lobby", "public").await;
    let topic = format!("room:{room}");
    let (mut ann, mut bob, mut cat) =
        (Peer::connect(&app, &ann_s).await, Peer::connect(&app, &bob_s).await, Peer::connect(&app, &cat_s).await);

    // Outside the room: refused, though the room is public.
    assert_eq!(cat.refused(&topic, "phx_join", json!({})).await, "you are not a member of this room");
    let joined = ann.ok(&topic, "phx_join", json!({})).await;
    assert_keys(&joined, &["room", "members", "member_count", "messages"]);
    assert_eq!(joined["member_count"], json!(1));
    assert_eq!(joined["room"]["id"], json!(room));
    assert_eq!(joined["members"], json!([{ "user_id": ann.id, "moderator": true, "read_at": null }]));
    assert_eq!(joined["messages"], json!({ "items": [], "page_token": null }));

    app.post_authed(&format!("/api/rooms/{room}/join"), &bob_s.auth_token, None).await.expect_status(StatusCode::OK);
    assert_eq!(ann.expect(&topic, "member_joined").await, json!({ "user_id": bob.id }));
    let bob_joined = bob.ok(&topic, "phx_join", json!({})).await;
    assert_eq!(bob_joined["members"].as_array().map(Vec::len), Some(2));

    // Posting: acknowledged with the stored post, pushed to the room.
    let posted = ann.ok(&topic, "post", json!({ "text": "hello room", "client_msg_id": "c1" })).await;
    assert_keys(&posted, &["id", "room_id", "sender", "text", "inserted_at", "updated_at"]);
    assert_eq!((&posted["sender"], &posted["text"]), (&json!(ann.id), &json!("hello room")));
    assert_eq!(bob.expect(&topic, "new_post").await, posted);
    // A resend of the same client id is the same post, stored once.
    let again = ann.ok(&topic, "post", json!({ "text": "hello room", "client_msg_id": "c1" })).await;
    assert_eq!(again["id"], posted["id"]);
    assert_eq!(history(&app, &ann_s.auth_token, &room).await, ["hello room"]);

    // Text: 1 to 4 000 characters.
    for text in [json!(""), json!("   "), json!("x".repeat(4001))] {
        let refusal = bob.refused(&topic, "post", json!({ "text": text })).await;
        assert_eq!(refusal, "text must be 1 to 4000 characters");
    }
    assert!(bob.refused(&topic, "post", json!({ "words": "hi" })).await.contains("text"));
    let longest = bob.ok(&topic, "post", json!({ "text": "y".repeat(4000) })).await;
    assert_eq!(ann.expect(&topic, "new_post").await["id"], longest["id"]);

    // Editing: the sender's only.
    let post_id = posted["id"].clone();
    let refusal = bob.refused(&topic, "edit_post", json!({ "message_id": post_id, "text": "mine" })).await;
    assert_eq!(refusal, "no post of yours with this id in this room");
    let edited = ann.ok(&topic, "edit_post", json!({ "message_id": post_id, "text": "hello, room" })).await;
    assert_eq!(edited["text"], "hello, room");
    assert_eq!(bob.expect(&topic, "edit_post").await, edited);

    // Deleting: the sender's own, or anyone's for a moderator.
    let refusal = bob.refused(&topic, "delete_post", json!({ "message_id": post_id })).await;
    assert_eq!(refusal, "only the sender or a moderator may delete a post");
    let deleted = ann.ok(&topic, "delete_post", json!({ "message_id": longest["id"] })).await;
    assert_eq!(deleted, json!({ "message_id": longest["id"] }));
    assert_eq!(bob.expect(&topic, "delete_post").await, deleted);
    let bobs = bob.ok(&topic, "post", json!({ "text": "oops" })).await;
    ann.expect(&topic, "new_post").await;
    bob.ok(&topic, "delete_post", json!({ "message_id": bobs["id"] })).await;
    assert_eq!(ann.expect(&topic, "delete_post").await, json!({ "message_id": bobs["id"] }));
    let gone = ann.refused(&topic, "delete_post", json!({ "message_id": bobs["id"] })).await;
    assert_eq!(gone, "no post with this id in this room");
    assert_eq!(history(&app, &bob_s.auth_token, &room).await, ["hello, room"]);

    // Typing and reading.
    bob.ok(&topic, "start_typing", json!({})).await;
    assert_eq!(ann.expect(&topic, "start_typing").await, json!({ "user_id": bob.id }));
    bob.ok(&topic, "finish_typing", json!({})).await;
    assert_eq!(ann.expect(&topic, "finish_typing").await, json!({ "user_id": bob.id }));
    bob.ok(&topic, "read_room", json!({})).await;
    let read = ann.expect(&topic, "read_room").await;
    assert_eq!(read["user_id"], json!(bob.id));
    assert!(read["read_at"].is_string());
    assert!(bob.refused(&topic, "shout", json!({})).await.contains("unknown event"));

    // What the channel stored is what REST finds.
    let found = app.get_authed(&format!("/api/rooms/{room}/search?q=ROOM"), &bob_s.auth_token).await;
    let found = found.expect_status(StatusCode::OK)["items"].clone();
    assert_eq!(
        found.as_array().map(|items| items.iter().map(|p| p["id"].clone()).collect::<Vec<_>>()),
        Some(vec![post_id])
    );
}

/// A room of 70, more than one batch of the fan-out's direct writes (64): two members post at
/// once, and every other member's socket gets each post exactly once, each poster's in the
/// order posted. (The posters' own sockets pass pushes by while they wait for their replies.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_reach_every_member_of_a_room_larger_than_a_batch_once_each_and_in_order() {
    let app = spawn_app().await;
    let host = app.register("host@example.org").await;
    let room = create_room(&app, &host, "hall", "public").await;
    let topic = format!("room:{room}");
    let mut sessions = vec![host];
    for guest in 0..69 {
        let session = app.register(&format!("guest{guest}@example.org")).await;
        let join = app.post_authed(&format!("/api/rooms/{room}/join"), &session.auth_token, None).await;
        join.expect_status(StatusCode::OK);
        sessions.push(session);
    }
    let mut peers = Vec::new();
    for session in &sessions {
        let mut peer = Peer::connect(&app, session).await;
        peer.ok(&topic, "phx_join", json!({})).await;
        peers.push(peer);
    }

    let mut posters = peers.drain(..2).collect::<Vec<_>>();
    let [first, second] = posters.as_mut_slice() else { unreachable!("two posters") };
    async fn post_three(peer: &mut Peer, topic: &str, name: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for n in 1..=3 {
            let posted = peer.ok(topic, "post", json!({ "text": format!("{name} {n}") })).await;
            ids.push(posted["id"].as_str().expect("id").to_owned());
        }
        ids
    }
    let (firsts, seconds) = tokio::join!(post_three(first, &topic, "first"), post_three(second, &topic, "second"));

    let mut all: Vec<&String> = firsts.iter().chain(&seconds).collect();
    all.sort();
    for peer in &mut peers {
        let mut heard = Vec::new();
        for _ in 0..6 {
            heard.push(peer.expect(&topic, "new_post").await["id"].as_str().expect("id").to_owned());
        }
        let in_order = |ids: &[String]| heard.iter().filter(|id| ids.contains(id)).cloned().collect::<Vec<_>>();
        assert_eq!(in_order(&firsts), firsts, "the first poster's posts in order");
        assert_eq!(in_order(&seconds), seconds, "the second poster's posts in order");
        let mut once: Vec<&String> = heard.iter().collect();
        once.sort();
        assert_eq!(once, all, "each post exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_leaves_is_cut_off_and_outsiders_learn_nothing() {
    let app = spawn_app().await;
    let (ann_s, bob_s, cat_s) = (
        app.register("ann@example.org").await,
        app.register("bob@example.org").await,
        app.register("cat@example.org").await,
    );
    let secret = create_room(&app, &ann_s, "secret", "private").await;
    let topic = format!("room:{secret}");
    let add = json!({ "user_ids": [bob_s.user_id] });
    app.post_authed(&format!("/api/rooms/{secret}/members"), &ann_s.auth_token, Some(&add))
        .await
        .expect_status(StatusCode::OK);
    let (mut ann, mut bob, mut cat) =
        (Peer::connect(&app, &ann_s).await, Peer::connect(&app, &bob_s).await, Peer::connect(&app, &cat_s).await);
    ann.ok(&topic, "phx_join", json!({})).await;
    bob.ok(&topic, "phx_join", json!({})).await;

    // Someone outside a private room: the answer a room that does not exist gets.
    let unknown = format!("room:{}", uuid::Uuid::now_v7());
    assert_eq!(cat.refused(&topic, "phx_join", json!({})).await, "room not found");
    assert_eq!(cat.refused(&unknown, "phx_join", json!({})).await, "room not found");
    assert!(cat.refused("room:not-a-uuid", "phx_join", json!({})).await.contains("unknown topic"));

    bob.ok(&topic, "post", json!({ "text": "bye" })).await;
    ann.expect(&topic, "new_post").await;
    app.post_authed(&format!("/api/rooms/{secret}/leave"), &bob_s.auth_token, None)
        .await
        .expect_status(StatusCode::NO_CONTENT);
    assert_eq!(ann.expect(&topic, "member_left").await, json!({ "user_id": bob.id }));
    // Bob's channel ends, and he cannot join it again.
    bob.expect(&topic, "phx_close").await;
    assert_eq!(bob.refused(&topic, "phx_join", json!({})).await, "room not found");
    ann.ok(&topic, "post", json!({ "text": "after bob" })).await;
    assert_eq!(history(&app, &ann_s.auth_token, &secret).await, ["after bob", "bye"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoever_is_added_joins_or_makes_a_room_hears_of_it_on_every_device() {
    let app = spawn_app().await;
    let (ann_s, bob_s) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let (mut ann, mut bob) = (Peer::connect(&app, &ann_s).await, Peer::connect(&app, &bob_s).await);
    let (ann_user, bob_user) = (format!("user:{}", ann.id), format!("user:{}", bob.id));

    let secret = create_room(&app, &ann_s, "secret", "private").await;
    let made = ann.expect(&ann_user, "new_room").await;
    assert_eq!((made["id"].clone(), made["moderator"].clone()), (json!(secret), json!(true)));
    let add = json!({ "user_ids": [bob_s.user_id] });
    app.post_authed(&format!("/api/rooms/{secret}/members"), &ann_s.auth_token, Some(&add))
        .await
        .expect_status(StatusCode::OK);
    let added = bob.expect(&bob_user, "new_room").await;
    assert_eq!(added["id"], json!(secret));
    assert_eq!(
        (added["name"].clone(), added["joined"].clone(), added["moderator"].clone()),
        (json!("secret"), json!(true), json!(false))
    );

    let lobby = create_room(&app, &ann_s, "lobby", "public").await;
    app.post_authed(&format!("/api/rooms/{lobby}/join"), &bob_s.auth_token, None).await.expect_status(StatusCode::OK);
    assert_eq!(bob.expect(&bob_user, "new_room").await["id"], json!(lobby));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_last_moderator_leaves_the_longest_member_moderates() {
    let app = spawn_app().await;
    let (ann_s, bob_s, cat_s) = (
        app.register("ann@example.org").await,
        app.register("bob@example.org").await,
        app.register("cat@example.org").await,
    );
    let secret = create_room(&app, &ann_s, "secret", "private").await;
    let topic = format!("room:{secret}");
    let add = |who: &str| json!({ "user_ids": [who] });
    let members = format!("/api/rooms/{secret}/members");
    app.post_authed(&members, &ann_s.auth_token, Some(&add(&bob_s.user_id))).await.expect_status(StatusCode::OK);
    let mut bob = Peer::connect(&app, &bob_s).await;
    bob.ok(&topic, "phx_join", json!({})).await;
    // Not a moderator yet.
    app.post_authed(&members, &bob_s.auth_token, Some(&add(&cat_s.user_id)))
        .await
        .expect_error(StatusCode::FORBIDDEN, "not_a_moderator");

    app.post_authed(&format!("/api/rooms/{secret}/leave"), &ann_s.auth_token, None)
        .await
        .expect_status(StatusCode::NO_CONTENT);
    assert_eq!(bob.expect(&topic, "member_left").await, json!({ "user_id": ann_s.user_id }));
    assert_eq!(bob.expect(&topic, "moderator_appointed").await, json!({ "user_id": bob.id }));
    app.post_authed(&members, &bob_s.auth_token, Some(&add(&cat_s.user_id))).await.expect_status(StatusCode::OK);
    let listed = app.get_authed("/api/rooms", &bob_s.auth_token).await;
    let listed = listed.expect_status(StatusCode::OK)["items"][0].clone();
    assert_eq!((listed["id"].clone(), listed["moderator"].clone()), (json!(secret), json!(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_leaves_its_rooms_and_its_moderation_passes_on() {
    let app = spawn_app().await;
    let (ann_s, bob_s) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let lobby = create_room(&app, &ann_s, "lobby", "public").await;
    app.post_authed(&format!("/api/rooms/{lobby}/join"), &bob_s.auth_token, None).await.expect_status(StatusCode::OK);
    let topic = format!("room:{lobby}");
    let mut bob = Peer::connect(&app, &bob_s).await;
    bob.ok(&topic, "phx_join", json!({})).await;

    let password = json!({ "password": crate::harness::PASSWORD });
    let deleted = app.delete_authed("/api/account", &ann_s.auth_token, Some(&password)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_eq!(bob.expect(&topic, "member_left").await, json!({ "user_id": ann_s.user_id }));
    assert_eq!(bob.expect(&topic, "moderator_appointed").await, json!({ "user_id": bob.id }));
    let listed = app.get_authed("/api/rooms", &bob_s.auth_token).await;
    assert_eq!(listed.expect_status(StatusCode::OK)["items"][0]["moderator"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_answers_a_mention_in_the_room_on_the_askers_free_tier() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_fake(&fake, |settings| {
        let key = ApiKey::new(fake_key(ProviderName::Groq, "ok"));
        settings.keyguard.free_tier.keys.insert(ProviderName::Groq, vec![key]);
        // One free reply a day each: the second mention shows whose allowance answered.
        settings.ai.free_tier.text_per_day = 1;
    })
    .await;
    let (ann_s, bob_s) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let room = create_room(&app, &ann_s, "lobby", "public").await;
    app.post_authed(&format!("/api/rooms/{room}/join"), &bob_s.auth_token, None).await.expect_status(StatusCode::OK);
    let topic = format!("room:{room}");
    let (mut ann, mut bob) = (Peer::connect(&app, &ann_s).await, Peer::connect(&app, &bob_s).await);
    ann.ok(&topic, "phx_join", json!({})).await;
    bob.ok(&topic, "phx_join", json!({})).await;

    let question = bob.ok(&topic, "post", json!({ "text": "@assistant what is a room?" })).await;
    assert_eq!(ann.expect(&topic, "new_post").await["id"], question["id"]);
    // Streamed to every member, then stored as the assistant's post.
    let mut streamed = String::new();
    let answer = loop {
        let frame = next_json(&mut ann.socket).await;
        if frame[2] != json!(topic) {
            continue;
        }
        match frame[3].as_str() {
            Some("assistant_delta") => {
                let delta = &frame[4];
                assert_eq!(delta["prompt_id"], question["id"]);
                streamed.push_str(delta["delta"].as_str().expect("a delta"));
            }
            Some("new_post") => break frame[4].clone(),
            _ => {}
        }
    };
    assert_eq!(answer["sender"], ASSISTANT);
    assert!(!streamed.is_empty());
    assert_eq!(answer["text"], json!(streamed), "the post is what was streamed");
    let history = app.get_authed(&format!("/api/rooms/{room}/messages"), &ann_s.auth_token).await;
    let items = history.expect_status(StatusCode::OK)["items"].clone();
    assert_eq!(items[0]["id"], answer["id"]);
    assert_eq!(items[1]["id"], question["id"]);

    // Bob's free reply is spent; Ann still has hers.
    bob.ok(&topic, "post", json!({ "text": "@assistant and again?" })).await;
    let refused = ann.expect(&topic, "new_post").await;
    assert_eq!(refused["text"], "@assistant and again?");
    let refusal = loop {
        let post = ann.expect(&topic, "new_post").await;
        if post["sender"] == ASSISTANT {
            break post;
        }
    };
    assert!(refusal["text"].as_str().is_some_and(|text| text.contains("free")), "{refusal}");
    let hers = ann.ok(&topic, "post", json!({ "text": "@ASSISTANT hello" })).await;
    let mut deltas = 0;
    let answered = loop {
        let frame = next_json(&mut bob.socket).await;
        if frame[3] == "assistant_delta" && frame[4]["prompt_id"] == hers["id"] {
            deltas += 1;
        }
        if frame[3] == "new_post" && frame[4]["sender"] == ASSISTANT && frame[4]["id"] != refusal["id"] && deltas > 0 {
            break frame[4].clone();
        }
    };
    assert!(!answered["text"].as_str().is_some_and(|text| text.contains("free")), "{answered}");
}
