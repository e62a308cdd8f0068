//! Conversations and messages: members, read times, aliases, keys, sends (also concurrent and
//! batched), edits, deletes, paging, and what deleting a user takes with them.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_store::{
    Conversation, DirectoryPage, EncryptionKeys, MessageDelivery, NewAccount, NewConversation, NewMessageGroup,
    OneTimeKind, Redemption, SealedKeyRow, Store, StoreError, StoredMessage, Timestamp, User, UserSummary,
};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::accounts::identity;
use crate::{create_account, is_not_found, issue, new_account, user};

contract!(
    create_and_read_conversations,
    private_conversation_is_unique_per_pair,
    conversation_rules,
    unknown_member_is_not_found_and_writes_nothing,
    conversations_of_members_and_partners,
    read_times_and_mark_read,
    the_directory_finds_by_name_or_exact_email_and_shows_the_emails_of_contacts,
    delivery_times_move_forward_only_and_follow_reading,
    unread_counts_follow_read_times,
    alias_and_members_of_groups_only,
    leave_removes_member_and_keys,
    encryption_keys_upsert,
    private_keys_are_replaced_all_at_once_or_not_at_all,
    an_email_change_can_rekey_in_its_transaction,
    send_message_to_exactly_the_members,
    client_msg_id_makes_resends_idempotent,
    a_chosen_group_id_is_stored_unless_it_is_taken,
    of_concurrent_sends_choosing_one_id_one_is_stored,
    concurrent_resends_store_one_group,
    concurrent_sends_each_get_their_own_outcome,
    a_send_the_database_refuses_fails_alone,
    edit_message_follows_the_members,
    delete_message_removes_every_copy,
    who_left_can_neither_edit_nor_delete_their_messages,
    messages_page_newest_first,
    a_chosen_group_id_does_not_move_its_message_in_history,
    sealed_private_keys_page_and_compare_and_swap,
    delete_user_removes_conversation_rows,
    delete_user_removes_sends_where_they_left,
);

const RECIPIENTS_RULE: &str = "encrypted_messages must name exactly the conversation's members";

fn keys(tag: &str) -> EncryptionKeys {
    EncryptionKeys {
        public_key: format!(r#"{{"kty":"EC","crv":"P-256","tag":"{tag}"}}"#),
        sealed_private_key: format!("sealed {tag}").into_bytes(),
    }
}

fn new_conversation(creator: Uuid, members: &[Uuid], private: bool, now: Timestamp) -> NewConversation {
    NewConversation {
        id: Uuid::now_v7(),
        private,
        alias: None,
        creator,
        members: members.to_vec(),
        creator_keys: keys(&format!("{creator}")),
        now,
    }
}

/// Accounts `<name>@example.com` for each name, in order (so their ids ascend).
pub(crate) async fn people<const N: usize>(store: &Arc<dyn Store>, names: [&str; N], now: Timestamp) -> [User; N] {
    let mut users = Vec::new();
    for name in names {
        users.push(create_account(store, &format!("{name}@example.com"), now).await.user);
    }
    users.try_into().expect("one user per name")
}

pub(crate) async fn group(store: &Arc<dyn Store>, creator: Uuid, members: &[Uuid], now: Timestamp) -> Conversation {
    let conversation =
        NewConversation { alias: Some("Team".to_owned()), ..new_conversation(creator, members, false, now) };
    store.create_conversation(&conversation).await.expect("create group")
}

async fn private(store: &Arc<dyn Store>, a: Uuid, b: Uuid, now: Timestamp) -> Conversation {
    store.create_conversation(&new_conversation(a, &[a, b], true, now)).await.expect("create private conversation")
}

/// A distinct ciphertext for each recipient.
pub(crate) fn contents(tag: &str, recipients: &[Uuid]) -> BTreeMap<Uuid, String> {
    recipients.iter().map(|recipient| (*recipient, format!("{tag} for {recipient}"))).collect()
}

pub(crate) fn message(
    conversation_id: Uuid,
    sender: Uuid,
    contents: BTreeMap<Uuid, String>,
    now: Timestamp,
) -> NewMessageGroup {
    let id = Uuid::now_v7();
    NewMessageGroup {
        id,
        history_key: id,
        client_chose_id: false,
        conversation_id,
        sender,
        client_msg_id: None,
        contents,
        now,
    }
}

pub(crate) async fn send(
    store: &Arc<dyn Store>,
    conversation_id: Uuid,
    sender: Uuid,
    tag: &str,
    recipients: &[Uuid],
    now: Timestamp,
) -> MessageDelivery {
    let delivery = store
        .send_message(&message(conversation_id, sender, contents(tag, recipients), now))
        .await
        .expect("send message");
    assert!(delivery.fresh);
    delivery
}

pub(crate) async fn page(store: &Arc<dyn Store>, conversation_id: Uuid, recipient: Uuid) -> Vec<StoredMessage> {
    store.messages_page(conversation_id, recipient, None, 100).await.expect("messages page")
}

fn is_rule<T: std::fmt::Debug>(result: &Result<T, StoreError>, rule: &str) -> bool {
    matches!(result, Err(StoreError::Rule(r)) if *r == rule)
}

async fn create_and_read_conversations(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;

    let new_group = NewConversation {
        alias: Some("Team ☕".to_owned()),
        // The creator need not come first.
        ..new_conversation(ada.id, &[cy.id, ada.id, bob.id], false, now)
    };
    let created = store.create_conversation(&new_group).await.expect("create group");
    let expected = Conversation {
        id: new_group.id,
        private: false,
        alias: Some("Team ☕".to_owned()),
        inserted_at: now,
        updated_at: now,
        assistant: false,
    };
    assert_eq!(created, expected);
    assert_eq!(store.conversation(new_group.id).await.expect("conversation"), Some(expected.clone()));
    // Everyone joined at once: by id.
    assert_eq!(store.member_ids(new_group.id).await.expect("members"), vec![ada.id, bob.id, cy.id]);
    assert_eq!(
        store.read_times(new_group.id).await.expect("read times"),
        vec![(ada.id, None), (bob.id, None), (cy.id, None)]
    );
    // Only the creator's keys came with it.
    assert_eq!(
        store.public_keys(new_group.id).await.expect("public keys"),
        vec![(ada.id, new_group.creator_keys.public_key.clone())]
    );
    assert_eq!(
        store.sealed_private_key(new_group.id, ada.id).await.expect("sealed key"),
        Some(new_group.creator_keys.sealed_private_key.clone())
    );
    assert_eq!(store.sealed_private_key(new_group.id, bob.id).await.expect("sealed key"), None);

    // A group of one is fine.
    let alone = store.create_conversation(&new_conversation(cy.id, &[cy.id], false, now)).await.expect("alone");
    assert_eq!(alone.alias, None);
    assert_eq!(store.member_ids(alone.id).await.expect("members"), vec![cy.id]);

    let later = now.plus_secs(1);
    let new_private = new_conversation(bob.id, &[bob.id, ada.id], true, later);
    let created = store.create_conversation(&new_private).await.expect("create private");
    let expected = Conversation {
        id: new_private.id,
        private: true,
        alias: None,
        inserted_at: later,
        updated_at: later,
        assistant: false,
    };
    assert_eq!(created, expected);
    assert_eq!(store.conversation(new_private.id).await.expect("conversation"), Some(expected));
    assert_eq!(store.member_ids(new_private.id).await.expect("members"), vec![ada.id, bob.id]);
    assert_eq!(
        store.public_keys(new_private.id).await.expect("public keys"),
        vec![(bob.id, new_private.creator_keys.public_key.clone())]
    );
    assert_eq!(store.private_conversation_between(ada.id, bob.id).await.expect("between"), Some(new_private.id));
    assert_eq!(store.private_conversation_between(bob.id, ada.id).await.expect("between"), Some(new_private.id));
    assert_eq!(store.private_conversation_between(ada.id, cy.id).await.expect("between"), None);
    assert_eq!(store.private_conversation_between(ada.id, ada.id).await.expect("between"), None);

    assert_eq!(store.conversation(Uuid::now_v7()).await.expect("unknown conversation"), None);
    assert_eq!(store.member_ids(Uuid::now_v7()).await.expect("unknown members"), Vec::<Uuid>::new());
}

async fn private_conversation_is_unique_per_pair(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let first = private(&store, ada.id, bob.id, now).await;

    for (creator, members) in [(ada.id, [ada.id, bob.id]), (bob.id, [bob.id, ada.id]), (bob.id, [ada.id, bob.id])] {
        let again = new_conversation(creator, &members, true, now.plus_secs(1));
        let result = store.create_conversation(&again).await;
        assert!(matches!(result, Err(StoreError::Conflict("private_conversation"))), "{result:?}");
        assert_eq!(store.conversation(again.id).await.expect("conversation"), None);
        assert_eq!(store.member_ids(again.id).await.expect("members"), Vec::<Uuid>::new());
        assert_eq!(store.sealed_private_key(again.id, creator).await.expect("sealed key"), None);
    }
    assert_eq!(store.conversations_of(ada.id).await.expect("conversations"), vec![first.clone()]);
    assert_eq!(store.conversations_of(bob.id).await.expect("conversations"), vec![first.clone()]);
    assert_eq!(store.private_conversation_between(bob.id, ada.id).await.expect("between"), Some(first.id));

    // Other pairs, and groups of the same two, are fine.
    let other = private(&store, cy.id, ada.id, now).await;
    assert_eq!(store.private_conversation_between(ada.id, cy.id).await.expect("between"), Some(other.id));
    group(&store, ada.id, &[ada.id, bob.id], now).await;
    group(&store, bob.id, &[ada.id, bob.id], now).await;
    assert_eq!(store.conversations_of(ada.id).await.expect("conversations").len(), 4);
}

async fn conversation_rules(store: Arc<dyn Store>) {
    const PRIVATE_RULE: &str = "a private conversation has exactly two members and no alias";
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;

    let broken = [
        (new_conversation(ada.id, &[ada.id, bob.id, cy.id], true, now), Some(PRIVATE_RULE)),
        (new_conversation(ada.id, &[ada.id], true, now), Some(PRIVATE_RULE)),
        (
            NewConversation { alias: Some("Us".to_owned()), ..new_conversation(ada.id, &[ada.id, bob.id], true, now) },
            Some(PRIVATE_RULE),
        ),
        (new_conversation(ada.id, &[bob.id, cy.id], true, now), None),
        (new_conversation(ada.id, &[ada.id, ada.id], true, now), None),
        (new_conversation(ada.id, &[bob.id, cy.id], false, now), None),
        (new_conversation(ada.id, &[ada.id, bob.id, ada.id], false, now), None),
        (new_conversation(ada.id, &[], false, now), None),
    ];
    for (conversation, rule) in &broken {
        let result = store.create_conversation(conversation).await;
        match rule {
            Some(rule) => assert!(is_rule(&result, rule), "{conversation:?}: {result:?}"),
            None => assert!(matches!(result, Err(StoreError::Rule(_))), "{conversation:?}: {result:?}"),
        }
        assert_eq!(store.conversation(conversation.id).await.expect("conversation"), None);
    }
    for user in [&ada, &bob, &cy] {
        assert_eq!(store.conversations_of(user.id).await.expect("conversations"), vec![]);
    }
    assert_eq!(store.private_conversation_between(ada.id, bob.id).await.expect("between"), None);
    assert_eq!(store.private_conversation_between(bob.id, cy.id).await.expect("between"), None);
}

async fn unknown_member_is_not_found_and_writes_nothing(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let ghost = Uuid::now_v7();

    let attempts = [
        new_conversation(ada.id, &[ada.id, bob.id, ghost], false, now),
        new_conversation(ada.id, &[ada.id, ghost], true, now),
        // An unknown creator, too.
        new_conversation(ghost, &[ghost, ada.id], false, now),
    ];
    for conversation in &attempts {
        let result = store.create_conversation(conversation).await;
        assert!(is_not_found(&result), "{result:?}");
        assert_eq!(store.conversation(conversation.id).await.expect("conversation"), None);
        assert_eq!(store.member_ids(conversation.id).await.expect("members"), Vec::<Uuid>::new());
        assert_eq!(store.public_keys(conversation.id).await.expect("public keys"), vec![]);
    }
    assert_eq!(store.conversations_of(ada.id).await.expect("conversations"), vec![]);
    assert_eq!(store.conversations_of(bob.id).await.expect("conversations"), vec![]);
    assert_eq!(store.private_conversation_between(ada.id, ghost).await.expect("between"), None);
    assert_eq!(store.sealed_private_keys(None, 100).await.expect("sealed keys"), vec![]);

    // The failed private conversation did not claim the pair.
    let ghost_account = NewAccount {
        user: User { id: ghost, ..new_account("ghost@example.com", now).user },
        ..new_account("ghost@example.com", now)
    };
    store.create_account(&ghost_account).await.expect("create ghost");
    private(&store, ghost, ada.id, now).await;
}

async fn conversations_of_members_and_partners(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    // Created first, so the smallest id.
    let [late, ada, bob, cy, dee, eve] = people(&store, ["late", "ada", "bob", "cy", "dee", "eve"], now).await;

    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let dm = private(&store, bob.id, cy.id, now.plus_secs(1)).await;
    // Created an hour earlier (but with a larger id): listed first.
    let old = group(&store, cy.id, &[cy.id, ada.id, bob.id, dee.id], now.plus_secs(-3600)).await;

    assert_eq!(store.conversations_of(ada.id).await.expect("conversations"), vec![old.clone(), team.clone()]);
    assert_eq!(
        store.conversations_of(bob.id).await.expect("conversations"),
        vec![old.clone(), team.clone(), dm.clone()]
    );
    assert_eq!(store.conversations_of(cy.id).await.expect("conversations"), vec![old.clone(), dm.clone()]);
    assert_eq!(store.conversations_of(dee.id).await.expect("conversations"), vec![old.clone()]);
    assert_eq!(store.conversations_of(eve.id).await.expect("conversations"), vec![]);

    // Bob shares two conversations with Ada and with Cy: each is listed once.
    let summaries = |users: &[&User]| users.iter().map(|user| UserSummary::from(*user)).collect::<Vec<_>>();
    assert_eq!(store.conversation_partners(ada.id).await.expect("partners"), summaries(&[&bob, &cy, &dee]));
    assert_eq!(store.conversation_partners(bob.id).await.expect("partners"), summaries(&[&ada, &cy, &dee]));
    assert_eq!(store.conversation_partners(dee.id).await.expect("partners"), summaries(&[&ada, &bob, &cy]));
    assert_eq!(store.conversation_partners(eve.id).await.expect("partners"), vec![]);

    // Joining later puts one last, whatever their id.
    store.add_members(team.id, &[late.id], now.plus_secs(60)).await.expect("add late");
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![ada.id, bob.id, late.id]);
    assert_eq!(store.conversation_partners(late.id).await.expect("partners"), summaries(&[&ada, &bob]));
    assert_eq!(store.conversation_partners(ada.id).await.expect("partners"), summaries(&[&late, &bob, &cy, &dee]));
    assert_eq!(
        store.read_times(team.id).await.expect("read times").into_iter().map(|(id, _)| id).collect::<Vec<_>>(),
        vec![ada.id, bob.id, late.id]
    );

    assert_eq!(store.private_conversation_between(cy.id, bob.id).await.expect("between"), Some(dm.id));
    assert_eq!(store.private_conversation_between(ada.id, bob.id).await.expect("between"), None);

    // Members' identities, in joining order, null for those without one; partners carry theirs.
    assert_eq!(
        store.member_identity_keys(team.id).await.expect("identity keys"),
        vec![(ada.id, None), (bob.id, None), (late.id, None)]
    );
    store.set_identity(bob.id, &identity("bob"), false, now).await.expect("bob's identity");
    let bob_key = Some(identity("bob").public_key);
    assert_eq!(
        store.member_identity_keys(team.id).await.expect("identity keys"),
        vec![(ada.id, None), (bob.id, bob_key.clone()), (late.id, None)]
    );
    let partners = store.conversation_partners(cy.id).await.expect("partners");
    assert_eq!(
        partners.iter().map(|p| (p.id, p.identity_key.clone())).collect::<Vec<_>>(),
        [(ada.id, None), (bob.id, bob_key), (dee.id, None)]
    );
    assert_eq!(store.member_identity_keys(Uuid::now_v7()).await.expect("no conversation"), vec![]);
}

async fn read_times_and_mark_read(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let other = group(&store, ada.id, &[ada.id, bob.id], now).await;

    assert_eq!(store.read_times(team.id).await.expect("read times"), vec![(ada.id, None), (bob.id, None)]);
    let t1 = now.plus_secs(10);
    store.mark_read(team.id, bob.id, t1).await.expect("mark read");
    assert_eq!(store.read_times(team.id).await.expect("read times"), vec![(ada.id, None), (bob.id, Some(t1))]);
    let t2 = now.plus_secs(20);
    store.mark_read(team.id, bob.id, t2).await.expect("mark read again");
    store.mark_read(team.id, ada.id, t1).await.expect("mark read");
    assert_eq!(store.read_times(team.id).await.expect("read times"), vec![(ada.id, Some(t1)), (bob.id, Some(t2))]);
    // Only that conversation.
    assert_eq!(store.read_times(other.id).await.expect("read times"), vec![(ada.id, None), (bob.id, None)]);

    assert!(is_not_found(&store.mark_read(team.id, cy.id, t2).await));
    assert!(is_not_found(&store.mark_read(Uuid::now_v7(), ada.id, t2).await));
    assert_eq!(store.read_times(team.id).await.expect("read times").len(), 2);
    assert_eq!(store.read_times(Uuid::now_v7()).await.expect("unknown conversation"), vec![]);
}

async fn delivery_times_move_forward_only_and_follow_reading(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let other = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let delivered = |id| {
        let store = store.clone();
        async move { store.delivered_times(id).await.expect("delivered times") }
    };

    assert_eq!(delivered(team.id).await, vec![(ada.id, None), (bob.id, None)]);
    let (t1, t2, t3) = (now.plus_secs(10), now.plus_secs(20), now.plus_secs(30));
    store.mark_delivered(team.id, bob.id, t2).await.expect("mark delivered");
    assert_eq!(delivered(team.id).await, vec![(ada.id, None), (bob.id, Some(t2))]);
    // A late receipt from a slower device does not move it back.
    store.mark_delivered(team.id, bob.id, t1).await.expect("an older receipt");
    assert_eq!(delivered(team.id).await, vec![(ada.id, None), (bob.id, Some(t2))]);
    // Reading implies receiving, forward only as well; the read time itself is the read time.
    store.mark_read(team.id, ada.id, t1).await.expect("mark read");
    store.mark_read(team.id, bob.id, t1).await.expect("mark read before the receipt");
    assert_eq!(delivered(team.id).await, vec![(ada.id, Some(t1)), (bob.id, Some(t2))]);
    assert_eq!(store.read_times(team.id).await.expect("read times"), vec![(ada.id, Some(t1)), (bob.id, Some(t1))]);
    store.mark_read(team.id, bob.id, t3).await.expect("mark read after the receipt");
    assert_eq!(delivered(team.id).await, vec![(ada.id, Some(t1)), (bob.id, Some(t3))]);
    // Only that conversation.
    assert_eq!(delivered(other.id).await, vec![(ada.id, None), (bob.id, None)]);

    assert!(is_not_found(&store.mark_delivered(team.id, cy.id, t2).await));
    assert!(is_not_found(&store.mark_delivered(Uuid::now_v7(), ada.id, t2).await));
    assert_eq!(delivered(Uuid::now_v7()).await, vec![]);
}

async fn the_directory_finds_by_name_or_exact_email_and_shows_the_emails_of_contacts(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy, dee] = people(&store, ["ada", "bob", "cy", "dee"], now).await;
    for (user, name) in [(&ada, "Ada Lovelace"), (&bob, "Bob Ötzi_100%"), (&cy, "CY TWAIN"), (&dee, "Dee Lovelace")] {
        store.set_display_name(user.id, name, now).await.expect("rename");
    }
    group(&store, ada.id, &[ada.id, bob.id], now).await;
    // Each listed person's id and whether the viewer sees their email, in id order.
    let find = |viewer: Uuid, search: Option<&'static str>, after: Option<Uuid>, limit: u32| {
        let store = store.clone();
        async move {
            let page = DirectoryPage { viewer, search, after, limit };
            let entries = store.directory(&page).await.expect("directory");
            entries.into_iter().map(|entry| (entry.user.id, entry.email_visible)).collect::<Vec<_>>()
        }
    };
    let mut everyone = vec![(ada.id, true), (bob.id, true), (cy.id, false), (dee.id, false)];
    everyone.sort();
    assert_eq!(find(ada.id, None, None, 10).await, everyone, "her own and her contact's emails only");
    assert!(find(Uuid::nil(), None, None, 10).await.iter().all(|(_, visible)| !visible));
    assert_eq!(find(cy.id, None, None, 10).await.iter().filter(|(_, visible)| *visible).count(), 1, "only his own");

    // By display name: a part of it, in any case (Unicode too), its % and _ taken literally.
    for search in ["ÖTZI", "ötzi", "bob", "_100%", "%", "_"] {
        assert_eq!(find(ada.id, Some(search), None, 10).await, vec![(bob.id, true)], "{search}");
    }
    assert_eq!(find(ada.id, Some("twain"), None, 10).await, vec![(cy.id, false)]);
    assert_eq!(find(ada.id, Some("nobody"), None, 10).await, vec![]);
    // By email: only the exact address, in any case, and then it is shown.
    assert_eq!(find(ada.id, Some("cy@example.com"), None, 10).await, vec![(cy.id, true)]);
    assert_eq!(find(ada.id, Some("CY@Example.COM"), None, 10).await, vec![(cy.id, true)]);
    for part in ["cy@example", "example.com", "@", "y@example.com"] {
        assert_eq!(find(ada.id, Some(part), None, 10).await, vec![], "{part}");
    }
    // A search pages like the whole list.
    let mut lovelaces = [(ada.id, true), (dee.id, false)];
    lovelaces.sort();
    let first = find(ada.id, Some("lovelace"), None, 1).await;
    assert_eq!(first, lovelaces[..1].to_vec());
    assert_eq!(find(ada.id, Some("lovelace"), Some(first[0].0), 10).await, lovelaces[1..].to_vec());
}

async fn unread_counts_follow_read_times(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let quiet = group(&store, bob.id, &[bob.id, ada.id], now).await;
    let activity = |user: Uuid| {
        let store = store.clone();
        async move {
            store
                .conversation_activity(user)
                .await
                .expect("activity")
                .into_iter()
                .map(|a| (a.conversation_id, a.unread, a.last_message_at))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(activity(ada.id).await, vec![(team.id, 0, None), (quiet.id, 0, None)]);

    send(&store, team.id, bob.id, "one", &[ada.id, bob.id], now.plus_secs(1)).await;
    send(&store, team.id, bob.id, "two", &[ada.id, bob.id], now.plus_secs(2)).await;
    send(&store, team.id, ada.id, "mine", &[ada.id, bob.id], now.plus_secs(3)).await;
    let last = Some(now.plus_secs(3));
    // Her own message is not unread for her; both of bob's are.
    assert_eq!(activity(ada.id).await, vec![(team.id, 2, last), (quiet.id, 0, None)]);
    assert_eq!(activity(bob.id).await, vec![(team.id, 1, last), (quiet.id, 0, None)]);

    store.mark_read(team.id, ada.id, now.plus_secs(2)).await.expect("mark read");
    assert_eq!(activity(ada.id).await[0], (team.id, 0, last));
    send(&store, team.id, bob.id, "three", &[ada.id, bob.id], now.plus_secs(4)).await;
    assert_eq!(activity(ada.id).await[0], (team.id, 1, Some(now.plus_secs(4))));

    // A newcomer has no copy of what was sent before they joined: nothing unread for them.
    store.add_members(team.id, &[cy.id], now.plus_secs(5)).await.expect("add cy");
    assert_eq!(activity(cy.id).await, vec![(team.id, 0, Some(now.plus_secs(4)))]);
    assert_eq!(activity(Uuid::now_v7()).await, vec![]);
}

async fn alias_and_members_of_groups_only(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy, dee] = people(&store, ["ada", "bob", "cy", "dee"], now).await;
    let dm = private(&store, ada.id, bob.id, now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let later = now.plus_secs(10);

    let result = store.set_alias(dm.id, Some("Us"), later).await;
    assert!(is_rule(&result, "a private conversation has no alias"), "{result:?}");
    assert!(is_rule(&store.set_alias(dm.id, None, later).await, "a private conversation has no alias"));
    let result = store.add_members(dm.id, &[cy.id], later).await;
    assert!(is_rule(&result, "a private conversation cannot get new members"), "{result:?}");
    let result = store.leave_conversation(dm.id, bob.id).await;
    assert!(is_rule(&result, "a private conversation cannot be left"), "{result:?}");
    assert_eq!(store.conversation(dm.id).await.expect("conversation"), Some(dm.clone()));
    assert_eq!(store.member_ids(dm.id).await.expect("members"), vec![ada.id, bob.id]);

    let t1 = now.plus_secs(1);
    let renamed = store.set_alias(team.id, Some("Night shift 🌙"), t1).await.expect("set alias");
    let expected = Conversation { alias: Some("Night shift 🌙".to_owned()), updated_at: t1, ..team.clone() };
    assert_eq!(renamed, expected);
    assert_eq!(store.conversation(team.id).await.expect("conversation"), Some(expected));
    let t2 = now.plus_secs(2);
    let cleared = store.set_alias(team.id, None, t2).await.expect("clear alias");
    let expected = Conversation { alias: None, updated_at: t2, ..team.clone() };
    assert_eq!(cleared, expected);
    assert_eq!(store.conversation(team.id).await.expect("conversation"), Some(expected.clone()));
    assert!(is_not_found(&store.set_alias(Uuid::now_v7(), Some("x"), t2).await));

    let t3 = now.plus_secs(3);
    let grown = store.add_members(team.id, &[cy.id], t3).await.expect("add member");
    let expected = Conversation { updated_at: t3, ..expected };
    assert_eq!(grown, expected);
    assert_eq!(store.conversation(team.id).await.expect("conversation"), Some(expected.clone()));
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![ada.id, bob.id, cy.id]);
    assert_eq!(store.read_times(team.id).await.expect("read times")[2], (cy.id, None));

    // Adding members again changes nothing, not even updated_at.
    let t4 = now.plus_secs(4);
    let same = store.add_members(team.id, &[cy.id, ada.id, cy.id], t4).await.expect("add members again");
    assert_eq!(same, expected);
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![ada.id, bob.id, cy.id]);
    assert_eq!(store.add_members(team.id, &[], t4).await.expect("add nobody"), expected);

    // An unknown user: nobody is added.
    let result = store.add_members(team.id, &[dee.id, Uuid::now_v7()], t4).await;
    assert!(is_not_found(&result), "{result:?}");
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![ada.id, bob.id, cy.id]);
    assert_eq!(store.conversation(team.id).await.expect("conversation"), Some(expected));
    assert!(is_not_found(&store.add_members(Uuid::now_v7(), &[dee.id], t4).await));
    assert_eq!(store.conversations_of(dee.id).await.expect("conversations"), vec![]);
}

async fn leave_removes_member_and_keys(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;
    let other = group(&store, ada.id, &[ada.id, bob.id], now).await;
    store.set_encryption_keys(team.id, bob.id, &keys("bob"), now).await.expect("bob's keys");
    store.set_encryption_keys(other.id, bob.id, &keys("bob other"), now).await.expect("bob's other keys");
    let before = send(&store, team.id, ada.id, "hello", &[ada.id, bob.id, cy.id], now).await;

    store.leave_conversation(team.id, bob.id).await.expect("leave");
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![ada.id, cy.id]);
    assert_eq!(store.conversations_of(bob.id).await.expect("conversations"), vec![other.clone()]);
    assert_eq!(
        store.public_keys(team.id).await.expect("public keys"),
        vec![(ada.id, keys(&ada.id.to_string()).public_key)]
    );
    assert_eq!(store.sealed_private_key(team.id, bob.id).await.expect("sealed key"), None);
    // Their keys elsewhere stay, and so do their copies of earlier messages.
    assert_eq!(
        store.sealed_private_key(other.id, bob.id).await.expect("sealed key"),
        Some(keys("bob other").sealed_private_key)
    );
    assert_eq!(page(&store, team.id, bob.id).await, vec![before.messages[&bob.id].clone()]);

    // No longer a member.
    assert!(is_not_found(&store.leave_conversation(team.id, bob.id).await));
    assert!(is_not_found(&store.set_encryption_keys(team.id, bob.id, &keys("bob"), now).await));
    assert!(is_not_found(&store.mark_read(team.id, bob.id, now).await));
    let result = store.send_message(&message(team.id, bob.id, contents("hi", &[ada.id, cy.id]), now)).await;
    assert!(is_not_found(&result), "{result:?}");
    assert!(is_not_found(&store.leave_conversation(Uuid::now_v7(), ada.id).await));

    // Everyone may leave; the conversation stays.
    store.leave_conversation(team.id, ada.id).await.expect("leave");
    store.leave_conversation(team.id, cy.id).await.expect("leave");
    assert_eq!(store.member_ids(team.id).await.expect("members"), Vec::<Uuid>::new());
    assert_eq!(store.public_keys(team.id).await.expect("public keys"), vec![]);
    assert!(store.conversation(team.id).await.expect("conversation").is_some());
}

fn wrong_set(conversation: Uuid) -> Vec<(Uuid, Vec<u8>)> {
    vec![(conversation, b"only one".to_vec())]
}

async fn private_keys_are_replaced_all_at_once_or_not_at_all(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let first = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let second = group(&store, bob.id, &[ada.id, bob.id], now).await;
    store.set_encryption_keys(second.id, ada.id, &keys("ada second"), now).await.expect("ada's keys");
    let mut expected = vec![
        (first.id, keys(&ada.id.to_string()).sealed_private_key),
        (second.id, keys("ada second").sealed_private_key),
    ];
    expected.sort();
    assert_eq!(store.sealed_private_keys_of(ada.id).await.expect("keys"), expected);

    // One missing, one of someone else's conversation, one twice: refused, nothing changed.
    let lonely = group(&store, bob.id, &[bob.id], now).await;
    for wrong in [
        vec![(first.id, b"new 1".to_vec())],
        vec![(first.id, b"new 1".to_vec()), (second.id, b"new 2".to_vec()), (lonely.id, b"new 3".to_vec())],
        vec![(first.id, b"new 1".to_vec()), (first.id, b"new 1".to_vec())],
    ] {
        let refused = store.replace_private_keys(ada.id, &wrong, now).await;
        assert!(matches!(refused, Err(StoreError::Rule(_))), "{refused:?}");
        assert_eq!(store.sealed_private_keys_of(ada.id).await.expect("keys"), expected);
    }
    // With a password change, the same rule, in the same transaction: refused, neither changes.
    let before = store.user(ada.id).await.expect("user").expect("ada").password_hash;
    let refused = store.replace_password(ada.id, "$argon2id$new", Some(&wrong_set(first.id)), None, now).await;
    assert!(matches!(refused, Err(StoreError::Rule(_))), "{refused:?}");
    assert_eq!(store.user(ada.id).await.expect("user").expect("ada").password_hash, before);
    assert_eq!(store.sealed_private_keys_of(ada.id).await.expect("keys"), expected);

    // Exactly hers: all replaced; bob's untouched.
    let new = vec![(second.id, b"new 2".to_vec()), (first.id, b"new 1".to_vec())];
    store.replace_password(ada.id, "$argon2id$new", Some(&new), None, now.plus_secs(1)).await.expect("replace");
    assert_eq!(store.user(ada.id).await.expect("user").expect("ada").password_hash, "$argon2id$new");
    assert_eq!(store.sealed_private_key(first.id, ada.id).await.expect("sealed"), Some(b"new 1".to_vec()));
    assert_eq!(store.sealed_private_key(second.id, ada.id).await.expect("sealed"), Some(b"new 2".to_vec()));
    assert_eq!(
        store.sealed_private_key(second.id, bob.id).await.expect("sealed"),
        Some(keys(&bob.id.to_string()).sealed_private_key)
    );
    let newer = vec![(first.id, b"newer 1".to_vec()), (second.id, b"newer 2".to_vec())];
    store.replace_private_keys(ada.id, &newer, now.plus_secs(2)).await.expect("replace alone");
    assert_eq!(store.sealed_private_keys_of(ada.id).await.expect("keys").len(), 2);
    assert_eq!(store.sealed_private_key(first.id, ada.id).await.expect("sealed"), Some(b"newer 1".to_vec()));
    assert_eq!(store.sealed_private_keys_of(Uuid::now_v7()).await.expect("nobody's"), vec![]);
}

async fn an_email_change_can_rekey_in_its_transaction(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let token = issue(&store, ada.id, OneTimeKind::EmailChange, now).await;
    let change = |private_keys: Vec<(Uuid, Vec<u8>)>| Redemption::ChangeEmail {
        user_id: ada.id,
        email: "ada@new.example.com".to_owned(),
        rekey: Some(hearth_store::Rekey {
            password_hash: "$argon2id$rekeyed".to_owned(),
            private_keys,
            identity_private_key: None,
        }),
    };

    // Not exactly her keys: nothing happens, and the token is still good.
    let refused = store.redeem_one_time_token(&token, &change(wrong_set(Uuid::now_v7())), now).await;
    assert!(matches!(refused, Err(StoreError::Rule(_))), "{refused:?}");
    assert_eq!(user(&store, ada.id).await.email, ada.email);

    // She has an identity: a re-keying without its private key re-wrapped is refused the same way.
    store.set_identity(ada.id, &identity("ada"), false, now).await.expect("identity");
    let refused = store.redeem_one_time_token(&token, &change(vec![(team.id, b"rekeyed".to_vec())]), now).await;
    assert!(matches!(refused, Err(StoreError::Rule(_))), "{refused:?}");
    assert_eq!(user(&store, ada.id).await.email, ada.email);
    assert_eq!(
        store.sealed_private_key(team.id, ada.id).await.expect("sealed"),
        Some(keys(&ada.id.to_string()).sealed_private_key)
    );

    let rekeyed = Redemption::ChangeEmail {
        user_id: ada.id,
        email: "ada@new.example.com".to_owned(),
        rekey: Some(hearth_store::Rekey {
            password_hash: "$argon2id$rekeyed".to_owned(),
            private_keys: vec![(team.id, b"rekeyed".to_vec())],
            identity_private_key: Some(b"identity rekeyed".to_vec()),
        }),
    };
    store.redeem_one_time_token(&token, &rekeyed, now).await.expect("redeem");
    let changed = user(&store, ada.id).await;
    assert_eq!((changed.email.as_str(), changed.password_hash.as_str()), ("ada@new.example.com", "$argon2id$rekeyed"));
    assert_eq!(store.sealed_private_key(team.id, ada.id).await.expect("sealed"), Some(b"rekeyed".to_vec()));
    let expected = hearth_store::Identity {
        public_key: identity("ada").public_key,
        sealed_private_key: b"identity rekeyed".to_vec(),
    };
    assert_eq!(store.identity(ada.id).await.expect("identity"), Some(expected));
    assert_eq!(store.devices(ada.id).await.expect("devices"), vec![], "signed out as by a password change");
}

async fn encryption_keys_upsert(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, bob.id, &[ada.id, bob.id], now).await;
    let bob_keys = keys(&bob.id.to_string());

    let ada_keys = keys("ada");
    store.set_encryption_keys(team.id, ada.id, &ada_keys, now.plus_secs(1)).await.expect("set keys");
    assert_eq!(
        store.public_keys(team.id).await.expect("public keys"),
        vec![(ada.id, ada_keys.public_key.clone()), (bob.id, bob_keys.public_key.clone())]
    );
    assert_eq!(store.sealed_private_key(team.id, ada.id).await.expect("sealed"), Some(ada_keys.sealed_private_key));

    // Again: replaced.
    let replaced =
        EncryptionKeys { public_key: "{\"kty\":\"OKP\"}".to_owned(), sealed_private_key: vec![0, 1, 2, 255] };
    store.set_encryption_keys(team.id, ada.id, &replaced, now.plus_secs(2)).await.expect("replace keys");
    assert_eq!(
        store.public_keys(team.id).await.expect("public keys"),
        vec![(ada.id, replaced.public_key.clone()), (bob.id, bob_keys.public_key.clone())]
    );
    assert_eq!(store.sealed_private_key(team.id, ada.id).await.expect("sealed"), Some(replaced.sealed_private_key));
    assert_eq!(store.sealed_private_key(team.id, bob.id).await.expect("sealed"), Some(bob_keys.sealed_private_key));

    assert!(is_not_found(&store.set_encryption_keys(team.id, cy.id, &keys("cy"), now).await));
    assert!(is_not_found(&store.set_encryption_keys(Uuid::now_v7(), ada.id, &keys("ada"), now).await));
    assert!(is_not_found(&store.set_encryption_keys(team.id, Uuid::now_v7(), &keys("ghost"), now).await));
    assert_eq!(store.public_keys(team.id).await.expect("public keys").len(), 2);
    assert_eq!(store.sealed_private_key(team.id, cy.id).await.expect("sealed"), None);
}

async fn send_message_to_exactly_the_members(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy, dee] = people(&store, ["ada", "bob", "cy", "dee"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;
    let members = [ada.id, bob.id, cy.id];

    let sent = message(team.id, ada.id, contents("hello", &members), now);
    let delivery = store.send_message(&sent).await.expect("send");
    assert!(delivery.fresh);
    assert_eq!(delivery.conversation_id, team.id);
    assert_eq!(delivery.messages.keys().copied().collect::<Vec<_>>(), members.to_vec());
    let mut ids = Vec::new();
    for (recipient, stored) in &delivery.messages {
        assert_eq!(stored.message_group, sent.id);
        assert_eq!(stored.sender, ada.id);
        assert_eq!(stored.content, format!("hello for {recipient}"));
        assert_eq!((stored.inserted_at, stored.updated_at), (now, now));
        ids.push(stored.id);
        // Each recipient reads their own copy.
        assert_eq!(page(&store, team.id, *recipient).await, vec![stored.clone()]);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one message per recipient");

    let later = now.plus_secs(1);
    let broken = [
        // Someone missing.
        (message(team.id, ada.id, contents("missing", &[ada.id, bob.id]), later), true),
        // Someone extra.
        (message(team.id, ada.id, contents("extra", &[ada.id, bob.id, cy.id, dee.id]), later), true),
        // Someone else instead.
        (message(team.id, ada.id, contents("swapped", &[ada.id, bob.id, dee.id]), later), true),
        (message(team.id, ada.id, BTreeMap::new(), later), true),
        // Not a member.
        (message(team.id, dee.id, contents("outsider", &members), later), false),
        (message(Uuid::now_v7(), ada.id, contents("nowhere", &[ada.id]), later), false),
    ];
    for (attempt, rule) in &broken {
        let result = store.send_message(attempt).await;
        if *rule {
            assert!(is_rule(&result, RECIPIENTS_RULE), "{result:?}");
        } else {
            assert!(is_not_found(&result), "{result:?}");
        }
        // Nothing of it was stored.
        assert!(is_not_found(&store.delete_message(attempt.id, attempt.sender).await));
    }
    for recipient in members {
        assert_eq!(page(&store, team.id, recipient).await, vec![delivery.messages[&recipient].clone()]);
    }
    assert_eq!(page(&store, team.id, dee.id).await, vec![]);

    // Any member may send.
    let reply = send(&store, team.id, cy.id, "reply", &members, later).await;
    assert_eq!(reply.messages[&ada.id].sender, cy.id);
    assert_eq!(page(&store, team.id, ada.id).await.len(), 2);
}

async fn client_msg_id_makes_resends_idempotent(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let other = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let members = [ada.id, bob.id];

    let first = NewMessageGroup {
        client_msg_id: Some("client-1".to_owned()),
        ..message(team.id, ada.id, contents("first", &members), now)
    };
    let delivery = store.send_message(&first).await.expect("send");
    assert!(delivery.fresh);

    // A resend (new group id, time, even different content) returns the first send.
    let resend = NewMessageGroup {
        client_msg_id: Some("client-1".to_owned()),
        ..message(team.id, ada.id, contents("resend", &members), now.plus_secs(5))
    };
    let again = store.send_message(&resend).await.expect("resend");
    assert_eq!(again, MessageDelivery { fresh: false, ..delivery.clone() });
    // Without checking the recipients again.
    let sloppy = NewMessageGroup {
        client_msg_id: Some("client-1".to_owned()),
        ..message(team.id, ada.id, contents("sloppy", &[cy.id]), now.plus_secs(6))
    };
    assert_eq!(
        store.send_message(&sloppy).await.expect("resend"),
        MessageDelivery { fresh: false, ..delivery.clone() }
    );
    assert!(is_not_found(&store.delete_message(resend.id, ada.id).await));
    assert_eq!(page(&store, team.id, bob.id).await, vec![delivery.messages[&bob.id].clone()]);

    // The same client id from another sender, or in another conversation, is another send.
    let from_bob = NewMessageGroup {
        client_msg_id: Some("client-1".to_owned()),
        ..message(team.id, bob.id, contents("bob", &members), now)
    };
    assert!(store.send_message(&from_bob).await.expect("send").fresh);
    let elsewhere = NewMessageGroup {
        client_msg_id: Some("client-1".to_owned()),
        ..message(other.id, ada.id, contents("elsewhere", &members), now)
    };
    assert!(store.send_message(&elsewhere).await.expect("send").fresh);
    // A different client id is a different send; no client id never deduplicates.
    let second = NewMessageGroup {
        client_msg_id: Some("client-2".to_owned()),
        ..message(team.id, ada.id, contents("second", &members), now)
    };
    assert!(store.send_message(&second).await.expect("send").fresh);
    send(&store, team.id, ada.id, "plain", &members, now).await;
    send(&store, team.id, ada.id, "plain", &members, now).await;
    assert_eq!(page(&store, team.id, bob.id).await.len(), 5);

    // A failed first attempt claims nothing.
    let failed = NewMessageGroup {
        client_msg_id: Some("client-3".to_owned()),
        ..message(team.id, ada.id, contents("failed", &[ada.id]), now)
    };
    assert!(is_rule(&store.send_message(&failed).await, RECIPIENTS_RULE));
    let retry = NewMessageGroup { contents: contents("retry", &members), ..failed.clone() };
    assert!(store.send_message(&retry).await.expect("retry").fresh);
}

/// A send whose client chose its group id.
fn choosing(id: Uuid, send: NewMessageGroup) -> NewMessageGroup {
    NewMessageGroup { id, client_chose_id: true, ..send }
}

fn is_taken<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict("message_group_id")))
}

async fn a_chosen_group_id_is_stored_unless_it_is_taken(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let other = group(&store, cy.id, &[cy.id], now).await;
    let members = [ada.id, bob.id];
    let chosen = Uuid::new_v4();

    let first = NewMessageGroup {
        client_msg_id: Some("c-1".to_owned()),
        ..choosing(chosen, message(team.id, ada.id, contents("first", &members), now))
    };
    let delivery = store.send_message(&first).await.expect("send");
    assert!(delivery.fresh);
    assert!(delivery.messages.values().all(|copy| copy.message_group == chosen), "{delivery:?}");
    assert_eq!(page(&store, team.id, bob.id).await[0].message_group, chosen);

    // The same id again, by another member, in another conversation, or without the client
    // key: refused, nothing stored.
    let by_bob = choosing(chosen, message(team.id, bob.id, contents("bob", &members), now));
    assert!(is_taken(&store.send_message(&by_bob).await));
    let elsewhere = choosing(chosen, message(other.id, cy.id, contents("cy", &[cy.id]), now));
    assert!(is_taken(&store.send_message(&elsewhere).await));
    let again = choosing(chosen, message(team.id, ada.id, contents("again", &members), now));
    assert!(is_taken(&store.send_message(&again).await));
    // Someone who is not a member is not told whether it is in use.
    let outsider = choosing(chosen, message(team.id, cy.id, contents("cy", &members), now));
    assert!(is_not_found(&store.send_message(&outsider).await));
    // A server-made group's id is in use as well.
    let made = send(&store, team.id, bob.id, "made", &members, now).await.messages[&bob.id].message_group;
    let copying = choosing(made, message(team.id, ada.id, contents("copy", &members), now));
    assert!(is_taken(&store.send_message(&copying).await));
    assert_eq!(page(&store, team.id, bob.id).await.len(), 2);
    assert_eq!(page(&store, other.id, cy.id).await, vec![]);

    // A resend with the client key is the first send, as ever.
    let resend = NewMessageGroup { contents: contents("resend", &members), ..first.clone() };
    assert_eq!(store.send_message(&resend).await.expect("resend"), MessageDelivery { fresh: false, ..delivery });
    assert_eq!(page(&store, team.id, bob.id).await.len(), 2);

    // A fresh id goes through; edits and deletes find the group by it.
    let fresh = Uuid::new_v4();
    let second = choosing(fresh, message(team.id, bob.id, contents("second", &members), now));
    assert!(store.send_message(&second).await.expect("send").fresh);
    store.edit_message(fresh, bob.id, &contents("edited", &members), now).await.expect("edit");
    assert_eq!(store.delete_message(fresh, bob.id).await.expect("delete"), team.id);
}

/// However the sends fall into batches (SQLite's one writer, PostgreSQL's concurrent ones), of
/// sends that all choose one new group id exactly one is stored; the rest are refused, and
/// sends beside them are not.
async fn of_concurrent_sends_choosing_one_id_one_is_stored(store: Arc<dyn Store>) {
    const RACERS: usize = 12;
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let members = [ada.id, bob.id];
    let chosen = Uuid::now_v7();
    let sends: Vec<NewMessageGroup> = (0..RACERS)
        .map(|i| {
            let sender = if i % 2 == 0 { ada.id } else { bob.id };
            let send = message(team.id, sender, contents(&format!("try {i}"), &members), now);
            // Every third send chooses nothing: it is stored whatever happens to the others.
            if i % 3 == 2 { send } else { choosing(chosen, send) }
        })
        .collect();
    let barrier = Arc::new(Barrier::new(sends.len()));
    let tasks: Vec<_> = sends
        .iter()
        .map(|send| {
            let (store, barrier, send) = (store.clone(), barrier.clone(), send.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.send_message(&send).await
            })
        })
        .collect();
    let (mut winners, mut others) = (0, 0);
    for (send, task) in sends.iter().zip(tasks) {
        let result = task.await.expect("task");
        match (send.client_chose_id, result) {
            (true, Ok(delivery)) => {
                assert!(delivery.fresh);
                winners += 1;
            }
            (true, refused) => assert!(is_taken(&refused), "{refused:?}"),
            (false, stored) => {
                assert!(stored.expect("stored").fresh);
                others += 1;
            }
        }
    }
    assert_eq!((winners, others), (1, RACERS / 3));
    let copies = page(&store, team.id, bob.id).await;
    assert_eq!(copies.len(), 1 + RACERS / 3);
    assert_eq!(copies.iter().filter(|copy| copy.message_group == chosen).count(), 1);
}

async fn concurrent_resends_store_one_group(store: Arc<dyn Store>) {
    const RACERS: usize = 10;
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;
    let members = [ada.id, bob.id, cy.id];
    let barrier = Arc::new(Barrier::new(RACERS));

    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            let send = NewMessageGroup {
                client_msg_id: Some("same".to_owned()),
                ..message(team.id, ada.id, contents(&format!("try {i}"), &members), now)
            };
            tokio::spawn(async move {
                barrier.wait().await;
                store.send_message(&send).await
            })
        })
        .collect();
    let mut deliveries = Vec::new();
    for task in tasks {
        deliveries.push(task.await.expect("task").expect("send"));
    }
    let fresh: Vec<_> = deliveries.iter().filter(|delivery| delivery.fresh).collect();
    assert_eq!(fresh.len(), 1, "{deliveries:#?}");
    let winner = fresh[0].clone();
    for delivery in &deliveries {
        assert_eq!(delivery.messages, winner.messages);
    }
    let group_id = winner.messages[&ada.id].message_group;
    for recipient in members {
        let copies = page(&store, team.id, recipient).await;
        assert_eq!(copies, vec![winner.messages[&recipient].clone()]);
        assert_eq!(copies[0].message_group, group_id);
    }
}

/// Sends that arrive together are committed together; each must still get the outcome it
/// would have had alone, and a refused one must not take the others down with it.
async fn concurrent_sends_each_get_their_own_outcome(store: Arc<dyn Store>) {
    const ROUNDS: usize = 20;
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let pair = private(&store, bob.id, cy.id, now).await;
    let missing = Uuid::now_v7();

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Expect {
        Stored,
        Resend,
        NotFound,
        Rule,
    }
    let mut sends = Vec::new();
    for round in 0..ROUNDS {
        let tag = format!("r{round}");
        sends.push((Expect::Stored, message(team.id, ada.id, contents(&tag, &[ada.id, bob.id]), now)));
        sends.push((Expect::Stored, message(pair.id, cy.id, contents(&tag, &[bob.id, cy.id]), now)));
        sends.push((Expect::Rule, message(team.id, bob.id, contents(&tag, &[bob.id]), now)));
        sends.push((Expect::NotFound, message(team.id, cy.id, contents(&tag, &[ada.id, bob.id]), now)));
        sends.push((Expect::NotFound, message(missing, ada.id, contents(&tag, &[ada.id]), now)));
        let keyed = NewMessageGroup {
            client_msg_id: Some(format!("k{round}")),
            ..message(pair.id, bob.id, contents(&tag, &[bob.id, cy.id]), now)
        };
        sends.push((Expect::Stored, keyed.clone()));
        sends.push((Expect::Resend, NewMessageGroup { id: Uuid::now_v7(), ..keyed }));
    }
    let barrier = Arc::new(Barrier::new(sends.len()));
    let tasks: Vec<_> = sends
        .iter()
        .map(|(_, send)| {
            let (store, barrier, send) = (store.clone(), barrier.clone(), send.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.send_message(&send).await
            })
        })
        .collect();
    // A keyed send and its resend race: either may be the one stored; the other returns
    // the same delivery.
    let mut by_key: BTreeMap<String, Vec<MessageDelivery>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (index, ((expected, send), task)) in sends.iter().zip(tasks).enumerate() {
        let result = task.await.expect("task");
        let got = match &result {
            Ok(delivery) if delivery.fresh => Expect::Stored,
            Ok(_) => Expect::Resend,
            Err(StoreError::NotFound) => Expect::NotFound,
            Err(StoreError::Rule(_)) => Expect::Rule,
            Err(other) => panic!("unexpected error {other}"),
        };
        match (&send.client_msg_id, result) {
            (Some(key), Ok(delivery)) => by_key.entry(key.clone()).or_default().push(delivery),
            _ if got != *expected => wrong.push((index, *expected, got)),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
    assert_eq!(by_key.len(), ROUNDS);
    for (key, deliveries) in &by_key {
        assert_eq!(deliveries.len(), 2, "{key}");
        assert_eq!(deliveries.iter().filter(|d| d.fresh).count(), 1, "{key}: {deliveries:#?}");
        assert_eq!(deliveries[0].messages, deliveries[1].messages, "{key}");
    }
    // Exactly what the successful sends stored, once each.
    assert_eq!(page(&store, team.id, ada.id).await.len(), ROUNDS);
    assert_eq!(page(&store, team.id, bob.id).await.len(), ROUNDS);
    assert_eq!(page(&store, pair.id, bob.id).await.len(), 2 * ROUNDS);
    assert_eq!(page(&store, pair.id, cy.id).await.len(), 2 * ROUNDS);
}

/// A send the database itself refuses (PostgreSQL stores no NUL character in text; SQLite
/// does) fails alone, even when it was committed in one batch with others.
async fn a_send_the_database_refuses_fails_alone(store: Arc<dyn Store>) {
    const GOOD: usize = 30;
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let members = [ada.id, bob.id];
    let mut sends: Vec<NewMessageGroup> =
        (0..GOOD).map(|i| message(team.id, ada.id, contents(&format!("good {i}"), &members), now)).collect();
    sends.insert(GOOD / 2, message(team.id, bob.id, contents("nul \0 inside", &members), now));
    let barrier = Arc::new(Barrier::new(sends.len()));
    let tasks: Vec<_> = sends
        .iter()
        .map(|send| {
            let (store, barrier, send) = (store.clone(), barrier.clone(), send.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.send_message(&send).await
            })
        })
        .collect();
    let mut nul_stored = false;
    for (send, task) in sends.iter().zip(tasks) {
        let result = task.await.expect("task");
        if send.sender == bob.id {
            match result {
                Ok(delivery) => nul_stored = delivery.fresh,
                Err(error) => assert!(matches!(error, StoreError::Database(_)), "{error:?}"),
            }
        } else {
            assert!(result.expect("a good send is stored").fresh);
        }
    }
    assert_eq!(nul_stored, store.backend() == "sqlite");
    assert_eq!(page(&store, team.id, bob.id).await.len(), GOOD + usize::from(nul_stored));
}

async fn edit_message_follows_the_members(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let sent = send(&store, team.id, ada.id, "v1", &[ada.id, bob.id], now).await;
    let group_id = sent.messages[&ada.id].message_group;
    let t1 = now.plus_secs(1);

    // Only the sender may edit.
    assert!(is_not_found(&store.edit_message(group_id, bob.id, &contents("bob's", &[ada.id, bob.id]), t1).await));
    assert!(is_not_found(&store.edit_message(Uuid::now_v7(), ada.id, &contents("v2", &[ada.id, bob.id]), t1).await));
    let result = store.edit_message(group_id, ada.id, &contents("v2", &[ada.id]), t1).await;
    assert!(is_rule(&result, RECIPIENTS_RULE), "{result:?}");
    assert_eq!(page(&store, team.id, bob.id).await, vec![sent.messages[&bob.id].clone()]);

    let edited = store.edit_message(group_id, ada.id, &contents("v2", &[ada.id, bob.id]), t1).await.expect("edit");
    assert!(edited.fresh);
    assert_eq!(edited.conversation_id, team.id);
    for (recipient, stored) in &edited.messages {
        let original = &sent.messages[recipient];
        let expected = StoredMessage { content: format!("v2 for {recipient}"), updated_at: t1, ..original.clone() };
        assert_eq!(*stored, expected);
        assert_eq!(page(&store, team.id, *recipient).await, vec![expected]);
    }

    // Cy joins: an edit must now include them, and gives them a copy.
    let t2 = now.plus_secs(2);
    store.add_members(team.id, &[cy.id], t2).await.expect("add cy");
    let result = store.edit_message(group_id, ada.id, &contents("v3", &[ada.id, bob.id]), t2).await;
    assert!(is_rule(&result, RECIPIENTS_RULE), "{result:?}");
    assert_eq!(page(&store, team.id, cy.id).await, vec![]);
    let t3 = now.plus_secs(3);
    let edited = store.edit_message(group_id, ada.id, &contents("v3", &[ada.id, bob.id, cy.id]), t3).await;
    let edited = edited.expect("edit with cy");
    assert_eq!(edited.messages.keys().copied().collect::<Vec<_>>(), vec![ada.id, bob.id, cy.id]);
    let cy_copy = &edited.messages[&cy.id];
    assert!(sent.messages.values().all(|stored| stored.id != cy_copy.id), "a new id for cy's copy");
    assert_eq!(cy_copy.content, format!("v3 for {}", cy.id));
    assert_eq!((cy_copy.message_group, cy_copy.sender, cy_copy.updated_at), (group_id, ada.id, t3));
    assert_eq!(page(&store, team.id, cy.id).await, vec![cy_copy.clone()]);
    assert_eq!(edited.messages[&bob.id].id, sent.messages[&bob.id].id);
    assert_eq!(edited.messages[&bob.id].content, format!("v3 for {}", bob.id));

    // Bob leaves: his copy stays until the next edit, which drops it.
    store.leave_conversation(team.id, bob.id).await.expect("leave");
    assert_eq!(page(&store, team.id, bob.id).await.len(), 1);
    let t4 = now.plus_secs(4);
    let edited = store.edit_message(group_id, ada.id, &contents("v4", &[ada.id, cy.id]), t4).await.expect("edit");
    assert_eq!(edited.messages.keys().copied().collect::<Vec<_>>(), vec![ada.id, cy.id]);
    assert_eq!(edited.messages[&cy.id].id, cy_copy.id);
    assert_eq!(page(&store, team.id, bob.id).await, vec![]);
    assert_eq!(page(&store, team.id, ada.id).await, vec![edited.messages[&ada.id].clone()]);
}

async fn delete_message_removes_every_copy(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let doomed = send(&store, team.id, ada.id, "doomed", &[ada.id, bob.id], now).await;
    let kept = send(&store, team.id, bob.id, "kept", &[ada.id, bob.id], now).await;
    let doomed_id = doomed.messages[&ada.id].message_group;

    assert!(is_not_found(&store.delete_message(doomed_id, bob.id).await));
    assert_eq!(page(&store, team.id, bob.id).await.len(), 2);

    assert_eq!(store.delete_message(doomed_id, ada.id).await.expect("delete"), team.id);
    for recipient in [ada.id, bob.id] {
        assert_eq!(page(&store, team.id, recipient).await, vec![kept.messages[&recipient].clone()]);
    }
    assert!(is_not_found(&store.delete_message(doomed_id, ada.id).await));
    let result = store.edit_message(doomed_id, ada.id, &contents("zombie", &[ada.id, bob.id]), now).await;
    assert!(is_not_found(&result), "{result:?}");
    assert!(is_not_found(&store.delete_message(Uuid::now_v7(), ada.id).await));
}

async fn who_left_can_neither_edit_nor_delete_their_messages(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;
    let said = send(&store, team.id, cy.id, "before leaving", &[ada.id, bob.id, cy.id], now).await;
    let said_id = said.messages[&cy.id].message_group;
    store.leave_conversation(team.id, cy.id).await.expect("leave");

    let result = store.edit_message(said_id, cy.id, &contents("rewritten", &[ada.id, bob.id]), now).await;
    assert!(is_not_found(&result), "{result:?}");
    assert!(is_not_found(&store.delete_message(said_id, cy.id).await));
    for recipient in [ada.id, bob.id] {
        assert_eq!(page(&store, team.id, recipient).await, vec![said.messages[&recipient].clone()]);
    }
}

async fn messages_page_newest_first(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let other = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;

    let mut groups = Vec::new();
    for i in 0..5 {
        let sender = if i == 2 { bob.id } else { ada.id };
        // The clock goes backwards: history is ordered by the (time-ordered) group id.
        let at = now.plus_secs(-i);
        groups.push(send(&store, team.id, sender, &format!("m{i}"), &[ada.id, bob.id], at).await);
        send(&store, other.id, ada.id, "noise", &[ada.id, bob.id, cy.id], at).await;
    }
    let bobs = |indices: &[usize]| indices.iter().map(|i| groups[*i].messages[&bob.id].clone()).collect::<Vec<_>>();
    let group_id = |i: usize| groups[i].messages[&bob.id].message_group;

    let first = store.messages_page(team.id, bob.id, None, 2).await.expect("first page");
    assert_eq!(first, bobs(&[4, 3]));
    let second = store.messages_page(team.id, bob.id, Some(group_id(3)), 2).await.expect("second page");
    assert_eq!(second, bobs(&[2, 1]));
    assert_eq!(second[0].sender, bob.id);
    assert_eq!(second[0].content, format!("m2 for {}", bob.id));
    let third = store.messages_page(team.id, bob.id, Some(group_id(1)), 2).await.expect("third page");
    assert_eq!(third, bobs(&[0]));
    assert_eq!(store.messages_page(team.id, bob.id, Some(group_id(0)), 2).await.expect("past the end"), vec![]);

    assert_eq!(store.messages_page(team.id, bob.id, None, 100).await.expect("all"), bobs(&[4, 3, 2, 1, 0]));
    assert_eq!(store.messages_page(team.id, bob.id, None, 0).await.expect("none"), vec![]);
    // `before` is exclusive and need not be a group of this conversation.
    assert_eq!(store.messages_page(team.id, bob.id, Some(Uuid::nil()), 10).await.expect("before nil"), vec![]);
    assert_eq!(store.messages_page(team.id, bob.id, Some(Uuid::max()), 10).await.expect("before max").len(), 5);
    // Ada sees her own copies.
    let adas = store.messages_page(team.id, ada.id, None, 2).await.expect("ada's page");
    assert_eq!(adas, vec![groups[4].messages[&ada.id].clone(), groups[3].messages[&ada.id].clone()]);
    // Cy is not in that conversation.
    assert_eq!(page(&store, team.id, cy.id).await, vec![]);
    assert_eq!(page(&store, other.id, cy.id).await.len(), 5);
}

/// History is ordered by the key the server gives each group as it stores it, never by an id a
/// client chose: the smallest and the largest ids sit where they were sent.
async fn a_chosen_group_id_does_not_move_its_message_in_history(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let members = [ada.id, bob.id];
    let ids = [Uuid::from_u128(1), Uuid::now_v7(), Uuid::max(), Uuid::new_v4(), Uuid::from_u128(2)];
    let mut sent = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let send = message(team.id, ada.id, contents(&format!("m{i}"), &members), now);
        // Every other one keeps the server's id.
        let send = if i % 2 == 0 { choosing(id, send) } else { send };
        let delivery = store.send_message(&send).await.expect("send");
        assert_eq!(delivery.messages[&bob.id].history_key, send.history_key);
        sent.push(delivery.messages[&bob.id].clone());
    }
    let newest_first: Vec<StoredMessage> = sent.iter().rev().cloned().collect();
    assert_eq!(page(&store, team.id, bob.id).await, newest_first);
    // Pages continue from the last one's history key.
    let first = store.messages_page(team.id, bob.id, None, 2).await.expect("first page");
    assert_eq!(first, newest_first[..2]);
    let rest = store.messages_page(team.id, bob.id, Some(first[1].history_key), 10).await.expect("the rest");
    assert_eq!(rest, newest_first[2..]);
    // An edit keeps its place; the edit's delivery says where that is.
    let edited = store.edit_message(ids[2], ada.id, &contents("edited", &members), now).await.expect("edit");
    assert_eq!(edited.messages[&bob.id].history_key, sent[2].history_key);
    let listed = page(&store, team.id, bob.id).await;
    assert_eq!(
        listed.iter().map(|copy| copy.message_group).collect::<Vec<_>>(),
        [sent[4].message_group, sent[3].message_group, ids[2], sent[1].message_group, ids[0]]
    );
}

async fn sealed_private_keys_page_and_compare_and_swap(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let mut expected = Vec::new();
    for (creator, members) in
        [(ada.id, vec![ada.id, bob.id, cy.id]), (cy.id, vec![cy.id, bob.id]), (bob.id, vec![bob.id])]
    {
        // Random ids, so creation order is not key order.
        let new = NewConversation { id: Uuid::new_v4(), ..new_conversation(creator, &members, false, now) };
        store.create_conversation(&new).await.expect("create");
        expected.push(SealedKeyRow {
            conversation_id: new.id,
            user_id: creator,
            sealed_private_key: new.creator_keys.sealed_private_key.clone(),
        });
        for member in members.into_iter().filter(|member| *member != creator) {
            let keys = keys(&format!("{member} in {}", new.id));
            store.set_encryption_keys(new.id, member, &keys, now).await.expect("set keys");
            expected.push(SealedKeyRow {
                conversation_id: new.id,
                user_id: member,
                sealed_private_key: keys.sealed_private_key,
            });
        }
    }
    expected.sort_by_key(|row| (row.conversation_id, row.user_id));
    assert_eq!(expected.len(), 6);

    assert_eq!(store.sealed_private_keys(None, 100).await.expect("all"), expected);
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store.sealed_private_keys(after, 2).await.expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2, "page too long: {page:?}");
        after = page.last().map(|row| (row.conversation_id, row.user_id));
        pages.push(page);
        assert!(pages.len() <= 4, "paging does not terminate");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 2]);
    assert_eq!(pages.concat(), expected);
    // `after` compares the pair: the same conversation's later users come next.
    let (c, u) = (expected[0].conversation_id, expected[0].user_id);
    assert_eq!(store.sealed_private_keys(Some((c, u)), 100).await.expect("after first"), expected[1..].to_vec());
    assert_eq!(store.sealed_private_keys(Some((c, Uuid::nil())), 100).await.expect("after nil user"), expected);
    assert_eq!(
        store.sealed_private_keys(Some((c, Uuid::max())), 100).await.expect("after max user").len(),
        6 - { expected.iter().filter(|row| row.conversation_id == c).count() }
    );
    assert_eq!(store.sealed_private_keys(Some((Uuid::max(), Uuid::max())), 100).await.expect("after max"), vec![]);

    // Compare and swap.
    let row = &expected[3];
    let (conversation_id, user_id) = (row.conversation_id, row.user_id);
    let resealed = b"resealed under the new vault key".to_vec();
    let swapped = store.replace_sealed_private_key(conversation_id, user_id, b"not the old one", &resealed).await;
    assert!(!swapped.expect("stale replace"));
    assert_eq!(
        store.sealed_private_key(conversation_id, user_id).await.expect("sealed"),
        Some(row.sealed_private_key.clone())
    );
    let swapped = store.replace_sealed_private_key(conversation_id, user_id, &row.sealed_private_key, &resealed).await;
    assert!(swapped.expect("replace"));
    assert_eq!(store.sealed_private_key(conversation_id, user_id).await.expect("sealed"), Some(resealed.clone()));
    // The old value no longer matches.
    let again = store.replace_sealed_private_key(conversation_id, user_id, &row.sealed_private_key, b"other").await;
    assert!(!again.expect("replace again"));
    assert_eq!(store.sealed_private_key(conversation_id, user_id).await.expect("sealed"), Some(resealed.clone()));
    let missing = store.replace_sealed_private_key(Uuid::now_v7(), user_id, &resealed, b"other").await;
    assert!(!missing.expect("replace missing"));
    // Only that row changed.
    let mut after_swap = expected.clone();
    after_swap[3].sealed_private_key = resealed;
    assert_eq!(store.sealed_private_keys(None, 100).await.expect("all"), after_swap);
}

async fn delete_user_removes_conversation_rows(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let team = group(&store, ada.id, &[ada.id, bob.id, cy.id], now).await;
    let dm = private(&store, bob.id, ada.id, now).await;
    store.set_encryption_keys(team.id, bob.id, &keys("bob"), now).await.expect("keys");
    store.set_encryption_keys(dm.id, ada.id, &keys("ada"), now).await.expect("keys");
    let from_ada = send(&store, team.id, ada.id, "from ada", &[ada.id, bob.id, cy.id], now).await;
    let from_bob = send(&store, team.id, bob.id, "from bob", &[ada.id, bob.id, cy.id], now).await;
    send(&store, dm.id, ada.id, "dm", &[ada.id, bob.id], now).await;

    store.delete_user(ada.id).await.expect("delete user");

    assert_eq!(store.conversations_of(ada.id).await.expect("conversations"), vec![]);
    assert_eq!(store.member_ids(team.id).await.expect("members"), vec![bob.id, cy.id]);
    assert_eq!(store.member_ids(dm.id).await.expect("members"), vec![bob.id]);
    assert_eq!(store.public_keys(team.id).await.expect("public keys"), vec![(bob.id, keys("bob").public_key)]);
    assert_eq!(
        store.public_keys(dm.id).await.expect("public keys"),
        vec![(bob.id, keys(&bob.id.to_string()).public_key)]
    );
    let sealed = store.sealed_private_keys(None, 100).await.expect("sealed keys");
    assert_eq!(sealed.len(), 2);
    assert!(sealed.iter().all(|row| row.user_id == bob.id), "{sealed:?}");
    let summaries = store.conversation_partners(bob.id).await.expect("partners");
    assert_eq!(summaries, vec![UserSummary::from(&cy)]);

    // Ada's sends are gone from everyone's history; her copies of others' sends too.
    for recipient in [bob.id, cy.id] {
        assert_eq!(page(&store, team.id, recipient).await, vec![from_bob.messages[&recipient].clone()]);
    }
    assert_eq!(page(&store, dm.id, bob.id).await, vec![]);
    let bob_group = from_bob.messages[&bob.id].message_group;
    let edited = store.edit_message(bob_group, bob.id, &contents("edited", &[bob.id, cy.id]), now).await;
    assert_eq!(edited.expect("edit").messages.keys().copied().collect::<Vec<_>>(), vec![bob.id, cy.id]);
    let ada_group = from_ada.messages[&bob.id].message_group;
    assert!(is_not_found(&store.delete_message(ada_group, ada.id).await));

    // The conversations, and the others' use of them, carry on.
    assert!(store.conversation(team.id).await.expect("conversation").is_some());
    send(&store, team.id, cy.id, "still here", &[bob.id, cy.id], now).await;
}

/// A user's sends and copies go with them also where they had left, and nobody else's do.
async fn delete_user_removes_sends_where_they_left(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob, cy] = people(&store, ["ada", "bob", "cy"], now).await;
    let club = group(&store, bob.id, &[bob.id, ada.id, cy.id], now).await;
    send(&store, club.id, ada.id, "before leaving", &[ada.id, bob.id, cy.id], now).await;
    let to_ada = send(&store, club.id, bob.id, "to ada", &[ada.id, bob.id, cy.id], now).await;
    store.leave_conversation(club.id, ada.id).await.expect("leave");
    let after = send(&store, club.id, cy.id, "after", &[bob.id, cy.id], now).await;
    assert_eq!(page(&store, club.id, ada.id).await.len(), 2);

    store.delete_user(ada.id).await.expect("delete user");

    for recipient in [bob.id, cy.id] {
        let expected = vec![after.messages[&recipient].clone(), to_ada.messages[&recipient].clone()];
        assert_eq!(page(&store, club.id, recipient).await, expected);
    }
    assert_eq!(page(&store, club.id, ada.id).await, vec![]);
}
