//! Counts every HTTP request for `/metrics`: by method, the template of the route it matched
//! (`/api/devices/{id}`, never the path sent, which would make the label set unbounded) and
//! status, with the time until its response was ready.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::Metrics;

/// The middleware: wraps each route (and the fallback, whose requests matched none).
pub async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics.request(&method, route.as_deref(), response.status().as_u16(), started.elapsed());
    response
}
