//! `GET /api/keys` and `DELETE /api/keys/{id}`: the caller's stored provider keys, listed by
//! provider, last four characters, dates, failures and health; never the key.

use axum::extract::State;
use axum::http::StatusCode;
use hearth_store::KeyOwner;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::assistant::{Refusal, whole_seconds};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AuthUser, Path};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(delete))
}

/// The caller's stored keys.
#[derive(Debug, Serialize, ToSchema)]
struct KeyList {
    /// Oldest first: the order they are tried in, before the free tier.
    items: Vec<KeyEntry>,
}

/// One stored key.
#[derive(Debug, Serialize, ToSchema)]
struct KeyEntry {
    /// For `DELETE /api/keys/{id}`.
    id: Uuid,
    /// `gemini`, `groq`, `cerebras`, `openrouter`, `openai` or `anthropic`.
    provider: String,
    /// The key's last four characters.
    last_four: String,
    /// When it was added.
    added_at: String,
    /// When it last answered.
    #[schema(required)]
    last_used_at: Option<String>,
    /// Failures since it last answered.
    failures: u32,
    /// `healthy`; `refused` when its provider refused it as invalid (until it answers again);
    /// or `cooling_down` after other repeated failures.
    status: &'static str,
    /// When its provider refused it, when `refused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused_at: Option<String>,
    /// Seconds it still rests, when cooling down.
    #[serde(skip_serializing_if = "Option::is_none")]
    cooling_down_for: Option<u64>,
}

/// # GET /api/keys
///
/// The caller's stored provider keys (added with `/configure`), never the keys themselves.
#[utoipa::path(get, path = "/api/keys", tag = "assistant", security(("bearer" = [])),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list(State(state): State<AppState>, auth: AuthUser) -> ApiResult<axum::Json<KeyList>> {
    let keys = state.assistant.keys().list(KeyOwner::User(auth.user_id)).await.map_err(|refusal| match refusal {
        Refusal::Store(error) => ApiError::from(error),
        other => ApiError::Upstream {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "keyguard_unavailable",
            message: other.message(),
        },
    })?;
    let keys = keys
        .into_iter()
        .map(|key| KeyEntry {
            id: key.id,
            provider: key.provider,
            last_four: key.last_four,
            added_at: key.added_at.to_string(),
            last_used_at: key.last_used_at.map(|at| at.to_string()),
            failures: key.failures,
            status: match (key.refused_at, key.cooling_for) {
                (Some(_), _) => "refused",
                (None, Some(_)) => "cooling_down",
                (None, None) => "healthy",
            },
            refused_at: key.refused_at.map(|at| at.to_string()),
            cooling_down_for: key.cooling_for.map(whole_seconds),
        })
        .collect();
    Ok(axum::Json(KeyList { items: keys }))
}

/// # DELETE /api/keys/{id}
///
/// Deletes one of the caller's stored keys. Anyone else's key, or none, is 404.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "assistant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Key id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>) -> ApiResult<StatusCode> {
    state.store.delete_provider_key(KeyOwner::User(auth.user_id), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
