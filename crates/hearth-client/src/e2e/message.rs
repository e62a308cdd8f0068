//! Messages: encrypted pairwise from sender to recipient under an ECDH-derived key.

use hkdf::Hkdf;
use sha2::Sha256;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::envelope::{self, NONCE_LEN};
use super::key_pair::parse_public_jwk;
use super::{E2eError, KeyPair};

/// The AES-256-GCM key of messages from `sender_id` to `recipient_id` in `conversation_id`:
/// `HKDF-SHA256(ikm = ECDH x-coordinate, salt = C, info = S.id + R.id)`.
fn message_key(
    own: &KeyPair,
    their_public_jwk: &str,
    sender_id: Uuid,
    recipient_id: Uuid,
    conversation_id: Uuid,
) -> Result<Zeroizing<[u8; 32]>, E2eError> {
    let their_public = parse_public_jwk(their_public_jwk)?;
    let shared = own.shared_secret(&their_public);
    let salt = conversation_id.to_string();
    let info = format!("{sender_id}{recipient_id}");
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt.as_bytes()), shared.as_ref())
        .expand(info.as_bytes(), key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Ok(key)
}

/// The associated data of a message: `C + S.id + R.id`.
fn associated_data(conversation_id: Uuid, sender_id: Uuid, recipient_id: Uuid) -> String {
    format!("{conversation_id}{sender_id}{recipient_id}")
}

/// Encrypts `plaintext` from `sender` (whose id is `sender_id`) to the member `recipient_id`
/// whose public key is `recipient_public_jwk`, in `conversation_id`, with a random nonce: the
/// `content` for that recipient (`v1.<nonce>.<ciphertext‖tag>`).
///
/// The sender encrypts its own copy the same way, with its own public key and id as the
/// recipient's.
///
/// ```
/// use hearth_client::e2e::{KeyPair, decrypt, encrypt};
/// use uuid::Uuid;
///
/// let (ada, bob) = (KeyPair::generate(), KeyPair::generate());
/// let (ada_id, bob_id, conversation) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
/// let content = encrypt(&ada, ada_id, &bob.public_jwk(), bob_id, conversation, "hi Bob")?;
/// assert_eq!(decrypt(&bob, bob_id, &ada.public_jwk(), ada_id, conversation, &content)?, "hi Bob");
/// # Ok::<(), hearth_client::E2eError>(())
/// ```
pub fn encrypt(
    sender: &KeyPair,
    sender_id: Uuid,
    recipient_public_jwk: &str,
    recipient_id: Uuid,
    conversation_id: Uuid,
    plaintext: &str,
) -> Result<String, E2eError> {
    encrypt_with_nonce(
        sender,
        sender_id,
        recipient_public_jwk,
        recipient_id,
        conversation_id,
        plaintext,
        envelope::random_nonce(),
    )
}

/// [`encrypt`] with a given nonce, for test vectors only: reusing a nonce between the same
/// two keys breaks AES-GCM.
#[doc(hidden)]
pub fn encrypt_with_nonce(
    sender: &KeyPair,
    sender_id: Uuid,
    recipient_public_jwk: &str,
    recipient_id: Uuid,
    conversation_id: Uuid,
    plaintext: &str,
    nonce: [u8; NONCE_LEN],
) -> Result<String, E2eError> {
    let key = message_key(sender, recipient_public_jwk, sender_id, recipient_id, conversation_id)?;
    let aad = associated_data(conversation_id, sender_id, recipient_id);
    envelope::seal(&key, nonce, aad.as_bytes(), plaintext.as_bytes())
}

/// Decrypts a message `content` to `recipient` (whose id is `recipient_id`) from the member
/// `sender_id` whose public key is `sender_public_jwk`, in `conversation_id`.
///
/// A content encrypted for another recipient, by another sender or in another conversation
/// is [`E2eError::Decrypt`]: the sender is authenticated by its key.
pub fn decrypt(
    recipient: &KeyPair,
    recipient_id: Uuid,
    sender_public_jwk: &str,
    sender_id: Uuid,
    conversation_id: Uuid,
    content: &str,
) -> Result<String, E2eError> {
    let key = message_key(recipient, sender_public_jwk, sender_id, recipient_id, conversation_id)?;
    let aad = associated_data(conversation_id, sender_id, recipient_id);
    let plaintext = envelope::open(&key, aad.as_bytes(), content)?;
    String::from_utf8(plaintext.to_vec()).map_err(|_| E2eError::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Member {
        id: Uuid,
        keys: KeyPair,
    }

    fn member() -> Member {
        Member { id: Uuid::now_v7(), keys: KeyPair::generate() }
    }

    fn send(from: &Member, to: &Member, conversation: Uuid, text: &str) -> String {
        encrypt(&from.keys, from.id, &to.keys.public_jwk(), to.id, conversation, text).expect("encrypt")
    }

    fn receive(to: &Member, from: &Member, conversation: Uuid, content: &str) -> Result<String, E2eError> {
        decrypt(&to.keys, to.id, &from.keys.public_jwk(), from.id, conversation, content)
    }

    #[test]
    fn messages_round_trip_to_the_recipient_and_to_the_sender_itself() {
        let (ada, bob) = (member(), member());
        let conversation = Uuid::now_v7();
        for text in ["", "hi", "Grüße, Zoë — ✓ 你好", "🔐👋🏽", "<script>alert(1)</script>", &"x".repeat(70_000)]
        {
            let to_bob = send(&ada, &bob, conversation, text);
            assert_eq!(receive(&bob, &ada, conversation, &to_bob).as_deref(), Ok(text));
            let to_self = send(&ada, &ada, conversation, text);
            assert_eq!(receive(&ada, &ada, conversation, &to_self).as_deref(), Ok(text));
        }
        let first = send(&ada, &bob, conversation, "same");
        assert_ne!(first, send(&ada, &bob, conversation, "same"), "a fresh nonce each time");
    }

    #[test]
    fn the_associated_data_binds_conversation_sender_and_recipient() {
        let (ada, bob, eve) = (member(), member(), member());
        let conversation = Uuid::now_v7();
        let content = send(&ada, &bob, conversation, "for Bob only");
        let fail = |result: Result<String, E2eError>| assert_eq!(result, Err(E2eError::Decrypt));
        // Another conversation.
        fail(receive(&bob, &ada, Uuid::now_v7(), &content));
        // Another claimed sender: Eve's key, or Ada's key under Eve's id.
        fail(receive(&bob, &eve, conversation, &content));
        fail(decrypt(&bob.keys, bob.id, &ada.keys.public_jwk(), eve.id, conversation, &content));
        // Another recipient: Eve's key, or Bob's key under Eve's id.
        fail(receive(&eve, &ada, conversation, &content));
        fail(decrypt(&bob.keys, eve.id, &ada.keys.public_jwk(), ada.id, conversation, &content));
        // Sender and recipient swapped: same ECDH secret, other info and associated data.
        fail(receive(&ada, &bob, conversation, &content));
        // The sender's own copy is not Bob's.
        let own_copy = send(&ada, &ada, conversation, "mine");
        fail(receive(&bob, &ada, conversation, &own_copy));
    }

    #[test]
    fn the_ids_are_hyphenated_lowercase_and_concatenated() {
        let id = Uuid::from_u128(0xABCD_EF01_2345_6789_ABCD_EF01_2345_6789);
        assert_eq!(associated_data(id, id, id), "abcdef01-2345-6789-abcd-ef0123456789".repeat(3));
    }

    #[test]
    fn malformed_contents_and_keys_are_errors() {
        let (ada, bob) = (member(), member());
        let conversation = Uuid::now_v7();
        let content = send(&ada, &bob, conversation, "hello");
        for bad in [
            "",
            "v1",
            "hello",
            &content.replacen("v1", "v2", 1),
            &format!("{content}."),
            &content.replacen("v1.", "v1.A", 1),
        ] {
            assert!(matches!(receive(&bob, &ada, conversation, bad), Err(E2eError::Malformed(_))), "{bad}");
        }
        let bad_key = r#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}"#;
        assert!(matches!(
            decrypt(&bob.keys, bob.id, bad_key, ada.id, conversation, &content),
            Err(E2eError::InvalidKey(_))
        ));
        assert!(matches!(encrypt(&ada.keys, ada.id, "{}", bob.id, conversation, "x"), Err(E2eError::InvalidKey(_))));
    }

    #[test]
    fn a_decrypted_plaintext_that_is_not_utf8_is_not_text() {
        let (ada, bob) = (member(), member());
        let conversation = Uuid::now_v7();
        let key = message_key(&ada.keys, &bob.keys.public_jwk(), ada.id, bob.id, conversation).expect("key");
        let aad = associated_data(conversation, ada.id, bob.id);
        let content = envelope::seal(&key, [9; NONCE_LEN], aad.as_bytes(), b"\xc3\x28").expect("seal");
        assert_eq!(receive(&bob, &ada, conversation, &content), Err(E2eError::NotText));
    }
}
