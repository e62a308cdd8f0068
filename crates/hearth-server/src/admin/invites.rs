//! Sign-up control (issue 25): `accounts.registration` is `open`, `invite` or `closed`. With
//! `invite`, signing up takes a code an administrator made (`POST /admin/invites`): shown once,
//! kept hashed, good for a number of sign-ups until it expires.

use hearth_store::{Invite, NewAuditEntry, Timestamp};
use hearth_vault::{RandomToken, TokenHash};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Admin, audit};
use crate::error::{ApiError, ApiResult};
use crate::settings::Registration;
use crate::state::AppState;

/// Most sign-ups one code is good for.
pub const MAX_USES: u32 = 1000;
/// How long a code works when the request does not say.
pub const DEFAULT_TTL_SECS: i64 = 7 * 24 * 3600;
/// Longest a code may work.
pub const MAX_TTL_SECS: i64 = 365 * 24 * 3600;
/// Shortest a code may work.
pub const MIN_TTL_SECS: i64 = 60;

/// A new invite code's terms.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Sign-ups it is good for, 1–1 000 (default 1).
    #[schema(minimum = 1, maximum = 1000)]
    pub uses: Option<u32>,
    /// How long it works, 60 seconds to a year (default 7 days). Not with `expires_at`.
    #[schema(minimum = 60, maximum = 31536000)]
    pub expires_in_secs: Option<i64>,
    /// When it stops working (RFC 3339), within a year. Not with `expires_in_secs`.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// A new invite code, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedInvite {
    /// Give it to the person to sign up with (`"invite"` of `POST /auth/register`).
    pub code: String,
    /// Sign-ups it is good for.
    pub uses: u32,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
}

impl std::fmt::Debug for CreatedInvite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The code is a secret: never in a log line.
        f.debug_struct("CreatedInvite").field("uses", &self.uses).field("expires_at", &self.expires_at).finish()
    }
}

/// Makes an invite code on the terms asked for; audited (without the code), refused or not.
pub async fn create(state: &AppState, admin: &Admin, request: &InviteRequest) -> ApiResult<CreatedInvite> {
    match terms(request) {
        Ok((uses, expires_at)) => made(state, admin, uses, expires_at).await,
        Err(error) => {
            let refused = Err(error);
            audit::record(&*state.store, Some(&admin.fingerprint), audit::INVITE_CREATE, None, None, refused).await
        }
    }
}

/// The uses and expiry asked for, checked.
fn terms(request: &InviteRequest) -> ApiResult<(u32, Timestamp)> {
    let uses = request.uses.unwrap_or(1);
    if !(1..=MAX_USES).contains(&uses) {
        return Err(ApiError::invalid("uses", format!("must be 1 to {MAX_USES}")));
    }
    let now = Timestamp::now();
    let expires_at = match (request.expires_in_secs, request.expires_at.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("expires_at", "give expires_in_secs or expires_at, not both"));
        }
        (Some(secs), None) if (MIN_TTL_SECS..=MAX_TTL_SECS).contains(&secs) => now.plus_secs(secs),
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "expires_in_secs",
                format!("must be {MIN_TTL_SECS} to {MAX_TTL_SECS} seconds"),
            ));
        }
        (None, Some(text)) => {
            let at = chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|at| Timestamp::from(at.with_timezone(&chrono::Utc)))
                .filter(|at| *at > now.plus_secs(MIN_TTL_SECS - 1) && *at <= now.plus_secs(MAX_TTL_SECS));
            at.ok_or_else(|| {
                ApiError::invalid("expires_at", "must be an RFC 3339 time from a minute to a year from now")
            })?
        }
        (None, None) => now.plus_secs(DEFAULT_TTL_SECS),
    };
    Ok((uses, expires_at))
}

/// Makes a code on checked terms, keeps its hash and records it.
async fn made(state: &AppState, admin: &Admin, uses: u32, expires_at: Timestamp) -> ApiResult<CreatedInvite> {
    let now = Timestamp::now();
    let code = RandomToken::generate();
    let code_hash = code.hash().0;
    let invite =
        Invite { code_hash, uses: uses as i32, expires_at, created_at: now, created_by: admin.fingerprint.clone() };
    state.store.create_invite(&invite).await?;
    // The code's hash, shortened, tells codes apart in the log; the code itself is never kept.
    let short = hex::encode(&code_hash[..6]);
    let entry = NewAuditEntry {
        at: now,
        fingerprint: Some(admin.fingerprint.clone()),
        action: audit::INVITE_CREATE.to_owned(),
        target: Some(format!("invite:{short} ({uses} uses until {})", expires_at.to_rfc3339())),
        reason: None,
        outcome: audit::OK.to_owned(),
    };
    audit::append(&*state.store, entry).await?;
    tracing::info!(fingerprint = %admin.fingerprint, uses, "invite code made");
    Ok(CreatedInvite { code: code.expose().to_owned(), uses, expires_at: expires_at.to_rfc3339() })
}

/// What signing up needs under `accounts.registration`: nothing (`None`), or the hash of the
/// invite code given, to spend with [`spend`]. Refuses a closed server and a missing code.
pub fn admission(state: &AppState, invite: Option<&str>) -> ApiResult<Option<[u8; 32]>> {
    match state.settings.accounts.registration {
        Registration::Open => Ok(None),
        Registration::Closed => {
            Err(ApiError::Forbidden { code: "registration_closed", message: "This server takes no new accounts." })
        }
        Registration::Invite => match invite.map(str::trim).filter(|code| !code.is_empty()) {
            Some(code) => Ok(Some(TokenHash::of(code).0)),
            None => Err(ApiError::Forbidden {
                code: "invite_required",
                message: "This server takes new accounts by invitation: sign up with an invite code from its \
                          administrators.",
            }),
        },
    }
}

/// Spends one use of an invite code (a 403 when it is unknown, used up or expired).
pub async fn spend(state: &AppState, code_hash: &[u8; 32], now: Timestamp) -> ApiResult<()> {
    if state.store.use_invite(code_hash, now).await? {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            code: "invalid_invite",
            message: "This invite code is unknown, used up or expired: ask the server's administrators for another.",
        })
    }
}
