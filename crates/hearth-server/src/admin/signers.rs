//! The administrators' keys: the `admin.allowed_signers` file, re-read when it changes.
//!
//! Each line is an `authorized_keys` line (options allowed), optionally prefixed by a principal
//! as in OpenSSH's `allowed_signers` (`ann@example.org ssh-ed25519 AAAA… comment`). Comments
//! and blank lines are skipped; a line that does not parse is a WARN naming its number, and the
//! other lines still count. The file's modification time and length are checked whenever a
//! login starts: a cheap stat, and no watcher to keep alive.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use ssh_key::public::KeyData;
use ssh_key::{HashAlg, PublicKey};

/// An administrator's key as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKey {
    /// The key.
    pub key: KeyData,
    /// Its principal, if the line named one.
    pub principal: Option<String>,
}

impl AdminKey {
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key)
    }
}

/// `SHA256:…` of a key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The keys file and what was last read from it.
#[derive(Debug)]
pub struct AllowedSigners {
    path: PathBuf,
    read: Mutex<Read>,
}

#[derive(Debug, Default)]
struct Read {
    /// Modification time and length of the file when read; `None` when it was missing.
    version: Option<(SystemTime, u64)>,
    keys: Arc<Vec<AdminKey>>,
}

impl AllowedSigners {
    /// The keys of the file at `path`, read now (saying at INFO how many, or that there is
    /// no file and so no administrator).
    pub fn new(path: PathBuf) -> Self {
        let signers = Self { path, read: Mutex::new(Read::default()) };
        let keys = signers.keys();
        if signers.read.lock().unwrap_or_else(PoisonError::into_inner).version.is_none() {
            tracing::info!(path = %signers.path.display(), "no administrators: no admin.allowed_signers file");
        } else {
            tracing::info!(path = %signers.path.display(), keys = keys.len(), "administrators' keys");
        }
        signers
    }

    /// The listed keys, re-read if the file changed (or appeared, or went) since last time.
    pub fn keys(&self) -> Arc<Vec<AdminKey>> {
        let version =
            std::fs::metadata(&self.path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        if read.version != version {
            read.keys = Arc::new(match version {
                Some(_) => read_file(&self.path),
                None => Vec::new(),
            });
            read.version = version;
        }
        read.keys.clone()
    }
}

fn read_file(path: &Path) -> Vec<AdminKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "the administrators' keys file cannot be read");
            Vec::new()
        }
    }
}

/// The keys of a file's text; each line that does not parse is a WARN naming it (never its
/// content, which may be anything pasted there).
pub fn parse(text: &str, path: &Path) -> Vec<AdminKey> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some(key) => keys.push(key),
            None => tracing::warn!(
                path = %path.display(),
                line = index + 1,
                "not a key: expected an authorized_keys line, optionally after a principal; line skipped"
            ),
        }
    }
    keys
}

/// The key of a line: the first place where an OpenSSH public key (`type base64 comment`)
/// starts. Before it may come a principal, options (`authorized_keys`), or both in that order
/// (`allowed_signers`); one word alone there is the principal when it holds an `@` (an
/// address, as OpenSSH's principals are) and options otherwise.
fn parse_line(line: &str) -> Option<AdminKey> {
    let starts = word_starts(line);
    let (index, key) = starts.iter().enumerate().find_map(|(index, &start)| {
        PublicKey::from_openssh(&line[start..]).ok().map(|key| (index, key.key_data().clone()))
    })?;
    let first_word = || line[..starts.get(1).copied().unwrap_or(line.len())].trim().to_owned();
    let principal = match index {
        0 => None,
        1 => Some(first_word()).filter(|word| word.contains('@') && !word.contains('=')),
        _ => Some(first_word()),
    };
    Some(AdminKey { key, principal })
}

/// Where each word of `line` starts; words are split by whitespace outside double quotes (an
/// option such as `from="10.0.0.1, 10.0.0.2"` is one word).
fn word_starts(line: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let (mut in_word, mut quoted) = (false, false);
    for (at, c) in line.char_indices() {
        if c.is_whitespace() && !quoted {
            in_word = false;
            continue;
        }
        if !in_word {
            starts.push(at);
            in_word = true;
        }
        if c == '"' {
            quoted = !quoted;
        }
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    #[test]
    fn lines_with_or_without_principal_or_options_count_and_bad_lines_are_skipped() {
        let text = format!(
            "# admins\n\n{ED25519} plain\nann@example.org {ED25519} ann's laptop\n\
             no-pty {ED25519}\nbob@example.org no-pty,from=\"10.0.0.1, 10.0.0.2\" {ED25519} bob\n\
             ssh-ed25519 not-base64\nsomething else entirely\n"
        );
        let keys = parse(&text, Path::new("admin_keys"));
        let principals: Vec<Option<&str>> = keys.iter().map(|k| k.principal.as_deref()).collect();
        assert_eq!(principals, [None, Some("ann@example.org"), None, Some("bob@example.org")]);
        assert!(keys.iter().all(|k| k.key == keys[0].key));
        assert!(keys[0].fingerprint().starts_with("SHA256:"), "{}", keys[0].fingerprint());
    }
}
