//! `GET /api/users`: the directory, a page at a time, or whom a search finds
//! (`crate::accounts::directory`).

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::{self, UserPage};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AuthUser, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_users))
}

/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size accepted.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Parses `page_size`: 1–100, default 50.
pub fn page_size(raw: Option<&str>) -> ApiResult<u32> {
    match raw {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(text) => match text.parse::<u32>() {
            Ok(size) if (1..=MAX_PAGE_SIZE).contains(&size) => Ok(size),
            _ => Err(ApiError::invalid("page_size", format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"))),
        },
    }
}

#[derive(Debug, Deserialize, IntoParams)]
struct PageQuery {
    /// Only people whose display name contains this (any case), or whose email is exactly this
    /// (that person's email is then shown); 1–320 characters.
    #[param(min_length = 1, max_length = 320)]
    query: Option<String>,
    /// Token from the previous page; absent for the first page.
    page_token: Option<String>,
    /// Items per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

/// # GET /api/users
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = UserPage), (status = 400, description = "bad page_token", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<UserPage>> {
    let size = page_size(query.page_size.as_deref())?;
    let page = accounts::directory(&state, auth.user_id, query.query.as_deref(), query.page_token.as_deref(), size);
    Ok(axum::Json(page.await?))
}
