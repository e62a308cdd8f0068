//! `hearth admin` (issue 25): `login` signs the server's challenge with `ssh-keygen -Y sign`
//! and keeps the admin token in a file only its owner can read; `audit` lists the log and
//! `audit --verify` tells an intact chain from one whose row was edited behind the server's
//! back, or whose newest rows were deleted since the last `--verify`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{self, Hearth};

/// An ed25519 key made by ssh-keygen in `dir`; the private key's path.
fn make_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen (package openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
    path
}

fn fingerprint(key: &Path) -> String {
    let output =
        Command::new("ssh-keygen").arg("-l").arg("-f").arg(key.with_extension("pub")).output().expect("ssh-keygen -l");
    String::from_utf8(output.stdout).expect("text").split_whitespace().nth(1).expect("a fingerprint").to_owned()
}

/// `hearth admin ARGS` with the configuration directory `config`.
async fn admin(cwd: &Path, config: &Path, args: &[&str]) -> harness::Finished {
    let mut command = harness::hearth(cwd);
    command.arg("admin").args(args).env("HEARTH_CONFIG_DIR", config);
    harness::run(command).await
}

/// An administrator's key for a server about to start: made in `dir` and listed in a file there;
/// the private key's path and the value for `HEARTH_ADMIN__ALLOWED_SIGNERS`.
pub(crate) fn listed_admin_key(dir: &Path) -> (PathBuf, String) {
    let key = make_key(dir, "admin");
    let signers = dir.join("admin_keys");
    std::fs::copy(key.with_extension("pub"), &signers).expect("write admin_keys");
    (key, signers.to_str().expect("a UTF-8 path").to_owned())
}

/// Grants `role` to the account `email` as the administrator holding `key`: `hearth admin
/// login`, then `hearth admin users grant ROLE EMAIL`, in a configuration directory of their own.
pub(crate) async fn grant_role(server: &Hearth, key: &Path, role: &str, email: &str) {
    let config = tempfile::tempdir().expect("a configuration directory");
    let key = key.to_str().expect("a UTF-8 path");
    let login = admin(config.path(), config.path(), &["login", "--server", &server.url, "--key", key]).await;
    assert!(login.status.success(), "{login:?}");
    let granted = admin(config.path(), config.path(), &["users", "grant", role, email]).await;
    assert!(granted.status.success(), "{granted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_login_keeps_a_private_token_and_audit_verify_sees_an_edited_row_and_a_cut_end() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (data, config) = (dir.path().join("data"), dir.path().join("config"));
    let admin_key = make_key(dir.path(), "admin");
    let stranger = make_key(dir.path(), "stranger");
    let signers = dir.path().join("admin_keys");
    let line = std::fs::read_to_string(admin_key.with_extension("pub")).expect("the public key");
    std::fs::write(&signers, format!("ann@example.org {line}")).expect("write admin_keys");
    let signers = signers.to_str().expect("a UTF-8 path").to_owned();
    let server = Hearth::start(dir.path(), &data, &[("HEARTH_ADMIN__ALLOWED_SIGNERS", &signers)]).await;
    let key = |path: &Path| path.to_str().expect("a UTF-8 path").to_owned();

    // A key that is not listed: refused, and nothing kept.
    let refused = admin(dir.path(), &config, &["login", "--server", &server.url, "--key", &key(&stranger)]).await;
    assert!(!refused.status.success(), "{refused:?}");
    assert!(refused.stderr.contains("not an administrator's key"), "{}", refused.stderr);
    assert!(!config.join("admin_session.json").exists());

    let login = admin(dir.path(), &config, &["login", "--server", &server.url, "--key", &key(&admin_key)]).await;
    assert!(login.status.success(), "{login:?}");
    assert!(login.stdout.contains(&fingerprint(&admin_key)), "{}", login.stdout);
    let file = config.join("admin_session.json");
    let mode = std::fs::metadata(&file).expect("the token file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the admin token is its owner's only");
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
    let token = kept["admin_token"].as_str().expect("a token");
    assert!(!login.stdout.contains(token) && !login.stderr.contains(token), "the token is not printed");
    let reply = harness::client().get(server.at("/admin/audit")).bearer_auth(token).send().await.expect("GET");
    assert_eq!(reply.status(), reqwest::StatusCode::OK, "the kept token works");

    let audit = admin(dir.path(), &config, &["audit"]).await;
    assert!(audit.status.success(), "{audit:?}");
    let lines: Vec<&str> = audit.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", audit.stdout);
    assert!(
        lines[0].contains("admin.login") && lines[0].contains(" ok ") && lines[0].contains(&fingerprint(&admin_key))
    );
    assert!(lines[1].contains("refused") && lines[1].contains("not an administrator's key"), "{}", lines[1]);
    let verified = admin(dir.path(), &config, &["audit", "--verify"]).await;
    assert!(verified.status.success() && verified.stdout.contains("intact: 2 entries"), "{verified:?}");
    let witness = config.join("admin_audit_witness.json");
    let mode = std::fs::metadata(&witness).expect("the witness file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&witness).expect("read")).expect("JSON");
    assert_eq!(kept[&server.url]["seq"], 2, "the newest entry verified is kept for this server: {kept}");
    let verified = admin(dir.path(), &config, &["audit", "--verify"]).await;
    assert!(verified.status.success() && verified.stdout.contains("still holds entry 2"), "{verified:?}");

    // The newest entry is deleted behind the server's back: what is left holds on its own, but
    // not the entry verified before.
    let database = rusqlite::Connection::open(data.join("hearth.db")).expect("open the database");
    let removed = database.execute("DELETE FROM admin_audit WHERE seq = 2", []);
    assert_eq!(removed.expect("delete the newest row"), 1);
    let verified = admin(dir.path(), &config, &["audit", "--verify"]).await;
    assert!(!verified.status.success(), "{verified:?}");
    let said = &verified.stderr;
    assert!(
        said.contains("tampered") && said.contains("entry 2") && said.contains("newest entries were deleted"),
        "{said}"
    );
    assert!(said.contains("last verified here at"), "{said}");

    // The refusal is rewritten as a success, behind the server's back.
    let edited = database.execute("UPDATE admin_audit SET outcome = 'ok', reason = NULL WHERE seq = 1", []);
    assert_eq!(edited.expect("edit the row"), 1);
    let verified = admin(dir.path(), &config, &["audit", "--verify"]).await;
    assert!(!verified.status.success(), "{verified:?}");
    assert!(verified.stderr.contains("tampered") && verified.stderr.contains("entry 1"), "{}", verified.stderr);

    // Without a kept session, `audit` says how to sign in.
    let elsewhere = admin(dir.path(), &dir.path().join("other"), &["audit"]).await;
    assert!(!elsewhere.status.success() && elsewhere.stderr.contains("hearth admin login"), "{elsewhere:?}");
    let (lines, _) = server.stop().await;
    assert!(!lines.iter().any(|l| l.contains(token)), "the token is not logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_users_invites_and_providers_from_the_command_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (data, config) = (dir.path().join("data"), dir.path().join("config"));
    let (key, signers) = listed_admin_key(dir.path());
    const POOL_KEY: &str = "gsk_fake-ok-0123456789abcdef0123456789abcdef";
    let free_tier = format!("[\"{POOL_KEY}\"]");
    let env = [
        ("HEARTH_ADMIN__ALLOWED_SIGNERS", signers.as_str()),
        ("HEARTH_ACCOUNTS__REGISTRATION", "invite"),
        ("HEARTH_AI__ORDER", "[\"groq\"]"),
        ("HEARTH_KEYGUARD__FREE_TIER__KEYS__GROQ", free_tier.as_str()),
    ];
    let server = Hearth::start(dir.path(), &data, &env).await;
    let run = |args: &'static [&'static str]| admin(dir.path(), &config, args);
    let key = key.to_str().expect("a UTF-8 path").to_owned();
    let login = admin(dir.path(), &config, &["login", "--server", &server.url, "--key", &key]).await;
    assert!(login.status.success(), "{login:?}");

    // An invite code, printed alone on stdout, signs someone up (twice, then no more).
    let made = run(&["invites", "create", "--uses", "2", "--expires", "1h"]).await;
    assert!(made.status.success(), "{made:?}");
    let code = made.stdout.trim().to_owned();
    assert!(made.stderr.contains("2 sign-up(s)"), "{}", made.stderr);
    let client = harness::client();
    let register = |email: &str, code: &str| {
        let body = serde_json::json!({ "email": email, "password": "a long enough password", "invite": code });
        client.post(server.at("/auth/register")).json(&body).send()
    };
    assert_eq!(register("ann@example.org", &code).await.expect("register").status(), 201);
    assert_eq!(register("bob@example.org", "made-up").await.expect("register").status(), 403);
    assert!(!run(&["invites", "create", "--expires", "soon"]).await.status.success());

    let listed = run(&["users", "list"]).await;
    assert!(listed.stdout.contains("ann@example.org") && listed.stdout.contains("active"), "{listed:?}");
    let granted = run(&["users", "grant", "operator", "ann@example.org"]).await;
    assert!(granted.status.success(), "{granted:?}");
    assert!(run(&["users", "list", "--query", "ann"]).await.stdout.contains("roles operator"));
    assert!(run(&["users", "revoke", "operator", "ann@example.org"]).await.status.success());
    assert!(run(&["users", "list"]).await.stdout.contains("roles -"));
    let wrong_role = run(&["users", "grant", "root", "ann@example.org"]).await;
    assert!(!wrong_role.status.success() && wrong_role.stderr.contains("422"), "{wrong_role:?}");
    let nobody = run(&["users", "disable", "nobody@example.org", "--reason", "x"]).await;
    assert!(!nobody.status.success() && nobody.stderr.contains("no account has the address"), "{nobody:?}");

    let disabled = run(&["users", "disable", "ann@example.org", "--reason", "spam"]).await;
    assert!(disabled.status.success(), "{disabled:?}");
    let login_body = serde_json::json!({ "email": "ann@example.org", "password": "a long enough password" });
    let refused = client.post(server.at("/auth/login")).json(&login_body).send().await.expect("login");
    assert_eq!(refused.status(), 403);
    assert!(run(&["users", "list"]).await.stdout.contains("DISABLED (spam)"));
    assert!(run(&["users", "enable", "ann@example.org"]).await.status.success());
    let again = client.post(server.at("/auth/login")).json(&login_body).send().await.expect("login");
    assert_eq!(again.status(), 200);
    let deleted = run(&["users", "delete", "ann@example.org", "--reason", "asked to"]).await;
    assert!(deleted.status.success(), "{deleted:?}");
    assert!(run(&["users", "list"]).await.stdout.contains("no accounts"));

    let providers = run(&["providers"]).await;
    assert!(providers.status.success(), "{providers:?}");
    assert!(
        providers.stdout.contains("1. groq") && providers.stdout.contains("1 free-tier key"),
        "{}",
        providers.stdout
    );
    assert!(!providers.stdout.contains(POOL_KEY) && !providers.stderr.contains(POOL_KEY));

    let audit = run(&["audit"]).await.stdout;
    for action in ["invite.create", "user.role.grant", "user.role.revoke", "user.disable", "user.enable", "user.delete"]
    {
        assert!(audit.contains(action), "{action} is not in the audit log:\n{audit}");
    }
    assert!(!audit.contains(&code), "the invite code reached the audit log");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rooms_and_open_from_the_command_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (data, config) = (dir.path().join("data"), dir.path().join("config"));
    let (key, signers) = listed_admin_key(dir.path());
    let server = Hearth::start(dir.path(), &data, &[("HEARTH_ADMIN__ALLOWED_SIGNERS", signers.as_str())]).await;
    let (cwd, config_dir) = (dir.path(), config.as_path());
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        admin(cwd, config_dir, &args).await
    };
    let args = |args: &[&str]| args.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
    let key = key.to_str().expect("a UTF-8 path").to_owned();
    let login = run(args(&["login", "--server", &server.url, "--key", &key])).await;
    assert!(login.status.success(), "{login:?}");

    // A private room with a post in it, made by a person over REST and the room's channel.
    let client = harness::client();
    let body = serde_json::json!({ "email": "ann@example.org", "password": "a long enough password" });
    let ann: Value = client
        .post(server.at("/auth/register"))
        .json(&body)
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("JSON");
    let token = ann["auth_token"].as_str().expect("a token").to_owned();
    let room = serde_json::json!({ "name": "back office", "visibility": "private" });
    let room: Value = client
        .post(server.at("/api/rooms"))
        .bearer_auth(&token)
        .json(&room)
        .send()
        .await
        .expect("room")
        .json()
        .await
        .expect("JSON");
    let room_id = room["id"].as_str().expect("an id").to_owned();
    let mut socket = crate::socket::Socket::connect(&server.url, &token).await;
    let topic = format!("room:{room_id}");
    socket.call(&topic, "phx_join", serde_json::json!({})).await;
    let post = socket.call(&topic, "post", serde_json::json!({ "text": "first line\nsecond line" })).await;
    let post_id = post["id"].as_str().expect("an id").to_owned();

    let listed = run(args(&["rooms", "list"])).await;
    assert!(listed.status.success(), "{listed:?}");
    let line =
        listed.stdout.lines().find(|line| line.contains(&room_id)).unwrap_or_else(|| panic!("{}", listed.stdout));
    assert!(line.contains("private") && line.contains("back office") && line.contains("members 1"), "{line}");
    assert!(line.contains("moderators ann@example.org"), "{line}");
    assert!(run(args(&["rooms", "list", "--query", "nothing like it"])).await.stdout.contains("no rooms"));

    let messages = run(args(&["rooms", "messages", &room_id])).await;
    assert!(messages.status.success(), "{messages:?}");
    assert!(
        messages.stdout.contains(&post_id) && messages.stdout.contains("first line\\nsecond line"),
        "{}",
        messages.stdout
    );

    let unreasoned = run(args(&["rooms", "delete-message", &room_id, &post_id, "--reason", " "])).await;
    assert!(!unreasoned.status.success() && unreasoned.stderr.contains("422"), "{unreasoned:?}");
    let deleted = run(args(&["rooms", "delete-message", &room_id, &post_id, "--reason", "off topic"])).await;
    assert!(deleted.status.success(), "{deleted:?}");
    // The member sees it go.
    loop {
        let frame = socket.next_frame().await;
        if frame[3] == "delete_post" {
            assert_eq!(frame[4]["message_id"], post_id.as_str());
            break;
        }
    }
    assert!(run(args(&["rooms", "messages", &room_id])).await.stdout.contains("no posts"));
    let again = run(args(&["rooms", "delete-message", &room_id, &post_id, "--reason", "off topic"])).await;
    assert!(!again.status.success() && again.stderr.contains("no post with this id"), "{again:?}");

    // `open` prints a link that signs in once, as the same key.
    let opened = run(args(&["open"])).await;
    assert!(opened.status.success(), "{opened:?}");
    let url = opened.stdout.trim().to_owned();
    let code = url.strip_prefix(&format!("{}/admin#", server.url)).unwrap_or_else(|| panic!("{url}")).to_owned();
    assert!(opened.stderr.contains("hearth admin open again"), "{}", opened.stderr);
    let redeem = || client.post(server.at("/admin/links/redeem")).json(&serde_json::json!({ "code": code })).send();
    let signed_in: Value = redeem().await.expect("redeem").json().await.expect("JSON");
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(config.join("admin_session.json")).expect("read")).expect("JSON");
    assert_eq!(signed_in["fingerprint"], kept["fingerprint"]);
    assert!(signed_in["admin_token"].is_string());
    assert_eq!(redeem().await.expect("redeem").status(), 401, "a link works once");

    let audit = run(args(&["audit"])).await.stdout;
    for action in ["room.read", "room.message.delete", "admin.link.create", "admin.link.redeem"] {
        assert!(audit.contains(action), "{action} is not in the audit log:\n{audit}");
    }
    assert!(audit.lines().any(|line| line.contains("room.message.delete") && line.contains("refused")), "{audit}");
    let (lines, _) = server.stop().await;
    assert!(!lines.iter().any(|l| l.contains(&code)), "the link's code is not logged");
}
