//! Conversations over REST: the user's list, the private conversation with someone, and a
//! conversation's history a page at a time.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::replies::ConversationSummary;
use super::users::page_size;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AuthUser, Path, Query};
use crate::realtime::conversation::{messages_page, page_cursor};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_conversations)).routes(routes!(private_with)).routes(routes!(messages))
}

#[derive(Debug, Serialize, ToSchema)]
struct ConversationList {
    items: Vec<ListedConversation>,
}

/// A conversation with what is new in it for the caller: what a conversation list shows.
#[derive(Debug, Serialize, ToSchema)]
struct ListedConversation {
    #[serde(flatten)]
    conversation: ConversationSummary,
    /// Messages from others that arrived after the caller last read the conversation.
    unread: i64,
    /// When the newest message was sent; `null` before the first.
    #[schema(value_type = Option<String>, format = DateTime, required)]
    last_message_at: Option<hearth_store::Timestamp>,
}

/// # GET /api/conversations (+)
#[utoipa::path(get, path = "/api/conversations", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, body = ConversationList), (status = 401, body = ErrorBody)))]
async fn list_conversations(State(state): State<AppState>, auth: AuthUser) -> ApiResult<axum::Json<ConversationList>> {
    let conversations = state.store.conversations_of(auth.user_id).await?;
    // Read apart from the list: a conversation started in between simply shows nothing new.
    let activity: std::collections::HashMap<Uuid, hearth_store::ConversationActivity> =
        state.store.conversation_activity(auth.user_id).await?.into_iter().map(|a| (a.conversation_id, a)).collect();
    let items = conversations
        .iter()
        .map(|conversation| {
            let activity = activity.get(&conversation.id);
            ListedConversation {
                conversation: ConversationSummary::from(conversation),
                unread: activity.map_or(0, |a| a.unread),
                last_message_at: activity.and_then(|a| a.last_message_at),
            }
        })
        .collect();
    Ok(axum::Json(ConversationList { items }))
}

#[derive(Debug, Serialize, ToSchema)]
struct PrivateConversation {
    /// Null when the two users share no private conversation.
    #[schema(required)]
    conversation_id: Option<Uuid>,
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
    // Malformed is 422 (the extractor), nobody is 404, someone with no conversation yet null.
    if state.store.user(other).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let conversation_id = state.store.private_conversation_between(auth.user_id, other).await?;
    Ok(axum::Json(PrivateConversation { conversation_id }))
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

/// A page of the caller's copies of a conversation's messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
struct MessagePage {
    #[schema(value_type = Vec<Message>)]
    items: Vec<serde_json::Value>,
    /// Null on the last page.
    #[schema(required)]
    page_token: Option<String>,
}

/// The caller's copy of one message; channel pushes carry the same shape.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the shape in the OpenAPI document only.
struct Message {
    /// This copy's id.
    id: Uuid,
    /// Who sent it.
    sender: Uuid,
    /// Ciphertext for the caller (plain text in the assistant conversation).
    content: String,
    /// When it was sent.
    #[schema(value_type = String, format = DateTime)]
    inserted_at: hearth_store::Timestamp,
    /// When it was last edited (the send time if never).
    #[schema(value_type = String, format = DateTime)]
    updated_at: hearth_store::Timestamp,
    /// The message group: the same message in every recipient's copy.
    message_group: Uuid,
}

/// # GET /api/messages
#[utoipa::path(get, path = "/api/messages", tag = "conversations", security(("bearer" = [])), params(MessagesQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn messages(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<MessagesQuery>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let conversation_id =
        query.conversation_id.as_deref().ok_or_else(|| ApiError::invalid("conversation_id", "is required"))?;
    let conversation_id =
        Uuid::parse_str(conversation_id).map_err(|_| ApiError::invalid("conversation_id", "must be a UUID"))?;
    let size = page_size(query.page_size.as_deref())?;
    if !state.store.member_ids(conversation_id).await?.contains(&auth.user_id) {
        return Err(ApiError::NotFound);
    }
    let before = match query.page_token.as_deref() {
        Some(token) => Some(page_cursor(&state, conversation_id, token)?),
        None => None,
    };
    Ok(axum::Json(messages_page(&state, conversation_id, auth.user_id, before, size).await?))
}
