//! Keyguard envelopes (hearth-keyguard's `envelope::open` and `RequestOpener::open_keys`, with a
//! fixed master key ring). The first byte picks a mode and a provider:
//!
//! - 0: the rest is an envelope as JSON, as a configure page posts it, opened both ways; one
//!   that opens is in canonical base64 (nothing in it can be changed and still open);
//! - 1: the rest is a configure page's plaintext, sealed, then opened: the key trimmed if it is
//!   UTF-8, refused if not, and only for its own person and provider;
//! - 2: the rest is a request envelope's plaintext, sealed, then opened: keys exactly when it is
//!   a JSON list of `[provider, key]`, and those keys sealed again open the same.

#![no_main]

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_ai::{ApiKey, ProviderName};
use hearth_fuzz::pick;
use hearth_keyguard::fuzzing::Fixture;
use hearth_keyguard::{Envelope, EnvelopeContext};
use hearth_vault::TokenHash;
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

static FIXTURE: LazyLock<Fixture> = LazyLock::new(Fixture::new);

const USER: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0007);
/// The configure link the envelopes are made on (its token's SHA-256), as in `make_seeds`.
const LINK: TokenHash = TokenHash([0x11; 32]);

fn canonical(envelope: &Envelope) -> bool {
    [&envelope.epk, &envelope.nonce, &envelope.ciphertext]
        .into_iter()
        .all(|text| URL_SAFE_NO_PAD.decode(text).is_ok_and(|bytes| URL_SAFE_NO_PAD.encode(bytes) == **text))
}

type Keys = Vec<(ProviderName, String)>;

fn plain(keys: Vec<(ProviderName, zeroize::Zeroizing<String>)>) -> Keys {
    keys.into_iter().map(|(provider, key)| (provider, key.to_string())).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let fixture = &*FIXTURE;
    let provider = pick(choice / 3, &ProviderName::ALL);
    let configure = EnvelopeContext::configure(USER, &LINK, false);
    match choice % 3 {
        0 => {
            let Ok(envelope) = serde_json::from_slice::<Envelope>(rest) else { return };
            if fixture.open(&envelope, configure, provider).is_ok() {
                assert!(canonical(&envelope), "a configure envelope opened from non-canonical text: {envelope:?}");
            }
            if fixture.open_keys(&envelope, USER).is_ok() {
                assert!(canonical(&envelope), "a request envelope opened from non-canonical text: {envelope:?}");
            }
        }
        1 => {
            let envelope = fixture.seal_configure_bytes(configure, provider, rest);
            let text = serde_json::to_vec(&envelope).expect("an envelope serializes");
            assert_eq!(serde_json::from_slice::<Envelope>(&text).expect("and parses again"), envelope);
            let opened = fixture.open(&envelope, configure, provider);
            match std::str::from_utf8(rest) {
                Ok(key) => assert_eq!(opened.expect("UTF-8 opens").as_str(), key.trim()),
                Err(_) => assert!(opened.is_err(), "a key that is not UTF-8 is refused"),
            }
            let other_provider = pick(choice / 3 + 1, &ProviderName::ALL);
            assert!(fixture.open(&envelope, configure, other_provider).is_err(), "bound to its provider");
            let other_user = EnvelopeContext { user_id: Uuid::nil(), ..configure };
            assert!(fixture.open(&envelope, other_user, provider).is_err(), "bound to its person");
            let other_link = EnvelopeContext::configure(USER, &TokenHash([0x22; 32]), false);
            assert!(fixture.open(&envelope, other_link, provider).is_err(), "bound to its link");
            let pool = EnvelopeContext::configure(USER, &LINK, true);
            assert!(fixture.open(&envelope, pool, provider).is_err(), "bound to its purpose");
            assert!(fixture.open_keys(&envelope, USER).is_err(), "a configure envelope is no request's");
        }
        _ => {
            let envelope = fixture.seal_request_bytes(USER, rest);
            let opened = fixture.open_sealed_keys(&envelope, USER).map(plain);
            let expected = serde_json::from_slice::<Keys>(rest);
            assert_eq!(opened.as_ref().ok(), expected.as_ref().ok(), "keys exactly when the content is a list of them");
            // The keyguard's agreement of its own (no cache) opens the same.
            assert_eq!(fixture.open_keys(&envelope, USER).map(plain).ok(), opened.as_ref().ok().cloned());
            assert!(fixture.open_sealed_keys(&envelope, Uuid::nil()).is_err(), "bound to its person");
            if let Ok(keys) = opened {
                let api_keys: Vec<(ProviderName, ApiKey)> =
                    keys.iter().map(|(provider, key)| (*provider, ApiKey::new(key.as_str()))).collect();
                let again = fixture.seal_keys(USER, &api_keys);
                assert_eq!(fixture.open_sealed_keys(&again, USER).map(plain).expect("sealed keys open"), keys);
            }
        }
    }
});
