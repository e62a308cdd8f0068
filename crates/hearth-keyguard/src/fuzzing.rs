//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off in every build that
//! ships): opening envelopes and sealed keys as the in-process keyguard does, with a fixed master
//! key ring so that what one fuzz run saves still opens in the next.

use std::fmt;

use aws_lc_rs::agreement::PrivateKey;
use hearth_ai::{ApiKey, ProviderName};
use hearth_vault::KeyRing;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::KeyguardError;
use crate::envelope::{self, Envelope, EnvelopeContext, PublicKey, RequestOpener, RequestSealer};
use crate::sealed::{self, Owner, SealedKey, StoredKey};

/// Version 1 of the fixed master key ring (no longer the newest: what it sealed gets rewrapped).
pub const TEST_RING_V1: &str = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
/// The fixed master key ring: version 1 and the newest, version 2.
pub const TEST_RING: &str =
    "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n2:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=\n";

/// A keyguard's keys from [`TEST_RING`], and one request sealer with its opener (one key
/// agreement for a whole run, as the server and keyguard share one for a few seconds).
pub struct Fixture {
    ring: KeyRing,
    ring_v1: KeyRing,
    secrets: Vec<(u32, PrivateKey)>,
    sealer: RequestSealer,
    opener: RequestOpener,
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture").field("ring", &self.ring).finish_non_exhaustive()
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// The keys of [`TEST_RING`].
    pub fn new() -> Self {
        let ring = KeyRing::parse(TEST_RING).expect("the test ring parses");
        let ring_v1 = KeyRing::parse(TEST_RING_V1).expect("the test ring parses");
        let secrets: Vec<(u32, PrivateKey)> =
            [1, 2].into_iter().map(|v| (v, envelope::keypair(&ring, v).expect("a version of the ring"))).collect();
        let public = envelope::public_key(&secrets[1].1, 2).expect("a public key");
        let sealer = RequestSealer::new(&public).expect("a sealer");
        let probe = sealer.seal_request_bytes(Uuid::nil(), b"[]").expect("seals");
        let opener = RequestOpener::new(&secrets[1].1, &probe.epk).expect("agrees");
        Self { ring, ring_v1, secrets, sealer, opener }
    }

    /// The master key ring (versions 1 and 2).
    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// The keyguard's public key of master key `kid`, as configure pages get it.
    pub fn public_key(&self, kid: u32) -> Option<PublicKey> {
        self.secret(kid).ok().and_then(|secret| envelope::public_key(secret, kid).ok())
    }

    fn secret(&self, kid: u32) -> Result<&PrivateKey, KeyguardError> {
        self.secrets.iter().find(|(v, _)| *v == kid).map(|(_, s)| s).ok_or(KeyguardError::Undecryptable)
    }

    /// Opens a configure page's envelope as the keyguard does: the key pair its `kid` names,
    /// then [`envelope::open`].
    pub fn open(
        &self,
        envelope: &Envelope,
        context: EnvelopeContext,
        provider: ProviderName,
    ) -> Result<Zeroizing<String>, KeyguardError> {
        envelope::open(self.secret(envelope.kid)?, envelope, context, provider)
    }

    /// Opens a request's envelope as the keyguard does: a key agreement with its ephemeral key,
    /// then `RequestOpener::open_keys`.
    pub fn open_keys(
        &self,
        envelope: &Envelope,
        user_id: Uuid,
    ) -> Result<Vec<(ProviderName, Zeroizing<String>)>, KeyguardError> {
        RequestOpener::new(self.secret(envelope.kid)?, &envelope.epk)?.open_keys(envelope, user_id)
    }

    /// Seals any bytes as a request's keys with the fixture's sealer.
    pub fn seal_request_bytes(&self, user_id: Uuid, plaintext: &[u8]) -> Envelope {
        self.sealer.seal_request_bytes(user_id, plaintext).expect("sealing in memory does not fail")
    }

    /// Seals a request's keys as the server does, with the fixture's sealer.
    pub fn seal_keys(&self, user_id: Uuid, keys: &[(ProviderName, ApiKey)]) -> Envelope {
        let given: Vec<(ProviderName, &str)> = keys.iter().map(|(provider, key)| (*provider, key.expose())).collect();
        self.sealer.seal_keys(user_id, &given).expect("sealing in memory does not fail")
    }

    /// Opens what the fixture's sealer sealed, reusing its key agreement (the keyguard's cache).
    pub fn open_sealed_keys(
        &self,
        envelope: &Envelope,
        user_id: Uuid,
    ) -> Result<Vec<(ProviderName, Zeroizing<String>)>, KeyguardError> {
        self.opener.open_keys(envelope, user_id)
    }

    /// Seals any bytes as a configure page's key with the fixture's sealer.
    pub fn seal_configure_bytes(&self, context: EnvelopeContext, provider: ProviderName, plaintext: &[u8]) -> Envelope {
        self.sealer.seal_configure_bytes(context, provider, plaintext).expect("sealing in memory does not fail")
    }

    /// Seals `key` for a row as the keyguard stores it: under version 2, or under version 1
    /// (`old`), which [`Fixture::rewrap`] moves to version 2.
    pub fn seal_key(&self, old: bool, id: Uuid, owner: Owner, provider: ProviderName, key: &ApiKey) -> SealedKey {
        sealed::seal(if old { &self.ring_v1 } else { &self.ring }, id, owner, provider, key)
    }

    /// Opens a stored key as the keyguard does.
    pub fn open_stored(&self, stored: &StoredKey) -> Result<ApiKey, KeyguardError> {
        sealed::open(stored, |blob, context| self.ring.open(blob, context))
    }

    /// Re-seals a stored key's data key under version 2, as a rotation does.
    pub fn rewrap(&self, stored: &StoredKey) -> Result<Option<(Vec<u8>, u32)>, KeyguardError> {
        sealed::rewrap(&self.ring, stored)
    }
}
