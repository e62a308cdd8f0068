//! Writes the committed seed corpus, `fuzz/seeds/<target>/<name>`: a handful of valid inputs
//! per target, the sealed ones made with the targets' fixed keys.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --bin make_seeds` (envelopes and blobs get
//! fresh random nonces each time, so only rerun it when a format changes).

use std::path::Path;

// Linked for the coverage hooks that `cargo fuzz build`, which builds this bin with the targets,
// instruments every crate with; its fuzzing entry point is never called.
use libfuzzer_sys as _;

use hearth_ai::{ApiKey, ProviderName};
use hearth_keyguard::fuzzing::{Fixture, TEST_RING_V1};
use hearth_keyguard::{EnvelopeContext, Owner};
use hearth_server::fuzzing::{CHANNEL_EVENTS, REST_BODIES, test_page_tokens};
use hearth_vault::{KeyRing, SealContext};
use uuid::Uuid;

const A: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const B: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    std::fs::create_dir_all(&dir).expect("seeds directory");
    std::fs::write(dir.join(name), bytes).expect("seed written");
}

/// A seed selecting entry `name` of `list` by its first byte.
fn selected(list: &[&str], name: &str, rest: &[u8]) -> Vec<u8> {
    let index = list.iter().position(|entry| *entry == name).expect("a listed name");
    let mut seed = vec![u8::try_from(index).expect("few entries")];
    seed.extend_from_slice(rest);
    seed
}

fn phoenix_frames() {
    let t = "phoenix_frames";
    write(
        t,
        "v1_join",
        br#"{"topic":"room:lobby","event":"phx_join","payload":{"token":"x"},"ref":"1","join_ref":"1"}"#,
    );
    write(
        t,
        "v1_reply",
        br#"{"topic":"room:lobby","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"1"}"#,
    );
    write(t, "v2_heartbeat", br#"[null,"2","phoenix","heartbeat",{}]"#);
    let send = format!(r#"["3","4","conversation:{A}","send_message",{{"encrypted_messages":{{"{B}":"c2lnbmFs"}}}}]"#);
    write(t, "v2_send_message", send.as_bytes());
    write(t, "v2_reply", br#"["3",7,"system:general","phx_reply",{"status":"error","response":{"reason":"no"}}]"#);
    write(t, "v2_numbers", br#"[{"n":1},null,"t","e",{"f":1.5e-7,"z":-0.0,"big":18446744073709551615,"neg":-12}]"#);
    let mut push = vec![0u8, 1, 1, 6, 6];
    push.extend_from_slice(b"35room:1binmsg\x01\x02\x03");
    write(t, "v2_binary_push", &push);
    let mut reply = vec![1u8, 1, 1, 6, 2];
    reply.extend_from_slice(b"35room:1ok\x01");
    write(t, "v2_binary_reply", &reply);
    write(t, "v2_binary_broadcast", b"\x02\x01\x01texy");
}

fn channel_payloads() {
    let t = "channel_payloads";
    let events: Vec<String> = CHANNEL_EVENTS.iter().map(|(topic, event)| format!("{topic}:{event}")).collect();
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    let seeds = [
        ("system:set_hidden", r#"{"hidden":true}"#.to_owned()),
        ("system:set_display_name", r#"{"display_name":"Ann Example"}"#.to_owned()),
        (
            "system:start_group_conversation",
            format!(
                r#"{{"user_ids":["{A}","{B}"],"public_key":{{"kty":"EC"}},"private_key":{{"ct":"AA"}},"alias":"team"}}"#
            ),
        ),
        (
            "system:start_private_conversation",
            format!(r#"{{"other_user_id":"{A}","public_key":{{"kty":"EC"}},"private_key":"sealed"}}"#),
        ),
        (
            "conversation:send_message",
            format!(r#"{{"encrypted_messages":{{"{A}":"Y2lwaGVy"}},"client_msg_id":"c-1","message_group_id":"{B}"}}"#),
        ),
        ("conversation:edit_message", format!(r#"{{"message_group_id":"{A}","encrypted_messages":{{"{B}":"eA"}}}}"#)),
        ("conversation:delete_message", format!(r#"{{"message_group_id":"{A}"}}"#)),
        ("conversation:change_alias", r#"{"alias":"  new name "}"#.to_owned()),
        ("conversation:modify_conversation", format!(r#"{{"new_members":["{B}"],"alias":null}}"#)),
        (
            "conversation:set_encryption_keys",
            r#"{"public_key":{"k":[1,2]},"private_key":{"wrapped":"AA=="}}"#.to_owned(),
        ),
        ("assistant:send_message", format!(r#"{{"encrypted_messages":{{"{A}":"/forget groq"}}}}"#)),
    ];
    for (event, json) in seeds {
        write(t, &event.replace(':', "_"), &selected(&events, event, json.as_bytes()));
    }
}

fn rest_bodies() {
    let t = "rest_bodies";
    let keys = format!(r#"{{"{A}":{{"wrapped":"AA"}}}}"#);
    let seeds = [
        (
            "PATCH /api/password",
            format!(
                r#"{{"password":"old password","new_password":"new password","new_password_confirmation":"new password","private_keys":{keys}}}"#
            ),
        ),
        (
            "PATCH /api/email",
            format!(
                r#"{{"token":"t0k3n","email":"ann@example.org","password":"old password","new_password":"other password","private_keys":{keys}}}"#
            ),
        ),
        ("PATCH /api/profile", r#"{"hidden":false,"theme":"night","magnification":1.2,"recents":["a","b"]}"#.to_owned()),
        ("DELETE /api/account", r#"{"password":"my password"}"#.to_owned()),
        (
            "POST /auth/register",
            r#"{"email":"ann@example.org","password":"a password","display_name":"Ann","device_name":"laptop"}"#
                .to_owned(),
        ),
        ("POST /auth/login", r#"{"email":"ann@example.org","password":"a password","device_name":"phone"}"#.to_owned()),
        ("POST /auth/refresh", r#"{"token":"refresh-token"}"#.to_owned()),
        ("POST /auth/password/request", r#"{"email":"ann@example.org"}"#.to_owned()),
        (
            "POST /auth/password/reset",
            r#"{"token":"t","password":"x","new_password":"new password","new_password_confirmation":"new password"}"#
                .to_owned(),
        ),
        ("POST /auth/device/link", r#"{"code":"ABCD-1234","device_name":"tablet"}"#.to_owned()),
        (
            "POST /api/chat/message",
            r#"{"message":"hello","courseId":"rust-101","conversationId":"conv_1","apiKeys":{"groq":"gsk_0123456789abcdefghij"}}"#
                .to_owned(),
        ),
        (
            "POST /configure/{link}",
            r#"{"provider":"groq","envelope":{"kid":1,"epk":"BA","nonce":"AAAAAAAAAAAAAAAA","ciphertext":"AA"}}"#.to_owned(),
        ),
        ("PUT /api/encryption_keys", format!(r#"{{"private_keys":{keys}}}"#)),
        (
            "PUT /api/identity_key",
            r#"{"identity_key":{"signing":{"kty":"EC"},"agreement":{"kty":"EC"}},"identity_private_key":{"signing":"v1.s","agreement":"v1.a"},"password":"my password"}"#
                .to_owned(),
        ),
    ];
    for (endpoint, json) in seeds {
        let name = endpoint.replace([' ', '/', '{', '}'], "_");
        write(t, &name, &selected(REST_BODIES, endpoint, json.as_bytes()));
    }
    // Values of the wrong types: the errors' paths.
    let wrong = br#"{"hidden":"yes","theme":7,"recents":[1,"two"]}"#;
    write(t, "wrong_types", &selected(REST_BODIES, "PATCH /api/profile", wrong));
}

fn page_tokens() {
    let t = "page_tokens";
    let tokens = test_page_tokens();
    let users = "users";
    let messages = format!("messages:{A}");
    for (name, listing, cursor) in [
        ("users", users, b"ann@example.org".as_slice()),
        ("messages", messages.as_str(), Uuid::parse_str(B).expect("uuid").as_bytes().as_slice()),
    ] {
        let token = tokens.encode(listing, cursor);
        let mut seed = vec![u8::try_from(listing.len()).expect("short")];
        seed.extend_from_slice(listing.as_bytes());
        seed.extend_from_slice(token.as_bytes());
        write(t, name, &seed);
    }
}

fn keyguard_envelopes() {
    let t = "keyguard_envelopes";
    let fixture = Fixture::new();
    let user = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0007);
    let public = fixture.public_key(2).expect("version 2");
    let configure = EnvelopeContext::configure(user, &hearth_vault::TokenHash([0x11; 32]), false);
    // Mode 0, provider 0 (first byte 0): a configure envelope that opens.
    let provider = ProviderName::ALL[0];
    let envelope =
        hearth_keyguard::envelope::seal_to(&public, configure, provider, "AIzaSy-0123456789abcdefghij").expect("seals");
    let mut seed = vec![0u8];
    seed.extend_from_slice(&serde_json::to_vec(&envelope).expect("json"));
    write(t, "configure_envelope", &seed);
    // Mode 0: a request envelope that opens.
    let keys = [(ProviderName::Groq, "gsk_0123456789abcdefghij")];
    let envelope = hearth_keyguard::envelope::seal_keys_to(&public, user, &keys).expect("seals");
    let mut seed = vec![0u8];
    seed.extend_from_slice(&serde_json::to_vec(&envelope).expect("json"));
    write(t, "request_envelope", &seed);
    // Mode 1: a configure page's key; mode 2: a request's keys.
    write(t, "configure_plaintext", b"\x01  sk-ant-api03-0123456789abcdef \n");
    write(t, "request_plaintext", &[b"\x02".as_slice(), br#"[["groq","gsk_0123"],["openai","sk-0123"]]"#].concat());
}

fn sealed_blobs() {
    let t = "sealed_blobs";
    let fixture = Fixture::new();
    let here = SealContext { table: "encryption_keys", row: "fuzz", column: "private_key" };
    let v1 = KeyRing::parse(TEST_RING_V1).expect("parses");
    write(t, "vault_blob_v1", &[&[0u8][..], &v1.seal(br#"{"private":"key"}"#, here)].concat());
    write(t, "vault_blob_v2", &[&[0u8][..], &fixture.ring().seal(b"secret", here)].concat());
    write(t, "vault_plaintext", b"\x01plain text");
    // Mode 2 with first byte 2: owner Pool, provider 0.
    let key = ApiKey::new("AIzaSy-0123456789abcdefghij");
    let sealed = fixture.seal_key(true, Uuid::from_u128(1), Owner::Pool, ProviderName::ALL[0], &key);
    write(t, "stored_key_v1", &[&[2u8][..], &sealed.sealed].concat());
    let sealed = fixture.seal_key(false, Uuid::from_u128(1), Owner::Pool, ProviderName::ALL[0], &key);
    write(t, "stored_key_v2", &[&[2u8][..], &sealed.sealed].concat());
    write(t, "key_plaintext", b"\x03sk-0123456789abcdefghij");
    write(t, "ring_text", b"\x04# keys\n1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n7:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=\n");
}

fn main() {
    phoenix_frames();
    channel_payloads();
    rest_bodies();
    page_tokens();
    keyguard_envelopes();
    sealed_blobs();
    println!("seeds written to {}/seeds", env!("CARGO_MANIFEST_DIR"));
}
