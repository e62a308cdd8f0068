//! Gemini's native API: generateContent, streamGenerateContent (SSE and JSON array), models.

use hearth_fake_provider::Provider;
use serde_json::{Value, json};

use crate::{TestFake, deltas, events, key, reply};

#[tokio::test]
async fn generate_content_has_candidates_and_usage() {
    let app = TestFake::start().await;
    let response =
        app.chat(Provider::Gemini, &key(Provider::Gemini, "ok"), "hello world", false).send().await.expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    let candidate = &body["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(candidate["content"]["parts"][0]["text"], reply(Provider::Gemini, "hello world"));
    assert_eq!(candidate["finishReason"], "STOP");
    let usage = &body["usageMetadata"];
    let prompt = usage["promptTokenCount"].as_u64().expect("promptTokenCount");
    let candidates = usage["candidatesTokenCount"].as_u64().expect("candidatesTokenCount");
    assert_eq!(usage["totalTokenCount"].as_u64(), Some(prompt + candidates));
}

#[tokio::test]
async fn sse_streams_open_with_a_thought_signature_and_end_with_stop() {
    let app = TestFake::start().await;
    let response =
        app.chat(Provider::Gemini, &key(Provider::Gemini, "ok"), "tell me more", true).send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/event-stream"));
    let body = response.text().await.expect("whole body");
    assert!(body.contains("\r\n\r\n"), "Gemini frames events with CRLF");

    let events = events(&body);
    let first = events[0].json();
    let first_part = &first["candidates"][0]["content"]["parts"][0];
    assert!(first_part["thoughtSignature"].is_string(), "{first}");
    assert!(first_part.get("text").is_none(), "{first}");

    let deltas = deltas(Provider::Gemini, &events);
    assert!(deltas.len() >= 2);
    assert_eq!(deltas.concat(), reply(Provider::Gemini, "tell me more"));

    let last = events.last().expect("events").json();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(last["usageMetadata"]["candidatesTokenCount"].is_u64());
    let finished = events.iter().filter(|e| e.json()["candidates"][0].get("finishReason").is_some()).count();
    assert_eq!(finished, 1, "only the last chunk finishes");
}

#[tokio::test]
async fn streams_without_alt_sse_are_one_json_array() {
    let app = TestFake::start().await;
    let url = format!("{}/v1beta/models/gemini-2.5-pro:streamGenerateContent", app.base(Provider::Gemini));
    let response = app
        .http
        .post(url)
        .header("x-goog-api-key", "AIzaSyplain")
        .json(&json!({"contents": [{"parts": [{"text": "no role given"}]}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let chunks: Vec<Value> = response.json().await.expect("a JSON array");
    let text: String = chunks
        .iter()
        .flat_map(|c| c["candidates"][0]["content"]["parts"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, reply(Provider::Gemini, "no role given"));
    assert_eq!(chunks.last().expect("chunks")["candidates"][0]["finishReason"], "STOP");
    assert_eq!(chunks[0]["modelVersion"], "gemini-2.5-pro");
}

#[tokio::test]
async fn the_model_list_names_models() {
    let app = TestFake::start().await;
    let response = app.models(Provider::Gemini, "AIzaSyplain").send().await.expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    let models = body["models"].as_array().expect("models[]");
    assert!(models.iter().all(|m| m["name"].as_str().is_some_and(|n| n.starts_with("models/"))));
}
