//! The test harness: a real hearth server in-process on `127.0.0.1:0` with a temporary data
//! directory, a reqwest client, request helpers, and a reader for the outbox (`.eml` files
//! written when no SMTP relay is configured).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::Duration;

use base64::Engine as _;
use hearth_server::Settings;
use hearth_server::settings::SecretText;
use hearth_vault::PasswordParams;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The `secret_key_base` every test server runs with, so tests can craft tokens.
pub const SECRET_KEY_BASE: &str = "hearth-integration-tests-secret-key-base-0123456789";

/// The password [`TestApp::register`] uses unless told otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

/// How long [`TestApp::email`] waits for a background task to write a message.
const EMAIL_WAIT: Duration = Duration::from_secs(10);
const EMAIL_POLL: Duration = Duration::from_millis(20);

/// A running server and a client for it. Dropping it stops the server.
#[derive(Debug)]
pub struct TestApp {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub base_url: String,
    /// A client with default settings (no cookies, no redirects followed).
    pub client: reqwest::Client,
    /// The server's data directory (secrets, SQLite, outbox).
    pub data_dir: TempDir,
    /// Outbox files already handed out by [`TestApp::email`].
    seen_emails: Mutex<HashSet<PathBuf>>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server may already have stopped; nothing to do then.
            let _ = shutdown.send(());
        }
    }
}

/// Every server's log lines so far, as the operator would read them (shared by the tests of
/// this binary: look for what only your test logs, such as a key's fingerprint).
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// What tests read the servers' log with: [`captured_log`].
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The servers' log so far: `info` and up, `debug` for the assistant's crates.
pub fn captured_log() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
}

/// Keeps the servers' log for [`captured_log`], and sends it to the test's captured output
/// too when `TEST_LOG` is set.
fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _, fmt};
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let kept = fmt::layer().with_ansi(false).with_writer(|| LogWriter).with_filter(EnvFilter::new(
            "info,sqlx=warn,hearth_ai=debug,hearth_keyguard=debug,hearth_server::assistant=debug",
        ));
        let shown = std::env::var_os("TEST_LOG").is_some().then(|| {
            let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
            fmt::layer().with_test_writer().with_filter(filter)
        });
        let _ = tracing_subscriber::registry().with(kept).with(shown).try_init();
    });
}

/// A server with the test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server with the test defaults, then `configure` applied to its settings.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    init_tracing();
    let data_dir = tempfile::tempdir().expect("create a temporary data directory");
    let mut settings = Settings::default();
    settings.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.data_dir = data_dir.path().to_path_buf();
    settings.secrets.secret_key_base = Some(SecretText::new(SECRET_KEY_BASE));
    settings.auth.password_hashing = PasswordParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
    settings.auth.attempts_per_address_per_minute = 100_000;
    settings.auth.attempts_per_account_per_minute = 100_000;
    settings.database.max_connections = 8;
    configure(&mut settings);

    let server = hearth_server::Server::build(settings).await.expect("build the server");
    let addr = server.local_addr();
    let (shutdown, stop) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let stopped = async move {
            // A dropped sender stops the server too.
            let _ = stop.await;
        };
        if let Err(error) = server.run(stopped).await {
            eprintln!("test server failed: {error}");
        }
    });
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("build the HTTP client");
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        client,
        data_dir,
        seen_emails: Mutex::new(HashSet::new()),
        shutdown: Some(shutdown),
    }
}

/// A signed-in session as register, login, refresh or device linking returned it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user's id.
    pub user_id: String,
    /// The (normalized) email the server reported.
    pub email: String,
    /// The access token.
    pub auth_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// The whole reply.
    pub body: Value,
}

impl Session {
    /// Reads a session reply, checking its shape against seed 002.
    pub fn from_reply(body: Value) -> Self {
        assert_session_shape(&body);
        Self {
            user_id: str_field(&body["user"], "id"),
            email: str_field(&body["user"], "email"),
            auth_token: str_field(&body, "auth_token"),
            refresh_token: str_field(&body, "refresh_token"),
            body,
        }
    }
}

/// The string at `value[key]`, or a failed test.
pub fn str_field(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_else(|| panic!("`{key}` is not a string in {value}")).to_owned()
}

/// The object's keys, sorted.
pub fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> =
        value.as_object().unwrap_or_else(|| panic!("not an object: {value}")).keys().cloned().collect();
    keys.sort();
    keys
}

/// Asserts that `value` is an object with exactly these keys.
#[track_caller]
pub fn assert_keys(value: &Value, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|k| (*k).to_owned()).collect();
    expected.sort();
    assert_eq!(keys(value), expected, "keys of {value}");
}

/// Asserts the shape seed 002 gives register, login and refresh replies.
#[track_caller]
pub fn assert_session_shape(body: &Value) {
    assert_keys(body, &["user", "conversations", "users", "auth_token", "refresh_token"]);
    assert_user_shape(&body["user"]);
    assert!(body["conversations"].is_array(), "conversations: {body}");
    assert!(body["users"].is_array(), "users: {body}");
    assert!(!str_field(body, "auth_token").is_empty());
    assert!(!str_field(body, "refresh_token").is_empty());
}

/// Asserts the shape of a user with their profile.
#[track_caller]
pub fn assert_user_shape(user: &Value) {
    assert_keys(
        user,
        &[
            "id",
            "email",
            "display_name",
            "hidden",
            "theme",
            "magnification",
            "recents",
            "identity_key",
            "identity_private_key",
        ],
    );
    uuid::Uuid::parse_str(&str_field(user, "id")).expect("user id is a UUID");
    assert!(user["hidden"].is_boolean(), "{user}");
    assert!(matches!(user["theme"].as_str(), Some("day" | "night")), "{user}");
    assert!(user["magnification"].is_f64() || user["magnification"].is_u64(), "{user}");
    assert!(user["recents"].is_array(), "{user}");
    // Both forms of the identity (docs/e2e.md), or neither.
    assert!(user["identity_key"].is_object() || user["identity_key"].is_null(), "{user}");
    assert_eq!(user["identity_key"].is_null(), user["identity_private_key"].is_null(), "{user}");
}

/// A response's status, headers and JSON body (`Value::Null` when the body is empty).
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub text: String,
    /// Body as JSON; `Null` when empty or not JSON by its content type (pages).
    pub json: Value,
}

impl Reply {
    /// Reads the whole response.
    pub async fn read(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read the response body");
        let is_json = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|t| t.to_str().ok())
            .is_some_and(|t| t.contains("json"));
        // Pages and their files are not JSON; everything else must be.
        let is_page = headers.get(reqwest::header::CONTENT_TYPE).is_some() && !is_json;
        let json = if text.is_empty() || is_page {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text}"))
        };
        Self { status, headers, text, json }
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect_status(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        &self.json
    }

    /// Asserts an error reply: status, `error` code, and the error body's shape.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        assert_error_shape(&self.json);
        assert_eq!(self.json["error"], code, "error code in {}", self.text);
        assert!(
            self.headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json")),
            "error replies are JSON: {:?}",
            self.headers
        );
        &self.json
    }

    /// Asserts a 422 naming `field` among its `fields`, and returns the field's problems.
    #[track_caller]
    pub fn expect_invalid(&self, field: &str) -> Vec<String> {
        self.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid");
        let problems = self.json["fields"][field]
            .as_array()
            .unwrap_or_else(|| panic!("no problems listed for `{field}` in {}", self.text));
        assert!(!problems.is_empty(), "{}", self.text);
        problems.iter().map(|p| p.as_str().expect("problems are strings").to_owned()).collect()
    }
}

/// Asserts the error body shape: `error` and `message` strings, optional `fields` and
/// `retryAfter`, nothing else.
#[track_caller]
pub fn assert_error_shape(body: &Value) {
    let object = body.as_object().unwrap_or_else(|| panic!("error body is not an object: {body}"));
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    for key in object.keys() {
        assert!(["error", "message", "fields", "retryAfter"].contains(&key.as_str()), "unexpected key {key} in {body}");
    }
}

/// Which message of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailKind {
    /// Sent on registration, on request and after an email change.
    Confirm,
    /// Sent by `/auth/password/request`.
    PasswordReset,
    /// Sent by `/api/token/email_change`.
    EmailChange,
}

impl EmailKind {
    fn subject(self) -> &'static str {
        match self {
            EmailKind::Confirm => "Confirm your email address for hearth",
            EmailKind::PasswordReset => "Reset your hearth password",
            EmailKind::EmailChange => "Change the email address of your hearth account",
        }
    }
}

/// A message read from the outbox.
#[derive(Debug, Clone)]
pub struct Email {
    /// The `To` header.
    pub to: String,
    /// The `Subject` header.
    pub subject: String,
    /// The decoded body.
    pub body: String,
    /// The code after "Or enter this code in the app: ".
    pub token: String,
}

impl TestApp {
    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A request to `path`, with a bearer token when one is given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends and reads a request.
    pub async fn send(&self, request: RequestBuilder) -> Reply {
        Reply::read(request.send().await.expect("send the request")).await
    }

    /// `GET path` without credentials.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path, None)).await
    }

    /// `POST path` with a JSON body and no credentials.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.request(Method::POST, path, None).json(body)).await
    }

    /// `GET path` with an access token.
    pub async fn get_authed(&self, path: &str, token: &str) -> Reply {
        self.send(self.request(Method::GET, path, Some(token))).await
    }

    /// `POST path` with an access token and an optional JSON body.
    pub async fn post_authed(&self, path: &str, token: &str, body: Option<&Value>) -> Reply {
        let request = self.request(Method::POST, path, Some(token));
        self.send(match body {
            Some(body) => request.json(body),
            None => request,
        })
        .await
    }

    /// `PATCH path` with an access token and a JSON body.
    pub async fn patch_authed(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send(self.request(Method::PATCH, path, Some(token)).json(body)).await
    }

    /// `DELETE path` with an access token and an optional JSON body.
    pub async fn delete_authed(&self, path: &str, token: &str, body: Option<&Value>) -> Reply {
        let request = self.request(Method::DELETE, path, Some(token));
        self.send(match body {
            Some(body) => request.json(body),
            None => request,
        })
        .await
    }

    /// `POST /auth/register` with [`PASSWORD`]; asserts the 201 and its shape.
    pub async fn register(&self, email: &str) -> Session {
        self.register_with(&json!({ "email": email, "password": PASSWORD })).await
    }

    /// `POST /auth/register` with this body; asserts the 201 and its shape.
    pub async fn register_with(&self, body: &Value) -> Session {
        let reply = self.post("/auth/register", body).await;
        Session::from_reply(reply.expect_status(StatusCode::CREATED).clone())
    }

    /// `POST /auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post("/auth/login", &json!({ "email": email, "password": password })).await
    }

    /// `POST /auth/login`; asserts the 200 and its shape.
    pub async fn login_ok(&self, email: &str, password: &str) -> Session {
        let reply = self.login(email, password).await;
        Session::from_reply(reply.expect_status(StatusCode::OK).clone())
    }

    /// `POST /auth/login` with a device name; asserts the 200.
    pub async fn login_device(&self, email: &str, password: &str, device_name: &str) -> Session {
        let reply = self
            .post("/auth/login", &json!({ "email": email, "password": password, "device_name": device_name }))
            .await;
        Session::from_reply(reply.expect_status(StatusCode::OK).clone())
    }

    /// `POST /auth/refresh`.
    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post("/auth/refresh", &json!({ "token": refresh_token })).await
    }

    /// `GET /api/me` with the token; the status says whether the token is accepted.
    pub async fn me(&self, token: &str) -> Reply {
        self.get_authed("/api/me", token).await
    }

    /// Asserts the access token is refused with a 401.
    pub async fn assert_token_refused(&self, token: &str) {
        self.me(token).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }

    /// Asserts the access token works.
    pub async fn assert_token_works(&self, token: &str) {
        self.me(token).await.expect_status(StatusCode::OK);
    }

    /// Asserts the refresh token is refused with a 401.
    pub async fn assert_refresh_refused(&self, refresh_token: &str) {
        self.refresh(refresh_token).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }

    /// The device list of the token's user.
    pub async fn devices(&self, token: &str) -> Vec<Value> {
        let reply = self.get_authed("/api/devices", token).await;
        let body = reply.expect_status(StatusCode::OK);
        assert_keys(body, &["items"]);
        body["items"].as_array().expect("items is an array").clone()
    }

    /// The id of the device the token belongs to.
    pub async fn current_device(&self, token: &str) -> String {
        let devices = self.devices(token).await;
        let current: Vec<&Value> = devices.iter().filter(|d| d["current"] == true).collect();
        assert_eq!(current.len(), 1, "exactly one current device in {devices:?}");
        str_field(current[0], "id")
    }

    fn outbox(&self) -> PathBuf {
        self.data_dir.path().join("outbox")
    }

    /// Waits (polling, at most a few seconds) for the newest message of `kind` to `to` that
    /// this helper has not returned before, and reads it. Older unreturned messages of the
    /// same kind to the same address are skipped too: a newer token replaces them.
    pub async fn email(&self, kind: EmailKind, to: &str) -> Email {
        let deadline = tokio::time::Instant::now() + EMAIL_WAIT;
        loop {
            let mut matching: Vec<(PathBuf, Email)> = read_outbox(&self.outbox())
                .into_iter()
                .filter(|(path, email)| {
                    email.subject == kind.subject()
                        && email.to.contains(to)
                        && !self.seen_emails.lock().expect("seen list").contains(path)
                })
                .collect();
            if let Some((_, newest)) = matching.last().cloned() {
                let mut seen = self.seen_emails.lock().expect("seen list");
                seen.extend(matching.drain(..).map(|(path, _)| path));
                return newest;
            }
            assert!(tokio::time::Instant::now() < deadline, "no {kind:?} email to {to} within {EMAIL_WAIT:?}");
            tokio::time::sleep(EMAIL_POLL).await;
        }
    }

    /// Every outbox message so far addressed to `to`.
    pub fn emails_to(&self, to: &str) -> Vec<Email> {
        read_outbox(&self.outbox()).into_iter().map(|(_, email)| email).filter(|e| e.to.contains(to)).collect()
    }
}

/// The outbox's messages, oldest first (file names start with the time in milliseconds).
fn read_outbox(dir: &Path) -> Vec<(PathBuf, Email)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    paths.sort_by_key(|path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let millis: u64 = name.split('-').next().and_then(|m| m.parse().ok()).unwrap_or_default();
        (millis, name)
    });
    paths
        .into_iter()
        .filter_map(|path| {
            // A file being written may be incomplete; it is read again on the next poll.
            let text = std::fs::read_to_string(&path).ok()?;
            parse_email(&text).map(|email| (path, email))
        })
        .collect()
}

/// Parses an `.eml` file as lettre writes it: headers, a blank line, and a body in 7bit,
/// quoted-printable or base64.
fn parse_email(text: &str) -> Option<Email> {
    let (head, raw_body) = text.split_once("\r\n\r\n").or_else(|| text.split_once("\n\n"))?;
    // Unfold continuation lines, then split into name/value pairs.
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    for (_, value) in &mut headers {
        *value = value.trim().to_owned();
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let encoding = header("content-transfer-encoding").unwrap_or_default().to_ascii_lowercase();
    let body = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(raw_body),
        "base64" => {
            let compact: String = raw_body.chars().filter(|c| !c.is_whitespace()).collect();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(compact).ok()?).ok()?
        }
        _ => raw_body.to_owned(),
    };
    let body = body.replace("\r\n", "\n");
    let token = body.split("Or enter this code in the app: ").nth(1)?.split_whitespace().next()?.to_owned();
    Some(Email { to: header("to")?, subject: header("subject")?, body, token })
}

/// Decodes quoted-printable: `=\r\n` soft line breaks vanish, `=XX` is a byte.
fn decode_quoted_printable(text: &str) -> String {
    let bytes =
        quoted_printable::decode(text, quoted_printable::ParseMode::Robust).expect("the body is quoted-printable");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sends the same request `n` times at once and returns the statuses.
pub async fn concurrently(app: &TestApp, n: usize, path: &str, body: &Value) -> Vec<StatusCode> {
    let requests = (0..n).map(|_| {
        let request = app.client.post(app.url(path)).json(body);
        tokio::spawn(async move { request.send().await.map(|r| r.status()) })
    });
    let mut statuses = Vec::with_capacity(n);
    for handle in futures::future::join_all(requests).await {
        statuses.push(handle.expect("request task").expect("send the request"));
    }
    statuses
}

/// Asserts no file in the data directory (database, WAL) contains `needle`.
pub fn assert_no_file_contains(app: &TestApp, needle: &str) {
    for entry in std::fs::read_dir(app.data_dir.path()).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds a secret in plain text",
                path.display()
            );
        }
    }
}

mod tests {
    use super::*;

    #[test]
    fn parses_7bit_and_quoted_printable_bodies() {
        let plain = "From: hearth <hearth@localhost>\r\nTo: ann@example.org\r\nSubject: Reset your hearth \
                     password\r\nContent-Transfer-Encoding: 7bit\r\n\r\nHi\r\n\r\nOr enter this code in the app: \
                     abc_DEF-123\r\n\r\nBye\r\n";
        let email = parse_email(plain).expect("parses");
        assert_eq!(email.token, "abc_DEF-123");
        assert_eq!(email.to, "ann@example.org");
        assert_eq!(email.subject, EmailKind::PasswordReset.subject());

        let quoted = "To: ann@example.org\r\nSubject:\r\n Reset your hearth password\r\n\
                      Content-Transfer-Encoding: quoted-printable\r\n\r\nOr enter this code in the app: abc=\r\n\
                      def=3D\r\n";
        let email = parse_email(quoted).expect("parses");
        assert_eq!(email.token, "abcdef=");
        assert_eq!(email.subject, EmailKind::PasswordReset.subject());
    }
}
