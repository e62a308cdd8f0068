//! Keys are looked for where each provider looks for them, and nowhere else.

use hearth_fake_provider::Provider;
use serde_json::{Value, json};

use crate::TestFake;

#[tokio::test]
async fn openai_compatible_providers_need_a_bearer_key() {
    let app = TestFake::start().await;
    for provider in [Provider::OpenAi, Provider::Groq, Provider::Cerebras, Provider::OpenRouter] {
        let url = format!("{}/chat/completions", app.base(provider));
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let refused = [
            app.http.post(&url).json(&body),
            app.http.post(&url).header("authorization", "Token abc").json(&body),
            app.http.post(&url).header("x-api-key", "abc").json(&body),
            app.http.post(&url).bearer_auth("").json(&body),
        ];
        for request in refused {
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 401, "{provider}");
            let error: Value = response.json().await.expect("JSON body");
            assert!(error["error"]["message"].is_string(), "{provider}: {error}");
        }
        let models = app.http.get(format!("{}/models", app.base(provider))).send().await.expect("request");
        assert_eq!(models.status(), 401, "{provider}");
        let accepted = app.http.post(&url).bearer_auth("abc").json(&body);
        assert_eq!(accepted.send().await.expect("request").status(), 200);
    }
}

#[tokio::test]
async fn gemini_refuses_keys_in_the_url() {
    let app = TestFake::start().await;
    let base = app.base(Provider::Gemini);
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    for url in [
        format!("{base}/v1beta/models/gemini-2.5-flash:generateContent?key=AIzaSyplain"),
        format!("{base}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=AIzaSyplain"),
        format!("{base}/v1beta/models?key=AIzaSyplain"),
    ] {
        // Refused even when the header carries the key too.
        for with_header in [false, true] {
            let mut request =
                if url.contains("Content") { app.http.post(&url).json(&body) } else { app.http.get(&url) };
            if with_header {
                request = request.header("x-goog-api-key", "AIzaSyplain");
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 400, "{url}");
            let error: Value = response.json().await.expect("JSON body");
            assert_eq!(error["error"]["code"], 400);
            assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
            let message = error["error"]["message"].as_str().expect("message");
            assert!(message.contains("x-goog-api-key"), "{message}");
            assert!(!error.to_string().contains("API_KEY_INVALID"));
        }
    }
}

#[tokio::test]
async fn gemini_needs_the_header_key() {
    let app = TestFake::start().await;
    let url = format!("{}/v1beta/models/gemini-2.5-flash:generateContent", app.base(Provider::Gemini));
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let missing = app.http.post(&url).json(&body).send().await.expect("request");
    assert_eq!(missing.status(), 401);
    let error: Value = missing.json().await.expect("JSON body");
    assert_eq!(error["error"]["code"], 401);
    assert!(error["error"]["status"].is_string());
    let bearer = app.http.post(&url).bearer_auth("AIzaSyplain").json(&body);
    assert_eq!(bearer.send().await.expect("request").status(), 401);
    let header = app.http.post(&url).header("x-goog-api-key", "AIzaSyplain").json(&body);
    assert_eq!(header.send().await.expect("request").status(), 200);
}

#[tokio::test]
async fn anthropic_needs_x_api_key_and_a_version() {
    let app = TestFake::start().await;
    let url = format!("{}/v1/messages", app.base(Provider::Anthropic));
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "hi"}]});

    let missing = app.http.post(&url).header("anthropic-version", "2023-06-01").json(&body);
    let bearer =
        app.http.post(&url).bearer_auth("sk-ant-api03-plain").header("anthropic-version", "2023-06-01").json(&body);
    for request in [missing, bearer] {
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 401);
        let error: Value = response.json().await.expect("JSON body");
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "authentication_error");
    }

    let no_version =
        app.http.post(&url).header("x-api-key", "sk-ant-api03-plain").json(&body).send().await.expect("request");
    assert_eq!(no_version.status(), 400);
    let error: Value = no_version.json().await.expect("JSON body");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("anthropic-version")));

    let models = app
        .http
        .get(format!("{}/v1/models", app.base(Provider::Anthropic)))
        .header("x-api-key", "sk-ant-api03-plain")
        .send()
        .await
        .expect("request");
    assert_eq!(models.status(), 400, "the version is required everywhere");
}

#[tokio::test]
async fn unknown_scenario_markers_are_refused_loudly() {
    let app = TestFake::start().await;
    for provider in Provider::ALL {
        let response = app.chat(provider, "key-fake-rate_limitd-0123", "hi", false).send().await.expect("request");
        assert_eq!(response.status(), 400, "{provider}");
        let body = response.text().await.expect("body");
        assert!(body.contains("rate_limitd"), "{provider}: {body}");
    }
}
