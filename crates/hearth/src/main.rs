//! `hearth`: the one binary. `hearth` alone (or `hearth serve`) runs the server;
//! `hearth migrate` applies database migrations; `hearth config` prints every setting.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use hearth_server::Settings;
use hearth_server::settings::EXAMPLE;
use tracing_subscriber::EnvFilter;

/// A self-hosted chat server with end-to-end encrypted conversations and an AI assistant.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, about)]
struct Cli {
    /// TOML settings file (settings in HEARTH_* environment variables win over it).
    #[arg(long, global = true, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeFlags,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeFlags),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseFlags),
    /// Print a commented example of every setting.
    Config,
    /// Manage the vault key that seals values at rest.
    #[command(subcommand)]
    Vault(VaultCommand),
}

#[derive(Debug, Subcommand)]
enum VaultCommand {
    /// Add a key version and re-seal every sealed value under it (servers may keep running:
    /// they pick up the new key from the file).
    Rotate(DatabaseFlags),
}

/// Flags that override settings (they win over the file and the environment).
#[derive(Debug, Args, Default)]
struct ServeFlags {
    /// Address to listen on (server.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    database: DatabaseFlags,
}

#[derive(Debug, Args, Default)]
struct DatabaseFlags {
    /// Data directory (data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL (database.url).
    #[arg(long)]
    database_url: Option<String>,
}

impl DatabaseFlags {
    fn apply(&self, figment: figment::Figment) -> figment::Figment {
        let mut figment = figment;
        if let Some(dir) = &self.data_dir {
            figment = figment.merge(("data_dir", dir));
        }
        if let Some(url) = &self.database_url {
            figment = figment.merge(("database.url", url));
        }
        figment
    }
}

fn settings(cli: &Cli, flags: impl FnOnce(figment::Figment) -> figment::Figment) -> anyhow::Result<Settings> {
    let figment = Settings::figment(cli.config.as_deref(), figment::providers::Env::prefixed("HEARTH_"));
    flags(figment).extract().context("invalid settings")
}

fn init_logging(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log.filter));
    // Colour only on a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Config) => {
            print!("{EXAMPLE}");
            Ok(())
        }
        Some(Command::Migrate(flags)) => {
            // Flags before the subcommand count too; those after it win.
            let settings = settings(&cli, |f| flags.apply(cli.serve.database.apply(f)))?;
            init_logging(&settings);
            std::fs::create_dir_all(&settings.data_dir).context("cannot create the data directory")?;
            let store =
                hearth_store::open(&hearth_store::ConnectOptions { url: settings.database_url(), max_connections: 1 })
                    .await?;
            let applied = store.migrate().await?;
            tracing::info!(backend = store.backend(), applied, "migrations applied");
            Ok(())
        }
        Some(Command::Vault(VaultCommand::Rotate(flags))) => {
            let settings = settings(&cli, |f| flags.apply(cli.serve.database.apply(f)))?;
            init_logging(&settings);
            let store = hearth_store::connect(&hearth_store::ConnectOptions {
                url: settings.database_url(),
                max_connections: 2,
            })
            .await?;
            let rotation = hearth_server::vault::rotate(&settings, store.as_ref()).await?;
            println!(
                "vault key version {} added; {} sealed value(s) re-sealed under it",
                rotation.version, rotation.rewrapped
            );
            Ok(())
        }
        Some(Command::Serve(flags)) => serve(&cli, flags).await,
        None => serve(&cli, &cli.serve).await,
    }
}

impl ServeFlags {
    fn apply(&self, figment: figment::Figment) -> figment::Figment {
        let mut figment = figment;
        if let Some(listen) = self.listen {
            figment = figment.merge(("server.listen", listen.to_string()));
        }
        self.database.apply(figment)
    }
}

async fn serve(cli: &Cli, flags: &ServeFlags) -> anyhow::Result<()> {
    // Flags before the subcommand count too; those after it win.
    let settings = settings(cli, |f| flags.apply(cli.serve.apply(f)))?;
    init_logging(&settings);
    // Every socket is an open file: use all the open files the system allows (the soft
    // limit is often 1 024 while the hard one is far higher).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-files limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open-files limit"),
    }
    let data_dir = settings.data_dir.clone();
    let server = hearth_server::Server::build(settings).await?;
    let scheme = if server.uses_tls() { "https" } else { "http" };
    let shutdown = shutdown_signal()?;
    tracing::info!(data_dir = %data_dir.display(), "hearth listening on {scheme}://{}", server.local_addr());
    server.run(shutdown).await?;
    tracing::info!("hearth stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call, not on first
/// poll, so a signal sent as soon as the server says it is listening is not missed (it
/// would otherwise kill the process outright instead of shutting it down gracefully).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
