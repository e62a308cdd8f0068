//! What `hearth serve` says and does at start for its operator: a listen address given by host
//! name, a taken address named in the error, and the assistant's free-tier keys counted (never
//! shown) in the log.

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
