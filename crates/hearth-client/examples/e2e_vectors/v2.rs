//! The v2 sections of the vectors (docs/e2e.md): identities, safety numbers, signed
//! conversation keys, messages to keys and to identities, and delivery checks. Rejected
//! values the public API cannot make (a header without `seq`, bad padding) are sealed here
//! directly with `aes-gcm`, `hkdf` and `p256`, from the scheme's description.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hearth_client::e2e::{self, Derived, Identity, KeyPair, Plaintext, Stream};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::{
    ADA, ADA_SCALAR, BOB, CONVERSATION, EMOJI, GREETING, OTHER_CONVERSATION, SCRIPT, b64, bump, hex, member, nonce,
    unhex,
};

#[derive(Serialize)]
pub struct Vectors {
    identities: Vec<IdentityVector>,
    safety_numbers: Vec<SafetyNumber>,
    signed_conversation_keys: Vec<SignedKey>,
    rejected_signed_conversation_keys: Vec<RejectedSignedKey>,
    messages_v2: Vec<MessageV2>,
    messages_to_identity: Vec<MessageV2>,
    rejected_messages_v2: Vec<RejectedMessageV2>,
    delivery_checks: Vec<DeliveryCheck>,
}

#[derive(Serialize)]
struct IdentityVector {
    name: &'static str,
    id: Uuid,
    signing_scalar_hex: String,
    agreement_scalar_hex: String,
    public_key: String,
    fingerprint: String,
    kdf: usize,
    signing_iv_hex: String,
    agreement_iv_hex: String,
    wrapped: e2e::WrappedIdentity,
}

#[derive(Serialize)]
struct SafetyNumber {
    a: &'static str,
    b: &'static str,
    safety_number: String,
}

#[derive(Serialize)]
struct SignedKey {
    identity: &'static str,
    conversation_id: Uuid,
    key_pair: &'static str,
    signed_public_key: String,
}

#[derive(Serialize)]
struct RejectedSignedKey {
    why: &'static str,
    identity: &'static str,
    user_id: Uuid,
    conversation_id: Uuid,
    signed_public_key: String,
    error: &'static str,
}

#[derive(Serialize)]
struct MessageV2 {
    sender: &'static str,
    recipient: &'static str,
    conversation_id: Uuid,
    nonce_hex: String,
    message: Value,
    content: String,
}

#[derive(Serialize)]
struct RejectedMessageV2 {
    why: &'static str,
    mode: &'static str,
    recipient: &'static str,
    recipient_id: Uuid,
    sender: &'static str,
    sender_id: Uuid,
    conversation_id: Uuid,
    content: String,
    error: &'static str,
}

#[derive(Serialize)]
struct DeliveryCheck {
    why: &'static str,
    steps: Vec<Step>,
}

#[derive(Serialize)]
struct Step {
    delivered: Value,
    message: Value,
    flags: Vec<&'static str>,
}

/// An identity scalar: SHA-256 of a label (far below the group order).
fn scalar(label: &str) -> [u8; 32] {
    Sha256::digest(label.as_bytes()).into()
}

const STREAM: [u8; 8] = [0x5e, 0xa1, 0x0c, 0x0f, 0xfe, 0xe0, 0x00, 0x01];
const SENT_AT: u64 = 1_765_000_000_000;

fn plaintext(id: u128, seq: u64, edit_of: Option<u128>, text: &str) -> Plaintext {
    Plaintext {
        id: Uuid::from_u128(id),
        sent_at: SENT_AT + seq * 1000,
        edit_of: edit_of.map(Uuid::from_u128),
        stream: Stream::from_bytes(STREAM),
        seq,
        text: text.to_owned(),
    }
}

fn as_json(message: &Plaintext) -> Value {
    serde_json::to_value(message).expect("a plaintext serialises")
}

/// A v2 content from Ada to Bob sealed directly: `ECDH`, `HKDF(salt = C, info = "hearth/<tag>|S|R")`,
/// AES-256-GCM with the associated data `"hearth/<tag>|C|S|R"`.
fn seal_directly(tag: &str, recipient: &KeyPair, n: u8, plaintext: &[u8]) -> String {
    let secret = p256::SecretKey::from_bytes(&unhex::<32>(ADA_SCALAR).into()).expect("scalar");
    let jwk: Value = serde_json::from_str(&recipient.public_jwk()).expect("jwk");
    let coordinate = |name: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk[name].as_str().expect("string")).expect("b64")
    };
    let point = [vec![4], coordinate("x"), coordinate("y")].concat();
    let public = p256::PublicKey::from_sec1_bytes(&point).expect("point");
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine());
    let mut key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(CONVERSATION.to_string().as_bytes()), shared.raw_secret_bytes())
        .expand(format!("hearth/{tag}|{ADA}|{BOB}").as_bytes(), &mut key)
        .expect("expand");
    let aad = format!("hearth/{tag}|{CONVERSATION}|{ADA}|{BOB}");
    let sealed = Aes256Gcm::new((&key).into())
        .encrypt(Nonce::from_slice(&nonce(n)), Payload { msg: plaintext, aad: aad.as_bytes() })
        .expect("encrypt");
    format!("{tag}.{}.{}", b64(&nonce(n)), b64(&sealed))
}

/// A header's JSON with 0x80 and zeros to 256 bytes.
fn padded(json: &str) -> Vec<u8> {
    let mut bytes = json.as_bytes().to_vec();
    bytes.push(0x80);
    bytes.resize(256, 0);
    bytes
}

pub fn vectors(derived: &[Derived], ada_key: &KeyPair, bob_key: &KeyPair) -> Vectors {
    let ada = Identity::from_private_scalars(&scalar("ada signing"), &scalar("ada agreement")).expect("scalars");
    let bob = Identity::from_private_scalars(&scalar("bob signing"), &scalar("bob agreement")).expect("scalars");
    let identity_vector = |name, id, identity: &Identity, kdf: usize, n: u8| {
        let (signing_iv, agreement_iv) = (nonce(n), nonce(n + 1));
        IdentityVector {
            name,
            id,
            signing_scalar_hex: hex(&scalar(&format!("{name} signing"))),
            agreement_scalar_hex: hex(&scalar(&format!("{name} agreement"))),
            public_key: identity.public().to_text(),
            fingerprint: identity.public().fingerprint(),
            kdf,
            signing_iv_hex: hex(&signing_iv),
            agreement_iv_hex: hex(&agreement_iv),
            wrapped: identity.wrap_with_ivs(&derived[kdf].wrap_key, id, signing_iv, agreement_iv),
        }
    };
    let identities = vec![identity_vector("ada", ADA, &ada, 0, 20), identity_vector("bob", BOB, &bob, 1, 22)];
    let safety_numbers = vec![SafetyNumber {
        a: "ada",
        b: "bob",
        safety_number: e2e::safety_number(ADA, &ada.public(), BOB, &bob.public()),
    }];

    let sign = |identity: &Identity, user, conversation, key: &KeyPair| {
        e2e::sign_conversation_key(identity, user, conversation, &key.public_jwk()).expect("sign")
    };
    let ada_signed = sign(&ada, ADA, CONVERSATION, ada_key);
    let signed_conversation_keys = vec![
        SignedKey {
            identity: "ada",
            conversation_id: CONVERSATION,
            key_pair: "ada",
            signed_public_key: ada_signed.clone(),
        },
        SignedKey {
            identity: "bob",
            conversation_id: CONVERSATION,
            key_pair: "bob",
            signed_public_key: sign(&bob, BOB, CONVERSATION, bob_key),
        },
    ];
    let signature = member(&ada_signed, "signature");
    let with_signature =
        |jwk: &str, signature: &str| format!(r#"{},"signature":"{signature}"}}"#, &jwk[..jwk.len() - 1]);
    let rejected = |why, user_id, conversation_id, signed_public_key: String, error| RejectedSignedKey {
        why,
        identity: "ada",
        user_id,
        conversation_id,
        signed_public_key,
        error,
    };
    let mut raw = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&signature).expect("b64")
    };
    raw[0] ^= 0x80;
    let rejected_signed_conversation_keys = vec![
        rejected("another conversation", ADA, OTHER_CONVERSATION, ada_signed.clone(), "signature"),
        rejected("another user", BOB, CONVERSATION, ada_signed.clone(), "signature"),
        rejected("no signature", ADA, CONVERSATION, ada_key.public_jwk(), "signature"),
        rejected(
            "the signature moved to another key",
            ADA,
            CONVERSATION,
            with_signature(&bob_key.public_jwk(), &signature),
            "signature",
        ),
        rejected(
            "a changed signature",
            ADA,
            CONVERSATION,
            with_signature(&ada_key.public_jwk(), &b64(&raw)),
            "signature",
        ),
        rejected(
            "a signature of 63 bytes",
            ADA,
            CONVERSATION,
            with_signature(&ada_key.public_jwk(), &b64(&raw[..63])),
            "signature",
        ),
        rejected(
            "a signature with base64 padding",
            ADA,
            CONVERSATION,
            with_signature(&ada_key.public_jwk(), &format!("{signature}==")),
            "signature",
        ),
        rejected(
            "a signature that is a number",
            ADA,
            CONVERSATION,
            ada_signed.replace(&format!("\"{signature}\""), "1"),
            "signature",
        ),
        rejected(
            "a signature of another identity",
            ADA,
            CONVERSATION,
            sign(&bob, ADA, CONVERSATION, ada_key),
            "signature",
        ),
        rejected(
            "the key is not on the curve",
            ADA,
            CONVERSATION,
            ada_signed.replace(&member(&ada_signed, "y"), &member(&bob_key.public_jwk(), "y")),
            "invalid_key",
        ),
    ];

    let key_of = |name: &str| if name == "ada" { (ada_key, ADA) } else { (bob_key, BOB) };
    let identity_of = |name: &str| if name == "ada" { (&ada, ADA) } else { (&bob, BOB) };
    let to_key = |sender, recipient, message: Plaintext, n| {
        let ((sender_key, sender_id), (recipient_key, recipient_id)) = (key_of(sender), key_of(recipient));
        let content = e2e::encrypt_message_with_nonce(
            sender_key,
            sender_id,
            &recipient_key.public_jwk(),
            recipient_id,
            CONVERSATION,
            &message,
            nonce(n),
        )
        .expect("encrypt");
        MessageV2 {
            sender,
            recipient,
            conversation_id: CONVERSATION,
            nonce_hex: hex(&nonce(n)),
            message: as_json(&message),
            content,
        }
    };
    let controls = "tab\t, newline\n, quote \", backslash \\, NUL \u{0}, DEL \u{7f}, U+2028 \u{2028}";
    let messages_v2 = vec![
        to_key("ada", "bob", plaintext(0x0193_6f3e_9000_7000_8000_0000_0000_0001, 0, None, GREETING), 30),
        to_key("ada", "ada", plaintext(0x0193_6f3e_9000_7000_8000_0000_0000_0001, 0, None, GREETING), 31),
        to_key("bob", "ada", plaintext(0x0193_6f3e_9000_7000_8000_0000_0000_0002, 1, None, EMOJI), 32),
        to_key("ada", "bob", plaintext(0x0193_6f3e_9000_7000_8000_0000_0000_0003, 2, None, controls), 33),
        to_key(
            "ada",
            "bob",
            plaintext(
                0x0193_6f3e_9000_7000_8000_0000_0000_0004,
                3,
                Some(0x0193_6f3e_9000_7000_8000_0000_0000_0001),
                SCRIPT,
            ),
            34,
        ),
        to_key("bob", "bob", plaintext(0x0193_6f3e_9000_7000_8000_0000_0000_0005, 4, None, ""), 35),
        to_key(
            "ada",
            "bob",
            plaintext(0x0193_6f3e_9000_7000_8000_0000_0000_0006, 5, None, &"long text ".repeat(30)),
            36,
        ),
    ];
    let to_identity = |sender, recipient, message: Plaintext, n| {
        let ((sender_identity, sender_id), (recipient_identity, recipient_id)) =
            (identity_of(sender), identity_of(recipient));
        let content = e2e::encrypt_to_identity_with_nonce(
            sender_identity,
            sender_id,
            &recipient_identity.public(),
            recipient_id,
            CONVERSATION,
            &message,
            nonce(n),
        )
        .expect("encrypt");
        MessageV2 {
            sender,
            recipient,
            conversation_id: CONVERSATION,
            nonce_hex: hex(&nonce(n)),
            message: as_json(&message),
            content,
        }
    };
    let messages_to_identity = vec![
        to_identity("ada", "bob", plaintext(0x0193_6f3e_9000_7000_8000_0000_0000_0011, 6, None, GREETING), 40),
        to_identity("bob", "ada", plaintext(0x0193_6f3e_9000_7000_8000_0000_0000_0012, 7, None, EMOJI), 41),
    ];

    let to_bob = messages_v2[0].content.clone();
    let to_bob_identity = messages_to_identity[0].content.clone();
    let (head, body) = to_bob.rsplit_once('.').expect("three parts");
    let rejected = |why, mode, content: String, error| RejectedMessageV2 {
        why,
        mode,
        recipient: "bob",
        recipient_id: BOB,
        sender: "ada",
        sender_id: ADA,
        conversation_id: CONVERSATION,
        content,
        error,
    };
    let id = Uuid::from_u128(0x0193_6f3e_9000_7000_8000_0000_0000_0001);
    let header =
        |members: &str| padded(&format!(r#"{{"id":"{id}","stream":"5ea10c0ffee00001","text":"t",{members}}}"#));
    let sealed = |json: Vec<u8>, n| seal_directly("v2", bob_key, n, &json);
    let rejected_messages_v2 = vec![
        rejected("tagged v1", "v2", to_bob.replacen("v2.", "v1.", 1), "malformed"),
        rejected("tagged v2i", "v2", to_bob.replacen("v2.", "v2i.", 1), "malformed"),
        rejected("a changed ciphertext", "v2", format!("{head}.{}", bump(body, 0)), "decrypt"),
        rejected("no padding", "v2", sealed(format!(r#"{{"id":"{id}"}}"#).into_bytes(), 50), "malformed"),
        rejected("padding without 0x80", "v2", sealed([br#"{}"#.as_slice(), &[0x81, 0, 0]].concat(), 51), "malformed"),
        rejected("no seq", "v2", sealed(header(r#""sent_at":1,"edit_of":null"#), 52), "malformed"),
        rejected("seq is 1.5", "v2", sealed(header(r#""sent_at":1,"edit_of":null,"seq":1.5"#), 53), "malformed"),
        rejected("seq is negative", "v2", sealed(header(r#""sent_at":1,"edit_of":null,"seq":-1"#), 54), "malformed"),
        rejected(
            "sent_at beyond 2^53 - 1",
            "v2",
            sealed(header(r#""sent_at":9007199254740992,"edit_of":null,"seq":0"#), 55),
            "malformed",
        ),
        rejected(
            "edit_of in uppercase",
            "v2",
            sealed(header(&format!(r#""sent_at":1,"edit_of":"{}","seq":0"#, id.to_string().to_uppercase())), 56),
            "malformed",
        ),
        rejected(
            "stream in uppercase",
            "v2",
            sealed(header(r#""sent_at":1,"edit_of":null,"seq":0,"stream":"5EA10C0FFEE00001""#), 57),
            "malformed",
        ),
        rejected("an array, not an object", "v2", sealed(padded("[]"), 58), "malformed"),
        rejected(
            "not UTF-8",
            "v2",
            sealed([br#"{"text":"caf"#.as_slice(), &[0xe9], br#""}"#, &[0x80]].concat(), 59),
            "not_text",
        ),
        rejected("tagged v2", "v2i", to_bob_identity.replacen("v2i.", "v2.", 1), "malformed"),
        RejectedMessageV2 {
            recipient: "ada",
            recipient_id: ADA,
            ..rejected("to the identity of another recipient", "v2i", to_bob_identity.clone(), "decrypt")
        },
        RejectedMessageV2 {
            conversation_id: OTHER_CONVERSATION,
            ..rejected("another conversation", "v2", to_bob.clone(), "decrypt")
        },
        RejectedMessageV2 {
            recipient_id: ADA,
            sender_id: BOB,
            ..rejected("sender and recipient ids swapped", "v2i", to_bob_identity, "decrypt")
        },
    ];

    let delivery_checks = delivery_checks();
    Vectors {
        identities,
        safety_numbers,
        signed_conversation_keys,
        rejected_signed_conversation_keys,
        messages_v2,
        messages_to_identity,
        rejected_messages_v2,
        delivery_checks,
    }
}

/// The server's view of a message: times as RFC 3339 text, in the forms servers write.
fn delivered(group: u128, inserted_at: &str, updated_at: &str) -> Value {
    json!({ "message_group": Uuid::from_u128(group), "sender": ADA, "inserted_at": inserted_at, "updated_at": updated_at })
}

fn step(delivered: Value, message: &Plaintext, flags: &[&'static str]) -> Step {
    Step { delivered, message: as_json(message), flags: flags.to_vec() }
}

fn delivery_checks() -> Vec<DeliveryCheck> {
    const G1: u128 = 0x0193_6f3e_9000_7000_8000_0000_0000_0101;
    const G2: u128 = 0x0193_6f3e_9000_7000_8000_0000_0000_0102;
    const G3: u128 = 0x0193_6f3e_9000_7000_8000_0000_0000_0103;
    // SENT_AT is 2025-12-06T05:46:40Z; seq n was sent n seconds later.
    let first = plaintext(G1, 0, None, "Yes, I approve the transfer of 10 EUR");
    let second = plaintext(G2, 1, None, "second");
    let third = plaintext(G3, 2, None, "third");
    let mut edit = plaintext(0x0193_6f3e_9000_7000_8000_0000_0000_0104, 3, Some(G1), "Yes, 12 EUR");
    edit.sent_at = SENT_AT + 60_000;
    vec![
        DeliveryCheck {
            why: "genuine messages and an edit, with microseconds and an offset",
            steps: vec![
                step(delivered(G1, "2025-12-06T05:46:40.250123Z", "2025-12-06T05:46:40.250123Z"), &first, &[]),
                step(delivered(G2, "2025-12-06T06:46:41.5+01:00", "2025-12-06T06:46:41.5+01:00"), &second, &[]),
                step(delivered(G1, "2025-12-06T05:46:40.250Z", "2025-12-06T05:47:40.9Z"), &edit, &[]),
            ],
        },
        DeliveryCheck {
            why: "a ciphertext copied into a later message a day later",
            steps: vec![
                step(delivered(G1, "2025-12-06T05:46:40.250Z", "2025-12-06T05:46:40.250Z"), &first, &[]),
                step(
                    delivered(G3, "2025-12-07T05:46:40.250Z", "2025-12-07T05:46:40.250Z"),
                    &first,
                    &["substituted", "redated", "reordered"],
                ),
            ],
        },
        DeliveryCheck {
            why: "re-dated by more than 15 minutes, then exactly 15 minutes off",
            steps: vec![
                step(delivered(G1, "2025-12-06T06:01:40.001Z", "2025-12-06T06:01:40.001Z"), &first, &["redated"]),
                step(delivered(G2, "2025-12-06T06:01:41Z", "2025-12-06T06:01:41Z"), &second, &[]),
            ],
        },
        DeliveryCheck {
            why: "swapped order",
            steps: vec![
                step(delivered(G3, "2025-12-06T05:46:42Z", "2025-12-06T05:46:42Z"), &third, &[]),
                step(delivered(G2, "2025-12-06T05:46:41Z", "2025-12-06T05:46:41Z"), &second, &["reordered"]),
            ],
        },
        DeliveryCheck {
            why: "an edit passed off as another message, an original shown as edited, an edit shown as unedited",
            steps: vec![
                step(delivered(G2, "2025-12-06T05:46:41Z", "2025-12-06T05:47:40Z"), &edit, &["substituted"]),
                step(delivered(G2, "2025-12-06T05:46:41Z", "2025-12-06T05:50:00Z"), &second, &["substituted"]),
                step(delivered(G1, "2025-12-06T05:47:40Z", "2025-12-06T05:47:40Z"), &edit, &["substituted"]),
            ],
        },
    ]
}
