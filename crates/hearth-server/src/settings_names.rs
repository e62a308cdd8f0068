//! Misspelt settings are not silently ignored: serde skips a key it does not know, so a file's
//! `[clustr]` or `HEARTH_CLUSTR__URL` would change nothing without a word. The names that exist
//! are those of the example `hearth config` prints ([`EXAMPLE`], which a test keeps equal to
//! the settings), with its optional lines switched on.

use std::collections::BTreeSet;
use std::path::Path;

use figment::Figment;
use figment::providers::{Format as _, Toml};
use serde_json::Value;

use crate::error::ServerError;
use crate::settings::EXAMPLE;

/// Tables whose keys are not fixed names: the operator's keys per provider (any provider the
/// keyguard knows; it checks them itself), and the old place of those keys, which start-up
/// refuses with its own message.
const OPEN_TABLES: [&str; 2] = ["keyguard.free_tier.keys", "ai.free_tier.keys"];

/// Retired settings, which start-up refuses with a message saying what replaced them.
const RETIRED: [&str; 1] = ["ai.operators"];

/// Environment variables with the prefix that are not settings: the configuration file's path,
/// the terminal client's configuration directory, and the test suites' service URLs.
fn is_not_a_setting(name: &str) -> bool {
    matches!(name, "HEARTH_CONFIG" | "HEARTH_CONFIG_DIR" | "HEARTH_URL") || name.starts_with("HEARTH_TEST_")
}

/// `example` (the text `hearth config` prints) with its optional settings switched on: `# key =
/// value` and `# [section]` lines lose their `# `; prose comments stay.
pub fn uncomment(example: &str) -> String {
    let mut out = String::with_capacity(example.len());
    for line in example.lines() {
        let setting = line.strip_prefix("# ").filter(|rest| is_table_header(rest) || is_key_value(rest));
        out.push_str(setting.unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Every setting's dotted name, tables included (`server`, `server.listen`, …).
fn known_names() -> BTreeSet<String> {
    let example = uncomment(EXAMPLE);
    let tree: Value = Figment::from(Toml::string(&example)).extract().expect("the settings example is valid TOML");
    let mut names = BTreeSet::new();
    collect("", &tree, &mut names);
    names
}

fn is_table_header(text: &str) -> bool {
    text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).is_some_and(|name| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
    })
}

fn is_key_value(text: &str) -> bool {
    text.split_once(" = ").is_some_and(|(key, _)| {
        key.starts_with(|c: char| c.is_ascii_lowercase())
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    })
}

fn collect(prefix: &str, value: &Value, names: &mut BTreeSet<String>) {
    if let Value::Object(members) = value {
        for (key, child) in members {
            let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            collect(&name, child, names);
            names.insert(name);
        }
    }
}

/// Whether `name` is a setting (or inside one of the open tables).
fn is_known(name: &str, known: &BTreeSet<String>) -> bool {
    known.contains(name)
        || RETIRED.contains(&name)
        || OPEN_TABLES.iter().any(|table| name.strip_prefix(table).is_some_and(|rest| rest.starts_with('.')))
}

/// The known name closest to `name` (Levenshtein distance), to suggest.
fn nearest<'a>(name: &str, known: &'a BTreeSet<String>) -> Option<&'a str> {
    known.iter().map(|candidate| (strsim::levenshtein(name, candidate), candidate.as_str())).min().map(|(_, name)| name)
}

/// The dotted names of every key in a TOML file.
fn names_in_file(path: &Path) -> Result<Vec<String>, ServerError> {
    let tree: Value = Figment::from(Toml::file_exact(path))
        .extract()
        .map_err(|error| ServerError::Config(format!("{}: {error}", path.display())))?;
    let mut names = BTreeSet::new();
    collect("", &tree, &mut names);
    Ok(names.into_iter().collect())
}

/// Refuses a configuration file with a key that is no setting, naming it and the nearest one.
pub fn check_file(path: &Path) -> Result<(), ServerError> {
    let known = known_names();
    let unknown: Vec<String> = names_in_file(path)?
        .into_iter()
        .filter(|name| !is_known(name, &known))
        // `[clustr]` and its `url` are one mistake: name the outermost.
        .fold(Vec::new(), |mut outermost, name| {
            if !outermost.iter().any(|parent: &String| name.starts_with(&format!("{parent}."))) {
                outermost.push(name);
            }
            outermost
        });
    if unknown.is_empty() {
        return Ok(());
    }
    let described: Vec<String> = unknown
        .iter()
        .map(|name| match nearest(name, &known) {
            Some(nearest) => format!("`{name}` (did you mean `{nearest}`?)"),
            None => format!("`{name}`"),
        })
        .collect();
    Err(ServerError::Config(format!(
        "{}: no such setting: {} (`hearth config` lists every setting)",
        path.display(),
        described.join(", ")
    )))
}

/// What to warn about the `HEARTH_*` variables in `vars` that are no setting: one line each,
/// naming the variable and the nearest setting's variable. Values are never looked at.
pub fn unknown_variables(vars: impl IntoIterator<Item = String>) -> Vec<String> {
    let known = known_names();
    vars.into_iter()
        .filter(|variable| variable.starts_with("HEARTH_") && !is_not_a_setting(variable))
        .filter_map(|variable| {
            let name = variable["HEARTH_".len()..].to_lowercase().replace("__", ".");
            if is_known(&name, &known) {
                return None;
            }
            let hint = nearest(&name, &known)
                .map(|nearest| format!(" (did you mean HEARTH_{}?)", nearest.replace('.', "__").to_uppercase()))
                .unwrap_or_default();
            Some(format!("{variable} is no setting and is ignored{hint}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_names_every_section_and_key() {
        let known = known_names();
        for name in
            ["server", "server.listen", "server.tls.cert", "email.smtp.host", "keyguard.free_tier.keys", "log.filter"]
        {
            assert!(known.contains(name), "{name}");
        }
        assert!(is_known("keyguard.free_tier.keys.groq", &known));
        assert!(!is_known("clustr", &known));
    }

    #[test]
    fn the_nearest_name_is_suggested() {
        let known = known_names();
        assert_eq!(nearest("sever.listen", &known), Some("server.listen"));
        assert_eq!(nearest("log.filter", &known), Some("log.filter"));
    }

    #[test]
    fn unknown_variables_are_named_and_settings_and_non_settings_are_not() {
        let warnings = unknown_variables(
            [
                "HEARTH_CLUSTR__URL",
                "HEARTH_SERVER__LISTEN",
                "HEARTH_SERVER__LISTN",
                "HEARTH_CONFIG",
                "HEARTH_TEST_POSTGRES_URL",
                "HEARTH_KEYGUARD__FREE_TIER__KEYS__GROQ",
                "PATH",
            ]
            .map(str::to_owned),
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("HEARTH_CLUSTR__URL is no setting"), "{warnings:?}");
        assert!(warnings[1].contains("did you mean HEARTH_SERVER__LISTEN?"), "{warnings:?}");
    }
}
