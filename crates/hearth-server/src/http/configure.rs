//! The configure page: `GET /configure/{link}` serves a small page (its script and style from
//! this server only, under a strict Content-Security-Policy) that encrypts a pasted key to the
//! keyguard in the browser; `POST /configure/{link}` takes the encrypted key. Every link that is
//! not live gets the same page or the same error, whatever the reason.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hearth_ai::ProviderName;
use hearth_keyguard::{Envelope, KeyguardError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::assistant::chat::tell;
use crate::assistant::configure::{self, Link, LinkPurpose, Refused};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

const PAGE: &str = include_str!("configure_page/page.html");
const INVALID: &str = include_str!("configure_page/invalid.html");
const SCRIPT: &str = include_str!("configure_page/configure.js");
const STYLE: &str = include_str!("configure_page/configure.css");
/// While the keyguard cannot be reached; the link stays good.
const UNAVAILABLE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Try again soon · hearth</title>\
    <link rel=\"stylesheet\" href=\"/configure/assets/configure.css\"></head><body><main>\
    <h1>Try again in a moment</h1><p>Keys cannot be added right now. Reload this page in a moment: \
    the link keeps working until it expires.</p></main></body></html>\n";

/// Only this server's own script and style; the page may post only to itself.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The page, its assets and the submission. Not in the OpenAPI document: pages, not API.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/configure/assets/configure.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/configure/assets/configure.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/configure/{link}", get(page).post(submit))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}

/// An HTML page with the headers every configure page carries: the link is in its URL, so it
/// is never cached nor sent on as a referrer.
fn html(status: StatusCode, body: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ];
    (status, headers, body).into_response()
}

fn invalid_page() -> Response {
    html(StatusCode::NOT_FOUND, INVALID.to_owned())
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    provider: Option<String>,
}

/// What the page's script is told.
#[derive(Debug, Serialize)]
struct PageConfig {
    kid: u32,
    public_key: String,
    user_id: uuid::Uuid,
    /// The SHA-256 of the link's token, in hex: the page binds its envelope to it.
    link: String,
    providers: Vec<PageProvider>,
    provider: Option<ProviderName>,
    pool: bool,
}

/// A provider as the page lists it: a pasted key carrying its prefix preselects it.
#[derive(Debug, Serialize)]
struct PageProvider {
    name: &'static str,
    label: &'static str,
    key_prefix: Option<&'static str>,
}

/// # GET /configure/{link}
///
/// A path that is no link (not even UTF-8) gets the page of a link that is not live; a query
/// that does not parse (a repeated `provider`) only loses the preselection it would make.
async fn page(
    State(state): State<AppState>,
    link: Result<Path<String>, ApiError>,
    query: Result<Query<PageQuery>, ApiError>,
) -> Response {
    let Some(link) = link.ok().and_then(|Path(link)| Link::parse(&link)) else { return invalid_page() };
    let preselected = query.ok().and_then(|Query(query)| query.provider).and_then(|p| p.parse().ok());
    let purpose = match configure::live(&state, &link).await {
        Ok(Some(purpose)) => purpose,
        Ok(None) => return invalid_page(),
        Err(error) => return ApiError::from(error).into_response(),
    };
    // Asked afresh for every page (pages are rare): a page must never get a key pair whose
    // master key version a rotation has just retired.
    let public_key = match state.assistant.keyguard().public_key().await {
        Ok(key) => key,
        Err(_) => return html(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE.to_owned()),
    };
    let config = PageConfig {
        kid: public_key.kid,
        public_key: public_key.key,
        user_id: link.user_id,
        link: link.hash_hex(),
        providers: hearth_ai::PROVIDERS
            .iter()
            .map(|provider| PageProvider {
                name: provider.name,
                label: provider.label,
                key_prefix: provider.key_prefix,
            })
            .collect(),
        provider: preselected,
        pool: purpose == LinkPurpose::Pool,
    };
    html(StatusCode::OK, PAGE.replace("{{CONFIG}}", &script_safe_json(&json!(config))))
}

/// JSON that cannot end the `<script>` element it sits in: `<`, `>` and `&` as `\u00xx`
/// escapes, which `JSON.parse` reads back as the same characters.
fn script_safe_json(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// What the page posts.
#[derive(Debug, Deserialize)]
pub(crate) struct Submission {
    provider: String,
    envelope: Envelope,
}

fn refusal(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let body = ErrorBody { error: code, message: message.into(), fields: None, retry_after: None };
    (status, axum::Json(body)).into_response()
}

/// # POST /configure/{link}
async fn submit(
    State(state): State<AppState>,
    link: Result<Path<String>, ApiError>,
    Json(submission): Json<Submission>,
) -> Response {
    const INVALID_LINK: &str =
        "This configure link is not valid any more. Send /configure in your assistant conversation for a new one.";
    let Some(link) = link.ok().and_then(|Path(link)| Link::parse(&link)) else {
        return refusal(StatusCode::NOT_FOUND, "invalid_link", INVALID_LINK);
    };
    let Ok(provider) = submission.provider.parse::<ProviderName>() else {
        return ApiError::invalid("provider", format!("must be one of {}", ProviderName::all_names())).into_response();
    };
    match configure::submit(&state, &link, provider, submission.envelope).await {
        Ok(saved) => {
            let whose = if saved.pool { "The free tier's pool has a new" } else { "Your" };
            let message = format!(
                "{whose} {} key ending in {} is saved, sealed by the keyguard.{}",
                saved.provider,
                saved.last_four,
                if saved.pool { "" } else { " The assistant uses it for your requests from now on." }
            );
            tell(&state, link.user_id, &message).await;
            axum::Json(json!({ "provider": saved.provider, "last_four": saved.last_four, "message": message }))
                .into_response()
        }
        Err(Refused::Link) => refusal(StatusCode::NOT_FOUND, "invalid_link", INVALID_LINK),
        Err(Refused::Keyguard(KeyguardError::InvalidKey(message))) => {
            refusal(StatusCode::UNPROCESSABLE_ENTITY, "invalid_key", message)
        }
        Err(Refused::Keyguard(KeyguardError::Undecryptable)) => refusal(
            StatusCode::BAD_REQUEST,
            "undecryptable",
            "The encrypted key could not be opened. Reload the page and paste the key again.",
        ),
        Err(Refused::Keyguard(_)) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "keyguard_unavailable",
            "Keys cannot be saved right now. Please try again in a moment.",
        ),
        Err(Refused::Store(error)) => ApiError::from(error).into_response(),
    }
}
