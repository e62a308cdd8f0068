//! `hearth` with no configuration at all: everything goes into `./hearth-data/`, the root
//! secrets are generated once (mode 0600) and reused on every later start.

use std::os::unix::fs::PermissionsExt as _;

use crate::harness::{self, Hearth};

async fn start_bare(cwd: &std::path::Path) -> Hearth {
    let mut command = harness::hearth(cwd);
    command.args(["--listen", "127.0.0.1:0"]);
    Hearth::spawn(command).await
}

async fn assert_healthy(hearth: &Hearth) {
    let response = harness::client().get(hearth.at("/health")).send().await.expect("GET /health");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("health is JSON");
    assert_eq!(body, serde_json::json!({"status": "ok", "database": "ok"}));
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn first_start_creates_the_data_dir_and_later_starts_reuse_its_secrets() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let data = cwd.path().join("hearth-data");

    let first = start_bare(cwd.path()).await;
    assert_eq!(first.addr.ip().to_string(), "127.0.0.1");
    assert!(first.url.starts_with("http://"), "{}", first.url);
    assert_healthy(&first).await;
    for name in ["hearth.db", "secret_key_base", "vault_key"] {
        assert!(data.join(name).is_file(), "{name} is missing from {}", data.display());
    }
    assert_eq!(mode(&data), 0o700, "the new data directory is not private");
    assert_eq!(mode(&data.join("secret_key_base")), 0o600);
    assert_eq!(mode(&data.join("vault_key")), 0o600);
    let secret_key_base = std::fs::read(data.join("secret_key_base")).expect("read secret_key_base");
    let vault_key = std::fs::read(data.join("vault_key")).expect("read vault_key");
    assert!(secret_key_base.len() >= 64, "secret_key_base is short");
    // An access token signed now must still be good after a restart.
    let registered = harness::client()
        .post(first.at("/auth/register"))
        .json(&serde_json::json!({"email": "restart@example.org", "password": "restart password"}))
        .send()
        .await
        .expect("POST /auth/register");
    assert_eq!(registered.status(), 201);
    let registered: serde_json::Value = registered.json().await.expect("session JSON");
    let access_token = registered["auth_token"].as_str().expect("auth_token").to_owned();
    let (lines, _) = first.stop().await;
    let log = lines.join("\n");
    assert!(log.contains("created secret_key_base (mode 0600)"), "{log}");
    assert!(log.contains("created vault_key (mode 0600)"), "{log}");

    let second = start_bare(cwd.path()).await;
    assert_healthy(&second).await;
    let me = harness::client().get(second.at("/api/me")).bearer_auth(&access_token).send().await.expect("GET /api/me");
    assert_eq!(me.status(), 200, "a token from before the restart no longer works");
    let (lines, _) = second.stop().await;
    let log = lines.join("\n");
    assert!(!log.contains("created secret_key_base"), "secrets were generated again:\n{log}");
    assert!(!log.contains("created vault_key"), "secrets were generated again:\n{log}");
    assert!(!log.contains("readable by other users"), "{log}");
    assert_eq!(std::fs::read(data.join("secret_key_base")).expect("read secret_key_base"), secret_key_base);
    assert_eq!(std::fs::read(data.join("vault_key")).expect("read vault_key"), vault_key);
    assert_eq!(mode(&data.join("secret_key_base")), 0o600);
    assert_eq!(mode(&data.join("vault_key")), 0o600);
}
