//! Presence on system:general: who sees whom (only people sharing a conversation or a room, and
//! oneself), hidden users shown to nobody, one key per user with a meta per device.

use serde_json::{Value, json};

use crate::channels::{Peer, jwk};
use crate::harness::{PASSWORD, spawn_app};

/// The next presence_diff that concerns `user` (others, e.g. one's own devices, are skipped).
async fn diff_about(peer: &mut Peer, user: &str) -> Value {
    loop {
        let diff = peer.expect("system:general", "presence_diff").await;
        if diff["joins"].get(user).is_some() || diff["leaves"].get(user).is_some() {
            return diff;
        }
    }
}

fn keys(state: &Value) -> Vec<String> {
    let mut keys: Vec<String> = state.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_follows_the_privacy_rules() {
    let app = spawn_app().await;
    let (ann_s, bob_s, carol_s) = (
        app.register("ann@example.org").await,
        app.register("bob@example.org").await,
        app.register("carol@example.org").await,
    );
    // Peer::connect joins system:general; the presence_state that follows shows only oneself.
    let mut ann = Peer::connect(&app, &ann_s).await;
    assert_eq!(keys(&ann.expect("system:general", "presence_state").await), vec![ann.id.clone()]);
    let mut bob = Peer::connect(&app, &bob_s).await;
    let bob_state = bob.expect("system:general", "presence_state").await;
    assert_eq!(keys(&bob_state), vec![bob.id.clone()], "strangers are not shown");
    let mut carol = Peer::connect(&app, &carol_s).await;
    carol.expect("system:general", "presence_state").await;

    // Sharing a conversation introduces ann and bob to each other, not to carol.
    ann.ok(
        "system:general",
        "start_private_conversation",
        json!({"other_user_id": bob.id, "public_key": jwk("a"), "private_key": {}}),
    )
    .await;
    let seen_by_ann = diff_about(&mut ann, &bob.id).await;
    assert!(seen_by_ann["joins"].get(&bob.id).is_some(), "{seen_by_ann}");
    let seen_by_bob = diff_about(&mut bob, &ann.id).await;
    let metas = &seen_by_bob["joins"][&ann.id]["metas"];
    assert_eq!(metas.as_array().map(Vec::len), Some(1));
    assert!(metas[0]["phx_ref"].as_str().is_some_and(|r| r.len() == 16));

    // A second device of ann: one key, two metas, for bob.
    let ann_phone = app.login_ok(&ann_s.email, PASSWORD).await;
    let mut phone = Peer::connect(&app, &ann_phone).await;
    let phone_state = phone.expect("system:general", "presence_state").await;
    assert_eq!(keys(&phone_state), {
        let mut both = vec![ann.id.clone(), bob.id.clone()];
        both.sort();
        both
    });
    assert_eq!(phone_state[&ann.id]["metas"].as_array().map(Vec::len), Some(2));
    let phone_join = diff_about(&mut bob, &ann.id).await;
    assert_eq!(phone_join["joins"][&ann.id]["metas"].as_array().map(Vec::len), Some(1), "only the new meta");

    // Hiding is a leave of every meta for others; showing again, a join.
    bob.ok("system:general", "phx_join", json!({})).await; // rejoin: fresh state, same rules
    bob.expect("system:general", "presence_state").await;
    ann.ok("system:general", "set_hidden", json!({"hidden": true})).await;
    let hidden = diff_about(&mut bob, &ann.id).await;
    assert_eq!(hidden["leaves"][&ann.id]["metas"].as_array().map(Vec::len), Some(2), "{hidden}");
    assert_eq!(hidden["joins"], json!({}));
    let fresh = app.login_ok(&bob_s.email, PASSWORD).await;
    let mut bob2 = Peer::connect(&app, &fresh).await;
    let state = bob2.expect("system:general", "presence_state").await;
    assert!(state.get(&ann.id).is_none(), "hidden users are in nobody's state: {state}");
    ann.ok("system:general", "set_hidden", json!({"hidden": false})).await;
    let shown = diff_about(&mut bob, &ann.id).await;
    assert_eq!(shown["joins"][&ann.id]["metas"].as_array().map(Vec::len), Some(2));

    // A socket that goes away is a leave.
    drop(phone);
    let gone = diff_about(&mut bob, &ann.id).await;
    assert_eq!(gone["leaves"][&ann.id]["metas"].as_array().map(Vec::len), Some(1), "{gone}");

    // carol, sharing nothing, never saw ann or bob.
    let carol_again = app.login_ok(&carol_s.email, PASSWORD).await;
    let mut carol2 = Peer::connect(&app, &carol_again).await;
    let carol_state = carol2.expect("system:general", "presence_state").await;
    assert_eq!(keys(&carol_state), vec![carol.id.clone()]);
    drop(carol);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_a_room_see_each_other_and_nobody_else_does() {
    let app = spawn_app().await;
    let (ann_s, bob_s, carol_s) = (
        app.register("ann@example.org").await,
        app.register("bob@example.org").await,
        app.register("carol@example.org").await,
    );
    let room = crate::rooms::create_room(&app, &ann_s, "lobby", "public").await;
    let mut ann = Peer::connect(&app, &ann_s).await;
    ann.expect("system:general", "presence_state").await;
    let mut bob = Peer::connect(&app, &bob_s).await;
    assert_eq!(keys(&bob.expect("system:general", "presence_state").await), vec![bob.id.clone()]);

    // Bob joins the room: he and ann are shown to each other.
    let joined = app.post_authed(&format!("/api/rooms/{room}/join"), &bob_s.auth_token, None).await;
    joined.expect_status(reqwest::StatusCode::OK);
    assert!(diff_about(&mut ann, &bob.id).await["joins"].get(&bob.id).is_some());
    assert!(diff_about(&mut bob, &ann.id).await["joins"].get(&ann.id).is_some());

    // Carol, in no room of theirs, sees neither; and a reconnecting member sees the room's.
    let mut carol = Peer::connect(&app, &carol_s).await;
    assert_eq!(keys(&carol.expect("system:general", "presence_state").await), vec![carol.id.clone()]);
    let mut bob_again = Peer::connect(&app, &app.login_ok(&bob_s.email, PASSWORD).await).await;
    let state = bob_again.expect("system:general", "presence_state").await;
    assert_eq!(keys(&state), {
        let mut both = vec![ann.id.clone(), bob.id.clone()];
        both.sort();
        both
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_bigger_than_rooms_presence_max_members_shares_no_presence() {
    let app = crate::harness::spawn_app_with(|settings| settings.rooms.presence_max_members = 2).await;
    let (ann_s, bob_s, carol_s) = (
        app.register("ann@example.org").await,
        app.register("bob@example.org").await,
        app.register("carol@example.org").await,
    );
    let room = crate::rooms::create_room(&app, &ann_s, "lobby", "public").await;
    let join = format!("/api/rooms/{room}/join");
    app.post_authed(&join, &bob_s.auth_token, None).await.expect_status(reqwest::StatusCode::OK);
    let mut bob = Peer::connect(&app, &bob_s).await;
    bob.expect("system:general", "presence_state").await;
    let mut ann = Peer::connect(&app, &ann_s).await;
    let mut both = vec![ann.id.clone(), bob.id.clone()];
    both.sort();
    assert_eq!(keys(&ann.expect("system:general", "presence_state").await), both, "two members: shared");

    // A third member makes the room too big: each sees only themselves from now on.
    app.post_authed(&join, &carol_s.auth_token, None).await.expect_status(reqwest::StatusCode::OK);
    let mut carol = Peer::connect(&app, &carol_s).await;
    assert_eq!(keys(&carol.expect("system:general", "presence_state").await), vec![carol.id.clone()]);
    let mut ann_again = Peer::connect(&app, &app.login_ok(&ann_s.email, PASSWORD).await).await;
    assert_eq!(keys(&ann_again.expect("system:general", "presence_state").await), vec![ann.id.clone()]);
}
