//! The keyguard as the server sets it up: in this process from the settings, or a client of one
//! running on its own (`keyguard.connect`); and the master key's rotation and retirement.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hearth_ai::ApiKey;
use hearth_keyguard::remote::Connection;
use hearth_keyguard::{Endpoint, Keyguard, KeyguardOptions, LocalKeyguard, Owner, RemoteKeyguard, StoredKey};
use hearth_store::{KeyOwner, Store, StoredProviderKey};
use hearth_vault::KeyRing;

use crate::error::ServerError;
use crate::settings::Settings;

pub use hearth_keyguard::certs::TlsFiles;

/// Writes a CA, keyguard and client certificates to `dir` (`hearth keyguard certs`); returns
/// the directory.
pub fn certificates(dir: &std::path::Path, names: &[String]) -> Result<PathBuf, ServerError> {
    hearth_keyguard::certs::generate(dir, names).map_err(|e| ServerError::Config(e.to_string()))?;
    Ok(dir.to_owned())
}

/// The master key ring's file.
pub fn master_key_file(settings: &Settings) -> PathBuf {
    settings.keyguard.master_key_file.clone().unwrap_or_else(|| settings.data_dir.join("keyguard_key"))
}

/// The keyguard the server uses: a client of `keyguard.connect`, or one in this process.
pub fn build(settings: &Settings) -> Result<Arc<dyn Keyguard>, ServerError> {
    let Some(address) = &settings.keyguard.connect else {
        return Ok(Arc::new(local(settings)?));
    };
    if !settings.ai.free_tier.keys.is_empty() {
        tracing::warn!(
            "ai.free_tier.keys is ignored here: the keyguard at keyguard.connect holds the free tier's keys"
        );
    }
    let endpoint = Endpoint::parse(address).map_err(|e| ServerError::Config(e.to_string()))?;
    let tls = match (&settings.keyguard.ca, &settings.keyguard.cert, &settings.keyguard.key) {
        (Some(ca), Some(cert), Some(key)) => Some(TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() }),
        _ => None,
    };
    let connection = Connection { endpoint, tls, server_name: settings.keyguard.server_name.clone() };
    let remote = RemoteKeyguard::new(&connection).map_err(|e| ServerError::Config(e.to_string()))?;
    tracing::info!(keyguard = %address, "provider keys are sealed and used by the keyguard at this address");
    Ok(Arc::new(remote))
}

/// The keyguard in this process (`hearth serve` by default, and `hearth keyguard`): the master
/// key ring from its file (created on first start), the providers and the free tier's keys from
/// the settings.
pub fn local(settings: &Settings) -> Result<LocalKeyguard, ServerError> {
    let file = master_key_file(settings);
    let ring = read_or_create_ring(&file)?;
    let free_tier = settings
        .ai
        .free_tier
        .keys
        .iter()
        .flat_map(|(provider, keys)| keys.iter().map(|key| (*provider, ApiKey::new(key.expose()))))
        .collect();
    LocalKeyguard::new(KeyguardOptions {
        ring,
        ring_file: Some(file),
        providers: settings.ai.providers.clone(),
        routing: settings.ai.routing.clone(),
        free_tier,
    })
    .map_err(|e| ServerError::Config(e.to_string()))
}

fn read_or_create_ring(file: &std::path::Path) -> Result<KeyRing, ServerError> {
    let unreadable = |e: String| ServerError::Secret(format!("keyguard master key {}: {e}", file.display()));
    match std::fs::read_to_string(file) {
        Ok(text) => KeyRing::parse(&zeroize::Zeroizing::new(text)).map_err(|e| unreadable(e.to_string())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let ring = KeyRing::generate();
            if let Some(parent) = file.parent() {
                crate::secrets::ensure_data_dir(parent)?;
            }
            hearth_vault::write_ring(file, &ring).map_err(|e| unreadable(e.to_string()))?;
            tracing::info!(path = %file.display(), "created the keyguard master key (mode 0600); keep a backup of it apart from the database");
            Ok(ring)
        }
        Err(error) => Err(unreadable(error.to_string())),
    }
}

/// A stored row as the keyguard takes it.
pub fn stored_key(row: &StoredProviderKey) -> Option<StoredKey> {
    let provider = row.provider.parse().ok()?;
    Some(StoredKey { id: row.id, owner: owner(row.owner), provider, sealed: row.sealed.clone() })
}

/// A row's owner as the keyguard binds it into the sealed key.
pub fn owner(owner: KeyOwner) -> Owner {
    match owner {
        KeyOwner::User(user) => Owner::User(user),
        KeyOwner::Pool => Owner::Pool,
    }
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The new master key version.
    pub version: u32,
    /// Stored keys re-sealed under it.
    pub rewrapped: usize,
}

/// Adds a master key version and re-seals every stored key's data key under it, while servers
/// and keyguards keep running: they read the new version from the file when they meet it (and
/// before every seal), and each row is replaced only if it did not change meanwhile. Passes
/// repeat until no key is left under an older version.
pub async fn rotate(settings: &Settings, store: &dyn Store) -> Result<Rotation, ServerError> {
    let file = master_key_file(settings);
    let mut ring = read_or_create_ring(&file)?;
    let version = ring.add_version();
    hearth_vault::write_ring(&file, &ring)
        .map_err(|e| ServerError::Secret(format!("cannot write {}: {e}", file.display())))?;
    tracing::info!(version, path = %file.display(), "keyguard master key version added");
    let keyguard = local(settings)?;
    let mut rewrapped = 0;
    for pass in 0.. {
        let mut changed = 0;
        let mut after = None;
        loop {
            let rows = store.all_provider_keys(after, 500).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.id);
            for row in rows.iter().filter(|row| row.master_version < version) {
                let Some(key) = stored_key(row) else { continue };
                match keyguard.rewrap(&key).await {
                    Ok(Some((sealed, new_version))) => {
                        if store.replace_sealed_provider_key(row.id, &row.sealed, &sealed, new_version).await? {
                            changed += 1;
                        }
                    }
                    Ok(None) => {}
                    Err(error) => tracing::error!(key = %row.id, %error, "a stored key did not re-seal"),
                }
            }
        }
        rewrapped += changed;
        let behind: u64 =
            store.provider_key_versions().await?.iter().filter(|(v, _)| *v < version).map(|(_, n)| n).sum();
        if behind == 0 || pass >= 10 {
            break;
        }
        // A keyguard may have sealed a new key under the old version just before it read the
        // file; give it a moment and go again.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Rotation { version, rewrapped })
}

/// Drops master key `version` from the ring file. Refused while stored keys are still sealed
/// under it (they would never open again) and for the newest version.
pub async fn retire(settings: &Settings, store: &dyn Store, version: u32) -> Result<(), ServerError> {
    let file = master_key_file(settings);
    let mut ring = read_or_create_ring(&file)?;
    let still = store.provider_key_versions().await?.into_iter().find(|(v, _)| *v == version).map_or(0, |(_, n)| n);
    if still > 0 {
        return Err(ServerError::Config(format!(
            "{still} stored key(s) are still sealed under version {version}; run `hearth keyguard rotate` first"
        )));
    }
    ring.retire(version).map_err(|e| ServerError::Config(format!("master key version {version}: {e}")))?;
    hearth_vault::write_ring(&file, &ring)
        .map_err(|e| ServerError::Secret(format!("cannot write {}: {e}", file.display())))?;
    tracing::info!(version, "keyguard master key version retired");
    Ok(())
}

/// Runs the keyguard as its own process (`hearth keyguard --listen …`) until `shutdown`:
/// `unix:PATH` (the socket made readable by this user only) or `tcp:HOST:PORT` with mutual TLS
/// (`tls`: its CA, certificate and key; clients need a certificate from the same CA).
pub async fn serve(
    settings: &Settings,
    listen: &str,
    tls: Option<TlsFiles>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    use hearth_keyguard::remote::Listener;
    let keyguard = Arc::new(local(settings)?);
    let setup = |e: hearth_keyguard::KeyguardError| ServerError::Config(e.to_string());
    let listener = match Endpoint::parse(listen).map_err(setup)? {
        Endpoint::Unix(path) => {
            // A socket file left by an earlier run that did not stop cleanly.
            if std::os::unix::net::UnixStream::connect(&path).is_err() {
                let _ = std::fs::remove_file(&path);
            }
            let listener = tokio::net::UnixListener::bind(&path)?;
            #[cfg(unix)]
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            tracing::info!(socket = %path.display(), "keyguard listening");
            Listener::Unix(listener)
        }
        Endpoint::Tcp(address) => {
            let files = tls.ok_or_else(|| {
                ServerError::Config(
                    "a keyguard on TCP needs --ca, --cert and --key (see `hearth keyguard certs`)".into(),
                )
            })?;
            let config = hearth_keyguard::certs::server_config(&files).map_err(setup)?;
            let listener = tokio::net::TcpListener::bind(&address).await?;
            tracing::info!(address = %listener.local_addr()?, "keyguard listening (mutual TLS)");
            Listener::tls(listener, config)
        }
    };
    hearth_keyguard::remote::serve(listener, keyguard, shutdown).await;
    if let Endpoint::Unix(path) = Endpoint::parse(listen).map_err(setup)? {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
