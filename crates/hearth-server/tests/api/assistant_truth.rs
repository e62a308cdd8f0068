//! The assistant tells the truth (issue 24 §7), against the fake provider: a refused key is
//! told as whose it was (the server's, with the way to add one's own; the person's own), the
//! operator is warned in the log without the key, `/providers` and `/keys` show a refused key
//! as refused with when, dates are said for people, `/providers` names no endpoint, and
//! `/image` says when no provider here draws images.

use chrono::{DateTime, Duration as Minutes, DurationRound as _, Utc};
use hearth_ai::{ApiKey, KeyFingerprint, ProviderName};
use hearth_fake_provider::FakeProvider;
use reqwest::StatusCode;
use serde_json::json;

use crate::assistant::{fake_key, spawn_with_fake};
use crate::harness::{assert_no_file_contains, captured_log};
use crate::keyguard::{Person, configure};

/// The operator's refused free-tier key: of groq's shape, refused by the fake, and unique to
/// this file so that its fingerprint finds this test's lines in the shared log.
const REFUSED_OPERATOR_KEY: &str = "gsk_fake-invalid_key-OPERATORTRUTHCANARY-4e9d2a71";

/// What `/providers` ends with: where a person's own keys come from, in chat words.
const OWN_KEYS_LINE: &str =
    "Your own keys are tried before the free tier and have no daily limit: /configure adds one, /keys lists them.";

/// Every way a moment between `from` and `to` can be said (one per minute), as the assistant
/// says it on `to`'s day.
fn said_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
    let mut minute = from.duration_trunc(Minutes::minutes(1)).expect("a minute");
    let mut said = Vec::new();
    while minute <= to {
        let day = if minute.date_naive() == to.date_naive() { "today" } else { "yesterday" };
        said.push(format!("{day} at {} UTC", minute.format("%H:%M")));
        minute += Minutes::minutes(1);
    }
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_free_tier_key_is_told_as_the_servers_warned_of_and_shown_as_refused() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_fake(&fake, |settings| {
        let keys = &mut settings.keyguard.free_tier.keys;
        keys.insert(ProviderName::Groq, vec![ApiKey::new(REFUSED_OPERATOR_KEY)]);
    })
    .await;
    let mut ann = Person::join(&app, "ann@example.org").await;
    let before = Utc::now();

    // In the assistant conversation and over HTTP: the server's key, not the person's.
    assert_eq!(
        ann.say("hello").await,
        "All AI providers failed. The server's groq key was refused by groq. You can add a key of your own with \
         /configure."
    );
    let reply = app.post_authed("/api/chat/message", &ann.session.auth_token, Some(&json!({"message": "hi"}))).await;
    let error = reply.expect_error(StatusCode::BAD_GATEWAY, "all_providers_failed");
    assert_eq!(
        error["message"],
        "The server's groq key was refused by groq. You can add a key of your own with /configure."
    );
    assert!(!reply.text.contains("verify your key"), "not told as their key: {}", reply.text);

    // /providers: refused, with when; never "healthy"; no endpoint named.
    let report = ann.say("/providers").await;
    let after = Utc::now();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "Providers, in the order they are tried:");
    assert_eq!(lines[1], "1. gemini: no free-tier key");
    let refused: Vec<String> = said_between(before, after)
        .into_iter()
        .map(|when| format!("2. groq: 1 free-tier key, refused by groq {when}"))
        .collect();
    assert!(refused.iter().any(|line| line == lines[2]), "{:?} is one of {refused:?}", lines[2]);
    assert_eq!(lines.last(), Some(&OWN_KEYS_LINE));
    assert!(!report.contains("/api/") && !report.contains("POST") && !report.contains("healthy"), "{report}");

    // The operator's WARN line: provider, place in the settings, fingerprint, what to do.
    let fingerprint = KeyFingerprint::of(REFUSED_OPERATOR_KEY).to_string();
    let log = captured_log();
    let warned: Vec<&str> = log.lines().filter(|line| line.contains(&format!("key={fingerprint}"))).collect();
    let warning = "the free tier's groq key number 1 in keyguard.free_tier.keys.groq was refused by groq as invalid; \
                   people without keys are told the server's key was refused: replace or remove it in the \
                   keyguard's settings";
    assert!(
        warned.iter().any(|line| line.contains(" WARN ") && line.contains(warning) && line.contains("provider=groq")),
        "no WARN line for the refused key among {warned:#?}"
    );
    // The key itself (or its distinctive part) never reaches the log, a reply or a file.
    for secret in [REFUSED_OPERATOR_KEY, "OPERATORTRUTHCANARY"] {
        assert!(!log.contains(secret), "the log holds the operator's key");
        assert!(!report.contains(secret) && !reply.text.contains(secret));
        assert_no_file_contains(&app, secret);
    }
    assert!(fake.requests().iter().all(|request| request.provider.name() == "groq"), "only groq was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_own_refused_key_is_told_as_theirs_and_keys_shows_it_with_dates_for_people() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_fake(&fake, |settings| {
        // Stored without the live check, as a key revoked after it was added would be.
        settings.keyguard.live_check = false;
        settings.keyguard.free_tier.keys.clear();
    })
    .await;
    let mut ann = Person::join(&app, "ann@example.org").await;
    let revoked = fake_key(ProviderName::Groq, "invalid_key");
    let working = fake_key(ProviderName::Anthropic, "ok");
    let before = Utc::now();
    configure(&app, &mut ann, ProviderName::Groq, &revoked).await;
    configure(&app, &mut ann, ProviderName::Anthropic, &working).await;
    assert_eq!(
        ann.say("/keys").await,
        format!(
            "Your keys, tried in this order before the free tier:\n\
             - groq …{}: added today, never used, 0 failures since, healthy\n\
             - anthropic …{}: added today, never used, 0 failures since, healthy",
            &revoked[revoked.len() - 4..],
            &working[working.len() - 4..]
        )
    );

    // The refused key is passed over; the working one answers.
    assert_eq!(ann.say("hello").await, "anthropic reply to: hello");
    let keys = ann.say("/keys").await;
    let after = Utc::now();
    let (revoked_four, working_four) = (&revoked[revoked.len() - 4..], &working[working.len() - 4..]);
    let mut expected = Vec::new();
    for refused in said_between(before, after) {
        for used in said_between(before, after) {
            expected.push(format!(
                "Your keys, tried in this order before the free tier:\n\
                 - groq …{revoked_four}: added today, never used, 1 failure since, refused by groq {refused}\n\
                 - anthropic …{working_four}: added today, last used {used}, 0 failures since, healthy"
            ));
        }
    }
    assert!(expected.contains(&keys), "{keys:?} is one of {expected:#?}");
    assert!(!keys.contains(&revoked));
    let listed = app.get_authed("/api/keys", &ann.session.auth_token).await;
    let items = listed.expect_status(StatusCode::OK)["items"].as_array().expect("items").clone();
    assert_eq!((items[0]["provider"].as_str(), items[0]["status"].as_str()), (Some("groq"), Some("refused")));
    assert!(items[0]["refused_at"].is_string(), "{items:?}");
    assert_eq!((items[1]["status"].as_str(), items[1].get("refused_at")), (Some("healthy"), None));

    // With only the refused key left (and no free tier), the person is told it is theirs.
    assert_eq!(ann.say("/forget anthropic").await, "Deleted your 1 stored anthropic key.");
    assert_eq!(
        ann.say("again").await,
        "All AI providers failed. Your stored groq key was refused by groq; /forget groq removes it."
    );
    // A person's own key is theirs to fix: the operator is not warned of it.
    let fingerprint = KeyFingerprint::of(&revoked).to_string();
    let log = captured_log();
    assert!(!log.lines().any(|line| line.contains(&format!("key={fingerprint}")) && line.contains(" WARN ")));
    assert!(!log.contains(&revoked), "the log holds the person's key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_without_a_provider_that_draws_says_so() {
    let fake = FakeProvider::start().await.expect("start the fake");
    // A free tier on groq, which does not draw: nobody here has a key that does.
    let app = spawn_with_fake(&fake, |settings| {
        let keys = &mut settings.keyguard.free_tier.keys;
        keys.insert(ProviderName::Groq, vec![ApiKey::new(fake_key(ProviderName::Groq, "ok"))]);
    })
    .await;
    let mut ann = Person::join(&app, "ann@example.org").await;
    assert_eq!(
        ann.say("/image a red fox in snow").await,
        "No key here can make images: images are drawn only by openai, and neither you nor this server has a key \
         for it. You can add one of your own with /configure."
    );
    assert!(ann.say("/quota").await.contains("and 0 of 5 images used"), "no image allowance was spent");

    // A server that does not use the provider that draws: said so, even with a key for it.
    let app = spawn_with_fake(&fake, |settings| {
        settings.ai.routing.order = vec![ProviderName::Groq, ProviderName::Anthropic];
        let keys = &mut settings.keyguard.free_tier.keys;
        keys.insert(ProviderName::Groq, vec![ApiKey::new(fake_key(ProviderName::Groq, "ok"))]);
        keys.insert(ProviderName::OpenAi, vec![ApiKey::new(fake_key(ProviderName::OpenAi, "ok"))]);
    })
    .await;
    let mut bob = Person::join(&app, "bob@example.org").await;
    assert_eq!(
        bob.say("/image a red fox in snow").await,
        "This server makes no images: images are drawn only by openai, which this server does not use."
    );
    assert!(fake.requests().is_empty(), "no provider was asked");
}
