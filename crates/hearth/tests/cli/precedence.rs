//! Which layer wins: defaults < TOML file < `HEARTH_*` environment < flags. `hearth migrate`
//! shows it: it creates whichever SQLite file the winning `database.url` names.

use std::path::{Path, PathBuf};

use crate::harness;

/// A temp dir with `hearth.toml` setting `data_dir` and `database.url` (file `a.db`).
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let toml = format!(
            "data_dir = {:?}\n\n[database]\nurl = {:?}\n",
            dir.path().join("data").display().to_string(),
            sqlite_url(&dir.path().join("a.db")),
        );
        std::fs::write(dir.path().join("hearth.toml"), toml).expect("write the config");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self, name: &str) -> String {
        sqlite_url(&self.path(name))
    }

    /// Which of the candidate database files exist.
    fn databases(&self) -> Vec<&'static str> {
        ["a.db", "b.db", "c.db", "data/hearth.db"].into_iter().filter(|name| self.path(name).exists()).collect()
    }

    async fn migrate(&self, command: std::process::Command) {
        let done = harness::run(command).await;
        assert!(done.status.success(), "hearth migrate failed:\n{}", done.stderr);
        assert!(done.stderr.contains("migrations applied"), "no migration line:\n{}", done.stderr);
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn the_file_beats_the_defaults() {
    let setup = Setup::new();
    let mut command = harness::hearth(setup.dir.path());
    command.arg("--config").arg(setup.path("hearth.toml")).arg("migrate");
    setup.migrate(command).await;
    assert_eq!(setup.databases(), ["a.db"]);
}

#[tokio::test]
async fn the_environment_beats_the_file() {
    let setup = Setup::new();
    let mut command = harness::hearth(setup.dir.path());
    command.arg("--config").arg(setup.path("hearth.toml")).arg("migrate");
    command.env("HEARTH_DATABASE__URL", setup.url("b.db"));
    setup.migrate(command).await;
    assert_eq!(setup.databases(), ["b.db"]);
}

#[tokio::test]
async fn flags_beat_the_environment() {
    let setup = Setup::new();
    let mut command = harness::hearth(setup.dir.path());
    command.arg("--config").arg(setup.path("hearth.toml")).arg("migrate");
    command.arg("--database-url").arg(setup.url("c.db"));
    command.env("HEARTH_DATABASE__URL", setup.url("b.db"));
    setup.migrate(command).await;
    assert_eq!(setup.databases(), ["c.db"]);
}

#[tokio::test]
async fn flags_before_the_subcommand_beat_the_environment_too() {
    let setup = Setup::new();
    let mut command = harness::hearth(setup.dir.path());
    command.arg("--config").arg(setup.path("hearth.toml"));
    command.arg("--database-url").arg(setup.url("c.db")).arg("migrate");
    command.env("HEARTH_DATABASE__URL", setup.url("b.db"));
    setup.migrate(command).await;
    assert_eq!(setup.databases(), ["c.db"]);
}

#[tokio::test]
async fn hearth_config_names_the_file() {
    let setup = Setup::new();
    let mut command = harness::hearth(setup.dir.path());
    command.arg("migrate").env("HEARTH_CONFIG", setup.path("hearth.toml"));
    setup.migrate(command).await;
    assert_eq!(setup.databases(), ["a.db"]);
}

#[tokio::test]
async fn the_config_flag_beats_hearth_config() {
    let setup = Setup::new();
    let mut command = harness::hearth(setup.dir.path());
    command.arg("--config").arg(setup.path("hearth.toml")).arg("migrate");
    command.env("HEARTH_CONFIG", setup.path("missing.toml"));
    setup.migrate(command).await;
    assert_eq!(setup.databases(), ["a.db"]);
}

#[tokio::test]
async fn a_missing_config_file_is_an_error() {
    let setup = Setup::new();
    let mut command = harness::hearth(setup.dir.path());
    command.arg("migrate").env("HEARTH_CONFIG", setup.path("missing.toml"));
    let done = harness::run(command).await;
    assert!(!done.status.success(), "a missing config file was ignored:\n{}", done.stderr);
    assert!(done.stderr.contains("missing.toml"), "the error does not name the file:\n{}", done.stderr);
    assert_eq!(setup.databases(), Vec::<&str>::new());
}

#[tokio::test]
async fn serve_takes_flags_on_either_side_of_the_subcommand() {
    let setup = Setup::new();
    let mut command = harness::hearth(setup.dir.path());
    command.arg("--data-dir").arg(setup.path("flagged")).args(["serve", "--listen", "127.0.0.1:0"]);
    command.env("HEARTH_DATA_DIR", setup.path("from-env"));
    let hearth = harness::Hearth::spawn(command).await;
    assert_ne!(hearth.addr.port(), 0);
    hearth.stop().await;
    assert!(setup.path("flagged/hearth.db").is_file(), "--data-dir before `serve` was ignored");
    assert!(!setup.path("from-env").exists() && !setup.path("hearth-data").exists());
}
