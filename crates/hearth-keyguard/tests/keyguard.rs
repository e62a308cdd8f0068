//! The keyguard against the fake provider, in-process and as its own process (over a Unix
//! socket and over mutual TLS): the same checks pass in every mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_ai::{ApiKey, ChatMessage, ChatRequest, ProviderName, Providers, RouterSettings, TurnFailureKind};
use hearth_fake_provider::FakeProvider;
use hearth_keyguard::remote::{Connection, Listener, serve};
use hearth_keyguard::{
    Endpoint, EnvelopeContext, KeyRef, Keyguard, KeyguardError, KeyguardOptions, LocalKeyguard, Owner, RemoteKeyguard,
    SealRequest, StoredKey, certs, envelope,
};
use hearth_vault::{KeyRing, TokenHash};
use rustls::pki_types::pem::PemObject as _;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

const OWN_KEY: &str = "sk-ant-api03-OWNKEYCANARY-0123456789abcdef";
const FREE_KEY: &str = "gsk_FREETIERCANARY-0123456789abcdef";

fn local(fake: &FakeProvider) -> Arc<LocalKeyguard> {
    local_with_ring(fake, KeyRing::generate(), None)
}

fn local_with_ring(fake: &FakeProvider, ring: KeyRing, ring_file: Option<std::path::PathBuf>) -> Arc<LocalKeyguard> {
    let mut providers = Providers::default();
    for provider in ProviderName::ALL {
        providers.get_mut(provider).base_url = fake.base_url(provider.as_str()).expect("the fake serves it");
    }
    let keyguard = LocalKeyguard::new(KeyguardOptions {
        ring,
        ring_file,
        providers,
        routing: RouterSettings::default(),
        free_tier: vec![(ProviderName::Groq, ApiKey::new(FREE_KEY))],
    })
    .expect("the keyguard's HTTP client builds");
    Arc::new(keyguard)
}

fn question(text: &str) -> ChatRequest {
    ChatRequest { system: None, messages: vec![ChatMessage::user(text)] }
}

/// What every mode must do: seal a key from an envelope without it ever coming back, answer
/// with it through its own provider only, fall back to the free tier, and refuse what it must.
async fn behaves_as_a_keyguard(keyguard: &dyn Keyguard, fake: &FakeProvider) {
    let user = Uuid::now_v7();
    let public = keyguard.public_key().await.expect("public key");
    let context = EnvelopeContext::configure(user, &TokenHash([7; 32]), false);
    let id = Uuid::now_v7();
    let envelope = envelope::seal_to(&public, context, ProviderName::Anthropic, OWN_KEY).expect("envelope");
    let request = SealRequest {
        id,
        owner: Owner::User(user),
        provider: ProviderName::Anthropic,
        context,
        envelope: envelope.clone(),
        live_check: true,
    };
    let sealed = keyguard.seal(request.clone()).await.expect("sealed");
    assert_eq!(sealed.last_four, "cdef");
    assert_eq!(sealed.fingerprint, ApiKey::new(OWN_KEY).fingerprint());
    assert!(!format!("{sealed:?}").contains("OWNKEYCANARY"));
    assert!(!String::from_utf8_lossy(&sealed.sealed).contains("OWNKEYCANARY"));
    let stored = StoredKey { id, owner: Owner::User(user), provider: ProviderName::Anthropic, sealed: sealed.sealed };
    assert_eq!(keyguard.fingerprint(&stored).await.expect("fingerprint"), sealed.fingerprint);

    // The live check called Anthropic once, with the key in Anthropic's header.
    let calls = fake.requests();
    assert!(calls.iter().all(|call| call.api_key.as_deref() != Some(OWN_KEY) || call.path.starts_with("/anthropic/")));

    // An envelope for another provider or person does not open; a bad shape is refused.
    let wrong_provider = SealRequest { provider: ProviderName::OpenAi, ..request.clone() };
    assert_eq!(keyguard.seal(wrong_provider).await.expect_err("refused"), KeyguardError::Undecryptable);
    let other_person = EnvelopeContext { user_id: Uuid::now_v7(), ..context };
    let stolen = SealRequest { context: other_person, ..request.clone() };
    assert_eq!(keyguard.seal(stolen).await.expect_err("refused"), KeyguardError::Undecryptable);
    let short = envelope::seal_to(&public, context, ProviderName::Anthropic, "sk-ant-short").expect("envelope");
    let refused = keyguard.seal(SealRequest { envelope: short, ..request.clone() }).await.expect_err("refused");
    assert!(matches!(refused, KeyguardError::InvalidKey(_)), "{refused:?}");
    // A key the provider refuses fails the live check, without the key in the message.
    let rejected_key = "sk-ant-api03-fake-invalid_key-REJECTEDCANARY-00";
    let rejected = envelope::seal_to(&public, context, ProviderName::Anthropic, rejected_key).expect("envelope");
    let refused = keyguard.seal(SealRequest { envelope: rejected, ..request.clone() }).await.expect_err("refused");
    assert!(
        matches!(&refused, KeyguardError::InvalidKey(message) if !message.contains("REJECTEDCANARY")),
        "{refused:?}"
    );

    // The stored key answers, streaming.
    fake.clear_requests();
    let (deltas, mut received) = mpsc::unbounded_channel();
    let keys = vec![KeyRef::Stored(stored.clone())];
    let answer = keyguard.complete(&question("hello there"), keys, &deltas).await.expect("reachable").expect("answer");
    assert_eq!(answer.provider, ProviderName::Anthropic);
    assert_eq!(answer.text, "anthropic reply to: hello there");
    let mut streamed = String::new();
    while let Ok(delta) = received.try_recv() {
        streamed.push_str(&delta);
    }
    assert_eq!(streamed, answer.text);
    let calls = fake.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].api_key.as_deref(), Some(OWN_KEY));
    assert!(calls[0].path.starts_with("/anthropic/"));

    // Free tier alone; a per-request key in an envelope.
    let answer = keyguard.complete(&question("free"), vec![KeyRef::FreeTier], &deltas).await.expect("reachable");
    assert_eq!(answer.expect("answer").provider, ProviderName::Groq);
    let given = [
        (ProviderName::Gemini, "AIzaREQUESTCANARY-fake-invalid_key-0123"),
        (ProviderName::OpenRouter, "sk-or-v1-REQUESTCANARY-0123456789abcdef"),
    ];
    let envelope = envelope::seal_keys_to(&public, user, &given).expect("envelope");
    keyguard.check_request_keys(user, &envelope).await.expect("plausible keys");
    let keys = vec![KeyRef::Given { user_id: user, envelope }];
    let answer = keyguard.complete(&question("mine"), keys, &deltas).await.expect("reachable").expect("answer");
    assert_eq!(answer.provider, ProviderName::OpenRouter);

    // A request's key of no plausible shape is refused when it is checked, naming its provider
    // and never the key; so is one given for another provider's prefix.
    for (provider, key) in
        [(ProviderName::Groq, "gsk_SHORTCANARY"), (ProviderName::Gemini, "gsk_REQUESTCANARY-0123456789")]
    {
        let envelope = envelope::seal_keys_to(&public, user, &[(provider, key)]).expect("envelope");
        match keyguard.check_request_keys(user, &envelope).await {
            Err(KeyguardError::InvalidRequestKey { provider: refused, message }) => {
                assert_eq!(refused, provider);
                assert!(!message.contains("CANARY"), "{message}");
            }
            other => panic!("{provider}: {other:?}"),
        }
    }

    // No keys: the router's own answer, not an error of the keyguard.
    let none = keyguard.complete(&question("x"), Vec::new(), &deltas).await.expect("reachable");
    assert_eq!(none.expect_err("refused").kind, TurnFailureKind::NoKeys);

    // Health and the free tier's keys, by fingerprint only.
    let free = keyguard.free_tier().await.expect("free tier");
    assert_eq!(free, vec![(ProviderName::Groq, ApiKey::new(FREE_KEY).fingerprint())]);
    let states = keyguard.key_states(vec![sealed.fingerprint]).await.expect("states");
    assert_eq!(states[0].failures, 0);
    assert!(keyguard.rewrap(&stored).await.expect("rewrap").is_none(), "already under the newest version");

    // A sealed key moved to another person does not open: it is skipped.
    let moved = StoredKey { owner: Owner::User(Uuid::now_v7()), ..stored };
    let failed = keyguard.complete(&question("x"), vec![KeyRef::Stored(moved)], &deltas).await.expect("reachable");
    assert_eq!(failed.expect_err("refused").kind, TurnFailureKind::NoKeys);
}

#[tokio::test]
async fn in_process() {
    let fake = FakeProvider::start().await.expect("fake provider");
    behaves_as_a_keyguard(local(&fake).as_ref(), &fake).await;
}

/// Serves `keyguard` until the returned sender is dropped.
fn spawn_serve(listener: Listener, keyguard: Arc<LocalKeyguard>) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, keyguard, async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

#[tokio::test]
async fn over_a_unix_socket_and_back_after_an_outage() {
    let fake = FakeProvider::start().await.expect("fake provider");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("keyguard.sock");
    let keyguard = local(&fake);
    let (stop, task) =
        spawn_serve(Listener::Unix(tokio::net::UnixListener::bind(&path).expect("bind")), keyguard.clone());
    let remote =
        RemoteKeyguard::new(&Connection { endpoint: Endpoint::Unix(path.clone()), tls: None, server_name: None })
            .expect("client");
    behaves_as_a_keyguard(&remote, &fake).await;

    // Down: an immediate, clear error; no hang.
    drop(stop);
    task.await.expect("server stopped");
    std::fs::remove_file(&path).expect("socket file");
    let started = Instant::now();
    let (deltas, _) = mpsc::unbounded_channel();
    let down = remote.complete(&question("anyone?"), vec![KeyRef::FreeTier], &deltas).await;
    assert_eq!(down.expect_err("refused"), KeyguardError::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Back: the same client works again.
    let (_stop, _task) = spawn_serve(Listener::Unix(tokio::net::UnixListener::bind(&path).expect("bind")), keyguard);
    let back = remote.complete(&question("back?"), vec![KeyRef::FreeTier], &deltas).await;
    assert_eq!(back.expect("reachable").expect("answer").text, "groq reply to: back?");
}

#[tokio::test]
async fn over_mutual_tls_and_only_with_a_certificate_from_its_ca() {
    let fake = FakeProvider::start().await.expect("fake provider");
    let dir = tempfile::tempdir().expect("temporary directory");
    let made = certs::generate(dir.path(), &["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("certificates");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&made.keyguard.key).expect("key file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "private keys are readable by their owner only");
    }
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = tcp.local_addr().expect("address").to_string();
    let config = certs::server_config(&made.keyguard).expect("server config");
    let (_stop, _task) = spawn_serve(Listener::tls(tcp, config), local(&fake));
    let connection = Connection {
        endpoint: Endpoint::Tcp(address.clone()),
        tls: Some(made.client.clone()),
        server_name: Some("localhost".into()),
    };
    behaves_as_a_keyguard(&RemoteKeyguard::new(&connection).expect("client"), &fake).await;

    // A client whose certificate comes from another CA is refused in the handshake.
    let stranger_dir = tempfile::tempdir().expect("temporary directory");
    let stranger = certs::generate(stranger_dir.path(), &["localhost".to_owned()]).expect("certificates");
    let impostor = certs::TlsFiles { ca: made.client.ca.clone(), ..stranger.client };
    let connection = Connection { tls: Some(impostor), ..connection.clone() };
    let refused = RemoteKeyguard::new(&connection).expect("client").public_key().await;
    assert_eq!(refused.expect_err("refused"), KeyguardError::Unavailable);

    // So is a client with no certificate at all.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&made.client.ca).expect("ca") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let anonymous = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(anonymous));
    let tcp = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let outcome = async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = connector.connect(name, tcp).await?;
        // TLS 1.3 finishes the client's side before the server checks its certificate: the
        // refusal arrives on the first read.
        stream.write_all(b"\0\0\0\x02{}").await?;
        let mut buffer = [0u8; 16];
        stream.read(&mut buffer).await
    }
    .await;
    assert!(outcome.is_err() || outcome.as_ref().is_ok_and(|read| *read == 0), "{outcome:?}");
}

#[tokio::test]
async fn endpoints_parse() {
    assert_eq!(Endpoint::parse("unix:/run/kg.sock").expect("unix"), Endpoint::Unix("/run/kg.sock".into()));
    assert_eq!(Endpoint::parse("tcp:10.0.0.2:7000").expect("tcp"), Endpoint::Tcp("10.0.0.2:7000".into()));
    for bad in ["", "unix:", "tcp:nohostport", "http://x", "/path"] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
}

/// A keyguard whose master key ring is read from `file`, and the ring as written there (to
/// rotate it).
struct RingOnDisk {
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
    ring: KeyRing,
    keyguard: Arc<LocalKeyguard>,
}

fn ring_on_disk(fake: &FakeProvider) -> RingOnDisk {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("keyguard_key");
    let ring = KeyRing::generate();
    hearth_vault::write_ring(&file, &ring).expect("write the ring");
    let keyguard = local_with_ring(fake, KeyRing::parse(&ring.to_text()).expect("parse"), Some(file.clone()));
    RingOnDisk { _dir: dir, file, ring, keyguard }
}

/// The key pair of a version is derived once and kept; retiring the version must still end
/// it: an envelope made for it is refused afterwards, although it opened before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_version_opens_no_envelope_even_after_it_was_used() {
    let fake = FakeProvider::start().await.expect("start the fake provider");
    let RingOnDisk { _dir, file, mut ring, keyguard } = ring_on_disk(&fake);

    let user = Uuid::now_v7();
    let public = keyguard.public_key().await.expect("public key");
    let context = EnvelopeContext::configure(user, &TokenHash([7; 32]), false);
    let envelope = envelope::seal_to(&public, context, ProviderName::Anthropic, OWN_KEY).expect("envelope");
    let request = |envelope: envelope::Envelope| SealRequest {
        id: Uuid::now_v7(),
        owner: Owner::User(user),
        provider: ProviderName::Anthropic,
        context,
        envelope,
        live_check: false,
    };
    keyguard.seal(request(envelope.clone())).await.expect("opens while its version is in the ring");
    keyguard.seal(request(envelope.clone())).await.expect("and again, from the kept key pair");

    let retired = public.kid;
    let newest = ring.add_version();
    ring.retire(retired).expect("retire");
    hearth_vault::write_ring(&file, &ring).expect("write the rotated ring");
    assert_eq!(keyguard.public_key().await.expect("public key").kid, newest);
    assert_eq!(keyguard.seal(request(envelope)).await.expect_err("refused"), KeyguardError::Undecryptable);
    let fresh =
        envelope::seal_to(&keyguard.public_key().await.expect("public key"), context, ProviderName::Anthropic, OWN_KEY)
            .expect("envelope");
    keyguard.seal(request(fresh)).await.expect("the new version opens");
}

/// A server seals many requests' keys with one sealer, and the keyguard keeps the agreement
/// with its ephemeral key; retiring the version still ends it, kept agreement or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sealed_with_one_sealer_open_until_their_version_is_retired() {
    let fake = FakeProvider::start().await.expect("start the fake provider");
    let RingOnDisk { _dir, file, mut ring, keyguard } = ring_on_disk(&fake);
    let (deltas, _received) = mpsc::unbounded_channel();

    let public = keyguard.public_key().await.expect("public key");
    let sealer = envelope::RequestSealer::new(&public).expect("sealer");
    let user = Uuid::now_v7();
    let given = [(ProviderName::OpenRouter, "sk-or-v1-REQUESTCANARY-0123456789abcdef")];
    let ask = |envelope: envelope::Envelope| {
        let keyguard = keyguard.clone();
        let deltas = deltas.clone();
        async move {
            let keys = vec![KeyRef::Given { user_id: user, envelope }];
            keyguard.complete(&question("mine"), keys, &deltas).await.map(|outcome| outcome.map(|a| a.provider))
        }
    };
    for _ in 0..3 {
        let envelope = sealer.seal_keys(user, &given).expect("seal");
        assert_eq!(ask(envelope).await.expect("reachable").expect("answer"), ProviderName::OpenRouter);
    }
    let stranger = sealer.seal_keys(Uuid::now_v7(), &given).expect("seal");
    let forged = KeyRef::Given { user_id: user, envelope: stranger };
    assert!(keyguard.complete(&question("x"), vec![forged], &deltas).await.is_err(), "another person's envelope");

    ring.add_version();
    ring.retire(public.kid).expect("retire");
    hearth_vault::write_ring(&file, &ring).expect("write the rotated ring");
    assert_ne!(keyguard.public_key().await.expect("public key").kid, public.kid);
    let late = sealer.seal_keys(user, &given).expect("seal");
    assert_eq!(ask(late).await.expect_err("refused"), KeyguardError::Undecryptable);
}
