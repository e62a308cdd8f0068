//! `hearth`: the one binary. `hearth` alone (or `hearth serve`) runs the server;
//! `hearth migrate` applies database migrations; `hearth config` prints every setting;
//! `hearth backup` and `hearth restore` copy the database out and back in;
//! `hearth chat` is a terminal client (the `hearth-chat` crate); `hearth admin` signs an
//! administrator in with an SSH key and reads the audit log (`admin.rs`). This crate parses the
//! command line, layers the settings and hands each subcommand to the library crate that
//! does it.

mod admin;
mod logging;

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
    /// Copy the database into a new FILE while servers keep running (SQLite; for PostgreSQL,
    /// explain pg_dump), and name the key files to keep apart from it.
    Backup(BackupArgs),
    /// Restore a backup FILE into an empty (or new) data directory; then put the key files back.
    Restore(RestoreArgs),
    /// Print a commented example of every setting.
    Config,
    /// Manage the vault key that seals values at rest.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Run the keyguard as its own process (`--listen`), or manage its master key and
    /// certificates. The keyguard seals people's AI-provider keys and makes the provider calls
    /// with them; nothing else ever holds a key in clear.
    Keyguard(KeyguardArgs),
    /// Chat in the terminal: a client of a hearth server, end-to-end encrypted like the web
    /// client (the password never leaves this computer).
    ///
    /// Each contact's security key is remembered the first time it is seen, in a file per
    /// server and account under the configuration directory's `trust/`; a different key later
    /// is shown as a change, and nothing is sent to that person until it is accepted.
    ///
    /// The session is kept between runs (the same device, no password asked): its refresh
    /// token and the key that opens the account's keys, in `sessions/` under the configuration
    /// directory, readable by you only. `--logout` signs the device out and removes it.
    /// Images the assistant makes are saved under `images/` there.
    Chat(ChatArgs),
    /// An administrator's commands against a server: `login` with an SSH key listed in its
    /// admin.allowed_signers (the admin token is kept, readable by you only, in the same
    /// configuration directory as `hearth chat`'s files), and `audit` to read the audit log.
    Admin(admin::AdminArgs),
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// The file to write; it must not exist yet.
    file: PathBuf,
    #[command(flatten)]
    database: DatabaseFlags,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// A file `hearth backup` wrote.
    file: PathBuf,
    #[command(flatten)]
    database: DatabaseFlags,
}

#[derive(Debug, Args)]
struct ChatArgs {
    /// The server's URL.
    #[arg(long, default_value = "http://127.0.0.1:4000")]
    server: String,
    /// Where the client keeps what it trusts (contacts' security keys, in `trust/`), its
    /// session (`sessions/`) and the assistant's images (`images/`). By default
    /// `$XDG_CONFIG_HOME/hearth`, or `$HOME/.config/hearth`.
    #[arg(long, env = "HEARTH_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Sign this device out of the server (if it can be reached) and forget the kept session.
    #[arg(long)]
    logout: bool,
    /// The server's settings file is not the client's: declared here (hidden) so that the
    /// global `--config` is not listed in `hearth chat --help`, and refused if given.
    #[arg(long, hide = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct KeyguardArgs {
    #[command(subcommand)]
    command: Option<KeyguardCommand>,
    /// Where to listen: `unix:PATH`, or `tcp:HOST:PORT` with mutual TLS (then --ca, --cert, --key).
    #[arg(long, required = true)]
    listen: Option<String>,
    /// The CA whose certificates clients must present (TCP only).
    #[arg(long, requires_all = ["cert", "key"])]
    ca: Option<PathBuf>,
    /// The keyguard's certificate (TCP only).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Its private key (TCP only).
    #[arg(long)]
    key: Option<PathBuf>,
    #[command(flatten)]
    database: DatabaseFlags,
}

#[derive(Debug, Subcommand)]
enum KeyguardCommand {
    /// Make a CA, a keyguard certificate and a client certificate for the server (PEM files).
    Certs {
        /// Directory to write them to.
        #[arg(long)]
        out: PathBuf,
        /// Names the keyguard is reached at (DNS names or IP addresses).
        #[arg(long = "name", default_values = ["localhost", "127.0.0.1"])]
        names: Vec<String>,
    },
    /// Add a master key version and re-seal every stored key under it (servers and keyguards
    /// keep running: they pick the new version up from the file).
    Rotate(DatabaseFlags),
    /// Drop an old master key version (refused while stored keys are still sealed under it).
    Retire {
        /// The version to drop.
        version: u32,
        #[command(flatten)]
        database: DatabaseFlags,
    },
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
    /// Address to listen on, IP:PORT or HOST:PORT such as localhost:4000 (server.listen).
    #[arg(long)]
    listen: Option<String>,
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
    if let Some(file) = cli.config.as_deref() {
        hearth_server::settings_names::check_file(file)?;
    }
    let figment = Settings::figment(cli.config.as_deref(), figment::providers::Env::prefixed("HEARTH_"));
    flags(figment).extract().context("invalid settings")
}

fn init_logging(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log.filter));
    // Colour only on a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(logging::RedactedStderr).with_ansi(ansi).init();
    // Names only: a variable's value may be a secret.
    let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    for warning in hearth_server::settings_names::unknown_variables(names) {
        tracing::warn!("{warning}");
    }
}

/// mimalloc rather than glibc's allocator: measured alternately on one VM, 5 % less CPU per
/// assistant request and 3 % less per message sent, for 0.2–0.3 KiB more per open socket
/// (`bench/RESULTS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Some(Command::Backup(args)) => backup(&cli, args),
        Some(Command::Restore(args)) => restore(&cli, args),
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
        Some(Command::Keyguard(args)) => keyguard(&cli, args).await,
        // No logging: the terminal is the client's screen.
        Some(Command::Chat(args)) if args.config.is_some() => anyhow::bail!(
            "`hearth chat` takes no --config (the server's settings file); its own files are under --config-dir"
        ),
        Some(Command::Chat(args)) if args.logout => {
            println!("{}", hearth_chat::logout(&args.server, args.config_dir.clone()).await?);
            Ok(())
        }
        Some(Command::Chat(args)) => Ok(hearth_chat::run(&args.server, args.config_dir.clone()).await?),
        // No logging either: what it says is its output.
        Some(Command::Admin(args)) => admin::run(args).await,
        Some(Command::Serve(flags)) => serve(&cli, flags).await,
        None => serve(&cli, &cli.serve).await,
    }
}

impl ServeFlags {
    fn apply(&self, figment: figment::Figment) -> figment::Figment {
        let mut figment = figment;
        if let Some(listen) = &self.listen {
            figment = figment.merge(("server.listen", listen.as_str()));
        }
        self.database.apply(figment)
    }
}

async fn keyguard(cli: &Cli, args: &KeyguardArgs) -> anyhow::Result<()> {
    if let Some(KeyguardCommand::Certs { out, names }) = &args.command {
        hearth_keyguard::certs::generate(out, names)?;
        println!(
            "wrote {dir}: ca.crt, ca.key (keep it offline), keyguard.crt/.key (for `hearth keyguard --listen tcp:…`), \
             client.crt/.key (keyguard.cert and keyguard.key of `hearth serve`)",
            dir = out.display()
        );
        return Ok(());
    }
    let database = match &args.command {
        Some(KeyguardCommand::Rotate(flags)) | Some(KeyguardCommand::Retire { database: flags, .. }) => flags,
        _ => &args.database,
    };
    let mut settings = settings(cli, |f| database.apply(args.database.apply(cli.serve.database.apply(f))))?;
    init_logging(&settings);
    let store = || async {
        hearth_store::connect(&hearth_store::ConnectOptions { url: settings.database_url(), max_connections: 2 }).await
    };
    match &args.command {
        Some(KeyguardCommand::Rotate(_)) => {
            let rotation = hearth_server::keyguard::rotate(&settings, store().await?.as_ref()).await?;
            println!(
                "keyguard master key version {} added; {} stored key(s) re-sealed under it",
                rotation.version, rotation.rewrapped
            );
        }
        Some(KeyguardCommand::Retire { version, .. }) => {
            hearth_server::keyguard::retire(&settings, store().await?.as_ref(), *version).await?;
            println!("keyguard master key version {version} retired");
        }
        Some(KeyguardCommand::Certs { .. }) | None => {
            let listen = args.listen.as_deref().context("--listen is required")?;
            let tls = match (&args.ca, &args.cert, &args.key) {
                (Some(ca), Some(cert), Some(key)) => {
                    Some(hearth_keyguard::certs::TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() })
                }
                _ => None,
            };
            let keyguard = hearth_server::keyguard::local(&mut settings)?;
            hearth_keyguard::remote::serve_at(keyguard, listen, tls, shutdown_signal()?).await?;
            tracing::info!("keyguard stopped");
        }
    }
    Ok(())
}

fn backup(cli: &Cli, args: &BackupArgs) -> anyhow::Result<()> {
    let settings = settings(cli, |f| args.database.apply(cli.serve.database.apply(f)))?;
    init_logging(&settings);
    let keys = hearth_server::backup::key_files(&settings);
    match hearth_server::backup::backup(&settings, &args.file)? {
        hearth_server::backup::Backup::Made(contents) => {
            println!("backup written to {}: {}", args.file.display(), describe(&contents));
            println!(
                "It holds no key. Keep these apart from it (whoever has both opens what they seal), and bring them \
                 back with it to restore:"
            );
            print_key_files(&keys);
            Ok(())
        }
        hearth_server::backup::Backup::Postgres => {
            println!("{}", hearth_server::backup::POSTGRES_BACKUP);
            println!("Keep these apart from the copy (whoever has both opens what they seal):");
            print_key_files(&keys);
            anyhow::bail!("no backup made: the database is PostgreSQL (pg_dump, as above)")
        }
    }
}

fn restore(cli: &Cli, args: &RestoreArgs) -> anyhow::Result<()> {
    let settings = settings(cli, |f| args.database.apply(cli.serve.database.apply(f)))?;
    init_logging(&settings);
    let contents = hearth_server::backup::restore(&settings, &args.file)?;
    println!("restored {} into {}: {}", args.file.display(), settings.data_dir.display(), describe(&contents));
    println!(
        "Before starting hearth, put back the key files kept apart from the backup (started without them, hearth \
         makes new keys and nothing the old ones sealed opens):"
    );
    print_key_files(&hearth_server::backup::key_files(&settings));
    Ok(())
}

fn describe(contents: &hearth_store::backup::BackupContents) -> String {
    format!(
        "{} account(s), {} conversation(s), {} message(s), {} provider key(s), {} KiB",
        contents.accounts,
        contents.conversations,
        contents.messages,
        contents.provider_keys,
        contents.bytes.div_ceil(1024)
    )
}

fn print_key_files(keys: &[hearth_server::backup::KeyFile]) {
    for key in keys {
        println!("  {}\n      {}", key.place, key.what);
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
