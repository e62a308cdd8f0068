//! Email through a real SMTP server: Python's aiosmtpd, whose default handler prints every
//! message it receives to stdout.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::api::{Api, tokens};
use crate::harness::{self, Hearth, Process, WAIT};
use crate::mail::Mail;

const BEGIN: &str = "---------- MESSAGE FOLLOWS ----------";
const END: &str = "------------ END MESSAGE ------------";

/// Makes sure `python3 -m aiosmtpd` can run, installing it with pip when it is missing.
fn ensure_aiosmtpd() {
    let import = |quiet: bool| {
        let mut command = Command::new("python3");
        command.args(["-c", "import aiosmtpd"]);
        if quiet {
            command.stderr(std::process::Stdio::null());
        }
        command.status().map(|s| s.success())
    };
    match import(true) {
        Ok(true) => return,
        Ok(false) => {}
        Err(e) => panic!("this test needs python3 (for aiosmtpd): {e}"),
    }
    let installed = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
        .status()
        .expect("python3 -m pip runs");
    assert!(installed.success(), "`python3 -m pip install aiosmtpd` failed");
    assert!(matches!(import(false), Ok(true)), "aiosmtpd still cannot be imported after installing it");
}

/// A local aiosmtpd, killed on drop.
struct SmtpSink {
    process: Process,
    port: u16,
}

impl SmtpSink {
    fn start() -> Self {
        ensure_aiosmtpd();
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address").port()
        };
        let mut command = Command::new("python3");
        // -u: stdout is a pipe, and each message must arrive as soon as it is printed.
        command.args(["-u", "-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        command.env("PYTHONUNBUFFERED", "1").stdin(std::process::Stdio::null());
        let mut process = Process::spawn("aiosmtpd", command);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            assert!(!process.has_exited(), "aiosmtpd exited:\n{}", process.text());
            assert!(Instant::now() < deadline, "aiosmtpd did not accept connections within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { process, port }
    }

    /// Waits for the next message printed after line `from`.
    async fn next_mail(&self, from: usize) -> Mail {
        let (end, _) = self.process.wait_line(from, WAIT, |line| line == END).await;
        let lines = self.process.lines();
        let begin = lines[from..end].iter().rposition(|l| l == BEGIN).map(|i| from + i).expect("a message start");
        let mut message = &lines[begin + 1..end];
        // Envelope options, if any, come first and end with a blank line.
        if message.first().is_some_and(|l| l.starts_with("mail options:") || l.starts_with("rcpt options:")) {
            let blank = message.iter().position(String::is_empty).expect("a blank line after the options");
            message = &message[blank + 1..];
        }
        Mail::parse(&message.join("\n"))
    }
}

#[tokio::test]
async fn confirmation_and_reset_emails_go_through_smtp() {
    let smtp = SmtpSink::start();
    let port = smtp.port.to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let hearth = Hearth::start(
        dir.path(),
        &dir.path().join("data"),
        &[
            ("HEARTH_EMAIL__SMTP__HOST", "127.0.0.1"),
            ("HEARTH_EMAIL__SMTP__PORT", &port),
            ("HEARTH_EMAIL__SMTP__TLS", "none"),
            ("HEARTH_EMAIL__FROM", "hearth <hearth@example.org>"),
        ],
    )
    .await;
    let api = Api::new(harness::client(), &hearth.url);

    let mark = smtp.process.mark();
    let body = json!({"email": "smtp@example.org", "password": "smtp password 1"});
    let session = api.expect(201, Method::POST, "/auth/register", None, Some(body)).await;
    let (access, refresh) = tokens(&session);
    let mail = smtp.next_mail(mark).await;
    assert_eq!(mail.header("To"), Some("smtp@example.org"));
    assert_eq!(mail.header("From"), Some("hearth <hearth@example.org>"));
    assert_eq!(mail.header("Subject"), Some("Confirm your email address for hearth"));
    assert_eq!(mail.link_kind(), "confirm-email");
    assert!(mail.body.contains(&format!("{}/#/confirm-email/", hearth.url)), "{}", mail.body);
    let confirm = mail.code();
    api.expect(204, Method::POST, "/auth/confirm", None, Some(json!({"token": confirm}))).await;

    let mark = smtp.process.mark();
    api.expect(204, Method::POST, "/auth/password/request", None, Some(json!({"email": "smtp@example.org"}))).await;
    let mail = smtp.next_mail(mark).await;
    assert_eq!(mail.header("To"), Some("smtp@example.org"));
    assert_eq!(mail.link_kind(), "reset-password");
    let reset = mail.code();
    let body =
        json!({"token": reset, "new_password": "smtp password 2", "new_password_confirmation": "smtp password 2"});
    api.expect(204, Method::POST, "/auth/password/reset", None, Some(body)).await;
    let body = json!({"email": "smtp@example.org", "password": "smtp password 2"});
    api.expect(200, Method::POST, "/auth/login", None, Some(body)).await;

    let (lines, _) = hearth.stop().await;
    let log = lines.join("\n");
    assert_eq!(log.matches("email sent through SMTP").count(), 2, "{log}");
    for secret in [&access, &refresh, &confirm, &reset] {
        assert!(!log.contains(secret.as_str()), "a token is in the log:\n{log}");
    }
    assert!(!dir.path().join("data/outbox").exists(), "with SMTP configured, nothing goes to the outbox");
}
