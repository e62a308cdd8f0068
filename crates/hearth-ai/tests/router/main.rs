//! The router against the fake provider: every failure class leads to its documented next
//! step, in every provider's dialect; order over providers and keys; cool-downs; the deadline;
//! errors inside streams; images; and where keys are sent.

mod fallback;
mod images;
mod streaming;

use std::time::Duration;

use hearth_ai::{
    ApiKey, Candidate, ChatMessage, ChatRequest, KeyHolder, ProviderName, Providers, Router, RouterSettings,
};
use hearth_fake_provider::FakeProvider;

/// Per-attempt timeout in these tests: far above a loopback answer, short enough that the
/// `hang` cases stay quick.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// A router whose providers all point at `fake`.
pub fn router(fake: &FakeProvider, settings: RouterSettings) -> Router {
    let mut providers = Providers::default();
    for provider in ProviderName::ALL {
        let settings = providers.get_mut(provider);
        settings.base_url = fake.base_url(provider.as_str()).expect("the fake serves every provider");
        settings.timeout_secs = ATTEMPT_TIMEOUT;
    }
    Router::new(providers, settings).expect("the router's HTTP client builds")
}

/// A key of `provider`'s shape that makes the fake act out `scenario`; `n` tells keys apart.
pub fn key(provider: ProviderName, scenario: &str, n: u32) -> Candidate {
    let fake = hearth_fake_provider::Provider::from_name(provider.as_str()).expect("the fake knows every provider");
    let scenario = scenario.parse().expect("a scenario of the fake");
    let key = ApiKey::for_provider(provider, format!("{}{n:04}", fake.key_for(&scenario)))
        .expect("test keys have a valid shape");
    Candidate { provider, key, holder: KeyHolder::Request }
}

/// A one-message request.
pub fn ask(prompt: &str) -> ChatRequest {
    ChatRequest { system: Some("Be brief.".to_owned()), messages: vec![ChatMessage::user(prompt)] }
}

/// What the fake answers `provider` for `prompt`.
pub fn expected_reply(provider: ProviderName, prompt: &str) -> String {
    format!("{provider} reply to: {prompt}")
}
