//! The assistant against the fake provider. Over HTTP (`POST /api/chat/message`): seed 004's
//! shapes, validation, the free tier's exact daily count and its refunds, the sliding window,
//! the failure replies, and keys kept out of replies and files. Over a socket: the assistant
//! conversation, its streamed replies, commands and images, and limits answered in chat.

use hearth_ai::{ApiKey, ProviderName};
use hearth_fake_provider::FakeProvider;
use hearth_server::settings::Settings;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};

use crate::channels::Peer;
use crate::harness::{Reply, TestApp, assert_keys, assert_no_file_contains, spawn_app_with};
use crate::socket_client::{next_json, send};

const PATH: &str = "/api/chat/message";

/// A key of `provider`'s shape that makes the fake act out `scenario`.
pub(crate) fn fake_key(provider: ProviderName, scenario: &str) -> String {
    let fake = hearth_fake_provider::Provider::from_name(provider.as_str()).expect("the fake knows every provider");
    fake.key_for(&scenario.parse().expect("a scenario of the fake"))
}

/// A server whose providers all point at `fake`, with `configure` applied after.
pub(crate) async fn spawn_with_fake(fake: &FakeProvider, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let base_urls: Vec<(ProviderName, String)> = ProviderName::ALL
        .into_iter()
        .map(|provider| (provider, fake.base_url(provider.as_str()).expect("the fake serves it")))
        .collect();
    spawn_app_with(move |settings| {
        for (provider, base_url) in base_urls {
            let provider_settings = settings.ai.providers.get_mut(provider);
            provider_settings.base_url = base_url;
            provider_settings.timeout_secs = std::time::Duration::from_secs(5);
        }
        configure(settings);
    })
    .await
}

async fn chat(app: &TestApp, token: &str, body: &Value) -> Reply {
    app.post_authed(PATH, token, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_has_seed_004s_shape_and_the_thread_carries_on() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_fake(&fake, |_| {}).await;
    let ann = app.register("ann@example.org").await;
    let body = json!({
        "courseId": "DSA",
        "message": "What is a binary tree?",
        "apiKeys": {"gemini": fake_key(ProviderName::Gemini, "quota"), "groq": fake_key(ProviderName::Groq, "ok")},
    });
    let reply = chat(&app, &ann.auth_token, &body).await;
    let first = reply.expect_status(StatusCode::OK).clone();
    assert_keys(&first, &["conversationId", "userMessage", "aiResponse", "provider", "rateLimit", "timestamp"]);
    assert_eq!(first["userMessage"], "What is a binary tree?");
    assert_eq!(
        first["aiResponse"], "groq reply to: What is a binary tree?",
        "gemini's quota failure fell back to groq"
    );
    assert_eq!(first["provider"], "groq");
    assert_eq!(first["rateLimit"], json!({"remaining": 29, "resetIn": 60}));
    let conversation = first["conversationId"].as_str().expect("a conversation id");
    assert!(conversation.starts_with("conv_"), "{conversation}");
    let timestamp = first["timestamp"].as_str().expect("a timestamp");
    assert!(chrono::DateTime::parse_from_rfc3339(timestamp).is_ok() && timestamp.len() == 20, "{timestamp}");

    // The same thread again: the earlier turn is sent along as context.
    let body = json!({"conversationId": conversation, "message": "And a heap?", "apiKeys": {"groq": fake_key(ProviderName::Groq, "ok")}});
    let second = chat(&app, &ann.auth_token, &body).await.expect_status(StatusCode::OK).clone();
    assert_eq!(second["conversationId"], conversation);
    assert_eq!(second["rateLimit"]["remaining"], 28);
    let last = fake.requests().pop().expect("a provider request");
    assert_eq!(last.last_user_text.as_deref(), Some("And a heap?"));
    let roles: Vec<&str> = last.messages.iter().map(|(role, _)| role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"], "the instructions, the earlier turn, the new question");
    assert_eq!(last.messages[1].1, "What is a binary tree?");
    assert_eq!(last.messages[2].1, "groq reply to: What is a binary tree?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_any_provider_is_called() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_fake(&fake, |_| {}).await;
    let ann = app.register("ann@example.org").await;
    let groq = fake_key(ProviderName::Groq, "ok");
    let too_many: serde_json::Map<String, Value> =
        (0..11).map(|i| (format!("provider{i}"), json!(groq.clone()))).collect();
    let cases = [
        (json!({"message": "", "apiKeys": {"groq": groq}}), "message"),
        (json!({"message": "   ", "apiKeys": {"groq": groq}}), "message"),
        (json!({"message": "x".repeat(10_001), "apiKeys": {"groq": groq}}), "message"),
        (json!({"message": "hi", "courseId": "no spaces", "apiKeys": {"groq": groq}}), "courseId"),
        (json!({"message": "hi", "courseId": "x".repeat(101), "apiKeys": {"groq": groq}}), "courseId"),
        (json!({"message": "hi", "conversationId": "a/b", "apiKeys": {"groq": groq}}), "conversationId"),
        (json!({"message": "hi", "apiKeys": {"mistral": groq}}), "apiKeys"),
        // A key where the name belongs is not echoed back.
        (json!({"message": "hi", "apiKeys": {"gsk_0123456789abcdefSWAPPED": "groq"}}), "apiKeys"),
        (json!({"message": "hi", "apiKeys": {"groq": "gsk_short"}}), "apiKeys.groq"),
        (json!({"message": "hi", "apiKeys": {"groq": "x".repeat(501)}}), "apiKeys.groq"),
        (json!({"message": "hi", "apiKeys": {"groq": "gsk_with a space 0123456789"}}), "apiKeys.groq"),
        (json!({"message": "hi", "apiKeys": {"gemini": groq}}), "apiKeys.gemini"),
        // (serde_json sorts keys: `GROQ` is read first, so `groq` is the duplicate.)
        (json!({"message": "hi", "apiKeys": {"groq": groq, "GROQ": groq}}), "apiKeys.groq"),
        (json!({"message": "hi", "apiKeys": too_many}), "apiKeys"),
        (json!({"message": "hi", "apiKeys": ["not", "an", "object"]}), "apiKeys"),
        (json!({"apiKeys": {"groq": groq}}), "message"),
    ];
    for (body, field) in cases {
        let reply = chat(&app, &ann.auth_token, &body).await;
        reply.expect_invalid(field);
        assert!(!reply.text.contains("0123456789"), "a problem never quotes a key: {}", reply.text);
    }
    app.post(PATH, &json!({"message": "hi", "apiKeys": {"groq": groq}}))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(fake.requests().is_empty(), "no provider was called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_free_tier_serves_exactly_its_daily_replies_under_concurrency() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let operator_key = fake_key(ProviderName::Cerebras, "ok");
    let app = spawn_with_fake(&fake, |settings| {
        settings.keyguard.free_tier.keys.insert(ProviderName::Cerebras, vec![ApiKey::new(operator_key)]);
        settings.ai.requests_per_window = 1_000;
    })
    .await;
    let ann = app.register("ann@example.org").await;
    let requests = (0..100).map(|i| {
        let request = app
            .request(reqwest::Method::POST, PATH, Some(&ann.auth_token))
            .json(&json!({"message": format!("question {i}")}));
        tokio::spawn(async move { Reply::read(request.send().await.expect("send")).await })
    });
    let replies: Vec<Reply> =
        futures::future::join_all(requests).await.into_iter().map(|reply| reply.expect("request task")).collect();
    let served: Vec<&Reply> = replies.iter().filter(|reply| reply.status == StatusCode::OK).collect();
    assert_eq!(served.len(), 20, "exactly the daily allowance is served");
    assert!(served.iter().all(|reply| reply.json["provider"] == "cerebras"));
    for refused in replies.iter().filter(|reply| reply.status != StatusCode::OK) {
        refused.expect_error(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");
        let retry_after: u64 = refused.headers[RETRY_AFTER].to_str().expect("ascii").parse().expect("seconds");
        assert!((1..=86_400).contains(&retry_after), "until the next UTC day: {retry_after}");
        assert_eq!(refused.json["retryAfter"], retry_after);
    }
    assert_eq!(fake.requests().len(), 20, "refused requests never reach a provider");

    // People with their own keys have no daily quota.
    let own = json!({"message": "my own key", "apiKeys": {"groq": fake_key(ProviderName::Groq, "ok")}});
    chat(&app, &ann.auth_token, &own).await.expect_status(StatusCode::OK);
    // Another person has their own allowance.
    let bob = app.register("bob@example.org").await;
    chat(&app, &bob.auth_token, &json!({"message": "hello"})).await.expect_status(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_every_provider_failed_gives_its_allowance_back() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_fake(&fake, |settings| {
        let failing = ApiKey::new(fake_key(ProviderName::Gemini, "server_error"));
        settings.keyguard.free_tier.keys.insert(ProviderName::Gemini, vec![failing]);
        settings.ai.free_tier.text_per_day = 1;
        settings.ai.routing.failures_before_cooldown = 100;
    })
    .await;
    let ann = app.register("ann@example.org").await;
    // With one reply a day, a second failure (not a 429) shows the first was refunded.
    for _ in 0..3 {
        let reply = chat(&app, &ann.auth_token, &json!({"message": "hello"})).await;
        let body = reply.expect_error(StatusCode::BAD_GATEWAY, "all_providers_failed");
        assert_eq!(body["message"], "gemini had an internal error.");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sliding_window_limits_everyone() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_fake(&fake, |settings| settings.ai.requests_per_window = 3).await;
    let ann = app.register("ann@example.org").await;
    let body = json!({"message": "hi", "apiKeys": {"anthropic": fake_key(ProviderName::Anthropic, "ok")}});
    for remaining in [2, 1, 0] {
        let reply = chat(&app, &ann.auth_token, &body).await;
        assert_eq!(reply.expect_status(StatusCode::OK)["rateLimit"]["remaining"], remaining);
    }
    let refused = chat(&app, &ann.auth_token, &body).await;
    let error = refused.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = refused.headers[RETRY_AFTER].to_str().expect("ascii").parse().expect("seconds");
    assert!((59..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(error["retryAfter"], retry_after);
    assert_eq!(fake.requests().len(), 3);
    // Someone else is not affected.
    let bob = app.register("bob@example.org").await;
    chat(&app, &bob.auth_token, &body).await.expect_status(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_answered_with_what_went_wrong() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_fake(&fake, |_| {}).await;
    let ann = app.register("ann@example.org").await;

    let body = json!({"message": "hi", "apiKeys": {
        "gemini": fake_key(ProviderName::Gemini, "invalid_key"),
        "openrouter": fake_key(ProviderName::OpenRouter, "quota"),
    }});
    let reply = chat(&app, &ann.auth_token, &body).await;
    let error = reply.expect_error(StatusCode::BAD_GATEWAY, "all_providers_failed");
    assert_eq!(
        error["message"],
        "Invalid API key for gemini. Please verify your key is correct. Quota exceeded for openrouter."
    );

    let body = json!({"message": "hi", "apiKeys": {"openai": fake_key(ProviderName::OpenAi, "bad_request")}});
    let error =
        chat(&app, &ann.auth_token, &body).await.expect_error(StatusCode::BAD_REQUEST, "provider_refused").clone();
    assert!(error["message"].as_str().is_some_and(|m| m.starts_with("openai refused the request")), "{error}");

    // No key of their own and no free tier configured.
    chat(&app, &ann.auth_token, &json!({"message": "hi"}))
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "no_provider");

    // A stream that breaks after it started ends the reply with the error shown.
    let body = json!({"message": "hi", "apiKeys": {"groq": fake_key(ProviderName::Groq, "error_after_delta")}});
    let reply = chat(&app, &ann.auth_token, &body).await;
    let text = reply.expect_status(StatusCode::OK)["aiResponse"].as_str().expect("text").to_owned();
    assert!(text.starts_with("groq reply ") && text.contains("[The reply was cut off."), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_reach_replies_or_the_database() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let operator_canary = "gsk_fake-server_error-OPERATORCANARY7c1d";
    let operator_ok = "csk-OPERATOROKCANARY0123456789abcdef";
    let app = spawn_with_fake(&fake, |settings| {
        settings.keyguard.free_tier.keys.insert(ProviderName::Groq, vec![ApiKey::new(operator_canary)]);
        settings.keyguard.free_tier.keys.insert(ProviderName::Cerebras, vec![ApiKey::new(operator_ok)]);
    })
    .await;
    let ann = app.register("ann@example.org").await;
    let request_canaries = [
        ("gemini", "AIzaSyREQUESTCANARYgemini-fake-invalid_key-0a1b2c"),
        ("openai", "sk-proj-REQUESTCANARYopenai-fake-bad_request-9f8e"),
        ("anthropic", "sk-ant-api03-REQUESTCANARYanthropic-fake-ok-77aa"),
    ];
    let mut replies = Vec::new();
    for (provider, key) in request_canaries {
        replies.push(chat(&app, &ann.auth_token, &json!({"message": "canary", "apiKeys": {provider: key}})).await);
    }
    replies.push(chat(&app, &ann.auth_token, &json!({"message": "free tier"})).await);
    // The settings as the server reports them: `hearth config`-style serialization redacts.
    let everything: Vec<String> = replies.iter().map(|reply| format!("{:?} {}", reply.headers, reply.text)).collect();
    for key in request_canaries.iter().map(|(_, key)| *key).chain([operator_canary, operator_ok]) {
        for (i, text) in everything.iter().enumerate() {
            assert!(!text.contains(key), "reply {i} holds a key: {text}");
        }
        assert_no_file_contains(&app, key);
    }
    assert!(fake.requests().iter().any(|r| r.api_key.as_deref() == Some(operator_ok)), "the operator key was used");
}

// --- the assistant conversation, over a socket ---

/// The assistant's fixed sender id.
pub(crate) const ASSISTANT: &str = "00000000-0000-0000-0000-0000a5510001";

/// Sends `text` in the assistant conversation and collects, whatever order the frames come
/// in, the `send_message` reply, the deltas and the assistant's final `new_message`.
pub(crate) async fn prompt(peer: &mut Peer, conversation: &str, text: &str) -> (Value, Vec<Value>, Value) {
    let topic = format!("conversation:{conversation}");
    let user_topic = format!("user:{}", peer.id);
    let r = format!("prompt-{}", uuid::Uuid::now_v7());
    let payload = json!({"encrypted_messages": {peer.id.clone(): text}});
    send(&mut peer.socket, json!([null, r, topic, "send_message", payload])).await;
    let (mut sent, mut deltas) = (None, Vec::new());
    loop {
        let frame = next_json(&mut peer.socket).await;
        match (frame[2].as_str(), frame[3].as_str()) {
            (_, Some("phx_reply")) if frame[1] == r => {
                assert_eq!(frame[4]["status"], "ok", "{frame}");
                sent = Some(frame[4]["response"]["message"].clone());
            }
            (Some(t), Some("assistant_delta")) if t == topic => deltas.push(frame[4].clone()),
            (Some(t), Some("new_message")) if t == user_topic && frame[4]["message"]["sender"] == ASSISTANT => {
                let sent = sent.expect("the prompt's reply comes before the answer is stored");
                return (sent, deltas, frame[4]["message"].clone());
            }
            _ => {}
        }
    }
}

/// A server on the fake with a free tier on groq (text) and openai (images).
async fn spawn_with_free_tier(fake: &FakeProvider, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_with_fake(fake, |settings| {
        let keys = &mut settings.keyguard.free_tier.keys;
        keys.insert(ProviderName::Groq, vec![ApiKey::new(fake_key(ProviderName::Groq, "ok"))]);
        keys.insert(ProviderName::OpenAi, vec![ApiKey::new(fake_key(ProviderName::OpenAi, "ok"))]);
        configure(settings);
    })
    .await
}

pub(crate) async fn start_assistant(peer: &mut Peer) -> String {
    let started = peer.ok("system:general", "start_assistant_conversation", json!({})).await;
    assert_eq!(started["conversation"]["assistant"], true, "{started}");
    assert_eq!(started["user_ids"], json!([peer.id]));
    started["conversation"]["id"].as_str().expect("an id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_conversation_streams_replies_and_answers_commands() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_free_tier(&fake, |_| {}).await;
    let ann = app.register("ann@example.org").await;
    let bob = app.register("bob@example.org").await;
    let mut peer = Peer::connect(&app, &ann).await;

    let id = start_assistant(&mut peer).await;
    let announced = peer.expect(&format!("user:{}", ann.user_id), "new_conversation").await;
    assert_eq!(announced["conversation"]["id"], id.as_str());
    assert_eq!(start_assistant(&mut peer).await, id, "made once, then found");
    let topic = format!("conversation:{id}");
    let joined = peer.ok(&topic, "phx_join", json!({})).await;
    assert_eq!(joined["conversation"]["assistant"], true);
    assert_eq!(joined["messages"]["items"], json!([]));
    assert_eq!((joined["public_keys"].clone(), joined["private_key"].clone()), (json!({}), Value::Null));

    // A prompt: the reply streams in order, then is stored as the assistant's message.
    let question = "how do the words of a reply reach me in order";
    let (sent, deltas, reply) = prompt(&mut peer, &id, question).await;
    assert_eq!(sent["content"], question);
    let expected = format!("groq reply to: {question}");
    assert_eq!(reply["content"], expected.as_str());
    assert!(deltas.len() > 5, "{deltas:?}");
    for (i, delta) in deltas.iter().enumerate() {
        assert_eq!(delta["index"], i, "{deltas:?}");
        assert_eq!(delta["reply_id"], reply["message_group"]);
        assert_eq!(delta["prompt_group"], sent["message_group"]);
    }
    assert_eq!(deltas.iter().map(|d| d["delta"].as_str().expect("text")).collect::<String>(), expected);

    // The thread is the context of the next prompt.
    prompt(&mut peer, &id, "and then?").await;
    let last = fake.requests().pop().expect("a provider call");
    let sent_context: Vec<(&str, &str)> = last.messages.iter().map(|(r, t)| (r.as_str(), t.as_str())).collect();
    assert_eq!(sent_context[1..], [("user", question), ("assistant", expected.as_str()), ("user", "and then?")]);

    // History and the conversation list show it.
    let conversations = app.get_authed("/api/conversations", &ann.auth_token).await;
    let listed = conversations.expect_status(StatusCode::OK).to_string();
    assert!(listed.contains(&id) && listed.contains("\"assistant\":true"), "{listed}");
    let history = app.get_authed(&format!("/api/messages?conversation_id={id}"), &ann.auth_token).await;
    let items = history.expect_status(StatusCode::OK)["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["sender"], ASSISTANT);

    // Commands.
    let (_, deltas, help) = prompt(&mut peer, &id, "/help").await;
    assert!(deltas.is_empty());
    assert!(
        help["content"].as_str().is_some_and(|t| t.starts_with("Ask me anything") && t.contains("/image")),
        "{help}"
    );
    let (_, _, quota) = prompt(&mut peer, &id, "/quota").await;
    let quota = quota["content"].as_str().expect("text").to_owned();
    assert!(quota.starts_with("Free tier today (UTC): 2 of 20 replies and 0 of 5 images used"), "{quota}");
    let (_, _, providers) = prompt(&mut peer, &id, "/providers").await;
    let providers = providers["content"].as_str().expect("text").to_owned();
    for line in [
        "1. gemini: no free-tier key",
        "2. groq: 1 free-tier key, healthy",
        "5. openai (also images): 1 free-tier key, healthy",
    ] {
        assert!(providers.contains(line), "{line:?} in {providers}");
    }
    let (_, _, unknown) = prompt(&mut peer, &id, "/dance").await;
    assert!(unknown["content"].as_str().is_some_and(|t| t.starts_with("There is no command /dance.")));

    // An image, kept by hearth and served to its owner only.
    let (_, _, image) = prompt(&mut peer, &id, "/image a lighthouse at dusk").await;
    let text = image["content"].as_str().expect("text").to_owned();
    let path = text.split(&app.base_url).nth(1).unwrap_or_else(|| panic!("no link in {text:?}")).trim().to_owned();
    assert!(path.starts_with("/api/assistant/images/"), "{text}");
    let served = app.client.get(app.url(&path)).bearer_auth(&ann.auth_token).send().await.expect("get the image");
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert!(served.bytes().await.expect("bytes").starts_with(b"\x89PNG\r\n\x1a\n"));
    app.get_authed(&path, &bob.auth_token).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get(&path).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let malformed = app.get_authed("/api/assistant/images/not-a-uuid", &ann.auth_token).await;
    assert_eq!(malformed.expect_invalid("id"), ["must be a UUID"]);
    assert!(!fake.requests().iter().any(|r| r.provider.name() == "openai" && r.path.ends_with("/chat/completions")));

    // Nobody joins it and its owner cannot leave it.
    let payload = json!({"new_members": [bob.user_id], "alias": null});
    let reason = peer.refused(&topic, "modify_conversation", payload).await;
    assert!(reason.contains("assistant conversation"), "{reason}");
    peer.refused(&topic, "leave_conversation", json!({})).await;
    let mut bob_peer = Peer::connect(&app, &bob).await;
    assert_eq!(bob_peer.call_status(&topic, "phx_join").await, "error", "only its owner joins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_failures_are_answered_in_the_conversation() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_free_tier(&fake, |settings| {
        settings.ai.free_tier.text_per_day = 1;
        settings.ai.requests_per_window = 2;
    })
    .await;
    let ann = app.register("ann@example.org").await;
    let mut peer = Peer::connect(&app, &ann).await;
    let id = start_assistant(&mut peer).await;
    peer.ok(&format!("conversation:{id}"), "phx_join", json!({})).await;

    let (_, _, first) = prompt(&mut peer, &id, "one").await;
    assert_eq!(first["content"], "groq reply to: one");
    let (_, deltas, second) = prompt(&mut peer, &id, "two").await;
    assert!(deltas.is_empty());
    let second = second["content"].as_str().expect("text").to_owned();
    assert!(
        second.starts_with("Today's free assistant replies are used up; they come back at 00:00 UTC, in "),
        "{second}"
    );
    let (_, _, third) = prompt(&mut peer, &id, "three").await;
    let third = third["content"].as_str().expect("text").to_owned();
    assert!(third.starts_with("Too many assistant requests; try again in "), "{third}");
    // Commands that call no provider are not limited.
    prompt(&mut peer, &id, "/help").await;
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_knowledge_base_answers_without_a_provider_or_an_allowance() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_free_tier(&fake, |settings| {
        settings.ai.free_tier.text_per_day = 1;
        let dir = settings.data_dir.join("knowledge");
        std::fs::create_dir_all(&dir).expect("knowledge dir");
        let dsa = "[[entry]]\nquestion = \"What is a heap?\"\nanswer = \"A tree where each parent orders before its children.\"\n";
        std::fs::write(dir.join("dsa.toml"), dsa).expect("write a topic");
    })
    .await;
    let ann = app.register("ann@example.org").await;

    // The shipped `hearth` topic, asked in other words.
    let reply = chat(&app, &ann.auth_token, &json!({"message": "How can I reset my password? I forgot it."})).await;
    let body = reply.expect_status(StatusCode::OK);
    assert_eq!(body["provider"], "knowledge_base");
    assert!(body["aiResponse"].as_str().is_some_and(|a| a.starts_with("On the login page")), "{body}");
    // A topic from the data directory, named by courseId (in any case).
    let reply = chat(&app, &ann.auth_token, &json!({"courseId": "DSA", "message": "what's a heap?"})).await;
    let body = reply.expect_status(StatusCode::OK);
    assert_eq!(
        (body["provider"].as_str(), body["aiResponse"].as_str()),
        (Some("knowledge_base"), Some("A tree where each parent orders before its children."))
    );
    // Not confident: a provider answers, on the one free reply, which is then used up.
    let reply =
        chat(&app, &ann.auth_token, &json!({"courseId": "dsa", "message": "what is a heap allocator in C?"})).await;
    assert_eq!(reply.expect_status(StatusCode::OK)["provider"], "groq");
    let reply = chat(&app, &ann.auth_token, &json!({"message": "what is the capital of France?"})).await;
    reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");
    assert_eq!(fake.requests().len(), 1, "knowledge-base answers call no provider");

    // In the assistant conversation too.
    let mut peer = Peer::connect(&app, &ann).await;
    let id = start_assistant(&mut peer).await;
    peer.ok(&format!("conversation:{id}"), "phx_join", json!({})).await;
    let (_, deltas, answer) = prompt(&mut peer, &id, "How do I make an image with the assistant?").await;
    assert!(
        answer["content"].as_str().is_some_and(|a| a.starts_with("In your assistant conversation, send /image")),
        "{answer}"
    );
    assert_eq!(deltas.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_attempts_refusals_and_turns_for_local_readers_only() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_fake(&fake, |settings| {
        settings.ai.requests_per_window = 3;
        settings.server.trusted_proxies = vec!["127.0.0.1".parse().expect("an address")];
    })
    .await;
    let ann = app.register("ann@example.org").await;
    let body = json!({"message": "hi", "apiKeys": {
        "gemini": fake_key(ProviderName::Gemini, "invalid_key"),
        "groq": fake_key(ProviderName::Groq, "ok"),
    }});
    chat(&app, &ann.auth_token, &body).await.expect_status(StatusCode::OK);
    chat(&app, &ann.auth_token, &json!({"message": "How do I change my password?"}))
        .await
        .expect_status(StatusCode::OK);
    let failing = json!({"message": "hi", "apiKeys": {"anthropic": fake_key(ProviderName::Anthropic, "server_error")}});
    chat(&app, &ann.auth_token, &failing).await.expect_error(StatusCode::BAD_GATEWAY, "all_providers_failed");
    chat(&app, &ann.auth_token, &body).await.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    let response = app.client.get(app.url("/metrics")).send().await.expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    for line in [
        r#"hearth_assistant_attempts_total{provider="gemini",outcome="invalid_key"} 1"#,
        r#"hearth_assistant_attempts_total{provider="groq",outcome="answered"} 1"#,
        r#"hearth_assistant_attempts_total{provider="anthropic",outcome="upstream_error"} 1"#,
        r#"hearth_assistant_refusals_total{limit="rate_limit"} 1"#,
        r#"hearth_assistant_turns_total{answered_by="groq"} 1"#,
        r#"hearth_assistant_turns_total{answered_by="knowledge_base"} 1"#,
        r#"hearth_assistant_turns_total{answered_by="none"} 1"#,
        r#"hearth_assistant_attempt_seconds_count{provider="gemini"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
    }
    assert!(!text.contains("0123456789abcdef"), "no key in the metrics");
    // Through the trusted proxy, for someone elsewhere: as if it did not exist.
    let forwarded =
        app.client.get(app.url("/metrics")).header("x-forwarded-for", "203.0.113.9").send().await.expect("metrics");
    assert_eq!(forwarded.status(), StatusCode::NOT_FOUND);
}
