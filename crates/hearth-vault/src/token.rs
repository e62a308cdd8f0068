//! Random tokens handed to users (refresh tokens, email links, device-link codes) and
//! the hashes under which they are stored.
//!
//! Only the SHA-256 of a token is stored, so a copy of the database cannot be replayed.
//! A plain hash (not a slow one) is enough because the tokens carry 256 bits of entropy.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// A freshly generated 32-byte token from the OS CSPRNG, in its URL-safe text form.
///
/// The text is zeroized on drop and hidden from `Debug`.
pub struct RandomToken(Zeroizing<String>);

impl RandomToken {
    /// Draws 32 bytes from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref())))
    }

    /// Draws 32 bytes and renders them as lowercase hex (for links whose format fixes hex).
    pub fn generate_hex() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        let mut text = String::with_capacity(64);
        for byte in bytes.iter() {
            text.push_str(&format!("{byte:02x}"));
        }
        Self(Zeroizing::new(text))
    }

    /// The token as given to its holder. Handle with care: this is the secret.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash under which the token is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl std::fmt::Debug for RandomToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RandomToken(<redacted>)")
    }
}

/// SHA-256 of a token's text: what the store keeps instead of the token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a token as presented by a client.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The raw digest bytes, for storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The digest in lowercase hex, where text names it (a configure page binds its envelope to
    /// its link's hash).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A prefix is enough to tell hashes apart in debugging without being a lookup key.
        write!(f, "TokenHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_distinct() {
        let a = RandomToken::generate();
        let b = RandomToken::generate();
        assert_eq!(a.expose().len(), 43);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn hex_tokens_are_64_hex_characters() {
        let t = RandomToken::generate_hex();
        assert_eq!(t.expose().len(), 64);
        assert!(t.expose().bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn hash_matches_presented_text_only() {
        let t = RandomToken::generate();
        assert_eq!(t.hash(), TokenHash::of(t.expose()));
        assert_ne!(t.hash(), TokenHash::of(&format!("{}x", t.expose())));
    }

    #[test]
    fn debug_hides_the_token() {
        let t = RandomToken::generate();
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
