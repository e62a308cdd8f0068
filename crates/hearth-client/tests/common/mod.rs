//! The real server, in-process on `127.0.0.1:0` with a temporary data directory and cheap
//! password hashing, shared by the integration tests.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hearth_client::api::Client;
use hearth_client::e2e;
use hearth_server::Settings;
use hearth_server::settings::SecretText;
use hearth_vault::PasswordParams;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple";

/// A running server; dropping it stops the server.
pub struct TestServer {
    pub base_url: String,
    _data_dir: TempDir,
    _shutdown: oneshot::Sender<()>,
}

impl TestServer {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        let mut settings = Settings::default();
        settings.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.data_dir = data_dir.path().to_path_buf();
        settings.secrets.secret_key_base = Some(SecretText::new("hearth-client-tests-secret-key-base-0123456789"));
        settings.auth.password_hashing = PasswordParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
        settings.auth.attempts_per_address_per_minute = 100_000;
        settings.auth.attempts_per_account_per_minute = 100_000;
        configure(&mut settings);
        let server = hearth_server::Server::build(settings).await.expect("build the server");
        let base_url = format!("http://{}", server.local_addr());
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.await;
            };
            if let Err(error) = server.run(stopped).await {
                eprintln!("test server failed: {error}");
            }
        });
        Self { base_url, _data_dir: data_dir, _shutdown: shutdown }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self._data_dir.path()
    }

    /// The code of the newest email to `to` whose subject contains `subject`, from the
    /// outbox the server writes emails to when no SMTP relay is set (waiting for it: the
    /// server sends in the background).
    pub async fn emailed_code(&self, to: &str, subject: &str) -> String {
        let outbox = self.data_dir().join("outbox");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut found: Vec<(String, String)> = std::fs::read_dir(&outbox)
                .into_iter()
                .flatten()
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    // A file still being written is read again on the next round.
                    let text = decode_quoted_printable(&std::fs::read_to_string(entry.path()).ok()?);
                    let addressed = text.lines().any(|l| l.to_lowercase().starts_with("to:") && l.contains(to));
                    let about = text.lines().any(|l| l.starts_with("Subject:") && l.contains(subject));
                    let code = text.split("Or enter this code in the app: ").nth(1)?.split_whitespace().next()?;
                    (addressed && about).then(|| (name, code.to_owned()))
                })
                .collect();
            // File names start with the time in milliseconds.
            found.sort_by_key(|(name, _)| name.split('-').next().and_then(|ms| ms.parse::<u64>().ok()));
            if let Some((_, code)) = found.pop() {
                return code;
            }
            assert!(tokio::time::Instant::now() < deadline, "no {subject:?} email to {to} in {}", outbox.display());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base_url).expect("client")
    }

    /// A client registered as `email` with [`PASSWORD`].
    pub async fn registered(&self, email: &str) -> Client {
        let mut client = self.client();
        client.register(email, PASSWORD, None, Some("first device")).await.expect("register");
        client
    }

    /// An access token of a fresh session of `email` (signed in with [`PASSWORD`]'s
    /// `auth_secret`, as the SDK does): `api::Client` keeps its own tokens to itself.
    pub async fn access_token(&self, email: &str) -> String {
        let owned = email.to_owned();
        let auth_secret =
            tokio::task::spawn_blocking(move || e2e::derive(&owned, PASSWORD).auth_secret).await.expect("derive");
        let reply: Value = reqwest::Client::new()
            .post(format!("{}/auth/login", self.base_url))
            .json(&json!({ "email": email, "password": auth_secret, "device_name": "socket" }))
            .send()
            .await
            .expect("send")
            .error_for_status()
            .expect("signed in")
            .json()
            .await
            .expect("a session reply");
        reply["auth_token"].as_str().expect("an access token").to_owned()
    }
}

/// Undoes quoted-printable (`=` line ends vanish, `=XX` is a byte); an outbox file that is
/// not valid quoted-printable yet (still being written) is left as it is.
fn decode_quoted_printable(text: &str) -> String {
    match quoted_printable::decode(text, quoted_printable::ParseMode::Robust) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => text.to_owned(),
    }
}
