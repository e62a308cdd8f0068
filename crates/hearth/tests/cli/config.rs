//! `hearth config`: the commented example must be exactly the settings there are, with
//! their real defaults.

use std::collections::BTreeMap;

use figment::Figment;
use figment::providers::{Format as _, Toml};
use hearth_server::Settings;
use hearth_server::settings_names::uncomment;
use serde_json::Value;

use crate::harness;

/// Every leaf (anything but an object) of a JSON tree by its dotted path.
fn leaves(value: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&path, child, out);
                }
            }
            leaf => {
                out.insert(prefix.to_owned(), leaf.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

fn settings_from(toml: &str) -> Settings {
    Figment::from(Toml::string(toml)).extract().unwrap_or_else(|e| panic!("the example is not valid settings: {e}"))
}

#[tokio::test]
async fn config_prints_the_example() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = harness::hearth(dir.path());
    command.arg("config");
    let done = harness::run(command).await;
    assert!(done.status.success(), "hearth config failed: {}", done.stderr);
    assert_eq!(done.stdout, hearth_server::settings::EXAMPLE);
    assert!(done.stdout.contains("[server]") && done.stdout.contains("# [server.tls]"), "{}", done.stdout);
}

#[tokio::test]
async fn example_defaults_are_the_real_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = harness::hearth(dir.path());
    command.arg("config");
    let example = harness::run(command).await.stdout;
    let from_example = serde_json::to_value(settings_from(&example)).expect("settings serialize");
    let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
    assert_eq!(from_example, defaults, "the example's uncommented values differ from Settings::default()");
    // And the example sets them all (none is only implied), so a changed default shows.
    let written: Value = Figment::from(Toml::string(&example)).extract().expect("the example is TOML");
    let written = leaves(&written);
    let unwritten: Vec<_> = leaves(&defaults)
        .into_iter()
        .filter(|(path, value)| !value.is_null() && !written.contains_key(path))
        .map(|(path, _)| path)
        .collect();
    assert!(unwritten.is_empty(), "defaults missing from the example: {unwritten:?}");
}

/// Whether a setting reads back as a secret (or a list of secrets), which serializes redacted.
fn is_redacted(value: &Value) -> bool {
    match value {
        Value::String(text) => text == "<redacted>",
        Value::Array(items) => !items.is_empty() && items.iter().all(is_redacted),
        _ => false,
    }
}

/// What is wrong with `example` (with its optional settings uncommented) as a picture of
/// [`Settings`]: keys that are no setting, settings it lacks, values that read back
/// differently.
fn example_problems(example: &str) -> Vec<String> {
    let full = uncomment(example);
    let written: Value = match Figment::from(Toml::string(&full)).extract() {
        Ok(value) => value,
        Err(e) => return vec![format!("not TOML: {e}")],
    };
    let written = leaves(&written);
    let settings: Settings = match Figment::from(Toml::string(&full)).extract() {
        Ok(settings) => settings,
        Err(e) => return vec![format!("not valid settings: {e}")],
    };
    // Deserializing ignores unknown keys and serializing writes every field, so comparing
    // the two key sets finds settings the example lacks and example keys that are none.
    let real = leaves(&serde_json::to_value(settings).expect("settings serialize"));
    let mut problems = Vec::new();
    for (path, value) in &written {
        match real.get(path) {
            None => problems.push(format!("{path} is no setting")),
            Some(parsed) if parsed != value && !is_redacted(parsed) => {
                problems.push(format!("{path} = {value} reads back as {parsed}"));
            }
            Some(_) => {}
        }
    }
    for path in real.keys().filter(|path| !written.contains_key(*path)) {
        problems.push(format!("setting {path} is missing from the example"));
    }
    problems
}

#[tokio::test]
async fn example_with_optional_settings_uncommented_names_exactly_the_real_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = harness::hearth(dir.path());
    command.arg("config");
    let example = harness::run(command).await.stdout;
    let full = uncomment(&example);
    assert!(full.contains("\n[server.tls]\n") && full.contains("\n[email.smtp]\n"), "uncommenting failed:\n{full}");
    let problems = example_problems(&example);
    assert!(problems.is_empty(), "the example and the settings disagree:\n{}\n\n{full}", problems.join("\n"));
}

#[test]
fn the_example_check_notices_extra_and_missing_settings() {
    let example = hearth_server::settings::EXAMPLE;
    assert_eq!(example_problems(example), Vec::<String>::new());
    let extra = example.replace("[log]\n", "[log]\nno_such_setting = 1\n");
    assert_eq!(example_problems(&extra), ["log.no_such_setting is no setting"]);
    let extra_optional = example.replace("[log]\n", "[log]\n# level = \"info\"\n");
    assert_eq!(example_problems(&extra_optional), ["log.level is no setting"]);
    let missing = example.replace("max_connections = 16\n", "");
    assert_eq!(example_problems(&missing), ["setting database.max_connections is missing from the example"]);
    let missing_optional = example.replace("# username = \"hearth\"\n", "");
    assert_eq!(example_problems(&missing_optional), ["setting email.smtp.username is missing from the example"]);
    let wrong = example.replace("request_timeout_secs = 30", "request_timeout_secs = \"30\"");
    assert_eq!(example_problems(&wrong).len(), 1, "{:?}", example_problems(&wrong));
}

#[test]
fn uncommenting_keeps_prose() {
    let text = "# A comment = with spaces.\n# \"none\" or \"tls\"\n# key = 1\n# [a.b]\nlive = 2\n";
    assert_eq!(uncomment(text), "# A comment = with spaces.\n# \"none\" or \"tls\"\nkey = 1\n[a.b]\nlive = 2\n");
}
