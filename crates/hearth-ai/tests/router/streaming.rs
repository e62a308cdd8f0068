//! Deltas in order, and errors inside streams before and after the first delta.

use hearth_ai::{AttemptOutcome, FailureClass, ProviderName, RouterSettings};
use hearth_fake_provider::FakeProvider;
use tokio::sync::mpsc;

use crate::{ask, expected_reply, key, router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_arrive_in_order_from_every_dialect() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let router = router(&fake, RouterSettings::default());
    for provider in ProviderName::ALL {
        let prompt = format!("stream the words of this sentence through {provider}");
        let (deltas, mut received) = mpsc::unbounded_channel();
        let answer = router.complete(&ask(&prompt), vec![key(provider, "ok", 1)], &deltas).await.expect("answers");
        drop(deltas);
        let mut pieces = Vec::new();
        while let Some(piece) = received.recv().await {
            pieces.push(piece);
        }
        let expected = expected_reply(provider, &prompt);
        assert!(pieces.len() > 5, "{provider}: one delta per word, got {pieces:?}");
        assert_eq!(pieces.concat(), expected, "{provider}");
        assert_eq!(answer.text, expected, "{provider}");
        assert_eq!(answer.interrupted, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_after_the_first_delta_ends_the_turn_showing_it() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let router = router(&fake, RouterSettings::default());
    for provider in ProviderName::ALL.into_iter().filter(|p| *p != ProviderName::Anthropic) {
        let next = key(ProviderName::Anthropic, "ok", 2);
        let (deltas, mut received) = mpsc::unbounded_channel();
        let answer = router
            .complete(&ask("break after two words"), vec![key(provider, "error_after_delta", 1), next.clone()], &deltas)
            .await
            .expect("the first provider started answering");
        drop(deltas);
        assert_eq!(answer.provider, provider, "no fallback once the person has seen text");
        assert!(answer.interrupted.is_some(), "{provider}");
        assert_ne!(answer.interrupted, Some(FailureClass::BadRequest));
        let mut pieces = Vec::new();
        while let Some(piece) = received.recv().await {
            pieces.push(piece);
        }
        assert_eq!(pieces.len(), 2, "{provider}: the two deltas before the error");
        assert_eq!(pieces.concat(), answer.text);
        assert!(expected_reply(provider, "break after two words").starts_with(&answer.text));
        assert_eq!(answer.attempts.len(), 1);
        assert_eq!(answer.attempts[0].outcome, AttemptOutcome::Answered);
    }
    assert!(fake.requests().iter().all(|r| r.provider.name() != "anthropic"), "the fallback key is never called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_before_the_first_delta_falls_back_unseen() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let router = router(&fake, RouterSettings::default());
    let (deltas, mut received) = mpsc::unbounded_channel();
    let candidates = vec![key(ProviderName::OpenRouter, "error_before_delta", 1), key(ProviderName::OpenAi, "ok", 2)];
    let answer = router.complete(&ask("fall back"), candidates, &deltas).await.expect("openai answers");
    drop(deltas);
    assert_eq!(answer.provider, ProviderName::OpenAi);
    let mut pieces = Vec::new();
    while let Some(piece) = received.recv().await {
        pieces.push(piece);
    }
    assert_eq!(
        pieces.concat(),
        expected_reply(ProviderName::OpenAi, "fall back"),
        "nothing of the failed stream leaked"
    );
}
