//! `hearth chat`: a terminal client of a hearth server, on the SDK (`hearth-client`). The
//! `hearth` binary parses the command line and calls [`run`].
//!
//! - `app.rs`: the state, and how network updates change it;
//! - `input.rs`: what each key does;
//! - `render.rs`: drawing the state (ratatui);
//! - `network.rs`: the task that talks to the server (REST and socket) and holds the SDK's
//!   `Keyring`, which does all the end-to-end encryption and decides whose keys to trust;
//! - `trust_file.rs`: where the keyring's pins are kept between runs (the configuration
//!   directory: `--config-dir`/`HEARTH_CONFIG_DIR`, else `$XDG_CONFIG_HOME/hearth`, else
//!   `$HOME/.config/hearth`);
//! - `session_file.rs`: the kept session (a refresh token and the wrap key, 0600), so the
//!   client starts signed in on the same device; [`logout`] ends it;
//! - `editor.rs`: the one-line editor of the forms and the composer.
//!
//! The loop here draws, then waits for whichever comes first: a key, an update from the
//! network task, or a tick (typing indicators expire on their own). Nothing it does waits
//! on the network, and nothing the server sends can end it: failures are shown in the
//! status line.

mod app;
mod editor;
mod error;
mod input;
mod network;
mod render;
mod session_file;
mod trust_file;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream};
use futures::StreamExt as _;

use app::App;
pub use error::RunError;

/// How often the screen is redrawn when nothing happens (typing indicators expire).
const TICK: Duration = Duration::from_secs(1);

/// Puts the terminal back as it was, however the client ends (a panic too: ratatui's hook).
struct RestoreTerminal;

impl Drop for RestoreTerminal {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Whether the terminal (by `$TERM`) may be sent OSC 8 hyperlinks: every terminal that does
/// not know them ignores them, but the Linux console and dumb terminals print them.
fn hyperlinks_supported(term: Option<&str>) -> bool {
    !matches!(term, None | Some("" | "dumb" | "linux"))
}

/// Makes the links drawn this frame clickable (OSC 8): each is written again over itself,
/// the same characters, inside a hyperlink to its whole address (the label may be shortened
/// to fit). ratatui cannot draw hyperlinks itself (its cells hold characters, and an escape
/// sequence in one upsets its widths), so this goes to the terminal after each frame.
fn link(links: &[app::DrawnLink]) -> std::io::Result<()> {
    if links.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    crossterm::queue!(out, crossterm::cursor::SavePosition)?;
    for drawn in links {
        crossterm::queue!(
            out,
            crossterm::cursor::MoveTo(drawn.x, drawn.y),
            crossterm::style::SetAttribute(crossterm::style::Attribute::Underlined),
            crossterm::style::Print(format!("\x1b]8;;{}\x1b\\{}\x1b]8;;\x1b\\", drawn.url, drawn.label)),
            crossterm::style::SetAttribute(crossterm::style::Attribute::Reset),
        )?;
    }
    crossterm::queue!(out, crossterm::cursor::RestorePosition)?;
    out.flush()
}

/// The configuration directory: `config_dir` (`--config-dir`, `HEARTH_CONFIG_DIR`) if given,
/// else `$XDG_CONFIG_HOME/hearth`, else `$HOME/.config/hearth`; `None` when there is none (no
/// `HOME`). `hearth admin` keeps its admin token there too.
pub fn config_dir(config_dir: Option<&std::path::Path>) -> Option<PathBuf> {
    trust_file::resolve(config_dir).ok()
}

/// `hearth chat --logout`: signs the kept session's device out on the server at `server`
/// (when it can be reached) and forgets the session. What happened, in words.
pub async fn logout(server: &str, config_dir: Option<PathBuf>) -> Result<String, RunError> {
    let mut client = hearth_client::api::Client::new(server).map_err(RunError::InvalidServer)?;
    let file = session_file::SessionFile::new(config_dir.as_deref(), server).map_err(RunError::Logout)?;
    let Some(kept) = file.load().map_err(RunError::Logout)? else {
        return Ok(format!("no session kept for {server}: nothing to sign out"));
    };
    let signed_out = match client.refresh_session(&kept.refresh_token).await {
        Ok(_) => {
            let device = client.identity().map(|identity| identity.device_id);
            match device {
                Some(device) => client.revoke_device(device).await.map_err(error::ChatError::from),
                None => Ok(()),
            }
        }
        Err(error) => Err(error.into()),
    };
    file.remove().map_err(RunError::Logout)?;
    Ok(match signed_out {
        Ok(()) => format!("signed out of {server}; the kept session {} is removed", file.path().display()),
        Err(error) if error.needs_sign_in() => {
            format!("the kept session for {server} had ended already; it is removed")
        }
        Err(error) => format!(
            "the kept session is removed, but this device could not be signed out ({}): \
             sign it out from another device's list of devices",
            error.describe(server)
        ),
    })
}

/// Runs the client against the server at `server` until the person quits. What it trusts
/// (contacts' security keys) is kept in `config_dir`, or in the default configuration
/// directory when `None` (see the crate's documentation).
pub async fn run(server: &str, config_dir: Option<PathBuf>) -> Result<(), RunError> {
    // A bad URL is reported before the terminal is taken over.
    hearth_client::api::Client::new(server).map_err(RunError::InvalidServer)?;
    let (commands, mut updates, network) = network::spawn(server.to_owned(), config_dir);
    let mut terminal = ratatui::try_init().map_err(RunError::TakeOver)?;
    let _restore = RestoreTerminal;
    let mut app = App::new(server);
    let hyperlinks = hyperlinks_supported(std::env::var("TERM").ok().as_deref());
    let mut keys = EventStream::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut network_running = true;
    while !app.quit {
        terminal.draw(|frame| render::draw(frame, &mut app)).map_err(RunError::Draw)?;
        if hyperlinks {
            link(&app.links).map_err(RunError::Draw)?;
        }
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(Event::Key(key))) => app.on_key(key, Instant::now()),
                // Resizes and the rest only need the redraw.
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(RunError::ReadKeys(error)),
                None => break,
            },
            update = updates.recv(), if network_running => match update {
                Some(update) => app.apply(update, Instant::now()),
                None => {
                    network_running = false;
                    app.error("the connection to the server ended; quit and start again");
                }
            },
            _ = ticker.tick() => app.tick(Instant::now()),
        }
        for command in app.take_commands() {
            // The task ends only when `commands` is dropped, below.
            let _ = commands.send(command);
        }
    }
    // Dropping the sender ends the network task, which closes the socket: the server then
    // tells others at once that this device left, rather than when its heartbeat times out.
    drop(commands);
    let _ = tokio::time::timeout(Duration::from_secs(2), network).await;
    Ok(())
}
