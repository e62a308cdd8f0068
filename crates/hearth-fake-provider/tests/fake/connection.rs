//! Scenarios that break the connection or the stream: hang, reset, truncated, and errors
//! inside a 200 stream.

use std::time::Duration;

use hearth_fake_provider::Provider;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{TestFake, deltas, events, key, reply};

#[tokio::test]
async fn hang_never_answers_so_the_client_times_out() {
    let app = TestFake::start().await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().expect("client");
    let calls = Provider::ALL.into_iter().flat_map(|provider| {
        [false, true].map(|stream| {
            let request = app.chat_on(&impatient, provider, &key(provider, "hang"), "hi", stream);
            async move { (provider, request.send().await) }
        })
    });
    for (provider, outcome) in futures::future::join_all(calls).await {
        let error = outcome.expect_err("no answer");
        assert!(error.is_timeout(), "{provider}: {error}");
    }
}

#[tokio::test]
async fn reset_fails_the_request() {
    let app = TestFake::start().await;
    for provider in Provider::ALL {
        for stream in [false, true] {
            let outcome = app.chat(provider, &key(provider, "reset"), "hi", stream).send().await;
            let error = outcome.expect_err("no response");
            assert!(!error.is_timeout() && !error.is_status(), "{provider}: {error}");
        }
        let models = app.models(provider, &key(provider, "reset")).send().await;
        assert!(models.is_err(), "{provider}");
    }
}

#[tokio::test]
async fn reset_sends_not_even_a_status_line() {
    let app = TestFake::start().await;
    let mut socket = TcpStream::connect(app.fake.addr()).await.expect("connect");
    let request = "GET /groq/openai/v1/models HTTP/1.1\r\nhost: fake\r\n\
                   authorization: Bearer gsk_fake-reset-0123\r\n\r\n";
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut received = Vec::new();
    // Either a clean end of stream or a reset: both with nothing read.
    let _ = socket.read_to_end(&mut received).await;
    assert!(received.is_empty(), "{}", String::from_utf8_lossy(&received));
}

#[tokio::test]
async fn truncated_bodies_fail_to_read() {
    let app = TestFake::start().await;
    for provider in Provider::ALL {
        let response = app
            .chat(provider, &key(provider, "truncated"), "hi", false)
            .send()
            .await
            .expect("a status line and headers");
        assert_eq!(response.status(), 200, "{provider}");
        let error = response.bytes().await.expect_err("a cut-off body");
        assert!(error.is_body() || error.is_decode(), "{provider}: {error}");

        let models = app.models(provider, &key(provider, "truncated")).send().await.expect("a status line and headers");
        assert!(models.json::<Value>().await.is_err(), "{provider}");
    }
}

#[tokio::test]
async fn truncated_streams_stop_without_their_terminator() {
    let app = TestFake::start().await;
    for provider in Provider::ALL {
        let response =
            app.chat(provider, &key(provider, "truncated"), "a longer question", true).send().await.expect("request");
        assert_eq!(response.status(), 200, "{provider}");
        let body = response.text().await.expect("the stream ends cleanly at the HTTP level");
        assert!(!body.ends_with("\n\n"), "{provider}: ends mid-event");
        let events = events(&body);
        let deltas = deltas(provider, &events);
        assert_eq!(deltas.len(), 2, "{provider}: {deltas:?}");
        assert!(reply(provider, "a longer question").starts_with(&deltas.concat()));
        assert!(!body.contains("[DONE]"), "{provider}");
        assert!(!body.contains("message_stop"), "{provider}");
        assert!(!body.contains("finishReason"), "{provider}");
        assert!(!body.contains("\"finish_reason\":\"stop\""), "{provider}");
    }
}

/// The error event of a stream, and the text deltas before it.
async fn stream_error(app: &TestFake, provider: Provider, scenario: &str) -> (Vec<String>, Value) {
    let response = app.chat(provider, &key(provider, scenario), "hi", true).send().await.expect("request");
    assert_eq!(response.status(), 200, "{provider} {scenario}");
    let body = response.text().await.expect("whole body");
    let events = events(&body);
    let last = events.last().expect("events");
    if provider == Provider::Anthropic {
        assert_eq!(last.event.as_deref(), Some("error"));
    }
    let before = &events[..events.len() - 1];
    (deltas(provider, before), last.json())
}

fn assert_error_event(provider: Provider, error: &Value) {
    match provider {
        Provider::Anthropic => {
            assert_eq!(error["type"], "error");
            assert_eq!(error["error"]["type"], "overloaded_error");
        }
        Provider::Gemini => {
            assert_eq!(error["error"]["code"], 503);
            assert_eq!(error["error"]["status"], "UNAVAILABLE");
        }
        Provider::OpenRouter => assert_eq!(error["error"]["code"], 502),
        _ => {
            assert!(error["error"]["message"].is_string(), "{provider}");
            assert!(error["error"]["type"].is_string(), "{provider}");
        }
    }
}

#[tokio::test]
async fn error_before_delta_opens_the_stream_with_an_error() {
    let app = TestFake::start().await;
    for provider in Provider::ALL {
        let (deltas, error) = stream_error(&app, provider, "error_before_delta").await;
        assert!(deltas.is_empty(), "{provider}: {deltas:?}");
        assert_error_event(provider, &error);
    }
    // Nothing precedes the error but OpenRouter's keep-alive comment.
    let body = app
        .chat(Provider::Anthropic, &key(Provider::Anthropic, "error_before_delta"), "hi", true)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(body.starts_with("event: error\n"), "{body}");
}

#[tokio::test]
async fn error_after_delta_sends_two_deltas_then_an_error() {
    let app = TestFake::start().await;
    for provider in Provider::ALL {
        let (deltas, error) = stream_error(&app, provider, "error_after_delta").await;
        assert_eq!(deltas.len(), 2, "{provider}: {deltas:?}");
        assert_eq!(deltas.concat(), format!("{provider} reply "));
        assert_error_event(provider, &error);
    }
}

#[tokio::test(start_paused = true)]
async fn a_paused_clock_keeps_connections_and_skips_delays() {
    let app = TestFake::start().await;
    let http = reqwest::Client::builder().pool_idle_timeout(None).build().expect("client");
    let first = app.chat_on(&http, Provider::Groq, "gsk_plain", "one", false).send().await;
    assert_eq!(first.expect("request").status(), 200);
    // An hour of paused time passes at once; the server has no timer to close the idle
    // connection with, and a long delay scenario costs no real time.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let started = std::time::Instant::now();
    let delayed = app.chat_on(&http, Provider::Groq, &key(Provider::Groq, "delay60000"), "two", false).send().await;
    assert_eq!(delayed.expect("request").status(), 200);
    assert!(started.elapsed() < Duration::from_secs(30));
}
