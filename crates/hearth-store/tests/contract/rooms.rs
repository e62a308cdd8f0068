//! Rooms: created with their creator as moderator, listed per person, members added and
//! removed, posts stored (once per client id, members only), edited by their sender, deleted,
//! paged newest first and found by full-text search.

use std::sync::Arc;

use hearth_store::{NewRoom, NewRoomMessage, Room, Store, StoreError, Timestamp};
use uuid::Uuid;

use crate::conversations::people;
use crate::is_not_found;

contract!(
    creator_is_the_first_member_and_moderator,
    rooms_of_lists_joined_and_public_rooms_only,
    add_members_reports_only_new_ones_and_refuses_unknown_users_whole,
    remove_and_mark_read_need_a_membership,
    the_last_moderator_leaving_hands_the_room_to_the_earliest_member,
    members_come_moderators_first_counted_and_paged_by_id,
    post_is_for_members_and_stored_once_per_client_id,
    assistant_posts_without_a_sender,
    edit_is_the_senders_only,
    delete_returns_the_message_and_it_is_gone,
    messages_page_newest_first_before_an_id,
    search_finds_whole_words_in_one_room_whatever_is_typed,
    deleting_a_user_removes_their_memberships_and_posts,
    room_partners_are_everyone_sharing_a_room_up_to_a_size,
    admins_list_every_room_with_counts_moderators_and_last_post,
);

async fn room(store: &Arc<dyn Store>, creator: Uuid, name: &str, public: bool, now: Timestamp) -> Room {
    let new = NewRoom {
        id: Uuid::now_v7(),
        name: name.to_owned(),
        topic: Some(format!("about {name}")),
        public,
        creator,
        now,
    };
    let created = store.create_room(&new).await.expect("create room");
    assert_eq!(
        created,
        Room { id: new.id, name: new.name, topic: new.topic, public, inserted_at: now, updated_at: now }
    );
    created
}

fn post(
    room_id: Uuid,
    sender_id: Option<Uuid>,
    text: &str,
    client_msg_id: Option<&str>,
    now: Timestamp,
) -> NewRoomMessage {
    NewRoomMessage {
        id: Uuid::now_v7(),
        room_id,
        sender_id,
        client_msg_id: client_msg_id.map(str::to_owned),
        text: text.to_owned(),
        now,
    }
}

async fn texts(store: &Arc<dyn Store>, room_id: Uuid) -> Vec<String> {
    let page = store.room_messages(room_id, None, 100).await.expect("messages");
    page.into_iter().map(|message| message.text).collect()
}

async fn creator_is_the_first_member_and_moderator(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann, bob] = people(&store, ["ann", "bob"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    assert_eq!(store.room(lobby.id).await.expect("room"), Some(lobby.clone()));
    assert_eq!(store.room(Uuid::now_v7()).await.expect("room"), None);
    let members = store.room_members(lobby.id, 100).await.expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user_id, ann.id);
    assert!(members[0].moderator);
    assert_eq!(store.room_member(lobby.id, bob.id).await.expect("member"), None);
    let unknown_creator =
        NewRoom { id: Uuid::now_v7(), name: "x".into(), topic: None, public: true, creator: Uuid::now_v7(), now };
    assert!(is_not_found(&store.create_room(&unknown_creator).await));
    assert_eq!(store.room(unknown_creator.id).await.expect("room"), None, "nothing of it stays");
}

async fn rooms_of_lists_joined_and_public_rooms_only(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann, bob, cat] = people(&store, ["ann", "bob", "cat"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    let secret = room(&store, ann.id, "secret", false, now).await;
    let bobs = room(&store, bob.id, "bobs", false, now).await;
    store.add_room_members(secret.id, &[cat.id], now).await.expect("add");

    let listed = |rooms: Vec<hearth_store::RoomOfUser>| {
        rooms.into_iter().map(|r| (r.room.name, r.joined, r.moderator)).collect::<Vec<_>>()
    };
    let of_ann = listed(store.rooms_of(ann.id, None, 50).await.expect("rooms"));
    assert_eq!(of_ann, [("lobby".to_owned(), true, true), ("secret".to_owned(), true, true)]);
    let of_bob = listed(store.rooms_of(bob.id, None, 50).await.expect("rooms"));
    assert_eq!(of_bob, [("lobby".to_owned(), false, false), ("bobs".to_owned(), true, true)]);
    let of_cat = listed(store.rooms_of(cat.id, None, 50).await.expect("rooms"));
    assert_eq!(of_cat, [("lobby".to_owned(), false, false), ("secret".to_owned(), true, false)]);
    // Paging by id.
    let first = store.rooms_of(ann.id, None, 1).await.expect("rooms");
    assert_eq!(first.len(), 1);
    let rest = store.rooms_of(ann.id, Some(first[0].room.id), 50).await.expect("rooms");
    assert_eq!(rest.iter().map(|r| r.room.id).collect::<Vec<_>>(), [secret.id]);
    let all = store.all_rooms(None, 50).await.expect("all rooms");
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [lobby.id, secret.id, bobs.id]);
}

async fn add_members_reports_only_new_ones_and_refuses_unknown_users_whole(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann, bob, cat] = people(&store, ["ann", "bob", "cat"], now).await;
    let secret = room(&store, ann.id, "secret", false, now).await;
    let added = store.add_room_members(secret.id, &[bob.id, ann.id], now).await.expect("add");
    assert_eq!(added.iter().map(|m| (m.user_id, m.moderator)).collect::<Vec<_>>(), [(bob.id, false)]);
    let refused = store.add_room_members(secret.id, &[cat.id, Uuid::now_v7()], now).await;
    assert!(is_not_found(&refused), "{refused:?}");
    assert_eq!(store.room_member(secret.id, cat.id).await.expect("member"), None, "nobody added");
    assert!(is_not_found(&store.add_room_members(Uuid::now_v7(), &[cat.id], now).await));
    let members = store.room_members(secret.id, 100).await.expect("members");
    assert_eq!(members.iter().map(|m| m.user_id).collect::<Vec<_>>(), [ann.id, bob.id]);
}

async fn remove_and_mark_read_need_a_membership(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann, bob] = people(&store, ["ann", "bob"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    store.add_room_members(lobby.id, &[bob.id], now).await.expect("add");
    let later = now.plus_secs(5);
    store.mark_room_read(lobby.id, bob.id, later).await.expect("read");
    assert_eq!(store.room_member(lobby.id, bob.id).await.expect("member").expect("bob").read_at, Some(later));
    store.remove_room_member(lobby.id, bob.id).await.expect("leave");
    assert!(is_not_found(&store.remove_room_member(lobby.id, bob.id).await));
    assert!(is_not_found(&store.mark_room_read(lobby.id, bob.id, later).await));
    assert_eq!(store.room_member(lobby.id, bob.id).await.expect("member"), None);
}

async fn the_last_moderator_leaving_hands_the_room_to_the_earliest_member(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann, bob, cat] = people(&store, ["ann", "bob", "cat"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    store.add_room_members(lobby.id, &[cat.id], now.plus_secs(1)).await.expect("add cat");
    store.add_room_members(lobby.id, &[bob.id], now.plus_secs(2)).await.expect("add bob");
    let moderators = |members: Vec<hearth_store::RoomMember>| {
        members.into_iter().filter(|m| m.moderator).map(|m| m.user_id).collect::<Vec<_>>()
    };

    assert_eq!(store.remove_room_member(lobby.id, bob.id).await.expect("bob leaves"), None, "ann still moderates");
    assert_eq!(store.remove_room_member(lobby.id, ann.id).await.expect("ann leaves"), Some(cat.id));
    assert_eq!(moderators(store.room_members(lobby.id, 100).await.expect("members")), [cat.id]);
    assert_eq!(store.remove_room_member(lobby.id, cat.id).await.expect("cat leaves"), None, "nobody is left");
    assert_eq!(store.room_members(lobby.id, 100).await.expect("members"), []);
}

async fn members_come_moderators_first_counted_and_paged_by_id(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann, bob, cat, dan] = people(&store, ["ann", "bob", "cat", "dan"], now).await;
    let lobby = room(&store, dan.id, "lobby", true, now).await;
    store.add_room_members(lobby.id, &[cat.id], now.plus_secs(1)).await.expect("add cat");
    store.add_room_members(lobby.id, &[ann.id, bob.id], now.plus_secs(2)).await.expect("add ann and bob");
    let ids = |members: Vec<hearth_store::RoomMember>| members.into_iter().map(|m| m.user_id).collect::<Vec<_>>();

    let first_two = ids(store.room_members(lobby.id, 2).await.expect("first"));
    assert_eq!(first_two, [dan.id, cat.id], "the moderator, then by joining");
    assert_eq!(store.room_member_count(lobby.id).await.expect("count"), 4);
    assert_eq!(store.room_member_count(Uuid::now_v7()).await.expect("count"), 0);

    let mut by_id = [ann.id, bob.id, cat.id, dan.id];
    by_id.sort();
    let page = ids(store.room_members_after(lobby.id, None, 3).await.expect("page"));
    assert_eq!(page, by_id[..3]);
    let rest = ids(store.room_members_after(lobby.id, Some(page[2]), 3).await.expect("page"));
    assert_eq!(rest, by_id[3..]);
}

async fn post_is_for_members_and_stored_once_per_client_id(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann, bob] = people(&store, ["ann", "bob"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    let refused = store.post_room_message(&post(lobby.id, Some(bob.id), "hi", None, now)).await;
    assert!(matches!(refused, Err(StoreError::Rule("not_a_member"))), "{refused:?}");
    let first = post(lobby.id, Some(ann.id), "hello", Some("c1"), now);
    let (stored, fresh) = store.post_room_message(&first).await.expect("post");
    assert!(fresh);
    assert_eq!((stored.id, stored.sender_id, stored.text.as_str()), (first.id, Some(ann.id), "hello"));
    let (again, fresh) =
        store.post_room_message(&post(lobby.id, Some(ann.id), "hello?", Some("c1"), now)).await.expect("repost");
    assert!(!fresh);
    assert_eq!(again, stored, "the first post comes back");
    store.add_room_members(lobby.id, &[bob.id], now).await.expect("add");
    // Another sender's client id is theirs alone.
    let (bobs, fresh) =
        store.post_room_message(&post(lobby.id, Some(bob.id), "hey", Some("c1"), now)).await.expect("post");
    assert!(fresh);
    assert_eq!(bobs.sender_id, Some(bob.id));
    assert_eq!(texts(&store, lobby.id).await, ["hey", "hello"]);
    let gone = store.post_room_message(&post(Uuid::now_v7(), Some(ann.id), "x", None, now)).await;
    assert!(matches!(gone, Err(StoreError::Rule("not_a_member"))), "{gone:?}");
}

async fn assistant_posts_without_a_sender(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann] = people(&store, ["ann"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    let (reply, fresh) = store.post_room_message(&post(lobby.id, None, "an answer", None, now)).await.expect("post");
    assert!(fresh);
    assert_eq!(reply.sender_id, None);
    assert_eq!(store.room_message(lobby.id, reply.id).await.expect("message"), Some(reply));
}

async fn edit_is_the_senders_only(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann, bob] = people(&store, ["ann", "bob"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    store.add_room_members(lobby.id, &[bob.id], now).await.expect("add");
    let (message, _) = store.post_room_message(&post(lobby.id, Some(bob.id), "helo", None, now)).await.expect("post");
    let later = now.plus_secs(3);
    assert!(is_not_found(&store.edit_room_message(lobby.id, message.id, ann.id, "mine now", later).await));
    assert!(is_not_found(&store.edit_room_message(Uuid::now_v7(), message.id, bob.id, "x", later).await));
    let edited = store.edit_room_message(lobby.id, message.id, bob.id, "hello", later).await.expect("edit");
    assert_eq!((edited.text.as_str(), edited.inserted_at, edited.updated_at), ("hello", now, later));
    assert_eq!(texts(&store, lobby.id).await, ["hello"]);
    // The search sees the new text, not the old.
    assert_eq!(store.search_room_messages(lobby.id, "helo", 10).await.expect("search"), []);
    assert_eq!(store.search_room_messages(lobby.id, "hello", 10).await.expect("search"), [edited]);
}

async fn delete_returns_the_message_and_it_is_gone(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann] = people(&store, ["ann"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    let other = room(&store, ann.id, "other", true, now).await;
    let (message, _) = store.post_room_message(&post(lobby.id, Some(ann.id), "oops", None, now)).await.expect("post");
    assert!(is_not_found(&store.delete_room_message(other.id, message.id).await), "only in its own room");
    assert_eq!(store.delete_room_message(lobby.id, message.id).await.expect("delete"), message);
    assert!(is_not_found(&store.delete_room_message(lobby.id, message.id).await));
    assert_eq!(store.room_message(lobby.id, message.id).await.expect("message"), None);
    assert!(texts(&store, lobby.id).await.is_empty());
    assert_eq!(store.search_room_messages(lobby.id, "oops", 10).await.expect("search"), []);
}

async fn messages_page_newest_first_before_an_id(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann] = people(&store, ["ann"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    let other = room(&store, ann.id, "other", true, now).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let (message, _) =
            store.post_room_message(&post(lobby.id, Some(ann.id), &format!("m{n}"), None, now)).await.expect("post");
        ids.push(message.id);
    }
    store.post_room_message(&post(other.id, Some(ann.id), "elsewhere", None, now)).await.expect("post");
    let first = store.room_messages(lobby.id, None, 2).await.expect("page");
    assert_eq!(first.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["m4", "m3"]);
    let second = store.room_messages(lobby.id, Some(first[1].id), 2).await.expect("page");
    assert_eq!(second.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["m2", "m1"]);
    let last = store.room_messages(lobby.id, Some(ids[1]), 2).await.expect("page");
    assert_eq!(last.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["m0"]);
}

async fn search_finds_whole_words_in_one_room_whatever_is_typed(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann] = people(&store, ["ann"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    let other = room(&store, ann.id, "other", true, now).await;
    for text in ["The deploy failed again", "deploy is green", "lunch?"] {
        store.post_room_message(&post(lobby.id, Some(ann.id), text, None, now)).await.expect("post");
    }
    store.post_room_message(&post(other.id, Some(ann.id), "deploy elsewhere", None, now)).await.expect("post");
    let found = |query: &'static str| {
        let store = store.clone();
        async move {
            let hits = store.search_room_messages(lobby.id, query, 10).await.expect("search");
            hits.into_iter().map(|m| m.text).collect::<Vec<_>>()
        }
    };
    assert_eq!(found("DEPLOY").await, ["deploy is green", "The deploy failed again"]);
    assert_eq!(found("deploy failed").await, ["The deploy failed again"]);
    assert_eq!(found("deploy lunch").await, Vec::<String>::new(), "every word is required");
    assert_eq!(found("lunch").await, ["lunch?"]);
    // What would be query syntax is searched as words, or ignored as punctuation.
    assert_eq!(found("\"deploy\" OR NEAR(").await, Vec::<String>::new());
    assert_eq!(found("deploy*").await, ["deploy is green", "The deploy failed again"]);
    assert_eq!(found("?! ***").await, Vec::<String>::new());
    assert_eq!(found("dep").await, Vec::<String>::new(), "whole words");
}

async fn deleting_a_user_removes_their_memberships_and_posts(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann, bob] = people(&store, ["ann", "bob"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    store.add_room_members(lobby.id, &[bob.id], now).await.expect("add");
    store.post_room_message(&post(lobby.id, Some(bob.id), "from bob", None, now)).await.expect("post");
    store.post_room_message(&post(lobby.id, Some(ann.id), "from ann", None, now)).await.expect("post");
    assert_eq!(store.rooms_with_member(bob.id).await.expect("bob's rooms"), [lobby.id]);
    store.delete_user(bob.id).await.expect("delete bob");
    assert_eq!(texts(&store, lobby.id).await, ["from ann"]);
    assert_eq!(store.room_members(lobby.id, 100).await.expect("members").len(), 1);
    assert_eq!(store.search_room_messages(lobby.id, "bob", 10).await.expect("search"), []);
    assert_eq!(store.rooms_with_member(bob.id).await.expect("bob's rooms"), Vec::<Uuid>::new());

    // The moderator's account gone: the member there longest moderates, once.
    let [cat] = people(&store, ["cat"], now).await;
    store.add_room_members(lobby.id, &[cat.id], now.plus_secs(1)).await.expect("add cat");
    assert_eq!(store.appoint_room_successor(lobby.id).await.expect("appoint"), None, "ann moderates");
    store.delete_user(ann.id).await.expect("delete ann");
    assert_eq!(store.appoint_room_successor(lobby.id).await.expect("appoint"), Some(cat.id));
    assert_eq!(store.appoint_room_successor(lobby.id).await.expect("appoint"), None, "cat moderates already");
    store.delete_user(cat.id).await.expect("delete cat");
    assert_eq!(store.appoint_room_successor(lobby.id).await.expect("appoint"), None, "nobody is left");
}

async fn room_partners_are_everyone_sharing_a_room_up_to_a_size(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann, bob, cat, dan] = people(&store, ["ann", "bob", "cat", "dan"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    let secret = room(&store, ann.id, "secret", false, now).await;
    store.add_room_members(lobby.id, &[bob.id, cat.id], now).await.expect("add");
    store.add_room_members(secret.id, &[bob.id], now).await.expect("add");
    room(&store, dan.id, "alone", true, now).await;
    assert_eq!(store.room_partners(ann.id, 100).await.expect("partners"), [bob.id, cat.id], "once each");
    assert_eq!(store.room_partners(cat.id, 100).await.expect("partners"), [ann.id, bob.id]);
    assert_eq!(store.room_partners(dan.id, 100).await.expect("partners"), Vec::<Uuid>::new());
    // The lobby has three members: past a limit of two, only the secret room counts.
    assert_eq!(store.room_partners(ann.id, 2).await.expect("partners"), [bob.id]);
    assert_eq!(store.room_partners(cat.id, 2).await.expect("partners"), Vec::<Uuid>::new());
    store.remove_room_member(lobby.id, cat.id).await.expect("leave");
    assert_eq!(store.room_partners(cat.id, 100).await.expect("partners"), Vec::<Uuid>::new());
}

/// SQLite only: a backup (`VACUUM INTO`) renumbers the rowids of tables without an `INTEGER
/// PRIMARY KEY`, so the search index must follow a key that a copy keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_search_still_finds_each_post_after_a_backup_is_restored() {
    let database = hearth_store::testing::TestDatabase::sqlite();
    let store = crate::connect(&database).await;
    let now = Timestamp::now();
    let [ann] = people(&store, ["ann"], now).await;
    let lobby = room(&store, ann.id, "lobby", true, now).await;
    let mut posted = Vec::new();
    for text in ["alpha", "bravo", "charlie"] {
        posted.push(store.post_room_message(&post(lobby.id, Some(ann.id), text, None, now)).await.expect("post").0);
    }
    // A gap, which a copy closes.
    store.delete_room_message(lobby.id, posted[0].id).await.expect("delete");
    let file = hearth_store::backup::sqlite_file(&database.url).expect("a file");
    let copy = file.with_file_name("copy.db");
    hearth_store::backup::backup(&file, &copy).expect("a backup");
    let restored = file.with_file_name("restored.db");
    hearth_store::backup::restore(&copy, &restored).expect("restored");
    let options = hearth_store::ConnectOptions { url: format!("sqlite://{}", restored.display()), max_connections: 2 };
    let restored = hearth_store::connect(&options).await.expect("the restored store");
    for (query, expected) in [("bravo", &posted[1]), ("charlie", &posted[2])] {
        let found = restored.search_room_messages(lobby.id, query, 10).await.expect("search");
        assert_eq!(found, std::slice::from_ref(expected), "{query}");
    }
    assert_eq!(restored.search_room_messages(lobby.id, "alpha", 10).await.expect("search"), []);
    drop(store);
}

async fn admins_list_every_room_with_counts_moderators_and_last_post(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ann, bob, cat] = people(&store, ["ann", "bob", "cat"], now).await;
    let lobby = room(&store, ann.id, "Lobby", true, now).await;
    let secret = room(&store, bob.id, "secret", false, now).await;
    store.add_room_members(lobby.id, &[bob.id, cat.id], now).await.expect("add");
    let later = now.plus_secs(7);
    store.post_room_message(&post(lobby.id, Some(bob.id), "hi", None, now)).await.expect("post");
    store.post_room_message(&post(lobby.id, None, "hello", None, later)).await.expect("post");

    let all = store.admin_rooms(None, None, 50).await.expect("admin rooms");
    assert_eq!(all.len(), 2, "private rooms are listed too");
    assert_eq!((&all[0].room, all[0].members, all[0].last_post_at), (&lobby, 3, Some(later)));
    let moderators: Vec<_> = all[0].moderators.iter().map(|m| (m.user_id, m.email.as_str())).collect();
    assert_eq!(moderators, [(ann.id, "ann@example.com")]);
    assert_eq!((&all[1].room, all[1].members, all[1].last_post_at), (&secret, 1, None));
    assert_eq!(all[1].moderators[0].user_id, bob.id);

    // Found by name or topic, in any case; LIKE's wildcards taken literally.
    let named = store.admin_rooms(Some("lob"), None, 50).await.expect("search");
    assert_eq!(named.iter().map(|r| r.room.id).collect::<Vec<_>>(), [lobby.id]);
    let by_topic = store.admin_rooms(Some("ABOUT SEC"), None, 50).await.expect("search");
    assert_eq!(by_topic.iter().map(|r| r.room.id).collect::<Vec<_>>(), [secret.id]);
    assert!(store.admin_rooms(Some("%"), None, 50).await.expect("search").is_empty());
    // Paged by id.
    let first = store.admin_rooms(None, None, 1).await.expect("page");
    let rest = store.admin_rooms(None, Some(first[0].room.id), 50).await.expect("page");
    assert_eq!(rest.iter().map(|r| r.room.id).collect::<Vec<_>>(), [secret.id]);
}
