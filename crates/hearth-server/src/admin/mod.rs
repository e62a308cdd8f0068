//! The server's administrators (issue 25): holders of the SSH keys listed in
//! `admin.allowed_signers`, signed in by challenge and response, and the audit log of what
//! they do. No HTTP or socket types here: `http/admin.rs` adapts it.
//!
//! Signing in: [`Admins::challenge`] gives a text holding 32 random bytes and this server's
//! public URL, valid [`CHALLENGE_TTL_SECS`] and single use (stored hashed); the administrator
//! signs it with `ssh-keygen -Y sign -n hearth-admin` (so ssh-agent and security keys work);
//! [`Admins::sign_in`] checks the signature with the fixed namespace [`NAMESPACE`] (never the
//! one the signature names) against the listed keys, and gives an admin token for
//! [`SESSION_TTL_SECS`] (stored hashed). Every sign-in, accepted or refused, is audited.

pub mod accounts;
pub mod audit;
pub mod invites;
pub mod links;
pub mod providers;
pub mod rooms;
pub mod signers;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_store::{AdminSession, AuditEntry, Store, Timestamp};
use hearth_vault::{RandomToken, TokenHash};
use serde::Serialize;
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, EcdsaCurve, PublicKey, SshSig};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::page_token::PageTokens;
use signers::{AllowedSigners, fingerprint};

/// The SSHSIG namespace of admin sign-in signatures (`ssh-keygen -Y sign -n hearth-admin`).
pub const NAMESPACE: &str = "hearth-admin";
/// How long a challenge can be signed and sent back.
pub const CHALLENGE_TTL_SECS: i64 = 60;
/// How long an admin token works.
pub const SESSION_TTL_SECS: i64 = 15 * 60;
/// What every admin token starts with, so that it is told apart from a user's access token.
pub const TOKEN_PREFIX: &str = "hadm_";
/// What every challenge starts with; the server's public URL and the random part follow.
const CHALLENGE_PREFIX: &str = "hearth-admin-challenge:";
/// Longest challenge text accepted back (a public URL is far shorter).
const MAX_CHALLENGE_CHARS: usize = 2048;
/// Largest armored signature accepted (an RSA-16384 one is under 6 KiB).
const MAX_SIGNATURE_CHARS: usize = 16 * 1024;
/// Why an `ssh-rsa` signature (RSA over SHA-1) is refused.
const SHA1_REFUSED: &str =
    "SHA-1 (ssh-rsa) signatures are refused: sign with rsa-sha2-256 or rsa-sha2-512 (ssh-keygen's default).";
/// The listing page tokens of the audit log are bound to.
const AUDIT_LISTING: &str = "admin-audit";

/// The administrators: their keys, and how they sign in.
#[derive(Debug)]
pub struct Admins {
    signers: AllowedSigners,
    public_url: Arc<str>,
}

/// A challenge to sign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Challenge {
    /// The exact text to sign with `ssh-keygen -Y sign -n hearth-admin`.
    pub challenge: String,
    /// When it stops being accepted (RFC 3339).
    pub expires_at: String,
}

/// A signed-in administrator's token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminLogin {
    /// `Authorization: Bearer <admin_token>` on `/admin/*`.
    pub admin_token: String,
    /// The signing key's fingerprint (`SHA256:…`).
    pub fingerprint: String,
    /// When the token stops working (RFC 3339).
    pub expires_at: String,
}

/// An administrator whose token was checked: the key they signed in with, which every audited
/// action records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// The key's fingerprint (`SHA256:…`).
    pub fingerprint: String,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<audit::AuditItem>,
    /// Pass back as `page_token` for the next (older) page; null on the last page.
    #[schema(required)]
    pub page_token: Option<String>,
}

/// Whether the audit log's chain holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerification {
    /// True when every entry holds.
    pub verified: bool,
    /// How many entries hold (all of them, or those before the first broken one).
    pub entries: u64,
    /// The first entry that does not hold, if any.
    pub broken: Option<audit::BrokenEntry>,
    /// The newest entry, when every entry holds: keep it, and pass it back as `known_seq` and
    /// `known_hash` next time to learn whether entries were deleted from the end since (null
    /// for an empty log or a broken chain).
    #[schema(required)]
    pub newest: Option<AuditHead>,
}

/// The newest entry of a chain that holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditHead {
    /// Its place in the chain, from 1.
    pub seq: i64,
    /// Its hash (hex).
    pub hash: String,
}

/// Why a sign-in was refused: told to the client (401) and recorded in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal(&'static str);

impl Admins {
    /// The administrators listed in `keys_file`, signing challenges of the server at
    /// `public_url`.
    pub fn new(keys_file: PathBuf, public_url: Arc<str>) -> Self {
        Self { signers: AllowedSigners::new(keys_file), public_url }
    }

    /// A new challenge, valid from `now` for [`CHALLENGE_TTL_SECS`].
    pub async fn challenge(&self, store: &dyn Store, now: Timestamp) -> Result<Challenge, ApiError> {
        let text = format!("{CHALLENGE_PREFIX}{}:{}", self.public_url, RandomToken::generate().expose());
        let expires_at = now.plus_secs(CHALLENGE_TTL_SECS);
        store.create_admin_challenge(&sha256(&text), expires_at).await?;
        Ok(Challenge { challenge: text, expires_at: expires_at.to_rfc3339() })
    }

    /// Signs in with `signature` (armored SSHSIG) over `challenge`: an admin token, or a 401
    /// saying why not (a 422 when the request is malformed). Audited either way; a refusal
    /// names the key's fingerprint only when the key is listed.
    pub async fn sign_in(
        &self,
        store: &dyn Store,
        challenge: &str,
        signature: &str,
        now: Timestamp,
    ) -> Result<AdminLogin, ApiError> {
        if challenge.is_empty() || challenge.chars().count() > MAX_CHALLENGE_CHARS {
            return Err(ApiError::invalid("challenge", "must be the text POST /admin/challenge gave"));
        }
        let malformed = || {
            ApiError::invalid(
                "signature",
                "must be an armored SSH signature (-----BEGIN SSH SIGNATURE-----), as ssh-keygen -Y sign writes",
            )
        };
        if signature.chars().count() > MAX_SIGNATURE_CHARS {
            return Err(malformed());
        }
        let signature = match SshSig::from_pem(signature.trim()) {
            Ok(signature) => signature,
            // The ssh-key crate does not read `ssh-rsa` (SHA-1) signatures at all; one is told
            // as what it is, and audited, rather than as malformed.
            Err(_) => match sha1_rsa_signer(signature) {
                Some(key) => {
                    let listed = self.signers.keys().iter().any(|admin| admin.key == key);
                    let why = SHA1_REFUSED;
                    audit::append(store, audit::login(now, listed.then(|| fingerprint(&key)), Some(why))).await?;
                    return Err(ApiError::Unauthorized(why));
                }
                None => return Err(malformed()),
            },
        };
        let keys = self.signers.keys();
        let listed = keys.iter().any(|admin| &admin.key == signature.public_key());
        let key_fingerprint = fingerprint(signature.public_key());
        let outcome = self.check(store, challenge, &signature, listed, now).await?;
        if let Err(Refusal(why)) = outcome {
            audit::append(store, audit::login(now, listed.then_some(key_fingerprint), Some(why))).await?;
            return Err(ApiError::Unauthorized(why));
        }
        let login = open_session(store, key_fingerprint.clone(), now).await?;
        audit::append(store, audit::login(now, Some(key_fingerprint.clone()), None)).await?;
        tracing::info!(fingerprint = %key_fingerprint, "administrator signed in");
        Ok(login)
    }

    /// Whether a key with this fingerprint is listed now (a key taken off the list signs
    /// nothing in any more, a link it asked for included).
    pub(crate) fn is_listed(&self, key_fingerprint: &str) -> bool {
        self.signers.keys().iter().any(|admin| admin.fingerprint() == key_fingerprint)
    }

    /// The server's public URL, which links to its pages start with.
    pub(crate) fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Every rule of a sign-in, in an order that tells nothing about the listed keys to whom
    /// does not hold one: the signature is checked on its own before the key is looked up.
    /// The challenge is spent last, so that only a valid sign-in uses it up.
    async fn check(
        &self,
        store: &dyn Store,
        challenge: &str,
        signature: &SshSig,
        listed: bool,
        now: Timestamp,
    ) -> Result<Result<(), Refusal>, ApiError> {
        if !self.issued_here(challenge) {
            return Ok(Err(Refusal(
                "This challenge was not issued by this server: ask it for one with POST /admin/challenge.",
            )));
        }
        if signature.namespace() != NAMESPACE {
            return Ok(Err(Refusal(
                "The signature is for another namespace: sign with ssh-keygen -Y sign -n hearth-admin.",
            )));
        }
        let key_type_accepted = matches!(
            signature.public_key().algorithm(),
            Algorithm::Ed25519
                | Algorithm::SkEd25519
                | Algorithm::Rsa { .. }
                | Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 }
        );
        if !key_type_accepted {
            return Ok(Err(Refusal(
                "This key type is not accepted: use ed25519, ECDSA P-256, RSA or an ed25519 security key.",
            )));
        }
        if signature.signature().algorithm() == (Algorithm::Rsa { hash: None }) {
            return Ok(Err(Refusal(SHA1_REFUSED)));
        }
        let signer = PublicKey::from(signature.public_key().clone());
        if signer.verify(NAMESPACE, challenge.as_bytes(), signature).is_err() {
            return Ok(Err(Refusal("The signature does not verify: it must be over the exact challenge text.")));
        }
        if signature.public_key().algorithm() == Algorithm::SkEd25519 && !user_present(signature) {
            return Ok(Err(Refusal("The security key did not confirm presence: touch it when signing.")));
        }
        if !listed {
            return Ok(Err(Refusal("This key is not an administrator's key.")));
        }
        if !store.use_admin_challenge(&sha256(challenge), now).await? {
            return Ok(Err(Refusal("This challenge has expired or was already used: ask for a new one.")));
        }
        Ok(Ok(()))
    }

    /// Whether `challenge` has the form of this server's challenges, with its public URL (one
    /// issued by another server, or made up, is refused before anything else).
    fn issued_here(&self, challenge: &str) -> bool {
        challenge.strip_prefix(CHALLENGE_PREFIX).and_then(|rest| rest.rsplit_once(':')).is_some_and(|(url, random)| {
            url == &*self.public_url && URL_SAFE_NO_PAD.decode(random).is_ok_and(|bytes| bytes.len() == 32)
        })
    }

    /// The administrator whose admin token this is, if it is live at `now`.
    pub async fn authenticate(&self, store: &dyn Store, token: &str, now: Timestamp) -> Result<Admin, ApiError> {
        let expired = ApiError::Unauthorized("Invalid or expired admin token: sign in again with hearth admin login.");
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(expired);
        }
        match store.admin_session(&sha256(token), now).await? {
            Some(session) => Ok(Admin { fingerprint: session.fingerprint }),
            None => Err(expired),
        }
    }
}

/// A new admin token for the administrator whose key has `key_fingerprint`, valid from `now`
/// for [`SESSION_TTL_SECS`] (kept hashed).
async fn open_session(store: &dyn Store, key_fingerprint: String, now: Timestamp) -> Result<AdminLogin, ApiError> {
    let token = format!("{TOKEN_PREFIX}{}", RandomToken::generate().expose());
    let expires_at = now.plus_secs(SESSION_TTL_SECS);
    let session =
        AdminSession { token_hash: sha256(&token), fingerprint: key_fingerprint.clone(), created_at: now, expires_at };
    store.create_admin_session(&session).await?;
    Ok(AdminLogin { admin_token: token, fingerprint: key_fingerprint, expires_at: expires_at.to_rfc3339() })
}

/// Whether an `sk-ssh-ed25519` signature carries the user-presence flag (bit 0 of the flags
/// byte that follows the 64 bytes of the Ed25519 signature).
fn user_present(signature: &SshSig) -> bool {
    signature.signature().as_bytes().get(64).is_some_and(|flags| flags & 0x01 != 0)
}

/// The signing key of an armored SSHSIG whose signature is `ssh-rsa` (RSA over SHA-1), if it
/// is one. PROTOCOL.sshsig: "SSHSIG", version (u32), then the public key, namespace,
/// reserved, hash algorithm and signature, each a string (u32 length, bytes); the signature's
/// first string is its algorithm.
fn sha1_rsa_signer(armored: &str) -> Option<KeyData> {
    let body: String = armored
        .trim()
        .strip_prefix("-----BEGIN SSH SIGNATURE-----")?
        .strip_suffix("-----END SSH SIGNATURE-----")?
        .split_whitespace()
        .collect();
    let blob = base64::engine::general_purpose::STANDARD.decode(body).ok()?;
    let mut rest = blob.strip_prefix(b"SSHSIG")?.get(4..)?;
    let mut string = || {
        let length = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let value = rest.get(4..4 + length)?;
        rest = &rest[4 + length..];
        Some(value)
    };
    let public_key = string()?;
    let (_namespace, _reserved, _hash, signature) = (string()?, string()?, string()?, string()?);
    let algorithm = signature.get(4..4 + u32::from_be_bytes(signature.get(..4)?.try_into().ok()?) as usize)?;
    if algorithm != b"ssh-rsa" {
        return None;
    }
    let key = PublicKey::from_bytes(public_key).ok()?.key_data().clone();
    matches!(key.algorithm(), Algorithm::Rsa { .. }).then_some(key)
}

/// Whether a bearer token has the form of an admin token (to tell it apart on user routes).
pub fn is_admin_token(token: &str) -> bool {
    token.starts_with(TOKEN_PREFIX)
}

/// A page of the audit log, newest first, after `page_token` (from the previous page).
pub(crate) async fn audit_page(
    store: &dyn Store,
    page_tokens: &PageTokens,
    page_token: Option<&str>,
    size: u32,
) -> Result<AuditPage, ApiError> {
    let before = match page_token {
        Some(token) => {
            let cursor = page_tokens.decode(AUDIT_LISTING, token)?;
            let bytes: [u8; 8] = cursor
                .try_into()
                .map_err(|_| ApiError::bad_request("invalid_page_token", "The page token is invalid."))?;
            Some(i64::from_be_bytes(bytes))
        }
        None => None,
    };
    let entries: Vec<AuditEntry> = store.audit_entries_before(before, size).await?;
    let page_token = (entries.len() == size as usize)
        .then(|| entries.last().map(|last| page_tokens.encode(AUDIT_LISTING, &last.seq.to_be_bytes())))
        .flatten();
    Ok(AuditPage { items: entries.into_iter().map(audit::AuditItem::from).collect(), page_token })
}

/// Whether the whole audit log's chain holds, and still holds the entry `known` if one is given.
pub async fn audit_verification(
    store: &dyn Store,
    known: Option<&audit::KnownEntry>,
) -> Result<AuditVerification, ApiError> {
    match audit::walk(store, known).await {
        Ok(chain) => Ok(AuditVerification {
            verified: true,
            entries: chain.entries,
            broken: None,
            newest: chain.newest.map(|(seq, hash)| AuditHead { seq, hash }),
        }),
        Err(audit::Walked::Broken(broken, entries)) => {
            Ok(AuditVerification { verified: false, entries, broken: Some(broken), newest: None })
        }
        Err(audit::Walked::Store(error)) => Err(error.into()),
    }
}

/// The entry a verifier kept from an earlier verification, from the query's `known_seq` and
/// `known_hash`: both or neither.
pub fn known_audit_entry(seq: Option<&str>, hash: Option<&str>) -> Result<Option<audit::KnownEntry>, ApiError> {
    let (seq, hash) = match (seq, hash) {
        (None, None) => return Ok(None),
        (Some(seq), Some(hash)) => (seq, hash),
        (Some(_), None) => return Err(ApiError::invalid("known_hash", "must be given with known_seq")),
        (None, Some(_)) => return Err(ApiError::invalid("known_seq", "must be given with known_hash")),
    };
    let seq = match seq.parse::<i64>() {
        Ok(seq) if seq >= 1 => seq,
        _ => return Err(ApiError::invalid("known_seq", "must be a whole number from 1")),
    };
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid("known_hash", "must be 64 hexadecimal digits (an entry's hash)"));
    }
    Ok(Some(audit::KnownEntry { seq, hash: hash.to_ascii_lowercase() }))
}

fn sha256(text: &str) -> [u8; 32] {
    TokenHash::of(text).0
}
