//! What a scenario asks of one request.

use crate::Scenario;
use crate::body::Ending;
use crate::failure::Failure;

/// What to do with a request once its scenario is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Answer, ending the body as given.
    Answer(Ending),
    /// Refuse in the provider's error shape.
    Fail(Failure),
    /// Close the connection without a response.
    Reset,
}

/// Waits as `scenario` says (forever for `hang`, the delay for `delay<ms>`), then tells what
/// to do. Stream-only scenarios act like `server_error` when `streaming` is false.
pub(crate) async fn plan(scenario: Scenario, streaming: bool) -> Plan {
    match scenario {
        Scenario::Ok => Plan::Answer(Ending::Complete),
        Scenario::Delay(delay) => {
            tokio::time::sleep(delay).await;
            Plan::Answer(Ending::Complete)
        }
        Scenario::Hang => std::future::pending().await,
        Scenario::Reset => Plan::Reset,
        Scenario::Truncated => Plan::Answer(Ending::Truncated),
        Scenario::ErrorBeforeDelta if streaming => Plan::Answer(Ending::ErrorBeforeDelta),
        Scenario::ErrorAfterDelta if streaming => Plan::Answer(Ending::ErrorAfterDelta),
        Scenario::ErrorBeforeDelta | Scenario::ErrorAfterDelta => Plan::Fail(Failure::ServerError),
        Scenario::InvalidKey => Plan::Fail(Failure::InvalidKey),
        Scenario::PermissionDenied => Plan::Fail(Failure::PermissionDenied),
        Scenario::Quota => Plan::Fail(Failure::Quota),
        Scenario::RateLimited => Plan::Fail(Failure::RateLimited),
        Scenario::Overloaded => Plan::Fail(Failure::Overloaded),
        Scenario::ModelNotFound => Plan::Fail(Failure::ModelNotFound),
        Scenario::ServerError => Plan::Fail(Failure::ServerError),
        Scenario::BadGateway => Plan::Fail(Failure::BadGateway),
        Scenario::TimeoutStatus => Plan::Fail(Failure::TimeoutStatus),
        Scenario::TooLarge => Plan::Fail(Failure::TooLarge),
        Scenario::BadRequest => Plan::Fail(Failure::BadRequest),
    }
}
