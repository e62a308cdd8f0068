//! `hearth vault rotate` while the server runs and requests flow: every sealed private key
//! ends up under the new key version and still opens, for the running server too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hearth_server::Settings;
use hearth_vault::seal::blob_version;
use serde_json::json;

use crate::channels::{Peer, jwk};
use crate::harness::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_reseals_everything_while_requests_flow() {
    let app = spawn_app().await;
    let (ann_s, bob_s) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let mut ann = Peer::connect(&app, &ann_s).await;
    let mut bob = Peer::connect(&app, &bob_s).await;
    let topic = format!("conversation:{}", ann.start_private(&bob.id, "a", json!({"k": "ann-0"})).await);
    bob.ok(&topic, "phx_join", json!({})).await;
    bob.ok(&topic, "set_encryption_keys", json!({"public_key": jwk("b"), "private_key": {"k": "bob"}})).await;
    ann.ok(&topic, "phx_join", json!({})).await;
    // Bob's identity private key is sealed too.
    let identity = json!({
        "identity_key": {"signing": jwk("bob-s"), "agreement": jwk("bob-a")},
        "identity_private_key": {"signing": "v1.bob-s", "agreement": "v1.bob-a"},
    });
    let request = app.request(reqwest::Method::PUT, "/api/identity_key", Some(&bob_s.auth_token));
    assert_eq!(app.send(request.json(&identity)).await.status, reqwest::StatusCode::NO_CONTENT);

    let settings = Settings { data_dir: app.data_dir.path().to_owned(), ..Settings::default() };
    let url = format!("sqlite://{}", app.data_dir.path().join("hearth.db").display());
    let store = hearth_store::connect(&hearth_store::ConnectOptions { url, max_connections: 2 }).await.expect("store");

    // Ann keeps replacing her key (sealed by the server) while the rotation runs.
    let rotating = Arc::new(AtomicBool::new(true));
    let flag = rotating.clone();
    let rotation = tokio::spawn(async move {
        let result = hearth_server::vault::rotate(&settings, store.as_ref()).await;
        flag.store(false, Ordering::SeqCst);
        result
    });
    let mut last = 0;
    while rotating.load(Ordering::SeqCst) {
        last += 1;
        ann.ok(
            &topic,
            "set_encryption_keys",
            json!({"public_key": jwk("a"), "private_key": {"k": format!("ann-{last}")}}),
        )
        .await;
        let joined = ann.ok(&topic, "phx_join", json!({})).await;
        assert_eq!(joined["private_key"], json!({"k": format!("ann-{last}")}), "opens throughout the rotation");
    }
    let rotation = rotation.await.expect("task").expect("rotated");
    assert_eq!(rotation.version, 2);
    // Bob's keys changed only by rotation; Ann's may already be re-sealed by the server.
    assert!(rotation.rewrapped >= 2, "{rotation:?}");

    let ring = std::fs::read_to_string(app.data_dir.path().join("vault_key")).expect("ring");
    assert_eq!(ring.lines().count(), 2, "versions 1 and 2");
    let url = format!("sqlite://{}", app.data_dir.path().join("hearth.db").display());
    let store = hearth_store::connect(&hearth_store::ConnectOptions { url, max_connections: 1 }).await.expect("store");
    let rows = store.sealed_private_keys(None, 100).await.expect("rows");
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(
            blob_version(&row.sealed_private_key).expect("blob"),
            2,
            "everything is sealed under the new version"
        );
    }
    let identities = store.sealed_identity_private_keys(None, 100).await.expect("identities");
    assert_eq!(identities.len(), 1);
    assert_eq!(blob_version(&identities[0].1).expect("blob"), 2, "the identity's is re-sealed too");
    // The running server opens them all (it reloaded the ring).
    assert_eq!(bob.ok(&topic, "phx_join", json!({})).await["private_key"], json!({"k": "bob"}));
    let me = app.me(&bob_s.auth_token).await;
    assert_eq!(me.json["identity_private_key"], identity["identity_private_key"]);
    assert_eq!(ann.ok(&topic, "phx_join", json!({})).await["private_key"], json!({"k": format!("ann-{last}")}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_vault_key_cannot_be_rotated() {
    let mut settings = Settings::default();
    settings.secrets.vault_key =
        Some(hearth_server::settings::SecretText::new("1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
    let store =
        hearth_store::connect(&hearth_store::ConnectOptions { url: "sqlite::memory:".into(), max_connections: 1 })
            .await
            .expect("store");
    let error = hearth_server::vault::rotate(&settings, store.as_ref()).await.expect_err("refused");
    assert!(error.to_string().contains("vault_key_file"), "{error}");
}
