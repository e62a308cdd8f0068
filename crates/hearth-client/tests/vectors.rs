//! The shared test vectors, `clients/e2e-vectors.json`: every value is recomputed (derived
//! secrets, public and private JWKs, fingerprints, wrapped keys and message contents with
//! their fixed IVs and nonces) and every ciphertext is decrypted, and every rejected value is
//! refused with the expected error; v2's identities, safety numbers, signed keys, messages and
//! delivery checks (docs/e2e.md) likewise. The web client's `clients/phoenix-js/test/e2e.test.mjs`
//! checks the same file. Regenerate it with `cargo run -p hearth-client --example e2e_vectors`.

use std::collections::HashMap;
use std::path::Path;

use hearth_client::E2eError;
use hearth_client::e2e::{
    self, Delivered, DeliveryChecker, Identity, IdentityKey, KeyPair, NONCE_LEN, Plaintext, WrapKey, WrappedIdentity,
};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Vectors {
    description: String,
    kdf: Vec<Kdf>,
    key_pairs: Vec<Pair>,
    wrapped_private_keys: Vec<Wrapped>,
    messages: Vec<Message>,
    accepted_public_jwks: Vec<AcceptedJwk>,
    rejected_public_jwks: Vec<RejectedJwk>,
    rejected_wrapped_private_keys: Vec<RejectedWrapped>,
    rejected_messages: Vec<RejectedMessage>,
    identities: Vec<IdentityVector>,
    safety_numbers: Vec<SafetyNumber>,
    signed_conversation_keys: Vec<SignedKey>,
    rejected_signed_conversation_keys: Vec<RejectedSignedKey>,
    messages_v2: Vec<MessageV2>,
    messages_to_identity: Vec<MessageV2>,
    rejected_messages_v2: Vec<RejectedMessageV2>,
    delivery_checks: Vec<DeliveryCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    email: String,
    password: String,
    auth_secret: String,
    wrap_key_hex: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pair {
    name: String,
    id: Uuid,
    private_scalar_hex: String,
    public_jwk: String,
    private_jwk: String,
    fingerprint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapped {
    key_pair: String,
    kdf: usize,
    conversation_id: Uuid,
    iv_hex: String,
    wrapped: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    sender: String,
    recipient: String,
    conversation_id: Uuid,
    nonce_hex: String,
    plaintext: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptedJwk {
    why: String,
    jwk: String,
    fingerprint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectedJwk {
    why: String,
    jwk: String,
    error: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectedWrapped {
    why: String,
    kdf: usize,
    conversation_id: Uuid,
    wrapped: String,
    error: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectedMessage {
    why: String,
    recipient: String,
    recipient_id: Uuid,
    sender: String,
    sender_id: Uuid,
    conversation_id: Uuid,
    content: String,
    error: String,
}

fn vectors() -> Vectors {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/e2e-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn unhex<const N: usize>(hex: &str) -> [u8; N] {
    assert_eq!(hex.len(), 2 * N, "{hex} is not {N} bytes");
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or_else(|e| panic!("{hex}: {e}"));
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The error names the vectors use, shared with the JavaScript implementation.
fn code(error: &E2eError) -> &'static str {
    match error {
        E2eError::InvalidKey(_) => "invalid_key",
        E2eError::Malformed(_) => "malformed",
        E2eError::Decrypt => "decrypt",
        E2eError::NotText => "not_text",
        E2eError::Signature => "signature",
        _ => "other",
    }
}

/// The vector key pairs by name, with their ids.
fn key_pairs(vectors: &Vectors) -> HashMap<String, (KeyPair, Uuid)> {
    vectors
        .key_pairs
        .iter()
        .map(|pair| {
            let keys = KeyPair::from_private_scalar(&unhex(&pair.private_scalar_hex)).expect("a valid scalar");
            (pair.name.clone(), (keys, pair.id))
        })
        .collect()
}

#[test]
fn derived_secrets_match() {
    let vectors = vectors();
    assert!(vectors.description.contains("docs/ARCHITECTURE.md"), "the vectors say what they are");
    assert!(vectors.kdf.len() >= 2);
    for case in &vectors.kdf {
        let derived = e2e::derive(&case.email, &case.password);
        assert_eq!(derived.auth_secret, case.auth_secret, "{}", case.email);
        assert_eq!(hex(derived.wrap_key.expose_secret()), case.wrap_key_hex, "{}", case.email);
    }
}

#[test]
fn key_pairs_give_their_jwks_and_fingerprints() {
    let vectors = vectors();
    assert_eq!(vectors.key_pairs.len(), 2);
    for pair in &vectors.key_pairs {
        let keys = KeyPair::from_private_scalar(&unhex(&pair.private_scalar_hex)).expect("a valid scalar");
        assert_eq!(keys.public_jwk(), pair.public_jwk, "{}", pair.name);
        assert_eq!(keys.private_jwk().as_str(), pair.private_jwk, "{}", pair.name);
        assert_eq!(keys.fingerprint(), pair.fingerprint, "{}", pair.name);
        assert_eq!(e2e::fingerprint(&pair.public_jwk).as_ref(), Ok(&pair.fingerprint), "{}", pair.name);
        let restored = KeyPair::from_private_jwk(&pair.private_jwk).expect("the private JWK");
        assert_eq!(restored.public_jwk(), pair.public_jwk, "{}", pair.name);
        assert_eq!(pair.id.to_string().len(), 36);
    }
}

#[test]
fn wrapped_private_keys_match_and_unwrap() {
    let vectors = vectors();
    let pairs = key_pairs(&vectors);
    assert!(!vectors.wrapped_private_keys.is_empty());
    for case in &vectors.wrapped_private_keys {
        let (keys, _) = &pairs[&case.key_pair];
        let wrap_key = WrapKey::from_bytes(unhex(&vectors.kdf[case.kdf].wrap_key_hex));
        let iv: [u8; NONCE_LEN] = unhex(&case.iv_hex);
        assert_eq!(e2e::wrap_private_key_with_iv(&wrap_key, case.conversation_id, keys, iv), case.wrapped);
        let unwrapped = e2e::unwrap_private_key(&wrap_key, case.conversation_id, &case.wrapped).expect("unwrap");
        assert_eq!(unwrapped.private_jwk().as_str(), keys.private_jwk().as_str(), "{}", case.key_pair);
    }
}

#[test]
fn messages_match_and_decrypt() {
    let vectors = vectors();
    let pairs = key_pairs(&vectors);
    assert!(vectors.messages.iter().any(|m| m.sender == m.recipient));
    assert!(vectors.messages.iter().any(|m| m.sender != m.recipient));
    for message in &vectors.messages {
        let (sender, sender_id) = &pairs[&message.sender];
        let (recipient, recipient_id) = &pairs[&message.recipient];
        let content = e2e::encrypt_with_nonce(
            sender,
            *sender_id,
            &recipient.public_jwk(),
            *recipient_id,
            message.conversation_id,
            &message.plaintext,
            unhex(&message.nonce_hex),
        )
        .expect("encrypt");
        assert_eq!(content, message.content, "{:?}", message.plaintext);
        let plaintext = e2e::decrypt(
            recipient,
            *recipient_id,
            &sender.public_jwk(),
            *sender_id,
            message.conversation_id,
            &message.content,
        );
        assert_eq!(plaintext.as_ref(), Ok(&message.plaintext));
    }
}

#[test]
fn accepted_public_jwks_give_their_fingerprints() {
    let vectors = vectors();
    for case in &vectors.accepted_public_jwks {
        assert_eq!(e2e::fingerprint(&case.jwk).as_ref(), Ok(&case.fingerprint), "{}", case.why);
    }
}

#[test]
fn rejected_public_jwks_are_refused() {
    let vectors = vectors();
    let pairs = key_pairs(&vectors);
    let (ada, ada_id) = &pairs["ada"];
    for case in &vectors.rejected_public_jwks {
        let refused = |result: Result<String, E2eError>| match result {
            Ok(value) => panic!("{}: accepted, giving {value:?}", case.why),
            Err(error) => assert_eq!(code(&error), case.error, "{}: {error}", case.why),
        };
        refused(e2e::fingerprint(&case.jwk));
        let conversation = Uuid::nil();
        refused(e2e::encrypt(ada, *ada_id, &case.jwk, *ada_id, conversation, "x"));
        refused(e2e::decrypt(
            ada,
            *ada_id,
            &case.jwk,
            *ada_id,
            conversation,
            "v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        ));
    }
}

#[test]
fn rejected_wrapped_private_keys_are_refused() {
    let vectors = vectors();
    for case in &vectors.rejected_wrapped_private_keys {
        let wrap_key = WrapKey::from_bytes(unhex(&vectors.kdf[case.kdf].wrap_key_hex));
        match e2e::unwrap_private_key(&wrap_key, case.conversation_id, &case.wrapped) {
            Ok(keys) => panic!("{}: unwrapped {keys:?}", case.why),
            Err(error) => assert_eq!(code(&error), case.error, "{}: {error}", case.why),
        }
    }
}

#[test]
fn rejected_messages_are_refused() {
    let vectors = vectors();
    let pairs = key_pairs(&vectors);
    for case in &vectors.rejected_messages {
        let (recipient, _) = &pairs[&case.recipient];
        let (sender, _) = &pairs[&case.sender];
        let result = e2e::decrypt(
            recipient,
            case.recipient_id,
            &sender.public_jwk(),
            case.sender_id,
            case.conversation_id,
            &case.content,
        );
        match result {
            Ok(plaintext) => panic!("{}: decrypted to {plaintext:?}", case.why),
            Err(error) => assert_eq!(code(&error), case.error, "{}: {error}", case.why),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityVector {
    name: String,
    id: Uuid,
    signing_scalar_hex: String,
    agreement_scalar_hex: String,
    public_key: String,
    fingerprint: String,
    kdf: usize,
    signing_iv_hex: String,
    agreement_iv_hex: String,
    wrapped: WrappedIdentity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SafetyNumber {
    a: String,
    b: String,
    safety_number: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedKey {
    identity: String,
    conversation_id: Uuid,
    key_pair: String,
    signed_public_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectedSignedKey {
    why: String,
    identity: String,
    user_id: Uuid,
    conversation_id: Uuid,
    signed_public_key: String,
    error: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageV2 {
    sender: String,
    recipient: String,
    conversation_id: Uuid,
    nonce_hex: String,
    message: Value,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectedMessageV2 {
    why: String,
    mode: String,
    recipient: String,
    recipient_id: Uuid,
    sender: String,
    sender_id: Uuid,
    conversation_id: Uuid,
    content: String,
    error: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryCheck {
    why: String,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    delivered: Value,
    message: Value,
    flags: Vec<String>,
}

/// The vector identities by name, with their ids.
fn identities(vectors: &Vectors) -> HashMap<String, (Identity, Uuid)> {
    vectors
        .identities
        .iter()
        .map(|case| {
            let identity =
                Identity::from_private_scalars(&unhex(&case.signing_scalar_hex), &unhex(&case.agreement_scalar_hex))
                    .expect("valid scalars");
            (case.name.clone(), (identity, case.id))
        })
        .collect()
}

/// A vector's message object as a plaintext.
fn plaintext(value: &Value) -> Plaintext {
    let id = |member: &Value| member.as_str().expect("an id").parse().expect("an id");
    Plaintext {
        id: id(&value["id"]),
        sent_at: value["sent_at"].as_u64().expect("sent_at"),
        edit_of: (!value["edit_of"].is_null()).then(|| id(&value["edit_of"])),
        stream: value["stream"].as_str().expect("stream").parse().expect("a stream"),
        seq: value["seq"].as_u64().expect("seq"),
        text: value["text"].as_str().expect("text").to_owned(),
    }
}

#[test]
fn identities_give_their_keys_fingerprints_and_wrapped_forms() {
    let vectors = vectors();
    let identities = identities(&vectors);
    assert!(vectors.identities.len() >= 2);
    for case in &vectors.identities {
        let (identity, _) = &identities[&case.name];
        let public = identity.public();
        assert_eq!(public.to_text(), case.public_key, "{}", case.name);
        assert_eq!(IdentityKey::parse(&case.public_key).as_ref(), Ok(&public));
        assert_eq!(public.fingerprint(), case.fingerprint, "{}", case.name);
        let wrap_key = WrapKey::from_bytes(unhex(&vectors.kdf[case.kdf].wrap_key_hex));
        let wrapped =
            identity.wrap_with_ivs(&wrap_key, case.id, unhex(&case.signing_iv_hex), unhex(&case.agreement_iv_hex));
        assert_eq!(wrapped, case.wrapped, "{}", case.name);
        let unwrapped = Identity::unwrap(&wrap_key, case.id, &case.wrapped, &public).expect("unwrap");
        assert_eq!(unwrapped.public(), public);
    }
}

#[test]
fn safety_numbers_match_from_both_sides() {
    let vectors = vectors();
    let identities = identities(&vectors);
    assert!(!vectors.safety_numbers.is_empty());
    for case in &vectors.safety_numbers {
        let ((a, a_id), (b, b_id)) = (&identities[&case.a], &identities[&case.b]);
        assert_eq!(e2e::safety_number(*a_id, &a.public(), *b_id, &b.public()), case.safety_number);
        assert_eq!(e2e::safety_number(*b_id, &b.public(), *a_id, &a.public()), case.safety_number);
    }
}

#[test]
fn signed_conversation_keys_match_and_verify() {
    let vectors = vectors();
    let (identities, pairs) = (identities(&vectors), key_pairs(&vectors));
    assert!(!vectors.signed_conversation_keys.is_empty());
    for case in &vectors.signed_conversation_keys {
        let (identity, user) = &identities[&case.identity];
        let (keys, _) = &pairs[&case.key_pair];
        let signed =
            e2e::sign_conversation_key(identity, *user, case.conversation_id, &keys.public_jwk()).expect("sign");
        assert_eq!(signed, case.signed_public_key, "RFC 6979 signatures are deterministic");
        let verified =
            e2e::verify_conversation_key(&identity.public(), *user, case.conversation_id, &case.signed_public_key);
        assert_eq!(verified, Ok(keys.public_jwk()));
    }
}

#[test]
fn rejected_signed_conversation_keys_are_refused() {
    let vectors = vectors();
    let identities = identities(&vectors);
    assert!(vectors.rejected_signed_conversation_keys.len() >= 5);
    for case in &vectors.rejected_signed_conversation_keys {
        let (identity, _) = &identities[&case.identity];
        match e2e::verify_conversation_key(
            &identity.public(),
            case.user_id,
            case.conversation_id,
            &case.signed_public_key,
        ) {
            Ok(key) => panic!("{}: accepted {key}", case.why),
            Err(error) => assert_eq!(code(&error), case.error, "{}: {error}", case.why),
        }
    }
}

#[test]
fn v2_messages_match_and_decrypt() {
    let vectors = vectors();
    let pairs = key_pairs(&vectors);
    assert!(vectors.messages_v2.iter().any(|case| !case.message["edit_of"].is_null()));
    for case in &vectors.messages_v2 {
        let ((sender, sender_id), (recipient, recipient_id)) = (&pairs[&case.sender], &pairs[&case.recipient]);
        let message = plaintext(&case.message);
        let content = e2e::encrypt_message_with_nonce(
            sender,
            *sender_id,
            &recipient.public_jwk(),
            *recipient_id,
            case.conversation_id,
            &message,
            unhex(&case.nonce_hex),
        )
        .expect("encrypt");
        assert_eq!(content, case.content, "{:?}", message.text);
        let opened = e2e::decrypt_message(
            recipient,
            *recipient_id,
            &sender.public_jwk(),
            *sender_id,
            case.conversation_id,
            &content,
        );
        assert_eq!(opened, Ok(message));
    }
}

#[test]
fn messages_to_identities_match_and_decrypt() {
    let vectors = vectors();
    let identities = identities(&vectors);
    assert!(!vectors.messages_to_identity.is_empty());
    for case in &vectors.messages_to_identity {
        let ((sender, sender_id), (recipient, recipient_id)) =
            (&identities[&case.sender], &identities[&case.recipient]);
        let message = plaintext(&case.message);
        let content = e2e::encrypt_to_identity_with_nonce(
            sender,
            *sender_id,
            &recipient.public(),
            *recipient_id,
            case.conversation_id,
            &message,
            unhex(&case.nonce_hex),
        )
        .expect("encrypt");
        assert_eq!(content, case.content);
        let opened = e2e::decrypt_from_identity(
            recipient,
            *recipient_id,
            &sender.public(),
            *sender_id,
            case.conversation_id,
            &content,
        );
        assert_eq!(opened, Ok(message));
    }
}

#[test]
fn rejected_v2_messages_are_refused() {
    let vectors = vectors();
    let (identities, pairs) = (identities(&vectors), key_pairs(&vectors));
    assert!(vectors.rejected_messages_v2.iter().any(|case| case.mode == "v2i"));
    for case in &vectors.rejected_messages_v2 {
        let result = match case.mode.as_str() {
            "v2" => e2e::decrypt_message(
                &pairs[&case.recipient].0,
                case.recipient_id,
                &pairs[&case.sender].0.public_jwk(),
                case.sender_id,
                case.conversation_id,
                &case.content,
            ),
            "v2i" => e2e::decrypt_from_identity(
                &identities[&case.recipient].0,
                case.recipient_id,
                &identities[&case.sender].0.public(),
                case.sender_id,
                case.conversation_id,
                &case.content,
            ),
            other => panic!("{}: unknown mode {other}", case.why),
        };
        match result {
            Ok(message) => panic!("{}: decrypted to {message:?}", case.why),
            Err(error) => assert_eq!(code(&error), case.error, "{}: {error}", case.why),
        }
    }
}

#[test]
fn delivery_checks_flag_what_the_server_changed() {
    let vectors = vectors();
    assert!(vectors.delivery_checks.len() >= 4);
    for case in &vectors.delivery_checks {
        let mut checker = DeliveryChecker::new();
        for (i, step) in case.steps.iter().enumerate() {
            let time = |name: &str| {
                chrono::DateTime::parse_from_rfc3339(step.delivered[name].as_str().expect("a time"))
                    .expect("RFC 3339")
                    .to_utc()
            };
            let delivered = Delivered {
                message_group: step.delivered["message_group"].as_str().expect("an id").parse().expect("an id"),
                sender: step.delivered["sender"].as_str().expect("an id").parse().expect("an id"),
                inserted_at: time("inserted_at"),
                updated_at: time("updated_at"),
            };
            let flags: Vec<&str> =
                checker.check(&delivered, &plaintext(&step.message)).into_iter().map(|flag| flag.as_str()).collect();
            assert_eq!(flags, step.flags, "{}, step {i}", case.why);
        }
    }
}
