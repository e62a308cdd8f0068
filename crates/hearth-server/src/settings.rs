//! hearth's settings: one typed tree, layered defaults → TOML file → `HEARTH_*` environment
//! (nesting with `__`) → command-line flags, so the environment wins over the file.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use hearth_ai::{Providers, RouterSettings};
pub use hearth_keyguard::KeyguardSettings;
use hearth_vault::PasswordParams;
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The commented example of every setting that `hearth config` prints.
pub const EXAMPLE: &str = include_str!("settings_example.toml");

/// Development (HTTP on loopback allowed) or production (HTTPS only, HSTS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Plain HTTP allowed.
    #[default]
    Development,
    /// Plain HTTP refused; TLS or a trusted HTTPS proxy required; HSTS sent.
    Production,
}

/// Every setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `development` or `production`.
    pub env: Environment,
    /// Where the database, secrets and outbox live.
    pub data_dir: PathBuf,
    /// HTTP listener.
    pub server: ServerSettings,
    /// Storage.
    pub database: DatabaseSettings,
    /// Root secrets (generated into `data_dir` when not given).
    pub secrets: SecretSettings,
    /// Accounts and tokens.
    pub auth: AuthSettings,
    /// Outgoing email.
    pub email: EmailSettings,
    /// What people see of each other in the user directory.
    pub directory: DirectorySettings,
    /// Real-time sockets.
    pub realtime: RealtimeSettings,
    /// The assistant: providers, fallback, free tier and limits.
    pub ai: AiSettings,
    /// Where provider keys are sealed and used, and the free tier's keys.
    pub keyguard: KeyguardSettings,
    /// Logging.
    pub log: LogSettings,
    /// The server's administrators.
    pub admin: AdminSettings,
    /// Who may sign up.
    pub accounts: AccountsSettings,
    /// Rooms.
    pub rooms: RoomsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            env: Environment::default(),
            data_dir: PathBuf::from("hearth-data"),
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            secrets: SecretSettings::default(),
            auth: AuthSettings::default(),
            email: EmailSettings::default(),
            directory: DirectorySettings::default(),
            realtime: RealtimeSettings::default(),
            ai: AiSettings::default(),
            keyguard: KeyguardSettings::default(),
            log: LogSettings::default(),
            admin: AdminSettings::default(),
            accounts: AccountsSettings::default(),
            rooms: RoomsSettings::default(),
        }
    }
}

/// HTTP listener settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// Address to bind: `IP:PORT`, or `HOST:PORT` resolved once at start (`localhost:4000`).
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// Base URL people reach hearth at, used in email links. Defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// Longest a request may take before a 408.
    pub request_timeout_secs: u64,
    /// Proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Client addresses besides loopback that may read `/metrics`.
    pub metrics_from: Vec<IpAddr>,
    /// Origins allowed to call the API from a browser (CORS). Empty: same origin only.
    pub cors_origins: Vec<String>,
    /// Terminate TLS in hearth.
    pub tls: Option<TlsSettings>,
}

/// `server.listen` as `IP:PORT`, or as `HOST:PORT` resolved to its first address: people write
/// `localhost:4000`, and a bind needs an address.
fn listen_address<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    use std::net::ToSocketAddrs as _;
    let text = String::deserialize(deserializer)?;
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let mut resolved = text.to_socket_addrs().map_err(|error| {
        serde::de::Error::custom(format!("{text:?} is not HOST:PORT that resolves to an address ({error})"))
    })?;
    resolved.next().ok_or_else(|| serde::de::Error::custom(format!("{text:?} resolves to no address")))
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            public_url: None,
            request_timeout_secs: 30,
            trusted_proxies: Vec::new(),
            metrics_from: Vec::new(),
            cors_origins: Vec::new(),
            tls: None,
        }
    }
}

/// Certificate and key for TLS (PEM files).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsSettings {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// Storage settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://…`. Defaults to `sqlite://<data_dir>/hearth.db`.
    pub url: Option<String>,
    /// Connection pool size (SQLite reads use at most one connection per CPU core).
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { url: None, max_connections: 16 }
    }
}

/// Root secrets. Each may be given inline, as a file, or left out to be generated into the
/// data directory on first start.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SecretSettings {
    /// Signs access tokens and page tokens; at least 32 characters.
    pub secret_key_base: Option<SecretText>,
    /// File holding `secret_key_base`.
    pub secret_key_base_file: Option<PathBuf>,
    /// Vault key ring (`<version>:<base64 of 32 bytes>` per line).
    pub vault_key: Option<SecretText>,
    /// File holding the vault key ring.
    pub vault_key_file: Option<PathBuf>,
}

/// Accounts and tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// Access token lifetime.
    pub access_token_ttl_secs: i64,
    /// Refresh token lifetime.
    pub refresh_token_ttl_secs: i64,
    /// Email confirmation and email change link lifetime.
    pub email_token_ttl_secs: i64,
    /// Password reset link lifetime.
    pub password_reset_ttl_secs: i64,
    /// Device link code lifetime.
    pub device_link_ttl_secs: i64,
    /// Argon2id cost.
    pub password_hashing: PasswordParams,
    /// Hashes computed at once (0: one per CPU core).
    pub hashing_threads: usize,
    /// Login and password-reset attempts per client address per minute.
    pub attempts_per_address_per_minute: u32,
    /// Login attempts per account per minute.
    pub attempts_per_account_per_minute: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 30 * 60,
            refresh_token_ttl_secs: 14 * 24 * 60 * 60,
            email_token_ttl_secs: 24 * 60 * 60,
            password_reset_ttl_secs: 60 * 60,
            device_link_ttl_secs: 5 * 60,
            password_hashing: PasswordParams::default(),
            hashing_threads: 0,
            attempts_per_address_per_minute: 30,
            attempts_per_account_per_minute: 10,
        }
    }
}

/// Outgoing email.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailSettings {
    /// Sender address.
    pub from: String,
    /// SMTP relay; without one, messages are written to `<data_dir>/outbox/`.
    pub smtp: Option<SmtpSettings>,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self { from: "hearth <hearth@localhost>".into(), smtp: None }
    }
}

/// An SMTP relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpSettings {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: SmtpTls,
    /// User name, if the relay wants one.
    pub username: Option<String>,
    /// Password.
    pub password: Option<SecretText>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self { host: "localhost".into(), port: 587, tls: SmtpTls::Starttls, username: None, password: None }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (only for relays on the same machine).
    None,
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// TLS from the start (port 465).
    Tls,
}

/// The user directory (`directory.*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DirectorySettings {
    /// Whose email addresses a signed-in person sees.
    pub show_emails: ShowEmails,
}

/// Whose email addresses a signed-in person sees (`directory.show_emails`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShowEmails {
    /// Only of the people they share a conversation with (and of someone found by typing their
    /// exact address); everyone else's is `null`.
    #[default]
    Contacts,
    /// Everyone's (a server whose people all know each other, like a company's).
    Everyone,
}

/// The server's administrators (`admin.*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminSettings {
    /// The SSH public keys of the administrators: `authorized_keys` lines, each optionally
    /// prefixed by a principal as in OpenSSH's `allowed_signers` (default
    /// `<data_dir>/admin_keys`). Re-read when it changes.
    pub allowed_signers: Option<PathBuf>,
}

/// Rooms (`rooms.*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomsSettings {
    /// Members of a room see each other's presence only while it has at most this many
    /// members. Presence among N people costs N² pushes as they come and go, so big rooms share
    /// posts and typing but not presence, as Discord stops listing offline members past its
    /// "large threshold" (at most 250).
    pub presence_max_members: u32,
}

impl Default for RoomsSettings {
    fn default() -> Self {
        Self { presence_max_members: 250 }
    }
}

/// Who may sign up (`accounts.*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountsSettings {
    /// `open`, `invite` or `closed`.
    pub registration: Registration,
}

/// Who may make an account (`accounts.registration`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone (the zero-configuration start).
    #[default]
    Open,
    /// Whoever holds an invite code from an administrator (`POST /admin/invites`).
    Invite,
    /// Nobody.
    Closed,
}

/// Real-time sockets (Phoenix Channels at `/socket/websocket`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RealtimeSettings {
    /// A socket that sends nothing (not even a heartbeat) for this long is closed.
    pub idle_timeout_secs: u64,
    /// Largest frame accepted; larger ones close the socket with 1009.
    pub max_frame_bytes: usize,
    /// Events queued for one socket before it counts as too slow and is disconnected.
    pub socket_queue: usize,
    /// Channels one socket may join.
    pub max_channels: usize,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        Self { idle_timeout_secs: 60, max_frame_bytes: 2 * 1024 * 1024, socket_queue: 256, max_channels: 100 }
    }
}

/// The assistant (`ai.*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AiSettings {
    /// Provider order, the overall deadline and key cool-downs.
    #[serde(flatten)]
    pub routing: RouterSettings,
    /// Assistant requests one person may make per sliding window, with their own keys or not.
    pub requests_per_window: u32,
    /// The sliding window's length.
    pub window_secs: u64,
    /// Characters of earlier turns of a thread sent along as context.
    pub context_chars: usize,
    /// What the assistant is told about itself before every conversation.
    pub system_prompt: String,
    /// `ai.operators`, retired: operators are the accounts an administrator granted the
    /// `operator` role. Noticed (never read) so that a server still given it refuses to start
    /// rather than ignore it.
    #[serde(rename = "operators", skip_serializing)]
    pub retired_operators: Option<IgnoredAny>,
    /// Replies on the operator's keys.
    pub free_tier: FreeTierSettings,
    /// Where and how each provider is called (`ai.providers.<name>.*`).
    pub providers: Providers,
}

impl Default for AiSettings {
    fn default() -> Self {
        Self {
            routing: RouterSettings::default(),
            requests_per_window: 30,
            window_secs: 60,
            context_chars: 12_000,
            system_prompt:
                "You are the assistant of hearth, a self-hosted chat server. Answer helpfully and concisely, \
                            in plain text."
                    .to_owned(),
            retired_operators: None,
            free_tier: FreeTierSettings::default(),
            providers: Providers::default(),
        }
    }
}

/// The free tier: the operator's keys (`keyguard.free_tier.keys`, held by the keyguard) serve
/// people who have none of their own, within daily allowances counted per UTC day.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FreeTierSettings {
    /// Text replies per person per UTC day.
    pub text_per_day: u32,
    /// Generated images per person per UTC day.
    pub images_per_day: u32,
    /// `ai.free_tier.keys`, the operator's keys' old place, noticed (never read) so that a
    /// server still given them refuses to start rather than serve without them.
    #[serde(rename = "keys", skip_serializing)]
    pub moved_keys: Option<IgnoredAny>,
}

impl Default for FreeTierSettings {
    fn default() -> Self {
        Self { text_per_day: 20, images_per_day: 5, moved_keys: None }
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// `tracing` filter directives (`RUST_LOG` overrides).
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { filter: "info,sqlx=warn".into() }
    }
}

/// A secret string from the settings: hidden from `Debug`, written as `<redacted>` when the
/// settings are serialized.
#[derive(Clone)]
pub struct SecretText(SecretString);

impl SecretText {
    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Self {
        Self(SecretString::from(text.into()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

impl Settings {
    /// Layers defaults, the TOML file (if any), then `HEARTH_*` variables from `env`.
    /// `HEARTH_CONFIG` (the file's path) and `HEARTH_TEST_*` are not settings.
    pub fn figment(file: Option<&Path>, env: Env) -> Figment {
        // Each provider's defaults differ (its own URL and model), so serde's field defaults
        // cannot fill in a provider that a file or variable names only partly: the defaults are
        // laid down first instead, and what is given is merged over them.
        let mut figment = Figment::new().merge(Serialized::default("ai.providers", Providers::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment.merge(env.filter(|key| key != "config" && !key.as_str().starts_with("test_")).split("__"))
    }

    /// The administrators' keys file, `admin.allowed_signers` or `<data_dir>/admin_keys`.
    pub fn admin_keys_file(&self) -> PathBuf {
        self.admin.allowed_signers.clone().unwrap_or_else(|| self.data_dir.join("admin_keys"))
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database.url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("hearth.db").display()))
    }

    /// The base URL for links in emails.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let scheme = if self.server.tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{bound}")
            }
        }
    }
}

impl AiSettings {
    /// Refuses the retired `ai.operators`, saying what replaced it.
    pub fn refuse_retired(&self) -> Result<(), crate::error::ServerError> {
        if self.retired_operators.is_some() {
            return Err(crate::error::ServerError::Config(
                "ai.operators is retired: operators are accounts an administrator grants the operator role \
                 (hearth admin users grant operator EMAIL, or POST /admin/users/{id}/roles); remove ai.operators"
                    .into(),
            ));
        }
        Ok(())
    }
}
