//! One-time links to the admin page (`hearth admin open`): a signed-in administrator asks for
//! a link, and whoever opens it within [`LINK_TTL_SECS`] is signed in to the page as that
//! administrator (the same key fingerprint), once.
//!
//! The code is 32 random bytes, kept as its SHA-256 only. It travels in the URL's fragment
//! (`/admin#<code>`), which browsers never send to a server, so it reaches no access log on
//! the way; the page takes it out of the address bar and spends it with
//! `POST /admin/links/redeem`. Making a link and spending it, or failing to, are audited.

use hearth_store::Timestamp;
use hearth_vault::{RandomToken, TokenHash};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Admin, AdminLogin, audit, open_session};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long a link can be opened.
pub const LINK_TTL_SECS: i64 = 60;
/// The length of a code's text: 32 bytes, base64url without padding.
const CODE_CHARS: usize = 43;

/// Why a link does not sign in: the same for an unknown, a used and an expired one, so that
/// nothing is learned by guessing.
const DEAD_LINK: &str = "This sign-in link is used, expired or unknown: run hearth admin open again for a new one.";

/// A one-time link to the admin page.
#[derive(Serialize, ToSchema)]
pub struct AdminLink {
    /// Open it in a browser within 60 seconds: `<public URL>/admin#<code>`.
    pub url: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
}

impl std::fmt::Debug for AdminLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL holds the code, a secret: never in a log line.
        f.debug_struct("AdminLink").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// A new link that signs in as `admin`, from `now`; audited.
pub async fn create(state: &AppState, admin: &Admin, now: Timestamp) -> ApiResult<AdminLink> {
    let code = RandomToken::generate();
    let expires_at = now.plus_secs(LINK_TTL_SECS);
    state.store.create_admin_link(&code.hash().0, &admin.fingerprint, expires_at).await?;
    let made = Ok(());
    audit::record(&*state.store, Some(&admin.fingerprint), audit::LINK_CREATE, None, None, made).await?;
    tracing::info!(fingerprint = %admin.fingerprint, "admin page link made");
    let url = format!("{}/admin#{}", state.admins.public_url().trim_end_matches('/'), code.expose());
    Ok(AdminLink { url, expires_at: expires_at.to_rfc3339() })
}

/// Spends the link whose code is `code`: a fresh admin token for the administrator who asked
/// for it, or a 401 when it is used, expired or unknown, or when their key is no longer
/// listed. Audited either way (the fingerprint named once the link is known).
pub async fn redeem(state: &AppState, code: &str, now: Timestamp) -> ApiResult<AdminLogin> {
    let code = code.trim();
    if code.is_empty() || code.chars().count() > 4 * CODE_CHARS {
        return Err(ApiError::invalid("code", "must be the code after # in the link hearth admin open printed"));
    }
    let store = &*state.store;
    let fingerprint =
        if code.len() == CODE_CHARS { store.use_admin_link(&TokenHash::of(code).0, now).await? } else { None };
    let result = match &fingerprint {
        None => Err(ApiError::Unauthorized(DEAD_LINK)),
        Some(key) if !state.admins.is_listed(key) => {
            Err(ApiError::Unauthorized("The key that asked for this link is no longer an administrator's key."))
        }
        Some(key) => open_session(store, key.clone(), now).await,
    };
    let login = audit::record(store, fingerprint.as_deref(), audit::LINK_REDEEM, None, None, result).await?;
    tracing::info!(fingerprint = %login.fingerprint, "administrator signed in by a link");
    Ok(login)
}
