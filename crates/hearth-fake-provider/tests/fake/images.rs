//! OpenAI image generations: base64 and URL answers, the PNGs behind the URLs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hearth_fake_provider::Provider;
use serde_json::{Value, json};

use crate::{TestFake, key};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

async fn generate(app: &TestFake, key: &str, body: Value) -> reqwest::Response {
    app.http
        .post(format!("{}/images/generations", app.base(Provider::OpenAi)))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn gpt_image_answers_in_base64() {
    let app = TestFake::start().await;
    let response = generate(
        &app,
        "sk-proj-plain",
        json!({"model": "gpt-image-1", "prompt": "a red fox", "n": 2, "size": "1024x1024",
               "response_format": "url"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    assert!(body["created"].is_u64());
    let data = body["data"].as_array().expect("data[]");
    assert_eq!(data.len(), 2);
    let images: Vec<Vec<u8>> = data
        .iter()
        .map(|image| {
            assert_eq!(image["revised_prompt"], "a red fox");
            let b64 = image["b64_json"].as_str().expect("b64_json");
            STANDARD.decode(b64).expect("base64")
        })
        .collect();
    for png in &images {
        assert!(png.starts_with(&PNG_SIGNATURE));
    }
    assert_ne!(images[0], images[1]);
}

#[tokio::test]
async fn dall_e_answers_with_urls_served_by_the_fake() {
    let app = TestFake::start().await;
    let body = json!({"model": "dall-e-3", "prompt": "a lighthouse", "n": 1,
                      "size": "1024x1024", "response_format": "url"});
    let first: Value = generate(&app, "sk-proj-plain", body.clone()).await.json().await.expect("JSON body");
    let url = first["data"][0]["url"].as_str().expect("url").to_owned();
    assert!(url.starts_with(&format!("{}/_fake/images/", app.fake.root())) && url.ends_with(".png"), "{url}");

    let image = app.http.get(&url).send().await.expect("request");
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    let png = image.bytes().await.expect("bytes");
    assert!(png.starts_with(&PNG_SIGNATURE));

    // The same prompt gives the same image.
    let second: Value = generate(&app, "sk-proj-plain", body).await.json().await.expect("JSON body");
    assert_eq!(second["data"][0]["url"], url.as_str());

    let b64: Value = generate(
        &app,
        "sk-proj-plain",
        json!({"model": "dall-e-3", "prompt": "a lighthouse", "response_format": "b64_json"}),
    )
    .await
    .json()
    .await
    .expect("JSON body");
    let decoded = STANDARD.decode(b64["data"][0]["b64_json"].as_str().expect("b64_json")).expect("base64");
    assert_eq!(decoded, png.as_ref());
}

#[tokio::test]
async fn unknown_image_urls_are_not_found() {
    let app = TestFake::start().await;
    for path in ["/_fake/images/nothex.png", "/_fake/images/0123.png", "/_fake/images/x"] {
        let response = app.http.get(format!("{}{path}", app.fake.root())).send().await.expect("request");
        assert_eq!(response.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn image_requests_are_checked_like_chats() {
    let app = TestFake::start().await;
    let no_prompt = generate(&app, "sk-proj-plain", json!({"model": "dall-e-3"})).await;
    assert_eq!(no_prompt.status(), 400);
    let error: Value = no_prompt.json().await.expect("JSON body");
    assert_eq!(error["error"]["param"], "prompt");

    let limited =
        generate(&app, &key(Provider::OpenAi, "rate_limited"), json!({"model": "gpt-image-1", "prompt": "x"})).await;
    assert_eq!(limited.status(), 429);

    let unauthenticated = app
        .http
        .post(format!("{}/images/generations", app.base(Provider::OpenAi)))
        .json(&json!({"model": "gpt-image-1", "prompt": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(unauthenticated.status(), 401);
}
