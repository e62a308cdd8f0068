//! The person's configuration directory, and where the client keeps what it trusts between
//! runs: the contacts' pinned security keys and which conversations it has seen end-to-end
//! encrypted (the SDK's `TrustStore`), one file per account and server in that directory:
//!
//! `<config>/trust/<host>_<port>-<user id>.json`, where `<config>` is `--config-dir` (or
//! `HEARTH_CONFIG_DIR`), else `$XDG_CONFIG_HOME/hearth`, else `$HOME/.config/hearth`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::error::ChatError;

/// The trust file of `user` on `server`, under `config_dir` if given (else the default
/// configuration directory of this environment).
pub fn trust_file(config_dir: Option<&Path>, server: &str, user: Uuid) -> Result<PathBuf, ChatError> {
    Ok(resolve(config_dir)?.join("trust").join(format!("{}-{user}.json", server_stem(server)?)))
}

/// The configuration directory: `config_dir` if given, else the default one of this
/// environment.
pub fn resolve(config_dir: Option<&Path>) -> Result<PathBuf, ChatError> {
    match config_dir {
        Some(directory) => Ok(directory.to_path_buf()),
        None => default_config_dir(std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME")).ok_or_else(|| {
            ChatError::Refused(
                "no configuration directory to keep contacts' security keys and the session in: \
                     set HEARTH_CONFIG_DIR (or XDG_CONFIG_HOME, or HOME)"
                    .to_owned(),
            )
        }),
    }
}

/// `$XDG_CONFIG_HOME/hearth`, or `$HOME/.config/hearth`. The XDG specification says a
/// relative `XDG_CONFIG_HOME` is to be ignored (it would depend on where the client runs).
fn default_config_dir(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let absolute = |value: Option<OsString>| value.map(PathBuf::from).filter(|path| path.is_absolute());
    absolute(xdg_config_home)
        .map(|xdg| xdg.join("hearth"))
        .or_else(|| absolute(home).map(|home| home.join(".config").join("hearth")))
}

/// `<host>_<port>`: what names a server's files, so that pins and sessions of one server
/// never serve another (a trust file adds the account: pins made as one account never vouch
/// for keys seen as another). Anything in the host that is not a letter, a digit, `.` or `-`
/// (an IPv6 address's brackets and colons) becomes `_`.
pub fn server_stem(server: &str) -> Result<String, ChatError> {
    let url = url::Url::parse(server).map_err(|error| ChatError::Refused(format!("invalid server URL: {error}")))?;
    let host = url.host_str().ok_or_else(|| ChatError::Refused("the server URL names no host".to_owned()))?;
    let port =
        url.port_or_known_default().ok_or_else(|| ChatError::Refused("the server URL has no port".to_owned()))?;
    let host: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    Ok(format!("{host}_{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_named_by_host_port_and_account() {
        let user: Uuid = "0190b6a8-0000-7000-8000-000000000001".parse().expect("a uuid");
        let name = |server: &str| server_stem(server).expect("a file name");
        assert_eq!(name("https://chat.example.org"), "chat.example.org_443");
        assert_eq!(name("http://127.0.0.1:4000/"), "127.0.0.1_4000");
        assert_eq!(name("https://Chat.Example.org/hearth"), "chat.example.org_443");
        assert_eq!(name("http://[::1]:4000"), "___1__4000");
        let explicit = trust_file(Some(Path::new("/tmp/hearth-test")), "http://localhost:4000", user).expect("a path");
        assert_eq!(explicit, Path::new("/tmp/hearth-test/trust").join(format!("localhost_4000-{user}.json")));
    }

    #[test]
    fn the_config_directory_follows_xdg_then_home() {
        let dir = |xdg: Option<&str>, home: Option<&str>| default_config_dir(xdg.map(Into::into), home.map(Into::into));
        assert_eq!(dir(Some("/x/config"), Some("/home/ann")), Some(PathBuf::from("/x/config/hearth")));
        assert_eq!(dir(None, Some("/home/ann")), Some(PathBuf::from("/home/ann/.config/hearth")));
        assert_eq!(dir(Some("relative"), Some("/home/ann")), Some(PathBuf::from("/home/ann/.config/hearth")));
        assert_eq!(dir(Some(""), None), None);
    }
}
