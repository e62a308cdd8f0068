//! Rooms over REST: creating, listing, joining and leaving them, adding members, a room's posts
//! a page at a time, and searching them (`crate::rooms`). Posting is on the room's channel.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::users::page_size;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json, Path, Query};
use crate::rooms::{self, AddMembers, Added, CreateRoom, ListedRoom, MemberPage, PostPage, RoomList, SearchResults};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_room, list_rooms))
        .routes(routes!(join_room))
        .routes(routes!(add_members, list_members))
        .routes(routes!(leave_room))
        .routes(routes!(room_messages))
        .routes(routes!(search_room))
}

/// # POST /api/rooms (+)
///
/// The creator is the room's first member and moderator.
#[utoipa::path(post, path = "/api/rooms", tag = "rooms", security(("bearer" = [])), request_body = CreateRoom,
    responses((status = 201, body = ListedRoom), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<CreateRoom>,
) -> ApiResult<(StatusCode, axum::Json<ListedRoom>)> {
    Ok((StatusCode::CREATED, axum::Json(rooms::create(&state, auth.user_id, request).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
struct PageQuery {
    /// Token from the previous page; absent for the first page.
    page_token: Option<String>,
    /// Items per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

/// # GET /api/rooms (+)
///
/// The rooms the caller is in and every public room (to browse), by id.
#[utoipa::path(get, path = "/api/rooms", tag = "rooms", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = RoomList), (status = 400, description = "bad page_token", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_rooms(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<RoomList>> {
    let size = page_size(query.page_size.as_deref())?;
    Ok(axum::Json(rooms::list(&state, auth.user_id, query.page_token.as_deref(), size).await?))
}

/// # POST /api/rooms/{id}/join (+)
///
/// Joins a public room (a member joining again changes nothing). A private room the caller is
/// not in is 404, as a room that does not exist.
#[utoipa::path(post, path = "/api/rooms/{id}/join", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The room")),
    responses((status = 200, body = ListedRoom), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn join_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(room_id): Path<Uuid>,
) -> ApiResult<axum::Json<ListedRoom>> {
    Ok(axum::Json(rooms::join_public(&state, auth.user_id, room_id).await?))
}

/// # POST /api/rooms/{id}/members (+)
///
/// A moderator adds people; the reply lists those who were not members yet.
#[utoipa::path(post, path = "/api/rooms/{id}/members", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The room")), request_body = AddMembers,
    responses((status = 200, body = Added), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, description = "not a member or not a moderator", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_members(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(room_id): Path<Uuid>,
    Json(request): Json<AddMembers>,
) -> ApiResult<axum::Json<Added>> {
    Ok(axum::Json(rooms::add_members(&state, auth.user_id, room_id, request).await?))
}

/// # GET /api/rooms/{id}/members (+)
///
/// A member's page of the room's members, by id (the join reply of `room:{id}` has only the
/// first hundred).
#[utoipa::path(get, path = "/api/rooms/{id}/members", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The room"), PageQuery),
    responses((status = 200, body = MemberPage), (status = 400, description = "bad page_token", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, description = "not a member", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(room_id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<MemberPage>> {
    let size = page_size(query.page_size.as_deref())?;
    Ok(axum::Json(rooms::members(&state, auth.user_id, room_id, query.page_token.as_deref(), size).await?))
}

/// # POST /api/rooms/{id}/leave (+)
#[utoipa::path(post, path = "/api/rooms/{id}/leave", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The room")),
    responses((status = 204, description = "left"), (status = 401, body = ErrorBody),
              (status = 403, description = "not a member", body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn leave_room(State(state): State<AppState>, auth: AuthUser, Path(room_id): Path<Uuid>) -> ApiResult<StatusCode> {
    rooms::leave(&state, auth.user_id, room_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # GET /api/rooms/{id}/messages (+)
///
/// A member's page of the room's posts, newest first.
#[utoipa::path(get, path = "/api/rooms/{id}/messages", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The room"), PageQuery),
    responses((status = 200, body = PostPage), (status = 400, description = "bad page_token", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, description = "not a member", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn room_messages(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(room_id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<PostPage>> {
    let size = page_size(query.page_size.as_deref())?;
    Ok(axum::Json(rooms::history(&state, auth.user_id, room_id, query.page_token.as_deref(), size).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
struct SearchQuery {
    /// The words to find (each one whole, in any case), 1–200 characters.
    #[param(required = true, min_length = 1, max_length = 200)]
    q: Option<String>,
    /// Most posts to return, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

/// # GET /api/rooms/{id}/search (+)
///
/// A member's full-text search of the room's posts, newest first.
#[utoipa::path(get, path = "/api/rooms/{id}/search", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The room"), SearchQuery),
    responses((status = 200, body = SearchResults), (status = 401, body = ErrorBody),
              (status = 403, description = "not a member", body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn search_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(room_id): Path<Uuid>,
    Query(query): Query<SearchQuery>,
) -> ApiResult<axum::Json<SearchResults>> {
    let size = page_size(query.page_size.as_deref())?;
    let q = query.q.as_deref().unwrap_or_default();
    Ok(axum::Json(rooms::search(&state, auth.user_id, room_id, q, size).await?))
}
