//! The assistant's generated images, served to their owner only.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AuthUser, Path};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(image))
}

/// # GET /api/assistant/images/{id}
///
/// An image the assistant made for the caller (`/image` in the assistant conversation).
/// Anyone else's image, or none, is 404.
#[utoipa::path(get, path = "/api/assistant/images/{id}", tag = "assistant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Image id")),
    responses((status = 200, description = "the image", content_type = "image/png"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn image(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>) -> ApiResult<Response> {
    let image = state.store.assistant_image(id, auth.user_id).await?.ok_or(ApiError::NotFound)?;
    let content_type = HeaderValue::from_str(&image.content_type).map_err(ApiError::internal)?;
    let headers = [
        (header::CONTENT_TYPE, content_type),
        // Never changes; only its owner may keep it.
        (header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable")),
    ];
    Ok((headers, image.bytes).into_response())
}
