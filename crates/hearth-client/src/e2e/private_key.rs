//! Private keys wrapped under the wrap key: the `private_key` the server stores opaque.

use uuid::Uuid;

use super::envelope::{self, NONCE_LEN};
use super::{E2eError, KeyPair, WrapKey};

/// The associated data of a wrapped private key: it binds the key to its conversation.
fn associated_data(conversation_id: Uuid) -> String {
    format!("hearth/private-key|{conversation_id}")
}

/// Encrypts `key_pair`'s private JWK under `wrap_key` for `conversation_id`, with a random IV:
/// the `private_key` to store on the server (`v1.<iv>.<ciphertext‖tag>`).
pub fn wrap_private_key(wrap_key: &WrapKey, conversation_id: Uuid, key_pair: &KeyPair) -> String {
    wrap_private_key_with_iv(wrap_key, conversation_id, key_pair, envelope::random_nonce())
}

/// [`wrap_private_key`] with a given IV, for test vectors only: reusing an IV under the same
/// wrap key breaks AES-GCM.
#[doc(hidden)]
pub fn wrap_private_key_with_iv(
    wrap_key: &WrapKey,
    conversation_id: Uuid,
    key_pair: &KeyPair,
    iv: [u8; NONCE_LEN],
) -> String {
    wrap_under(wrap_key, &associated_data(conversation_id), key_pair, iv)
}

/// Encrypts `key_pair`'s canonical private JWK under `wrap_key`, bound to `aad`: what both
/// conversation keys and identity keys are stored as.
pub(crate) fn wrap_under(wrap_key: &WrapKey, aad: &str, key_pair: &KeyPair, iv: [u8; NONCE_LEN]) -> String {
    envelope::seal(wrap_key.expose_secret(), iv, aad.as_bytes(), key_pair.private_jwk().as_bytes())
        .expect("a private JWK is far below AES-GCM's length limit")
}

/// Decrypts what [`wrap_under`] made (or a web client's `wrapKey("jwk")`: any member order,
/// extra members ignored) for `aad`.
pub(crate) fn unwrap_under(wrap_key: &WrapKey, aad: &str, wrapped: &str) -> Result<KeyPair, E2eError> {
    let jwk = envelope::open(wrap_key.expose_secret(), aad.as_bytes(), wrapped)?;
    let jwk = std::str::from_utf8(&jwk).map_err(|_| E2eError::InvalidKey("the private JWK is not UTF-8"))?;
    KeyPair::from_private_jwk(jwk)
}

/// Decrypts a `private_key` wrapped by [`wrap_private_key`] for `conversation_id`.
///
/// A key wrapped for another conversation or under another wrap key (another password or
/// email) is [`E2eError::Decrypt`].
pub fn unwrap_private_key(wrap_key: &WrapKey, conversation_id: Uuid, wrapped: &str) -> Result<KeyPair, E2eError> {
    unwrap_under(wrap_key, &associated_data(conversation_id), wrapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONVERSATION: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

    #[test]
    fn a_wrapped_key_unwraps_to_the_same_key_pair() {
        let wrap_key = WrapKey::from_bytes([3; 32]);
        let pair = KeyPair::generate();
        let wrapped = wrap_private_key(&wrap_key, CONVERSATION, &pair);
        assert!(wrapped.starts_with("v1."));
        assert_ne!(wrapped, wrap_private_key(&wrap_key, CONVERSATION, &pair), "a fresh IV each time");
        let unwrapped = unwrap_private_key(&wrap_key, CONVERSATION, &wrapped).expect("unwrap");
        assert_eq!(unwrapped.private_jwk().as_str(), pair.private_jwk().as_str());
    }

    #[test]
    fn another_wrap_key_or_conversation_does_not_unwrap() {
        let wrap_key = WrapKey::from_bytes([3; 32]);
        let wrapped = wrap_private_key(&wrap_key, CONVERSATION, &KeyPair::generate());
        let other = Uuid::from_u128(CONVERSATION.as_u128() + 1);
        assert_eq!(unwrap_private_key(&wrap_key, other, &wrapped).map(|_| ()), Err(E2eError::Decrypt));
        let other_key = WrapKey::from_bytes([4; 32]);
        assert_eq!(unwrap_private_key(&other_key, CONVERSATION, &wrapped).map(|_| ()), Err(E2eError::Decrypt));
    }

    #[test]
    fn something_else_under_the_wrap_key_is_an_invalid_key() {
        let wrap_key = WrapKey::from_bytes([3; 32]);
        let aad = associated_data(CONVERSATION);
        for plaintext in [&b"not json"[..], b"\xff\xfe", br#"{"kty":"EC","crv":"P-256"}"#] {
            let sealed =
                envelope::seal(wrap_key.expose_secret(), [0; NONCE_LEN], aad.as_bytes(), plaintext).expect("seal");
            assert!(matches!(unwrap_private_key(&wrap_key, CONVERSATION, &sealed), Err(E2eError::InvalidKey(_))));
        }
        let public_only = KeyPair::generate().public_jwk();
        let sealed = envelope::seal(wrap_key.expose_secret(), [0; NONCE_LEN], aad.as_bytes(), public_only.as_bytes())
            .expect("seal");
        assert!(matches!(unwrap_private_key(&wrap_key, CONVERSATION, &sealed), Err(E2eError::InvalidKey(_))));
    }

    #[test]
    fn malformed_wrapped_keys_are_errors() {
        let wrap_key = WrapKey::from_bytes([3; 32]);
        for bad in ["", "v1", "v1..", "v2.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", "garbage"] {
            assert!(matches!(unwrap_private_key(&wrap_key, CONVERSATION, bad), Err(E2eError::Malformed(_))), "{bad}");
        }
        let wrong_tag = "v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(unwrap_private_key(&wrap_key, CONVERSATION, wrong_tag).map(|_| ()), Err(E2eError::Decrypt));
    }
}
