//! Sealed blobs (hearth-vault's `KeyRing::open`, `rewrap`, `blob_version`, and hearth-keyguard's
//! stored keys, `sealed::open` and `rewrap`), with a fixed master key ring of versions 1 and 2.
//! The first byte picks a mode (and an owner and provider for stored keys):
//!
//! - 0: the rest is a vault blob: its version is read exactly when its header is whole; one that
//!   opens is rewrapped to version 2 with the same content (or left alone when it is there);
//! - 1: the rest is a plaintext sealed under version 1: it opens, and rewrapped too;
//! - 2: the rest is a stored key's blob: rewrapping changes nothing about whether and to what
//!   it opens, and ends at version 2;
//! - 3: the rest is a key sealed under version 1: it opens, for its own row only, and rewrapped
//!   keeps its ciphertext;
//! - 4: the rest is a key ring's text: one that parses, written and parsed again, is the same.

#![no_main]

use std::sync::LazyLock;

use hearth_ai::{ApiKey, ProviderName};
use hearth_fuzz::pick;
use hearth_keyguard::fuzzing::{Fixture, TEST_RING_V1};
use hearth_keyguard::{Owner, StoredKey};
use hearth_vault::seal::blob_version;
use hearth_vault::{KeyRing, SealContext};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

static FIXTURE: LazyLock<Fixture> = LazyLock::new(Fixture::new);
static RING_V1: LazyLock<KeyRing> = LazyLock::new(|| KeyRing::parse(TEST_RING_V1).expect("parses"));

/// Where the seeds' vault blobs were sealed.
const HERE: SealContext<'static> = SealContext { table: "encryption_keys", row: "fuzz", column: "private_key" };
const HEADER: usize = 1 + 4 + 24;
const TAG: usize = 16;

fn opened(result: Result<ApiKey, hearth_keyguard::KeyguardError>) -> Option<String> {
    result.ok().map(|key| key.expose().to_owned())
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let fixture = &*FIXTURE;
    let ring = fixture.ring();
    let owner = if choice & 0x80 == 0 { Owner::Pool } else { Owner::User(Uuid::from_u128(9)) };
    let provider = pick((choice >> 4) & 0x7, &ProviderName::ALL);
    let row = Uuid::from_u128(1);
    match choice % 5 {
        0 => {
            let version = blob_version(rest).ok();
            assert_eq!(version.is_some(), rest.len() >= HEADER + TAG && rest[0] == 1, "{version:?}");
            let content = ring.open(rest, HERE);
            match ring.rewrap(rest, HERE) {
                Ok(None) => assert_eq!(version, ring.current_version(), "only a current blob is left alone"),
                Ok(Some(new)) => {
                    assert_eq!(blob_version(&new).ok(), ring.current_version());
                    let content = content.as_ref().expect("only a blob that opens is rewrapped");
                    assert_eq!(ring.open(&new, HERE).expect("a rewrapped blob opens").as_slice(), content.as_slice());
                }
                Err(_) => assert!(content.is_err(), "a blob that opens is rewrapped"),
            }
            if content.is_ok() {
                assert!(version.is_some_and(|v| ring.has_version(v)));
            }
        }
        1 => {
            let blob = RING_V1.seal(rest, HERE);
            assert_eq!(blob_version(&blob).ok(), Some(1));
            assert_eq!(ring.open(&blob, HERE).expect("opens").as_slice(), rest);
            let new = ring.rewrap(&blob, HERE).expect("rewraps").expect("version 1 is not current");
            assert_eq!(ring.open(&new, HERE).expect("opens").as_slice(), rest);
            assert!(ring.open(&blob, SealContext { row: "elsewhere", ..HERE }).is_err(), "bound to its row");
        }
        2 => {
            let stored = StoredKey { id: row, owner, provider, sealed: rest.to_vec() };
            let before = opened(fixture.open_stored(&stored));
            match fixture.rewrap(&stored) {
                Ok(Some((sealed, version))) => {
                    assert_eq!(version, 2);
                    let after = opened(fixture.open_stored(&StoredKey { sealed, ..stored }));
                    assert_eq!(after, before, "rewrapping does not change what a stored key opens to");
                }
                Ok(None) => {}
                Err(_) => assert!(before.is_none(), "a stored key that opens is rewrapped"),
            }
        }
        3 => {
            let key = String::from_utf8_lossy(rest);
            let sealed = fixture.seal_key(true, row, owner, provider, &ApiKey::new(key.as_ref()));
            let stored = StoredKey { id: row, owner, provider, sealed: sealed.sealed };
            assert_eq!(opened(fixture.open_stored(&stored)).as_deref(), Some(key.as_ref()));
            assert!(fixture.open_stored(&StoredKey { id: Uuid::from_u128(2), ..stored.clone() }).is_err());
            let (new, version) = fixture.rewrap(&stored).expect("rewraps").expect("version 1 is not current");
            assert_eq!(version, 2);
            let tail = key.len() + TAG + 24;
            assert_eq!(
                new[new.len() - tail..],
                stored.sealed[stored.sealed.len() - tail..],
                "the key's ciphertext stays"
            );
            let rewrapped = StoredKey { sealed: new, ..stored };
            assert_eq!(opened(fixture.open_stored(&rewrapped)).as_deref(), Some(key.as_ref()));
            assert!(fixture.rewrap(&rewrapped).expect("rewraps").is_none(), "already at version 2");
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let Ok(parsed) = KeyRing::parse(text) else { return };
            let again = KeyRing::parse(&parsed.to_text()).expect("a ring's text parses");
            assert_eq!(again.current_version(), parsed.current_version());
            for line in parsed.to_text().lines() {
                let version: u32 = line.split_once(':').expect("version:key").0.parse().expect("a number");
                assert_eq!(again.derive(version, b"fuzz"), parsed.derive(version, b"fuzz"));
            }
        }
    }
});
