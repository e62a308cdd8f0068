//! What `hearth serve` says and does at start for its operator: a listen address given by host
//! name, a taken address named in the error, the assistant's free-tier keys counted (never
//! shown) in the log, and misspelt settings named (a file's stop start-up, a variable's warn).

use std::net::TcpListener;
use std::time::Duration;

use crate::harness::{self, Hearth};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_address_may_be_a_host_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = harness::hearth(dir.path());
    command.arg("--data-dir").arg(dir.path().join("data")).arg("--listen").arg("localhost:0");
    let server = Hearth::spawn(command).await;
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    let health = harness::client().get(server.at("/health")).send().await.expect("/health answers");
    assert!(health.status().is_success());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().expect("its address");
    let mut command = harness::hearth(dir.path());
    command.arg("--data-dir").arg(dir.path().join("data")).arg("--listen").arg(address.to_string());
    let finished = harness::run(command).await;
    assert!(!finished.status.success(), "hearth started on a taken address");
    let said = format!("{}{}", finished.stdout, finished.stderr);
    assert!(said.contains(&format!("cannot listen on {address}")), "{said}");
    assert!(said.to_lowercase().contains("in use"), "{said}");

    let mut command = harness::hearth(dir.path());
    command.arg("--data-dir").arg(dir.path().join("data")).arg("--listen").arg("no-such-host.invalid:4000");
    let finished = harness::run(command).await;
    assert!(!finished.status.success());
    let said = format!("{}{}", finished.stdout, finished.stderr);
    assert!(said.contains("no-such-host.invalid:4000"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_log_counts_the_free_tiers_keys_per_provider_without_showing_them() {
    const GROQ: [&str; 2] = ["gsk_startup-COUNTCANARY-1", "gsk_startup-COUNTCANARY-2"];
    const GEMINI: &str = "AIzaStartupCOUNTCANARY3";
    let dir = tempfile::tempdir().expect("temp dir");
    let groq = format!("[\"{}\", \"{}\"]", GROQ[0], GROQ[1]);
    let gemini = format!("[\"{GEMINI}\"]");
    let env = [
        ("HEARTH_KEYGUARD__FREE_TIER__KEYS__GROQ", groq.as_str()),
        ("HEARTH_KEYGUARD__FREE_TIER__KEYS__GEMINI", gemini.as_str()),
    ];
    let server = Hearth::start(dir.path(), &dir.path().join("data"), &env).await;
    let (_, line) =
        server.process.wait_line(0, Duration::from_secs(10), |line| line.contains("operator keys per provider")).await;
    assert!(line.contains("gemini 1") && line.contains("groq 2"), "{line}");
    let (lines, _) = server.stop().await;
    let log = lines.join("\n");
    assert!(!log.contains("COUNTCANARY"), "a key reached the log:\n{log}");

    let bare = Hearth::start(dir.path(), &dir.path().join("bare"), &[]).await;
    bare.process.wait_line(0, Duration::from_secs(10), |line| line.contains("has no operator keys")).await;
    bare.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_setting_in_the_file_stops_start_up_naming_it_and_the_nearest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("hearth.toml");
    std::fs::write(&file, "[server]\nlistn = \"127.0.0.1:0\"\n\n[clustr]\nurl = \"nats://x\"\n").expect("write");
    let mut command = harness::hearth(dir.path());
    command.arg("--config").arg(&file).arg("--data-dir").arg(dir.path().join("data"));
    let finished = harness::run(command).await;
    assert!(!finished.status.success(), "hearth started with misspelt settings");
    let said = format!("{}{}", finished.stdout, finished.stderr);
    assert!(said.contains("`server.listn` (did you mean `server.listen`?)"), "{said}");
    assert!(said.contains("`clustr`") && !said.contains("clustr.url"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retired_ai_operators_stops_start_up_saying_what_replaces_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("hearth.toml");
    std::fs::write(&file, "[ai]\noperators = [\"op@example.org\"]\n").expect("write");
    let mut command = harness::hearth(dir.path());
    command.arg("--config").arg(&file).arg("--data-dir").arg(dir.path().join("data"));
    let finished = harness::run(command).await;
    assert!(!finished.status.success(), "hearth started with ai.operators");
    let said = format!("{}{}", finished.stdout, finished.stderr);
    assert!(said.contains("ai.operators is retired") && said.contains("operator role"), "{said}");
    assert!(!said.contains("no such setting"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_hearth_variable_gets_a_warning_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [("HEARTH_CLUSTR__URL", "nats://VALUECANARY"), ("HEARTH_SERVER__REQUEST_TIMEOUT", "5")];
    let server = Hearth::start(dir.path(), &dir.path().join("data"), &env).await;
    let (lines, _) = server.stop().await;
    let warnings: Vec<&String> = lines.iter().filter(|line| line.contains("is no setting")).collect();
    assert_eq!(warnings.len(), 2, "{lines:#?}");
    assert!(warnings.iter().any(|line| line.contains("HEARTH_CLUSTR__URL")));
    assert!(
        warnings.iter().any(|line| line.contains("did you mean HEARTH_SERVER__REQUEST_TIMEOUT_SECS?")),
        "{warnings:?}"
    );
    assert!(lines.iter().all(|line| !line.contains("VALUECANARY")), "a value was logged");
}
