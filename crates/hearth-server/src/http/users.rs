//! `GET /api/users`: every user, a page at a time.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::replies::PublicUser;
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
    /// Token from the previous page; absent for the first page.
    page_token: Option<String>,
    /// Items per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
struct UserPage {
    items: Vec<PublicUser>,
    /// Pass back as `page_token` for the next page; null on the last page.
    #[schema(required)]
    page_token: Option<String>,
}

const LISTING: &str = "users";

/// # GET /api/users
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = UserPage), (status = 400, description = "bad page_token", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    _auth: AuthUser,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<UserPage>> {
    let size = page_size(query.page_size.as_deref())?;
    let after = match query.page_token.as_deref() {
        None => None,
        Some(token) => {
            let cursor = state.page_tokens.decode(LISTING, token)?;
            Some(
                Uuid::from_slice(&cursor)
                    .map_err(|_| ApiError::bad_request("invalid_page_token", "The page token is invalid."))?,
            )
        }
    };
    // One extra row says whether another page exists.
    let mut users = state.store.list_users(after, size + 1).await?;
    let next = if users.len() > size as usize {
        users.truncate(size as usize);
        users.last().map(|last| state.page_tokens.encode(LISTING, last.id.as_bytes()))
    } else {
        None
    };
    Ok(axum::Json(UserPage { items: users.into_iter().map(PublicUser::from).collect(), page_token: next }))
}
