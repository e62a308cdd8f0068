//! The real server, in-process on `127.0.0.1:0` with a temporary data directory and cheap
//! password hashing, shared by the integration tests.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;

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
