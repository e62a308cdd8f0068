//! Conversation keys signed by their owner's identity (docs/e2e.md): a member's public key
//! is accepted only with a signature that binds it to the member and the conversation.

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::Value;
use uuid::Uuid;

use super::envelope::{b64, unb64};
use super::key_pair::{jwk_members, public_jwk_of, public_key};
use super::{E2eError, Identity, IdentityKey};

/// The member of the signed public JWK that carries the signature.
const SIGNATURE_MEMBER: &str = "signature";

/// The statement an identity signs: `"hearth/conversation-key|" + user + "|" + conversation +
/// "|" + canonical public JWK`.
fn statement(user_id: Uuid, conversation_id: Uuid, canonical_jwk: &str) -> String {
    format!("hearth/conversation-key|{user_id}|{conversation_id}|{canonical_jwk}")
}

/// Signs the conversation public key `public_jwk` of `user_id` in `conversation_id` with the
/// user's identity: the `public_key` to publish, the canonical JWK with a last `signature`
/// member (ECDSA P-256/SHA-256, `r‖s` in base64url).
///
/// ```
/// use hearth_client::e2e::{Identity, KeyPair, sign_conversation_key, verify_conversation_key};
/// use uuid::Uuid;
///
/// let (identity, key, user, conversation) = (Identity::generate(), KeyPair::generate(), Uuid::now_v7(), Uuid::now_v7());
/// let signed = sign_conversation_key(&identity, user, conversation, &key.public_jwk())?;
/// assert_eq!(verify_conversation_key(&identity.public(), user, conversation, &signed)?, key.public_jwk());
/// # Ok::<(), hearth_client::E2eError>(())
/// ```
pub fn sign_conversation_key(
    identity: &Identity,
    user_id: Uuid,
    conversation_id: Uuid,
    public_jwk: &str,
) -> Result<String, E2eError> {
    let canonical = public_jwk_of(&public_key(&jwk_members(public_jwk)?)?);
    let signature: Signature =
        identity.signing().signing_key().sign(statement(user_id, conversation_id, &canonical).as_bytes());
    let without_brace = &canonical[..canonical.len() - 1];
    Ok(format!(r#"{without_brace},"{SIGNATURE_MEMBER}":"{}"}}"#, b64(&signature.to_bytes())))
}

/// Checks a published conversation key of `user_id` in `conversation_id` against the user's
/// identity key; gives the canonical public JWK (without the signature) to encrypt to.
///
/// A key without a string `signature` of 64 bytes, or whose signature does not verify for
/// this user, conversation and key, is [`E2eError::Signature`]; a malformed JWK is
/// [`E2eError::InvalidKey`].
pub fn verify_conversation_key(
    owner: &IdentityKey,
    user_id: Uuid,
    conversation_id: Uuid,
    signed_public_key: &str,
) -> Result<String, E2eError> {
    let members = jwk_members(signed_public_key)?;
    let canonical = public_jwk_of(&public_key(&members)?);
    let Some(Value::String(encoded)) = members.get(SIGNATURE_MEMBER) else {
        return Err(E2eError::Signature);
    };
    let signature = unb64(encoded).and_then(|bytes| Signature::from_slice(&bytes).ok()).ok_or(E2eError::Signature)?;
    VerifyingKey::from(owner.signing_key())
        .verify(statement(user_id, conversation_id, &canonical).as_bytes(), &signature)
        .map_err(|_| E2eError::Signature)?;
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::KeyPair;

    struct Setup {
        identity: Identity,
        key: KeyPair,
        user: Uuid,
        conversation: Uuid,
        signed: String,
    }

    fn setup() -> Setup {
        let (identity, key, user, conversation) =
            (Identity::generate(), KeyPair::generate(), Uuid::now_v7(), Uuid::now_v7());
        let signed = sign_conversation_key(&identity, user, conversation, &key.public_jwk()).expect("sign");
        Setup { identity, key, user, conversation, signed }
    }

    #[test]
    fn a_signed_key_verifies_for_its_owner_user_and_conversation_only() {
        let Setup { identity, key, user, conversation, signed } = setup();
        let owner = identity.public();
        assert!(signed.starts_with(&key.public_jwk()[..key.public_jwk().len() - 1]), "{signed}");
        assert_eq!(verify_conversation_key(&owner, user, conversation, &signed), Ok(key.public_jwk()));
        let refused = |result: Result<String, E2eError>| assert_eq!(result, Err(E2eError::Signature));
        refused(verify_conversation_key(&owner, Uuid::now_v7(), conversation, &signed));
        refused(verify_conversation_key(&owner, user, Uuid::now_v7(), &signed));
        refused(verify_conversation_key(&Identity::generate().public(), user, conversation, &signed));
        refused(verify_conversation_key(&owner, user, conversation, &key.public_jwk()));
        let other_key = KeyPair::generate().public_jwk();
        let (_, signature) = signed.rsplit_once(r#""signature":"#).expect("a signature");
        refused(verify_conversation_key(
            &owner,
            user,
            conversation,
            &format!(r#"{},"signature":{signature}"#, &other_key[..other_key.len() - 1]),
        ));
    }

    #[test]
    fn malformed_signatures_are_refused_and_member_order_does_not_matter() {
        let Setup { identity, key, user, conversation, signed } = setup();
        let owner = identity.public();
        let members = jwk_members(&signed).expect("JSON");
        let reordered = serde_json::json!({
            "signature": members["signature"], "y": members["y"], "x": members["x"], "crv": "P-256", "kty": "EC", "ext": true,
        });
        assert_eq!(verify_conversation_key(&owner, user, conversation, &reordered.to_string()), Ok(key.public_jwk()));
        let signature = members["signature"].as_str().expect("a string");
        assert_eq!(signature.len(), 86);
        let mut bytes = unb64(signature).expect("base64url");
        bytes[10] ^= 1;
        for bad in [
            serde_json::json!(1),
            serde_json::json!(null),
            serde_json::json!(""),
            serde_json::json!(&signature[1..]),
            serde_json::json!(format!("{signature}A")),
            serde_json::json!(b64(&bytes)),
            serde_json::json!(b64(&[0; 64])),
        ] {
            let mut tampered = members.clone();
            tampered.insert("signature".to_owned(), bad.clone());
            let text = Value::Object(tampered).to_string();
            assert_eq!(verify_conversation_key(&owner, user, conversation, &text), Err(E2eError::Signature), "{bad}");
        }
        assert!(matches!(verify_conversation_key(&owner, user, conversation, "{}"), Err(E2eError::InvalidKey(_))));
    }
}
