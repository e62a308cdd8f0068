//! Response bodies: whole JSON, server-sent events, and bodies cut off on purpose.

use std::convert::Infallible;
use std::io;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The whole answer with its terminator.
    Complete,
    /// Cut off: a JSON body stops halfway and the connection closes; a stream sends some
    /// deltas and half an event, then ends without its terminator.
    Truncated,
    /// A stream whose first event is an error.
    ErrorBeforeDelta,
    /// A stream with two text deltas, then an error event.
    ErrorAfterDelta,
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &Value) -> Response {
    (status, [(CONTENT_TYPE, HeaderValue::from_static("application/json"))], value.to_string()).into_response()
}

/// A 200 JSON response whose `Content-Length` promises the whole of `value` but whose body
/// stops halfway; the connection then closes, so the client sees a broken body.
pub(crate) fn cut_json(value: &Value) -> Response {
    let full = Bytes::from(value.to_string());
    let half = full.slice(..full.len() / 2);
    // The pause before failing lets hyper flush the half that was sent; failing at once
    // would drop it unsent, and the client would see no response at all.
    let failure = futures::stream::once(async {
        tokio::task::yield_now().await;
        Err(io::Error::other("hearth-fake-provider: truncated on purpose"))
    });
    let chunks = futures::stream::iter([Ok(half)]).chain(failure);
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json")), (CONTENT_LENGTH, HeaderValue::from(full.len()))],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// A 200 response sending `chunks` one frame each, as a stream does.
pub(crate) fn streamed(content_type: &'static str, chunks: Vec<Bytes>) -> Response {
    let frames = futures::stream::iter(chunks.into_iter().map(Ok::<_, Infallible>));
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static(content_type)), (CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        Body::from_stream(frames),
    )
        .into_response()
}

/// A server-sent event with only a `data:` line.
pub(crate) fn sse_data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// A server-sent event with `event:` and `data:` lines.
pub(crate) fn sse_event(event: &str, value: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {value}\n\n"))
}

/// The first `keep` chunks of a stream, then the first half of the next one, as a stream
/// cut off mid-event looks.
pub(crate) fn cut_after(mut chunks: Vec<Bytes>, keep: usize) -> Vec<Bytes> {
    if let Some(next) = chunks.get(keep).cloned() {
        chunks.truncate(keep);
        chunks.push(next.slice(..next.len() / 2));
    }
    chunks
}
