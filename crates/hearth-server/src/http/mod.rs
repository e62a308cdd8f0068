//! The HTTP API: one module per resource, each exposing `routes()`, assembled here with the
//! middleware every request passes through.

pub(crate) mod account;
mod admin;
mod assistant;
mod asyncapi;
pub(crate) mod auth;
pub(crate) mod chat;
pub(crate) mod configure;
mod conversations;
mod devices;
mod documented_errors;
pub(crate) mod encryption_keys;
mod health;
pub(crate) mod identity_key;
mod keys;
mod request_metrics;
mod rooms;
mod users;
mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::settings::{Environment, Settings};
use crate::state::AppState;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "hearth", description = "hearth's REST API. Errors are {\"error\", \"message\"} objects."),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::routes())
        .merge(account::routes())
        .merge(chat::routes())
        .merge(keys::routes())
        .merge(assistant::routes())
        .merge(users::routes())
        .merge(conversations::routes())
        .merge(rooms::routes())
        .merge(devices::routes())
        .merge(encryption_keys::routes())
        .merge(identity_key::routes())
        .merge(health::routes())
        .merge(admin::routes())
}

/// The OpenAPI document of every endpoint, generated from the handlers.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, mut api) = api_router().split_for_parts();
    documented_errors::DocumentedErrors.modify(&mut api);
    api.paths.paths.insert(
        "/api/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new().summary(Some("This document.")).response(
                "200",
                utoipa::openapi::ResponseBuilder::new()
                    .description("The OpenAPI document")
                    .content("application/json", utoipa::openapi::ContentBuilder::new().build()),
            ),
        ),
    );
    // The socket API's own document (AsyncAPI): a REST route, so listed here too.
    api.paths.paths.insert(
        "/api/asyncapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("The AsyncAPI 3.0 document of the socket API at /socket/websocket."))
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new()
                        .description("The AsyncAPI document")
                        .content("application/json", utoipa::openapi::ContentBuilder::new().build()),
                ),
        ),
    );
    api
}

/// The whole application with its middleware: the REST API, its documents and pages, and
/// `sockets` (the realtime adapter's routes, handed in so the two adapters never import each
/// other).
pub fn router(state: AppState, sockets: axum::Router<AppState>) -> axum::Router {
    let (router, _) = api_router().split_for_parts();
    let openapi = serde_json::to_value(openapi_document()).expect("the OpenAPI document serializes");
    let settings = state.settings.clone();
    let counters = state.metrics.clone();
    let router = router
        .route("/api/openapi.json", axum::routing::get(move || async move { axum::Json(openapi) }))
        .route("/api/asyncapi.json", axum::routing::get(asyncapi::document))
        // Phoenix Channels; not REST, so not in the OpenAPI document.
        .merge(sockets)
        // Prometheus text, for loopback and `server.metrics_from` only.
        .route("/metrics", axum::routing::get(metrics))
        // The configure page: HTML for people, not API.
        .merge(configure::routes())
        // The web client.
        .merge(web::routes())
        .with_state(state);
    with_middleware(router, settings, counters)
}

/// Wraps routes in the middleware every request passes through (outermost first): sensitive
/// header marking, request metrics, panic catching, request ids, tracing, security headers,
/// CORS, HTTPS enforcement, the request timeout and the body limit; unknown paths and methods
/// get JSON.
fn with_middleware(router: axum::Router, settings: Arc<Settings>, metrics: Arc<Metrics>) -> axum::Router {
    let router = router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::map_response(plain_text_errors_as_json))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(settings.clone(), enforce_https))
        .layer(middleware::from_fn_with_state(settings.clone(), request_timeout));

    let sensitive = [header::AUTHORIZATION, header::COOKIE, header::SET_COOKIE, header::PROXY_AUTHORIZATION];
    let request_id = HeaderName::from_static("x-request-id");
    let hsts = (settings.env == Environment::Production)
        .then(|| HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    router.layer(
        ServiceBuilder::new()
            .layer(SetSensitiveHeadersLayer::new(sensitive))
            // Outside the panic catcher, so a panic is counted as the 500 it becomes.
            .layer(middleware::from_fn_with_state(metrics, request_metrics::count))
            .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
                // The panic's message goes to stderr through the panic hook; the client
                // learns nothing about it.
                ApiError::internal("handler panicked").into_response()
            }))
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                // Path only: query strings and headers can carry tokens; so does a configure
                // link's path, which is left out.
                let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                let path = request.uri().path();
                let path = if path.starts_with("/configure/") && !path.starts_with("/configure/assets/") {
                    "/configure/[link]"
                } else {
                    path
                };
                tracing::info_span!("request", method = %request.method(), path, id)
            }))
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ))
            .layer(SetResponseHeaderLayer::overriding(header::STRICT_TRANSPORT_SECURITY, hsts))
            .layer(cors(&settings.server.cors_origins)),
    )
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600))
}

/// # GET /metrics
///
/// Anyone else gets the 404 of a path that does not exist.
async fn metrics(
    State(state): State<AppState>,
    crate::extract::ClientIp(client): crate::extract::ClientIp,
) -> Response {
    if !(client.is_loopback() || state.settings.server.metrics_from.contains(&client)) {
        return ApiError::NotFound.into_response();
    }
    let content_type = HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], state.metrics.encode()).into_response()
}

/// Every client error is `{"error","message"}` JSON. hearth's extractors and handlers answer so
/// themselves; this catches a rejection any other axum extractor makes in plain text (e.g. the
/// WebSocket upgrade's, on a plain GET of `/socket/websocket`). Its text is replaced, not
/// passed on: axum's rejection texts can quote what the client sent.
async fn plain_text_errors_as_json(response: Response) -> Response {
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/plain"));
    if !(response.status().is_client_error() && plain_text) {
        return response;
    }
    let status = response.status();
    let error = match status.as_u16() {
        404 => ApiError::NotFound,
        405 => ApiError::MethodNotAllowed,
        413 => ApiError::PayloadTooLarge,
        422 => ApiError::Invalid(std::collections::BTreeMap::from([(
            "body".to_owned(),
            vec!["does not have the expected shape".to_owned()],
        )])),
        _ => ApiError::bad_request("malformed", "The request is malformed."),
    };
    let mut json = error.into_response();
    // The status stays what the rejection said (e.g. 426 Upgrade Required, 415).
    *json.status_mut() = status;
    json
}

/// Answers 408 when a request takes longer than `server.request_timeout_secs`.
/// An assistant turn may wait for the AI providers' deadline and then stream its reply, so it
/// gets that deadline plus a minute instead.
async fn request_timeout(State(settings): State<Arc<Settings>>, request: Request, next: Next) -> Response {
    let mut limit = Duration::from_secs(settings.server.request_timeout_secs.max(1));
    if request.uri().path() == "/api/chat/message" {
        limit = limit.max(settings.ai.routing.deadline_secs + Duration::from_secs(60));
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// In production without TLS of our own, only requests a trusted proxy received over
/// HTTPS are served.
async fn enforce_https(State(settings): State<Arc<Settings>>, request: Request, next: Next) -> Response {
    let server = &settings.server;
    if settings.env == Environment::Production && server.tls.is_none() {
        let peer =
            request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip());
        let via_trusted_proxy = peer.is_some_and(|ip| server.trusted_proxies.contains(&ip));
        let forwarded_https = request
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")));
        if !(via_trusted_proxy && forwarded_https) {
            return ApiError::Forbidden {
                code: "https_required",
                message: "This server only accepts HTTPS. Use https:// (through the configured proxy).",
            }
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt as _;

    use super::*;

    async fn call(router: axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
        let request = axum::http::Request::get(path).body(Body::empty()).expect("request");
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), BODY_LIMIT).await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("a JSON error body"))
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_that_says_nothing() {
        let routes = axum::Router::new().route(
            "/boom",
            axum::routing::get(|| async {
                panic!("secret detail: hunter2");
                #[allow(unreachable_code)]
                ""
            }),
        );
        let (status, body) =
            call(with_middleware(routes, Arc::new(Settings::default()), Arc::default()), "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "internal");
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_template_and_status() {
        let routes = axum::Router::new().route("/items/{id}", axum::routing::get(|| async { "an item" })).route(
            "/boom",
            axum::routing::post(|| async {
                panic!("counted as a 500");
                #[allow(unreachable_code)]
                ""
            }),
        );
        let metrics = Arc::new(Metrics::default());
        let app = with_middleware(routes, Arc::new(Settings::default()), metrics.clone());
        for (method, path) in [("GET", "/items/1"), ("GET", "/items/2"), ("GET", "/items/../../etc"), ("POST", "/boom")]
        {
            let request = axum::http::Request::builder().method(method).uri(path).body(Body::empty()).expect("request");
            app.clone().oneshot(request).await.expect("infallible");
        }
        let request = axum::http::Request::builder().method("BREW").uri("/items/3").body(Body::empty());
        app.oneshot(request.expect("request")).await.expect("infallible");
        let text = metrics.encode();
        for line in [
            r#"hearth_http_requests_total{method="GET",route="/items/{id}",status="200"} 2"#,
            r#"hearth_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
            r#"hearth_http_requests_total{method="POST",route="/boom",status="500"} 1"#,
            r#"hearth_http_requests_total{method="other",route="/items/{id}",status="405"} 1"#,
            r#"hearth_http_request_duration_seconds_count{method="GET",route="/items/{id}"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        assert!(!text.contains("/items/1") && !text.contains("etc"), "a raw path became a label:\n{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_is_a_408() {
        let routes = axum::Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "too late"
            }),
        );
        let mut settings = Settings::default();
        settings.server.request_timeout_secs = 5;
        // With the clock paused, tokio advances time as soon as every task is idle.
        let (status, body) = call(with_middleware(routes, Arc::new(settings), Arc::default()), "/slow").await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["error"], "timeout");
    }
}
