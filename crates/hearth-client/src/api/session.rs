//! The device session a client holds: its tokens, and who and which device they are for.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;
use uuid::Uuid;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::replies::{Conversation, PublicUser, SignedIn, User};

/// Whose session a client holds: the user and the device session (one per sign-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The signed-in user.
    pub user_id: Uuid,
    /// This device's session, as listed by [`devices`](super::Client::devices).
    pub device_id: Uuid,
}

/// The current token pair. Zeroized when dropped; its `Debug` shows no token.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(super) struct Tokens {
    /// For `Authorization: Bearer`.
    pub access: String,
    /// For `POST /auth/refresh`; single use, replaced by every refresh.
    pub refresh: String,
    /// Counts refreshes, so a request that got a 401 can tell whether another task already
    /// refreshed since it read the token (access tokens issued in the same second with the
    /// same claims are identical, so comparing them would not do).
    pub generation: u64,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access", &"<redacted>")
            .field("refresh", &"<redacted>")
            .field("generation", &self.generation)
            .finish()
    }
}

/// The reply to register, login and refresh, tokens included. No `Debug`: it holds tokens.
#[derive(Deserialize)]
pub(super) struct SessionReply {
    pub user: User,
    pub conversations: Vec<Conversation>,
    pub users: Vec<PublicUser>,
    pub auth_token: String,
    pub refresh_token: String,
}

impl SessionReply {
    /// Splits the reply into what the caller sees and the tokens the client keeps.
    pub fn split(mut self, generation: u64) -> (SignedIn, Tokens) {
        let tokens = Tokens {
            access: std::mem::take(&mut self.auth_token),
            refresh: std::mem::take(&mut self.refresh_token),
            generation,
        };
        (SignedIn { user: self.user, conversations: self.conversations, users: self.users }, tokens)
    }
}

/// The claims of an access token the client needs: whose it is and for which device.
#[derive(Deserialize)]
struct Claims {
    sub: Uuid,
    device: Uuid,
}

/// Reads user and device from an access token (a JWT). The signature is not checked: the
/// token came from the server over the connection the client trusts, and the server checks
/// it on every use. The session reply names no device, so this is where the id comes from.
pub(super) fn identity_of(access_token: &str) -> Option<Identity> {
    let payload = access_token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Claims = serde_json::from_slice(&json).ok()?;
    Some(Identity { user_id: claims.sub, device_id: claims.device })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_comes_from_the_token_claims() {
        let (user, device) = (Uuid::now_v7(), Uuid::now_v7());
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"sub":"{user}","device":"{device}","iat":1,"exp":2}}"#));
        let token = format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2lnbmF0dXJl");
        assert_eq!(identity_of(&token), Some(Identity { user_id: user, device_id: device }));
        assert_eq!(identity_of("not a token"), None);
        assert_eq!(identity_of("a.b.c"), None);
    }

    #[test]
    fn debug_output_shows_no_token() {
        let tokens = Tokens { access: "access-secret".to_owned(), refresh: "refresh-secret".to_owned(), generation: 3 };
        let debug = format!("{tokens:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("generation: 3"), "{debug}");
    }
}
