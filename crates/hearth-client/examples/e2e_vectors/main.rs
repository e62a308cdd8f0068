//! Writes the shared end-to-end encryption test vectors, `clients/e2e-vectors.json`, from this
//! crate's implementation (the web client's tests and `tests/vectors.rs` check every value):
//!
//! ```sh
//! cargo run -p hearth-client --example e2e_vectors > clients/e2e-vectors.json
//! ```
//!
//! The outputs are deterministic: fixed keys, IVs and nonces. The few rejected values that
//! the public API cannot produce (a wrapped JWK without `d`, a message that is not UTF-8)
//! are sealed here directly with `aes-gcm`, `hkdf` and `p256`.

mod v2;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_client::e2e::{self, Derived, KeyPair};
use serde::Serialize;
use sha2::Sha256;
use uuid::Uuid;

#[derive(Serialize)]
struct Vectors {
    description: &'static str,
    kdf: Vec<Kdf>,
    key_pairs: Vec<Pair>,
    wrapped_private_keys: Vec<Wrapped>,
    messages: Vec<Message>,
    accepted_public_jwks: Vec<AcceptedJwk>,
    rejected_public_jwks: Vec<RejectedJwk>,
    rejected_wrapped_private_keys: Vec<RejectedWrapped>,
    rejected_messages: Vec<RejectedMessage>,
    #[serde(flatten)]
    v2: v2::Vectors,
}

#[derive(Serialize)]
struct Kdf {
    email: &'static str,
    password: &'static str,
    auth_secret: String,
    wrap_key_hex: String,
}

#[derive(Serialize)]
struct Pair {
    name: &'static str,
    id: Uuid,
    private_scalar_hex: &'static str,
    public_jwk: String,
    private_jwk: String,
    fingerprint: String,
}

#[derive(Serialize)]
struct Wrapped {
    key_pair: &'static str,
    kdf: usize,
    conversation_id: Uuid,
    iv_hex: String,
    wrapped: String,
}

#[derive(Serialize)]
struct Message {
    sender: &'static str,
    recipient: &'static str,
    conversation_id: Uuid,
    nonce_hex: String,
    plaintext: &'static str,
    content: String,
}

#[derive(Serialize)]
struct AcceptedJwk {
    why: &'static str,
    jwk: String,
    fingerprint: String,
}

#[derive(Serialize)]
struct RejectedJwk {
    why: &'static str,
    jwk: String,
    error: &'static str,
}

#[derive(Serialize)]
struct RejectedWrapped {
    why: &'static str,
    kdf: usize,
    conversation_id: Uuid,
    wrapped: String,
    error: &'static str,
}

#[derive(Serialize)]
struct RejectedMessage {
    why: &'static str,
    recipient: &'static str,
    recipient_id: Uuid,
    sender: &'static str,
    sender_id: Uuid,
    conversation_id: Uuid,
    content: String,
    error: &'static str,
}

const DESCRIPTION: &str = "Test vectors of hearth's end-to-end encryption (summed up in \
    docs/ARCHITECTURE.md; v1 is written down in crates/hearth-client/src/e2e/mod.rs, v2's \
    identities, signed keys, messages and delivery checks in docs/e2e.md). Written by `cargo run \
    -p hearth-client --example e2e_vectors`; checked value by value by \
    crates/hearth-client/tests/vectors.rs and clients/phoenix-js/test/e2e.test.mjs. Key pairs are \
    RFC 5903 §8.1's P-256 test keys; identities' scalars are SHA-256 of their names. Hex is \
    lowercase; errors are invalid_key, malformed, decrypt, not_text, signature.";

const KDF: [(&str, &str); 3] = [
    ("Zoë.Ünal@Example.COM", "correct horse battery staple"),
    ("bob@example.org", "pässwörd 🔑 пароль"),
    ("İLKER.ΟΔΥΣΣΕΥΣ@Örnek.TR", "hunter2"),
];

/// RFC 5903 §8.1: the initiator's and the responder's private scalars.
const ADA_SCALAR: &str = "c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433";
const BOB_SCALAR: &str = "c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53";

const CONVERSATION: Uuid = Uuid::from_u128(0x0193_6f3e_8a2b_7c4d_9e5f_0a1b_2c3d_4e5f);
const OTHER_CONVERSATION: Uuid = Uuid::from_u128(0x0193_6f3e_8a2b_7c4d_9e5f_0a1b_2c3d_4e60);
const ADA: Uuid = Uuid::from_u128(0x0193_6f3e_1a2b_7c3d_8e4f_0000_0000_ada0);
const BOB: Uuid = Uuid::from_u128(0x0193_6f3e_1a2b_7c3d_8e4f_0000_0000_0b0b);

const GREETING: &str = "Grüße aus Köln, Zoë! Ça va? — ✓ 你好, мир";
const EMOJI: &str = "🔐👋🏽 family: 👨‍👩‍👧‍👦";
const SCRIPT: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(hex: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

/// A string member of a JWK text.
fn member(jwk: &str, name: &str) -> String {
    let jwk: serde_json::Value = serde_json::from_str(jwk).expect("a JWK");
    jwk[name].as_str().expect("a string member").to_owned()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fixed nonce, different for every vector.
fn nonce(n: u8) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    for (i, byte) in nonce.iter_mut().enumerate() {
        *byte = n.wrapping_mul(16).wrapping_add(i as u8);
    }
    nonce
}

/// `v1.<nonce>.<ciphertext‖tag>` sealed directly with `aes-gcm`.
fn seal(key: &[u8; 32], nonce: [u8; 12], aad: &str, plaintext: &[u8]) -> String {
    let sealed = Aes256Gcm::new(key.into())
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: aad.as_bytes() })
        .expect("encrypt");
    format!("v1.{}.{}", b64(&nonce), b64(&sealed))
}

/// The message key of the scheme computed directly with `p256` and `hkdf`.
fn message_key(sender_scalar: &str, recipient: &KeyPair, sender_id: Uuid, recipient_id: Uuid) -> [u8; 32] {
    let secret = p256::SecretKey::from_bytes(&unhex::<32>(sender_scalar).into()).expect("scalar");
    let jwk: serde_json::Value = serde_json::from_str(&recipient.public_jwk()).expect("jwk");
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().expect("string")).expect("b64");
    let point = [vec![4], coordinate("x"), coordinate("y")].concat();
    let public = p256::PublicKey::from_sec1_bytes(&point).expect("point");
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine());
    let mut key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(CONVERSATION.to_string().as_bytes()), shared.raw_secret_bytes())
        .expand(format!("{sender_id}{recipient_id}").as_bytes(), &mut key)
        .expect("expand");
    key
}

/// `value` with the character at `index` (from the end when negative) replaced by the next
/// one of the base64url alphabet.
fn bump(value: &str, index: usize) -> String {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let at = ALPHABET.find(&value[index..index + 1]).expect("base64url");
    format!("{}{}{}", &value[..index], &ALPHABET[(at + 1) % 64..(at + 1) % 64 + 1], &value[index + 1..])
}

fn main() {
    let derived: Vec<Derived> = KDF.iter().map(|(email, password)| e2e::derive(email, password)).collect();
    let kdf = KDF
        .iter()
        .zip(&derived)
        .map(|(&(email, password), d)| Kdf {
            email,
            password,
            auth_secret: d.auth_secret.clone(),
            wrap_key_hex: hex(d.wrap_key.expose_secret()),
        })
        .collect();

    let ada = KeyPair::from_private_scalar(&unhex(ADA_SCALAR)).expect("RFC 5903 key");
    let bob = KeyPair::from_private_scalar(&unhex(BOB_SCALAR)).expect("RFC 5903 key");
    let pair = |name, id, private_scalar_hex, keys: &KeyPair| Pair {
        name,
        id,
        private_scalar_hex,
        public_jwk: keys.public_jwk(),
        private_jwk: keys.private_jwk().to_string(),
        fingerprint: keys.fingerprint(),
    };
    let key_pairs = vec![pair("ada", ADA, ADA_SCALAR, &ada), pair("bob", BOB, BOB_SCALAR, &bob)];

    let wrapped = |key_pair, keys: &KeyPair, kdf: usize, n| {
        let iv = nonce(n);
        Wrapped {
            key_pair,
            kdf,
            conversation_id: CONVERSATION,
            iv_hex: hex(&iv),
            wrapped: e2e::wrap_private_key_with_iv(&derived[kdf].wrap_key, CONVERSATION, keys, iv),
        }
    };
    let wrapped_private_keys = vec![wrapped("ada", &ada, 0, 1), wrapped("bob", &bob, 1, 2)];

    let keys_of = |name: &str| if name == "ada" { (&ada, ADA) } else { (&bob, BOB) };
    let message = |sender, recipient, plaintext, n| {
        let ((sender_keys, sender_id), (recipient_keys, recipient_id)) = (keys_of(sender), keys_of(recipient));
        let nonce = nonce(n);
        let content = e2e::encrypt_with_nonce(
            sender_keys,
            sender_id,
            &recipient_keys.public_jwk(),
            recipient_id,
            CONVERSATION,
            plaintext,
            nonce,
        )
        .expect("encrypt");
        Message { sender, recipient, conversation_id: CONVERSATION, nonce_hex: hex(&nonce), plaintext, content }
    };
    let messages = vec![
        message("ada", "bob", GREETING, 3),
        message("ada", "ada", GREETING, 4),
        message("bob", "ada", EMOJI, 5),
        message("bob", "bob", EMOJI, 6),
        message("ada", "bob", SCRIPT, 7),
        message("bob", "ada", "", 8),
    ];

    let (x, y) = (&member(&ada.public_jwk(), "x"), &member(&ada.public_jwk(), "y"));
    let bob_y = &member(&bob.public_jwk(), "y");
    let accepted_public_jwks = vec![
        AcceptedJwk {
            why: "members in another order, whitespace, extra members (as WebCrypto exports)",
            jwk: format!(
                concat!(
                    "{{\n  \"key_ops\": [],\n  \"ext\": true,\n",
                    "  \"y\": \"{y}\",\n  \"x\": \"{x}\",\n  \"crv\": \"P-256\",\n  \"kty\": \"EC\"\n}}"
                ),
                x = x,
                y = y
            ),
            fingerprint: ada.fingerprint(),
        },
        AcceptedJwk {
            why: "a repeated member counts with its last value",
            jwk: format!(r#"{{"kty":"EC","crv":"P-256","x":"AAAA","x":"{x}","y":"{y}"}}"#),
            fingerprint: ada.fingerprint(),
        },
    ];
    let rejected_jwk = |why, jwk: String| RejectedJwk { why, jwk, error: "invalid_key" };
    let canonical =
        |kty: &str, crv: &str, x: &str, y: &str| format!(r#"{{"kty":"{kty}","crv":"{crv}","x":"{x}","y":"{y}"}}"#);
    let rejected_public_jwks = vec![
        rejected_jwk("not JSON", "kty=EC".to_owned()),
        rejected_jwk("an empty string", String::new()),
        rejected_jwk("JSON null", "null".to_owned()),
        rejected_jwk("an array, not an object", format!(r#"["EC","P-256","{x}","{y}"]"#)),
        rejected_jwk("a JSON string", format!(r#""{x}""#)),
        rejected_jwk("trailing characters", format!("{} x", ada.public_jwk())),
        rejected_jwk("kty RSA", canonical("RSA", "P-256", x, y)),
        rejected_jwk("kty in lowercase", canonical("ec", "P-256", x, y)),
        rejected_jwk("crv P-384", canonical("EC", "P-384", x, y)),
        rejected_jwk("no y", format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}"}}"#)),
        rejected_jwk("y is a number", format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":1}}"#)),
        rejected_jwk("x is 31 bytes", canonical("EC", "P-256", &b64(&[1; 31]), y)),
        rejected_jwk("x is 33 bytes", canonical("EC", "P-256", &b64(&[1; 33]), y)),
        rejected_jwk("x with base64 padding", canonical("EC", "P-256", &format!("{x}="), y)),
        rejected_jwk(
            "x in standard base64, not base64url",
            canonical("EC", "P-256", "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/8", y),
        ),
        rejected_jwk("x with non-zero unused bits", canonical("EC", "P-256", &bump(x, 42), y)),
        rejected_jwk("the point is not on the curve", canonical("EC", "P-256", x, bob_y)),
        rejected_jwk("x and y zero", canonical("EC", "P-256", &b64(&[0; 32]), &b64(&[0; 32]))),
        rejected_jwk("x not below the field prime", canonical("EC", "P-256", &b64(&[0xff; 32]), y)),
    ];

    let wrapped_ada = &wrapped_private_keys[0].wrapped;
    let tag_flipped = bump(wrapped_ada, wrapped_ada.len() - 3);
    let wrap_key = derived[0].wrap_key.expose_secret();
    let aad = format!("hearth/private-key|{CONVERSATION}");
    let rejected_wrapped = |why, kdf, conversation_id, wrapped: String, error| RejectedWrapped {
        why,
        kdf,
        conversation_id,
        wrapped,
        error,
    };
    let ada_private = ada.private_jwk();
    let mismatched = ada_private.replace(&member(&ada_private, "d"), &member(&bob.private_jwk(), "d"));
    let rejected_wrapped_private_keys = vec![
        rejected_wrapped("another conversation", 0, OTHER_CONVERSATION, wrapped_ada.clone(), "decrypt"),
        rejected_wrapped("another account's wrap key", 1, CONVERSATION, wrapped_ada.clone(), "decrypt"),
        rejected_wrapped("a changed tag", 0, CONVERSATION, tag_flipped, "decrypt"),
        rejected_wrapped("version v2", 0, CONVERSATION, wrapped_ada.replacen("v1.", "v2.", 1), "malformed"),
        rejected_wrapped("an empty IV and ciphertext", 0, CONVERSATION, "v1..".to_owned(), "malformed"),
        rejected_wrapped(
            "a public JWK, no d",
            0,
            CONVERSATION,
            seal(wrap_key, nonce(9), &aad, ada.public_jwk().as_bytes()),
            "invalid_key",
        ),
        rejected_wrapped(
            "d is not the private key of x and y",
            0,
            CONVERSATION,
            seal(wrap_key, nonce(10), &aad, mismatched.as_bytes()),
            "invalid_key",
        ),
        rejected_wrapped("not JSON", 0, CONVERSATION, seal(wrap_key, nonce(11), &aad, b"private key"), "invalid_key"),
    ];

    let to_bob = &messages[0].content;
    let (head, body) = to_bob.rsplit_once('.').expect("three parts");
    let (_, nonce_part) = head.split_once('.').expect("a nonce");
    // The greeting seals to 16 + its length bytes; pick a body whose last character carries
    // unused bits to make a non-canonical encoding.
    assert_ne!(URL_SAFE_NO_PAD.decode(body).expect("b64").len() % 3, 0, "the body must end with unused bits");
    let non_canonical = format!("{head}.{}", bump(body, body.len() - 1));
    let not_text_key = message_key(ADA_SCALAR, &bob, ADA, BOB);
    let not_text = seal(&not_text_key, nonce(12), &format!("{CONVERSATION}{ADA}{BOB}"), b"caf\xe9 \xff");
    let rejected_message = |why, content: String, error| RejectedMessage {
        why,
        recipient: "bob",
        recipient_id: BOB,
        sender: "ada",
        sender_id: ADA,
        conversation_id: CONVERSATION,
        content,
        error,
    };
    let mut rejected_messages = vec![
        rejected_message("version v2", to_bob.replacen("v1.", "v2.", 1), "malformed"),
        rejected_message("no version", format!("{nonce_part}.{body}"), "malformed"),
        rejected_message("a fourth part", format!("{to_bob}."), "malformed"),
        rejected_message("the nonce is 11 bytes", format!("v1.{}.{body}", b64(&nonce(3)[..11])), "malformed"),
        rejected_message(
            "the nonce is 13 bytes",
            format!("v1.{}.{body}", b64(&[nonce(3).as_slice(), &[0]].concat())),
            "malformed",
        ),
        rejected_message(
            "standard base64 in the ciphertext",
            format!("{head}.{}", body.replace(['-', '_'], "+").replacen(|c: char| c.is_ascii_alphabetic(), "/", 1)),
            "malformed",
        ),
        rejected_message("base64 padding", format!("{to_bob}=="), "malformed"),
        rejected_message("whitespace", format!("{to_bob}\n"), "malformed"),
        rejected_message("non-zero unused bits at the end", non_canonical, "malformed"),
        rejected_message("shorter than a tag", format!("{head}.{}", b64(&[7; 15])), "malformed"),
        rejected_message("a changed ciphertext", format!("{head}.{}", bump(body, 0)), "decrypt"),
        rejected_message("a changed nonce", format!("v1.{}.{body}", b64(&nonce(4))), "decrypt"),
        rejected_message("not UTF-8 text", not_text, "not_text"),
    ];
    let mut context = |why, recipient, recipient_id, sender, sender_id, conversation_id, content: &String| {
        rejected_messages.push(RejectedMessage {
            why,
            recipient,
            recipient_id,
            sender,
            sender_id,
            conversation_id,
            content: content.clone(),
            error: "decrypt",
        })
    };
    context("another conversation", "bob", BOB, "ada", ADA, OTHER_CONVERSATION, to_bob);
    context("sender and recipient ids swapped", "bob", ADA, "ada", BOB, CONVERSATION, to_bob);
    context("another sender's key", "bob", BOB, "bob", ADA, CONVERSATION, to_bob);
    context("another sender's id", "bob", BOB, "ada", BOB, CONVERSATION, to_bob);
    context("another recipient's id", "bob", ADA, "ada", ADA, CONVERSATION, to_bob);
    context("the sender's own copy, read by the recipient", "bob", BOB, "ada", ADA, CONVERSATION, &messages[1].content);

    let vectors = Vectors {
        description: DESCRIPTION,
        kdf,
        key_pairs,
        wrapped_private_keys,
        messages,
        accepted_public_jwks,
        rejected_public_jwks,
        rejected_wrapped_private_keys,
        rejected_messages,
        v2: v2::vectors(&derived, &ada, &bob),
    };
    println!("{}", serde_json::to_string_pretty(&vectors).expect("serialize"));
}
