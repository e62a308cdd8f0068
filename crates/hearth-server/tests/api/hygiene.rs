//! What every response shares: health, JSON 404/405, security headers, request ids, CORS,
//! the OpenAPI document, and production mode's HTTPS rule.

use std::collections::BTreeSet;
use std::net::IpAddr;

use hearth_server::settings::Environment;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
    CONTENT_SECURITY_POLICY, ORIGIN, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Reply, TestApp, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_ok() {
    let app = spawn_app().await;
    assert!(app.addr.ip().is_loopback() && app.addr.port() != 0, "bound to {}", app.addr);
    let reply = app.get("/health").await;
    assert_eq!(reply.expect_status(StatusCode::OK), &json!({ "status": "ok", "database": "ok" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_json_and_wrong_methods_405_json() {
    let app = spawn_app().await;
    for path in ["/nope", "/api/nope", "/auth/nope", "/api/devices/a/b"] {
        app.get(path).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    app.post("/api/nope", &json!({})).await.expect_error(StatusCode::NOT_FOUND, "not_found");

    for (method, path) in [
        (Method::GET, "/auth/login"),
        (Method::DELETE, "/health"),
        (Method::PUT, "/api/me"),
        (Method::GET, "/api/password"),
    ] {
        let reply = app.send(app.request(method.clone(), path, None)).await;
        reply.expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

/// Asserts the security headers every response carries.
fn assert_security_headers(reply: &Reply) {
    let header = |name| reply.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header(X_CONTENT_TYPE_OPTIONS), Some("nosniff"), "{:?}", reply.headers);
    assert_eq!(header(X_FRAME_OPTIONS), Some("DENY"), "{:?}", reply.headers);
    assert!(header(CONTENT_SECURITY_POLICY).is_some_and(|v| v.contains("default-src")), "{:?}", reply.headers);
    assert_eq!(header(REFERRER_POLICY), Some("no-referrer"), "{:?}", reply.headers);
    let id = header(reqwest::header::HeaderName::from_static("x-request-id")).expect("x-request-id");
    assert!(!id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_has_security_headers_and_a_request_id() {
    let app = spawn_app().await;
    let ok = app.get("/health").await;
    assert_security_headers(&ok);
    let id = ok.headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("x-request-id");
    uuid::Uuid::parse_str(id).expect("a generated request id is a UUID");
    assert!(ok.headers.get(STRICT_TRANSPORT_SECURITY).is_none(), "no HSTS in development");

    assert_security_headers(&app.get("/nope").await);
    assert_security_headers(&app.get("/api/me").await);
    assert_security_headers(&app.post("/auth/login", &json!({ "email": "x" })).await);

    // Each response gets its own id; a client's own id is kept.
    let other = app.get("/health").await;
    assert_ne!(other.headers.get("x-request-id"), ok.headers.get("x-request-id"));
    let mine = app.send(app.client.get(app.url("/health")).header("x-request-id", "client-chosen-id-42")).await;
    assert_eq!(mine.headers.get("x-request-id").and_then(|v| v.to_str().ok()), Some("client-chosen-id-42"));
}

async fn preflight(app: &TestApp, origin: &str) -> Reply {
    app.send(
        app.client
            .request(Method::OPTIONS, app.url("/auth/login"))
            .header(ORIGIN, origin)
            .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(ACCESS_CONTROL_REQUEST_HEADERS, "content-type"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_the_configured_origins() {
    let app = spawn_app_with(|s| s.server.cors_origins = vec!["https://app.example".into()]).await;

    let allowed = preflight(&app, "https://app.example").await;
    assert!(allowed.status.is_success(), "{} {}", allowed.status, allowed.text);
    assert_eq!(
        allowed.headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).and_then(|v| v.to_str().ok()),
        Some("https://app.example")
    );
    let methods = allowed.headers.get("access-control-allow-methods").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(methods.contains("POST"), "{methods}");

    let refused = preflight(&app, "https://evil.example").await;
    assert!(refused.headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{:?}", refused.headers);

    // A simple request from the allowed origin gets the header; from another it does not.
    let get = |origin: &'static str| app.send(app.client.get(app.url("/health")).header(ORIGIN, origin));
    let from_app = get("https://app.example").await;
    assert_eq!(
        from_app.headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).and_then(|v| v.to_str().ok()),
        Some("https://app.example")
    );
    assert!(get("https://evil.example").await.headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    // Without configured origins, no origin is allowed.
    let default_app = spawn_app().await;
    let reply = preflight(&default_app, "https://app.example").await;
    assert!(reply.headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{:?}", reply.headers);
}

/// Every route the router serves, as (path, method).
const ROUTES: &[(&str, &str)] = &[
    ("/api/account", "delete"),
    ("/api/assistant/images/{id}", "get"),
    ("/api/chat/message", "post"),
    ("/api/conversations", "get"),
    ("/api/conversations/private/{user_id}", "get"),
    ("/api/devices", "get"),
    ("/api/devices/link", "post"),
    ("/api/devices/{id}", "delete"),
    ("/api/email", "patch"),
    ("/api/encryption_keys", "get"),
    ("/api/encryption_keys", "put"),
    ("/api/keys", "get"),
    ("/api/keys/{id}", "delete"),
    ("/api/me", "get"),
    ("/api/messages", "get"),
    ("/api/openapi.json", "get"),
    ("/api/password", "patch"),
    ("/api/profile", "patch"),
    ("/api/signout_all", "post"),
    ("/api/token/email_change", "post"),
    ("/api/token/email_confirm", "post"),
    ("/api/users", "get"),
    ("/auth/confirm", "post"),
    ("/auth/device/link", "post"),
    ("/auth/login", "post"),
    ("/auth/password/confirm", "post"),
    ("/auth/password/request", "post"),
    ("/auth/password/reset", "post"),
    ("/auth/refresh", "post"),
    ("/auth/register", "post"),
    ("/health", "get"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let app = spawn_app().await;
    let reply = app.get("/api/openapi.json").await;
    let document = reply.expect_status(StatusCode::OK);
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with('3')), "{}", reply.text);
    let paths = document["paths"].as_object().expect("paths");
    let mut listed = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "options", "head", "patch", "trace"].contains(&method.as_str()) {
                listed.insert((path.clone(), method.clone()));
            }
        }
    }
    let expected: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(path, method)| ((*path).to_owned(), (*method).to_owned())).collect();
    assert_eq!(listed, expected);

    // Every listed route is really served: neither 404 nor 405 (without credentials or a
    // body they answer 200, 400 or 401).
    for (path, method) in ROUTES {
        let path = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{user_id}", &uuid::Uuid::now_v7().to_string());
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
        let reply = app.send(app.request(method.clone(), &path, None)).await;
        assert!(
            [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED].contains(&reply.status),
            "{method} {path}: {} {}",
            reply.status,
            reply.text
        );
    }
    // The document is the same one the library exposes.
    let library = serde_json::to_value(hearth_server::openapi_document()).expect("serialize");
    assert_eq!(&library, document);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_requires_https_through_a_trusted_proxy() {
    let app = spawn_app_with(|s| {
        s.env = Environment::Production;
        s.server.trusted_proxies = vec![IpAddr::from([127, 0, 0, 1])];
    })
    .await;

    let plain = app.get("/health").await;
    plain.expect_error(StatusCode::FORBIDDEN, "https_required");
    let plain_api = app.post("/auth/login", &json!({ "email": "a@example.org", "password": "whatever!" })).await;
    plain_api.expect_error(StatusCode::FORBIDDEN, "https_required");
    let http = app.send(app.client.get(app.url("/health")).header("x-forwarded-proto", "http")).await;
    http.expect_error(StatusCode::FORBIDDEN, "https_required");

    let https = app.send(app.client.get(app.url("/health")).header("x-forwarded-proto", "https")).await;
    https.expect_status(StatusCode::OK);
    let hsts = https.headers.get(STRICT_TRANSPORT_SECURITY).and_then(|v| v.to_str().ok()).expect("an HSTS header");
    assert!(hsts.contains("max-age="), "{hsts}");
    assert_security_headers(&https);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_does_not_believe_untrusted_peers() {
    // The proxy list does not include the test client's address.
    let app = spawn_app_with(|s| {
        s.env = Environment::Production;
        s.server.trusted_proxies = vec![IpAddr::from([192, 0, 2, 1])];
    })
    .await;
    let reply = app.send(app.client.get(app.url("/health")).header("x-forwarded-proto", "https")).await;
    reply.expect_error(StatusCode::FORBIDDEN, "https_required");
}
