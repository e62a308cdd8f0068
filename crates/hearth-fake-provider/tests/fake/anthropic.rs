//! Anthropic's Messages API: whole messages, the event stream, models.

use hearth_fake_provider::Provider;
use serde_json::{Value, json};

use crate::{TestFake, deltas, events, key, reply};

#[tokio::test]
async fn messages_have_text_content_and_usage() {
    let app = TestFake::start().await;
    let response = app
        .chat(Provider::Anthropic, &key(Provider::Anthropic, "ok"), "hello world", false)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("request-id"));
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["content"], json!([{"type": "text", "text": reply(Provider::Anthropic, "hello world")}]));
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0));
    assert!(body["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0));
}

#[tokio::test]
async fn streams_follow_the_event_sequence() {
    let app = TestFake::start().await;
    let body = app
        .chat(Provider::Anthropic, &key(Provider::Anthropic, "ok"), "one two", true)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("whole body");
    let events = events(&body);
    let names: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(names.len(), events.len(), "every event is named");
    let delta_count = names.iter().filter(|n| **n == "content_block_delta").count();
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", delta_count));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    for event in &events {
        assert_eq!(event.json()["type"], event.event.as_deref().expect("named"));
    }
    let deltas = deltas(Provider::Anthropic, &events);
    assert!(deltas.len() >= 2);
    assert_eq!(deltas.concat(), reply(Provider::Anthropic, "one two"));
    assert_eq!(events[0].json()["message"]["usage"]["input_tokens"].as_u64().map(|n| n > 0), Some(true));
    let message_delta = events[events.len() - 2].json();
    assert_eq!(message_delta["delta"]["stop_reason"], "end_turn");
    assert!(message_delta["usage"]["output_tokens"].is_u64());
}

#[tokio::test]
async fn content_blocks_count_as_the_message_text() {
    let app = TestFake::start().await;
    let response = app
        .http
        .post(format!("{}/v1/messages", app.base(Provider::Anthropic)))
        .header("x-api-key", "sk-ant-api03-plain")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "block one, "},
                {"type": "text", "text": "block two"},
            ]}],
        }))
        .send()
        .await
        .expect("request");
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["content"][0]["text"], "anthropic reply to: block one, block two");
}

#[tokio::test]
async fn max_tokens_is_required() {
    let app = TestFake::start().await;
    let response = app
        .http
        .post(format!("{}/v1/messages", app.base(Provider::Anthropic)))
        .header("x-api-key", "sk-ant-api03-plain")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn the_model_list_names_models() {
    let app = TestFake::start().await;
    let response = app.models(Provider::Anthropic, "sk-ant-api03-plain").send().await.expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    assert!(body["data"].as_array().expect("data[]").iter().all(|m| m["type"] == "model" && m["id"].is_string()));
    assert_eq!(body["has_more"], false);
}
