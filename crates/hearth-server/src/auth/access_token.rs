//! Access tokens: HS256 JWTs with `sub` (user), `device` (session), `iat` and `exp`,
//! signed with a key derived from `secret_key_base`.

use hearth_store::Timestamp;
use hearth_vault::ServerSecret;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user.
    pub sub: Uuid,
    /// The device session.
    pub device: Uuid,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// Issues and verifies access tokens.
#[derive(Clone)]
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens").field("ttl_secs", &self.ttl_secs).finish_non_exhaustive()
    }
}

impl AccessTokens {
    /// The purpose label the signing key is derived under.
    pub const KEY_PURPOSE: &'static str = "access-token";

    /// Tokens signed with the key derived from `secret`, living `ttl_secs`.
    pub fn new(secret: &ServerSecret, ttl_secs: i64) -> Self {
        let key = secret.derive(Self::KEY_PURPOSE);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Self {
            encoding: EncodingKey::from_secret(key.as_ref()),
            decoding: DecodingKey::from_secret(key.as_ref()),
            validation,
            ttl_secs,
        }
    }

    /// A token for the session, valid from `now`.
    pub fn issue(&self, user_id: Uuid, device_id: Uuid, now: Timestamp) -> String {
        let claims =
            AccessClaims { sub: user_id, device: device_id, iat: now.as_secs(), exp: now.as_secs() + self.ttl_secs };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The claims of a well-signed, unexpired token. A token is dead from the second its
    /// `exp` names (the same rule as every other token's `expires_at > now`).
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).ok()?.claims;
        (claims.exp > Timestamp::now().as_secs()).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ttl: i64) -> AccessTokens {
        AccessTokens::new(&ServerSecret::from_text(&ServerSecret::generate_text()).expect("secret"), ttl)
    }

    #[test]
    fn issued_tokens_verify_and_carry_their_claims() {
        let tokens = tokens(1800);
        let (user, device) = (Uuid::now_v7(), Uuid::now_v7());
        let now = Timestamp::now();
        let claims = tokens.verify(&tokens.issue(user, device, now)).expect("valid");
        assert_eq!((claims.sub, claims.device, claims.exp - claims.iat), (user, device, 1800));
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_fail() {
        let tokens = tokens(1800);
        let old = Timestamp::from_millis(Timestamp::now().as_millis() - 3_600_000);
        assert!(tokens.verify(&tokens.issue(Uuid::now_v7(), Uuid::now_v7(), old)).is_none());
        let token = tokens.issue(Uuid::now_v7(), Uuid::now_v7(), Timestamp::now());
        let mut tampered = token.clone().into_bytes();
        let middle = token.find('.').expect("jwt") + 3;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        assert!(tokens.verify(std::str::from_utf8(&tampered).expect("ascii")).is_none());
        assert!(self::tokens(1800).verify(&token).is_none());
        assert!(tokens.verify("garbage").is_none());
    }

    #[test]
    fn a_zero_lifetime_token_is_already_expired() {
        let tokens = tokens(0);
        assert!(tokens.verify(&tokens.issue(Uuid::now_v7(), Uuid::now_v7(), Timestamp::now())).is_none());
    }
}
