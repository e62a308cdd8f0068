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
