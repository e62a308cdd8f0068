//! Scenarios: how the fake behaves, chosen by a `fake-<scenario>-` marker inside the API key.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How the fake answers a request, chosen by the API key.
///
/// A key containing `fake-<name>-` selects the scenario `<name>` (the text between `fake-` and
/// the next `-`); a key without such a marker selects [`Scenario::Ok`]. Every scenario is
/// rendered in the dialect of the provider that was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `ok`: a normal answer.
    Ok,
    /// `invalid_key`: the key is refused (401; Gemini 400 `API_KEY_INVALID`).
    InvalidKey,
    /// `permission_denied`: 403 (Gemini: a key reported as leaked).
    PermissionDenied,
    /// `quota`: the account is out of quota or credit (429 `insufficient_quota`, or 402).
    Quota,
    /// `rate_limited`: 429 with `retry-after: 1`.
    RateLimited,
    /// `overloaded`: Anthropic 529, Groq 498, others 503.
    Overloaded,
    /// `model_not_found`: 404.
    ModelNotFound,
    /// `server_error`: 500.
    ServerError,
    /// `bad_gateway`: 502.
    BadGateway,
    /// `timeout_status`: OpenRouter 408, others 504.
    TimeoutStatus,
    /// `too_large`: the request is too large (OpenAI-compatible 429 "Request too large",
    /// Anthropic 413, Gemini 400).
    TooLarge,
    /// `bad_request`: 400, the request's own fault.
    BadRequest,
    /// `hang`: never answers.
    Hang,
    /// `delay<ms>`: waits that long, then answers as [`Scenario::Ok`].
    Delay(Duration),
    /// `reset`: the connection is closed (with a TCP reset) before any response byte.
    Reset,
    /// `truncated`: status 200, then the body is cut off.
    Truncated,
    /// `error_before_delta`: a 200 stream whose first event is an error.
    ErrorBeforeDelta,
    /// `error_after_delta`: a 200 stream with two text deltas, then an error event.
    ErrorAfterDelta,
}

/// A `fake-<name>-` marker whose name is not a scenario.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// The name is not one of the scenarios.
    #[error("unknown fake scenario `{0}`")]
    Unknown(String),
    /// The name starts with `delay` but the rest is not a number of milliseconds.
    #[error("fake scenario `{0}` is not `delay<milliseconds>`")]
    BadDelay(String),
}

impl Scenario {
    /// The scenario a key selects: the first `fake-<name>-` marker whose name is made of
    /// lowercase letters, digits and `_`; [`Scenario::Ok`] when the key has no marker.
    pub fn from_key(key: &str) -> Result<Scenario, ScenarioError> {
        for (at, marker) in key.match_indices("fake-") {
            let rest = &key[at + marker.len()..];
            let Some(end) = rest.find('-') else { continue };
            let name = &rest[..end];
            let plausible =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if plausible {
                return name.parse();
            }
        }
        Ok(Scenario::Ok)
    }

    /// The marker that selects this scenario inside a key, e.g. `fake-delay250-`.
    pub fn marker(&self) -> String {
        format!("fake-{self}-")
    }
}

impl FromStr for Scenario {
    type Err = ScenarioError;

    /// Parses a scenario's name as it appears in a key (`rate_limited`, `delay250`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let scenario = match name {
            "ok" => Scenario::Ok,
            "invalid_key" => Scenario::InvalidKey,
            "permission_denied" => Scenario::PermissionDenied,
            "quota" => Scenario::Quota,
            "rate_limited" => Scenario::RateLimited,
            "overloaded" => Scenario::Overloaded,
            "model_not_found" => Scenario::ModelNotFound,
            "server_error" => Scenario::ServerError,
            "bad_gateway" => Scenario::BadGateway,
            "timeout_status" => Scenario::TimeoutStatus,
            "too_large" => Scenario::TooLarge,
            "bad_request" => Scenario::BadRequest,
            "hang" => Scenario::Hang,
            "reset" => Scenario::Reset,
            "truncated" => Scenario::Truncated,
            "error_before_delta" => Scenario::ErrorBeforeDelta,
            "error_after_delta" => Scenario::ErrorAfterDelta,
            other => match other.strip_prefix("delay") {
                Some(millis) => millis
                    .parse::<u64>()
                    .map(|ms| Scenario::Delay(Duration::from_millis(ms)))
                    .map_err(|_| ScenarioError::BadDelay(other.to_owned()))?,
                None => return Err(ScenarioError::Unknown(other.to_owned())),
            },
        };
        Ok(scenario)
    }
}

impl fmt::Display for Scenario {
    /// The scenario's name as it appears in a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Scenario::Ok => "ok",
            Scenario::InvalidKey => "invalid_key",
            Scenario::PermissionDenied => "permission_denied",
            Scenario::Quota => "quota",
            Scenario::RateLimited => "rate_limited",
            Scenario::Overloaded => "overloaded",
            Scenario::ModelNotFound => "model_not_found",
            Scenario::ServerError => "server_error",
            Scenario::BadGateway => "bad_gateway",
            Scenario::TimeoutStatus => "timeout_status",
            Scenario::TooLarge => "too_large",
            Scenario::BadRequest => "bad_request",
            Scenario::Hang => "hang",
            Scenario::Delay(delay) => return write!(f, "delay{}", delay.as_millis()),
            Scenario::Reset => "reset",
            Scenario::Truncated => "truncated",
            Scenario::ErrorBeforeDelta => "error_before_delta",
            Scenario::ErrorAfterDelta => "error_after_delta",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_without_a_marker_are_ok() {
        for key in ["sk-proj-abc", "", "fake-", "sk-fake-ok", "AIzaSyfake--0123", "sk-fake-Rate-limited"] {
            assert_eq!(Scenario::from_key(key), Ok(Scenario::Ok), "{key}");
        }
    }

    #[test]
    fn markers_select_scenarios() {
        let cases = [
            ("AIzaSyfake-rate_limited-0123456789abcdef", Scenario::RateLimited),
            ("gsk_fake-hang-0123456789abcdefghij", Scenario::Hang),
            ("sk-ant-api03-fake-error_after_delta-xxxx", Scenario::ErrorAfterDelta),
            ("sk-or-v1-fake-delay250-00", Scenario::Delay(Duration::from_millis(250))),
            ("csk-fake-ok-1", Scenario::Ok),
            // A `fake-` that is not a marker does not hide a later one.
            ("sk-fake-X-fake-quota-1", Scenario::Quota),
        ];
        for (key, scenario) in cases {
            assert_eq!(Scenario::from_key(key), Ok(scenario), "{key}");
        }
    }

    #[test]
    fn unknown_markers_are_errors() {
        assert_eq!(Scenario::from_key("sk-fake-rate_limitd-1"), Err(ScenarioError::Unknown("rate_limitd".into())));
        assert_eq!(Scenario::from_key("sk-fake-delay2x-1"), Err(ScenarioError::BadDelay("delay2x".into())));
        assert_eq!(Scenario::from_key("sk-fake-delay-1"), Err(ScenarioError::BadDelay("delay".into())));
    }

    #[test]
    fn names_round_trip() {
        let all = [
            Scenario::Ok,
            Scenario::InvalidKey,
            Scenario::PermissionDenied,
            Scenario::Quota,
            Scenario::RateLimited,
            Scenario::Overloaded,
            Scenario::ModelNotFound,
            Scenario::ServerError,
            Scenario::BadGateway,
            Scenario::TimeoutStatus,
            Scenario::TooLarge,
            Scenario::BadRequest,
            Scenario::Hang,
            Scenario::Delay(Duration::from_millis(7)),
            Scenario::Reset,
            Scenario::Truncated,
            Scenario::ErrorBeforeDelta,
            Scenario::ErrorAfterDelta,
        ];
        for scenario in all {
            assert_eq!(scenario.to_string().parse(), Ok(scenario));
            let key = format!("sk-{}rest", scenario.marker());
            assert_eq!(Scenario::from_key(&key), Ok(scenario));
        }
    }
}
