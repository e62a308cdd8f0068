//! The master key ring's file: read, or created on first start.

use std::path::Path;

use hearth_vault::KeyRing;
use zeroize::Zeroizing;

use crate::KeyguardError;

/// The ring in `file`; a new ring written there (mode 0600, its directory 0700) when there is
/// none yet.
pub(crate) fn read_or_create(file: &Path) -> Result<KeyRing, KeyguardError> {
    let unreadable = |e: String| KeyguardError::Setup(format!("keyguard master key {}: {e}", file.display()));
    match std::fs::read_to_string(file) {
        Ok(text) => KeyRing::parse(&Zeroizing::new(text)).map_err(|e| unreadable(e.to_string())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let ring = KeyRing::generate();
            if let Some(parent) = file.parent().filter(|parent| !parent.as_os_str().is_empty() && !parent.is_dir()) {
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder.create(parent).map_err(|e| unreadable(e.to_string()))?;
            }
            write(file, &ring)?;
            tracing::info!(path = %file.display(), "created the keyguard master key (mode 0600); keep a backup of it apart from the database");
            Ok(ring)
        }
        Err(error) => Err(unreadable(error.to_string())),
    }
}

/// Writes `ring` to `file` (mode 0600).
pub(crate) fn write(file: &Path, ring: &KeyRing) -> Result<(), KeyguardError> {
    hearth_vault::write_ring(file, ring)
        .map_err(|e| KeyguardError::Setup(format!("cannot write {}: {e}", file.display())))
}
