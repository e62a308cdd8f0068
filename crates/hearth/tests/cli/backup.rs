//! `hearth backup` and `hearth restore` (issue 24 §8): a backup made while several clients keep
//! sending, restored into an empty data directory, holds every message the server acknowledged
//! before the backup began, and a server started on it with the key files kept apart opens what
//! they sealed: a conversation's private key (the vault) and a person's provider key (the
//! keyguard). A restore into a data directory that is not empty is refused and changes nothing;
//! with PostgreSQL, `hearth backup` explains pg_dump.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hearth_ai::ProviderName;
use hearth_fake_provider::FakeProvider;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::api::{Api, tokens};
use crate::breach::{Person, configure};
use crate::harness::{self, Hearth};
use crate::socket::Socket;

/// How many clients send at once.
const SENDERS: usize = 3;

/// Sent per client at most (the senders stop sooner, once the backup is done).
const MAX_SENDS: usize = 5_000;

/// Acknowledged by each client before the backup starts, at least.
const ACKED_FIRST: usize = 10;

/// Ann's own key: the fake provider answers it as anthropic (`fake-ok`).
const ANN_KEY: &str = "sk-ant-api03-BACKUPANN-fake-ok-5c1d7e";

/// The group's creator's private key as their client set it: sealed by the vault at rest.
const PRIVATE_KEY: &str = "bob-wrapped-private-key-3e9a1f";

/// The files `hearth backup` says to keep apart from the backup.
const KEY_FILES: [&str; 3] = ["vault_key", "keyguard_key", "secret_key_base"];

const PASSWORD: &str = "backup-password-1";

/// A message the server acknowledged.
#[derive(Debug, Clone)]
struct Acked {
    group: String,
    sender: usize,
    n: usize,
}

/// What `sender`'s `n`th message says to `member`.
fn content(sender: usize, n: usize, member: Uuid) -> String {
    format!("message {n} from sender {sender} for {member}")
}

/// The fake provider's base URL for every provider, as settings.
fn provider_urls(fake: &FakeProvider) -> Vec<(String, String)> {
    ProviderName::ALL
        .iter()
        .map(|provider| {
            let url = fake.base_url(provider.as_str()).expect("the fake serves every provider");
            (format!("HEARTH_AI__PROVIDERS__{}__BASE_URL", provider.as_str().to_uppercase()), url)
        })
        .collect()
}

async fn register(api: &Api, email: &str) -> (Uuid, String) {
    let body = json!({"email": email, "password": PASSWORD, "display_name": email});
    let session = api.expect(201, Method::POST, "/auth/register", None, Some(body)).await;
    let id = session["user"]["id"].as_str().and_then(|id| id.parse().ok()).expect("a user id");
    (id, tokens(&session).0)
}

async fn sign_in(api: &Api, email: &str, password: &str) -> (Uuid, String) {
    let body = json!({"email": email, "password": password});
    let session = api.expect(200, Method::POST, "/auth/login", None, Some(body)).await;
    let id = session["user"]["id"].as_str().and_then(|id| id.parse().ok()).expect("a user id");
    (id, tokens(&session).0)
}

/// Sends messages on `topic` one after the other, each with a copy per member, recording each
/// acknowledgement, until `stop` is set; says on `under_way` once [`ACKED_FIRST`] were.
async fn send_until_stopped(
    mut socket: Socket,
    topic: String,
    sender: usize,
    members: Vec<Uuid>,
    acked: Arc<Mutex<Vec<Acked>>>,
    stop: Arc<AtomicBool>,
    under_way: tokio::sync::mpsc::Sender<()>,
) {
    for n in 0..MAX_SENDS {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let copies: BTreeMap<String, String> =
            members.iter().map(|member| (member.to_string(), content(sender, n, *member))).collect();
        let payload = json!({"encrypted_messages": copies, "client_msg_id": format!("{sender}-{n}")});
        let sent = socket.call(&topic, "send_message", payload).await;
        let group = sent["message"]["message_group"].as_str().expect("the sender's copy").to_owned();
        acked.lock().expect("not poisoned").push(Acked { group, sender, n });
        if n + 1 == ACKED_FIRST {
            under_way.send(()).await.expect("the test waits");
        }
    }
}

/// Every message `token`'s account reads in `conversation`, page after page: group → content.
async fn history(api: &Api, token: &str, conversation: &str) -> BTreeMap<String, String> {
    let mut messages = BTreeMap::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut path = format!("/api/messages?conversation_id={conversation}&page_size=100");
        if let Some(page) = &page_token {
            path.push_str(&format!("&page_token={page}"));
        }
        let page = api.expect(200, Method::GET, &path, Some(token), None).await;
        for message in page["items"].as_array().expect("items") {
            let group = message["message_group"].as_str().expect("a group").to_owned();
            messages.insert(group, message["content"].as_str().expect("a content").to_owned());
        }
        match page["page_token"].as_str() {
            Some(next) => page_token = Some(next.to_owned()),
            None => return messages,
        }
    }
}

/// Every file under `dir`, recursively, with its bytes (a directory: none).
fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("the directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.insert(path.display().to_string(), None);
            files.extend(snapshot(&path));
        } else {
            files.insert(path.display().to_string(), Some(std::fs::read(&path).expect("the file")));
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_made_while_clients_send_restores_every_acknowledged_message_and_sealed_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (live_dir, restored_dir) = (dir.path().join("live"), dir.path().join("restored"));
    let keys_apart = dir.path().join("keys-kept-apart");
    let backup_file = dir.path().join("hearth-backup.db");
    let fake = FakeProvider::start().await.expect("start the fake provider");
    let env = provider_urls(&fake);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let hearth = Hearth::start(dir.path(), &live_dir, &env).await;
    let api = Api::new(harness::client(), &hearth.url);

    // Ann's own provider key, sealed by the keyguard.
    let mut ann = Person::register(&hearth, &api, "ann@example.org").await;
    let saved = configure(&hearth, &mut ann, "/configure", ProviderName::Anthropic, ANN_KEY).await;
    assert_eq!(saved.status, 200, "the key was not saved");
    assert_eq!(ann.ask("before the backup").await, "anthropic reply to: before the backup");

    // A group of three whose creator's private key is sealed by the vault; each member sends.
    let emails = ["bob@example.org", "carol@example.org", "dave@example.org"];
    let mut members = Vec::new();
    for email in emails {
        members.push(register(&api, email).await);
    }
    let ids: Vec<Uuid> = members.iter().map(|(id, _)| *id).collect();
    let mut bob = Socket::connect(&hearth.url, &members[0].1).await;
    bob.call("system:general", "phx_join", json!({})).await;
    let payload = json!({"user_ids": &ids[1..], "public_key": {"kty": "EC"}, "private_key": {"wrapped": PRIVATE_KEY}});
    let started = bob.call("system:general", "start_group_conversation", payload).await;
    let conversation = started["conversation"]["id"].as_str().expect("a conversation id").to_owned();
    let topic = format!("conversation:{conversation}");

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (under_way, mut started_sending) = tokio::sync::mpsc::channel(SENDERS);
    let mut senders = Vec::new();
    for (sender, (_, token)) in members.iter().enumerate() {
        let mut socket = Socket::connect(&hearth.url, token).await;
        socket.call(&topic, "phx_join", json!({})).await;
        let (ids, acked, stop, under_way) = (ids.clone(), acked.clone(), stop.clone(), under_way.clone());
        let task = send_until_stopped(socket, topic.clone(), sender, ids, acked, stop, under_way);
        senders.push(tokio::spawn(task));
    }
    // Each sender well under way before the backup begins.
    for _ in 0..SENDERS {
        started_sending.recv().await.expect("a sender got under way");
    }

    // The backup, while they keep sending.
    let before: Vec<Acked> = acked.lock().expect("not poisoned").clone();
    let mut command = harness::hearth(dir.path());
    command.arg("backup").arg(&backup_file).arg("--data-dir").arg(&live_dir);
    let backup = harness::run(command).await;
    let during = acked.lock().expect("not poisoned").len() - before.len();
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await.expect("a sender finished");
    }
    assert!(backup.status.success(), "hearth backup failed:\n{}\n{}", backup.stdout, backup.stderr);
    assert!(during > 0, "no message was acknowledged while the backup ran: nothing flowed during it");
    // It says what it copied and which key files to keep apart, naming each.
    assert!(backup.stdout.contains(&format!("backup written to {}", backup_file.display())), "{}", backup.stdout);
    assert!(backup.stdout.contains("4 account(s)") && backup.stdout.contains("1 provider key(s)"), "{}", backup.stdout);
    for file in KEY_FILES {
        assert!(backup.stdout.contains(&live_dir.join(file).display().to_string()), "{file}: {}", backup.stdout);
    }
    assert!(backup.stdout.contains("vault key") && backup.stdout.contains("keyguard"), "{}", backup.stdout);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&backup_file).expect("the backup").permissions());
    assert_eq!(mode & 0o777, 0o600, "the backup is readable by others");
    // The operator keeps the key files somewhere else.
    std::fs::create_dir(&keys_apart).expect("a place for the keys");
    for file in KEY_FILES {
        std::fs::copy(live_dir.join(file), keys_apart.join(file)).expect("the key file is copied");
    }
    hearth.stop().await;

    // A second backup to the same file is refused: nothing is ever replaced.
    let backup_bytes = std::fs::read(&backup_file).expect("the backup");
    let mut command = harness::hearth(dir.path());
    command.arg("backup").arg(&backup_file).arg("--data-dir").arg(&live_dir);
    let again = harness::run(command).await;
    assert!(!again.status.success() && again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(std::fs::read(&backup_file).expect("the backup"), backup_bytes);

    // Restoring into a data directory that is not empty is refused and changes nothing, be it
    // the live one or one with anything in it.
    let cluttered = dir.path().join("cluttered");
    std::fs::create_dir(&cluttered).expect("a directory");
    std::fs::write(cluttered.join("notes.txt"), "mine").expect("a file");
    for target in [&live_dir, &cluttered] {
        let files = snapshot(target);
        let mut command = harness::hearth(dir.path());
        command.arg("restore").arg(&backup_file).arg("--data-dir").arg(target);
        let refused = harness::run(command).await;
        assert!(!refused.status.success(), "a restore into {} went ahead", target.display());
        assert!(refused.stderr.contains("is not empty"), "{}", refused.stderr);
        assert_eq!(snapshot(target), files, "a refused restore changed {}", target.display());
    }

    // Restored into a new directory, then the key files put back, as the restore says.
    let mut command = harness::hearth(dir.path());
    command.arg("restore").arg(&backup_file).arg("--data-dir").arg(&restored_dir);
    let restored = harness::run(command).await;
    assert!(restored.status.success(), "hearth restore failed:\n{}\n{}", restored.stdout, restored.stderr);
    for file in KEY_FILES {
        assert!(restored.stdout.contains(&restored_dir.join(file).display().to_string()), "{}", restored.stdout);
        std::fs::copy(keys_apart.join(file), restored_dir.join(file)).expect("the key file is put back");
    }
    let hearth = Hearth::start(dir.path(), &restored_dir, &env).await;
    let api = Api::new(harness::client(), &hearth.url);

    // Every message acknowledged before the backup began, as each member reads it.
    let mut tokens = Vec::new();
    for email in emails {
        tokens.push(sign_in(&api, email, PASSWORD).await);
    }
    for (id, token) in &tokens {
        let read = history(&api, token, &conversation).await;
        let missing: Vec<&Acked> =
            before.iter().filter(|a| read.get(&a.group) != Some(&content(a.sender, a.n, *id))).collect();
        assert!(
            missing.is_empty(),
            "{} acknowledged message(s) missing or changed for {id}: {missing:?}",
            missing.len()
        );
    }

    // The vault opens the creator's private key.
    let mut socket = Socket::connect(&hearth.url, &tokens[0].1).await;
    let joined = socket.call(&topic, "phx_join", json!({})).await;
    assert_eq!(joined["private_key"], json!({"wrapped": PRIVATE_KEY}), "{joined}");

    // The keyguard opens Ann's key: her question is answered with it (there is no free tier).
    let (id, token) = sign_in(&api, "ann@example.org", "drill-password-1").await;
    let mut socket = Socket::connect(&hearth.url, &token).await;
    socket.call(&format!("user:{id}"), "phx_join", json!({})).await;
    socket.call("system:general", "phx_join", json!({})).await;
    let started = socket.call("system:general", "start_assistant_conversation", json!({})).await;
    let assistant = started["conversation"]["id"].as_str().expect("her assistant conversation").to_owned();
    assert_eq!(assistant, ann.conversation, "the restored copy has her assistant conversation");
    socket.call(&format!("conversation:{assistant}"), "phx_join", json!({})).await;
    let mut ann = Person { id, token, socket, conversation: assistant };
    let uses = || fake.requests().into_iter().filter(|request| request.api_key.as_deref() == Some(ANN_KEY)).count();
    let before_asking = uses();
    assert_eq!(ann.ask("after the restore").await, "anthropic reply to: after the restore");
    assert_eq!(uses(), before_asking + 1, "her key did not reach the provider");
    let keys = api.expect(200, Method::GET, "/api/keys", Some(&ann.token), None).await;
    assert_eq!(keys["items"][0]["last_four"], &ANN_KEY[ANN_KEY.len() - 4..], "{keys}");
    hearth.stop().await;
}

#[tokio::test]
async fn backup_of_a_postgres_database_explains_pg_dump_and_shows_no_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("backup.dump");
    let mut command = harness::hearth(dir.path());
    command.arg("backup").arg(&file).arg("--database-url").arg("postgres://hearth:pw-CANARY-71c@127.0.0.1:9/hearth");
    let finished = harness::run(command).await;
    assert!(!finished.status.success(), "it said it made a backup:\n{}", finished.stdout);
    assert!(
        finished.stdout.contains("pg_dump --format=custom") && finished.stdout.contains("pg_restore"),
        "{}",
        finished.stdout
    );
    assert!(finished.stdout.contains("vault_key") && finished.stdout.contains("keyguard_key"), "{}", finished.stdout);
    assert!(!format!("{}{}", finished.stdout, finished.stderr).contains("CANARY"), "the password was shown");
    assert!(!file.exists(), "a file was written");
    let mut command = harness::hearth(dir.path());
    command.arg("restore").arg(&file).arg("--database-url").arg("postgres://hearth:pw-CANARY-71c@127.0.0.1:9/hearth");
    let finished = harness::run(command).await;
    assert!(!finished.status.success() && finished.stderr.contains("pg_restore"), "{}", finished.stderr);
    assert!(!finished.stderr.contains("CANARY"), "the password was shown");
}
