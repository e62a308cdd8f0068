//! OpenAI, Groq, Cerebras and OpenRouter: chat completions, streams and model lists.

use hearth_fake_provider::Provider;
use serde_json::{Value, json};

use crate::{TestFake, deltas, events, key, model, reply};

const OPENAI_COMPATIBLE: [Provider; 4] = [Provider::OpenAi, Provider::Groq, Provider::Cerebras, Provider::OpenRouter];

#[tokio::test]
async fn completions_have_the_chat_completion_shape() {
    let app = TestFake::start().await;
    for provider in OPENAI_COMPATIBLE {
        let response = app.chat(provider, &key(provider, "ok"), "hello world", false).send().await.expect("request");
        assert_eq!(response.status(), 200, "{provider}");
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(body["object"], "chat.completion", "{provider}");
        assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(body["created"].is_u64());
        assert_eq!(body["model"], model(provider));
        let choice = &body["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], reply(provider, "hello world"));
        assert_eq!(choice["finish_reason"], "stop");
        let usage = &body["usage"];
        let prompt = usage["prompt_tokens"].as_u64().expect("prompt_tokens");
        let completion = usage["completion_tokens"].as_u64().expect("completion_tokens");
        assert!(prompt > 0 && completion > 0);
        assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + completion));
    }
}

#[tokio::test]
async fn content_parts_count_as_the_message_text() {
    let app = TestFake::start().await;
    let response = app
        .http
        .post(format!("{}/chat/completions", app.base(Provider::OpenAi)))
        .bearer_auth("sk-proj-plain")
        .json(&json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "user", "content": "an older question"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is "},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "text", "text": "in this picture?"},
                ]},
                {"role": "assistant", "content": "a trailing assistant turn"},
            ],
        }))
        .send()
        .await
        .expect("request");
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["choices"][0]["message"]["content"], "openai reply to: what is in this picture?");
}

#[tokio::test]
async fn streams_send_word_deltas_then_stop_usage_and_done() {
    let app = TestFake::start().await;
    for provider in OPENAI_COMPATIBLE {
        let response =
            app.chat(provider, &key(provider, "ok"), "stream this please", true).send().await.expect("request");
        assert_eq!(response.status(), 200, "{provider}");
        let content_type = response.headers()["content-type"].to_str().expect("ascii");
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        let body = response.text().await.expect("whole body");

        // OpenRouter opens with a keep-alive comment; the others do not.
        assert_eq!(
            body.starts_with(": OPENROUTER PROCESSING\n"),
            provider == Provider::OpenRouter,
            "{provider}: {body}"
        );

        let events = events(&body);
        let deltas = deltas(provider, &events);
        assert!(deltas.len() >= 2, "{provider}: {deltas:?}");
        assert_eq!(deltas.concat(), reply(provider, "stream this please"));

        let chunks: Vec<Value> = events.iter().filter(|e| e.data != "[DONE]").map(|e| e.json()).collect();
        for chunk in &chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk", "{provider}");
            assert_eq!(chunk["model"], model(provider));
        }
        let stops = chunks.iter().filter(|c| c["choices"][0]["finish_reason"] == "stop").count();
        assert_eq!(stops, 1, "{provider}: one chunk finishes");
        let usage = chunks.last().expect("chunks");
        assert_eq!(usage["choices"], json!([]), "{provider}: the usage chunk is last");
        assert!(usage["usage"]["total_tokens"].as_u64().is_some_and(|t| t > 0));
        assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"), "{provider}");
    }
}

#[tokio::test]
async fn streams_carry_a_usage_chunk_only_when_asked() {
    let app = TestFake::start().await;
    let body = app
        .http
        .post(format!("{}/chat/completions", app.base(Provider::Groq)))
        .bearer_auth("gsk_plain")
        .json(&json!({
            "model": "llama-3.3-70b-versatile",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true,
        }))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let events = events(&body);
    assert_eq!(deltas(Provider::Groq, &events).concat(), "groq reply to: hi");
    assert!(
        events
            .iter()
            .filter(|e| e.data != "[DONE]")
            .all(|e| e.json()["choices"].as_array().is_some_and(|c| c.len() == 1))
    );
    assert!(!body.contains("\"usage\""), "{body}");
}

#[tokio::test]
async fn model_lists_follow_each_provider() {
    let app = TestFake::start().await;
    for provider in OPENAI_COMPATIBLE {
        let response = app.models(provider, &key(provider, "ok")).send().await.expect("request");
        assert_eq!(response.status(), 200, "{provider}");
        let body: Value = response.json().await.expect("JSON body");
        let models = body["data"].as_array().expect("data[]");
        assert!(!models.is_empty());
        assert!(models.iter().all(|m| m["id"].is_string()));
        if provider != Provider::OpenRouter {
            assert_eq!(body["object"], "list");
        }
    }
}

#[tokio::test]
async fn malformed_bodies_are_refused_in_the_dialect() {
    let app = TestFake::start().await;
    let url = format!("{}/chat/completions", app.base(Provider::OpenAi));
    let no_messages = app
        .http
        .post(&url)
        .bearer_auth("sk-proj-plain")
        .json(&json!({"model": "gpt-4o-mini", "messages": []}))
        .send()
        .await
        .expect("request");
    assert_eq!(no_messages.status(), 400);
    let body: Value = no_messages.json().await.expect("JSON body");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], "messages");

    let not_json = app
        .http
        .post(url.replace("/openai/v1", "/openrouter/api/v1"))
        .bearer_auth("sk-or-v1-plain")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.expect("JSON body");
    assert_eq!(body["error"]["code"], 400);
}
