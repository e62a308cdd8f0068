//! `/metrics` in the Prometheus text format (OpenMetrics): HTTP requests by route and status and
//! their latency, open sockets and joined topics, messages sent and delivered, login attempts
//! and refusals, database failures, and the assistant's provider attempts by provider and
//! outcome, their latency, refusals by limit, and turns by who answered. README.md lists every
//! name and label.
//!
//! Every label takes values from a fixed set (a route's template such as `/api/devices/{id}`,
//! never the path a client sent), so the number of series stays bounded whatever clients send.
//!
//! Served only to loopback clients and `server.metrics_from` addresses: the figures say which
//! providers fail and how often, which is no one else's business.

use std::sync::Mutex;
use std::time::Duration;

use hearth_ai::{Attempt, AttemptOutcome};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginRefusalLabels {
    reason: &'static str,
}

/// Latency buckets: 5 ms doubling up to about 41 s (an attempt may take 30 s).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// HTTP latency buckets: 1 ms doubling up to about 16 s (a request may wait up to its timeout,
/// an assistant request longer).
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The route label of a request that matched no route: the path itself would be unbounded.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The kinds of topic a socket can join, the label values of `hearth_topics_joined`.
const TOPIC_KINDS: [&str; 4] = ["system", "user", "conversation", "other"];

/// The kind of a topic (`conversation:…` is `conversation`): anything not a topic hearth
/// serves is `other`, so a client cannot add label values.
pub fn topic_kind(topic: &str) -> &'static str {
    let prefix = topic.split_once(':').map_or(topic, |(prefix, _)| prefix);
    TOPIC_KINDS[..3].iter().find(|kind| **kind == prefix).copied().unwrap_or("other")
}

/// Why a sign-in was refused, the label values of `hearth_login_refusals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// A malformed request (an email that is not one).
    Invalid,
    /// A wrong password or an unknown email (never saying which).
    WrongCredentials,
    /// Too many attempts from the address or on the account.
    RateLimited,
    /// Something failed on the server's side.
    Failed,
}

impl LoginRefusal {
    const ALL: [Self; 4] = [Self::Invalid, Self::WrongCredentials, Self::RateLimited, Self::Failed];

    fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::WrongCredentials => "wrong_credentials",
            Self::RateLimited => "rate_limited",
            Self::Failed => "failed",
        }
    }
}

/// The HTTP method as a label: the standard ones by name, any other as `other`, so a client
/// cannot add label values.
fn method_label(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|known| *known == method.as_str()).unwrap_or("other")
}

/// Reads the store's database failures on each scrape (the store counts them itself).
#[derive(Debug)]
struct DatabaseFailures;

impl Collector for DatabaseFailures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(hearth_store::database_failures());
        let metric = encoder.encode_descriptor(
            "store_errors",
            "Database statements, connections or transactions that failed (the database refused or could not be reached)",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    request_latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    sockets: Gauge,
    topics: Family<TopicLabels, Gauge>,
    messages_sent: Counter,
    messages_delivered: Counter,
    login_attempts: Counter,
    login_refusals: Family<LoginRefusalLabels, Counter>,
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
            requests: Family::default(),
            request_latency: Family::new_with_constructor(request_histogram),
            sockets: Gauge::default(),
            topics: Family::default(),
            messages_sent: Counter::default(),
            messages_delivered: Counter::default(),
            login_attempts: Counter::default(),
            login_refusals: Family::default(),
            attempts: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            refusals: Family::default(),
            turns: Family::default(),
        };
        {
            let mut registry = metrics.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            registry.register(
                "http_requests",
                "HTTP requests by method, route (its template) and status",
                metrics.requests.clone(),
            );
            registry.register(
                "http_request_duration_seconds",
                "Time from a request's arrival until its response's headers, by method and route",
                metrics.request_latency.clone(),
            );
            registry.register("sockets_open", "Sockets (Phoenix Channels) open now", metrics.sockets.clone());
            registry.register(
                "topics_joined",
                "Topics joined now over all sockets, by kind (system, user, conversation, other)",
                metrics.topics.clone(),
            );
            registry.register(
                "messages_sent",
                "Messages people sent (stored and acknowledged; a resend of one already stored is not counted)",
                metrics.messages_sent.clone(),
            );
            registry.register(
                "messages_delivered",
                "Copies of messages pushed to members' sockets (people's and the assistant's)",
                metrics.messages_delivered.clone(),
            );
            registry.register("login_attempts", "Sign-ins with a password", metrics.login_attempts.clone());
            registry.register(
                "login_refusals",
                "Sign-ins refused, by reason (invalid, wrong_credentials, rate_limited, failed)",
                metrics.login_refusals.clone(),
            );
            registry.register_collector(Box::new(DatabaseFailures));
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
        // Series of a fixed label set exist from the start, at zero: a query for them finds
        // something before the first event.
        for topic in TOPIC_KINDS {
            drop(metrics.topics.get_or_create(&TopicLabels { topic }));
        }
        for refusal in LoginRefusal::ALL {
            drop(metrics.login_refusals.get_or_create(&LoginRefusalLabels { reason: refusal.as_str() }));
        }
        metrics
    }
}

impl Metrics {
    /// Counts an HTTP request: `route` is the template of the route it matched (`None`: it
    /// matched none), `elapsed` the time until its response was ready.
    pub fn request(&self, method: &axum::http::Method, route: Option<&str>, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let route = route.unwrap_or(UNMATCHED_ROUTE).to_owned();
        self.requests.get_or_create(&RequestLabels { method, route: route.clone(), status }).inc();
        self.request_latency.get_or_create(&RouteLabels { method, route }).observe(elapsed.as_secs_f64());
    }

    /// A socket opened.
    pub fn socket_opened(&self) {
        self.sockets.inc();
    }

    /// A socket closed, having left `topics` with it.
    pub fn socket_closed<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        self.sockets.dec();
        for topic in topics {
            self.left(topic);
        }
    }

    /// A socket joined `topic`.
    pub fn joined(&self, topic: &str) {
        self.topics.get_or_create(&TopicLabels { topic: topic_kind(topic) }).inc();
    }

    /// A socket left `topic`.
    pub fn left(&self, topic: &str) {
        self.topics.get_or_create(&TopicLabels { topic: topic_kind(topic) }).dec();
    }

    /// A message was stored and acknowledged.
    pub fn message_sent(&self) {
        self.messages_sent.inc();
    }

    /// `copies` copies of a message were pushed to sockets.
    pub fn messages_delivered(&self, copies: u64) {
        self.messages_delivered.inc_by(copies);
    }

    /// A sign-in with a password, and why it was refused if it was.
    pub fn login(&self, refused: Option<LoginRefusal>) {
        self.login_attempts.inc();
        if let Some(refusal) = refused {
            self.login_refusals.get_or_create(&LoginRefusalLabels { reason: refusal.as_str() }).inc();
        }
    }

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
