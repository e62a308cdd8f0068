//! Image generation: bytes back, only image-making providers tried.

use hearth_ai::{AttemptOutcome, FailureClass, ProviderName, RouterSettings, TurnFailureKind};
use hearth_fake_provider::FakeProvider;

use crate::{key, router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_come_back_as_png_bytes_from_the_image_providers() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let router = router(&fake, RouterSettings::default());
    let candidates = vec![
        key(ProviderName::Gemini, "ok", 1),
        key(ProviderName::OpenAi, "quota", 2),
        key(ProviderName::OpenAi, "ok", 3),
    ];
    let (image, provider, attempts) =
        router.generate_image("a lighthouse at dusk", candidates).await.expect("an image");
    assert_eq!(provider, ProviderName::OpenAi);
    assert_eq!(image.content_type, "image/png");
    assert!(image.bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let outcomes: Vec<_> = attempts.iter().map(|attempt| attempt.outcome).collect();
    assert_eq!(outcomes, vec![AttemptOutcome::Failed(FailureClass::QuotaExceeded), AttemptOutcome::Answered]);
    let requests = fake.requests();
    assert!(requests.iter().all(|request| request.provider.name() == "openai"), "gemini is not asked for images");
    assert_eq!(requests.last().and_then(|r| r.last_user_text.as_deref()), Some("a lighthouse at dusk"));

    let failure =
        router.generate_image("x", vec![key(ProviderName::Groq, "ok", 4)]).await.expect_err("groq makes no images");
    assert_eq!(failure.kind, TurnFailureKind::NoKeys);
}
