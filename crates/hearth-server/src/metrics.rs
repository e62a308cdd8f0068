//! `/metrics` in the Prometheus text format: the assistant's provider attempts by provider and
//! outcome, their latency, refusals by limit, and turns by who answered.
//!
//! Served only to loopback clients and `server.metrics_from` addresses: the figures say which
//! providers fail and how often, which is no one else's business.

use std::sync::Mutex;

use hearth_ai::{Attempt, AttemptOutcome};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    provider: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    limit: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TurnLabels {
    answered_by: String,
}

/// Latency buckets: 5 ms doubling up to about 41 s (an attempt may take 30 s).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    attempts: Family<AttemptLabels, Counter>,
    latency: Family<ProviderLabels, Histogram, fn() -> Histogram>,
    refusals: Family<RefusalLabels, Counter>,
    turns: Family<TurnLabels, Counter>,
}

/// A limit that refused an assistant request.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// The sliding window of requests.
    RateLimit,
    /// The free tier's daily allowance.
    Quota,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self {
            registry: Mutex::new(Registry::with_prefix("hearth")),
            attempts: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            refusals: Family::default(),
            turns: Family::default(),
        };
        {
            let mut registry = metrics.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            registry.register(
                "assistant_attempts",
                "Provider attempts by provider and outcome (answered, a failure class, or cooling_down)",
                metrics.attempts.clone(),
            );
            registry.register(
                "assistant_attempt_seconds",
                "Time until a provider answered or failed, per attempt",
                metrics.latency.clone(),
            );
            registry.register(
                "assistant_refusals",
                "Assistant requests refused by a limit (rate_limit or quota)",
                metrics.refusals.clone(),
            );
            registry.register(
                "assistant_turns",
                "Assistant turns by who answered (a provider, knowledge_base, or none)",
                metrics.turns.clone(),
            );
        }
        metrics
    }
}

impl Metrics {
    /// Counts a turn's attempts and who answered it.
    pub fn turn(&self, attempts: &[Attempt], answered_by: Option<&str>) {
        for attempt in attempts {
            let provider = attempt.provider.as_str().to_owned();
            let outcome = attempt.outcome.as_str().to_owned();
            self.attempts.get_or_create(&AttemptLabels { provider: provider.clone(), outcome }).inc();
            if attempt.outcome != AttemptOutcome::CoolingDown {
                #[expect(clippy::cast_precision_loss, reason = "milliseconds far below 2^52")]
                let seconds = attempt.latency_ms as f64 / 1000.0;
                self.latency.get_or_create(&ProviderLabels { provider }).observe(seconds);
            }
        }
        let answered_by = answered_by.unwrap_or("none").to_owned();
        self.turns.get_or_create(&TurnLabels { answered_by }).inc();
    }

    /// Counts a request a limit refused.
    pub fn refused(&self, limit: Limit) {
        let limit = match limit {
            Limit::RateLimit => "rate_limit",
            Limit::Quota => "quota",
        };
        self.refusals.get_or_create(&RefusalLabels { limit: limit.to_owned() }).inc();
    }

    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}
