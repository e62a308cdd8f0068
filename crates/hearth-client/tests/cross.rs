//! Rust against JavaScript: the web client's `web/js/e2e.js`, run through
//! `clients/phoenix-js/lib/e2e-cli.mjs` (JSON lines over stdin/stdout) both by Node.js and
//! inside a page of Debian's Chromium (the browser's own WebCrypto), and this crate must agree
//! with random inputs: each decrypts what the other encrypts, unwraps what the other wraps, and
//! both derive the same secrets. A runtime that is missing (`node`; `/usr/bin/chromium` or the
//! npm packages) is skipped, saying so (CI has both).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hearth_client::e2e::{self, KeyPair, WrapKey};
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(value: &Value, name: &str) -> String {
    value[name].as_str().unwrap_or_else(|| panic!("no string {name} in {value}")).to_owned()
}

/// Random text mixing ASCII, accents, other scripts, emoji (with modifiers) and markup.
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
        let unwrapped = node
            .ok("unwrap", json!({"wrap_key_hex": wrap_key_hex, "conversation_id": conversation, "wrapped": wrapped}));
        assert_eq!(text(&unwrapped, "private_jwk"), rust.private_jwk().as_str());
        assert_eq!(text(&unwrapped, "public_jwk"), rust.public_jwk());
        let other_key = hex(&rand::random::<[u8; 32]>());
        let refused = node
            .call("unwrap", json!({"wrap_key_hex": other_key, "conversation_id": conversation, "wrapped": wrapped}));
        assert_eq!(refused, Err("decrypt".to_owned()));
    }
}
