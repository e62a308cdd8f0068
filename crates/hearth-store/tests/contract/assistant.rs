//! The assistant: the free tier's allowance, threads' turns, assistant conversations and replies,
//! images, and the knowledge base.

use std::sync::Arc;

use hearth_store::{ASSISTANT_SENDER, AllowanceKind, AssistantImage, AssistantTurn, KnowledgeEntry, Store, Timestamp};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::conversations::{group, page, people, send};
use crate::is_not_found;

contract!(
    allowance_is_exact_under_concurrency,
    allowance_counts_per_day_and_kind_and_refunds,
    assistant_turns_newest_first_per_thread,
    concurrent_turns_are_all_stored_and_a_bad_one_fails_alone,
    one_assistant_conversation_per_person,
    assistant_replies_reach_only_the_owner,
    assistant_images_only_for_their_owner,
    knowledge_is_searched_by_words_within_a_topic,
);

async fn allowance_is_exact_under_concurrency(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada] = people(&store, ["ada"], now).await;
    let start = Arc::new(Barrier::new(100));
    let takers: Vec<_> = (0..100)
        .map(|_| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.take_allowance(ada.id, "2026-11-30", AllowanceKind::Text, 20).await.expect("take")
            })
        })
        .collect();
    let mut granted = Vec::new();
    for taker in takers {
        if let Some(used) = taker.await.expect("taker") {
            granted.push(used);
        }
    }
    granted.sort_unstable();
    assert_eq!(granted, (1..=20).collect::<Vec<u32>>(), "each of 20 units granted once");
    assert_eq!(store.allowance_used(ada.id, "2026-11-30", AllowanceKind::Text).await.expect("used"), 20);
}

async fn allowance_counts_per_day_and_kind_and_refunds(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let take = |user, day, kind| {
        let store = store.clone();
        async move { store.take_allowance(user, day, kind, 2).await.expect("take") }
    };
    assert_eq!(take(ada.id, "2026-11-30", AllowanceKind::Image).await, Some(1));
    assert_eq!(take(ada.id, "2026-11-30", AllowanceKind::Image).await, Some(2));
    assert_eq!(take(ada.id, "2026-11-30", AllowanceKind::Image).await, None);
    // Another kind, another day, another user: their own counts.
    assert_eq!(take(ada.id, "2026-11-30", AllowanceKind::Text).await, Some(1));
    assert_eq!(take(ada.id, "2026-12-01", AllowanceKind::Image).await, Some(1));
    assert_eq!(take(bob.id, "2026-11-30", AllowanceKind::Image).await, Some(1));
    // A refund frees one unit; refunds never go below zero.
    store.refund_allowance(ada.id, "2026-11-30", AllowanceKind::Image).await.expect("refund");
    assert_eq!(take(ada.id, "2026-11-30", AllowanceKind::Image).await, Some(2));
    for _ in 0..3 {
        store.refund_allowance(bob.id, "2026-11-30", AllowanceKind::Image).await.expect("refund");
    }
    assert_eq!(store.allowance_used(bob.id, "2026-11-30", AllowanceKind::Image).await.expect("used"), 0);
    store.refund_allowance(bob.id, "2020-01-01", AllowanceKind::Text).await.expect("refund of nothing");
    // A limit of zero grants nothing.
    assert_eq!(store.take_allowance(bob.id, "2026-11-30", AllowanceKind::Text, 0).await.expect("take"), None);
    // Deleting the account deletes its counts.
    store.delete_user(ada.id).await.expect("delete");
    assert_eq!(store.allowance_used(ada.id, "2026-11-30", AllowanceKind::Image).await.expect("used"), 0);
}

async fn assistant_turns_newest_first_per_thread(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let turn = |user_id, thread: &str, n: i64, answered: bool| AssistantTurn {
        id: Uuid::now_v7(),
        user_id,
        thread: thread.to_owned(),
        topic: Some("dsa".to_owned()),
        prompt: format!("question {n}"),
        reply: format!("answer {n}"),
        provider: answered.then(|| "groq".to_owned()),
        answered,
        attempts: r#"[{"provider":"groq","key":"0011223344556677","outcome":"answered","latency_ms":3}]"#.to_owned(),
        inserted_at: now.plus_secs(n),
    };
    let turns: Vec<AssistantTurn> =
        (0..5).map(|n| turn(ada.id, "conv_1", n, n != 3)).chain([turn(ada.id, "conv_2", 9, true)]).collect();
    for turn in &turns {
        store.record_assistant_turn(turn).await.expect("record");
    }
    store.record_assistant_turn(&turn(bob.id, "conv_1", 7, true)).await.expect("record bob's");
    let newest = store.assistant_turns(ada.id, "conv_1", 3).await.expect("turns");
    assert_eq!(newest, vec![turns[4].clone(), turns[3].clone(), turns[2].clone()]);
    assert!(!newest[1].answered && newest[1].provider.is_none());
    assert_eq!(store.assistant_turns(ada.id, "conv_2", 10).await.expect("turns"), vec![turns[5].clone()]);
    assert_eq!(store.assistant_turns(ada.id, "conv_3", 10).await.expect("turns"), vec![]);
    store.delete_user(ada.id).await.expect("delete");
    assert_eq!(store.assistant_turns(ada.id, "conv_1", 10).await.expect("turns"), vec![]);
    assert_eq!(store.assistant_turns(bob.id, "conv_1", 10).await.expect("turns").len(), 1);
}

async fn concurrent_turns_are_all_stored_and_a_bad_one_fails_alone(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada] = people(&store, ["ada"], now).await;
    let turn = |user_id, n: i64| AssistantTurn {
        id: Uuid::now_v7(),
        user_id,
        thread: "conv_busy".to_owned(),
        topic: None,
        prompt: format!("question {n}"),
        reply: format!("answer {n}"),
        provider: Some("groq".to_owned()),
        answered: true,
        attempts: "[]".to_owned(),
        inserted_at: now.plus_secs(n),
    };
    // More than one batch's worth at once, with one turn of nobody (refused by its foreign key)
    // among them: it fails, and only it.
    let nobody = Uuid::now_v7();
    let writers: Vec<_> = (0..300)
        .map(|n| {
            let (store, turn) = (store.clone(), turn(if n == 150 { nobody } else { ada.id }, n));
            tokio::spawn(async move { store.record_assistant_turn(&turn).await })
        })
        .collect();
    let mut failed = Vec::new();
    for (n, writer) in writers.into_iter().enumerate() {
        if writer.await.expect("writer").is_err() {
            failed.push(n);
        }
    }
    assert_eq!(failed, [150]);
    assert_eq!(store.assistant_turns(ada.id, "conv_busy", 1000).await.expect("turns").len(), 299);
}

async fn one_assistant_conversation_per_person(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    assert_eq!(store.assistant_conversation(ada.id).await.expect("look up"), None);
    // Racing first uses make one conversation.
    let start = Arc::new(Barrier::new(8));
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.create_assistant_conversation(Uuid::now_v7(), ada.id, now).await.expect("create")
            })
        })
        .collect();
    let mut made = Vec::new();
    for racer in racers {
        made.push(racer.await.expect("racer"));
    }
    assert_eq!(made.iter().filter(|(_, created)| *created).count(), 1, "one creation wins");
    let conversation = made[0].0.clone();
    assert!(made.iter().all(|(c, _)| *c == conversation));
    assert!(conversation.assistant && !conversation.private && conversation.alias.is_none());
    assert_eq!(store.assistant_conversation(ada.id).await.expect("look up"), Some(conversation.clone()));
    assert_eq!(store.member_ids(conversation.id).await.expect("members"), vec![ada.id]);
    assert_eq!(store.conversations_of(ada.id).await.expect("list"), vec![conversation.clone()]);
    // Bob's is his own; ordinary conversations are no assistant's.
    let (bobs, created) = store.create_assistant_conversation(Uuid::now_v7(), bob.id, now).await.expect("bob's");
    assert!(created && bobs.id != conversation.id);
    let club = group(&store, ada.id, &[ada.id, bob.id], now).await;
    assert!(!club.assistant);
    assert!(!store.conversation(club.id).await.expect("read").expect("exists").assistant);
    // A user that does not exist has none.
    let nobody = store.create_assistant_conversation(Uuid::now_v7(), Uuid::now_v7(), now).await;
    assert!(is_not_found(&nobody), "{nobody:?}");
}

async fn assistant_replies_reach_only_the_owner(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let (conversation, _) = store.create_assistant_conversation(Uuid::now_v7(), ada.id, now).await.expect("create");
    let prompt = send(&store, conversation.id, ada.id, "what is a heap?", &[ada.id], now).await;
    let reply_group = Uuid::now_v7();
    let later = now.plus_secs(1);
    let delivery =
        store.post_assistant_reply(reply_group, conversation.id, "a tree with an order", later).await.expect("reply");
    assert!(delivery.fresh);
    assert_eq!(delivery.conversation_id, conversation.id);
    assert_eq!(delivery.messages.keys().copied().collect::<Vec<_>>(), vec![ada.id]);
    let reply = &delivery.messages[&ada.id];
    assert_eq!(
        (reply.sender, reply.message_group, reply.content.as_str()),
        (ASSISTANT_SENDER, reply_group, "a tree with an order")
    );
    assert_eq!(page(&store, conversation.id, ada.id).await, vec![reply.clone(), prompt.messages[&ada.id].clone()]);
    // Only into an assistant conversation.
    let club = group(&store, ada.id, &[ada.id, bob.id], now).await;
    let refused = store.post_assistant_reply(Uuid::now_v7(), club.id, "no", now).await;
    assert!(is_not_found(&refused), "{refused:?}");
    // Deleting the owner deletes the conversation and the assistant's replies in it.
    store.delete_user(ada.id).await.expect("delete");
    assert_eq!(store.conversation(conversation.id).await.expect("read"), None);
    assert_eq!(store.assistant_conversation(ada.id).await.expect("look up"), None);
}

async fn assistant_images_only_for_their_owner(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let [ada, bob] = people(&store, ["ada", "bob"], now).await;
    let image = AssistantImage {
        id: Uuid::now_v7(),
        user_id: ada.id,
        content_type: "image/png".to_owned(),
        bytes: b"\x89PNG\r\n\x1a\n and the rest".to_vec(),
        prompt: "a lighthouse".to_owned(),
        provider: "openai".to_owned(),
        inserted_at: now,
    };
    store.store_assistant_image(&image).await.expect("store");
    assert_eq!(store.assistant_image(image.id, ada.id).await.expect("read"), Some(image.clone()));
    assert_eq!(store.assistant_image(image.id, bob.id).await.expect("read"), None, "not bob's");
    assert_eq!(store.assistant_image(Uuid::now_v7(), ada.id).await.expect("read"), None);
    store.delete_user(ada.id).await.expect("delete");
    assert_eq!(store.assistant_image(image.id, ada.id).await.expect("read"), None);
}

async fn knowledge_is_searched_by_words_within_a_topic(store: Arc<dyn Store>) {
    let entry = |topic: &str, question: &str| KnowledgeEntry {
        topic: topic.to_owned(),
        question: question.to_owned(),
        answer: format!("answer to {question}"),
    };
    let entries = [
        entry("hearth", "How do I start a private conversation?"),
        entry("hearth", "How do I change my password?"),
        entry("dsa", "What is a binary tree?"),
        entry("dsa", "What is a heap?"),
    ];
    store.replace_knowledge(&entries).await.expect("load");
    let search = |topic: &'static str, words: &[&str]| {
        let store = store.clone();
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        async move { store.search_knowledge(topic, &words, 5).await.expect("search") }
    };
    // Stemming: "starting" finds "start".
    assert_eq!(search("hearth", &["starting", "conversations"]).await, vec![entries[0].clone()]);
    // Any word may match; the best match comes first.
    assert_eq!(search("dsa", &["binary", "tree", "heap"]).await.first(), Some(&entries[2]));
    assert_eq!(search("dsa", &["heap"]).await, vec![entries[3].clone()]);
    // Only the topic asked about.
    assert_eq!(search("hearth", &["heap"]).await, vec![]);
    assert_eq!(search("nothing", &["heap"]).await, vec![]);
    // Search syntax in the words is ignored, not run.
    assert_eq!(search("dsa", &["heap*", "(tree)", "NEAR(", "-", "|", "!"]).await.len(), 2);
    assert_eq!(search("dsa", &["heap\" OR \"tree"]).await, vec![], "one word: heapORtree");
    assert_eq!(search("dsa", &["\"", "'"]).await, vec![]);
    assert_eq!(search("dsa", &[]).await, vec![]);
    // Replacing drops what was there.
    store.replace_knowledge(&entries[..1]).await.expect("reload");
    assert_eq!(search("dsa", &["heap"]).await, vec![]);
    assert_eq!(search("hearth", &["start"]).await, vec![entries[0].clone()]);
}
