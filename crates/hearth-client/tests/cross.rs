//! Rust against JavaScript: the web client's `web/js/e2e.js`, run through
//! `clients/phoenix-js/lib/e2e-cli.mjs` (JSON lines over stdin/stdout) both by Node.js and
//! inside a page of Debian's Chromium (the browser's own WebCrypto), and this crate must agree
//! with random inputs, in both directions. Scheme v1 (`src/e2e/mod.rs`): each decrypts what the
//! other encrypts, unwraps what the other wraps, and both derive the same secrets. Scheme v2
//! (`docs/e2e.md`): identities wrapped on one side unwrap on the other, with the same
//! fingerprints and safety numbers; conversation keys signed on one side verify on the other
//! (and only for their user and conversation); v2 messages, to conversation keys and to
//! identities, decrypt to the same header and text, padded to the same bytes; and both
//! delivery checkers flag the same steps of a random conversation. A runtime that is missing
//! (`node`; `/usr/bin/chromium` or the npm packages) is skipped, saying so (CI has both); each
//! test names the runtimes it passed in.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, FixedOffset, SecondsFormat};
use hearth_client::e2e::{
    self, Delivered, DeliveryChecker, E2eError, Flag, Identity, IdentityKey, KeyPair, MAX_SAFE_INTEGER, NONCE_LEN,
    PADDING_BLOCK, Plaintext, REDATED_AFTER_MS, Stream, WrapKey, WrappedIdentity,
};
use p256::ecdsa::Signature;
use rand::Rng as _;
use rand::seq::SliceRandom as _;
use serde_json::{Value, json};
use uuid::Uuid;

/// How long one request may take (a key derivation takes about a second on a busy machine).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `node e2e-cli.mjs [--chromium]`, answering one JSON line per request line.
struct Node {
    /// "Node.js" or "Chromium", for failure messages.
    runtime: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Node {
    /// Every runtime that can run here: Node.js, then Chromium; each missing one is named.
    fn every() -> Vec<Self> {
        match Command::new("node").arg("--version").output() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("SKIPPED: the cross test runs web/js/e2e.js under Node.js, and `node` is not installed: {e}");
                return Vec::new();
            }
            Err(e) => panic!("`node --version` failed: {e}"),
            Ok(_) => {}
        }
        let mut runtimes = vec![Self::start("Node.js", &[])];
        let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/phoenix-js");
        if !Path::new("/usr/bin/chromium").exists() {
            eprintln!("SKIPPED in Chromium: /usr/bin/chromium is missing (apt-get install chromium)");
        } else if !clients.join("node_modules/playwright-core/package.json").is_file() {
            eprintln!("SKIPPED in Chromium: playwright-core is not installed (npm ci in {})", clients.display());
        } else {
            runtimes.push(Self::start("Chromium", &["--chromium"]));
        }
        runtimes
    }

    fn start(runtime: &'static str, args: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/phoenix-js/lib/e2e-cli.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("node {}: {e}", script.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { runtime, child, stdin, lines }
    }

    /// One request: the `ok` object, or the error's `code`.
    fn call(&mut self, op: &str, mut request: Value) -> Result<Value, String> {
        request["op"] = json!(op);
        writeln!(self.stdin, "{request}").expect("write to node");
        self.stdin.flush().expect("flush to node");
        let line = self
            .lines
            .recv_timeout(CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("{} gave no answer to {op} within {CALL_TIMEOUT:?}: {e}", self.runtime));
        let mut answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        match (answer.get_mut("ok").map(Value::take), answer.get("error")) {
            (Some(ok), _) => Ok(ok),
            (None, Some(error)) => Err(error["code"].as_str().unwrap_or("?").to_owned()),
            _ => panic!("an answer neither ok nor error: {line}"),
        }
    }

    /// A request that must succeed.
    fn ok(&mut self, op: &str, request: Value) -> Value {
        let runtime = self.runtime;
        self.call(op, request).unwrap_or_else(|code| panic!("{op} failed in JavaScript ({runtime}): {code}"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            eprintln!("{}: passed in {}", std::thread::current().name().unwrap_or("a cross test"), self.runtime);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(value: &Value, name: &str) -> String {
    value[name].as_str().unwrap_or_else(|| panic!("no string {name} in {value}")).to_owned()
}

/// Random text mixing ASCII, control characters, accents, other scripts, emoji (with modifiers)
/// and markup.
fn random_text(max_pieces: usize) -> String {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        "7",
        " ",
        ".",
        "@",
        "\"",
        "\\",
        "\n",
        "\t",
        "\r",
        "\u{8}",
        "\u{c}",
        "\u{1f}",
        "\u{7f}",
        "\u{2028}",
        "</",
        "é",
        "Ü",
        "ß",
        "İ",
        "Σ",
        "ж",
        "你",
        "✓",
        "🔐",
        "👋🏽",
        "👨‍👩‍👧",
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(2)>",
        "\u{feff}",
        "\u{0}",
    ];
    let mut rng = rand::thread_rng();
    let pieces = rng.gen_range(0..=max_pieces);
    (0..pieces).map(|_| *PIECES.choose(&mut rng).expect("pieces")).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random wrap key, and its hex for JavaScript.
fn random_wrap_key() -> (WrapKey, String) {
    let bytes: [u8; 32] = rand::random();
    (WrapKey::from_bytes(bytes), hex(&bytes))
}

/// The bytes of a base64url member of a JSON object text (a JWK's `d`, a signature).
fn b64_member(object: &str, name: &str) -> Vec<u8> {
    let value: Value = serde_json::from_str(object).unwrap_or_else(|e| panic!("{object}: {e}"));
    URL_SAFE_NO_PAD.decode(text(&value, name)).unwrap_or_else(|e| panic!("{name} of {object}: {e}"))
}

/// An identity made in JavaScript: its public form and its two private JWKs, as text.
struct JsIdentity {
    public_key: String,
    signing: String,
    agreement: String,
}

impl JsIdentity {
    /// A fresh identity from `identity_generate`, its fingerprint checked against Rust's.
    fn generate(node: &mut Node) -> Self {
        let made = node.ok("identity_generate", json!({}));
        let identity = Self {
            public_key: text(&made, "public_key"),
            signing: text(&made, "signing_private_jwk"),
            agreement: text(&made, "agreement_private_jwk"),
        };
        let fingerprint = identity.key().fingerprint();
        assert_eq!(
            text(&made, "fingerprint"),
            fingerprint,
            "{}: the fingerprint of {}",
            node.runtime,
            identity.public_key
        );
        identity
    }

    /// The public form, parsed by Rust (it must be canonical already).
    fn key(&self) -> IdentityKey {
        let key = IdentityKey::parse(&self.public_key).unwrap_or_else(|e| panic!("{}: {e}", self.public_key));
        assert_eq!(key.to_text(), self.public_key, "JavaScript's identity key is canonical");
        key
    }

    /// The same identity in Rust, from the private scalars.
    fn in_rust(&self) -> Identity {
        let scalar = |jwk: &str| -> [u8; 32] { b64_member(jwk, "d").try_into().expect("a 32-byte d") };
        let identity =
            Identity::from_private_scalars(&scalar(&self.signing), &scalar(&self.agreement)).expect("scalars");
        assert_eq!(identity.signing().private_jwk().as_str(), self.signing);
        assert_eq!(identity.agreement().private_jwk().as_str(), self.agreement);
        identity
    }
}

/// A count as a v2 header holds it: small, a time, near 2^53 − 1, or anything up to it.
fn random_count() -> u64 {
    let mut rng = rand::thread_rng();
    match rng.gen_range(0..4) {
        0 => rng.gen_range(0..10),
        1 => rng.gen_range(1_700_000_000_000..1_800_000_000_000),
        2 => MAX_SAFE_INTEGER - rng.gen_range(0..3),
        _ => rng.gen_range(0..=MAX_SAFE_INTEGER),
    }
}

/// A random v2 message: header and text.
fn random_message() -> Plaintext {
    Plaintext {
        id: Uuid::now_v7(),
        sent_at: random_count(),
        edit_of: rand::thread_rng().gen_bool(0.3).then(Uuid::now_v7),
        stream: Stream::random(),
        seq: random_count(),
        text: random_text(40),
    }
}

/// The message object JavaScript takes and gives.
fn message_json(message: &Plaintext) -> Value {
    serde_json::to_value(message).expect("a plaintext serialises")
}

/// The nonce and the length of the padded plaintext (ciphertext bytes − the 16-byte tag) of a
/// content `<tag>.<nonce>.<ciphertext‖tag>`.
fn nonce_and_padded_length(content: &str) -> ([u8; NONCE_LEN], usize) {
    let parts: Vec<&str> = content.split('.').collect();
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).unwrap_or_else(|e| panic!("{content}: {e}"));
    let [_, nonce, sealed] = parts[..] else { panic!("not a <tag>.<nonce>.<sealed> content: {content}") };
    (decode(nonce).try_into().expect("a 12-byte nonce"), decode(sealed).len() - 16)
}

/// Whether a signed conversation key's signature has its S in the upper half (which a
/// low-S-only verifier would refuse).
fn high_s(signed_public_key: &str) -> bool {
    let signature = Signature::from_slice(&b64_member(signed_public_key, "signature")).expect("a P-256 signature");
    signature.normalize_s().is_some()
}

/// A signed conversation key with its signature's S replaced by n − S: the same signature
/// in the other S half.
fn other_s_half(signed_public_key: &str) -> String {
    let signature = Signature::from_slice(&b64_member(signed_public_key, "signature")).expect("a P-256 signature");
    let (r, s) = signature.split_scalars();
    let flipped = Signature::from_scalars(r, -s).expect("a signature");
    let (unsigned, _) = signed_public_key.rsplit_once(r#","signature":"#).expect("a signature member");
    format!(r#"{unsigned},"signature":"{}"}}"#, URL_SAFE_NO_PAD.encode(flipped.to_bytes()))
}

#[test]
fn derive_agrees_for_a_random_email_and_password() {
    for mut node in Node::every() {
        let email = format!("{}.Ünal{}@Example.{}", random_text(6), rand::thread_rng().gen_range(0..1000), "ORG");
        let password = random_text(20);
        let derived = e2e::derive(&email, &password);
        let js = node.ok("derive", json!({"email": email, "password": password}));
        assert_eq!(text(&js, "auth_secret"), derived.auth_secret, "{email:?} {password:?}");
        assert_eq!(text(&js, "wrap_key_hex"), hex(derived.wrap_key.expose_secret()), "{email:?} {password:?}");
    }
}

#[test]
fn a_message_encrypted_in_javascript_decrypts_in_rust() {
    for mut node in Node::every() {
        let js_keys = node.ok("generate", json!({}));
        let (js_public, js_private) = (text(&js_keys, "public_jwk"), text(&js_keys, "private_jwk"));
        assert_eq!(e2e::fingerprint(&js_public).as_deref(), Ok(text(&js_keys, "fingerprint").as_str()));
        let rust = KeyPair::generate();
        let (js_id, rust_id, conversation) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..5 {
            let plaintext = random_text(40);
            let to_rust = node.ok(
                "encrypt",
                json!({"sender_private_jwk": js_private, "sender_id": js_id, "recipient_public_jwk": rust.public_jwk(),
                "recipient_id": rust_id, "conversation_id": conversation, "plaintext": plaintext}),
            );
            let content = text(&to_rust, "content");
            assert_eq!(e2e::decrypt(&rust, rust_id, &js_public, js_id, conversation, &content), Ok(plaintext.clone()));
            assert_eq!(
                e2e::decrypt(&rust, rust_id, &js_public, js_id, Uuid::new_v4(), &content),
                Err(hearth_client::E2eError::Decrypt)
            );
            // The JavaScript sender's copy to itself, read with its private key in Rust.
            let to_self = node.ok(
                "encrypt",
                json!({"sender_private_jwk": js_private, "sender_id": js_id, "recipient_public_jwk": js_public,
                "recipient_id": js_id, "conversation_id": conversation, "plaintext": plaintext}),
            );
            let js_pair = KeyPair::from_private_jwk(&js_private).expect("the JavaScript private JWK");
            assert_eq!(js_pair.public_jwk(), js_public);
            assert_eq!(
                e2e::decrypt(&js_pair, js_id, &js_public, js_id, conversation, &text(&to_self, "content")),
                Ok(plaintext)
            );
        }
    }
}

#[test]
fn a_message_encrypted_in_rust_decrypts_in_javascript() {
    for mut node in Node::every() {
        let js_keys = node.ok("generate", json!({}));
        let (js_public, js_private) = (text(&js_keys, "public_jwk"), text(&js_keys, "private_jwk"));
        let rust = KeyPair::generate();
        let rust_private = rust.private_jwk();
        let fingerprint = node.ok("fingerprint", json!({"public_jwk": rust.public_jwk()}));
        assert_eq!(text(&fingerprint, "fingerprint"), rust.fingerprint());
        let (js_id, rust_id, conversation) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..5 {
            let plaintext = random_text(40);
            let content = e2e::encrypt(&rust, rust_id, &js_public, js_id, conversation, &plaintext).expect("encrypt");
            let decrypted = node.ok(
            "decrypt",
            json!({"recipient_private_jwk": js_private, "recipient_id": js_id, "sender_public_jwk": rust.public_jwk(),
                "sender_id": rust_id, "conversation_id": conversation, "content": content}),
        );
            assert_eq!(text(&decrypted, "plaintext"), plaintext);
            let swapped = node.call(
            "decrypt",
            json!({"recipient_private_jwk": js_private, "recipient_id": rust_id, "sender_public_jwk": rust.public_jwk(),
                "sender_id": js_id, "conversation_id": conversation, "content": content}),
        );
            assert_eq!(swapped, Err("decrypt".to_owned()));
            // The Rust sender's copy to itself, read with its private key in JavaScript.
            let to_self =
                e2e::encrypt(&rust, rust_id, &rust.public_jwk(), rust_id, conversation, &plaintext).expect("encrypt");
            let decrypted = node.ok(
                "decrypt",
                json!({"recipient_private_jwk": rust_private.as_str(), "recipient_id": rust_id,
                "sender_public_jwk": rust.public_jwk(), "sender_id": rust_id, "conversation_id": conversation,
                "content": to_self}),
            );
            assert_eq!(text(&decrypted, "plaintext"), plaintext);
        }
    }
}

#[test]
fn a_private_key_wrapped_in_javascript_unwraps_in_rust_and_the_reverse() {
    for mut node in Node::every() {
        let wrap_key = WrapKey::from_bytes(rand::random());
        let wrap_key_hex = hex(wrap_key.expose_secret());
        let conversation = Uuid::new_v4();

        let js_keys = node.ok("generate", json!({}));
        let js_private = text(&js_keys, "private_jwk");
        let wrapped = node.ok(
            "wrap",
            json!({"wrap_key_hex": wrap_key_hex, "conversation_id": conversation, "private_jwk": js_private}),
        );
        let unwrapped = e2e::unwrap_private_key(&wrap_key, conversation, &text(&wrapped, "wrapped")).expect("unwrap");
        assert_eq!(unwrapped.private_jwk().as_str(), js_private);
        assert_eq!(unwrapped.public_jwk(), text(&js_keys, "public_jwk"));
        assert!(e2e::unwrap_private_key(&wrap_key, Uuid::new_v4(), &text(&wrapped, "wrapped")).is_err());

        let rust = KeyPair::generate();
        let wrapped = e2e::wrap_private_key(&wrap_key, conversation, &rust);
        let unwrap = |wrap_key_hex: &str, public_jwk: &str| {
            json!({"wrap_key_hex": wrap_key_hex, "conversation_id": conversation, "wrapped": wrapped,
                "public_jwk": public_jwk})
        };
        let unwrapped = node.ok("unwrap", unwrap(&wrap_key_hex, &rust.public_jwk()));
        assert_eq!(text(&unwrapped, "private_jwk"), rust.private_jwk().as_str());
        assert_eq!(text(&unwrapped, "public_jwk"), rust.public_jwk());
        let other_key = hex(&rand::random::<[u8; 32]>());
        assert_eq!(node.call("unwrap", unwrap(&other_key, &rust.public_jwk())), Err("decrypt".to_owned()));
        let other_public = KeyPair::generate().public_jwk();
        assert_eq!(node.call("unwrap", unwrap(&wrap_key_hex, &other_public)), Err("invalid_key".to_owned()));
    }
}

#[test]
fn identities_wrapped_on_either_side_unwrap_on_the_other() {
    for mut node in Node::every() {
        let runtime = node.runtime;
        for _ in 0..2 {
            let (wrap_key, wrap_key_hex) = random_wrap_key();
            let (user, other_user) = (Uuid::now_v7(), Uuid::now_v7());

            // Rust wraps, JavaScript unwraps.
            let rust = Identity::generate();
            let public_key = rust.public().to_text();
            let wrapped = serde_json::to_value(rust.wrap(&wrap_key, user)).expect("JSON");
            let unwrap = |user_id: Uuid, public_key: &str| {
                json!({"wrap_key_hex": wrap_key_hex, "user_id": user_id, "wrapped": wrapped,
                    "public_key": public_key})
            };
            let unwrapped = node.ok("identity_unwrap", unwrap(user, &public_key));
            assert_eq!(text(&unwrapped, "signing_private_jwk"), rust.signing().private_jwk().as_str(), "{runtime}");
            assert_eq!(text(&unwrapped, "agreement_private_jwk"), rust.agreement().private_jwk().as_str(), "{runtime}");
            let fingerprint = node.ok("identity_fingerprint", json!({"public_key": public_key}));
            assert_eq!(text(&fingerprint, "fingerprint"), rust.public().fingerprint(), "{runtime}: {public_key}");
            let refused = node.call("identity_unwrap", unwrap(other_user, &public_key));
            assert_eq!(refused, Err("decrypt".to_owned()), "{runtime}: unwrapped for another user");
            let another = Identity::generate().public().to_text();
            let refused = node.call("identity_unwrap", unwrap(user, &another));
            assert_eq!(refused, Err("invalid_key".to_owned()), "{runtime}: unwrapped with another identity key");

            // JavaScript wraps, Rust unwraps.
            let js = JsIdentity::generate(&mut node);
            let wrapped = node.ok(
                "identity_wrap",
                json!({"wrap_key_hex": wrap_key_hex, "user_id": user, "signing_private_jwk": js.signing,
                    "agreement_private_jwk": js.agreement}),
            );
            let wrapped: WrappedIdentity = serde_json::from_value(wrapped["wrapped"].clone())
                .unwrap_or_else(|e| panic!("{runtime}: {e}: {wrapped}"));
            let unwrapped = Identity::unwrap(&wrap_key, user, &wrapped, &js.key())
                .unwrap_or_else(|e| panic!("{runtime}: {e}: {wrapped:?} of {}", js.public_key));
            assert_eq!(unwrapped.public(), js.key(), "{runtime}");
            assert_eq!(unwrapped.signing().private_jwk().as_str(), js.signing, "{runtime}");
            assert_eq!(unwrapped.agreement().private_jwk().as_str(), js.agreement, "{runtime}");
            assert_eq!(
                Identity::unwrap(&wrap_key, other_user, &wrapped, &js.key()).map(|_| ()),
                Err(E2eError::Decrypt),
                "{runtime}: unwrapped for another user"
            );
            let another = Identity::generate().public();
            assert!(
                matches!(Identity::unwrap(&wrap_key, user, &wrapped, &another), Err(E2eError::InvalidKey(_))),
                "{runtime}: unwrapped with another identity key"
            );
        }
    }
}

#[test]
fn safety_numbers_agree_in_either_argument_order() {
    for mut node in Node::every() {
        let runtime = node.runtime;
        let js = JsIdentity::generate(&mut node).key();
        for round in 0..6 {
            let a = Identity::generate().public();
            let b = if round % 2 == 0 { js.clone() } else { Identity::generate().public() };
            // Time-ordered ids, random ones (either may sort first), and one account twice.
            let (a_id, b_id) = match round % 3 {
                0 => (Uuid::now_v7(), Uuid::now_v7()),
                1 => (Uuid::new_v4(), Uuid::new_v4()),
                _ => {
                    let id = Uuid::new_v4();
                    (id, id)
                }
            };
            for ((x_id, x), (y_id, y)) in [((a_id, &a), (b_id, &b)), ((b_id, &b), (a_id, &a))] {
                let number = node.ok(
                    "safety_number",
                    json!({"a_id": x_id, "a_public_key": x.to_text(), "b_id": y_id, "b_public_key": y.to_text()}),
                );
                assert_eq!(
                    text(&number, "safety_number"),
                    e2e::safety_number(x_id, x, y_id, y),
                    "{runtime}: {x_id} {} and {y_id} {}",
                    x.to_text(),
                    y.to_text()
                );
            }
        }
    }
}

#[test]
fn conversation_keys_signed_on_either_side_verify_on_the_other() {
    for mut node in Node::every() {
        let runtime = node.runtime;
        let js = JsIdentity::generate(&mut node);
        let js_key = js.key();
        let rust = Identity::generate();
        let rust_key = rust.public().to_text();
        // WebCrypto's signatures are randomized, S in either half: count both.
        let mut halves = [0; 2];
        for round in 0..30 {
            let (user, conversation) = (Uuid::now_v7(), Uuid::now_v7());
            let key = KeyPair::generate().public_jwk();

            // JavaScript signs, Rust verifies.
            let signed = node.ok(
                "sign_key",
                json!({"signing_private_jwk": js.signing, "agreement_private_jwk": js.agreement, "user_id": user,
                    "conversation_id": conversation, "public_jwk": key}),
            );
            let signed = text(&signed, "signed_public_key");
            halves[usize::from(high_s(&signed))] += 1;
            let what = format!("{runtime}: {signed} of user {user} in conversation {conversation}");
            assert!(signed.starts_with(&key[..key.len() - 1]), "{what}");
            assert_eq!(e2e::verify_conversation_key(&js_key, user, conversation, &signed), Ok(key.clone()), "{what}");
            let refused = e2e::verify_conversation_key(&js_key, Uuid::now_v7(), conversation, &signed);
            assert_eq!(refused, Err(E2eError::Signature), "{what}, for another user");
            let refused = e2e::verify_conversation_key(&js_key, user, Uuid::now_v7(), &signed);
            assert_eq!(refused, Err(E2eError::Signature), "{what}, in another conversation");

            // Rust signs (deterministically), JavaScript verifies: every few rounds, the
            // signature as Rust made it and in the other S half, and refuses it elsewhere.
            if round % 5 == 0 {
                let signed = e2e::sign_conversation_key(&rust, user, conversation, &key).expect("sign");
                let flipped = other_s_half(&signed);
                for signed in [&signed, &flipped] {
                    let what = format!("{runtime}: {signed} of user {user} in conversation {conversation}");
                    let verify = |user_id: Uuid, conversation_id: Uuid| {
                        json!({"identity_public_key": rust_key, "user_id": user_id, "conversation_id": conversation_id,
                            "signed_public_key": signed})
                    };
                    assert_eq!(text(&node.ok("verify_key", verify(user, conversation)), "public_jwk"), key, "{what}");
                    let refused = node.call("verify_key", verify(Uuid::now_v7(), conversation));
                    assert_eq!(refused, Err("signature".to_owned()), "{what}, for another user");
                    let refused = node.call("verify_key", verify(user, Uuid::now_v7()));
                    assert_eq!(refused, Err("signature".to_owned()), "{what}, in another conversation");
                }
                let rust_verified = e2e::verify_conversation_key(&rust.public(), user, conversation, &flipped);
                assert_eq!(rust_verified, Ok(key.clone()), "Rust, the other S half of {signed}");
            }
        }
        assert!(halves.iter().all(|&count| count > 0), "{runtime}: 30 signatures, low S and high S: {halves:?}");
    }
}

#[test]
fn v2_messages_encrypted_on_either_side_decrypt_on_the_other() {
    for mut node in Node::every() {
        let runtime = node.runtime;
        let js_keys = node.ok("generate", json!({}));
        let (js_public, js_private) = (text(&js_keys, "public_jwk"), text(&js_keys, "private_jwk"));
        let js_in_rust = KeyPair::from_private_jwk(&js_private).expect("the JavaScript private JWK");
        let rust = KeyPair::generate();
        let (js_id, rust_id, conversation) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for _ in 0..6 {
            let message = random_message();
            let object = message_json(&message);

            // JavaScript encrypts, Rust decrypts; sealed again in Rust with the same nonce, the
            // padded plaintext must be the same bytes.
            let content = node.ok(
                "encrypt_v2",
                json!({"sender_private_jwk": js_private, "sender_id": js_id, "recipient_public_jwk": rust.public_jwk(),
                    "recipient_id": rust_id, "conversation_id": conversation, "message": object}),
            );
            let content = text(&content, "content");
            let (nonce, padded) = nonce_and_padded_length(&content);
            assert!(content.starts_with("v2.") && padded % PADDING_BLOCK == 0, "{runtime}: {content} of {object}");
            let resealed = e2e::encrypt_message_with_nonce(
                &js_in_rust,
                js_id,
                &rust.public_jwk(),
                rust_id,
                conversation,
                &message,
                nonce,
            );
            assert_eq!(resealed.as_ref(), Ok(&content), "{runtime}: the padded bytes of {object}");
            let decrypted = e2e::decrypt_message(&rust, rust_id, &js_public, js_id, conversation, &content);
            assert_eq!(decrypted, Ok(message.clone()), "{runtime}: {object}");
            let swapped = e2e::decrypt_message(&rust, js_id, &js_public, rust_id, conversation, &content);
            assert_eq!(swapped, Err(E2eError::Decrypt), "{runtime}: {object} with sender and recipient swapped");

            // Rust encrypts, JavaScript decrypts.
            let content =
                e2e::encrypt_message(&rust, rust_id, &js_public, js_id, conversation, &message).expect("encrypt");
            let decrypt = |conversation_id: Uuid| {
                json!({"recipient_private_jwk": js_private, "recipient_id": js_id,
                    "sender_public_jwk": rust.public_jwk(), "sender_id": rust_id, "conversation_id": conversation_id,
                    "content": content})
            };
            let decrypted = node.ok("decrypt_v2", decrypt(conversation));
            assert_eq!(decrypted["message"], object, "{runtime}: {content}");
            let refused = node.call("decrypt_v2", decrypt(Uuid::now_v7()));
            assert_eq!(refused, Err("decrypt".to_owned()), "{runtime}: {object} in another conversation");
        }
    }
}

#[test]
fn messages_to_identities_encrypted_on_either_side_decrypt_on_the_other() {
    for mut node in Node::every() {
        let runtime = node.runtime;
        let js = JsIdentity::generate(&mut node);
        let (js_key, js_in_rust) = (js.key(), js.in_rust());
        let rust = Identity::generate();
        let rust_key = rust.public().to_text();
        let (js_id, rust_id, conversation) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for _ in 0..6 {
            let message = random_message();
            let object = message_json(&message);

            // JavaScript encrypts, Rust decrypts; the same bytes sealed again in Rust.
            let content = node.ok(
                "encrypt_to_identity",
                json!({"sender_signing_private_jwk": js.signing, "sender_agreement_private_jwk": js.agreement,
                    "sender_id": js_id, "recipient_public_key": rust_key, "recipient_id": rust_id,
                    "conversation_id": conversation, "message": object}),
            );
            let content = text(&content, "content");
            let (nonce, padded) = nonce_and_padded_length(&content);
            assert!(content.starts_with("v2i.") && padded % PADDING_BLOCK == 0, "{runtime}: {content} of {object}");
            let resealed = e2e::encrypt_to_identity_with_nonce(
                &js_in_rust,
                js_id,
                &rust.public(),
                rust_id,
                conversation,
                &message,
                nonce,
            );
            assert_eq!(resealed.as_ref(), Ok(&content), "{runtime}: the padded bytes of {object}");
            let decrypted = e2e::decrypt_from_identity(&rust, rust_id, &js_key, js_id, conversation, &content);
            assert_eq!(decrypted, Ok(message.clone()), "{runtime}: {object}");
            let swapped = e2e::decrypt_from_identity(&rust, js_id, &js_key, rust_id, conversation, &content);
            assert_eq!(swapped, Err(E2eError::Decrypt), "{runtime}: {object} with sender and recipient swapped");

            // Rust encrypts, JavaScript decrypts.
            let content =
                e2e::encrypt_to_identity(&rust, rust_id, &js_key, js_id, conversation, &message).expect("encrypt");
            let decrypt = |conversation_id: Uuid| {
                json!({"recipient_signing_private_jwk": js.signing, "recipient_agreement_private_jwk": js.agreement,
                    "recipient_id": js_id, "sender_public_key": rust_key, "sender_id": rust_id,
                    "conversation_id": conversation_id, "content": content})
            };
            let decrypted = node.ok("decrypt_from_identity", decrypt(conversation));
            assert_eq!(decrypted["message"], object, "{runtime}: {content}");
            let refused = node.call("decrypt_from_identity", decrypt(Uuid::now_v7()));
            assert_eq!(refused, Err("decrypt".to_owned()), "{runtime}: {object} in another conversation");
        }
    }
}

/// A server time as RFC 3339 text: `nanos` since the epoch, with 0, 3, 6 or 9 fraction digits
/// (truncated, as a server writing fewer digits does) and `Z`, `+00:00` or another offset.
fn rfc3339(nanos: i64) -> String {
    let mut rng = rand::thread_rng();
    let digits = [SecondsFormat::Secs, SecondsFormat::Millis, SecondsFormat::Micros, SecondsFormat::Nanos];
    let minutes = match rng.gen_range(0..3) {
        0 => 0,
        1 => 60 * rng.gen_range(-12..=14),
        _ => rng.gen_range(-23 * 60 - 59..=23 * 60 + 59),
    };
    let offset = FixedOffset::east_opt(minutes * 60).expect("an offset within a day");
    let time = DateTime::from_timestamp_nanos(nanos).with_timezone(&offset);
    time.to_rfc3339_opts(*digits.choose(&mut rng).expect("formats"), rng.gen_bool(0.5))
}

/// One delivered message: what the server says (times as text), and the decrypted header.
struct Step {
    message_group: Uuid,
    sender: Uuid,
    inserted_at: String,
    updated_at: String,
    message: Plaintext,
}

impl Step {
    fn delivered(&self) -> Delivered {
        let time = |text: &str| DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}")).to_utc();
        Delivered {
            message_group: self.message_group,
            sender: self.sender,
            inserted_at: time(&self.inserted_at),
            updated_at: time(&self.updated_at),
        }
    }

    fn json(&self) -> Value {
        json!({
            "delivered": {"message_group": self.message_group, "sender": self.sender,
                "inserted_at": self.inserted_at, "updated_at": self.updated_at},
            "message": message_json(&self.message),
        })
    }
}

/// A random conversation as a server may deliver it: two senders sharing two streams, repeated
/// and out-of-order seq values, edits of earlier messages, some ciphertexts copied into another
/// message group, times moved by less or more than 15 minutes (and to the nanosecond around
/// it), edited states that do not fit.
fn random_steps(count: usize) -> Vec<Step> {
    const MS: i64 = 1_000_000;
    let mut rng = rand::thread_rng();
    let (senders, streams) = ([Uuid::now_v7(), Uuid::now_v7()], [Stream::random(), Stream::random()]);
    let start = rng.gen_range(1_700_000_000_000..1_800_000_000_000_i64);
    let mut groups: Vec<Uuid> = Vec::new();
    (0..count)
        .map(|step| {
            let sent_at = start + i64::try_from(step).expect("few steps") * 90_000 + rng.gen_range(0..1000);
            let edit_of = groups.choose(&mut rng).copied().filter(|_| rng.gen_bool(0.25));
            let seq = if rng.gen_bool(0.1) { MAX_SAFE_INTEGER - rng.gen_range(0..2) } else { rng.gen_range(0..6) };
            let message = Plaintext {
                id: Uuid::now_v7(),
                sent_at: u64::try_from(sent_at).expect("after 1970"),
                edit_of,
                stream: *streams.choose(&mut rng).expect("streams"),
                seq,
                text: random_text(3),
            };
            let genuine_group = edit_of.unwrap_or(message.id);
            let message_group = match rng.gen_range(0..10) {
                0 => Uuid::now_v7(),
                1 => groups.choose(&mut rng).copied().unwrap_or(genuine_group),
                _ => genuine_group,
            };
            let tolerance = REDATED_AFTER_MS * MS;
            let shift = match rng.gen_range(0..4) {
                0 => rng.gen_range(0..60_000 * MS),
                1 => tolerance - rng.gen_range(0..2 * MS),
                2 => tolerance + rng.gen_range(0..2 * MS),
                _ => rng.gen_range(tolerance..2 * 86_400_000 * MS),
            };
            let server_time = sent_at * MS + if rng.gen_bool(0.5) { shift } else { -shift };
            // Edits are marked edited (updated_at after inserted_at), other messages not; one in
            // ten breaks that, sometimes by less than a millisecond (which does not count).
            let before = match rng.gen_range(0..10) {
                0 => 0,
                1 => rng.gen_range(1..MS),
                _ => rng.gen_range(MS..86_400_000 * MS),
            };
            let (inserted_at, updated_at) = match (edit_of.is_some(), rng.gen_bool(0.1)) {
                (true, false) => (server_time - before, server_time),
                (true, true) => (server_time, server_time),
                (false, false) => (server_time, server_time),
                (false, true) => (server_time, server_time + before),
            };
            if edit_of.is_none() {
                groups.push(message.id);
            }
            let sender = *senders.choose(&mut rng).expect("senders");
            Step { message_group, sender, inserted_at: rfc3339(inserted_at), updated_at: rfc3339(updated_at), message }
        })
        .collect()
}

#[test]
fn delivery_checks_flag_the_same_steps() {
    for mut node in Node::every() {
        let runtime = node.runtime;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..8 {
            let steps = random_steps(40);
            let mut checker = DeliveryChecker::new();
            let rust: Vec<Vec<Flag>> =
                steps.iter().map(|step| checker.check(&step.delivered(), &step.message)).collect();
            let all: Vec<Value> = steps.iter().map(Step::json).collect();
            let js = node.ok("check", json!({"steps": all}));
            let js = js["flags"].as_array().unwrap_or_else(|| panic!("{runtime}: no flags in {js}"));
            assert_eq!(js.len(), steps.len(), "{runtime}: one list of flags per step");
            for (index, (rust, js)) in rust.iter().zip(js).enumerate() {
                let names: Vec<&str> = rust.iter().map(|flag| flag.as_str()).collect();
                assert_eq!(
                    *js,
                    json!(names),
                    "{runtime}: step {index}, {}, after {}",
                    all[index],
                    Value::from(&all[..index])
                );
                seen.insert(names);
            }
        }
        let flags = [Flag::Substituted, Flag::Redated, Flag::Reordered];
        assert!(
            seen.contains(&Vec::new())
                && flags.iter().all(|flag| seen.iter().any(|names| names.contains(&flag.as_str()))),
            "the random steps give no flags and each flag: {seen:?}"
        );
    }
}
