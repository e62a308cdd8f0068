//! Why the fake refuses a request. Each dialect renders a [`Failure`] in its own error shape.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A refusal, before its provider's dialect gives it a status and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The request carried no key where the provider looks for one.
    MissingKey,
    /// Scenario `invalid_key`.
    InvalidKey,
    /// Scenario `permission_denied`.
    PermissionDenied,
    /// Scenario `quota`.
    Quota,
    /// Scenario `rate_limited`.
    RateLimited,
    /// Scenario `overloaded`.
    Overloaded,
    /// Scenario `model_not_found`.
    ModelNotFound,
    /// Scenario `server_error` (and the stream-error scenarios on non-stream requests).
    ServerError,
    /// Scenario `bad_gateway`.
    BadGateway,
    /// Scenario `timeout_status`.
    TimeoutStatus,
    /// Scenario `too_large`.
    TooLarge,
    /// Scenario `bad_request`.
    BadRequest,
    /// The request itself is malformed: a body that does not parse, a missing field or
    /// header, a key in the URL, an unknown scenario.
    Invalid {
        /// What is wrong, in words.
        message: String,
        /// The offending field, where the dialect names one.
        param: Option<&'static str>,
    },
}

impl Failure {
    /// A malformed request, described by `message`.
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::Invalid { message: message.into(), param: None }
    }

    /// A malformed request whose fault is the field `param`.
    pub(crate) fn invalid_field(param: &'static str, message: impl Into<String>) -> Failure {
        Failure::Invalid { message: message.into(), param: Some(param) }
    }
}

/// Which edge proxy's page a 502 looks like: real 502s come from the proxy in front of the
/// API, as HTML, so clients must cope with an error body that is not JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Edge {
    /// Cloudflare (OpenAI, Groq, Cerebras, Anthropic).
    Cloudflare,
    /// Google's front end (Gemini).
    Google,
}

/// A 502 Bad Gateway page from `edge`.
pub(crate) fn bad_gateway_page(edge: Edge) -> Response {
    let page = match edge {
        Edge::Cloudflare => {
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
             <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n\
             </body>\r\n</html>\r\n"
        }
        Edge::Google => {
            "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  \
             <title>Error 502 (Server Error)!!1</title>\n  <p><b>502.</b> <ins>That’s an error.</ins>\n  \
             <p>The server encountered a temporary error and could not complete your request.\
             <p>Please try again in 30 seconds.  <ins>That’s all we know.</ins>\n"
        }
    };
    (StatusCode::BAD_GATEWAY, [(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=UTF-8"))], page)
        .into_response()
}
