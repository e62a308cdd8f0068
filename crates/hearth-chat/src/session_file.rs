//! The kept session: what lets the client start signed in, on the same device, without the
//! password: `<config>/sessions/<host>_<port>.json` (see `trust_file.rs` for `<config>`).
//!
//! It holds the device session's refresh token (single use: the newest replaces it at every
//! refresh) and the wrap key derived from the password at sign-in, which opens the account's
//! keys, as the web client keeps its wrap key in the browser. Both are secrets: the file is
//! readable by its owner only (0600, in a 0700 directory), replaced whole (written beside it,
//! then renamed), never printed. `hearth chat --logout` signs the device out and removes it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_client::e2e::WrapKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::error::ChatError;
use super::trust_file::{resolve, server_stem};

/// A session kept from an earlier run. Its `Debug` shows only whose it is.
pub struct KeptSession {
    /// Whose session it is.
    pub user_id: Uuid,
    /// The newest refresh token of the device session.
    pub refresh_token: Zeroizing<String>,
    /// The wrap key derived at sign-in.
    pub wrap_key: WrapKey,
}

impl std::fmt::Debug for KeptSession {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("KeptSession").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

/// The file's contents. No `Debug`: it holds secrets.
#[derive(Serialize, Deserialize)]
struct Stored {
    user_id: Uuid,
    refresh_token: String,
    /// The wrap key's 32 bytes, base64url.
    wrap_key: String,
}

impl Drop for Stored {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.refresh_token);
        zeroize::Zeroize::zeroize(&mut self.wrap_key);
    }
}

/// The session file of one server.
#[derive(Debug, Clone)]
pub struct SessionFile {
    path: PathBuf,
}

impl SessionFile {
    /// The session file for `server` under `config_dir` (else the default directory).
    pub fn new(config_dir: Option<&Path>, server: &str) -> Result<Self, ChatError> {
        let path = resolve(config_dir)?.join("sessions").join(format!("{}.json", server_stem(server)?));
        Ok(Self { path })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kept session, if there is one. A file that cannot be read as one is reported (the
    /// person then signs in, which replaces it).
    pub fn load(&self) -> Result<Option<KeptSession>, ChatError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.failed("cannot read", &error)),
        };
        let unusable = || ChatError::Refused(format!("the kept session {} is not usable", self.path.display()));
        // Not the parser's message: it may quote the file.
        let stored: Stored = serde_json::from_slice(&bytes).map_err(|_| unusable())?;
        let key = Zeroizing::new(URL_SAFE_NO_PAD.decode(&stored.wrap_key).map_err(|_| unusable())?);
        let key: [u8; 32] = key.as_slice().try_into().map_err(|_| unusable())?;
        Ok(Some(KeptSession {
            user_id: stored.user_id,
            refresh_token: Zeroizing::new(stored.refresh_token.clone()),
            wrap_key: WrapKey::from_bytes(key),
        }))
    }

    /// Keeps `user_id`'s session: its newest refresh token and the wrap key.
    pub fn save(&self, user_id: Uuid, refresh_token: &str, wrap_key: &WrapKey) -> Result<(), ChatError> {
        let stored = Stored {
            user_id,
            refresh_token: refresh_token.to_owned(),
            wrap_key: URL_SAFE_NO_PAD.encode(wrap_key.expose_secret()),
        };
        let json = Zeroizing::new(serde_json::to_vec(&stored).expect("strings and a uuid serialise"));
        let directory = self.path.parent().expect("the file is in sessions/");
        create_private_dir(directory).map_err(|error| self.failed("cannot create the directory of", &error))?;
        // Written whole beside it, then renamed over it: a crash leaves the old or the new.
        let partial = self.path.with_extension("json.partial");
        let _ = std::fs::remove_file(&partial);
        let written = private_file(&partial).and_then(|mut file| {
            file.write_all(&json)?;
            file.sync_all()
        });
        written
            .and_then(|()| std::fs::rename(&partial, &self.path))
            .map_err(|error| self.failed("cannot write", &error))
    }

    /// Forgets the kept session: whether there was one.
    pub fn remove(&self) -> Result<bool, ChatError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(self.failed("cannot remove", &error)),
        }
    }

    fn failed(&self, what: &str, error: &std::io::Error) -> ChatError {
        ChatError::Refused(format!("{what} the kept session {}: {error}", self.path.display()))
    }
}

/// Creates `directory` (and its parents), readable by its owner only where it is new.
fn create_private_dir(directory: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(directory)
}

/// A new file at `path` that only its owner can read or write (0600 from the start, so the
/// secret is never readable by others, even for a moment).
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_kept_readable_by_its_owner_only_and_removed() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = SessionFile::new(Some(dir.path()), "http://127.0.0.1:4000").expect("a session file");
        assert_eq!(file.path(), dir.path().join("sessions").join("127.0.0.1_4000.json"));
        assert!(file.load().expect("nothing kept").is_none());
        let user = Uuid::now_v7();
        file.save(user, "first-token", &WrapKey::from_bytes([7; 32])).expect("save");
        file.save(user, "second-token", &WrapKey::from_bytes([7; 32])).expect("save again");
        let kept = file.load().expect("load").expect("kept");
        assert_eq!((kept.user_id, kept.refresh_token.as_str()), (user, "second-token"));
        assert_eq!(kept.wrap_key.expose_secret(), &[7; 32]);
        assert!(!format!("{kept:?}").contains("second-token"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(file.path()).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(file.remove().expect("remove"));
        assert!(!file.remove().expect("nothing left"));
    }

    #[test]
    fn a_damaged_file_is_reported_without_its_contents() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = SessionFile::new(Some(dir.path()), "http://localhost:4000").expect("a session file");
        std::fs::create_dir_all(file.path().parent().expect("a parent")).expect("mkdir");
        std::fs::write(file.path(), "{\"refresh_token\": \"secret-token\"").expect("write");
        let error = file.load().expect_err("not usable").to_string();
        assert!(error.contains("is not usable") && !error.contains("secret-token"), "{error}");
    }
}
