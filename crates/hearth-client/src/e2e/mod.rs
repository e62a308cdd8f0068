//! End-to-end encryption (docs/ARCHITECTURE.md): the v1 scheme below, and on top of it v2's
//! identities, signed conversation keys, authenticated padded messages and delivery checks
//! ([`Identity`], [`sign_conversation_key`], [`encrypt_message`], [`DeliveryChecker`]),
//! written down byte for byte in `docs/e2e.md`. Both are the same, byte for byte, as the web
//! client's `web/js/e2e.js`. The server only stores and relays `public_key`, `private_key` and
//! message `content`, opaque to it. `clients/e2e-vectors.json` holds fixed inputs and the exact
//! outputs; both implementations' tests check every value, and `tests/cross.rs` runs each
//! against the other.
//!
//! # The scheme (v1)
//!
//! **Key derivation** ([`derive()`]), on the device:
//!
//! - `master = PBKDF2-HMAC-SHA256(password, salt, 600 000 iterations, 32 bytes)`: the password
//!   as UTF-8 bytes; the salt is the UTF-8 of `"hearth:" + lowercase(email)`, where lowercase
//!   is Unicode's default (locale-independent) lowercase mapping, as Rust's
//!   [`str::to_lowercase`] and JavaScript's `toLowerCase()`; nothing is trimmed.
//! - `auth_secret = HKDF-SHA256(ikm = master, salt = empty, info = "hearth/auth", 32 bytes)`,
//!   encoded base64url without padding (43 characters): it is what the client sends to
//!   `/auth/*` as the `password` field. The password itself never leaves the device.
//! - `wrap_key = HKDF-SHA256(ikm = master, salt = empty, info = "hearth/wrap", 32 bytes)`: an
//!   AES-256-GCM key that never leaves the device ([`WrapKey`]).
//!
//! **Key pairs** ([`KeyPair`]): per conversation each member has an ECDH P-256 key pair.
//!
//! - `public_key`, what the server stores and relays, is the public JWK as a JSON string with
//!   exactly these members in this order and no whitespace:
//!   `{"kty":"EC","crv":"P-256","x":"<b64url>","y":"<b64url>"}` (the coordinates as 32
//!   big-endian bytes, base64url without padding). Parsing accepts any JSON object with
//!   `kty` `"EC"`, `crv` `"P-256"` and string `x`, `y` (other members are ignored; a repeated
//!   member counts with its last value, as `JSON.parse`) whose point is on the curve.
//! - The private JWK is `{"kty":"EC","crv":"P-256","x":…,"y":…,"d":…}` in the same canonical
//!   form; `d` must be the scalar of the point `x`, `y`.
//! - `private_key`, stored opaque by the server ([`wrap_private_key`]): the private JWK
//!   encrypted with AES-256-GCM under `wrap_key`, a random 12-byte IV and the associated data
//!   `"hearth/private-key|" + conversation_id` (UTF-8), encoded
//!   `v1.<b64url iv>.<b64url ciphertext‖tag>`.
//!
//! **Messages** ([`encrypt`], [`decrypt`]) from sender S to recipient R in conversation C:
//!
//! - `shared = ECDH(S.private, R.public)`, the 32-byte x-coordinate of the shared point (the
//!   recipient computes the same from `R.private` and `S.public`);
//! - `key = HKDF-SHA256(ikm = shared, salt = UTF-8 of C, info = UTF-8 of S.id + R.id, 32 bytes)`;
//! - AES-256-GCM under `key`, a random 12-byte nonce, associated data the UTF-8 of
//!   `C + S.id + R.id`; `content` is `v1.<b64url nonce>.<b64url ciphertext‖tag>`.
//!
//! Ids are lowercase hyphenated UUID strings (36 characters), concatenated without separator
//! (here they are [`Uuid`](uuid::Uuid)s, whose text form is exactly that). The sender also
//! encrypts a copy to itself the same way, with S = R. Static–static ECDH authenticates the
//! sender to the recipient; there is no per-message forward secrecy in v1.
//!
//! **Fingerprints** ([`fingerprint`]): SHA-256 of the uncompressed SEC1 point (`0x04‖x‖y`, 65
//! bytes); shown as its first 16 bytes in lowercase hex, in 8 groups of 4 digits separated by
//! single spaces (`"1a2b 3c4d …"`).
//!
//! base64url is always without padding and canonical (unused trailing bits zero). Anything
//! malformed — another prefix or version, bad base64, wrong lengths, a wrong tag, another
//! conversation, sender or recipient — is an [`E2eError`], never a panic.

mod delivery;
mod envelope;
mod error;
mod identity;
mod kdf;
mod key_pair;
mod message;
mod message_v2;
mod private_key;
mod signed_key;

pub use delivery::{Delivered, DeliveryChecker, Flag, REDATED_AFTER_MS};
pub use error::E2eError;
pub use identity::{Identity, IdentityKey, WrappedIdentity, safety_number};
pub use kdf::{Derived, PBKDF2_ITERATIONS, WrapKey, derive};
pub use key_pair::{KeyPair, fingerprint};
pub use message::{decrypt, encrypt, encrypt_with_nonce};
pub use message_v2::{
    MAX_SAFE_INTEGER, PADDING_BLOCK, Plaintext, Stream, decrypt_from_identity, decrypt_message, encrypt_message,
    encrypt_message_with_nonce, encrypt_to_identity, encrypt_to_identity_with_nonce,
};
pub use private_key::{unwrap_private_key, wrap_private_key, wrap_private_key_with_iv};
pub use signed_key::{sign_conversation_key, verify_conversation_key};

/// The length of an AES-GCM IV or nonce, in bytes: the `iv`/`nonce` of the fixed-nonce
/// variants used for test vectors.
pub const NONCE_LEN: usize = envelope::NONCE_LEN;
