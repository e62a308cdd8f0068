//! Every scenario in every provider's dialect: status codes (table-driven), error shapes,
//! headers, delays.

use std::time::{Duration, Instant};

use hearth_fake_provider::Provider;
use serde_json::Value;

use crate::{TestFake, key, reply};

/// Expected statuses, in [`Provider::ALL`] order: openai, groq, cerebras, openrouter,
/// gemini, anthropic. The stream-error scenarios answer non-stream requests like
/// `server_error`.
const STATUSES: [(&str, [u16; 6]); 13] = [
    ("invalid_key", [401, 401, 401, 401, 400, 401]),
    ("permission_denied", [403, 403, 403, 403, 403, 403]),
    ("quota", [429, 429, 402, 402, 429, 402]),
    ("rate_limited", [429, 429, 429, 429, 429, 429]),
    ("overloaded", [503, 498, 503, 503, 503, 529]),
    ("model_not_found", [404, 404, 404, 404, 404, 404]),
    ("server_error", [500, 500, 500, 500, 500, 500]),
    ("bad_gateway", [502, 502, 502, 502, 502, 502]),
    ("timeout_status", [504, 504, 504, 408, 504, 504]),
    ("too_large", [429, 429, 429, 429, 400, 413]),
    ("bad_request", [400, 400, 400, 400, 400, 400]),
    ("error_before_delta", [500, 500, 500, 500, 500, 500]),
    ("error_after_delta", [500, 500, 500, 500, 500, 500]),
];

#[tokio::test]
async fn each_scenario_answers_its_status_for_each_provider() {
    let app = TestFake::start().await;
    for (scenario, statuses) in STATUSES {
        for (provider, status) in Provider::ALL.into_iter().zip(statuses) {
            let key = key(provider, scenario);
            let chat = app.chat(provider, &key, "hi", false).send().await;
            let chat = chat.expect("request");
            assert_eq!(chat.status(), status, "{scenario} / {provider} / chat");
            // The body is whole and, but for a 502 from an edge proxy, JSON.
            let body = chat.text().await.expect("body");
            if status != 502 || provider == Provider::OpenRouter {
                serde_json::from_str::<Value>(&body).expect("a JSON error body");
            }

            let models = app.models(provider, &key).send().await.expect("request");
            assert_eq!(models.status(), status, "{scenario} / {provider} / models");

            // Scenarios that fail before answering fail streams alike.
            if !scenario.starts_with("error_") {
                let stream = app.chat(provider, &key, "hi", true).send().await;
                let stream = stream.expect("request");
                assert_eq!(stream.status(), status, "{scenario} / {provider} / stream");
            }
        }
    }
}

async fn error_of(app: &TestFake, provider: Provider, scenario: &str) -> Value {
    let response = app.chat(provider, &key(provider, scenario), "hi", false).send().await.expect("request");
    response.json().await.expect("JSON error body")
}

#[tokio::test]
async fn openai_style_errors_carry_type_and_code() {
    let app = TestFake::start().await;
    for provider in [Provider::OpenAi, Provider::Groq, Provider::Cerebras] {
        let cases = [
            ("invalid_key", Some("invalid_api_key")),
            ("rate_limited", Some("rate_limit_exceeded")),
            ("model_not_found", Some("model_not_found")),
            ("too_large", Some("rate_limit_exceeded")),
        ];
        for (scenario, code) in cases {
            let error = error_of(&app, provider, scenario).await;
            assert_eq!(error["error"]["code"].as_str(), code, "{provider} {scenario}");
            assert!(error["error"]["type"].is_string());
            assert!(error["error"]["message"].is_string());
        }
        let too_large = error_of(&app, provider, "too_large").await;
        let message = too_large["error"]["message"].as_str().expect("message");
        assert!(message.starts_with("Request too large for "), "{message}");
        let bad_request = error_of(&app, provider, "bad_request").await;
        assert_eq!(bad_request["error"]["type"], "invalid_request_error");
        assert!(bad_request["error"]["param"].is_string());
    }
    for provider in [Provider::OpenAi, Provider::Groq] {
        let quota = error_of(&app, provider, "quota").await;
        assert_eq!(quota["error"]["code"], "insufficient_quota");
    }
}

#[tokio::test]
async fn openrouter_errors_carry_numeric_codes() {
    let app = TestFake::start().await;
    for (scenario, code) in
        [("invalid_key", 401), ("quota", 402), ("bad_gateway", 502), ("timeout_status", 408), ("too_large", 429)]
    {
        let error = error_of(&app, Provider::OpenRouter, scenario).await;
        assert_eq!(error["error"]["code"], code, "{scenario}");
        assert!(error["error"]["message"].is_string());
    }
    let too_large = error_of(&app, Provider::OpenRouter, "too_large").await;
    assert!(too_large["error"]["message"].as_str().is_some_and(|m| m.starts_with("Request too large for ")));
}

#[tokio::test]
async fn gemini_errors_carry_status_and_details() {
    let app = TestFake::start().await;
    let cases = [
        ("invalid_key", "INVALID_ARGUMENT"),
        ("permission_denied", "PERMISSION_DENIED"),
        ("quota", "RESOURCE_EXHAUSTED"),
        ("rate_limited", "RESOURCE_EXHAUSTED"),
        ("overloaded", "UNAVAILABLE"),
        ("model_not_found", "NOT_FOUND"),
        ("server_error", "INTERNAL"),
        ("timeout_status", "DEADLINE_EXCEEDED"),
        ("too_large", "INVALID_ARGUMENT"),
        ("bad_request", "INVALID_ARGUMENT"),
    ];
    for (scenario, status) in cases {
        let error = error_of(&app, Provider::Gemini, scenario).await;
        assert_eq!(error["error"]["status"], status, "{scenario}");
        assert!(error["error"]["code"].is_u64());
    }

    let details = |error: &Value| error["error"]["details"].as_array().cloned().unwrap_or_default();
    let invalid_key = error_of(&app, Provider::Gemini, "invalid_key").await;
    assert!(details(&invalid_key).iter().any(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        && d["reason"] == "API_KEY_INVALID"
        && d["domain"] == "googleapis.com"));
    let bad_request = error_of(&app, Provider::Gemini, "bad_request").await;
    assert!(!bad_request.to_string().contains("API_KEY_INVALID"));
    let leaked = error_of(&app, Provider::Gemini, "permission_denied").await;
    assert!(leaked["error"]["message"].as_str().is_some_and(|m| m.starts_with("Your API key was reported as leaked")));
    let too_large = error_of(&app, Provider::Gemini, "too_large").await;
    assert!(
        too_large["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("The input token count exceeds the maximum"))
    );

    let quota_id = |error: &Value| {
        details(error)
            .iter()
            .find(|d| d["@type"] == "type.googleapis.com/google.rpc.QuotaFailure")
            .and_then(|d| d["violations"][0]["quotaId"].as_str().map(str::to_owned))
    };
    let quota = error_of(&app, Provider::Gemini, "quota").await;
    assert_eq!(quota_id(&quota).as_deref(), Some("GenerateRequestsPerDayPerProjectPerModel-FreeTier"));
    let rate_limited = error_of(&app, Provider::Gemini, "rate_limited").await;
    assert_eq!(quota_id(&rate_limited).as_deref(), Some("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"));
    assert!(
        details(&rate_limited)
            .iter()
            .any(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo" && d["retryDelay"] == "1s")
    );
}

#[tokio::test]
async fn anthropic_errors_carry_their_type() {
    let app = TestFake::start().await;
    let cases = [
        ("invalid_key", "authentication_error"),
        ("permission_denied", "permission_error"),
        ("quota", "billing_error"),
        ("rate_limited", "rate_limit_error"),
        ("overloaded", "overloaded_error"),
        ("model_not_found", "not_found_error"),
        ("server_error", "api_error"),
        ("too_large", "request_too_large"),
        ("bad_request", "invalid_request_error"),
    ];
    for (scenario, kind) in cases {
        let error = error_of(&app, Provider::Anthropic, scenario).await;
        assert_eq!(error["type"], "error", "{scenario}");
        assert_eq!(error["error"]["type"], kind, "{scenario}");
        assert!(error["request_id"].is_string());
    }
}

#[tokio::test]
async fn rate_limits_say_when_to_retry() {
    let app = TestFake::start().await;
    for provider in Provider::ALL {
        let response = app.chat(provider, &key(provider, "rate_limited"), "hi", false).send().await.expect("request");
        let headers = response.headers();
        assert_eq!(headers["retry-after"], "1", "{provider}");
        if provider.is_openai_compatible() {
            for name in [
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ] {
                assert!(headers.contains_key(name), "{provider}: {name}");
            }
        }
    }
    // OpenRouter's and Cerebras' 402s and the other quota answers are not retryable.
    for provider in Provider::ALL {
        let response = app.chat(provider, &key(provider, "quota"), "hi", false).send().await.expect("request");
        assert!(!response.headers().contains_key("retry-after"), "{provider}");
    }
}

#[tokio::test]
async fn bad_gateways_outside_openrouter_are_edge_pages() {
    let app = TestFake::start().await;
    for provider in [Provider::OpenAi, Provider::Gemini, Provider::Anthropic] {
        let response = app.chat(provider, &key(provider, "bad_gateway"), "hi", false).send().await.expect("request");
        assert_eq!(response.status(), 502);
        assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    }
}

#[tokio::test]
async fn delays_answer_normally_after_waiting() {
    let app = TestFake::start().await;
    for provider in [Provider::Groq, Provider::Gemini, Provider::Anthropic] {
        let started = Instant::now();
        let response =
            app.chat(provider, &key(provider, "delay200"), "wait for it", true).send().await.expect("request");
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(200), "{provider}");
        let body = response.text().await.expect("body");
        let deltas = crate::deltas(provider, &crate::events(&body));
        assert_eq!(deltas.concat(), reply(provider, "wait for it"));
    }
}
