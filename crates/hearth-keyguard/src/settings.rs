//! The keyguard's settings (`keyguard.*`) and the keyguard they make: one in this process, or a
//! client of one running on its own (`keyguard.connect`).
//!
//! The operator's free-tier keys are among them (`keyguard.free_tier.keys`): the keyguard that
//! makes the provider calls is the one that reads them, and a keyguard made from these settings
//! takes them out, so whatever holds the settings afterwards no longer has them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_ai::{ApiKey, ProviderName, Providers, RouterSettings};
use serde::{Deserialize, Serialize};

use crate::certs::TlsFiles;
use crate::remote::Connection;
use crate::{Endpoint, Keyguard, KeyguardError, KeyguardOptions, LocalKeyguard, RemoteKeyguard, master_key};

/// The keyguard (`keyguard.*`): in this process, or reached at `connect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyguardSettings {
    /// A keyguard in its own process: `unix:PATH` or `tcp:HOST:PORT`. Unset: in this process.
    pub connect: Option<String>,
    /// For TCP: the CA both sides' certificates come from.
    pub ca: Option<PathBuf>,
    /// For TCP: this server's client certificate.
    pub cert: Option<PathBuf>,
    /// For TCP: its private key.
    pub key: Option<PathBuf>,
    /// For TCP: the keyguard's name in its certificate (defaults to the host in `connect`).
    pub server_name: Option<String>,
    /// The master key ring file (defaults to `<data_dir>/keyguard_key`).
    pub master_key_file: Option<PathBuf>,
    /// One cheap call with a newly configured key before it is stored.
    pub live_check: bool,
    /// How long a `/configure` link, which brings a key to the keyguard, works.
    pub link_ttl_secs: i64,
    /// The operator's keys, which serve the free tier.
    pub free_tier: FreeTierKeys,
}

impl Default for KeyguardSettings {
    fn default() -> Self {
        Self {
            connect: None,
            ca: None,
            cert: None,
            key: None,
            server_name: None,
            master_key_file: None,
            live_check: true,
            link_ttl_secs: 600,
            free_tier: FreeTierKeys::default(),
        }
    }
}

/// The operator's keys (`keyguard.free_tier.*`), read by the keyguard alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FreeTierKeys {
    /// Per provider, tried in order. Taken unchecked: they are the operator's own.
    #[serde(with = "operator_keys")]
    pub keys: BTreeMap<ProviderName, Vec<ApiKey>>,
}

impl KeyguardSettings {
    /// The master key ring's file: `master_key_file`, or `keyguard_key` in `data_dir`.
    pub fn master_key_file(&self, data_dir: &Path) -> PathBuf {
        self.master_key_file.clone().unwrap_or_else(|| data_dir.join("keyguard_key"))
    }

    /// The keyguard to use: a client of `connect`, or one in this process (see [`Self::local`]).
    /// Either way the free tier's keys are taken out of these settings; a client drops them
    /// with a warning, as the keyguard it reaches holds its own.
    pub fn build(
        &mut self,
        data_dir: &Path,
        providers: &Providers,
        routing: &RouterSettings,
    ) -> Result<Arc<dyn Keyguard>, KeyguardError> {
        let Some(address) = &self.connect else {
            return Ok(Arc::new(self.local(data_dir, providers, routing)?));
        };
        if !std::mem::take(&mut self.free_tier.keys).is_empty() {
            tracing::warn!(
                "keyguard.free_tier.keys is ignored here: the keyguard at keyguard.connect holds the free tier's keys"
            );
        }
        let tls = match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => {
                Some(TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() })
            }
            _ => None,
        };
        let connection = Connection { endpoint: Endpoint::parse(address)?, tls, server_name: self.server_name.clone() };
        let remote = RemoteKeyguard::new(&connection)?;
        tracing::info!(keyguard = %address, "provider keys are sealed and used by the keyguard at this address");
        Ok(Arc::new(remote))
    }

    /// The keyguard in this process (`hearth serve` by default, and `hearth keyguard`): the
    /// master key ring from its file (created on first start), the free tier's keys taken out
    /// of these settings, the providers called as `providers` and `routing` say.
    pub fn local(
        &mut self,
        data_dir: &Path,
        providers: &Providers,
        routing: &RouterSettings,
    ) -> Result<LocalKeyguard, KeyguardError> {
        let file = self.master_key_file(data_dir);
        let ring = master_key::read_or_create(&file)?;
        let free_tier = std::mem::take(&mut self.free_tier.keys)
            .into_iter()
            .flat_map(|(provider, keys)| keys.into_iter().map(move |key| (provider, key)))
            .collect();
        LocalKeyguard::new(KeyguardOptions {
            ring,
            ring_file: Some(file),
            providers: providers.clone(),
            routing: routing.clone(),
            free_tier,
        })
    }
}

/// The operator's keys as settings hold them: read as given, written as `<redacted>`.
mod operator_keys {
    use std::collections::BTreeMap;

    use hearth_ai::{ApiKey, ProviderName};
    use serde::{Deserialize as _, Deserializer, Serialize as _, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(
        keys: &BTreeMap<ProviderName, Vec<ApiKey>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let redacted: BTreeMap<ProviderName, Vec<&str>> =
            keys.iter().map(|(provider, keys)| (*provider, vec!["<redacted>"; keys.len()])).collect();
        redacted.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<ProviderName, Vec<ApiKey>>, D::Error> {
        let given = BTreeMap::<ProviderName, Vec<Zeroizing<String>>>::deserialize(deserializer)?;
        Ok(given
            .into_iter()
            .map(|(provider, keys)| (provider, keys.iter().map(|key| ApiKey::new(key.as_str())).collect()))
            .collect())
    }
}
