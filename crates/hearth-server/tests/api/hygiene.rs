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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_path_parameters_and_query_strings_are_json_errors() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.org").await;
    let token = Some(ann.auth_token.as_str());
    // A malformed id, UTF-8 or not, is 422 `invalid` naming the parameter, on every route.
    for (method, route, parameter) in [
        (Method::DELETE, "/api/devices/{}", "id"),
        (Method::DELETE, "/api/keys/{}", "id"),
        (Method::GET, "/api/assistant/images/{}", "id"),
        (Method::GET, "/api/conversations/private/{}", "user_id"),
    ] {
        for malformed in ["%ff%fe", "abc", "123", "%00"] {
            let path = route.replace("{}", malformed);
            let reply = app.send(app.request(method.clone(), &path, token)).await;
            assert_eq!(reply.expect_invalid(parameter), ["must be a UUID"], "{method} {path}");
        }
        // A well-formed id of nothing the caller may see is 404.
        let path = route.replace("{}", &uuid::Uuid::now_v7().to_string());
        app.send(app.request(method.clone(), &path, token)).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    let reply = app.get_authed("/api/messages?conversation_id=abc", &ann.auth_token).await;
    assert_eq!(reply.expect_invalid("conversation_id"), ["must be a UUID"]);
    // Files and links that cannot be named are not found; still JSON.
    app.get("/js/%ff").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/css/%ff%fe.css").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    for body in [json!({}), json!({ "provider": "groq", "envelope": {} })] {
        let reply = app.post("/configure/%ff", &body).await;
        assert!(reply.status.is_client_error(), "{} {}", reply.status, reply.text);
        crate::harness::assert_error_shape(&reply.json);
    }
    // A repeated query parameter is a malformed query.
    for path in ["/api/users?page_size=5&page_size=6", "/api/messages?conversation_id=a&conversation_id=b"] {
        app.get_authed(path, &ann.auth_token).await.expect_error(StatusCode::BAD_REQUEST, "malformed");
    }
    let page = app.client.get(app.url("/configure/x?provider=groq&provider=openai")).send().await.expect("GET");
    assert_eq!(page.status(), StatusCode::NOT_FOUND, "the invalid-link page");
    // What axum itself would answer in plain text (here, a GET of the socket path that is no
    // WebSocket upgrade) is JSON too.
    let reply = app.get("/socket/websocket?token=x").await;
    assert!(reply.status.is_client_error(), "{} {}", reply.status, reply.text);
    crate::harness::assert_error_shape(&reply.json);
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
    ("/admin/audit", "get"),
    ("/admin/audit/verify", "get"),
    ("/admin/challenge", "post"),
    ("/admin/invites", "post"),
    ("/admin/links", "post"),
    ("/admin/links/redeem", "post"),
    ("/admin/providers", "get"),
    ("/admin/rooms", "get"),
    ("/admin/rooms/{id}/messages", "get"),
    ("/admin/rooms/{id}/messages/{message_id}", "delete"),
    ("/admin/session", "post"),
    ("/admin/users", "get"),
    ("/admin/users/{id}", "delete"),
    ("/admin/users/{id}/disable", "post"),
    ("/admin/users/{id}/enable", "post"),
    ("/admin/users/{id}/roles", "post"),
    ("/api/account", "delete"),
    ("/api/assistant/images/{id}", "get"),
    ("/api/asyncapi.json", "get"),
    ("/api/chat/message", "post"),
    ("/api/conversations", "get"),
    ("/api/conversations/private/{user_id}", "get"),
    ("/api/devices", "get"),
    ("/api/devices/link", "post"),
    ("/api/devices/{id}", "delete"),
    ("/api/email", "patch"),
    ("/api/encryption_keys", "get"),
    ("/api/encryption_keys", "put"),
    ("/api/identity_key", "put"),
    ("/api/keys", "get"),
    ("/api/keys/{id}", "delete"),
    ("/api/me", "get"),
    ("/api/messages", "get"),
    ("/api/rooms", "get"),
    ("/api/rooms", "post"),
    ("/api/rooms/{id}/join", "post"),
    ("/api/rooms/{id}/members", "post"),
    ("/api/rooms/{id}/members", "get"),
    ("/api/rooms/{id}/leave", "post"),
    ("/api/rooms/{id}/messages", "get"),
    ("/api/rooms/{id}/search", "get"),
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
    ("/auth/registration", "get"),
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
            .replace("{user_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{message_id}", &uuid::Uuid::now_v7().to_string());
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

/// The operations of an OpenAPI document: (method, path, operation).
fn operations(document: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                found.push((method.clone(), path.clone(), operation.clone()));
            }
        }
    }
    found
}

#[test]
fn every_operation_lists_the_errors_it_can_answer() {
    let document = serde_json::to_value(hearth_server::openapi_document()).expect("serialize");
    for (method, path, operation) in operations(&document) {
        let statuses: BTreeSet<&str> =
            operation["responses"].as_object().expect("responses").keys().map(String::as_str).collect();
        let takes =
            |place: &str| operation["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["in"] == place));
        let body = operation.get("requestBody").is_some();
        let mut expected = BTreeSet::new();
        if body || takes("query") {
            expected.insert("400");
        }
        if operation["security"].as_array().is_some_and(|s| !s.is_empty()) {
            expected.insert("401");
        }
        if takes("path") {
            expected.extend(["404", "422"]);
        }
        if body {
            expected.extend(["413", "422"]);
        }
        assert!(expected.is_subset(&statuses), "{method} {path} lists {statuses:?}, not all of {expected:?}");
        for (status, response) in operation["responses"].as_object().expect("responses") {
            assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {status}");
            // A failing health check answers its usual shape, for monitors to read.
            let health = path == "/health" && status == "503";
            if (status.starts_with('4') || status.starts_with('5')) && !health {
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {status}");
            }
            if status == "429" {
                assert_eq!(response["headers"]["Retry-After"]["schema"]["type"], "integer", "{method} {path}");
            }
        }
    }
    // The limits a handler applies are 429s in the document.
    for (method, path) in [
        ("post", "/auth/register"),
        ("post", "/auth/login"),
        ("post", "/auth/password/request"),
        ("post", "/auth/password/reset"),
        ("post", "/auth/device/link"),
        ("patch", "/api/password"),
        ("patch", "/api/email"),
        ("delete", "/api/account"),
        ("post", "/api/chat/message"),
    ] {
        assert!(document["paths"][path][method]["responses"].get("429").is_some(), "{method} {path}");
    }
}

#[test]
fn request_constraints_live_in_the_schemas() {
    let document = serde_json::to_value(hearth_server::openapi_document()).expect("serialize");
    let schemas = &document["components"]["schemas"];
    let field = |schema: &str, name: &str| schemas[schema]["properties"][name].clone();
    for schema in ["RegisterRequest", "LoginRequest", "PasswordResetRequest", "ChangeEmailRequest"] {
        assert_eq!(field(schema, "email")["format"], "email", "{schema}");
    }
    for (schema, name) in [
        ("RegisterRequest", "password"),
        ("ResetPasswordRequest", "new_password"),
        ("ResetPasswordRequest", "new_password_confirmation"),
        ("ChangePasswordRequest", "new_password"),
        ("ChangeEmailRequest", "new_password"),
    ] {
        let password = field(schema, name);
        assert_eq!((password["minLength"].clone(), password["maxLength"].clone()), (json!(8), json!(1024)), "{schema}");
    }
    assert_eq!(schemas["ThemeName"]["enum"], json!(["day", "night"]));
    let magnification = field("ProfileRequest", "magnification");
    assert_eq!((magnification["minimum"].clone(), magnification["maximum"].clone()), (json!(0.7), json!(1.4)));
    assert_eq!(field("ProfileRequest", "recents")["maxItems"], 20);
    assert_eq!(schemas["Recent"]["maxLength"], 200);
    let message = field("ChatMessageRequest", "message");
    assert_eq!((message["minLength"].clone(), message["maxLength"].clone()), (json!(1), json!(10000)));
    for path in ["/api/users", "/api/messages"] {
        let parameters = document["paths"][path]["get"]["parameters"].as_array().expect("parameters").clone();
        let page_size = parameters.iter().find(|p| p["name"] == "page_size").expect("page_size");
        assert_eq!(
            (page_size["schema"]["minimum"].clone(), page_size["schema"]["maximum"].clone()),
            (json!(1), json!(100))
        );
    }
    let parameters = document["paths"]["/api/messages"]["get"]["parameters"].as_array().expect("parameters").clone();
    let conversation = parameters.iter().find(|p| p["name"] == "conversation_id").expect("conversation_id");
    assert_eq!(
        (conversation["required"].clone(), conversation["schema"]["format"].clone()),
        (json!(true), json!("uuid"))
    );
    // Replies are typed, and `required` lists what is always there (null included).
    let page = &schemas["MessagePage"];
    assert_eq!(page["properties"]["items"]["items"]["$ref"], "#/components/schemas/Message");
    assert_eq!(page["required"], json!(["items", "page_token"]));
    let required: BTreeSet<&str> =
        schemas["Message"]["required"].as_array().expect("required").iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(required, BTreeSet::from(["id", "sender", "content", "inserted_at", "updated_at", "message_group"]));
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
