//! The fake's own endpoints under `/_fake`, for tests.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::record::RecordedRequest;

/// # GET /_fake/requests
///
/// The provider requests recorded so far, oldest first (empty when recording is off).
pub(super) async fn requests(State(state): State<AppState>) -> Json<Vec<RecordedRequest>> {
    Json(state.recorder.snapshot())
}

/// # DELETE /_fake/requests
pub(super) async fn clear_requests(State(state): State<AppState>) -> StatusCode {
    state.recorder.clear();
    StatusCode::NO_CONTENT
}

/// Any path the fake does not serve.
pub(super) async fn not_found() -> Response {
    let body = json!({
        "error": "not_found",
        "message": "hearth-fake-provider serves no such path; see the crate's documentation for its routes",
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}
