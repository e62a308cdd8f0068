//! `GET /api/asyncapi.json`: the AsyncAPI 3.0 document of the socket API (`/socket/websocket`):
//! every topic, client event, push and reply payload.
//!
//! It is written by hand, not generated: the channel handlers take untyped JSON and push from
//! many places. `tests/api/asyncapi.rs` holds it to the running server, both ways: the events
//! the server accepts and pushes are the ones it lists, with the payloads it describes.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("asyncapi.json");

/// # GET /api/asyncapi.json
///
/// Served as the bytes written, so what a reader sees is what is in the repository.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_asyncapi_3_json() {
        let document: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("the document is JSON");
        assert_eq!(document["asyncapi"], "3.0.0");
    }
}
