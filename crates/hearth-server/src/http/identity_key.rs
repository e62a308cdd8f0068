//! `PUT /api/identity_key` (+): the caller's identity (docs/e2e.md), its public form shown with
//! the user to everyone and its private form, wrapped by the client, kept for the account
//! alone. The rules are the domain's (`crate::accounts::identity`).

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::identity::{self, PublishIdentityRequest};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(publish))
}

/// # PUT /api/identity_key (+)
///
/// Publishes the caller's identity. The first one needs no password; replacing one needs the
/// current `password` (409 `identity_exists` without it, 422 when it is wrong). Everyone who
/// shares a conversation with the caller gets `identity_key` on `conversation:{id}`. The own
/// account (`GET /api/me`) then carries both forms, every other view of the user the public
/// one.
#[utoipa::path(put, path = "/api/identity_key", tag = "account", security(("bearer" = [])),
    request_body = PublishIdentityRequest,
    responses((status = 204, description = "stored"), (status = 401, body = ErrorBody),
        (status = 409, description = "`identity_exists`: the account has one; send the current password to replace it",
            body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "too many password attempts on the account", body = ErrorBody)))]
async fn publish(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<PublishIdentityRequest>,
) -> ApiResult<StatusCode> {
    identity::publish(&state, auth.user_id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}
