//! Administrators (issue 25): signing in with SSH keys that the tests make with `ssh-keygen`
//! and sign with `ssh-keygen -Y sign`, every refusal the contract names, admin tokens kept
//! apart from people's access tokens, and the audit log (appended on every sign-in, paged, its
//! chain broken by an edited or a deleted row).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use hearth_store::{ConnectOptions, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};
use ssh_key::{HashAlg, PrivateKey, SshSig};
use tempfile::TempDir;

use crate::harness::{TestApp, assert_keys, captured_log, spawn_app, str_field};

/// Keys made by `ssh-keygen` in a directory of their own.
pub(crate) struct Keys {
    dir: TempDir,
}

impl Keys {
    pub(crate) fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("a directory for keys") }
    }

    /// A new key pair `name` of `kind` (`ed25519`, `ecdsa`, `rsa`); the private key's path.
    pub(crate) fn make(&self, name: &str, kind: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut command = Command::new("ssh-keygen");
        command.args(["-q", "-N", "", "-C", name, "-t", kind]).arg("-f").arg(&path);
        match kind {
            "ecdsa" => command.args(["-b", "256"]),
            "rsa" => command.args(["-b", "2048"]),
            _ => &mut command,
        };
        let status = command.stdin(Stdio::null()).status().expect("run ssh-keygen (package openssh-client)");
        assert!(status.success(), "ssh-keygen -t {kind} failed");
        path
    }
}

/// The public key line of a private key made by [`Keys::make`].
pub(crate) fn public_line(key: &Path) -> String {
    std::fs::read_to_string(key.with_extension("pub")).expect("the public key").trim().to_owned()
}

/// `SHA256:…` of a key, as `ssh-keygen -l` prints it.
pub(crate) fn fingerprint(key: &Path) -> String {
    let output =
        Command::new("ssh-keygen").arg("-l").arg("-f").arg(key.with_extension("pub")).output().expect("ssh-keygen -l");
    String::from_utf8(output.stdout).expect("text").split_whitespace().nth(1).expect("a fingerprint").to_owned()
}

/// `ssh-keygen -Y sign -n NAMESPACE -f KEY` over `text` (on stdin): the armored signature.
fn sign(key: &Path, namespace: &str, text: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", namespace, "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ssh-keygen -Y sign");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write the text");
    let output = child.wait_with_output().expect("ssh-keygen -Y sign");
    assert!(output.status.success(), "ssh-keygen -Y sign: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("an armored signature")
}

/// Lists `lines` as the administrators' keys (the default file, `<data_dir>/admin_keys`).
pub(crate) fn list_admins(app: &TestApp, lines: &[String]) {
    let path = app.data_dir.path().join("admin_keys");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write admin_keys");
    // The server notices a change by the file's modification time and length: one written
    // within the same clock tick as the last, with the same length, is made to look newer.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    std::fs::File::options().write(true).open(&path).and_then(|f| f.set_modified(later)).expect("touch admin_keys");
}

async fn new_challenge(app: &TestApp) -> String {
    let reply = app.send(app.request(reqwest::Method::POST, "/admin/challenge", None)).await;
    let body = reply.expect_status(StatusCode::OK);
    assert_keys(body, &["challenge", "expires_at"]);
    str_field(body, "challenge")
}

async fn session(app: &TestApp, challenge: &str, signature: &str) -> crate::harness::Reply {
    app.post("/admin/session", &json!({ "challenge": challenge, "signature": signature })).await
}

/// Signs in with `key`; the admin token.
pub(crate) async fn sign_in(app: &TestApp, key: &Path) -> String {
    let challenge = new_challenge(app).await;
    let reply = session(app, &challenge, &sign(key, "hearth-admin", &challenge)).await;
    str_field(reply.expect_status(StatusCode::OK), "admin_token")
}

/// Asserts a 401 whose message contains `words`.
#[track_caller]
fn expect_refused(reply: &crate::harness::Reply, words: &str) {
    let body = reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let message = str_field(body, "message");
    assert!(message.contains(words), "{message:?} should say {words:?}");
}

/// The server's database, opened beside it (as an operator with shell access could).
async fn database(app: &TestApp) -> std::sync::Arc<dyn Store> {
    let url = format!("sqlite://{}", app.data_dir.path().join("hearth.db").display());
    hearth_store::connect(&ConnectOptions { url, max_connections: 2 }).await.expect("open the server's database")
}

/// The newest audit entries, as an administrator reads them.
pub(crate) async fn audit(app: &TestApp, token: &str) -> Vec<Value> {
    let reply = app.get_authed("/admin/audit", token).await;
    reply.expect_status(StatusCode::OK)["items"].as_array().expect("items").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_ecdsa_and_rsa_keys_sign_in() {
    let app = spawn_app().await;
    let keys = Keys::new();
    let made: Vec<PathBuf> = ["ed25519", "ecdsa", "rsa"].iter().map(|kind| keys.make(kind, kind)).collect();
    // Plain lines and allowed_signers lines with a principal, a comment, a blank line and a
    // line that is no key (a WARN naming it; the others still count).
    list_admins(
        &app,
        &[
            "# the server's administrators".to_owned(),
            public_line(&made[0]),
            String::new(),
            "this line is no key".to_owned(),
            format!("ann@example.org {}", public_line(&made[1])),
            format!("bob@example.org no-pty {}", public_line(&made[2])),
        ],
    );
    for key in &made {
        let challenge = new_challenge(&app).await;
        assert!(challenge.starts_with(&format!("hearth-admin-challenge:{}:", app.base_url)), "{challenge}");
        let reply = session(&app, &challenge, &sign(key, "hearth-admin", &challenge)).await;
        let body = reply.expect_status(StatusCode::OK);
        assert_keys(body, &["admin_token", "fingerprint", "expires_at"]);
        assert_eq!(str_field(body, "fingerprint"), fingerprint(key), "{}", key.display());
        let expires_at = chrono::DateTime::parse_from_rfc3339(&str_field(body, "expires_at")).expect("RFC 3339");
        let lifetime = expires_at.signed_duration_since(chrono::Utc::now()).num_seconds();
        assert!((890..=900).contains(&lifetime), "15 minutes, not {lifetime} s");
        let token = str_field(body, "admin_token");
        app.get_authed("/admin/audit", &token).await.expect_status(StatusCode::OK);
    }
    let log = captured_log();
    assert!(log.lines().any(|l| l.contains("WARN") && l.contains("line=4") && l.contains("admin_keys")), "{log}");
    assert!(!log.contains("this line is no key"), "a line's content is not logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_file_is_read_again_when_it_changes() {
    let app = spawn_app().await;
    let keys = Keys::new();
    let (first, second) = (keys.make("first", "ed25519"), keys.make("second", "ed25519"));
    // No file yet: no administrators, as the server said when it started.
    let path = app.data_dir.path().join("admin_keys");
    let said = captured_log().lines().any(|l| l.contains("no administrators") && l.contains(&*path.to_string_lossy()));
    assert!(said, "no line says there are no administrators, with {}", path.display());
    let challenge = new_challenge(&app).await;
    expect_refused(&session(&app, &challenge, &sign(&first, "hearth-admin", &challenge)).await, "not an administrator");
    list_admins(&app, &[public_line(&first)]);
    sign_in(&app, &first).await;
    list_admins(&app, &[public_line(&second)]);
    sign_in(&app, &second).await;
    let challenge = new_challenge(&app).await;
    expect_refused(&session(&app, &challenge, &sign(&first, "hearth-admin", &challenge)).await, "not an administrator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_a_401_that_says_why() {
    let app = spawn_app().await;
    let keys = Keys::new();
    let (admin, stranger) = (keys.make("admin", "ed25519"), keys.make("stranger", "ed25519"));
    list_admins(&app, &[public_line(&admin)]);

    // A key not listed.
    let challenge = new_challenge(&app).await;
    expect_refused(
        &session(&app, &challenge, &sign(&stranger, "hearth-admin", &challenge)).await,
        "not an administrator",
    );
    // The wrong namespace: the one inside the signature is never taken.
    let challenge = new_challenge(&app).await;
    expect_refused(&session(&app, &challenge, &sign(&admin, "git", &challenge)).await, "namespace");
    // A signature over other bytes.
    let challenge = new_challenge(&app).await;
    let other = new_challenge(&app).await;
    expect_refused(&session(&app, &challenge, &sign(&admin, "hearth-admin", &other)).await, "does not verify");
    // A challenge that another server issued (its URL), and one of this server's form that it
    // never issued.
    let foreign = "hearth-admin-challenge:https://other.example:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    expect_refused(&session(&app, foreign, &sign(&admin, "hearth-admin", foreign)).await, "not issued by this server");
    let made_up = format!("hearth-admin-challenge:{}:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", app.base_url);
    expect_refused(
        &session(&app, &made_up, &sign(&admin, "hearth-admin", &made_up)).await,
        "expired or was already used",
    );
    // A replayed challenge: it worked once.
    let challenge = new_challenge(&app).await;
    let signature = sign(&admin, "hearth-admin", &challenge);
    session(&app, &challenge, &signature).await.expect_status(StatusCode::OK);
    expect_refused(&session(&app, &challenge, &signature).await, "already used");
    // An expired challenge: its 60 seconds spent (moved back in the database rather than
    // waited for).
    let challenge = new_challenge(&app).await;
    let SqliteOnly(pool) = SqliteOnly::open(&app).await;
    sqlx::query("UPDATE admin_challenges SET expires_at = expires_at - 61000").execute(&pool).await.expect("age");
    expect_refused(&session(&app, &challenge, &sign(&admin, "hearth-admin", &challenge)).await, "expired");

    // Malformed requests are 422s naming the field.
    let challenge = new_challenge(&app).await;
    session(&app, &challenge, "not a signature").await.expect_invalid("signature");
    session(&app, "", &sign(&admin, "hearth-admin", "")).await.expect_invalid("challenge");
    app.post("/admin/session", &json!({ "challenge": challenge })).await.expect_invalid("signature");
    // None of this was a sign-in: the challenge still works.
    let reply = session(&app, &challenge, &sign(&admin, "hearth-admin", &challenge)).await;
    reply.expect_status(StatusCode::OK);
}

/// A pool on the server's SQLite file, to change rows behind the server's back.
pub(crate) struct SqliteOnly(pub(crate) sqlx::SqlitePool);

impl SqliteOnly {
    pub(crate) async fn open(app: &TestApp) -> Self {
        let url = format!("sqlite://{}", app.data_dir.path().join("hearth.db").display());
        Self(sqlx::SqlitePool::connect(&url).await.expect("open the server's database"))
    }
}

/// An `ssh-rsa` SSHSIG (RSA over SHA-1), which ssh-keygen no longer makes: built here by
/// PROTOCOL.sshsig, over the blob `ssh-keygen -Y sign` would sign.
fn sha1_rsa_signature(key: &Path, text: &str) -> String {
    use rsa::pkcs1v15::Pkcs1v15Sign;
    use sha1::Digest as _;
    let private = PrivateKey::read_openssh_file(key).expect("the RSA key");
    // From its parts: ssh-key 0.6's own conversion passes `p` for both primes.
    let keypair = private.key_data().rsa().expect("an RSA key");
    let number = |mpint: &ssh_key::Mpint| rsa::BigUint::from_bytes_be(mpint.as_positive_bytes().expect("positive"));
    let rsa_key = rsa::RsaPrivateKey::from_components(
        number(&keypair.public.n),
        number(&keypair.public.e),
        number(&keypair.private.d),
        vec![number(&keypair.private.p), number(&keypair.private.q)],
    )
    .expect("the RSA key's parts");
    let signed = SshSig::signed_data("hearth-admin", HashAlg::Sha512, text.as_bytes()).expect("signed data");
    let sha1_signature =
        rsa_key.sign(Pkcs1v15Sign::new::<sha1::Sha1>(), &sha1::Sha1::digest(&signed)).expect("an RSA signature");
    // A valid one: refused for its hash, not for being wrong.
    let valid = rsa_key.to_public_key().verify(
        Pkcs1v15Sign::new::<sha1::Sha1>(),
        &sha1::Sha1::digest(&signed),
        &sha1_signature,
    );
    assert!(valid.is_ok(), "the SHA-1 signature verifies");
    let string = |bytes: &[u8]| [&(bytes.len() as u32).to_be_bytes()[..], bytes].concat();
    let public = private.public_key().to_bytes().expect("the public key blob");
    let signature = [string(b"ssh-rsa"), string(&sha1_signature)].concat();
    let blob = [
        b"SSHSIG".to_vec(),
        1u32.to_be_bytes().to_vec(),
        string(&public),
        string(b"hearth-admin"),
        string(b""),
        string(b"sha512"),
        string(&signature),
    ]
    .concat();
    let body = base64::engine::general_purpose::STANDARD.encode(blob);
    let lines: Vec<&str> = body.as_bytes().chunks(70).map(|c| std::str::from_utf8(c).expect("base64")).collect();
    format!("-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----\n", lines.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_rsa_sha1_signature_is_refused_and_audited() {
    let app = spawn_app().await;
    let keys = Keys::new();
    let rsa_key = keys.make("rsa", "rsa");
    list_admins(&app, &[public_line(&rsa_key)]);
    let challenge = new_challenge(&app).await;
    let reply = session(&app, &challenge, &sha1_rsa_signature(&rsa_key, &challenge)).await;
    expect_refused(&reply, "SHA-1");
    // The same key signing with SHA-512 (ssh-keygen's default) is accepted, over the same
    // challenge: the refusal did not spend it.
    let reply = session(&app, &challenge, &sign(&rsa_key, "hearth-admin", &challenge)).await;
    let token = str_field(reply.expect_status(StatusCode::OK), "admin_token");
    let entries = audit(&app, &token).await;
    assert_eq!(entries[1]["outcome"], "refused", "{entries:?}");
    assert!(str_field(&entries[1], "reason").contains("SHA-1"), "{entries:?}");
    assert_eq!(entries[1]["fingerprint"], fingerprint(&rsa_key), "a listed key signed: its fingerprint is kept");
}

/// An `sk-ssh-ed25519@openssh.com` SSHSIG of `text` by the Ed25519 key `secret` with these
/// authenticator flags, as a FIDO security key makes it (no hardware here: ssh-keygen needs
/// one to make such a key).
fn security_key_signature(secret: [u8; 32], flags: u8, text: &str) -> (String, String) {
    use ed25519_dalek::Signer as _;
    use sha2::{Digest as _, Sha256};
    use ssh_key::public::{Ed25519PublicKey, KeyData, SkEd25519};
    let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
    let application = "ssh:";
    let key = KeyData::SkEd25519(SkEd25519::new(Ed25519PublicKey(signing.verifying_key().to_bytes()), application));
    let signed = SshSig::signed_data("hearth-admin", HashAlg::Sha512, text.as_bytes()).expect("signed data");
    let counter = 7u32.to_be_bytes();
    let authenticator_data =
        [&Sha256::digest(application)[..], &[flags], &counter, &Sha256::digest(&signed)[..]].concat();
    let mut data = signing.sign(&authenticator_data).to_bytes().to_vec();
    data.push(flags);
    data.extend_from_slice(&counter);
    let signature = ssh_key::Signature::new(ssh_key::Algorithm::SkEd25519, data).expect("a signature");
    let sshsig = SshSig::new(key.clone(), "hearth-admin", HashAlg::Sha512, signature).expect("an SSHSIG");
    let line = ssh_key::PublicKey::from(key).to_openssh().expect("the key's line");
    (line, sshsig.to_pem(ssh_key::LineEnding::LF).expect("armored"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_key_signs_in_only_with_user_presence() {
    let app = spawn_app().await;
    let secret = *uuid::Uuid::new_v4().as_bytes();
    let secret: [u8; 32] = [secret, secret].concat().try_into().expect("32 bytes");
    let challenge = new_challenge(&app).await;
    let (line, untouched) = security_key_signature(secret, 0x00, &challenge);
    list_admins(&app, &[line]);
    expect_refused(&session(&app, &challenge, &untouched).await, "presence");
    let (_, touched) = security_key_signature(secret, 0x01, &challenge);
    session(&app, &challenge, &touched).await.expect_status(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tokens_and_access_tokens_are_kept_apart() {
    let app = spawn_app().await;
    let keys = Keys::new();
    let admin = keys.make("admin", "ed25519");
    list_admins(&app, &[public_line(&admin)]);
    let admin_token = sign_in(&app, &admin).await;
    let person = app.register("pat@example.org").await;

    // A person's access token on /admin: refused, saying what is needed.
    for path in ["/admin/audit", "/admin/audit/verify"] {
        let reply = app.get_authed(path, &person.auth_token).await;
        let body = reply.expect_error(StatusCode::FORBIDDEN, "admin_token_required");
        assert!(str_field(body, "message").contains("hearth admin login"), "{body}");
        app.get(path).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        app.get_authed(path, "hadm_not-a-token").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // An admin token on people's routes: refused by the access-token check.
    for path in ["/api/me", "/api/users", "/api/conversations", "/api/devices"] {
        let reply = app.get_authed(path, &admin_token).await;
        let body = reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(str_field(body, "message").contains("admin token"), "{path}: {body}");
    }
    // The tokens still work where they belong.
    app.get_authed("/admin/audit", &admin_token).await.expect_status(StatusCode::OK);
    app.get_authed("/api/me", &person.auth_token).await.expect_status(StatusCode::OK);
    // Neither token was logged.
    let log = captured_log();
    assert!(!log.contains(&admin_token) && !log.contains(&person.auth_token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_are_audited_and_paged_newest_first() {
    let app = spawn_app().await;
    let keys = Keys::new();
    let (admin, stranger) = (keys.make("admin", "ed25519"), keys.make("stranger", "ecdsa"));
    list_admins(&app, &[public_line(&admin)]);
    let challenge = new_challenge(&app).await;
    expect_refused(
        &session(&app, &challenge, &sign(&stranger, "hearth-admin", &challenge)).await,
        "not an administrator",
    );
    let challenge = new_challenge(&app).await;
    expect_refused(&session(&app, &challenge, &sign(&admin, "git", &challenge)).await, "namespace");
    let token = sign_in(&app, &admin).await;

    let entries = audit(&app, &token).await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    for entry in &entries {
        assert_keys(entry, &["seq", "at", "fingerprint", "action", "target", "reason", "outcome", "hash"]);
        assert_eq!(entry["action"], "admin.login");
    }
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().expect("seq")).collect();
    assert_eq!(seqs, [3, 2, 1], "newest first");
    assert_eq!((&entries[0]["outcome"], &entries[0]["fingerprint"]), (&json!("ok"), &json!(fingerprint(&admin))));
    assert_eq!(entries[0]["reason"], Value::Null);
    assert_eq!(entries[1]["outcome"], "refused");
    assert_eq!(entries[1]["fingerprint"], fingerprint(&admin), "a listed key signed in the wrong namespace");
    assert!(str_field(&entries[1], "reason").contains("namespace"));
    assert_eq!(entries[2]["outcome"], "refused");
    assert_eq!(entries[2]["fingerprint"], Value::Null, "no listed key signed");

    // Pages of two.
    let first = app.get_authed("/admin/audit?page_size=2", &token).await;
    let first = first.expect_status(StatusCode::OK);
    assert_keys(first, &["items", "page_token"]);
    assert_eq!(first["items"].as_array().expect("items").len(), 2);
    let next = str_field(first, "page_token");
    let second = app.get_authed(&format!("/admin/audit?page_size=2&page_token={next}"), &token).await;
    let second = second.expect_status(StatusCode::OK);
    assert_eq!(second["items"][0]["seq"], 1);
    assert_eq!(second["page_token"], Value::Null);
    let bad = app.get_authed("/admin/audit?page_token=forged", &token).await;
    bad.expect_error(StatusCode::BAD_REQUEST, "invalid_page_token");
    app.get_authed("/admin/audit?page_size=0", &token).await.expect_invalid("page_size");

    // The API has no way to change or delete an entry.
    for method in [reqwest::Method::DELETE, reqwest::Method::PUT, reqwest::Method::PATCH] {
        let reply = app.send(app.request(method, "/admin/audit", Some(&token))).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{}", reply.text);
    }
}

/// Three sign-ins (two refused, one accepted) in the log; the admin token.
async fn three_entries(app: &TestApp) -> String {
    let keys = Keys::new();
    let admin = keys.make("admin", "ed25519");
    list_admins(app, &[public_line(&admin)]);
    for namespace in ["git", "file"] {
        let challenge = new_challenge(app).await;
        expect_refused(&session(app, &challenge, &sign(&admin, namespace, &challenge)).await, "namespace");
    }
    sign_in(app, &admin).await
}

async fn verification(app: &TestApp, token: &str) -> Value {
    app.get_authed("/admin/audit/verify", token).await.expect_status(StatusCode::OK).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_audit_row_breaks_the_chain() {
    let app = spawn_app().await;
    let token = three_entries(&app).await;
    let store = database(&app).await;
    assert_eq!(hearth_server::admin::audit::verify(&*store).await.expect("an intact chain"), 3);
    let intact = verification(&app, &token).await;
    assert_eq!((&intact["verified"], &intact["entries"], &intact["broken"]), (&json!(true), &json!(3), &Value::Null));
    assert_eq!(intact["newest"]["seq"], 3, "{intact}");

    let SqliteOnly(pool) = SqliteOnly::open(&app).await;
    sqlx::query("UPDATE admin_audit SET outcome = 'ok', reason = NULL WHERE seq = 2")
        .execute(&pool)
        .await
        .expect("edit");
    let broken = hearth_server::admin::audit::verify(&*store).await.expect_err("an edited entry");
    let hearth_server::admin::audit::VerifyError::Broken(entry) = broken else { panic!("{broken}") };
    assert_eq!(entry.seq, 2);
    let verdict = verification(&app, &token).await;
    assert_eq!(
        (&verdict["verified"], &verdict["entries"], &verdict["broken"]["seq"]),
        (&json!(false), &json!(1), &json!(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_audit_row_breaks_the_chain() {
    let app = spawn_app().await;
    let token = three_entries(&app).await;
    let store = database(&app).await;
    let SqliteOnly(pool) = SqliteOnly::open(&app).await;
    sqlx::query("DELETE FROM admin_audit WHERE seq = 2").execute(&pool).await.expect("delete");
    let broken = hearth_server::admin::audit::verify(&*store).await.expect_err("a deleted entry");
    let hearth_server::admin::audit::VerifyError::Broken(entry) = broken else { panic!("{broken}") };
    assert_eq!(entry.seq, 3, "the entry after the deleted one no longer follows");
    // Renumbered to hide the gap: the chain still breaks.
    sqlx::query("UPDATE admin_audit SET seq = 2 WHERE seq = 3").execute(&pool).await.expect("renumber");
    let verdict = verification(&app, &token).await;
    let seen = (&verdict["verified"], &verdict["entries"], &verdict["broken"]["seq"]);
    assert_eq!(seen, (&json!(false), &json!(1), &json!(2)), "{verdict}");
}

/// `GET /admin/audit/verify` told of `known` (seq, hash) as an earlier verification's newest.
async fn verification_since(app: &TestApp, token: &str, known: &Value) -> Value {
    let path = format!("/admin/audit/verify?known_seq={}&known_hash={}", known["seq"], str_field(known, "hash"));
    app.get_authed(&path, token).await.expect_status(StatusCode::OK).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_audit_rows_deleted_are_noticed_through_an_entry_verified_before() {
    let app = spawn_app().await;
    let token = three_entries(&app).await;
    let known = verification(&app, &token).await["newest"].clone();
    assert_eq!(known["seq"], 3, "{known}");
    let again = verification_since(&app, &token, &known).await;
    assert_eq!((&again["verified"], &again["newest"]), (&json!(true), &known), "nothing changed: {again}");

    let SqliteOnly(pool) = SqliteOnly::open(&app).await;
    sqlx::query("DELETE FROM admin_audit WHERE seq >= 2").execute(&pool).await.expect("delete the newest two");
    // What is left holds on its own: only the entry kept from before shows the cut.
    let alone = verification(&app, &token).await;
    assert_eq!((&alone["verified"], &alone["entries"]), (&json!(true), &json!(1)), "{alone}");
    let since = verification_since(&app, &token, &known).await;
    assert_eq!((&since["verified"], &since["entries"], &since["newest"]), (&json!(false), &json!(1), &Value::Null));
    assert_eq!(since["broken"]["seq"], 2, "the first entry missing: {since}");
    assert!(str_field(&since["broken"], "problem").contains("newest entries were deleted"), "{since}");

    // Written on after the cut: entry 3 is back, but not the one verified before.
    let keys = Keys::new();
    let stranger = keys.make("stranger", "ed25519");
    for _ in 0..2 {
        let challenge = new_challenge(&app).await;
        let signed = sign(&stranger, "hearth-admin", &challenge);
        expect_refused(&session(&app, &challenge, &signed).await, "not an administrator");
    }
    assert_eq!(verification(&app, &token).await["newest"]["seq"], 3);
    let since = verification_since(&app, &token, &known).await;
    assert_eq!((&since["verified"], &since["broken"]["seq"]), (&json!(false), &json!(3)), "{since}");
    assert!(str_field(&since["broken"], "problem").contains("not the entry verified earlier"), "{since}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_entry_must_be_whole_and_well_formed() {
    let app = spawn_app().await;
    let token = three_entries(&app).await;
    let hash = "ab".repeat(32);
    for (query, field) in [
        ("known_seq=1".to_owned(), "known_hash"),
        (format!("known_hash={hash}"), "known_seq"),
        (format!("known_seq=0&known_hash={hash}"), "known_seq"),
        (format!("known_seq=x&known_hash={hash}"), "known_seq"),
        ("known_seq=1&known_hash=abc".to_owned(), "known_hash"),
        (format!("known_seq=1&known_hash={}", "zz".repeat(32)), "known_hash"),
    ] {
        app.get_authed(&format!("/admin/audit/verify?{query}"), &token).await.expect_invalid(field);
    }
    // Upper-case hex names the same entry.
    let known = verification(&app, &token).await["newest"].clone();
    let upper = json!({ "seq": known["seq"], "hash": str_field(&known, "hash").to_ascii_uppercase() });
    assert_eq!(verification_since(&app, &token, &upper).await["verified"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_and_sign_ins_count_as_attempts_of_the_address() {
    let app = crate::harness::spawn_app_with(|settings| settings.auth.attempts_per_address_per_minute = 2).await;
    let challenge = new_challenge(&app).await;
    let reply = session(&app, &challenge, "not a signature").await;
    reply.expect_invalid("signature");
    let reply = app.send(app.request(reqwest::Method::POST, "/admin/challenge", None)).await;
    reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(reply.headers.get(reqwest::header::RETRY_AFTER).is_some(), "{:?}", reply.headers);
    session(&app, &challenge, "not a signature").await.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_the_audit_chain_on_postgres() {
    let Some(database) = hearth_store::testing::TestDatabase::postgres("api::admin::on_postgres").await else {
        return;
    };
    let url = database.url.clone();
    let app = crate::harness::spawn_app_with(|settings| settings.database.url = Some(url)).await;
    let keys = Keys::new();
    let admin = keys.make("admin", "ecdsa");
    list_admins(&app, &[public_line(&admin)]);
    let challenge = new_challenge(&app).await;
    let signature = sign(&admin, "hearth-admin", &challenge);
    let token = str_field(session(&app, &challenge, &signature).await.expect_status(StatusCode::OK), "admin_token");
    expect_refused(&session(&app, &challenge, &signature).await, "already used");
    let entries = audit(&app, &token).await;
    let outcomes: Vec<&str> = entries.iter().map(|e| e["outcome"].as_str().expect("outcome")).collect();
    assert_eq!(outcomes, ["refused", "ok"]);
    let intact = verification(&app, &token).await;
    assert_eq!((&intact["verified"], &intact["entries"], &intact["broken"]), (&json!(true), &json!(2), &Value::Null));
    // The newest entry's hash as the API lists it is the one verification hands back.
    assert_eq!(intact["newest"], json!({ "seq": 2, "hash": entries[0]["hash"] }));
    drop(app);
    drop(database);
}
