//! The server's root secrets: taken from the settings (inline or a file), or read from —
//! and on first start generated into — the data directory with mode 0600.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hearth_vault::{KeyRing, ServerSecret};
use zeroize::Zeroizing;

use crate::error::ServerError;
use crate::settings::{SecretSettings, SecretText};

/// The secrets the server runs with.
#[derive(Debug)]
pub struct RootSecrets {
    /// Signs tokens.
    pub server: ServerSecret,
    /// Seals values at rest.
    pub vault: KeyRing,
}

impl RootSecrets {
    /// Loads or creates both secrets.
    pub fn load(settings: &SecretSettings, data_dir: &Path) -> Result<Self, ServerError> {
        let server_text = secret_text(
            "secret_key_base",
            settings.secret_key_base.as_ref(),
            settings.secret_key_base_file.as_deref(),
            data_dir,
            ServerSecret::generate_text,
        )?;
        let server = ServerSecret::from_text(&server_text).map_err(|e| ServerError::Secret(e.to_string()))?;
        let vault_text = secret_text(
            "vault_key",
            settings.vault_key.as_ref(),
            settings.vault_key_file.as_deref(),
            data_dir,
            || KeyRing::generate().to_text(),
        )?;
        let vault = KeyRing::parse(&vault_text).map_err(|e| ServerError::Secret(format!("vault_key: {e}")))?;
        Ok(Self { server, vault })
    }
}

fn secret_text(
    name: &str,
    inline: Option<&SecretText>,
    file: Option<&Path>,
    data_dir: &Path,
    generate: impl FnOnce() -> Zeroizing<String>,
) -> Result<Zeroizing<String>, ServerError> {
    if let Some(inline) = inline {
        return Ok(Zeroizing::new(inline.expose().to_owned()));
    }
    if let Some(file) = file {
        return read_secret(file);
    }
    let path: PathBuf = data_dir.join(name);
    if path.exists() {
        warn_if_readable_by_others(&path);
        return read_secret(&path);
    }
    let text = generate();
    write_secret(&path, &text)?;
    tracing::info!(path = %path.display(), "created {name} (mode 0600); keep a backup of it");
    Ok(text)
}

fn read_secret(path: &Path) -> Result<Zeroizing<String>, ServerError> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| ServerError::Secret(format!("cannot read {}: {e}", path.display())))
}

fn write_secret(path: &Path, text: &str) -> Result<(), ServerError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file =
        options.open(path).map_err(|e| ServerError::Secret(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| ServerError::Secret(format!("cannot write {}: {e}", path.display())))
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "secret file is readable by other users; chmod 600 it");
        }
    }
}

/// Creates the data directory (mode 0700 when new).
pub fn ensure_data_dir(data_dir: &Path) -> Result<(), ServerError> {
    if data_dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(data_dir).map_err(|e| ServerError::Secret(format!("cannot create {}: {e}", data_dir.display())))
}
