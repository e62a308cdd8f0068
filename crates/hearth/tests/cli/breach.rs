//! The breach drill (issue 5, point 7): with provider keys stored through every path — a
//! person's own keys and an operator's pool key through configure pages, keys given with single
//! requests, and the operator's free-tier key in the settings — and then used, a thief's copy of
//! the database files, everything in the data directory but the keyguard's master key, and every
//! line hearth printed at `debug` hold none of the keys, nor a base64 or hex form of one, nor
//! the part of one that no other text has (a key cut short); nor did the log writer ever have
//! to redact one. Run twice: the keyguard in the server's process, and the keyguard as a
//! process of its own on a Unix socket (whose output is searched too).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use hearth_ai::ProviderName;
use hearth_fake_provider::FakeProvider;
use hearth_keyguard::envelope::seal_to;
use hearth_keyguard::{EnvelopeContext, PublicKey};
use hearth_store::ASSISTANT_SENDER;
use hearth_vault::TokenHash;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{Api, tokens};
use crate::canary::forms;
use crate::harness::{self, Hearth, Process, STARTUP};
use crate::socket::Socket;

// The canaries. Each makes the fake provider act out the scenario named in it (`fake-<name>-`)
// and carries, right after its provider's prefix, a `DRILL…` part found in no other text. The
// log writer replaces words shaped like keys (a provider's prefix and more) as a second line of
// defence; the prefix-less ones (keys need no prefix: Gemini's newer ones have none) slip past
// it, so for them only the first line, never logging a key at all, keeps the log clean.

/// The operator's free-tier keys, in the settings (the environment): one that answers, and a
/// prefix-less one that fails (500) first.
const SETTINGS_GROQ: &str = "gsk_DRILLSETTINGSGROQ-fake-ok-4b1e9c";
const SETTINGS_BARE: &str = "DRILLSETTINGSBARE-fake-server_error-1f8c2e";
/// A person's own keys, through their configure page: a prefix-less one that is overloaded and
/// one out of quota (both tried and passed over), and one that answers.
const OWN_BARE: &str = "DRILLOWNBARE-fake-overloaded-6a0d3b";
const OWN_OPENAI: &str = "sk-proj-DRILLOWNOPENAI-fake-quota-c81e35";
const OWN_ANTHROPIC: &str = "sk-ant-api03-DRILLOWNANTHROPIC-fake-ok-7d2f0a";
/// A key the provider refuses, through a configure page: never stored.
const OWN_REFUSED: &str = "sk-ant-api03-DRILLOWNREFUSED-fake-invalid_key-0f9b2d";
/// The free tier's pool key, through an operator's `/set_default_api_key` page; it fails (500),
/// so the settings' groq key answers after it.
const POOL_GEMINI: &str = "AIzaSy-DRILLPOOLGEMINI-fake-server_error-5e7a13";
/// Keys given with single requests: a prefix-less one out of quota, one whose connection is
/// reset, one that answers; and one the provider refuses.
const REQUEST_BARE: &str = "DRILLREQUESTBARE-fake-quota-d29e71";
const REQUEST_CEREBRAS: &str = "csk-DRILLREQUESTCEREBRAS-fake-reset-93ad40";
const REQUEST_OPENROUTER: &str = "sk-or-v1-DRILLREQUESTOPENROUTER-fake-ok-2c6b88";
const REQUEST_REFUSED: &str = "sk-or-v1-DRILLREQUESTREFUSED-fake-invalid_key-e4f107";

const CANARIES: [(&str, ProviderName, &str); 11] = [
    ("the settings' free-tier groq key", ProviderName::Groq, SETTINGS_GROQ),
    ("the settings' prefix-less free-tier gemini key", ProviderName::Gemini, SETTINGS_BARE),
    ("an own prefix-less gemini key", ProviderName::Gemini, OWN_BARE),
    ("an own openai key", ProviderName::OpenAi, OWN_OPENAI),
    ("an own anthropic key", ProviderName::Anthropic, OWN_ANTHROPIC),
    ("a refused own anthropic key", ProviderName::Anthropic, OWN_REFUSED),
    ("the pool's gemini key", ProviderName::Gemini, POOL_GEMINI),
    ("a prefix-less per-request gemini key", ProviderName::Gemini, REQUEST_BARE),
    ("a per-request cerebras key", ProviderName::Cerebras, REQUEST_CEREBRAS),
    ("a per-request openrouter key", ProviderName::OpenRouter, REQUEST_OPENROUTER),
    ("a refused per-request openrouter key", ProviderName::OpenRouter, REQUEST_REFUSED),
];

/// The keyguard's master key file, the one file a thief of the data directory must not get.
const MASTER_KEY_FILE: &str = "keyguard_key";

/// Where the keyguard runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyguardAt {
    /// Inside `hearth serve` (the default).
    Server,
    /// `hearth keyguard --listen unix:…`, with the server connecting to it.
    OwnProcess,
}

/// The part of a canary no other text has.
fn fragment(key: &str) -> &str {
    key.split(['-', '_']).find(|part| part.starts_with("DRILL")).expect("every canary has a DRILL part")
}

fn last_four(key: &str) -> &str {
    &key[key.len() - 4..]
}

/// Someone in the drill: a session, and their assistant conversation open on a socket.
pub(crate) struct Person {
    pub(crate) id: Uuid,
    pub(crate) token: String,
    pub(crate) socket: Socket,
    pub(crate) conversation: String,
}

impl Person {
    /// Registers `email`, connects a socket and opens the assistant conversation.
    pub(crate) async fn register(hearth: &Hearth, api: &Api, email: &str) -> Self {
        let body =
            json!({"email": email, "password": "drill-password-1", "display_name": email, "device_name": "laptop"});
        let session = api.expect(201, Method::POST, "/auth/register", None, Some(body)).await;
        let (token, _) = tokens(&session);
        let id = session["user"]["id"].as_str().and_then(|id| id.parse().ok()).expect("a user id");
        let mut socket = Socket::connect(&hearth.url, &token).await;
        socket.call(&format!("user:{id}"), "phx_join", json!({})).await;
        socket.call("system:general", "phx_join", json!({})).await;
        let started = socket.call("system:general", "start_assistant_conversation", json!({})).await;
        let conversation = started["conversation"]["id"].as_str().expect("a conversation id").to_owned();
        socket.call(&format!("conversation:{conversation}"), "phx_join", json!({})).await;
        Self { id, token, socket, conversation }
    }

    /// Sends `text` in the assistant conversation and returns the assistant's answer.
    pub(crate) async fn ask(&mut self, text: &str) -> String {
        let topic = format!("conversation:{}", self.conversation);
        let payload = json!({"encrypted_messages": {self.id.to_string(): text}});
        let r = self.socket.push(&topic, "send_message", payload).await;
        let mut sent = false;
        loop {
            let frame = self.socket.next_frame().await;
            if frame[3] == "phx_reply" && frame[1] == r.as_str() {
                assert_eq!(frame[4]["status"], "ok", "{text:?} was not sent: {frame}");
                sent = true;
            } else if let Some(answer) = self.assistant_message_in(&frame) {
                assert!(sent, "the assistant answered {text:?} before it was sent");
                return answer;
            }
        }
    }

    /// The next message the assistant posts unasked (a configure page's acknowledgement).
    async fn next_assistant_message(&mut self) -> String {
        loop {
            let frame = self.socket.next_frame().await;
            if let Some(message) = self.assistant_message_in(&frame) {
                return message;
            }
        }
    }

    fn assistant_message_in(&self, frame: &Value) -> Option<String> {
        let message = &frame[4]["message"];
        let ours = frame[2] == format!("user:{}", self.id).as_str() && frame[3] == "new_message";
        (ours && message["sender"] == ASSISTANT_SENDER.to_string().as_str())
            .then(|| message["content"].as_str().expect("the message's text").to_owned())
    }
}

/// A configure page's outcome.
pub(crate) struct Configured {
    /// The link's token: a bearer secret too, until it is used or expires.
    token: String,
    /// Whether the page said the key joins the free tier's pool.
    pool: bool,
    /// The submission's status and reply.
    pub(crate) status: u16,
    reply: Value,
    /// What the assistant said after a key was saved.
    acknowledgement: Option<String>,
}

/// Sends `command` (`/configure`, `/set_default_api_key …`), opens the link the assistant
/// answers with, and does what the page's script does: encrypts `key` to the keyguard's public
/// key from the page and posts the envelope back.
pub(crate) async fn configure(
    hearth: &Hearth,
    person: &mut Person,
    command: &str,
    provider: ProviderName,
    key: &str,
) -> Configured {
    let answer = person.ask(command).await;
    let at = answer.find("/configure/").unwrap_or_else(|| panic!("no configure link in {answer:?}"));
    let path = answer[at..].split_whitespace().next().expect("a link");
    let page = harness::client().get(hearth.at(path)).send().await.expect("the page loads");
    assert_eq!(page.status(), 200, "GET {path}");
    let html = page.text().await.expect("the page's HTML");
    const OPENING: &str = r#"<script type="application/json" id="hearth-configure">"#;
    let start = html.find(OPENING).unwrap_or_else(|| panic!("no page settings in {html}")) + OPENING.len();
    let end = start + html[start..].find("</script>").expect("the settings end");
    let settings: Value = serde_json::from_str(&html[start..end]).expect("the page's settings are JSON");
    assert_eq!(settings["user_id"], person.id.to_string().as_str());
    let public = PublicKey {
        kid: settings["kid"].as_u64().and_then(|kid| kid.try_into().ok()).expect("a kid"),
        key: settings["public_key"].as_str().expect("a public key").to_owned(),
    };
    // Bound to this link and its purpose, as the page binds it.
    let hex = settings["link"].as_str().expect("the link's hash");
    let link: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex")).collect();
    let context =
        EnvelopeContext::configure(person.id, &TokenHash(link.try_into().expect("32 bytes")), settings["pool"] == true);
    let envelope = seal_to(&public, context, provider, key).expect("the key is encrypted");
    let link = path.split('?').next().expect("a path");
    let body = json!({"provider": provider.as_str(), "envelope": envelope});
    let response = harness::client().post(hearth.at(link)).json(&body).send().await.expect("the key is posted");
    let status = response.status().as_u16();
    let reply = response.json().await.expect("a JSON reply");
    let acknowledgement = if status == 200 { Some(person.next_assistant_message().await) } else { None };
    let token = link.trim_start_matches("/configure/").split('.').next().expect("a token").to_owned();
    assert_eq!(token.len(), 64, "{link}");
    Configured { token, pool: settings["pool"] == true, status, reply, acknowledgement }
}

/// Copies the database files as they are (what a thief takes) into `to`.
fn copy_database(data_dir: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("the copy's directory");
    for name in ["hearth.db", "hearth.db-wal", "hearth.db-shm"] {
        let file = data_dir.join(name);
        if file.exists() {
            std::fs::copy(&file, to.join(name)).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
        }
    }
    assert!(to.join("hearth.db").is_file(), "no database in {}", data_dir.display());
}

/// Every regular file under `dir`, recursively, but master key files.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let kind = std::fs::symlink_metadata(&path).expect("metadata").file_type();
        if kind.is_dir() {
            files.extend(files_under(&path));
        } else if kind.is_file() && path.file_name().is_some_and(|name| name != MASTER_KEY_FILE) {
            files.push(path);
        }
    }
    files
}

/// Asserts that `file` is a master key readable by its owner only.
fn assert_master_key(file: &Path) {
    let metadata = std::fs::metadata(file).unwrap_or_else(|e| panic!("no master key at {}: {e}", file.display()));
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "{}", file.display());
    assert!(metadata.len() > 0, "{} is empty", file.display());
}

/// Each place a canary, in any form, was found in `texts` (what, text): the text, line and
/// what surrounds it.
fn leaks(texts: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (what, _, key) in CANARIES {
        let searched = forms(key).into_iter().chain(forms(fragment(key)));
        for form in searched {
            for (place, text) in texts {
                for (at, _) in text.match_indices(&form) {
                    let line = text[..at].matches('\n').count() + 1;
                    let from = text.floor_char_boundary(at.saturating_sub(120));
                    let to = text.ceil_char_boundary((at + form.len() + 120).min(text.len()));
                    found.push(format!("{what} as {form:?} in {place}, line {line}: {:?}", &text[from..to]));
                }
            }
        }
    }
    found
}

async fn drill(keyguard_at: KeyguardAt) {
    let dir = tempfile::tempdir().expect("temp dir");
    let thief = tempfile::tempdir().expect("the thief's temp dir");
    let data_dir = dir.path().join("data");
    let keyguard_dir = dir.path().join("keyguard");
    let socket = dir.path().join("kg.sock");
    let fake = FakeProvider::start().await.expect("start the fake provider");

    let mut env: Vec<(String, String)> = ProviderName::ALL
        .iter()
        .map(|provider| {
            let url = fake.base_url(provider.as_str()).expect("the fake serves every provider");
            (format!("HEARTH_AI__PROVIDERS__{}__BASE_URL", provider.as_str().to_uppercase()), url)
        })
        .collect();
    env.extend([
        ("RUST_LOG".to_owned(), "debug".to_owned()),
        ("HEARTH_KEYGUARD__FREE_TIER__KEYS__GROQ".to_owned(), format!("[\"{SETTINGS_GROQ}\"]")),
        ("HEARTH_KEYGUARD__FREE_TIER__KEYS__GEMINI".to_owned(), format!("[\"{SETTINGS_BARE}\"]")),
    ]);
    let admin_dir = tempfile::tempdir().expect("the administrator's temp dir");
    let (admin_key, signers) = crate::admin::listed_admin_key(admin_dir.path());
    let mut keyguard = None;
    if keyguard_at == KeyguardAt::OwnProcess {
        let mut command = harness::hearth(dir.path());
        command.arg("keyguard").arg("--listen").arg(format!("unix:{}", socket.display()));
        command.arg("--data-dir").arg(&keyguard_dir).envs(env.iter().map(|(k, v)| (k, v)));
        let process = Process::spawn("hearth keyguard", command);
        process.wait_line(0, STARTUP, |line| line.contains("keyguard listening")).await;
        keyguard = Some(process);
        // The server is given the free-tier key too (it warns that it ignores it): any log
        // line it might print about it is scanned as well.
        env.push(("HEARTH_KEYGUARD__CONNECT".to_owned(), format!("unix:{}", socket.display())));
    }
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("HEARTH_ADMIN__ALLOWED_SIGNERS", &signers));
    let hearth = Hearth::start(dir.path(), &data_dir, &env).await;
    let api = Api::new(harness::client(), &hearth.url);
    // Every reply hearth gave, scanned with its output and files.
    let mut replies: Vec<(String, String)> = Vec::new();
    // Every configure link's token, looked for in the output and files (the person alone was
    // shown it).
    let mut link_tokens: Vec<String> = Vec::new();

    let mut ann = Person::register(&hearth, &api, "ann@example.org").await;
    let mut op = Person::register(&hearth, &api, "op@example.org").await;
    crate::admin::grant_role(&hearth, &admin_key, "operator", "op@example.org").await;

    // 1. Ann's own keys through her configure pages: three accepted, one the provider refuses.
    let own = [
        (ProviderName::Gemini, OWN_BARE),
        (ProviderName::OpenAi, OWN_OPENAI),
        (ProviderName::Anthropic, OWN_ANTHROPIC),
    ];
    for (provider, key) in own {
        let saved = configure(&hearth, &mut ann, "/configure", provider, key).await;
        link_tokens.push(saved.token.clone());
        assert_eq!((saved.status, saved.pool), (200, false), "{provider}: {}", saved.reply);
        assert_eq!(saved.reply["last_four"], last_four(key));
        let acknowledgement = saved.acknowledgement.expect("an acknowledgement");
        assert!(acknowledgement.contains(&format!("ending in {}", last_four(key))), "{acknowledgement}");
        replies.push((format!("the {provider} configure reply"), saved.reply.to_string()));
        replies.push((format!("the {provider} acknowledgement"), acknowledgement));
    }
    let refused = configure(&hearth, &mut ann, "/configure", ProviderName::Anthropic, OWN_REFUSED).await;
    // Refused keys do not spend a link: this one is still live when the thief strikes.
    link_tokens.push(refused.token.clone());
    assert_eq!((refused.status, &refused.reply["error"]), (422, &json!("invalid_key")), "{}", refused.reply);
    replies.push(("the refused key's configure reply".to_owned(), refused.reply.to_string()));

    // 2. The operator's pool key through /set_default_api_key.
    let pooled = configure(&hearth, &mut op, "/set_default_api_key gemini", ProviderName::Gemini, POOL_GEMINI).await;
    link_tokens.push(pooled.token.clone());
    assert_eq!((pooled.status, pooled.pool), (200, true), "{}", pooled.reply);
    let acknowledgement = pooled.acknowledgement.expect("an acknowledgement");
    assert!(acknowledgement.contains("pool"), "{acknowledgement}");
    replies.push(("the pool key's configure reply".to_owned(), pooled.reply.to_string()));
    replies.push(("the pool key's acknowledgement".to_owned(), acknowledgement));

    // 3. Keys given with single requests: gemini is out of quota, cerebras is reset and
    // openrouter answers; then a key the provider refuses.
    let keys = json!({"gemini": REQUEST_BARE, "cerebras": REQUEST_CEREBRAS, "openrouter": REQUEST_OPENROUTER});
    let body = json!({"message": "a question with my keys", "apiKeys": keys});
    let answered = api.expect(200, Method::POST, "/api/chat/message", Some(&ann.token), Some(body)).await;
    assert_eq!(answered["provider"], "openrouter", "{answered}");
    let body = json!({"message": "a question with a refused key", "apiKeys": {"openrouter": REQUEST_REFUSED}});
    let failed = api.expect(502, Method::POST, "/api/chat/message", Some(&ann.token), Some(body)).await;
    replies.extend([answered, failed].map(|reply| ("a per-request reply".to_owned(), reply.to_string())));

    // Using them: Ann's stored keys (gemini overloaded, openai out of quota, then anthropic), in
    // her conversation and over HTTP; the free tier for the operator, who has no key of their
    // own (the settings' and the pool's gemini keys fail, then the settings' groq key answers).
    let question = "what does a thief find";
    assert_eq!(ann.ask(question).await, format!("anthropic reply to: {question}"));
    let body = json!({"message": "and over HTTP?"});
    let answered = api.expect(200, Method::POST, "/api/chat/message", Some(&ann.token), Some(body)).await;
    assert_eq!(answered["provider"], "anthropic", "{answered}");
    replies.push(("an HTTP reply with stored keys".to_owned(), answered.to_string()));
    let question = "a free-tier question";
    assert_eq!(op.ask(question).await, format!("groq reply to: {question}"));

    // The lists name provider and last four only; the refused key is not stored. This is also
    // the proof that the keys are in the database the thief copies.
    let listed = ann.ask("/keys").await;
    for (provider, key) in own {
        assert!(listed.contains(&format!("- {provider} …{}: added", last_four(key))), "{listed}");
    }
    assert!(!listed.contains(last_four(OWN_REFUSED)), "{listed}");
    replies.push(("/keys".to_owned(), listed));
    let keys = api.expect(200, Method::GET, "/api/keys", Some(&ann.token), None).await;
    let mut stored: Vec<(&str, &str)> = keys["items"]
        .as_array()
        .expect("a key list")
        .iter()
        .map(|key| (key["provider"].as_str().expect("a provider"), key["last_four"].as_str().expect("last four")))
        .collect();
    let mut expected: Vec<(&str, &str)> =
        own.iter().map(|(provider, key)| (provider.as_str(), last_four(key))).collect();
    stored.sort_unstable();
    expected.sort_unstable();
    assert_eq!(stored, expected, "{keys}");
    replies.push(("GET /api/keys".to_owned(), keys.to_string()));
    let none = api.expect(200, Method::GET, "/api/keys", Some(&op.token), None).await;
    assert_eq!(none["items"], json!([]), "pool keys are nobody's own");
    let providers = op.ask("/providers").await;
    for line in ["1. gemini: 2 free-tier keys", "2. groq: 1 free-tier key"] {
        assert!(providers.contains(line), "{line:?} in {providers}");
    }
    replies.push(("/providers".to_owned(), providers));

    // Every canary was in play: each reached the (fake) provider.
    let sent: Vec<String> = fake.requests().into_iter().filter_map(|request| request.api_key).collect();
    for (what, _, key) in CANARIES {
        assert!(sent.iter().any(|k| k == key), "{what} never reached a provider");
    }

    // The thief's copies: the files of the running server, and of the stopped one.
    copy_database(&data_dir, &thief.path().join("while-running"));
    let (lines, raw) = hearth.stop().await;
    copy_database(&data_dir, &thief.path().join("after-stop"));
    let log = lines.join("\n");
    let mut texts = vec![
        ("the server's log".to_owned(), log.clone()),
        ("the server's raw output".to_owned(), String::from_utf8_lossy(&raw).into_owned()),
    ];
    let mut keyguard_log = None;
    if let Some(mut keyguard) = keyguard {
        let status = keyguard.terminate().await;
        let log = keyguard.text();
        assert!(status.success(), "the keyguard exited with {status}:\n{log}");
        assert!(log.contains("keyguard stopped"), "no shutdown line:\n{log}");
        texts.push(("the keyguard's log".to_owned(), log.clone()));
        texts.push(("the keyguard's raw output".to_owned(), String::from_utf8_lossy(&keyguard.raw()).into_owned()));
        keyguard_log = Some(log);
    }

    // The log is there, at debug, and covers the flows; the provider calls are logged by
    // whichever process makes them (the server never does when the keyguard is apart).
    assert!(log.contains(" DEBUG "), "no debug line: RUST_LOG was not honoured:\n{log}");
    assert_eq!(log.matches("provider key saved").count(), 4, "{log}");
    let calls = keyguard_log.as_deref().unwrap_or(&log);
    assert!(calls.contains("provider answered") && calls.contains("provider attempt failed"), "{calls}");
    if keyguard_at == KeyguardAt::OwnProcess {
        assert!(!log.contains("hearth_ai::router"), "the server called a provider itself:\n{log}");
    }

    // The master key: readable by its owner only, and only where the keyguard runs.
    match keyguard_at {
        KeyguardAt::Server => assert_master_key(&data_dir.join(MASTER_KEY_FILE)),
        KeyguardAt::OwnProcess => {
            assert_master_key(&keyguard_dir.join(MASTER_KEY_FILE));
            assert!(!data_dir.join(MASTER_KEY_FILE).exists(), "the server holds the master key");
        }
    }

    let files: Vec<PathBuf> = files_under(thief.path()).into_iter().chain(files_under(dir.path())).collect();
    assert!(files.iter().any(|file| file.starts_with(&data_dir)), "nothing in the data directory");
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Invalid UTF-8 becomes U+FFFD; ASCII (every form of every canary) stays as it is.
        texts.push((file.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    // Configure links were shown to their person only: neither the log nor the database (the
    // assistant's message keeps only that a link was shown) has one.
    let linked: Vec<String> = link_tokens
        .iter()
        .flat_map(|token| texts.iter().filter(|(_, text)| text.contains(token.as_str())).map(|(what, _)| what.clone()))
        .collect();
    assert!(linked.is_empty(), "a configure link's token is in: {linked:?}");
    texts.extend(replies);
    // The copy is real: it holds the accounts (in the database file or its write-ahead log).
    let copied = |(what, text): &(String, String)| what.contains("while-running") && text.contains("ann@example.org");
    assert!(texts.iter().any(copied), "the thief's copy holds no account: the search would find nothing");
    let found = leaks(&texts);
    assert!(found.is_empty(), "provider keys where a thief finds them ({keyguard_at:?}):\n{}", found.join("\n"));
    // The log writer replaces words shaped like keys, a second line of defence: it never had to.
    let redacted: Vec<&str> = texts
        .iter()
        .filter(|(what, _)| what.ends_with("'s log"))
        .flat_map(|(_, text)| text.lines())
        .filter(|line| line.contains("[redacted key]"))
        .collect();
    assert!(redacted.is_empty(), "keys reached the log writer, which redacted them:\n{}", redacted.join("\n"));
}

#[tokio::test]
async fn a_breach_finds_no_key_with_the_keyguard_in_the_server() {
    drill(KeyguardAt::Server).await;
}

#[tokio::test]
async fn a_breach_finds_no_key_with_the_keyguard_in_its_own_process() {
    drill(KeyguardAt::OwnProcess).await;
}

#[test]
fn the_search_finds_a_key_in_every_form_and_cut_short() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    for (_, _, key) in CANARIES {
        let hex: String = key.bytes().map(|byte| format!("{byte:02X}")).collect();
        let cut = &key[..key.len() - 8];
        for text in [
            format!("log line key={key} end"),
            STANDARD.encode(format!("x{key}y")),
            URL_SAFE_NO_PAD.encode(format!("xy{key}")),
            format!("blob {hex}"),
            format!("error: key {cut}…"),
        ] {
            assert!(!leaks(&[("text".to_owned(), text.clone())]).is_empty(), "{key} not found in {text}");
        }
    }
    assert!(leaks(&[("text".to_owned(), format!("key …{}", last_four(OWN_ANTHROPIC)))]).is_empty());
}

#[test]
fn every_canary_is_a_key_of_its_provider_and_has_a_fragment_of_its_own() {
    for (what, provider, key) in CANARIES {
        assert!(hearth_ai::ApiKey::for_provider(provider, key).is_ok(), "{what}: not the shape of a {provider} key");
        let redacted = hearth_ai::redact_key_shapes(key) != key;
        assert_eq!(redacted, !what.contains("prefix-less"), "{what}: the log writer's redaction");
        assert_eq!(CANARIES.iter().filter(|(_, _, other)| other.contains(fragment(key))).count(), 1, "{what}");
        assert!(!fragment(key).contains(last_four(key)), "{what}: its last four are shown, its fragment is not");
    }
}
