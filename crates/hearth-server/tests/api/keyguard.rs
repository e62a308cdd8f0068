//! Stored provider keys and the keyguard: `/configure` links end to end (the browser's part
//! played by the same envelope code the page's vector checks), `GET/DELETE /api/keys`, the
//! chat commands, the free tier's pool, link reuse, expiry and races, a keyguard in its own
//! process (Unix socket and mutual TLS) and one that is down, master-key rotation while
//! requests flow, and account deletion.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hearth_ai::{ApiKey, ProviderName};
use hearth_fake_provider::FakeProvider;
use hearth_keyguard::{Envelope, EnvelopeContext, PublicKey, envelope};
use hearth_server::settings::Settings;
use hearth_store::KeyOwner;
use hearth_vault::TokenHash;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::admin_users::set_role;
use crate::assistant::{ASSISTANT, fake_key, prompt, spawn_with_fake, start_assistant};
use crate::channels::Peer;
use crate::harness::{PASSWORD, Session, TestApp, assert_no_file_contains};

/// Where the keyguard runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    InProcess,
    Unix,
    MutualTls,
}

/// A keyguard in its own "process" (a task serving it as `hearth keyguard` does); stops when
/// dropped.
struct OwnKeyguard {
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for OwnKeyguard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Points every provider at `fake` and puts a free-tier key on groq.
fn on_the_fake(fake: &FakeProvider, settings: &mut Settings) {
    for provider in ProviderName::ALL {
        let at = settings.ai.providers.get_mut(provider);
        at.base_url = fake.base_url(provider.as_str()).expect("the fake serves it");
        at.timeout_secs = Duration::from_secs(5);
    }
    settings.keyguard.free_tier.keys.insert(ProviderName::Groq, vec![ApiKey::new(fake_key(ProviderName::Groq, "ok"))]);
}

/// Starts a keyguard on `listen` (with `tls` for TCP) in its own data directory.
async fn own_keyguard(
    fake: &FakeProvider,
    dir: tempfile::TempDir,
    listen: String,
    tls: Option<hearth_keyguard::certs::TlsFiles>,
) -> OwnKeyguard {
    let mut settings = Settings { data_dir: dir.path().join("keyguard-data"), ..Settings::default() };
    on_the_fake(fake, &mut settings);
    let keyguard = hearth_server::keyguard::local(&mut settings).expect("the keyguard starts");
    let (stop, stopped) = oneshot::channel::<()>();
    let socket = listen.strip_prefix("unix:").map(std::path::PathBuf::from);
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        hearth_keyguard::remote::serve_at(keyguard, &listen, tls, shutdown).await.expect("the keyguard serves");
    });
    // Ready when it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let ready = match &socket {
            Some(path) => tokio::net::UnixStream::connect(path).await.is_ok(),
            None => true,
        };
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    OwnKeyguard { stop: Some(stop), _dir: dir }
}

/// A server on the fake whose keyguard runs as `mode` says, with `configure` applied last.
async fn spawn(
    mode: Mode,
    fake: &FakeProvider,
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, Option<OwnKeyguard>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (connect, keyguard, client_tls) = match mode {
        Mode::InProcess => (None, None, None),
        Mode::Unix => {
            let listen = format!("unix:{}", dir.path().join("keyguard.sock").display());
            (Some(listen.clone()), Some(own_keyguard(fake, dir, listen, None).await), None)
        }
        Mode::MutualTls => {
            let made = hearth_keyguard::certs::generate(&dir.path().join("certs"), &["localhost".to_owned()])
                .expect("certificates");
            let port =
                std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
            let listen = format!("tcp:127.0.0.1:{port}");
            let keyguard = own_keyguard(fake, dir, listen.clone(), Some(made.keyguard.clone())).await;
            (Some(listen), Some(keyguard), Some(made.client))
        }
    };
    let app = spawn_with_fake(fake, |settings| {
        if connect.is_none() {
            on_the_fake(fake, settings);
        }
        settings.keyguard.connect = connect;
        if let Some(tls) = client_tls {
            settings.keyguard.ca = Some(tls.ca);
            settings.keyguard.cert = Some(tls.cert);
            settings.keyguard.key = Some(tls.key);
            settings.keyguard.server_name = Some("localhost".into());
        }
        configure(settings);
    })
    .await;
    (app, keyguard)
}

/// Someone with their assistant conversation open.
pub(crate) struct Person {
    pub(crate) session: Session,
    peer: Peer,
    conversation: String,
}

impl Person {
    pub(crate) async fn join(app: &TestApp, email: &str) -> Self {
        let session = app.register(email).await;
        let mut peer = Peer::connect(app, &session).await;
        let conversation = start_assistant(&mut peer).await;
        peer.ok(&format!("conversation:{conversation}"), "phx_join", json!({})).await;
        Self { session, peer, conversation }
    }

    /// Says `text` in the assistant conversation; the assistant's answer.
    pub(crate) async fn say(&mut self, text: &str) -> String {
        let (_, _, reply) = prompt(&mut self.peer, &self.conversation, text).await;
        reply["content"].as_str().expect("text").to_owned()
    }

    /// `/configure` (or another command that makes a link): the link's path and query.
    async fn link(&mut self, command: &str) -> String {
        let reply = self.say(command).await;
        let start = reply.find("/configure/").unwrap_or_else(|| panic!("no link in {reply:?}"));
        let link = reply[start..].split_whitespace().next().expect("the link").to_owned();
        assert!(link.len() >= "/configure/".len() + 64 + 1 + 36, "{link}");
        link
    }

    fn id(&self) -> Uuid {
        self.session.user_id.parse().expect("a uuid")
    }
}

/// The page's configuration, as its script reads it.
async fn page_config(app: &TestApp, link: &str) -> Value {
    let response = app.client.get(app.url(link)).send().await.expect("GET the page");
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    let html = response.text().await.expect("the page");
    let start = html.find(r#"id="hearth-configure">"#).expect("the configuration") + r#"id="hearth-configure">"#.len();
    let end = start + html[start..].find("</script>").expect("its end");
    serde_json::from_str(&html[start..end]).expect("JSON")
}

/// What the page binds its envelope to, as `configure.js` reads it from its configuration.
fn page_context(config: &Value) -> EnvelopeContext {
    let user_id = config["user_id"].as_str().expect("user id").parse().expect("uuid");
    let hex = config["link"].as_str().expect("the link's hash");
    let link: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex")).collect();
    EnvelopeContext::configure(user_id, &TokenHash(link.try_into().expect("32 bytes")), config["pool"] == true)
}

/// What the page's script would post for `key`.
fn submission(config: &Value, provider: ProviderName, key: &str) -> Value {
    let public = PublicKey {
        kid: u32::try_from(config["kid"].as_u64().expect("kid")).expect("small"),
        key: config["public_key"].as_str().expect("public key").to_owned(),
    };
    let envelope: Envelope =
        envelope::seal_to(&public, page_context(config), provider, key).expect("sealed to the keyguard");
    json!({ "provider": provider, "envelope": envelope })
}

async fn post(app: &TestApp, link: &str, body: &Value) -> (StatusCode, Value) {
    let response = app.client.post(app.url(link)).json(body).send().await.expect("POST");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

/// Adds `key` through a fresh `/configure` link and waits for the acknowledgement.
pub(crate) async fn configure(app: &TestApp, person: &mut Person, provider: ProviderName, key: &str) {
    let link = person.link("/configure").await;
    let config = page_config(app, &link).await;
    let (status, saved) = post(app, &link, &submission(&config, provider, key)).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    person.peer.expect(&format!("user:{}", person.session.user_id), "new_message").await;
}

async fn chat(app: &TestApp, token: &str, message: &str) -> (StatusCode, Value) {
    let reply = app.post_authed("/api/chat/message", token, Some(&json!({ "message": message }))).await;
    (reply.status, reply.json.clone())
}

async fn invalid_page(app: &TestApp, link: &str) -> String {
    let response = app.client.get(app.url(link)).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "{link}");
    assert!(response.headers()["content-security-policy"].to_str().is_ok_and(|csp| csp.contains("default-src 'none'")));
    response.text().await.expect("the page")
}

/// The whole flow, the same in every mode: a link in chat, the page, the sealed key stored and
/// acknowledged, listed without the key, answering before the free tier, the link spent, the
/// key deleted and forgotten.
async fn configure_flow(mode: Mode) {
    let fake = FakeProvider::start().await.expect("start the fake");
    let (app, _keyguard) = spawn(mode, &fake, |_| {}).await;
    let mut ann = Person::join(&app, "ann@example.org").await;

    let link = ann.link("/configure").await;
    let config = page_config(&app, &link).await;
    assert_eq!(config["user_id"], ann.session.user_id);
    assert_eq!((config["pool"].clone(), config["provider"].clone()), (json!(false), Value::Null));
    let key = fake_key(ProviderName::Anthropic, "ok");
    let (status, saved) = post(&app, &link, &submission(&config, ProviderName::Anthropic, &key)).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let last_four = &key[key.len() - 4..];
    assert_eq!((saved["provider"].as_str(), saved["last_four"].as_str()), (Some("anthropic"), Some(last_four)));

    // The acknowledgement in the assistant conversation names the provider and last four.
    let ack = ann.peer.expect(&format!("user:{}", ann.session.user_id), "new_message").await;
    assert_eq!(ack["message"]["sender"], ASSISTANT);
    let said = ack["message"]["content"].as_str().expect("text");
    assert!(said.contains("anthropic") && said.contains(last_four) && !said.contains(&key), "{said}");

    // Listed, never shown.
    let listed = app.get_authed("/api/keys", &ann.session.auth_token).await;
    let keys = listed.expect_status(StatusCode::OK)["items"].as_array().expect("items").clone();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0]["provider"].as_str(), keys[0]["last_four"].as_str()), (Some("anthropic"), Some(last_four)));
    assert_eq!((keys[0]["status"].as_str(), keys[0]["failures"].as_u64()), (Some("healthy"), Some(0)));
    assert!(!listed.text.contains(&key));
    let report = ann.say("/keys").await;
    assert!(report.contains(&format!("anthropic …{last_four}")) && !report.contains(&key), "{report}");

    // It answers before the free tier, at its own provider only; then it shows as used.
    fake.clear_requests();
    let (status, answer) = chat(&app, &ann.session.auth_token, "who answers?").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["provider"], "anthropic");
    let calls = fake.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].api_key.as_deref(), Some(key.as_str()));
    assert!(calls[0].path.starts_with("/anthropic/"), "{}", calls[0].path);
    let listed = app.get_authed("/api/keys", &ann.session.auth_token).await;
    assert!(listed.expect_status(StatusCode::OK)["items"][0]["last_used_at"].is_string());
    assert_eq!(ann.say("streamed too").await, "anthropic reply to: streamed too");

    // The link is spent: the page and a second submission say so, as for a tampered link.
    let (status, again) = post(&app, &link, &submission(&config, ProviderName::Anthropic, &key)).await;
    assert_eq!((status, again["error"].as_str()), (StatusCode::NOT_FOUND, Some("invalid_link")));
    let used = invalid_page(&app, &link).await;
    let mut tampered = link.clone();
    let flip = "/configure/".len() + 5;
    let digit = if &tampered[flip..=flip] == "0" { "1" } else { "0" };
    tampered.replace_range(flip..=flip, digit);
    assert_eq!(invalid_page(&app, &tampered).await, used);

    // Deleted: the free tier answers again.
    let id = keys[0]["id"].as_str().expect("id");
    let deleted = app.delete_authed(&format!("/api/keys/{id}"), &ann.session.auth_token, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let again = app.delete_authed(&format!("/api/keys/{id}"), &ann.session.auth_token, None).await;
    again.expect_error(StatusCode::NOT_FOUND, "not_found");
    let (_, answer) = chat(&app, &ann.session.auth_token, "and now?").await;
    assert_eq!(answer["provider"], "groq");

    // /forget <provider> deletes a provider's keys.
    configure(&app, &mut ann, ProviderName::OpenAi, &fake_key(ProviderName::OpenAi, "ok")).await;
    assert_eq!(ann.say("/forget openai").await, "Deleted your 1 stored openai key.");
    assert_eq!(ann.say("/keys").await, "You have no stored keys. /configure adds one.");
    assert_no_file_contains(&app, &key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_flow_with_the_keyguard_in_process() {
    configure_flow(Mode::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_flow_with_the_keyguard_on_a_unix_socket() {
    configure_flow(Mode::Unix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_flow_with_the_keyguard_over_mutual_tls() {
    configure_flow(Mode::MutualTls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_link_replaces_the_old_and_links_expire() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let (app, _) = spawn(Mode::InProcess, &fake, |settings| settings.keyguard.link_ttl_secs = 2).await;
    let mut ann = Person::join(&app, "ann@example.org").await;
    let mut bob = Person::join(&app, "bob@example.org").await;

    let first = ann.link("/configure").await;
    let config = page_config(&app, &first).await;
    let second = ann.link("/configure").await;
    let used = invalid_page(&app, &first).await;
    let (status, _) =
        post(&app, &first, &submission(&config, ProviderName::Groq, &fake_key(ProviderName::Groq, "ok"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an earlier link no longer works");

    // Ann's token with Bob's id (or Bob's link with Ann's) is no link at all.
    let bobs = bob.link("/configure").await;
    let swapped = format!("{}{}", &second[..second.len() - 36], bob.session.user_id);
    assert_eq!(invalid_page(&app, &swapped).await, used);
    let swapped = format!("{}{}", &bobs[..bobs.len() - 36], ann.session.user_id);
    assert_eq!(invalid_page(&app, &swapped).await, used);

    // An envelope made on Bob's page does not open for Ann's link.
    let bobs_config = page_config(&app, &bobs).await;
    let stolen = submission(&bobs_config, ProviderName::Groq, &fake_key(ProviderName::Groq, "ok"));
    let (status, refused) = post(&app, &second, &stolen).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("undecryptable")));

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(invalid_page(&app, &second).await, used, "expired");
    let (status, _) =
        post(&app, &second, &submission(&config, ProviderName::Groq, &fake_key(ProviderName::Groq, "ok"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for garbage in ["/configure/x", "/configure/%00", &format!("/configure/{}.{}", "a".repeat(64), "not-a-uuid")] {
        assert_eq!(invalid_page(&app, garbage).await, used);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_twenty_racing_submissions_exactly_one_is_stored() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let (app, _) = spawn(Mode::InProcess, &fake, |_| {}).await;
    let mut ann = Person::join(&app, "ann@example.org").await;
    let link = ann.link("/configure").await;
    let config = page_config(&app, &link).await;
    let racers = (0..20).map(|i| {
        let body =
            submission(&config, ProviderName::Cerebras, &format!("{}-{i:02}", fake_key(ProviderName::Cerebras, "ok")));
        let request = app.client.post(app.url(&link)).json(&body);
        tokio::spawn(async move { request.send().await.expect("POST").status() })
    });
    let statuses: Vec<StatusCode> =
        futures::future::join_all(racers).await.into_iter().map(|s| s.expect("task")).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::NOT_FOUND), "{statuses:?}");
    let listed = app.get_authed("/api/keys", &ann.session.auth_token).await;
    assert_eq!(listed.expect_status(StatusCode::OK)["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_provider_refuses_or_of_the_wrong_shape_is_not_stored() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let (app, _) = spawn(Mode::InProcess, &fake, |_| {}).await;
    let mut ann = Person::join(&app, "ann@example.org").await;
    let link = ann.link("/configure").await;
    let config = page_config(&app, &link).await;
    let refused_key = fake_key(ProviderName::Groq, "invalid_key");
    let (status, refused) = post(&app, &link, &submission(&config, ProviderName::Groq, &refused_key)).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_key")));
    assert!(!refused.to_string().contains(&refused_key));
    let wrong_provider = fake_key(ProviderName::OpenRouter, "ok");
    let (status, _) = post(&app, &link, &submission(&config, ProviderName::Groq, &wrong_provider)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = post(&app, &link, &json!({"provider": "groq", "envelope": {"kid": 1}})).await;
    assert!(status.is_client_error());
    let (status, _) = post(&app, &link, &json!({"provider": "nobody", "envelope": config})).await;
    assert!(status.is_client_error());
    // None of that spent the link: a good key is still taken.
    let (status, _) =
        post(&app, &link, &submission(&config, ProviderName::Groq, &fake_key(ProviderName::Groq, "ok"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_add_keys_to_the_free_tier_pool() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let (app, _) = spawn(Mode::InProcess, &fake, |settings| settings.keyguard.free_tier.keys.clear()).await;
    let mut op = Person::join(&app, "op@example.org").await;
    let mut bob = Person::join(&app, "bob@example.org").await;
    let (status, none) = chat(&app, &bob.session.auth_token, "anyone?").await;
    assert_eq!((status, none["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("no_provider")));

    let refused = "Only the operators of this server can add keys to the free tier: an administrator grants the \
                   operator role.";
    assert_eq!(bob.say("/set_default_api_key openai").await, refused);
    assert_eq!(op.say("/set_default_api_key openai").await, refused);
    // The analyst role is not the operator's.
    set_role(&app, &op.session.user_id, "analyst", true).await;
    assert_eq!(op.say("/set_default_api_key openai").await, refused);
    set_role(&app, &op.session.user_id, "operator", true).await;
    let link = op.link("/set_default_api_key openai").await;
    assert!(link.ends_with("?provider=openai"), "{link}");
    let config = page_config(&app, &link).await;
    assert_eq!((config["pool"].clone(), config["provider"].clone()), (json!(true), json!("openai")));
    let key = fake_key(ProviderName::OpenAi, "ok");
    let (status, saved) = post(&app, &link, &submission(&config, ProviderName::OpenAi, &key)).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let ack = op.peer.expect(&format!("user:{}", op.session.user_id), "new_message").await;
    assert!(ack["message"]["content"].as_str().is_some_and(|t| t.contains("pool")), "{ack}");

    // Not the operator's own key: everyone without keys is served by it, on the free tier.
    let listed = app.get_authed("/api/keys", &op.session.auth_token).await;
    assert_eq!(listed.expect_status(StatusCode::OK)["items"], json!([]));
    let (status, answer) = chat(&app, &bob.session.auth_token, "anyone now?").await;
    assert_eq!((status, answer["provider"].as_str()), (StatusCode::OK, Some("openai")), "{answer}");
    assert!(bob.say("/providers").await.contains("openai (also images): 1 free-tier key, healthy"));
    assert!(bob.say("/quota").await.contains("1 of 20 replies"));
}

/// An envelope is bound to the link it was made on and to its purpose: one captured on a
/// person's own-key page opens neither on their next link nor on an operator's pool link, and
/// the refused attempt spends neither link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configure_envelope_opens_only_on_the_link_and_for_the_purpose_it_was_made_for() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let (app, _) = spawn(Mode::InProcess, &fake, |settings| settings.keyguard.free_tier.keys.clear()).await;
    let mut op = Person::join(&app, "op@example.org").await;
    set_role(&app, &op.session.user_id, "operator", true).await;
    let key = fake_key(ProviderName::OpenAi, "ok");

    // Captured on the first page (never posted there)…
    let first = op.link("/configure").await;
    let captured = submission(&page_config(&app, &first).await, ProviderName::OpenAi, &key);
    // … and replayed to the next own-key link: it does not open there.
    let next = op.link("/configure").await;
    let (status, refused) = post(&app, &next, &captured).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("undecryptable")), "{refused}");
    // Nor on the operator's pool link, a link of the same person for another purpose.
    let pool = op.link("/set_default_api_key openai").await;
    let (status, refused) = post(&app, &pool, &captured).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("undecryptable")), "{refused}");
    let store = store_of(&app).await;
    assert_eq!(store.provider_key_versions().await.expect("versions"), [], "nothing was stored");

    // The pool link is still live: its own page's envelope is saved.
    let (status, saved) =
        post(&app, &pool, &submission(&page_config(&app, &pool).await, ProviderName::OpenAi, &key)).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    op.peer.expect(&format!("user:{}", op.session.user_id), "new_message").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configure_link_dies_with_the_session_that_asked_for_it_and_with_signout_all() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let (app, _) = spawn(Mode::InProcess, &fake, |_| {}).await;
    // The page's configuration is read while the link works, as an attacker holding it would.
    let gone = |link: String, config: Value| {
        let app = &app;
        async move {
            invalid_page(app, &link).await;
            let key = fake_key(ProviderName::Groq, "ok");
            let (status, _) = post(app, &link, &submission(&config, ProviderName::Groq, &key)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "a key was stored through {link}");
        }
    };

    // Revoking the device whose session asked for the link.
    let mut ann = Person::join(&app, "ann@example.org").await;
    let link = ann.link("/configure").await;
    let config = page_config(&app, &link).await;
    let other = app.login_ok("ann@example.org", PASSWORD).await;
    let device = app.current_device(&ann.session.auth_token).await;
    let revoked = app.delete_authed(&format!("/api/devices/{device}"), &other.auth_token, None).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    gone(link, config).await;

    // Signing out everywhere.
    let mut bob = Person::join(&app, "bob@example.org").await;
    let link = bob.link("/configure").await;
    let config = page_config(&app, &link).await;
    let signed_out = app.post_authed("/api/signout_all", &bob.session.auth_token, None).await;
    assert_eq!(signed_out.status, StatusCode::NO_CONTENT, "{}", signed_out.text);
    gone(link, config).await;
    let bob_again = app.login_ok("bob@example.org", PASSWORD).await;
    let listed = app.get_authed("/api/keys", &bob_again.auth_token).await;
    assert_eq!(listed.expect_status(StatusCode::OK)["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_rights_end_when_the_role_is_taken_back() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let (app, _) = spawn(Mode::InProcess, &fake, |_| {}).await;
    let mut op = Person::join(&app, "op@example.org").await;
    set_role(&app, &op.session.user_id, "operator", true).await;
    let link = op.link("/set_default_api_key openai").await;
    let config = page_config(&app, &link).await;
    assert_eq!(config["pool"], json!(true));
    set_role(&app, &op.session.user_id, "operator", false).await;
    assert!(op.say("/set_default_api_key openai").await.starts_with("Only the operators"));
    // The link made while they were one no longer opens, nor takes a key.
    invalid_page(&app, &link).await;
    let (status, _) =
        post(&app, &link, &submission(&config, ProviderName::OpenAi, &fake_key(ProviderName::OpenAi, "ok"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyguard_that_is_down_makes_the_assistant_unavailable_until_it_returns() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let dir = tempfile::tempdir().expect("temporary directory");
    let listen = format!("unix:{}", dir.path().join("keyguard.sock").display());
    let connect = listen.clone();
    let app = spawn_with_fake(&fake, move |settings| settings.keyguard.connect = Some(connect)).await;
    let mut ann = Person::join(&app, "ann@example.org").await;

    let started = Instant::now();
    let (status, down) = chat(&app, &ann.session.auth_token, "anyone?").await;
    assert_eq!((status, down["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("assistant_unavailable")));
    assert_eq!(ann.say("anyone?").await, "The assistant is temporarily unavailable. Please try again.");
    let link = ann.link("/configure").await;
    let page = app.client.get(app.url(&link)).send().await.expect("GET");
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    let listed = app.get_authed("/api/keys", &ann.session.auth_token).await;
    listed.expect_error(StatusCode::SERVICE_UNAVAILABLE, "keyguard_unavailable");
    assert!(started.elapsed() < Duration::from_secs(20), "no hang: {:?}", started.elapsed());
    let quota = ann.say("/quota").await;
    assert!(quota.contains("0 of 20 replies"), "no allowance is spent while it is down: {quota}");

    let _keyguard = own_keyguard(&fake, dir, listen, None).await;
    let (status, answer) = chat(&app, &ann.session.auth_token, "and now?").await;
    assert_eq!((status, answer["provider"].as_str()), (StatusCode::OK, Some("groq")), "{answer}");
    let key = fake_key(ProviderName::Gemini, "ok");
    let config = page_config(&app, &link).await;
    let (status, _) = post(&app, &link, &submission(&config, ProviderName::Gemini, &key)).await;
    assert_eq!(status, StatusCode::OK, "the link outlived the outage");
}

/// The server's own settings as `hearth keyguard rotate` would read them.
fn settings_of(app: &TestApp) -> Settings {
    Settings { data_dir: app.data_dir.path().to_path_buf(), ..Settings::default() }
}

/// The server's database, opened beside it.
async fn store_of(app: &TestApp) -> Arc<dyn hearth_store::Store> {
    let url = settings_of(app).database_url();
    hearth_store::connect(&hearth_store::ConnectOptions { url, max_connections: 2 }).await.expect("the database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_rotates_while_requests_flow() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let (app, _) = spawn(Mode::InProcess, &fake, |settings| settings.ai.requests_per_window = 100_000).await;
    let app = Arc::new(app);
    let mut ann = Person::join(&app, "ann@example.org").await;
    configure(&app, &mut ann, ProviderName::Anthropic, &fake_key(ProviderName::Anthropic, "ok")).await;
    let store = store_of(&app).await;
    assert_eq!(store.provider_key_versions().await.expect("versions"), [(1, 1)]);

    let stop = Arc::new(AtomicBool::new(false));
    let askers: Vec<_> = (0..3)
        .map(|_| {
            let (app, stop, token) = (app.clone(), stop.clone(), ann.session.auth_token.clone());
            tokio::spawn(async move {
                let mut answered = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (status, answer) = chat(&app, &token, "still there?").await;
                    assert_eq!((status, answer["provider"].as_str()), (StatusCode::OK, Some("anthropic")), "{answer}");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let settings = settings_of(&app);
    let rotation = hearth_server::keyguard::rotate(&settings, store.as_ref()).await.expect("rotate");
    assert_eq!((rotation.version, rotation.rewrapped), (2, 1));
    assert_eq!(store.provider_key_versions().await.expect("versions"), [(2, 1)]);
    hearth_server::keyguard::retire(&settings, store.as_ref(), 1).await.expect("retire version 1");
    // A key added now is sealed under the new version, and the newest cannot be retired.
    let second = format!("{}-second", fake_key(ProviderName::Anthropic, "ok"));
    configure(&app, &mut ann, ProviderName::Anthropic, &second).await;
    assert_eq!(store.provider_key_versions().await.expect("versions"), [(2, 2)]);
    assert!(hearth_server::keyguard::retire(&settings, store.as_ref(), 2).await.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for asker in askers {
        assert!(asker.await.expect("asker") > 0);
    }
    let ring = std::fs::read_to_string(app.data_dir.path().join("keyguard_key")).expect("the master key file");
    assert!(ring.trim().starts_with("2:") && ring.lines().count() == 1, "only version 2 is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_account_destroys_its_sealed_keys() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let (app, _) = spawn(Mode::InProcess, &fake, |_| {}).await;
    let mut ann = Person::join(&app, "ann@example.org").await;
    configure(&app, &mut ann, ProviderName::Anthropic, &fake_key(ProviderName::Anthropic, "ok")).await;
    let store = store_of(&app).await;
    assert_eq!(store.provider_keys(KeyOwner::User(ann.id())).await.expect("items").len(), 1);
    let deleted =
        app.delete_authed("/api/account", &ann.session.auth_token, Some(&json!({ "password": PASSWORD }))).await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    assert_eq!(store.provider_key_versions().await.expect("versions"), []);
}
