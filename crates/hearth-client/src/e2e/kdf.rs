//! Key derivation from the email and password: the `auth_secret` the server sees and the
//! `wrap_key` it never sees.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::envelope::b64;

/// PBKDF2-HMAC-SHA256 iterations of the master key (OWASP's 2023 figure for SHA-256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// The salt is this prefix followed by the lowercased email.
const SALT_PREFIX: &str = "hearth:";
/// HKDF info of the authentication secret.
const AUTH_INFO: &[u8] = b"hearth/auth";
/// HKDF info of the wrap key.
const WRAP_INFO: &[u8] = b"hearth/wrap";

/// What [`derive()`] gives: the secret to log in with and the key that wraps private keys.
pub struct Derived {
    /// Sent to `/auth/*` as the `password` field: base64url without padding, 43 characters.
    /// It lets the server authenticate the user, and nothing more.
    pub auth_secret: String,
    /// Wraps the user's private keys; never leaves the device.
    pub wrap_key: WrapKey,
}

impl fmt::Debug for Derived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Derived").field("auth_secret", &"<redacted>").field("wrap_key", &self.wrap_key).finish()
    }
}

/// The AES-256-GCM key that wraps private keys (`HKDF(master, "hearth/wrap")`). Zeroized
/// when dropped; its `Debug` shows nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WrapKey([u8; 32]);

impl WrapKey {
    /// A wrap key from its 32 bytes (derived earlier and kept on the device).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes, to keep it on the device. Never send them anywhere.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for WrapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WrapKey(<redacted>)")
    }
}

/// Derives the authentication secret and the wrap key from an email and a password.
///
/// Deliberately slow (PBKDF2 with [`PBKDF2_ITERATIONS`] iterations, a few hundred
/// milliseconds): run it off an async runtime's worker threads (`spawn_blocking`).
///
/// ```
/// let derived = hearth_client::e2e::derive("Ada@Example.org", "correct horse battery staple");
/// assert_eq!(derived.auth_secret.len(), 43);
/// ```
pub fn derive(email: &str, password: &str) -> Derived {
    let salt = Zeroizing::new(format!("{SALT_PREFIX}{}", email.to_lowercase()));
    let mut master = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), PBKDF2_ITERATIONS, master.as_mut());
    let (auth_secret, wrap_key) = expand(&master);
    Derived { auth_secret: b64(auth_secret.as_ref()), wrap_key: WrapKey(*wrap_key) }
}

/// The two HKDF-SHA256 expansions of the master key (empty salt).
fn expand(master: &[u8; 32]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let hkdf = Hkdf::<Sha256>::new(None, master);
    let mut auth = Zeroizing::new([0u8; 32]);
    let mut wrap = Zeroizing::new([0u8; 32]);
    hkdf.expand(AUTH_INFO, auth.as_mut()).expect("32 bytes is a valid HKDF-SHA256 output length");
    hkdf.expand(WRAP_INFO, wrap.as_mut()).expect("32 bytes is a valid HKDF-SHA256 output length");
    (auth, wrap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_inputs_give_the_same_secrets_and_the_email_is_case_insensitive() {
        let first = derive("Ada@Example.ORG", "pässwörd");
        let second = derive("ada@example.org", "pässwörd");
        assert_eq!(first.auth_secret, second.auth_secret);
        assert_eq!(first.wrap_key.expose_secret(), second.wrap_key.expose_secret());
        assert_eq!(first.auth_secret.len(), 43);
        assert!(first.auth_secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(first.auth_secret.as_bytes(), b64(first.wrap_key.expose_secret()).as_bytes());
    }

    #[test]
    fn another_password_or_email_gives_other_secrets() {
        let base = derive("ada@example.org", "pässwörd");
        for other in [derive("ada@example.org", "passwörd"), derive("ada@example.org ", "pässwörd")] {
            assert_ne!(base.auth_secret, other.auth_secret);
            assert_ne!(base.wrap_key.expose_secret(), other.wrap_key.expose_secret());
        }
    }

    #[test]
    fn the_two_labels_give_independent_keys_and_an_empty_salt_is_no_salt() {
        let (auth, wrap) = expand(&[0x0b; 32]);
        assert_ne!(*auth, *wrap);
        let mut expected = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&[]), &[0x0b; 32]).expand(b"hearth/auth", &mut expected).expect("expand");
        assert_eq!(*auth, expected, "an empty salt is the same as no salt");
    }

    #[test]
    fn debug_output_redacts_the_secrets() {
        let derived = Derived { auth_secret: "secret-auth".to_owned(), wrap_key: WrapKey::from_bytes([0xab; 32]) };
        let debug = format!("{derived:?}");
        assert!(!debug.contains("secret-auth") && !debug.contains("171") && !debug.contains("ab"), "{debug}");
        assert_eq!(format!("{:?}", derived.wrap_key), "WrapKey(<redacted>)");
    }
}
