//! What administrators see of the AI providers (issue 25): each provider in the order they are
//! tried and the health of the free tier's keys for it, as the assistant's `/providers` says it.
//! Counts only: a key never leaves the keyguard.

use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::assistant::{ProviderHealth, Refusal};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The providers, in the order they are tried.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvidersReport {
    /// One per provider.
    pub items: Vec<ProviderHealth>,
}

/// The providers' health.
pub async fn report(state: &AppState) -> ApiResult<ProvidersReport> {
    match state.assistant.provider_health().await {
        Ok(items) => Ok(ProvidersReport { items }),
        Err(Refusal::Store(error)) => Err(error.into()),
        Err(refusal) => Err(ApiError::Upstream {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "assistant_unavailable",
            message: refusal.message(),
        }),
    }
}
