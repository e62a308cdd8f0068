//! hearth's server: the domain (accounts, conversations, presence, the assistant) and its two
//! adapters, the HTTP API and the Phoenix Channels sockets, on top of `hearth-store`,
//! `hearth-vault` and `hearth-keyguard`. `docs/ARCHITECTURE.md` draws the map.
//!
//! [`Server::build`] prepares everything from [`Settings`] (data directory, secrets,
//! database and migrations) and binds the listener; [`Server::run`] serves until the
//! shutdown future completes. Tests bind port 0 and read [`Server::local_addr`].

mod accounts;
pub mod admin;
pub mod assistant;
mod auth;
pub mod backup;
mod conversations;
mod email;
mod error;
mod events;
mod extract;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub(crate) mod http;
pub mod keyguard;
pub mod metrics;
mod page_token;
mod presence;
mod realtime;
mod rooms;
mod secrets;
pub mod settings;
pub mod settings_names;
mod state;
pub mod vault;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;

pub use error::{ApiError, ServerError};
pub use http::openapi_document;
pub use settings::Settings;

use crate::auth::{AccessTokens, AttemptLimiter, PasswordPool, Sessions};
use crate::email::Mailer;
use crate::page_token::PageTokens;
use crate::settings::Environment;
use crate::state::AppState;

/// A ready-to-run server.
#[derive(Debug)]
pub struct Server {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    app: axum::Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    attempts: AttemptLimiter,
    vault: Arc<vault::Vault>,
    hub: Arc<realtime::hub::Hub>,
}

impl Server {
    /// Prepares the data directory, secrets, database (migrated) and listener.
    pub async fn build(mut settings: Settings) -> Result<Self, ServerError> {
        if settings.env == Environment::Production
            && settings.server.tls.is_none()
            && settings.server.trusted_proxies.is_empty()
        {
            return Err(ServerError::Config(
                "production mode needs HTTPS: set server.tls (cert and key) or list your proxy in \
                 server.trusted_proxies"
                    .into(),
            ));
        }
        secrets::ensure_data_dir(&settings.data_dir)?;
        let secrets = secrets::RootSecrets::load(&settings.secrets, &settings.data_dir)?;
        let store = hearth_store::connect(&hearth_store::ConnectOptions {
            url: settings.database_url(),
            max_connections: settings.database.max_connections,
        })
        .await?;

        let tls = match &settings.server.tls {
            Some(tls) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                    .await
                    .map_err(|e| ServerError::Config(format!("TLS certificate or key: {e}")))?,
            ),
            None => None,
        };
        let listener = bind(settings.server.listen)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;

        let auth = &settings.auth;
        let passwords = PasswordPool::new(auth.password_hashing, auth.hashing_threads)
            .map_err(|e| ServerError::Config(format!("auth.password_hashing: {e}")))?;
        let attempts = AttemptLimiter::new(auth.attempts_per_address_per_minute, auth.attempts_per_account_per_minute);
        let mailer = Mailer::new(&settings.email, settings.data_dir.join("outbox"))
            .map_err(|e| ServerError::Config(format!("email: {e}")))?;
        let public_url: Arc<str> = settings.public_url(local_addr).into();
        let metrics = Arc::new(metrics::Metrics::default());
        let hub = Arc::new(realtime::hub::Hub::new(metrics.clone()));
        // A ring read from a file is reloaded when `hearth vault rotate` changes it.
        let vault = Arc::new(vault::Vault::new(secrets.vault, vault::ring_file(&settings).ok()));
        let socket_config = realtime::socket::socket_config(&settings.realtime);
        let knowledge = assistant::knowledge::load(&settings.data_dir.join("knowledge"))
            .map_err(|e| ServerError::Config(format!("knowledge base: {e}")))?;
        store.replace_knowledge(&knowledge).await?;
        let knowledge = assistant::knowledge::KnowledgeBase::new(&knowledge);
        log_free_tier(&settings.keyguard);
        // Before the settings are shared: the free tier's keys leave them for the keyguard.
        settings.ai.refuse_retired()?;
        let keyguard = keyguard::build(&mut settings.keyguard, &settings.data_dir, &settings.ai)?;
        let assistant =
            Arc::new(assistant::Assistant::new(&settings.ai, keyguard, knowledge, store.clone(), metrics.clone()));
        let admins = Arc::new(admin::Admins::new(settings.admin_keys_file(), public_url.clone()));
        let state = AppState {
            sessions: Sessions::new(AccessTokens::new(&secrets.server, auth.access_token_ttl_secs), store.clone()),
            page_tokens: PageTokens::new(&secrets.server),
            settings: Arc::new(settings),
            store,
            passwords,
            attempts: attempts.clone(),
            mailer: Arc::new(mailer),
            public_url,
            vault: vault.clone(),
            hub: hub.clone(),
            presence: Arc::default(),
            pubsub: Arc::new(realtime::pubsub::InProcess::new(hub.clone())),
            socket_config,
            assistant,
            admins,
            metrics,
        };
        let app = http::router(state, realtime::routes());
        Ok(Self { listener, local_addr, app, tls, attempts, vault, hub })
    }

    /// The bound address (the real port when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the server terminates TLS itself.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        let (attempts, vault) = (self.attempts.clone(), self.vault.clone());
        let housekeeping = tokio::spawn(async move {
            let mut every_minute = tokio::time::interval(Duration::from_secs(60));
            let mut vault_check = tokio::time::interval(vault::RELOAD_INTERVAL);
            loop {
                tokio::select! {
                    _ = every_minute.tick() => attempts.shrink(),
                    // A cheap stat; the ring is re-read only when its file changed.
                    _ = vault_check.tick() => { vault.reload_if_changed(); }
                }
            }
        });
        // On shutdown, sockets are closed with 1001 (clients reconnect) rather than dropped.
        let hub = self.hub.clone();
        let shutdown = async move {
            shutdown.await;
            let open = hub.close_all();
            if open > 0 {
                tracing::info!(sockets = open, "closing sockets");
            }
        };
        let result = match self.tls {
            None => {
                // Connections whose outbox lets a broadcast be written without waking the
                // socket's task (phoenix_channels::server::Listener).
                let listener =
                    phoenix_channels::server::Listener::from(tokio::net::TcpListener::from_std(self.listener)?)
                        .tap_io(send_without_delay);
                axum::serve(listener, phoenix_channels::server::ServeConnections(self.app))
                    .with_graceful_shutdown(shutdown)
                    .await
                    .map_err(ServerError::from)
            }
            Some(tls) => {
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    stopper.graceful_shutdown(Some(Duration::from_secs(10)));
                });
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                    .acceptor(axum_server::accept::NoDelayAcceptor::new());
                axum_server::from_tcp(self.listener)?
                    .acceptor(acceptor)
                    .handle(handle)
                    .serve(self.app.into_make_service_with_connect_info::<SocketAddr>())
                    .await
                    .map_err(ServerError::from)
            }
        };
        housekeeping.abort();
        // The sockets were told to close; give them a moment to send their close frames before
        // the process ends (a client that does not read cannot hold shutdown up for long).
        if tokio::time::timeout(Duration::from_secs(2), self.hub.all_closed()).await.is_err() {
            tracing::info!("some sockets had not finished closing");
        }
        result
    }
}

/// Turns Nagle's algorithm off on an accepted connection. A socket's pushes are small frames
/// written as they happen; with Nagle on, a frame written while the previous one is unacknowledged
/// waits for the peer's delayed ACK (40 ms on Linux), which is what a chat server must not do.
fn send_without_delay(connection: &mut phoenix_channels::server::Connection) {
    if let Err(error) = connection.tcp().set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY could not be set on a connection");
    }
}

/// The listening socket, or an error that names the address: "address already in use" alone
/// does not say which one, nor what to do.
fn bind(address: SocketAddr) -> Result<std::net::TcpListener, ServerError> {
    std::net::TcpListener::bind(address).map_err(|error| {
        let hint = match error.kind() {
            std::io::ErrorKind::AddrInUse => {
                " (another program, or another hearth, listens there: stop it or choose another with --listen)"
            }
            std::io::ErrorKind::AddrNotAvailable => " (no network interface of this machine has that address)",
            std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges: choose a higher one)",
            _ => "",
        };
        ServerError::Config(format!("server.listen: cannot listen on {address}: {error}{hint}"))
    })
}

/// Says at start which providers the assistant's free tier has operator keys for: how many,
/// never the keys themselves (or that the keyguard in its own process holds them).
fn log_free_tier(keyguard: &hearth_keyguard::KeyguardSettings) {
    if let Some(connect) = &keyguard.connect {
        tracing::info!(keyguard = %connect, "the assistant's free tier: its operator keys are the keyguard's");
        return;
    }
    let counts: Vec<String> = keyguard
        .free_tier
        .keys
        .iter()
        .filter(|(_, keys)| !keys.is_empty())
        .map(|(provider, keys)| format!("{provider} {}", keys.len()))
        .collect();
    if counts.is_empty() {
        tracing::info!("the assistant's free tier has no operator keys: people add their own with /configure");
    } else {
        tracing::info!(keys = %counts.join(", "), "the assistant's free tier: operator keys per provider");
    }
}
