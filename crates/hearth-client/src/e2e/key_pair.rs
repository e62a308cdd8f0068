//! Per-conversation ECDH P-256 key pairs, their JWK text forms and fingerprints.

use std::fmt;

use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::{FieldBytes, PublicKey, SecretKey};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use zeroize::{Zeroize as _, Zeroizing};

use super::E2eError;
use super::envelope::{b64, unb64};

/// A member's ECDH P-256 key pair for one conversation. The secret scalar is zeroized when
/// dropped; `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct KeyPair {
    secret: SecretKey,
    public: PublicKey,
}

impl KeyPair {
    /// A fresh key pair from the operating system's random generator.
    pub fn generate() -> Self {
        Self::from_secret(SecretKey::random(&mut rand::rngs::OsRng))
    }

    /// The key pair of a private scalar (32 big-endian bytes, in `1..n`): for test vectors
    /// and keys kept elsewhere.
    pub fn from_private_scalar(scalar: &[u8; 32]) -> Result<Self, E2eError> {
        SecretKey::from_bytes(FieldBytes::from_slice(scalar))
            .map(Self::from_secret)
            .map_err(|_| E2eError::InvalidKey("the private scalar is zero or not below the group order"))
    }

    /// The key pair of a private JWK (as [`KeyPair::private_jwk`] gives; any member order,
    /// extra members ignored). `d` must be the scalar of the point `x`, `y`.
    pub fn from_private_jwk(jwk: &str) -> Result<Self, E2eError> {
        let mut members = jwk_members(jwk)?;
        let public = public_key(&members)?;
        let d = match members.remove("d") {
            Some(Value::String(d)) => Zeroizing::new(d),
            _ => return Err(E2eError::InvalidKey("the private JWK has no string d")),
        };
        let scalar = Zeroizing::new(unb64(&d).ok_or(E2eError::InvalidKey("d is not base64url"))?);
        let scalar: &[u8; 32] = scalar.as_slice().try_into().map_err(|_| E2eError::InvalidKey("d is not 32 bytes"))?;
        let key_pair = Self::from_private_scalar(scalar)?;
        if key_pair.public != public {
            return Err(E2eError::InvalidKey("d is not the private key of x and y"));
        }
        Ok(key_pair)
    }

    fn from_secret(secret: SecretKey) -> Self {
        let public = secret.public_key();
        Self { secret, public }
    }

    /// The public key as the canonical JWK text, what the server stores as `public_key`:
    /// `{"kty":"EC","crv":"P-256","x":"…","y":"…"}`.
    pub fn public_jwk(&self) -> String {
        public_jwk_of(&self.public)
    }

    /// The private key as the canonical JWK text: `{"kty":"EC","crv":"P-256","x":…,"y":…,"d":…}`.
    /// It is what [`wrap_private_key`](super::wrap_private_key) encrypts; keep it secret.
    pub fn private_jwk(&self) -> Zeroizing<String> {
        let (x, y) = coordinates(&self.public);
        let mut scalar = self.secret.to_bytes();
        let d = Zeroizing::new(b64(&scalar));
        scalar.as_mut_slice().zeroize();
        Zeroizing::new(format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}","d":"{}"}}"#, d.as_str()))
    }

    /// The fingerprint of the public key (see [`fingerprint`]).
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.public)
    }

    /// The public key.
    pub(crate) fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The ECDSA signing key of the same scalar: an identity's signing key pair signs with it.
    pub(crate) fn signing_key(&self) -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from(&self.secret)
    }

    /// The ECDH shared secret with `public`: the x-coordinate of the shared point.
    pub(crate) fn shared_secret(&self, public: &PublicKey) -> Zeroizing<[u8; 32]> {
        let shared = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), public.as_affine());
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(shared.raw_secret_bytes());
        bytes
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

/// The fingerprint people compare to check a member's key: SHA-256 of the uncompressed SEC1
/// point (`0x04‖x‖y`), its first 16 bytes in lowercase hex, in 8 groups of 4 digits
/// separated by single spaces.
///
/// ```
/// let jwk = hearth_client::e2e::KeyPair::generate().public_jwk();
/// let fingerprint = hearth_client::e2e::fingerprint(&jwk)?;
/// assert_eq!(fingerprint.len(), 39);
/// # Ok::<(), hearth_client::E2eError>(())
/// ```
pub fn fingerprint(public_jwk: &str) -> Result<String, E2eError> {
    parse_public_jwk(public_jwk).map(|public| fingerprint_of(&public))
}

fn fingerprint_of(public: &PublicKey) -> String {
    let digest = Sha256::digest(public.to_encoded_point(false).as_bytes());
    digest[..16].chunks(2).map(|pair| format!("{:02x}{:02x}", pair[0], pair[1])).collect::<Vec<_>>().join(" ")
}

/// The canonical public JWK text of a public key.
pub(crate) fn public_jwk_of(public: &PublicKey) -> String {
    let (x, y) = coordinates(public);
    format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}"}}"#)
}

/// The uncompressed SEC1 encoding of a public key: `0x04‖x‖y`, 65 bytes.
pub(crate) fn point(public: &PublicKey) -> [u8; 65] {
    let mut bytes = [0u8; 65];
    bytes.copy_from_slice(public.to_encoded_point(false).as_bytes());
    bytes
}

/// Parses a public JWK: a JSON object with `kty` `"EC"`, `crv` `"P-256"` and `x`, `y` the
/// base64url of 32-byte coordinates of a point on the curve; other members are ignored.
pub(crate) fn parse_public_jwk(jwk: &str) -> Result<PublicKey, E2eError> {
    public_key(&jwk_members(jwk)?)
}

/// The members of a JWK object. A repeated member keeps its last value, as `JSON.parse` does.
pub(crate) fn jwk_members(jwk: &str) -> Result<Map<String, Value>, E2eError> {
    serde_json::from_str(jwk).map_err(|_| E2eError::InvalidKey("the JWK is not a JSON object"))
}

/// The public key of a JWK's members (`kty`, `crv`, `x`, `y`; others ignored).
pub(crate) fn public_key(members: &Map<String, Value>) -> Result<PublicKey, E2eError> {
    let member = |name: &str| match members.get(name) {
        Some(Value::String(value)) => Ok(value.as_str()),
        _ => Err(E2eError::InvalidKey("the JWK lacks a string kty, crv, x or y")),
    };
    if member("kty")? != "EC" {
        return Err(E2eError::InvalidKey("the JWK's kty is not EC"));
    }
    if member("crv")? != "P-256" {
        return Err(E2eError::InvalidKey("the JWK's crv is not P-256"));
    }
    let coordinate = |name: &str| {
        unb64(member(name)?)
            .filter(|bytes| bytes.len() == 32)
            .ok_or(E2eError::InvalidKey("x or y is not the base64url of 32 bytes"))
    };
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend(coordinate("x")?);
    point.extend(coordinate("y")?);
    PublicKey::from_sec1_bytes(&point).map_err(|_| E2eError::InvalidKey("the point is not on the curve"))
}

/// The base64url of the affine coordinates.
fn coordinates(public: &PublicKey) -> (String, String) {
    let point = public.to_encoded_point(false);
    // An uncompressed point always has both coordinates, and a PublicKey is never the identity.
    let bytes = point.as_bytes();
    (b64(&bytes[1..33]), b64(&bytes[33..65]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5903 §8.1: the initiator's private scalar `i` and public point `gi`.
    const I: &str = "c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433";
    const GIX: &str = "dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180";
    const GIY: &str = "5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3";
    /// RFC 5903 §8.1: the responder's private scalar `r`.
    const R: &str = "c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53";
    /// RFC 5903 §8.1: the x-coordinate of the shared point.
    const GIRX: &str = "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de";

    fn bytes32(hex: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    fn rfc_pair(scalar: &str) -> KeyPair {
        KeyPair::from_private_scalar(&bytes32(scalar)).expect("a valid scalar")
    }

    #[test]
    fn the_rfc_5903_keys_give_its_public_point_and_shared_secret() {
        let initiator = rfc_pair(I);
        let responder = rfc_pair(R);
        let expected =
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#, b64(&bytes32(GIX)), b64(&bytes32(GIY)));
        assert_eq!(initiator.public_jwk(), expected);
        let shared = initiator.shared_secret(&responder.public);
        assert_eq!(*shared, bytes32(GIRX));
        assert_eq!(*responder.shared_secret(&initiator.public), bytes32(GIRX));
    }

    #[test]
    fn jwks_round_trip_in_canonical_form() {
        let pair = KeyPair::generate();
        let public = pair.public_jwk();
        let private = pair.private_jwk();
        assert!(public.starts_with(r#"{"kty":"EC","crv":"P-256","x":""#) && !public.contains(' '));
        assert_eq!(public.len(), 126, "two 43-character coordinates");
        let without_brace = &public[..public.len() - 1];
        assert!(private.starts_with(&format!(r#"{without_brace},"d":""#)), "d comes last");
        assert_eq!(private.len(), 126 + 50);
        let restored = KeyPair::from_private_jwk(&private).expect("its own private JWK");
        assert_eq!(restored.public_jwk(), public);
        assert_eq!(restored.private_jwk().as_str(), private.as_str());
        assert_eq!(parse_public_jwk(&public).expect("its own public JWK"), pair.public);
    }

    #[test]
    fn parsing_ignores_order_whitespace_and_extra_members() {
        let pair = rfc_pair(I);
        let (x, y) = coordinates(&pair.public);
        let variant = format!(
            concat!(
                "{{ \"y\": \"{y}\",\n \"key_ops\": [], \"ext\": true, \"x\": \"{x}\",",
                " \"crv\": \"P-256\", \"kty\": \"EC\", \"kid\": 1 }}"
            ),
            x = x,
            y = y
        );
        assert_eq!(fingerprint(&variant), Ok(pair.fingerprint()));
        let repeated = format!(r#"{{"kty":"EC","crv":"P-256","x":"AAAA","x":"{x}","y":"{y}"}}"#);
        assert_eq!(fingerprint(&repeated), Ok(pair.fingerprint()));
    }

    #[test]
    fn the_fingerprint_is_the_hash_of_the_uncompressed_point() {
        let pair = rfc_pair(I);
        let mut point = vec![0x04];
        point.extend(bytes32(GIX));
        point.extend(bytes32(GIY));
        let digest = Sha256::digest(&point);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let grouped: Vec<&str> = (0..8).map(|i| &hex[4 * i..4 * i + 4]).collect();
        assert_eq!(pair.fingerprint(), grouped.join(" "));
        assert_eq!(fingerprint(&pair.public_jwk()), Ok(pair.fingerprint()));
        assert_eq!(pair.fingerprint().len(), 39);
    }

    #[test]
    fn malformed_public_jwks_are_invalid_keys() {
        let pair = rfc_pair(I);
        let (x, y) = coordinates(&pair.public);
        let other = coordinates(&rfc_pair(R).public).1;
        let jwk =
            |kty: &str, crv: &str, x: &str, y: &str| format!(r#"{{"kty":"{kty}","crv":"{crv}","x":"{x}","y":"{y}"}}"#);
        for bad in [
            String::new(),
            "null".to_owned(),
            "[]".to_owned(),
            format!(r#"["EC","P-256","{x}","{y}"]"#),
            "{}".to_owned(),
            format!(r#""{x}""#),
            jwk("RSA", "P-256", &x, &y),
            jwk("EC", "P-384", &x, &y),
            jwk("ec", "P-256", &x, &y),
            jwk("EC", "P-256", &x, &other),
            jwk("EC", "P-256", &x[1..], &y),
            jwk("EC", "P-256", &format!("{x}A"), &y),
            jwk("EC", "P-256", &format!("{x}="), &y),
            jwk("EC", "P-256", &x.replace(|c: char| c.is_ascii_alphabetic(), "/"), &y),
            jwk("EC", "P-256", &b64(&[0; 32]), &b64(&[0; 32])),
            jwk("EC", "P-256", &b64(&[0xff; 32]), &y),
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}"}}"#),
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":null}}"#),
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":1}}"#),
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}""#),
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}"}} x"#),
        ] {
            assert!(matches!(fingerprint(&bad), Err(E2eError::InvalidKey(_))), "{bad}: {:?}", fingerprint(&bad));
        }
    }

    #[test]
    fn malformed_private_keys_are_invalid_keys() {
        let pair = rfc_pair(I);
        let other = rfc_pair(R);
        let (x, y) = coordinates(&pair.public);
        let d = b64(&bytes32(I));
        let private = |d: &str| format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}","d":"{d}"}}"#);
        assert!(KeyPair::from_private_jwk(&private(&d)).is_ok());
        for bad in [
            pair.public_jwk(),
            private(&b64(&bytes32(R))),
            private(&d[1..]),
            private(&format!("{d}A")),
            private(&b64(&[0; 32])),
            private(&b64(&[0xff; 32])),
            private(&b64(&[0x01; 31])),
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}","d":7}}"#),
            other.private_jwk().replace(&coordinates(&other.public).0, &x),
        ] {
            assert!(matches!(KeyPair::from_private_jwk(&bad), Err(E2eError::InvalidKey(_))), "{bad}");
        }
        for scalar in [[0u8; 32], [0xff; 32]] {
            assert!(matches!(KeyPair::from_private_scalar(&scalar), Err(E2eError::InvalidKey(_))));
        }
    }

    #[test]
    fn debug_shows_no_private_key() {
        let pair = rfc_pair(I);
        let debug = format!("{pair:?}");
        assert!(debug.contains(&pair.fingerprint()), "{debug}");
        assert!(!debug.contains(&b64(&bytes32(I))) && !debug.to_lowercase().contains("c88f"), "{debug}");
    }
}
