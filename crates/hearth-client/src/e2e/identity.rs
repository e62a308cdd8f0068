//! Identities (docs/e2e.md): each account's long-term signing and agreement key pairs, their
//! public form published with the user, their private form wrapped under the wrap key, the
//! fingerprint clients pin and the safety number people compare.

use std::fmt;

use p256::PublicKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::envelope::{self, NONCE_LEN};
use super::key_pair::{point, public_jwk_of, public_key};
use super::private_key::{unwrap_under, wrap_under};
use super::{E2eError, KeyPair, WrapKey};

/// An account's identity: an ECDSA P-256 signing key pair and an ECDH P-256 agreement key
/// pair. `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct Identity {
    signing: KeyPair,
    agreement: KeyPair,
}

/// The public form of an identity: what every user object carries as `identity_key`.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityKey {
    signing: PublicKey,
    agreement: PublicKey,
}

/// The private form of an identity as the server stores it (`identity_private_key`): each
/// private JWK wrapped under the wrap key for its user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedIdentity {
    /// The signing key pair's private JWK, wrapped.
    pub signing: String,
    /// The agreement key pair's private JWK, wrapped.
    pub agreement: String,
}

impl Identity {
    /// A fresh identity from the operating system's random generator.
    pub fn generate() -> Self {
        Self { signing: KeyPair::generate(), agreement: KeyPair::generate() }
    }

    /// The identity of two private scalars (32 big-endian bytes each): for test vectors.
    pub fn from_private_scalars(signing: &[u8; 32], agreement: &[u8; 32]) -> Result<Self, E2eError> {
        Ok(Self {
            signing: KeyPair::from_private_scalar(signing)?,
            agreement: KeyPair::from_private_scalar(agreement)?,
        })
    }

    /// The public form, to publish and to pin.
    pub fn public(&self) -> IdentityKey {
        IdentityKey { signing: *self.signing.public_key(), agreement: *self.agreement.public_key() }
    }

    /// The signing key pair (its private JWK is what [`Identity::wrap`] stores).
    pub fn signing(&self) -> &KeyPair {
        &self.signing
    }

    /// The agreement key pair: messages to a member without a conversation key use it.
    pub fn agreement(&self) -> &KeyPair {
        &self.agreement
    }

    /// Both private keys wrapped under `wrap_key` for `user_id`, with random IVs.
    pub fn wrap(&self, wrap_key: &WrapKey, user_id: Uuid) -> WrappedIdentity {
        self.wrap_with_ivs(wrap_key, user_id, envelope::random_nonce(), envelope::random_nonce())
    }

    /// [`Identity::wrap`] with given IVs, for test vectors only: reusing an IV under the same
    /// wrap key breaks AES-GCM.
    #[doc(hidden)]
    pub fn wrap_with_ivs(
        &self,
        wrap_key: &WrapKey,
        user_id: Uuid,
        signing_iv: [u8; NONCE_LEN],
        agreement_iv: [u8; NONCE_LEN],
    ) -> WrappedIdentity {
        WrappedIdentity {
            signing: wrap_under(wrap_key, &signing_context(user_id), &self.signing, signing_iv),
            agreement: wrap_under(wrap_key, &agreement_context(user_id), &self.agreement, agreement_iv),
        }
    }

    /// Opens a wrapped identity of `user_id`. `published` is the identity key the server
    /// shows for the user; it must be this identity's, or the server (or whoever replaced it)
    /// would have others encrypt to keys the user cannot open.
    pub fn unwrap(
        wrap_key: &WrapKey,
        user_id: Uuid,
        wrapped: &WrappedIdentity,
        published: &IdentityKey,
    ) -> Result<Self, E2eError> {
        let identity = Self {
            signing: unwrap_under(wrap_key, &signing_context(user_id), &wrapped.signing)?,
            agreement: unwrap_under(wrap_key, &agreement_context(user_id), &wrapped.agreement)?,
        };
        if identity.public() != *published {
            return Err(E2eError::InvalidKey("the published identity key is not the wrapped identity's"));
        }
        Ok(identity)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("fingerprint", &self.public().fingerprint()).finish_non_exhaustive()
    }
}

fn signing_context(user_id: Uuid) -> String {
    format!("hearth/identity-signing|{user_id}")
}

fn agreement_context(user_id: Uuid) -> String {
    format!("hearth/identity-agreement|{user_id}")
}

impl IdentityKey {
    /// Parses an identity key's JSON text: an object whose `signing` and `agreement` members
    /// are P-256 public JWKs (extra members ignored).
    pub fn parse(text: &str) -> Result<Self, E2eError> {
        let value: Value =
            serde_json::from_str(text).map_err(|_| E2eError::InvalidKey("the identity key is not a JSON object"))?;
        Self::from_json(&value)
    }

    /// [`IdentityKey::parse`] of an already parsed JSON value (as a user object carries it).
    pub fn from_json(value: &Value) -> Result<Self, E2eError> {
        let Value::Object(members) = value else {
            return Err(E2eError::InvalidKey("the identity key is not a JSON object"));
        };
        let jwk = |name: &str| match members.get(name) {
            Some(Value::Object(jwk)) => public_key(jwk),
            _ => Err(E2eError::InvalidKey("the identity key lacks a signing or agreement JWK")),
        };
        Ok(Self { signing: jwk("signing")?, agreement: jwk("agreement")? })
    }

    /// The canonical text: `{"signing":<public JWK>,"agreement":<public JWK>}`.
    pub fn to_text(&self) -> String {
        format!(r#"{{"signing":{},"agreement":{}}}"#, public_jwk_of(&self.signing), public_jwk_of(&self.agreement))
    }

    /// The canonical text as a JSON value, to send.
    pub fn to_json(&self) -> Value {
        serde_json::from_str(&self.to_text()).expect("the canonical identity key is JSON")
    }

    /// What clients pin: `SHA-256("hearth/identity|" ‖ signing point ‖ agreement point)`, in
    /// 64 lowercase hex digits.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"hearth/identity|")
            .chain_update(point(&self.signing))
            .chain_update(point(&self.agreement))
            .finalize();
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The signing public key: conversation keys are checked against it.
    pub(crate) fn signing_key(&self) -> &PublicKey {
        &self.signing
    }

    /// The agreement public key: messages to and from identities use it.
    pub(crate) fn agreement_key(&self) -> &PublicKey {
        &self.agreement
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdentityKey").field(&self.fingerprint()).finish()
    }
}

/// The safety number two people compare to check each other's identity (docs/e2e.md): 60
/// digits in 12 groups of 5, the same whichever side computes it, changing when either
/// identity changes.
///
/// ```
/// use hearth_client::e2e::{Identity, safety_number};
/// use uuid::Uuid;
///
/// let (ada, bob) = (Identity::generate().public(), Identity::generate().public());
/// let (ada_id, bob_id) = (Uuid::now_v7(), Uuid::now_v7());
/// let number = safety_number(ada_id, &ada, bob_id, &bob);
/// assert_eq!(number, safety_number(bob_id, &bob, ada_id, &ada));
/// assert_eq!(number.len(), 60 + 11);
/// ```
pub fn safety_number(a_id: Uuid, a: &IdentityKey, b_id: Uuid, b: &IdentityKey) -> String {
    let (first, second) =
        if a_id.to_string() <= b_id.to_string() { ((a_id, a), (b_id, b)) } else { ((b_id, b), (a_id, a)) };
    let groups: Vec<String> = [first, second].into_iter().flat_map(|(id, key)| safety_digits(id, key)).collect();
    groups.join(" ")
}

/// One party's six 5-digit groups.
fn safety_digits(user_id: Uuid, key: &IdentityKey) -> [String; 6] {
    let digest = Sha256::new()
        .chain_update(format!("hearth/safety-number|{user_id}|"))
        .chain_update(point(&key.signing))
        .chain_update(point(&key.agreement))
        .finalize();
    std::array::from_fn(|group| {
        let value = digest[5 * group..5 * group + 5].iter().fold(0u64, |value, byte| value << 8 | u64::from(*byte));
        format!("{:05}", value % 100_000)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap_key() -> WrapKey {
        WrapKey::from_bytes([5; 32])
    }

    #[test]
    fn a_wrapped_identity_unwraps_for_its_user_with_its_published_key() {
        let identity = Identity::generate();
        let user = Uuid::now_v7();
        let wrapped = identity.wrap(&wrap_key(), user);
        let unwrapped = Identity::unwrap(&wrap_key(), user, &wrapped, &identity.public()).expect("unwrap");
        assert_eq!(unwrapped.public(), identity.public());
        assert_eq!(
            Identity::unwrap(&wrap_key(), Uuid::now_v7(), &wrapped, &identity.public()).map(|_| ()),
            Err(E2eError::Decrypt),
            "another user's",
        );
        let swapped = WrappedIdentity { signing: wrapped.agreement.clone(), agreement: wrapped.signing.clone() };
        assert_eq!(
            Identity::unwrap(&wrap_key(), user, &swapped, &identity.public()).map(|_| ()),
            Err(E2eError::Decrypt)
        );
        let other = Identity::generate().public();
        assert!(matches!(Identity::unwrap(&wrap_key(), user, &wrapped, &other), Err(E2eError::InvalidKey(_))));
    }

    #[test]
    fn the_identity_key_round_trips_in_canonical_form() {
        let key = Identity::generate().public();
        let text = key.to_text();
        assert!(text.starts_with(r#"{"signing":{"kty":"EC","crv":"P-256","x":""#), "{text}");
        assert!(text.contains(r#"},"agreement":{"kty":"EC""#), "{text}");
        assert_eq!(IdentityKey::parse(&text), Ok(key.clone()));
        assert_eq!(IdentityKey::from_json(&key.to_json()), Ok(key.clone()));
        assert_eq!(key.fingerprint().len(), 64);
        for bad in ["", "{}", "[]", r#"{"signing":{}}"#, &text.replace("agreement", "agreed")] {
            assert!(matches!(IdentityKey::parse(bad), Err(E2eError::InvalidKey(_))), "{bad}");
        }
    }

    #[test]
    fn the_safety_number_is_symmetric_and_changes_with_either_identity() {
        let (ada, bob) = (Identity::generate().public(), Identity::generate().public());
        let (ada_id, bob_id) = (Uuid::now_v7(), Uuid::now_v7());
        let number = safety_number(ada_id, &ada, bob_id, &bob);
        assert_eq!(number, safety_number(bob_id, &bob, ada_id, &ada));
        let groups: Vec<&str> = number.split(' ').collect();
        assert_eq!(groups.len(), 12);
        assert!(groups.iter().all(|group| group.len() == 5 && group.bytes().all(|b| b.is_ascii_digit())));
        let new_bob = Identity::generate().public();
        assert_ne!(number, safety_number(ada_id, &ada, bob_id, &new_bob));
        assert_eq!(
            number[..35],
            safety_number(ada_id, &ada, bob_id, &new_bob)[..35],
            "ada sorts first: her half stays"
        );
    }

    #[test]
    fn debug_shows_only_the_fingerprint() {
        let identity = Identity::generate();
        let debug = format!("{identity:?}");
        assert!(debug.contains(&identity.public().fingerprint()), "{debug}");
        assert!(!debug.contains(identity.signing().private_jwk().as_str()));
    }
}
