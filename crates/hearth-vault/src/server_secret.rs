//! The server's root secret (`secret_key_base`) and the keys derived from it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::VaultError;

/// The server's root secret. Each use (token signing, page tokens, …) derives its own key
/// from it with HMAC-SHA256 keyed by the secret over a purpose label, so a key leaked by
/// one use says nothing about another.
#[derive(Clone)]
pub struct ServerSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

impl ServerSecret {
    /// Minimum length of the secret's text form.
    pub const MIN_LEN: usize = 32;

    /// Wraps the secret's text form (as found in the settings or the secret file).
    pub fn from_text(text: &str) -> Result<Self, VaultError> {
        let text = text.trim();
        if text.len() < Self::MIN_LEN {
            return Err(VaultError::InvalidKey("secret_key_base must be at least 32 characters"));
        }
        Ok(Self(Zeroizing::new(text.as_bytes().to_vec())))
    }

    /// A fresh random secret in text form, for first start.
    pub fn generate_text() -> Zeroizing<String> {
        // Two tokens: 512 bits, like `mix phx.gen.secret`'s default 64 bytes.
        let a = crate::RandomToken::generate();
        let b = crate::RandomToken::generate();
        Zeroizing::new(format!("{}{}", a.expose(), b.expose()))
    }

    /// The 32-byte key for one purpose.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(b"hearth/");
        mac.update(purpose.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_get_different_keys_and_short_secrets_are_refused() {
        let secret = ServerSecret::from_text(&ServerSecret::generate_text()).expect("secret");
        assert_ne!(*secret.derive("access-token"), *secret.derive("page-token"));
        assert_eq!(*secret.derive("x"), *secret.derive("x"));
        assert!(ServerSecret::from_text("short").is_err());
    }
}
