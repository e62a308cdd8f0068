//! Classification and fallback: what each failure leads to.

use std::time::{Duration, Instant};

use hearth_ai::{AttemptOutcome, FailureClass, ProviderName, RouterSettings, TurnFailureKind};
use hearth_fake_provider::FakeProvider;
use tokio::sync::mpsc;

use crate::{ask, expected_reply, key, router};

/// What the router does after a scenario's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// The provider's next key answers.
    SameProviderNextKey,
    /// The provider's other keys are skipped; the next provider answers.
    OtherProvider,
    /// The turn stops: the request is at fault.
    Stop,
    /// The stream broke after its first delta: that answer ends, showing the failure.
    Interrupted,
}

const SCENARIOS: [(&str, FailureClass, Next); 15] = [
    ("invalid_key", FailureClass::InvalidKey, Next::SameProviderNextKey),
    ("permission_denied", FailureClass::InvalidKey, Next::SameProviderNextKey),
    ("quota", FailureClass::QuotaExceeded, Next::SameProviderNextKey),
    ("rate_limited", FailureClass::RateLimited, Next::SameProviderNextKey),
    ("overloaded", FailureClass::RateLimited, Next::SameProviderNextKey),
    ("timeout_status", FailureClass::Timeout, Next::SameProviderNextKey),
    ("hang", FailureClass::Timeout, Next::SameProviderNextKey),
    ("reset", FailureClass::NetworkError, Next::SameProviderNextKey),
    // The fake's truncated stream sends text before it breaks off.
    ("truncated", FailureClass::NetworkError, Next::Interrupted),
    ("server_error", FailureClass::UpstreamError, Next::SameProviderNextKey),
    ("bad_gateway", FailureClass::UpstreamError, Next::SameProviderNextKey),
    ("error_before_delta", FailureClass::UpstreamError, Next::SameProviderNextKey),
    ("model_not_found", FailureClass::UnsupportedModel, Next::OtherProvider),
    ("too_large", FailureClass::BadRequest, Next::Stop),
    ("bad_request", FailureClass::BadRequest, Next::Stop),
];

/// The class a scenario has at `provider` where the dialects differ from the table above.
fn class_at(provider: ProviderName, scenario: &str, class: FailureClass) -> FailureClass {
    match (provider, scenario) {
        // Groq's 498 and Anthropic's 529 are rate limits; the others' 503 is an upstream error.
        (ProviderName::Groq | ProviderName::Anthropic, "overloaded") => FailureClass::RateLimited,
        (_, "overloaded") => FailureClass::UpstreamError,
        // The error events of the fake's streams: Anthropic's is `overloaded_error`.
        (ProviderName::Anthropic, "error_before_delta") => FailureClass::RateLimited,
        _ => class,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_class_leads_to_its_next_step_at_every_provider() {
    let fake = FakeProvider::start().await.expect("start the fake");
    for (i, provider) in ProviderName::ALL.into_iter().enumerate() {
        // Another provider, after this one in the order, answers when this one is skipped.
        let next_provider = ProviderName::ALL[(i + 1) % ProviderName::ALL.len()];
        let order = vec![provider, next_provider];
        let router =
            router(&fake, RouterSettings { order, failures_before_cooldown: 1000, ..RouterSettings::default() });
        for (scenario, class, next) in SCENARIOS {
            let class = class_at(provider, scenario, class);
            let failing = key(provider, scenario, 1);
            let second = key(provider, "ok", 2);
            let other = key(next_provider, "ok", 3);
            let prompt = format!("{scenario} at {provider}");
            let (deltas, _) = mpsc::unbounded_channel();
            let result =
                router.complete(&ask(&prompt), vec![failing.clone(), second.clone(), other.clone()], &deltas).await;
            let context = format!("{scenario} at {provider}");
            let outcomes = |attempts: &[hearth_ai::Attempt]| -> Vec<(ProviderName, AttemptOutcome)> {
                attempts.iter().map(|attempt| (attempt.provider, attempt.outcome)).collect()
            };
            match next {
                Next::SameProviderNextKey => {
                    let answer = result.unwrap_or_else(|failure| panic!("{context}: {failure:?}"));
                    assert_eq!(answer.provider, provider, "{context}");
                    assert_eq!(answer.text, expected_reply(provider, &prompt), "{context}");
                    assert_eq!(
                        outcomes(&answer.attempts),
                        vec![(provider, AttemptOutcome::Failed(class)), (provider, AttemptOutcome::Answered)],
                        "{context}"
                    );
                    assert_eq!(answer.attempts[1].key, second.key.fingerprint(), "{context}");
                }
                Next::OtherProvider => {
                    let answer = result.unwrap_or_else(|failure| panic!("{context}: {failure:?}"));
                    assert_eq!(answer.provider, next_provider, "{context}");
                    assert_eq!(
                        outcomes(&answer.attempts),
                        vec![(provider, AttemptOutcome::Failed(class)), (next_provider, AttemptOutcome::Answered)],
                        "{context}"
                    );
                }
                Next::Interrupted => {
                    let answer = result.unwrap_or_else(|failure| panic!("{context}: {failure:?}"));
                    assert_eq!((answer.provider, answer.interrupted), (provider, Some(class)), "{context}");
                    assert!(expected_reply(provider, &prompt).starts_with(&answer.text), "{context}");
                    assert_eq!(outcomes(&answer.attempts), vec![(provider, AttemptOutcome::Answered)], "{context}");
                }
                Next::Stop => {
                    let failure = result.expect_err(&context);
                    assert!(
                        matches!(failure.kind, TurnFailureKind::BadRequest { provider: p, .. } if p == provider),
                        "{context}: {failure:?}"
                    );
                    assert_eq!(
                        outcomes(&failure.attempts),
                        vec![(provider, AttemptOutcome::Failed(class))],
                        "{context}"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_in_order_and_each_providers_keys_in_turn() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let router = router(&fake, RouterSettings::default());
    // Given out of order: the router sorts by provider and keeps each provider's key order.
    let candidates = vec![
        key(ProviderName::Anthropic, "ok", 1),
        key(ProviderName::Groq, "quota", 2),
        key(ProviderName::Gemini, "invalid_key", 3),
        key(ProviderName::Groq, "ok", 4),
        key(ProviderName::Gemini, "rate_limited", 5),
    ];
    let (deltas, _) = mpsc::unbounded_channel();
    let answer = router.complete(&ask("order"), candidates.clone(), &deltas).await.expect("groq's second key answers");
    assert_eq!(answer.provider, ProviderName::Groq);
    let tried: Vec<_> = answer.attempts.iter().map(|attempt| attempt.key).collect();
    let expected: Vec<_> = [2, 4, 1, 3].iter().map(|i| candidates[*i].key.fingerprint()).collect();
    assert_eq!(tried, expected);
    // Each key went to its own provider only, in that provider's own header.
    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    for (request, i) in requests.iter().zip([2, 4, 1, 3]) {
        let candidate = &candidates[i];
        assert_eq!(request.provider.name(), candidate.provider.as_str());
        assert_eq!(request.api_key.as_deref(), Some(candidate.key.expose()));
        let header = match candidate.provider {
            ProviderName::Gemini => hearth_fake_provider::KeySource::GoogApiKey,
            ProviderName::Anthropic => hearth_fake_provider::KeySource::XApiKey,
            _ => hearth_fake_provider::KeySource::Authorization,
        };
        assert_eq!(request.key_source, Some(header));
        assert!(request.stream, "every call streams");
        assert_eq!(request.last_user_text.as_deref(), Some("order"));
    }

    // A configured order leaves the other providers out entirely.
    let only = router_with_order(&fake, vec![ProviderName::Anthropic, ProviderName::Cerebras]);
    fake.clear_requests();
    let candidates = vec![
        key(ProviderName::Gemini, "ok", 6),
        key(ProviderName::Cerebras, "server_error", 7),
        key(ProviderName::Anthropic, "quota", 8),
    ];
    let failure = only.complete(&ask("order"), candidates, &deltas).await.expect_err("both fail");
    assert_eq!(failure.kind, TurnFailureKind::AllFailed);
    let providers: Vec<_> = failure.attempts.iter().map(|attempt| attempt.provider).collect();
    assert_eq!(providers, vec![ProviderName::Anthropic, ProviderName::Cerebras]);
    assert!(fake.requests().iter().all(|request| request.provider.name() != "gemini"));
    assert_eq!(failure.user_message(), "Quota exceeded for anthropic. cerebras had an internal error.");
}

fn router_with_order(fake: &FakeProvider, order: Vec<ProviderName>) -> hearth_ai::Router {
    router(fake, RouterSettings { order, ..RouterSettings::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_failing_gives_the_aggregated_message_and_no_keys_is_its_own_failure() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let router = router(&fake, RouterSettings::default());
    let (deltas, _) = mpsc::unbounded_channel();
    let candidates = vec![key(ProviderName::Gemini, "invalid_key", 1), key(ProviderName::Groq, "rate_limited", 2)];
    let failure = router.complete(&ask("hello"), candidates, &deltas).await.expect_err("all fail");
    assert_eq!(failure.kind, TurnFailureKind::AllFailed);
    assert_eq!(failure.title(), "All AI providers failed");
    assert_eq!(
        failure.user_message(),
        "Invalid API key for gemini. Please verify your key is correct. Rate limit reached for groq."
    );
    let statuses: Vec<_> = failure.attempts.iter().map(|attempt| attempt.status).collect();
    assert_eq!(statuses, vec![Some(400), Some(429)]);

    let failure = router.complete(&ask("hello"), Vec::new(), &deltas).await.expect_err("no keys");
    assert_eq!(failure.kind, TurnFailureKind::NoKeys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failures_cool_a_key_down_and_a_success_resets_the_count() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let router = router(
        &fake,
        RouterSettings {
            failures_before_cooldown: 3,
            cooldown_secs: Duration::from_secs(600),
            ..RouterSettings::default()
        },
    );
    let failing = key(ProviderName::Groq, "server_error", 1);
    let healthy = key(ProviderName::Groq, "ok", 2);
    let (deltas, _) = mpsc::unbounded_channel();
    for turn in 1..=4 {
        let answer = router
            .complete(&ask("cool"), vec![failing.clone(), healthy.clone()], &deltas)
            .await
            .expect("the healthy key answers");
        let first = answer.attempts[0].outcome;
        if turn <= 3 {
            assert_eq!(first, AttemptOutcome::Failed(FailureClass::UpstreamError), "turn {turn}");
        } else {
            assert_eq!(first, AttemptOutcome::CoolingDown, "turn {turn}: the key rests");
        }
    }
    let calls_with_failing =
        fake.requests().iter().filter(|r| r.api_key.as_deref() == Some(failing.key.expose())).count();
    assert_eq!(calls_with_failing, 3, "a resting key is not called");
    assert!(router.health().is_cooling_down(failing.key.fingerprint(), Instant::now()));

    // Two failures on record, then a success: the count starts again.
    let now = Instant::now();
    router.health().record_failure(healthy.key.fingerprint(), now);
    router.health().record_failure(healthy.key.fingerprint(), now);
    router.complete(&ask("reset"), vec![healthy.clone()], &deltas).await.expect("answers");
    assert_eq!(router.health().state(healthy.key.fingerprint(), now).consecutive_failures, 0);
    // Bad requests and missing models say nothing about the key.
    let refused = key(ProviderName::Groq, "bad_request", 3);
    for _ in 0..3 {
        let _ = router.complete(&ask("refused"), vec![refused.clone()], &deltas).await;
    }
    assert_eq!(router.health().state(refused.key.fingerprint(), Instant::now()).consecutive_failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_rests_the_key_at_once() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let router = router(&fake, RouterSettings::default());
    // The fake's rate limits say `retry-after: 1` (Gemini: a RetryInfo of 1 s).
    for provider in [ProviderName::Groq, ProviderName::Gemini] {
        let limited = key(provider, "rate_limited", 1);
        let healthy = key(ProviderName::Anthropic, "ok", 2);
        let (deltas, _) = mpsc::unbounded_channel();
        let first =
            router.complete(&ask("one"), vec![limited.clone(), healthy.clone()], &deltas).await.expect("answers");
        assert_eq!(first.attempts[0].outcome, AttemptOutcome::Failed(FailureClass::RateLimited));
        let second = router.complete(&ask("two"), vec![limited.clone(), healthy], &deltas).await.expect("answers");
        assert_eq!(
            second.attempts[0].outcome,
            AttemptOutcome::CoolingDown,
            "{provider}: asked to wait, not asked again"
        );
        let state = router.health().state(limited.key.fingerprint(), Instant::now());
        assert!(
            state.cooling_until.is_some_and(|until| until <= Instant::now() + Duration::from_secs(1)),
            "{provider}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overall_deadline_ends_the_turn() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let deadline = Duration::from_millis(1500);
    let router = router(&fake, RouterSettings { deadline_secs: deadline, ..RouterSettings::default() });
    let last = key(ProviderName::Cerebras, "ok", 3);
    let candidates = vec![key(ProviderName::Gemini, "hang", 1), key(ProviderName::Groq, "hang", 2), last.clone()];
    let (deltas, _) = mpsc::unbounded_channel();
    let started = Instant::now();
    let failure = router.complete(&ask("slow"), candidates, &deltas).await.expect_err("the deadline passes");
    assert_eq!(failure.kind, TurnFailureKind::DeadlineExceeded);
    // The first attempt had its full second, the second only what was left of the deadline.
    assert_eq!(failure.attempts.len(), 2);
    assert!(failure.attempts.iter().all(|attempt| attempt.outcome == AttemptOutcome::Failed(FailureClass::Timeout)));
    assert!(failure.attempts[1].latency_ms < 1000, "{:?}", failure.attempts);
    assert!(started.elapsed() >= deadline);
    assert!(fake.requests().iter().all(|r| r.api_key.as_deref() != Some(last.key.expose())), "never reached");
}
