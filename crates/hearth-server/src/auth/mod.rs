//! Authentication services: access tokens, password hashing off the event loop, attempt
//! limits, and the session check every authenticated request goes through.

mod access_token;
mod attempts;
mod passwords;
mod sessions;

pub use access_token::AccessTokens;
pub use attempts::AttemptLimiter;
pub use passwords::PasswordPool;
pub use sessions::Sessions;

/// The user and device an access token names; the session has been checked as live.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// The user.
    pub user_id: uuid::Uuid,
    /// The device session.
    pub device_id: uuid::Uuid,
}
