//! The errors of the server: [`ApiError`], what a request or a channel event is refused with
//! (the domain returns it; REST and channel replies are shaped from it), and [`ServerError`],
//! why the server could not start. An API error's REST form is
//! `{"error": "<snake_case_code>", "message": "<for a person>", "fields"?: {name: [problems]}}`.
//!
//! Internal failures are logged with their detail and answered with a bare 500; messages
//! never carry secrets (callers build them from fixed text, and validation messages name
//! fields, never the values sent).

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (not JSON, bad page token, …).
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// For a person.
        message: String,
    },
    /// 401: no, bad, expired or revoked credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: authenticated but not allowed.
    #[error("{message}")]
    Forbidden {
        /// Machine-readable code.
        code: &'static str,
        /// For a person.
        message: &'static str,
    },
    /// 404: unknown or not yours (never saying which).
    #[error("not found")]
    NotFound,
    /// 404 naming what was not found (a channel's join of a conversation).
    #[error("{0}")]
    NoSuch(&'static str),
    /// 405: the path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408: the request took longer than the server allows.
    #[error("request timed out")]
    Timeout,
    /// 409: conflicts with existing state.
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// For a person.
        message: &'static str,
    },
    /// 413: the body is over the limit.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// 422: the request is well-formed but a rule refuses it (an alias too long, leaving a
    /// private conversation, …).
    #[error("{message}")]
    Refused {
        /// Machine-readable code.
        code: &'static str,
        /// For a person.
        message: String,
    },
    /// 422: fields failed validation.
    #[error("invalid fields")]
    Invalid(BTreeMap<String, Vec<String>>),
    /// 429: slow down.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// 429 for a named limit (the assistant's window, the free tier's daily replies).
    #[error("{message}")]
    OverLimit {
        /// Machine-readable code.
        code: &'static str,
        /// For a person, saying when it resets.
        message: String,
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// 502, 503 or 504: the AI providers behind hearth did not answer.
    #[error("{message}")]
    Upstream {
        /// 502 (they failed), 503 (none available) or 504 (too slow).
        status: StatusCode,
        /// Machine-readable code.
        code: &'static str,
        /// For a person: which providers failed and why, never a key.
        message: String,
    },
    /// 500: something broke on our side; the detail goes to the log, not the client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, snake_case.
    pub error: &'static str,
    /// Explanation for a person.
    pub message: String,
    /// Problems per field (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, Vec<String>>>,
    /// Seconds until a retry can succeed (429 only).
    #[serde(rename = "retryAfter", skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 with a code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    /// A 422 for a rule the request breaks.
    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused { code, message: message.into() }
    }

    /// A 422 for one field.
    pub fn invalid(field: &str, problem: impl Into<String>) -> Self {
        Self::Invalid(BTreeMap::from([(field.to_owned(), vec![problem.into()])]))
    }

    /// A 500 whose detail is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::NoSuch(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(_) | ApiError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } | ApiError::OverLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Upstream { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { retry_after_secs } | ApiError::OverLimit { retry_after_secs, .. } => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }

    /// The code and the message for a person, as every error reply carries them.
    pub fn body(&self) -> ErrorBody {
        let (error, message) = match self {
            ApiError::BadRequest { code, message } => (*code, message.clone()),
            ApiError::Unauthorized(message) => ("unauthorized", (*message).to_owned()),
            ApiError::Forbidden { code, message } => (*code, (*message).to_owned()),
            ApiError::NotFound => ("not_found", "Not found.".to_owned()),
            ApiError::NoSuch(message) => ("not_found", (*message).to_owned()),
            ApiError::MethodNotAllowed => ("method_not_allowed", "This path does not accept that method.".to_owned()),
            ApiError::Timeout => ("timeout", "The request took too long.".to_owned()),
            ApiError::Conflict { code, message } => (*code, (*message).to_owned()),
            ApiError::PayloadTooLarge => ("payload_too_large", "The request body is over 1 MiB.".to_owned()),
            ApiError::Invalid(_) => ("invalid", "Some fields are invalid.".to_owned()),
            ApiError::TooManyRequests { retry_after_secs } => {
                ("rate_limited", format!("Too many attempts; try again in {retry_after_secs} s."))
            }
            ApiError::OverLimit { code, message, .. }
            | ApiError::Upstream { code, message, .. }
            | ApiError::Refused { code, message } => (*code, message.clone()),
            ApiError::Internal(_) => ("internal", "Something went wrong on our side.".to_owned()),
        };
        ErrorBody {
            error,
            message,
            fields: match self {
                ApiError::Invalid(fields) => Some(fields.clone()),
                _ => None,
            },
            retry_after: self.retry_after_secs(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if let Some(retry_after_secs) = self.retry_after_secs() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

impl From<hearth_store::StoreError> for ApiError {
    fn from(error: hearth_store::StoreError) -> Self {
        match error {
            hearth_store::StoreError::NotFound => ApiError::NotFound,
            hearth_store::StoreError::Conflict("email") => {
                ApiError::Conflict { code: "email_taken", message: "That email address is already registered." }
            }
            hearth_store::StoreError::Conflict("private_conversation") => ApiError::Conflict {
                code: "private_conversation_exists",
                message: "a private conversation with this user already exists",
            },
            hearth_store::StoreError::Conflict(_) => {
                ApiError::Conflict { code: "conflict", message: "That conflicts with existing data." }
            }
            // A rule of the data the request breaks (e.g. recipients that are not exactly the
            // members): the store's text says which, and names no value.
            hearth_store::StoreError::Rule(rule) => ApiError::Refused { code: "refused", message: rule.to_owned() },
            other => ApiError::internal(other),
        }
    }
}

/// Why the server could not start (or a command of the `hearth` binary could not run).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A secret could not be read, created or parsed.
    #[error("secret: {0}")]
    Secret(String),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] hearth_store::StoreError),
    /// Binding or serving failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
