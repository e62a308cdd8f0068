//! HTTPS terminated by hearth itself, and production mode's insistence on it.

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::json;

use crate::api::Api;
use crate::harness::{self, Hearth};

/// A self-signed certificate for `localhost` and 127.0.0.1, written into `dir`.
struct SelfSigned {
    cert: PathBuf,
    key: PathBuf,
    pem: String,
}

impl SelfSigned {
    fn create(dir: &Path) -> Self {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let certified = rcgen::generate_simple_self_signed(names).expect("rcgen makes a certificate");
        let pem = certified.cert.pem();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &pem).expect("write cert.pem");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key.pem");
        Self { cert, key, pem }
    }

    fn env(&self) -> [(&'static str, String); 2] {
        [
            ("HEARTH_SERVER__TLS__CERT", self.cert.display().to_string()),
            ("HEARTH_SERVER__TLS__KEY", self.key.display().to_string()),
        ]
    }

    /// A client that trusts only this certificate.
    fn client(&self) -> reqwest::Client {
        let root = reqwest::Certificate::from_pem(self.pem.as_bytes()).expect("the certificate parses");
        harness::client_builder().tls_certs_only([root]).build().expect("the HTTPS client builds")
    }
}

async fn start_tls(dir: &Path, certificate: &SelfSigned, extra: &[(&str, &str)]) -> Hearth {
    let env = certificate.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    Hearth::start(dir, &dir.join("data"), &all).await
}

#[tokio::test]
async fn hearth_serves_https_with_its_own_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certificate = SelfSigned::create(dir.path());
    let hearth = start_tls(dir.path(), &certificate, &[]).await;
    let port = hearth.addr.port();
    assert_eq!(hearth.url, format!("https://127.0.0.1:{port}"));

    let client = certificate.client();
    let response = client.get(hearth.at("/health")).send().await.expect("GET /health over HTTPS");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("strict-transport-security").is_none(),
        "HSTS is for production only (development servers come and go on localhost)"
    );
    // By name as well as by address.
    let by_name = certificate
        .client()
        .get(format!("https://localhost:{port}/health"))
        .send()
        .await
        .expect("GET https://localhost/health");
    assert_eq!(by_name.status(), 200);

    let plain = harness::client().get(format!("http://127.0.0.1:{port}/health")).send().await;
    assert!(plain.is_err(), "plain HTTP to the TLS port was answered: {plain:?}");
    let untrusting = harness::client().get(hearth.at("/health")).send().await;
    assert!(untrusting.is_err(), "a client that does not trust the certificate got through: {untrusting:?}");

    // The server is still fine after those failed handshakes.
    let again = client.get(hearth.at("/health")).send().await.expect("GET /health over HTTPS again");
    assert_eq!(again.status(), 200);
    hearth.stop().await;
}

#[tokio::test]
async fn production_without_https_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut command = harness::hearth(dir.path());
    command.arg("--data-dir").arg(&data).args(["--listen", "127.0.0.1:0"]).env("HEARTH_ENV", "production");
    let done = harness::run(command).await;
    assert!(!done.status.success(), "hearth started in production over plain HTTP:\n{}", done.stderr);
    assert!(done.stderr.contains("HTTPS"), "the error does not say why:\n{}", done.stderr);
    assert!(done.stderr.contains("server.tls"), "the error does not say what to set:\n{}", done.stderr);
    assert!(!data.exists(), "hearth created its data directory before refusing to start");
}

#[tokio::test]
async fn production_behind_a_trusted_proxy_starts_without_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [("HEARTH_ENV", "production"), ("HEARTH_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1\"]")];
    let hearth = Hearth::start(dir.path(), &dir.path().join("data"), &env).await;
    let client = harness::client();
    let direct = client.get(hearth.at("/health")).send().await.expect("GET /health");
    assert_eq!(direct.status(), 403, "plain HTTP not forwarded as HTTPS must be refused");
    let forwarded =
        client.get(hearth.at("/health")).header("x-forwarded-proto", "https").send().await.expect("GET /health");
    assert_eq!(forwarded.status(), 200);
    assert!(forwarded.headers().get("strict-transport-security").is_some(), "no HSTS in production");
    hearth.stop().await;
}

#[tokio::test]
async fn production_with_tls_sends_hsts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certificate = SelfSigned::create(dir.path());
    let hearth = start_tls(dir.path(), &certificate, &[("HEARTH_ENV", "production")]).await;
    let client = certificate.client();
    for path in ["/health", "/no/such/page"] {
        let response = client.get(hearth.at(path)).send().await.expect("GET over HTTPS");
        assert_eq!(response.status(), if path == "/health" { 200 } else { 404 });
        let hsts = response.headers().get("strict-transport-security").map(|v| v.to_str().expect("ASCII").to_owned());
        assert_eq!(hsts.as_deref(), Some("max-age=63072000; includeSubDomains"), "{path}");
    }
    hearth.stop().await;
}

/// A machine without CA certificates (a minimal container) still runs hearth: it warns at
/// start that providers reached over HTTPS will fail their certificate check, and the
/// assistant answers through a provider reached over plain HTTP.
#[tokio::test]
async fn hearth_runs_without_system_ca_certificates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let no_roots = dir.path().join("no-roots");
    std::fs::create_dir(&no_roots).expect("an empty certificate directory");
    std::fs::write(no_roots.join("roots.pem"), "").expect("an empty certificate file");
    let fake = hearth_fake_provider::FakeProvider::start().await.expect("start the fake provider");
    let groq = fake.base_url("groq").expect("the fake serves groq");
    let roots_file = no_roots.join("roots.pem").display().to_string();
    let roots_dir = no_roots.display().to_string();
    // rustls' platform verifier reads the system's roots from these when they are set.
    let env = [
        ("SSL_CERT_FILE", roots_file.as_str()),
        ("SSL_CERT_DIR", roots_dir.as_str()),
        ("HEARTH_AI__PROVIDERS__GROQ__BASE_URL", groq.as_str()),
        ("HEARTH_KEYGUARD__FREE_TIER__KEYS__GROQ", "[\"gsk_fake-ok-NOROOTS-0d5e27a9c4\"]"),
    ];
    let hearth = Hearth::start(dir.path(), &dir.path().join("data"), &env).await;
    let api = Api::new(harness::client(), &hearth.url);
    let account = json!({"email": "roots@example.org", "password": "no-roots-password-1", "display_name": "Roots"});
    let session = api.expect(201, Method::POST, "/auth/register", None, Some(account)).await;
    let (access, _) = crate::api::tokens(&session);
    let question = json!({"message": "still there?"});
    let reply = api.expect(200, Method::POST, "/api/chat/message", Some(&access), Some(question)).await;
    assert_eq!(reply["provider"], "groq", "the free tier's plain-HTTP provider answered: {reply}");
    let (lines, _) = hearth.stop().await;
    assert!(
        lines.iter().any(|line| line.contains("WARN") && line.contains("ca-certificates")),
        "no warning about the missing CA certificates:\n{}",
        lines.join("\n")
    );
}
