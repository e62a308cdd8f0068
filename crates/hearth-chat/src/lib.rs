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
mod trust_file;

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
    let mut keys = EventStream::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut network_running = true;
    while !app.quit {
        terminal.draw(|frame| render::draw(frame, &mut app)).map_err(RunError::Draw)?;
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
