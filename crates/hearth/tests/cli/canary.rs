//! Secrets never reach a log line: every account flow and assistant turn runs against a server
//! logging at `trace` (and at `debug`) with known canary passwords and provider keys, and
//! afterwards no password, token, one-time code, link code or provider key — nor a base64 or
//! hex form of one — is anywhere in its output.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use reqwest::Method;
use serde_json::{Value, json};

use hearth_fake_provider::FakeProvider;

use crate::api::{Api, tokens};
use crate::harness::{self, Hearth};
use crate::mail::next_outbox_mail;

/// The secrets seen during a run, each with what it was.
#[derive(Debug, Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, secret: &str) -> String {
        assert!(secret.len() >= 8, "{what} is too short to be a useful canary: {secret:?}");
        self.0.push((what.to_owned(), secret.to_owned()));
        secret.to_owned()
    }

    fn session(&mut self, what: &str, session: &Value) -> (String, String) {
        let (access, refresh) = tokens(session);
        self.add(&format!("{what} access token"), &access);
        // A JWT's signature is the secret part; look for it on its own too.
        let signature = access.rsplit('.').next().expect("a JWT has parts");
        self.add(&format!("{what} access token signature"), signature);
        self.add(&format!("{what} refresh token"), &refresh);
        (access, refresh)
    }
}

/// The ways `secret` could show up: itself, and base64 (standard and URL-safe alphabets)
/// at each of the three alignments it could have inside a longer encoded text, keeping only
/// the characters that depend on the secret alone.
pub(crate) fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    for engine in [&STANDARD, &URL_SAFE] {
        for offset in 0..3usize {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(secret.as_bytes());
            let encoded = engine.encode(&bytes);
            let encoded = encoded.trim_end_matches('=');
            let skip = [0, 2, 3][offset];
            // The last group depends on what follows the secret.
            let end = encoded.len().saturating_sub(4);
            if end > skip + 8 {
                forms.push(encoded[skip..end].to_owned());
            }
        }
        forms.push(engine.encode(secret.as_bytes()));
    }
    let hex: String = secret.bytes().map(|byte| format!("{byte:02x}")).collect();
    forms.push(hex.clone());
    forms.push(hex.to_uppercase());
    forms
}

async fn every_flow_keeps_secrets_out_of_the_log(level: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeProvider::start().await.expect("start the fake provider");
    let mut secrets = Secrets::default();
    // The free tier's operator keys: one that fails and one that answers.
    let operator_failing = secrets.add("operator key", "gsk_fake-server_error-OPERATORCANARY-5d1e0c");
    let operator_ok = secrets.add("operator key", "csk-OPERATOROKCANARY-9c2b7a44d0");
    let operator_keys = [("GROQ", &operator_failing), ("CEREBRAS", &operator_ok)]
        .map(|(provider, key)| (format!("HEARTH_KEYGUARD__FREE_TIER__KEYS__{provider}"), format!("[\"{key}\"]")));
    let base_urls = ["GEMINI", "GROQ", "CEREBRAS", "OPENROUTER", "OPENAI", "ANTHROPIC"].map(|provider| {
        let url = fake.base_url(&provider.to_lowercase()).expect("the fake serves every provider");
        (format!("HEARTH_AI__PROVIDERS__{provider}__BASE_URL"), url)
    });
    let mut env = vec![("RUST_LOG", level)];
    env.extend(operator_keys.iter().chain(&base_urls).map(|(name, value)| (name.as_str(), value.as_str())));
    let hearth = Hearth::start(dir.path(), &dir.path().join("data"), &env).await;
    let api = Api::new(harness::client(), &hearth.url);
    let first_password = secrets.add("registration password", "canary-pw-first-3b7e1f");
    let wrong_password = secrets.add("wrong login password", "canary-pw-wrong-91d4c2");
    let second_password = secrets.add("changed password", "canary-pw-second-5a0f8d");
    let third_password = secrets.add("reset password", "canary-pw-third-c62e04");

    // Registration, and the confirmation email it sends.
    let mark = hearth.process.mark();
    let session = api
        .expect(201, Method::POST, "/auth/register", None, Some(json!({
            "email": "canary@example.org", "password": first_password, "display_name": "Canary", "device_name": "laptop",
        })))
        .await;
    let (access, _) = secrets.session("registration", &session);
    let mail = next_outbox_mail(&hearth, mark).await;
    assert_eq!(mail.link_kind(), "confirm-email");
    assert_eq!(mail.header("To"), Some("canary@example.org"));
    let code = secrets.add("confirmation token", &mail.code());
    api.expect(204, Method::POST, "/auth/confirm", None, Some(json!({"token": code}))).await;
    api.expect(400, Method::POST, "/auth/confirm", None, Some(json!({"token": code}))).await;

    // The account's identity (docs/e2e.md): its private form, wrapped by the client, carries a
    // canary; so do a refused replacement, the replacement made with the password, and the
    // one a password change re-wraps below.
    let identity = |canary: &str| {
        json!({
            "identity_key": {"signing": {"kty": "EC", "x": "sx", "y": "sy"}, "agreement": {"kty": "EC", "x": "ax", "y": "ay"}},
            "identity_private_key": {"signing": format!("v1.{canary}"), "agreement": format!("v1.{canary}-agreement")},
        })
    };
    let first_identity = secrets.add("identity private key", "canary-identity-first-8d2f61");
    let refused_identity = secrets.add("refused identity private key", "canary-identity-refused-0b7e35");
    let second_identity = secrets.add("replaced identity private key", "canary-identity-second-41ca9e");
    let rewrapped_identity = secrets.add("re-wrapped identity private key", "canary-identity-rewrapped-e5730c");
    api.expect(204, Method::PUT, "/api/identity_key", Some(&access), Some(identity(&first_identity))).await;
    api.expect(409, Method::PUT, "/api/identity_key", Some(&access), Some(identity(&refused_identity))).await;
    let mut wrong = identity(&refused_identity);
    wrong["password"] = json!(wrong_password);
    api.expect(422, Method::PUT, "/api/identity_key", Some(&access), Some(wrong)).await;
    let mut replacing = identity(&second_identity);
    replacing["password"] = json!(first_password);
    api.expect(204, Method::PUT, "/api/identity_key", Some(&access), Some(replacing)).await;
    let me = api.expect(200, Method::GET, "/api/me", Some(&access), None).await;
    assert_eq!(me["identity_private_key"]["signing"], format!("v1.{second_identity}"));

    // Asking for another confirmation email.
    let mark = hearth.process.mark();
    api.expect(204, Method::POST, "/api/token/email_confirm", Some(&access), None).await;
    let mail = next_outbox_mail(&hearth, mark).await;
    assert_eq!(mail.link_kind(), "confirm-email");
    secrets.add("second confirmation token", &mail.code());

    // Logins: a wrong password, then the right one.
    let wrong = json!({"email": "canary@example.org", "password": wrong_password});
    api.expect(401, Method::POST, "/auth/login", None, Some(wrong)).await;
    let login = json!({"email": "canary@example.org", "password": first_password, "device_name": "phone"});
    let session = api.expect(200, Method::POST, "/auth/login", None, Some(login)).await;
    let (phone_access, phone_refresh) = secrets.session("login", &session);

    // Refresh, then presenting the spent refresh token again.
    let refreshed = api.expect(200, Method::POST, "/auth/refresh", None, Some(json!({"token": phone_refresh}))).await;
    let (_, next_refresh) = secrets.session("refresh", &refreshed);
    api.expect(401, Method::POST, "/auth/refresh", None, Some(json!({"token": phone_refresh}))).await;
    api.expect(401, Method::POST, "/auth/refresh", None, Some(json!({"token": next_refresh}))).await;
    api.expect(401, Method::GET, "/api/me", Some(&phone_access), None).await;

    let me = api.expect(200, Method::GET, "/api/me", Some(&access), None).await;
    assert_eq!(me["email"], "canary@example.org");

    // Email change: a token to the current address, then the move and a new confirmation.
    let mark = hearth.process.mark();
    api.expect(204, Method::POST, "/api/token/email_change", Some(&access), None).await;
    let mail = next_outbox_mail(&hearth, mark).await;
    assert_eq!(mail.link_kind(), "change-email");
    let change = secrets.add("email change token", &mail.code());
    let mark = hearth.process.mark();
    let body = json!({"token": change, "email": "canary2@example.org", "password": first_password});
    api.expect(204, Method::PATCH, "/api/email", Some(&access), Some(body)).await;
    let mail = next_outbox_mail(&hearth, mark).await;
    assert_eq!(mail.link_kind(), "confirm-email");
    assert_eq!(mail.header("To"), Some("canary2@example.org"));
    let code = secrets.add("new address confirmation token", &mail.code());
    api.expect(204, Method::POST, "/auth/confirm", None, Some(json!({"token": code}))).await;

    // Password change (signs every session out), re-wrapping the identity's private key (the
    // account has no conversation keys).
    let body = json!({
        "password": first_password, "new_password": second_password, "new_password_confirmation": second_password,
        "private_keys": {}, "identity_private_key": identity(&rewrapped_identity)["identity_private_key"],
    });
    api.expect(204, Method::PATCH, "/api/password", Some(&access), Some(body)).await;
    api.expect(401, Method::GET, "/api/me", Some(&access), None).await;
    let login = json!({"email": "canary2@example.org", "password": second_password});
    let session = api.expect(200, Method::POST, "/auth/login", None, Some(login)).await;
    secrets.session("login after the password change", &session);

    // Password reset by email.
    let mark = hearth.process.mark();
    api.expect(204, Method::POST, "/auth/password/request", None, Some(json!({"email": "canary2@example.org"}))).await;
    let mail = next_outbox_mail(&hearth, mark).await;
    assert_eq!(mail.link_kind(), "reset-password");
    let reset = secrets.add("password reset token", &mail.code());
    let check = api.expect(200, Method::POST, "/auth/password/confirm", None, Some(json!({"token": reset}))).await;
    assert_eq!(check["user"]["email"], "canary2@example.org");
    let body = json!({"token": reset, "new_password": third_password, "new_password_confirmation": third_password});
    api.expect(204, Method::POST, "/auth/password/reset", None, Some(body)).await;
    let login = json!({"email": "canary2@example.org", "password": second_password});
    api.expect(401, Method::POST, "/auth/login", None, Some(login)).await;
    let login = json!({"email": "canary2@example.org", "password": third_password, "device_name": "desktop"});
    let session = api.expect(200, Method::POST, "/auth/login", None, Some(login)).await;
    let (access, _) = secrets.session("login after the reset", &session);

    // Linking a device with a code, then signing that device out.
    let link = api.expect(201, Method::POST, "/api/devices/link", Some(&access), None).await;
    let link_code = secrets.add("device link code", link["code"].as_str().expect("a link code"));
    let linked = api
        .expect(200, Method::POST, "/auth/device/link", None, Some(json!({"code": link_code, "device_name": "tablet"})))
        .await;
    let (tablet_access, _) = secrets.session("linked device", &linked);
    let devices = api.expect(200, Method::GET, "/api/devices", Some(&access), None).await;
    let tablet = devices["items"]
        .as_array()
        .expect("a device list")
        .iter()
        .find(|d| d["name"] == "tablet")
        .unwrap_or_else(|| panic!("no tablet in {devices}"));
    let tablet_id = tablet["id"].as_str().expect("a device id");
    api.expect(204, Method::DELETE, &format!("/api/devices/{tablet_id}"), Some(&access), None).await;
    api.expect(401, Method::GET, "/api/me", Some(&tablet_access), None).await;

    // Assistant turns with keys given per request (answering, refused, failing) and on the
    // free tier (the failing operator key first, then the one that answers).
    let request_keys = [
        ("gemini", secrets.add("request key", "AIzaSyREQUESTCANARY-fake-invalid_key-31f0")),
        ("openai", secrets.add("request key", "sk-proj-REQUESTCANARY-fake-bad_request-8e2d")),
        ("anthropic", secrets.add("request key", "sk-ant-api03-REQUESTCANARY-fake-ok-c4d9a1")),
        ("openrouter", secrets.add("request key", "sk-or-v1-REQUESTCANARY-fake-error_after_delta-07")),
    ];
    for (status, (provider, key)) in [502, 400, 200, 200].into_iter().zip(&request_keys) {
        let body = json!({"message": "canary question", "apiKeys": {*provider: key}});
        api.expect(status, Method::POST, "/api/chat/message", Some(&access), Some(body)).await;
    }
    let body = json!({"message": "free tier question"});
    let reply = api.expect(200, Method::POST, "/api/chat/message", Some(&access), Some(body)).await;
    assert_eq!(reply["provider"], "cerebras");
    let keys_sent: Vec<String> = fake.requests().into_iter().filter_map(|request| request.api_key).collect();
    assert!(keys_sent.contains(&operator_failing) && keys_sent.contains(&operator_ok), "both operator keys were tried");

    // Deleting the account: a wrong password first, then the right one.
    let body = json!({"password": wrong_password});
    api.expect(422, Method::DELETE, "/api/account", Some(&access), Some(body)).await;
    api.expect(204, Method::DELETE, "/api/account", Some(&access), Some(json!({"password": third_password}))).await;
    api.expect(401, Method::GET, "/api/me", Some(&access), None).await;

    let (lines, raw) = hearth.stop().await;
    let log = lines.join("\n");
    let raw = String::from_utf8_lossy(&raw);

    // The log is there and says what happened, at the level asked for.
    let level_tag = format!(" {} ", level.to_uppercase());
    assert!(lines.iter().any(|l| l.contains(&level_tag)), "no {level} line: RUST_LOG was not honoured:\n{log}");
    for event in [
        "account registered",
        "logged in",
        "spent refresh token presented again",
        "email written to outbox",
        "email changed",
        "password changed",
        "password reset",
        "identity published",
        "device linked",
        "device signed out",
        "account deleted",
        "provider attempt failed",
    ] {
        assert!(log.contains(event), "the log lacks {event:?}:\n{log}");
    }
    let user_id = session["user"]["id"].as_str().expect("a user id");
    assert!(log.contains(user_id), "the log never names the user");

    let mut leaks = Vec::new();
    for (what, secret) in &secrets.0 {
        for form in forms(secret) {
            for (output, text) in [("log", &log), ("raw output", &raw.to_string())] {
                if let Some(at) = text.find(&form) {
                    let line = text[..at].rsplit('\n').next().unwrap_or("");
                    leaks.push(format!("{what} ({form}) in the {output}: {line}…"));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "secrets in hearth's output at {level}:\n{}", leaks.join("\n"));
}

#[tokio::test]
async fn no_secret_reaches_the_log_at_trace() {
    every_flow_keeps_secrets_out_of_the_log("trace").await;
}

#[tokio::test]
async fn no_secret_reaches_the_log_at_debug() {
    every_flow_keeps_secrets_out_of_the_log("debug").await;
}

#[test]
fn base64_forms_are_found_at_any_alignment() {
    let secret = "canary-pw-first-3b7e1f";
    for prefix in ["", "x", "xy", "xyz"] {
        let encoded = STANDARD.encode(format!("{prefix}{secret} and more"));
        assert!(forms(secret).iter().any(|form| encoded.contains(form)), "{prefix:?}: {encoded}");
    }
}
