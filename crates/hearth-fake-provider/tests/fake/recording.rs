//! What the fake records, how tests read it, and `serve` without recording.

use hearth_fake_provider::{KeySource, Provider, RecordedRequest};
use tokio::net::TcpListener;

use crate::{TestFake, key};

#[tokio::test]
async fn each_provider_request_is_recorded() {
    let app = TestFake::start().await;
    for provider in Provider::ALL {
        let key = key(provider, "ok");
        let response = app.chat(provider, &key, "what was asked", true).send().await;
        response.expect("request").text().await.expect("body");
    }
    let recorded = app.fake.requests();
    assert_eq!(recorded.len(), 6);
    for (provider, request) in Provider::ALL.into_iter().zip(&recorded) {
        assert_eq!(request.provider, provider);
        assert_eq!(request.method, "POST");
        assert!(request.path.starts_with(provider.base_path()), "{}", request.path);
        assert_eq!(request.api_key.as_deref(), Some(key(provider, "ok").as_str()));
        assert!(request.stream, "{provider}");
        assert_eq!(request.last_user_text.as_deref(), Some("what was asked"));
        let source = match provider {
            Provider::Gemini => KeySource::GoogApiKey,
            Provider::Anthropic => KeySource::XApiKey,
            _ => KeySource::Authorization,
        };
        assert_eq!(request.key_source, Some(source), "{provider}");
    }
    let gemini = &recorded[4];
    assert_eq!(gemini.path, "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent");
    assert_eq!(gemini.query.as_deref(), Some("alt=sse"));
    assert_eq!(gemini.model.as_deref(), Some("gemini-2.5-flash"));
    assert_eq!(recorded[5].anthropic_version.as_deref(), Some("2023-06-01"));
    assert_eq!(recorded[5].model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(recorded[1].model.as_deref(), Some("llama-3.3-70b-versatile"));
}

#[tokio::test]
async fn refused_requests_are_recorded_too() {
    let app = TestFake::start().await;
    let url =
        format!("{}/v1beta/models/gemini-2.5-flash:generateContent?key=AIzaSyInTheUrl", app.base(Provider::Gemini));
    let response = app
        .http
        .post(url)
        .json(&serde_json::json!({"contents": [{"parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let recorded = app.fake.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].key_source, Some(KeySource::Query));
    assert_eq!(recorded[0].api_key.as_deref(), Some("AIzaSyInTheUrl"));
    assert!(!recorded[0].stream);
}

#[tokio::test]
async fn requests_are_served_over_http_and_cleared() {
    let app = TestFake::start().await;
    app.models(Provider::Cerebras, "csk-plain").send().await.expect("request");
    let url = format!("{}/_fake/requests", app.fake.root());
    let over_http: Vec<RecordedRequest> =
        app.http.get(&url).send().await.expect("request").json().await.expect("JSON list");
    assert_eq!(over_http, app.fake.requests());
    assert_eq!(over_http.len(), 1);
    assert_eq!(over_http[0].method, "GET");
    assert_eq!(over_http[0].path, "/cerebras/v1/models");
    assert_eq!(over_http[0].model, None);

    let cleared = app.http.delete(&url).send().await.expect("request");
    assert!(cleared.status().is_success());
    assert!(app.fake.requests().is_empty());

    app.models(Provider::Groq, "gsk_plain").send().await.expect("request");
    assert_eq!(app.fake.requests().len(), 1);
    app.fake.clear_requests();
    assert!(app.fake.requests().is_empty());
}

#[tokio::test]
async fn serve_without_recording_answers_but_keeps_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let root = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(hearth_fake_provider::serve(listener, false));
    let http = reqwest::Client::new();
    let response =
        http.get(format!("{root}/openai/v1/models")).bearer_auth("sk-proj-plain").send().await.expect("request");
    assert_eq!(response.status(), 200);
    let recorded: Vec<RecordedRequest> =
        http.get(format!("{root}/_fake/requests")).send().await.expect("request").json().await.expect("JSON list");
    assert!(recorded.is_empty());
    server.abort();
}

#[tokio::test]
async fn base_urls_mirror_the_real_ones() {
    let app = TestFake::start().await;
    let root = app.fake.root();
    assert!(root.starts_with("http://127.0.0.1:"));
    let expected = [
        ("openai", "/openai/v1"),
        ("groq", "/groq/openai/v1"),
        ("cerebras", "/cerebras/v1"),
        ("openrouter", "/openrouter/api/v1"),
        ("gemini", "/gemini"),
        ("anthropic", "/anthropic"),
    ];
    for (name, path) in expected {
        assert_eq!(app.fake.base_url(name), Some(format!("{root}{path}")));
    }
    assert_eq!(app.fake.base_url("mistral"), None);
}
