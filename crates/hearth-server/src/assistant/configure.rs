//! `/configure` links (seed 000): `/configure/<token>.<user id>`, the token 32 bytes from the
//! OS CSPRNG in hex, stored only as its SHA-256, good for 10 minutes and for exactly one
//! successful submission; a new link makes every earlier one of the person useless.
//!
//! The page encrypts the pasted key to the keyguard in the browser; this side only checks the
//! link, hands the envelope to the keyguard (which checks the key and seals it), and stores the
//! sealed key in the same transaction that spends the link.

use hearth_ai::ProviderName;
use hearth_keyguard::{Envelope, EnvelopeContext, KeyguardError, SealRequest};
use hearth_store::{KeyOwner, NewOneTimeToken, NewProviderKey, OneTimeKind, Redemption, StoreError, Timestamp};
use hearth_vault::{RandomToken, TokenHash};
use uuid::Uuid;

use crate::state::AppState;

/// A link as presented: its token and the person it claims to be for.
#[derive(Clone, PartialEq, Eq)]
pub struct Link {
    hash: TokenHash,
    /// The person it names.
    pub user_id: Uuid,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

impl Link {
    /// Reads `<64 lowercase hex>.<uuid>`; anything else is no link.
    pub fn parse(text: &str) -> Option<Self> {
        let (token, user) = text.split_once('.')?;
        let well_formed = token.len() == 64 && token.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let user_id: Uuid = user.parse().ok()?;
        // The link is issued with the hyphenated lowercase form; no other form is the same link.
        (well_formed && user == user_id.hyphenated().to_string()).then(|| Self { hash: TokenHash::of(token), user_id })
    }
}

impl Link {
    /// The SHA-256 of the link's token in lowercase hex, as the page's envelope names it.
    pub fn hash_hex(&self) -> String {
        self.hash.to_hex()
    }

    /// What the page's envelope is bound to: this person, this link and its purpose, so an
    /// envelope captured on one link cannot be replayed to another (an operator's pool link
    /// included).
    pub fn envelope_context(&self, purpose: LinkPurpose) -> EnvelopeContext {
        EnvelopeContext::configure(self.user_id, &self.hash, purpose == LinkPurpose::Pool)
    }
}

/// What a link's key becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// The person's own key.
    Own,
    /// A key of the free tier's pool (an operator's link).
    Pool,
}

impl LinkPurpose {
    fn kind(self) -> OneTimeKind {
        match self {
            LinkPurpose::Own => OneTimeKind::ProviderKey,
            LinkPurpose::Pool => OneTimeKind::PoolKey,
        }
    }
}

/// Makes a new link for `user_id`, asked for on the device session `device_id` (every earlier
/// link stops working; revoking that session voids this one) and returns its URL.
pub async fn issue(
    state: &AppState,
    user_id: Uuid,
    device_id: Uuid,
    purpose: LinkPurpose,
    provider: Option<ProviderName>,
) -> Result<String, StoreError> {
    let token = RandomToken::generate_hex();
    let now = Timestamp::now();
    state
        .store
        .issue_one_time_token(&NewOneTimeToken {
            token_hash: token.hash().0,
            user_id,
            device_id: Some(device_id),
            kind: purpose.kind(),
            created_at: now,
            expires_at: now.plus_secs(state.settings.keyguard.link_ttl_secs),
        })
        .await?;
    // The provider only preselects the page's choice; the link alone is the authority.
    let preselect = provider.map(|p| format!("?provider={p}")).unwrap_or_default();
    Ok(format!("{}/configure/{}.{user_id}{preselect}", state.public_url, token.expose()))
}

/// What a live link is for, or `None` for any link that is not (expired, used, replaced,
/// tampered with, or naming someone else; a pool link of someone no longer an operator): one
/// answer for all, so a page tells nothing apart.
pub async fn live(state: &AppState, link: &Link) -> Result<Option<LinkPurpose>, StoreError> {
    let now = Timestamp::now();
    for purpose in [LinkPurpose::Own, LinkPurpose::Pool] {
        if state.store.peek_one_time_token(&link.hash.0, purpose.kind(), now).await? == Some(link.user_id) {
            let allowed = purpose == LinkPurpose::Own || is_operator(state, link.user_id).await?;
            return Ok(allowed.then_some(purpose));
        }
    }
    Ok(None)
}

/// A key saved from a configure page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The provider.
    pub provider: ProviderName,
    /// The key's last four characters.
    pub last_four: String,
    /// Whether it joined the free tier's pool.
    pub pool: bool,
}

/// Why a submission saved nothing.
#[derive(Debug)]
pub enum Refused {
    /// The link is not (or no longer) live.
    Link,
    /// The keyguard refused or could not be reached.
    Keyguard(KeyguardError),
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        Refused::Store(error)
    }
}

/// Saves the key in `envelope`: the keyguard checks and seals it, and the sealed key is stored
/// in the transaction that spends the link (of racing submissions exactly one does).
pub async fn submit(
    state: &AppState,
    link: &Link,
    provider: ProviderName,
    envelope: Envelope,
) -> Result<Saved, Refused> {
    let purpose = live(state, link).await?.ok_or(Refused::Link)?;
    let id = Uuid::now_v7();
    let owner = match purpose {
        LinkPurpose::Own => KeyOwner::User(link.user_id),
        LinkPurpose::Pool => KeyOwner::Pool,
    };
    let request = SealRequest {
        id,
        owner: crate::keyguard::owner(owner),
        provider,
        context: link.envelope_context(purpose),
        envelope,
        live_check: state.settings.keyguard.live_check,
    };
    let sealed = state.assistant.keyguard().seal(request).await.map_err(Refused::Keyguard)?;
    let key = NewProviderKey {
        id,
        owner,
        provider: provider.as_str().to_owned(),
        sealed: sealed.sealed,
        master_version: sealed.master_version,
        last_four: sealed.last_four.clone(),
        fingerprint: sealed.fingerprint.to_string(),
        inserted_at: Timestamp::now(),
    };
    let redemption = Redemption::StoreProviderKey { user_id: link.user_id, key };
    match state.store.redeem_one_time_token(&link.hash.0, &redemption, Timestamp::now()).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(Refused::Link),
        Err(error) => return Err(Refused::Store(error)),
    }
    tracing::info!(user = %link.user_id, %provider, pool = purpose == LinkPurpose::Pool, "provider key saved");
    Ok(Saved { provider, last_four: sealed.last_four, pool: purpose == LinkPurpose::Pool })
}

/// Whether `user_id` is an operator: an administrator granted the account the `operator` role.
pub async fn is_operator(state: &AppState, user_id: Uuid) -> Result<bool, StoreError> {
    Ok(state.store.account_roles(user_id).await?.iter().any(|held| held == hearth_store::ROLE_OPERATOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_issued_form_is_a_link() {
        let user = Uuid::now_v7();
        let token = "a".repeat(64);
        assert_eq!(Link::parse(&format!("{token}.{user}")).map(|l| l.user_id), Some(user));
        for bad in [
            format!("{}.{user}", "a".repeat(63)),
            format!("{}.{user}", "A".repeat(64)),
            format!("{}.{user}", "g".repeat(64)),
            format!("{token}.{}", user.simple()),
            format!("{token}.{}", user.hyphenated().to_string().to_uppercase()),
            format!("{token}{user}"),
            format!("{token}.{user}.x"),
            String::new(),
        ] {
            assert!(Link::parse(&bad).is_none(), "{bad}");
        }
    }
}
