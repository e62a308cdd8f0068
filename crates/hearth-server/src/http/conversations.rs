//! Conversations over REST: the user's list, the private conversation with someone, and a
//! conversation's history a page at a time.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::users::page_size;
use crate::conversations::{self, ConversationList, MessagePage, PrivateConversation};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AuthUser, Path, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_conversations)).routes(routes!(private_with)).routes(routes!(messages))
}

/// # GET /api/conversations (+)
#[utoipa::path(get, path = "/api/conversations", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, body = ConversationList), (status = 401, body = ErrorBody)))]
async fn list_conversations(State(state): State<AppState>, auth: AuthUser) -> ApiResult<axum::Json<ConversationList>> {
    Ok(axum::Json(conversations::list(&state, auth.user_id).await?))
}

/// # GET /api/conversations/private/{user_id}
#[utoipa::path(get, path = "/api/conversations/private/{user_id}", tag = "conversations", security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The other user")),
    responses((status = 200, body = PrivateConversation), (status = 401, body = ErrorBody)))]
async fn private_with(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(other): Path<Uuid>,
) -> ApiResult<axum::Json<PrivateConversation>> {
    // Malformed is 422 (the extractor).
    Ok(axum::Json(conversations::private_with(&state, auth.user_id, other).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
struct MessagesQuery {
    /// The conversation.
    #[param(value_type = Uuid, required = true)]
    conversation_id: Option<String>,
    /// Token from the previous page; absent for the newest messages.
    page_token: Option<String>,
    /// Items per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

/// # GET /api/messages
#[utoipa::path(get, path = "/api/messages", tag = "conversations", security(("bearer" = [])), params(MessagesQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn messages(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<MessagesQuery>,
) -> ApiResult<axum::Json<MessagePage>> {
    let conversation_id =
        query.conversation_id.as_deref().ok_or_else(|| ApiError::invalid("conversation_id", "is required"))?;
    let conversation_id =
        Uuid::parse_str(conversation_id).map_err(|_| ApiError::invalid("conversation_id", "must be a UUID"))?;
    let size = page_size(query.page_size.as_deref())?;
    let page = conversations::history(&state, conversation_id, auth.user_id, query.page_token.as_deref(), size).await?;
    Ok(axum::Json(page))
}
