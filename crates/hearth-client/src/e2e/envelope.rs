//! The encoded form of every encrypted value: `v1.<b64url nonce>.<b64url ciphertext‖tag>`,
//! AES-256-GCM with a 12-byte nonce and a 16-byte tag.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use zeroize::Zeroizing;

use super::E2eError;

/// The AES-GCM nonce (IV) length, in bytes.
pub(crate) const NONCE_LEN: usize = 12;
/// The AES-GCM tag length, in bytes.
const TAG_LEN: usize = 16;
/// The tag of v1 values: wrapped private keys, and messages from before v2.
pub(crate) const V1: &str = "v1";

/// A fresh random nonce from the operating system's generator.
pub(crate) fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// base64url without padding, as everywhere in the scheme.
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes canonical base64url without padding (no `=`, no whitespace, unused bits zero).
pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Encrypts `plaintext` under `key` and `nonce`, bound to `aad`, and encodes the result as v1.
pub(crate) fn seal(key: &[u8; 32], nonce: [u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Result<String, E2eError> {
    seal_tagged(V1, key, nonce, aad, plaintext)
}

/// [`seal`] with another envelope tag (`v2`, `v2i`).
pub(crate) fn seal_tagged(
    tag: &str,
    key: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<String, E2eError> {
    let cipher = Aes256Gcm::new(key.into());
    let sealed =
        cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad }).map_err(|_| E2eError::TooLong)?;
    Ok(format!("{tag}.{}.{}", b64(&nonce), b64(&sealed)))
}

/// Decodes a v1 `encoded` and decrypts it under `key`, checking it is bound to `aad`.
pub(crate) fn open(key: &[u8; 32], aad: &[u8], encoded: &str) -> Result<Zeroizing<Vec<u8>>, E2eError> {
    open_tagged(V1, key, aad, encoded)
}

/// [`open`] for a value that must carry envelope tag `tag`.
pub(crate) fn open_tagged(
    tag: &str,
    key: &[u8; 32],
    aad: &[u8],
    encoded: &str,
) -> Result<Zeroizing<Vec<u8>>, E2eError> {
    let mut parts = encoded.split('.');
    let (Some(version), Some(nonce), Some(sealed), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(E2eError::Malformed("not three dot-separated parts"));
    };
    if version != tag {
        return Err(E2eError::Malformed("unknown version"));
    }
    let nonce = unb64(nonce).ok_or(E2eError::Malformed("nonce is not base64url"))?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| E2eError::Malformed("nonce is not 12 bytes"))?;
    let sealed = unb64(sealed).ok_or(E2eError::Malformed("ciphertext is not base64url"))?;
    if sealed.len() < TAG_LEN {
        return Err(E2eError::Malformed("ciphertext is shorter than its tag"));
    }
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &sealed, aad })
        .map(Zeroizing::new)
        .map_err(|_| E2eError::Decrypt)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn sealed_values_open_with_the_same_key_and_associated_data() {
        let sealed = seal(&KEY, [1; NONCE_LEN], b"context", b"hello").expect("seal");
        assert_eq!(sealed, "v1.AQEBAQEBAQEBAQEB.".to_owned() + sealed.rsplit('.').next().expect("three parts"));
        assert_eq!(open(&KEY, b"context", &sealed).expect("open").as_slice(), b"hello");
        assert_eq!(open(&KEY, b"other context", &sealed), Err(E2eError::Decrypt));
        assert_eq!(open(&[8; 32], b"context", &sealed), Err(E2eError::Decrypt));
    }

    #[test]
    fn an_empty_plaintext_is_just_a_tag() {
        let sealed = seal(&KEY, random_nonce(), b"", b"").expect("seal");
        assert_eq!(sealed.rsplit('.').next().map(str::len), Some(22));
        assert_eq!(open(&KEY, b"", &sealed).expect("open").as_slice(), b"");
    }

    #[test]
    fn random_nonces_differ() {
        assert_ne!(random_nonce(), random_nonce());
    }

    #[test]
    fn malformed_values_are_errors() {
        let sealed = seal(&KEY, [1; NONCE_LEN], b"", b"hello").expect("seal");
        let (_, rest) = sealed.split_once('.').expect("a version");
        let (nonce, body) = rest.split_once('.').expect("a nonce");
        let malformed = |value: &str| matches!(open(&KEY, b"", value), Err(E2eError::Malformed(_)));
        for value in [
            "",
            "v1",
            "v1..",
            &format!("v2.{nonce}.{body}"),
            &format!("V1.{nonce}.{body}"),
            &format!(" v1.{nonce}.{body}"),
            &format!("v1.{nonce}.{body}."),
            &format!("v1.{nonce}"),
            &format!("v1.{nonce}.{body}=="),
            &format!("v1.{nonce}=.{body}"),
            &format!("v1.{nonce}.{}", body.replace(|c: char| c.is_ascii_alphanumeric(), "+")),
            &format!("v1.{nonce}.{body} "),
            &format!("v1.{}.{body}", &nonce[1..]),
            &format!("v1.{nonce}AAAA.{body}"),
            &format!("v1.{nonce}.{}", &body[..21]),
            &format!("v1.{nonce}.{}", &body[..20]),
        ] {
            assert!(malformed(value), "{value:?}: {:?}", open(&KEY, b"", value));
        }
    }

    #[test]
    fn non_canonical_base64_is_malformed() {
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let sealed = seal(&KEY, [1; NONCE_LEN], b"", b"").expect("seal");
        let (head, body) = sealed.rsplit_once('.').expect("three parts");
        // 16 bytes in 22 characters: the last one carries 4 unused bits, which must be zero.
        assert_eq!(body.len(), 22);
        let index = ALPHABET.find(&body[21..]).expect("base64url");
        assert_eq!(index % 16, 0);
        let tampered = format!("{head}.{}{}", &body[..21], &ALPHABET[index + 1..index + 2]);
        assert!(matches!(open(&KEY, b"", &tampered), Err(E2eError::Malformed(_))), "{tampered}");
    }

    #[test]
    fn a_flipped_bit_anywhere_fails_to_decrypt() {
        let sealed = seal(&KEY, [1; NONCE_LEN], b"ad", b"hello").expect("seal");
        let (head, body) = sealed.rsplit_once('.').expect("three parts");
        let mut bytes = unb64(body).expect("base64");
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            assert_eq!(open(&KEY, b"ad", &format!("{head}.{}", b64(&bytes))), Err(E2eError::Decrypt), "byte {i}");
            bytes[i] ^= 0x01;
        }
        let mut nonce = [1; NONCE_LEN];
        nonce[0] = 0;
        assert_eq!(open(&KEY, b"ad", &format!("v1.{}.{body}", b64(&nonce))), Err(E2eError::Decrypt));
    }

    proptest! {
        #[test]
        fn any_text_is_opened_or_refused_without_panicking(text in "\\PC*") {
            let _ = open(&KEY, b"", &text);
        }

        #[test]
        fn any_well_formed_shape_is_opened_or_refused_without_panicking(
            version in "v[0-9]", nonce in "[A-Za-z0-9_=-]{0,20}", body in "[A-Za-z0-9_=-]{0,40}",
        ) {
            let _ = open(&KEY, b"", &format!("{version}.{nonce}.{body}"));
        }

        #[test]
        fn seal_then_open_is_the_identity(plaintext in proptest::collection::vec(any::<u8>(), 0..300), aad in ".*") {
            let sealed = seal(&KEY, random_nonce(), aad.as_bytes(), &plaintext).expect("seal");
            let opened = open(&KEY, aad.as_bytes(), &sealed).expect("open");
            prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
        }
    }
}
