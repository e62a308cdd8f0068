//! Request fields shared by several endpoints, parsed into what they mean.

use std::str::FromStr as _;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};

/// A password (or client-derived `auth_secret`) as sent: zeroized on drop, never printed.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Password(Zeroizing<String>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// Shortest accepted password, in characters.
    pub const MIN: usize = 8;
    /// Longest accepted password, in characters.
    pub const MAX: usize = 1024;

    /// The password for hashing or verifying, checked for length (`field` names it in the
    /// 422). Verification of an existing password uses [`Password::any`] instead, so a
    /// length rule added later does not lock anyone out.
    pub fn checked(self, field: &str) -> ApiResult<Zeroizing<String>> {
        let length = self.0.chars().count();
        if length < Self::MIN {
            return Err(ApiError::invalid(field, format!("must be at least {} characters", Self::MIN)));
        }
        if length > Self::MAX {
            return Err(ApiError::invalid(field, format!("must be at most {} characters", Self::MAX)));
        }
        Ok(self.0)
    }

    /// The password as sent, for verifying against a stored hash. Over-long input is cut
    /// off by the hasher's cost anyway; it is still bounded by the body limit.
    pub fn any(self) -> Zeroizing<String> {
        self.0
    }

    /// Whether two passwords are the same, without copying them.
    pub fn same_as(&self, other: &Password) -> bool {
        *self.0 == *other.0
    }
}

/// Validates and normalizes an email address: trimmed, lowercased, RFC 5321 syntax,
/// at most 254 characters.
pub fn email(field: &str, raw: &str) -> ApiResult<String> {
    let normalized = raw.trim().to_lowercase();
    if normalized.len() > 254 || lettre::Address::from_str(&normalized).is_err() {
        return Err(ApiError::invalid(field, "must be a valid email address"));
    }
    Ok(normalized)
}

/// The display name of someone who gave none: their (normalized) address's local part.
pub fn default_display_name(email: &str) -> String {
    email.split_once('@').map_or(email, |(local, _)| local).to_owned()
}

/// Validates a display name: trimmed, 1–100 characters, no control characters.
pub fn display_name(field: &str, raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    let length = name.chars().count();
    if length == 0 || length > 100 {
        return Err(ApiError::invalid(field, "must be 1 to 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// A name for a new device session: the client's own, else its user agent, else a
/// placeholder; at most 100 characters.
pub fn device_name(given: Option<&str>, user_agent: Option<&str>) -> String {
    let name = given.map(str::trim).filter(|n| !n.is_empty()).or(user_agent).unwrap_or("unknown device");
    name.chars().filter(|c| !c.is_control()).take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(email("email", "  Ann@Example.ORG ").expect("valid"), "ann@example.org");
        for bad in ["", "ann", "ann@", "@example.org", "a b@example.org", &format!("{}@x.org", "a".repeat(250))] {
            assert!(email("email", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        let pw = |s: &str| Password(Zeroizing::new(s.to_owned()));
        assert!(pw("short").checked("password").is_err());
        assert!(pw("éééééééé").checked("password").is_ok());
        assert!(pw(&"x".repeat(1025)).checked("password").is_err());
        assert!(!format!("{:?}", pw("hunter2hunter2")).contains("hunter2"));
    }
}
