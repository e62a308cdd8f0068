//! The web client (`web/` in the repository), embedded in the binary and served at `/`, and the
//! admin page at `/admin`: plain ES modules and CSS from this server only, under a strict
//! Content-Security-Policy. The pages load nothing from elsewhere; the client encrypts and
//! decrypts messages in the browser.
//! Files go out compressed (brotli or gzip, as the browser accepts) and revalidate by ETag.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;

#[derive(RustEmbed)]
#[folder = "../../web/"]
struct WebClient;

/// Scripts, styles and connections to this server only; images also from `blob:` (the
/// assistant's images are fetched with the access token and shown from memory). No inline
/// script or style, so injected markup could run nothing.
const APP_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self' blob:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The page and its files, compressed for browsers that accept it (the page and its modules are
/// text: brotli makes them about a fifth of their size). Not in the OpenAPI document: pages,
/// not API.
pub fn routes() -> axum::Router<AppState> {
    let compression = tower_http::compression::CompressionLayer::new().br(true).gzip(true).no_deflate().no_zstd();
    axum::Router::new()
        .route("/", get(index))
        // Deep links to a conversation (what `recents` hold) open the same page.
        .route("/chat/{id}", get(index))
        // The admin page (`hearth admin open` prints a link to it); it signs in by itself
        // with the link's code, so serving it reveals nothing.
        .route("/admin", get(|headers: HeaderMap| async move { file("admin.html", &headers) }))
        .route("/favicon.svg", get(|headers: HeaderMap| async move { file("favicon.svg", &headers) }))
        .route("/js/{name}", get(|name, headers: HeaderMap| async move { asset("js", name, &headers) }))
        .route("/css/{name}", get(|name, headers: HeaderMap| async move { asset("css", name, &headers) }))
        .layer(compression)
}

/// A file of `folder`; a name that is not even UTF-8 names no file.
fn asset(folder: &str, name: Result<Path<String>, ApiError>, headers: &HeaderMap) -> Response {
    match name {
        Ok(Path(name)) => file(&format!("{folder}/{name}"), headers),
        Err(_) => ApiError::NotFound.into_response(),
    }
}

async fn index(headers: HeaderMap) -> Response {
    file("index.html", &headers)
}

/// One embedded file with its type, a strong ETag (its SHA-256) and `no-cache`: browsers
/// revalidate on every load and get a `304` while the binary is the same.
fn file(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = WebClient::get(path) else {
        return ApiError::NotFound.into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let etag = HeaderValue::from_str(&etag).expect("hex is a valid header value");
    let mut response = if request.get(header::IF_NONE_MATCH) == Some(&etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mimetype = file.metadata.mimetype();
        let content_type = if mimetype.starts_with("text/") || mimetype.ends_with("+xml") {
            HeaderValue::from_str(&format!("{mimetype}; charset=utf-8"))
        } else {
            HeaderValue::from_str(mimetype)
        };
        let content_type = content_type.unwrap_or(HeaderValue::from_static("application/octet-stream"));
        ([(header::CONTENT_TYPE, content_type)], file.data.into_owned()).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if path.ends_with(".html") {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(APP_POLICY));
    }
    response
}
