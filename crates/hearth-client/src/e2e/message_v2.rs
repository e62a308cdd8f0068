//! v2 messages (docs/e2e.md): an authenticated header and the text, padded, encrypted to a
//! member's conversation key (`v2`) or, for a member without one, to their identity (`v2i`).

use std::fmt;

use hkdf::Hkdf;
use p256::PublicKey;
use rand::RngCore as _;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Sha256;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::envelope::{self, NONCE_LEN};
use super::key_pair::parse_public_jwk;
use super::{E2eError, Identity, IdentityKey, KeyPair};

/// Plaintexts are padded to a multiple of this many bytes, so lengths reveal less.
pub const PADDING_BLOCK: usize = 256;
/// The largest `sent_at` and `seq`: integers a JavaScript reader holds exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// What a v2 ciphertext holds: the authenticated header and the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plaintext {
    /// The message group id, chosen by the sender (for an edit, a fresh id of the version).
    pub id: Uuid,
    /// The sender's clock, milliseconds since the Unix epoch.
    pub sent_at: u64,
    /// For an edit, the message group id of the message it replaces.
    pub edit_of: Option<Uuid>,
    /// The sending client's run.
    pub stream: Stream,
    /// The message's number in its stream and conversation, from 0.
    pub seq: u64,
    /// The message.
    pub text: String,
}

/// A sending client's run: 8 random bytes, written as 16 lowercase hex digits. With `seq` it
/// orders one client's messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stream([u8; 8]);

impl Stream {
    /// A fresh stream from the operating system's random generator.
    pub fn random() -> Self {
        let mut bytes = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A stream of given bytes (test vectors).
    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl std::str::FromStr for Stream {
    type Err = E2eError;

    /// Exactly 16 lowercase hex digits.
    fn from_str(text: &str) -> Result<Self, E2eError> {
        let malformed = E2eError::Malformed("a stream is 16 lowercase hex digits");
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(malformed);
        }
        let mut bytes = [0u8; 8];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| malformed.clone())?;
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stream({self})")
    }
}

impl Serialize for Stream {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Plaintext {
    /// The padded bytes to encrypt: the JSON object, `0x80`, zeros to a multiple of
    /// [`PADDING_BLOCK`].
    fn padded(&self) -> Result<Zeroizing<Vec<u8>>, E2eError> {
        if self.sent_at > MAX_SAFE_INTEGER || self.seq > MAX_SAFE_INTEGER {
            return Err(E2eError::InvalidArgument("sent_at and seq must be at most 2^53 - 1"));
        }
        let mut bytes = Zeroizing::new(serde_json::to_vec(self).expect("a plaintext serialises"));
        bytes.push(0x80);
        let padded = bytes.len().div_ceil(PADDING_BLOCK) * PADDING_BLOCK;
        bytes.resize(padded, 0);
        Ok(bytes)
    }

    /// The plaintext of decrypted, padded bytes.
    fn unpadded(bytes: &[u8]) -> Result<Self, E2eError> {
        let end = bytes.iter().rposition(|&byte| byte != 0).ok_or(E2eError::Malformed("no padding"))?;
        if bytes[end] != 0x80 {
            return Err(E2eError::Malformed("the padding does not start with 0x80"));
        }
        let json = std::str::from_utf8(&bytes[..end]).map_err(|_| E2eError::NotText)?;
        let value: Value = serde_json::from_str(json).map_err(|_| E2eError::Malformed("the header is not JSON"))?;
        let Value::Object(members) = value else {
            return Err(E2eError::Malformed("the header is not a JSON object"));
        };
        Self::from_members(&members).ok_or(E2eError::Malformed("the header lacks a valid id, time, stream or text"))
    }

    fn from_members(members: &Map<String, Value>) -> Option<Self> {
        let edit_of = match members.get("edit_of")? {
            Value::Null => None,
            Value::String(id) => Some(canonical_id(id)?),
            _ => return None,
        };
        Some(Self {
            id: canonical_id(members.get("id")?.as_str()?)?,
            sent_at: safe_integer(members.get("sent_at")?)?,
            edit_of,
            stream: Stream::parse(members.get("stream")?.as_str()?)?,
            seq: safe_integer(members.get("seq")?)?,
            text: members.get("text")?.as_str()?.to_owned(),
        })
    }
}

/// An id in the one form the scheme writes: lowercase, hyphenated.
fn canonical_id(text: &str) -> Option<Uuid> {
    Uuid::parse_str(text).ok().filter(|id| id.to_string() == text)
}

/// An integer from 0 to 2^53 − 1, however JSON wrote it (`3`, `3.0` and `3e0` are the same
/// number to a JavaScript reader, so they are to this one).
fn safe_integer(value: &Value) -> Option<u64> {
    let number = value.as_number()?;
    let integer = match number.as_u64() {
        Some(integer) => integer,
        None => {
            let float = number.as_f64()?;
            if float.fract() != 0.0 || !(0.0..=MAX_SAFE_INTEGER as f64).contains(&float) {
                return None;
            }
            float as u64
        }
    };
    (integer <= MAX_SAFE_INTEGER).then_some(integer)
}

/// To whose key a copy is encrypted.
#[derive(Clone, Copy)]
enum Mode {
    /// The recipient's conversation key (`v2`).
    ConversationKey,
    /// The recipient's identity agreement key (`v2i`).
    Identity,
}

impl Mode {
    fn tag(self) -> &'static str {
        match self {
            Self::ConversationKey => "v2",
            Self::Identity => "v2i",
        }
    }

    /// `key = HKDF(ECDH, salt = C, info = "hearth/<tag>|" + S + "|" + R)` and the associated
    /// data `"hearth/<tag>|" + C + "|" + S + "|" + R`.
    fn key_and_aad(
        self,
        own: &KeyPair,
        theirs: &PublicKey,
        sender_id: Uuid,
        recipient_id: Uuid,
        conversation_id: Uuid,
    ) -> (Zeroizing<[u8; 32]>, String) {
        let tag = self.tag();
        let shared = own.shared_secret(theirs);
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(conversation_id.to_string().as_bytes()), shared.as_ref())
            .expand(format!("hearth/{tag}|{sender_id}|{recipient_id}").as_bytes(), key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        (key, format!("hearth/{tag}|{conversation_id}|{sender_id}|{recipient_id}"))
    }

    #[allow(clippy::too_many_arguments)]
    fn seal(
        self,
        own: &KeyPair,
        theirs: &PublicKey,
        sender_id: Uuid,
        recipient_id: Uuid,
        conversation_id: Uuid,
        plaintext: &Plaintext,
        nonce: [u8; NONCE_LEN],
    ) -> Result<String, E2eError> {
        let padded = plaintext.padded()?;
        let (key, aad) = self.key_and_aad(own, theirs, sender_id, recipient_id, conversation_id);
        envelope::seal_tagged(self.tag(), &key, nonce, aad.as_bytes(), &padded)
    }

    fn open(
        self,
        own: &KeyPair,
        theirs: &PublicKey,
        sender_id: Uuid,
        recipient_id: Uuid,
        conversation_id: Uuid,
        content: &str,
    ) -> Result<Plaintext, E2eError> {
        let (key, aad) = self.key_and_aad(own, theirs, sender_id, recipient_id, conversation_id);
        let padded = envelope::open_tagged(self.tag(), &key, aad.as_bytes(), content)?;
        Plaintext::unpadded(&padded)
    }
}

/// Encrypts `plaintext` from `sender` (whose id is `sender_id`, with its conversation key
/// pair) to the member `recipient_id` whose accepted conversation public key is
/// `recipient_public_jwk`: a `v2` content. The sender's own copy is encrypted the same way to
/// itself.
///
/// ```
/// use hearth_client::e2e::{KeyPair, Plaintext, Stream, decrypt_message, encrypt_message};
/// use uuid::Uuid;
///
/// let (ada, bob) = (KeyPair::generate(), KeyPair::generate());
/// let (ada_id, bob_id, conversation) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
/// let message = Plaintext {
///     id: Uuid::now_v7(), sent_at: 1_765_000_000_000, edit_of: None, stream: Stream::random(), seq: 0,
///     text: "hi Bob".to_owned(),
/// };
/// let content = encrypt_message(&ada, ada_id, &bob.public_jwk(), bob_id, conversation, &message)?;
/// assert!(content.starts_with("v2."));
/// assert_eq!(decrypt_message(&bob, bob_id, &ada.public_jwk(), ada_id, conversation, &content)?, message);
/// # Ok::<(), hearth_client::E2eError>(())
/// ```
pub fn encrypt_message(
    sender: &KeyPair,
    sender_id: Uuid,
    recipient_public_jwk: &str,
    recipient_id: Uuid,
    conversation_id: Uuid,
    plaintext: &Plaintext,
) -> Result<String, E2eError> {
    let nonce = envelope::random_nonce();
    encrypt_message_with_nonce(sender, sender_id, recipient_public_jwk, recipient_id, conversation_id, plaintext, nonce)
}

/// [`encrypt_message`] with a given nonce, for test vectors only.
#[doc(hidden)]
pub fn encrypt_message_with_nonce(
    sender: &KeyPair,
    sender_id: Uuid,
    recipient_public_jwk: &str,
    recipient_id: Uuid,
    conversation_id: Uuid,
    plaintext: &Plaintext,
    nonce: [u8; NONCE_LEN],
) -> Result<String, E2eError> {
    let recipient = parse_public_jwk(recipient_public_jwk)?;
    Mode::ConversationKey.seal(sender, &recipient, sender_id, recipient_id, conversation_id, plaintext, nonce)
}

/// Decrypts a `v2` content to `recipient` from the member `sender_id` whose accepted
/// conversation public key is `sender_public_jwk`.
pub fn decrypt_message(
    recipient: &KeyPair,
    recipient_id: Uuid,
    sender_public_jwk: &str,
    sender_id: Uuid,
    conversation_id: Uuid,
    content: &str,
) -> Result<Plaintext, E2eError> {
    let sender = parse_public_jwk(sender_public_jwk)?;
    Mode::ConversationKey.open(recipient, &sender, sender_id, recipient_id, conversation_id, content)
}

/// Encrypts `plaintext` from `sender`'s identity to the identity of `recipient_id`, a member
/// without a conversation key yet: a `v2i` content, which they open with their identity on
/// any device.
pub fn encrypt_to_identity(
    sender: &Identity,
    sender_id: Uuid,
    recipient: &IdentityKey,
    recipient_id: Uuid,
    conversation_id: Uuid,
    plaintext: &Plaintext,
) -> Result<String, E2eError> {
    let nonce = envelope::random_nonce();
    encrypt_to_identity_with_nonce(sender, sender_id, recipient, recipient_id, conversation_id, plaintext, nonce)
}

/// [`encrypt_to_identity`] with a given nonce, for test vectors only.
#[doc(hidden)]
pub fn encrypt_to_identity_with_nonce(
    sender: &Identity,
    sender_id: Uuid,
    recipient: &IdentityKey,
    recipient_id: Uuid,
    conversation_id: Uuid,
    plaintext: &Plaintext,
    nonce: [u8; NONCE_LEN],
) -> Result<String, E2eError> {
    Mode::Identity.seal(
        sender.agreement(),
        recipient.agreement_key(),
        sender_id,
        recipient_id,
        conversation_id,
        plaintext,
        nonce,
    )
}

/// Decrypts a `v2i` content to `recipient`'s identity from the identity of `sender_id`.
pub fn decrypt_from_identity(
    recipient: &Identity,
    recipient_id: Uuid,
    sender: &IdentityKey,
    sender_id: Uuid,
    conversation_id: Uuid,
    content: &str,
) -> Result<Plaintext, E2eError> {
    Mode::Identity.open(
        recipient.agreement(),
        sender.agreement_key(),
        sender_id,
        recipient_id,
        conversation_id,
        content,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::envelope::unb64;

    fn plaintext(text: &str) -> Plaintext {
        Plaintext {
            id: Uuid::now_v7(),
            sent_at: 1_765_000_000_000,
            edit_of: None,
            stream: Stream::from_bytes([1, 2, 3, 4, 5, 6, 7, 0xff]),
            seq: 7,
            text: text.to_owned(),
        }
    }

    /// The length of the ciphertext (without its tag) inside a content.
    fn padded_length(content: &str) -> usize {
        unb64(content.rsplit('.').next().expect("parts")).expect("base64url").len() - 16
    }

    #[test]
    fn the_plaintext_is_canonical_json_padded_to_blocks_of_256() {
        let mut message = plaintext("hé \"quoted\"\n\u{1}\u{7f}\u{2028}");
        message.edit_of = Some(message.id);
        let padded = message.padded().expect("pad");
        let json = serde_json::to_string(&message).expect("JSON");
        assert_eq!(
            json,
            format!(
                concat!(
                    r#"{{"id":"{id}","sent_at":1765000000000,"edit_of":"{id}","stream":"01020304050607ff","seq":7,"#,
                    r#""text":"hé \"quoted\"\n\u0001{del}{ls}"}}"#
                ),
                id = message.id,
                del = '\u{7f}',
                ls = '\u{2028}'
            )
        );
        assert_eq!(padded.len(), 256);
        assert_eq!(&padded[..json.len()], json.as_bytes());
        assert_eq!(padded[json.len()], 0x80);
        assert!(padded[json.len() + 1..].iter().all(|&b| b == 0));
        assert_eq!(Plaintext::unpadded(&padded), Ok(message));
    }

    #[test]
    fn lengths_round_up_to_whole_blocks() {
        let (ada, bob) = (KeyPair::generate(), KeyPair::generate());
        let (ada_id, bob_id, conversation) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let header = serde_json::to_vec(&plaintext("")).expect("JSON").len();
        for (text_length, blocks) in [(0, 1), (255 - header, 1), (256 - header, 2), (300, 2), (5000, 21)] {
            let message = plaintext(&"x".repeat(text_length));
            let content =
                encrypt_message(&ada, ada_id, &bob.public_jwk(), bob_id, conversation, &message).expect("encrypt");
            assert_eq!(padded_length(&content), blocks * PADDING_BLOCK, "{text_length} bytes of text");
            assert_eq!(decrypt_message(&bob, bob_id, &ada.public_jwk(), ada_id, conversation, &content), Ok(message));
        }
    }

    #[test]
    fn the_mode_conversation_sender_and_recipient_are_bound() {
        let (ada, bob, eve) = (Identity::generate(), Identity::generate(), Identity::generate());
        let (ada_key, bob_key) = (KeyPair::generate(), KeyPair::generate());
        let (ada_id, bob_id, conversation) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let message = plaintext("for Bob");
        let to_identity =
            encrypt_to_identity(&ada, ada_id, &bob.public(), bob_id, conversation, &message).expect("encrypt");
        assert!(to_identity.starts_with("v2i."));
        assert_eq!(
            decrypt_from_identity(&bob, bob_id, &ada.public(), ada_id, conversation, &to_identity),
            Ok(message.clone())
        );
        let fail = |result: Result<Plaintext, E2eError>| assert_eq!(result, Err(E2eError::Decrypt));
        fail(decrypt_from_identity(&bob, bob_id, &ada.public(), ada_id, Uuid::now_v7(), &to_identity));
        fail(decrypt_from_identity(&bob, ada_id, &ada.public(), bob_id, conversation, &to_identity));
        fail(decrypt_from_identity(&eve, bob_id, &ada.public(), ada_id, conversation, &to_identity));
        fail(decrypt_from_identity(&bob, bob_id, &eve.public(), ada_id, conversation, &to_identity));
        // The same keys in the other mode: another tag, and another key and associated data.
        let relabelled = to_identity.replacen("v2i.", "v2.", 1);
        fail(decrypt_message(
            bob.agreement(),
            bob_id,
            &ada.agreement().public_jwk(),
            ada_id,
            conversation,
            &relabelled,
        ));
        let to_key =
            encrypt_message(&ada_key, ada_id, &bob_key.public_jwk(), bob_id, conversation, &message).expect("encrypt");
        assert!(matches!(
            decrypt_from_identity(&bob, bob_id, &ada.public(), ada_id, conversation, &to_key),
            Err(E2eError::Malformed(_))
        ));
        // A v1 content is not a v2 one.
        let v1 = crate::e2e::encrypt(&ada_key, ada_id, &bob_key.public_jwk(), bob_id, conversation, "old").expect("v1");
        assert!(matches!(
            decrypt_message(&bob_key, bob_id, &ada_key.public_jwk(), ada_id, conversation, &v1),
            Err(E2eError::Malformed(_))
        ));
    }

    #[test]
    fn headers_are_checked_after_decryption() {
        let (ada, bob) = (KeyPair::generate(), KeyPair::generate());
        let (ada_id, bob_id, conversation) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let seal = |bytes: &[u8]| {
            let (key, aad) = Mode::ConversationKey.key_and_aad(&ada, bob.public_key(), ada_id, bob_id, conversation);
            envelope::seal_tagged("v2", &key, [3; NONCE_LEN], aad.as_bytes(), bytes).expect("seal")
        };
        let open = |content: &str| decrypt_message(&bob, bob_id, &ada.public_jwk(), ada_id, conversation, content);
        let id = Uuid::now_v7();
        let header = |members: &str| {
            let mut bytes = format!(r#"{{"id":"{id}","stream":"0011223344556677","text":"t",{members}}}"#).into_bytes();
            bytes.push(0x80);
            bytes
        };
        let good = header(r#""sent_at":1,"edit_of":null,"seq":2,"extra":[1]"#);
        assert_eq!(open(&seal(&good)).map(|p| (p.sent_at, p.seq)), Ok((1, 2)));
        assert_eq!(open(&seal(&header(r#""sent_at":1.0,"edit_of":null,"seq":2e0"#))).map(|p| p.seq), Ok(2));
        for bad in [
            header(r#""sent_at":1,"seq":2"#),
            header(r#""sent_at":-1,"edit_of":null,"seq":2"#),
            header(r#""sent_at":1.5,"edit_of":null,"seq":2"#),
            header(r#""sent_at":9007199254740992,"edit_of":null,"seq":2"#),
            header(r#""sent_at":"1","edit_of":null,"seq":2"#),
            header(r#""sent_at":1,"edit_of":"not an id","seq":2"#),
            header(&format!(r#""sent_at":1,"edit_of":"{}","seq":2"#, id.to_string().to_uppercase())),
            header(&format!(r#""sent_at":1,"edit_of":"{}","seq":2"#, id.simple())),
            good[..good.len() - 1].to_vec(),
            [&good[..], &[0x01]].concat(),
            b"[]\x80".to_vec(),
            b"\x80".to_vec(),
            Vec::new(),
        ] {
            assert!(matches!(open(&seal(&bad)), Err(E2eError::Malformed(_))), "{}", String::from_utf8_lossy(&bad));
        }
        assert_eq!(open(&seal(b"{\"text\":\"\xff\"}\x80")), Err(E2eError::NotText));
        let stream = |text: &str| header(&format!(r#""sent_at":1,"edit_of":null,"seq":2,"stream":"{text}""#));
        assert!(open(&seal(&stream("0011223344556677"))).is_ok(), "a repeated member keeps its last value");
        for bad in ["00112233445566", "001122334455667788", "001122334455667g", "001122334455667A"] {
            assert!(matches!(open(&seal(&stream(bad))), Err(E2eError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn times_and_counters_beyond_javascripts_integers_are_refused() {
        let (ada, bob) = (KeyPair::generate(), KeyPair::generate());
        let mut message = plaintext("x");
        message.seq = MAX_SAFE_INTEGER + 1;
        assert!(matches!(
            encrypt_message(&ada, Uuid::now_v7(), &bob.public_jwk(), Uuid::now_v7(), Uuid::now_v7(), &message),
            Err(E2eError::InvalidArgument(_))
        ));
    }
}
