//! What administrators do to accounts (issue 25): list them, disable and enable them, delete
//! them, grant and take back roles. Every action, done or refused (an account that does not
//! exist, a missing reason), is appended to the audit log with the administrator's key
//! fingerprint, the account and the reason (or the cause of the refusal).

use hearth_store::{AdminAccount, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Admin, audit};
use crate::error::{ApiError, ApiResult};
use crate::events::Envelope;
use crate::state::AppState;

/// The listing page tokens of the accounts list are bound to.
const ACCOUNTS_LISTING: &str = "admin-users";
/// Longest reason kept in the audit log.
pub const MAX_REASON_CHARS: usize = 1000;
/// Longest search of the accounts list (an email address's limit, RFC 5321).
const MAX_QUERY_CHARS: usize = 320;

/// A role an administrator grants to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May run the analysis sandbox.
    Analyst,
    /// May add keys to the free tier's pool (`/set_default_api_key`).
    Operator,
}

impl Role {
    /// The role's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analyst => hearth_store::ROLE_ANALYST,
            Self::Operator => hearth_store::ROLE_OPERATOR,
        }
    }
}

/// An account as administrators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUser {
    id: Uuid,
    email: String,
    display_name: String,
    /// When the account was made (RFC 3339).
    created_at: String,
    /// The latest any of its devices was seen (RFC 3339); null when it has none.
    #[schema(required)]
    last_seen_at: Option<String>,
    /// Live device sessions.
    devices: i64,
    /// Whether sign-in is refused.
    disabled: bool,
    /// Why it was disabled; null when it is not.
    #[schema(required)]
    disabled_reason: Option<String>,
    /// `analyst`, `operator`.
    roles: Vec<String>,
}

impl From<AdminAccount> for AdminUser {
    fn from(account: AdminAccount) -> Self {
        Self {
            id: account.user_id,
            email: account.email,
            display_name: account.display_name,
            created_at: account.created_at.to_rfc3339(),
            last_seen_at: account.last_seen_at.map(|at| at.to_rfc3339()),
            devices: account.devices,
            disabled: account.disabled.is_some(),
            disabled_reason: account.disabled.map(|(_, reason)| reason),
            roles: account.roles,
        }
    }
}

/// A page of accounts, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserPage {
    /// The accounts.
    pub items: Vec<AdminUser>,
    /// Pass back as `page_token` for the next page; null on the last page.
    #[schema(required)]
    pub page_token: Option<String>,
}

/// One page of accounts after the one `page_token` ends at: all, or those whose email or
/// display name contains `query`.
pub async fn list(
    state: &AppState,
    query: Option<&str>,
    page_token: Option<&str>,
    size: u32,
) -> ApiResult<AdminUserPage> {
    let search = match query.map(str::trim) {
        Some(query) if query.chars().count() > MAX_QUERY_CHARS => {
            return Err(ApiError::invalid("query", format!("must be at most {MAX_QUERY_CHARS} characters")));
        }
        Some("") | None => None,
        Some(query) => Some(query),
    };
    let after = state.page_tokens.decode_id(ACCOUNTS_LISTING, page_token)?;
    // One extra row says whether another page exists.
    let mut accounts = state.store.admin_accounts(search, after, size + 1).await?;
    let next = state.page_tokens.next_page(ACCOUNTS_LISTING, &mut accounts, size, |last| last.user_id);
    Ok(AdminUserPage { items: accounts.into_iter().map(AdminUser::from).collect(), page_token: next })
}

/// A reason as given: trimmed, 1 to [`MAX_REASON_CHARS`] characters (a 422 otherwise).
pub fn checked_reason(reason: Option<&str>) -> ApiResult<String> {
    let reason = reason.map(str::trim).unwrap_or_default();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::invalid("reason", format!("must be 1 to {MAX_REASON_CHARS} characters")));
    }
    Ok(reason.to_owned())
}

/// The account's description in the audit log: its id and, as it was then, its address (the id
/// alone when there is no such account).
async fn target(state: &AppState, user_id: Uuid) -> ApiResult<String> {
    Ok(match state.store.user(user_id).await? {
        Some(user) => format!("user:{user_id} ({})", user.email),
        None => format!("user:{user_id}"),
    })
}

/// The account, or a 404.
async fn existing(state: &AppState, user_id: Uuid) -> ApiResult<()> {
    state.store.user(user_id).await?.map(|_| ()).ok_or(ApiError::NoSuch("No such account."))
}

/// Records `action` on the account, done with `reason` or refused, and hands back `result`.
async fn record(
    state: &AppState,
    admin: &Admin,
    action: &str,
    target: String,
    reason: Option<String>,
    result: ApiResult<()>,
) -> ApiResult<()> {
    audit::record(&*state.store, Some(&admin.fingerprint), action, Some(target), reason, result).await
}

/// Disables the account: sign-in and refresh are refused, every session is revoked and its
/// sockets close.
pub async fn disable(state: &AppState, admin: &Admin, user_id: Uuid, reason: Option<&str>) -> ApiResult<()> {
    let target = target(state, user_id).await?;
    let done: ApiResult<String> = async {
        let reason = checked_reason(reason)?;
        let now = Timestamp::now();
        // Marked first, then revoked: a sign-in racing with this either sees the mark or made a
        // session that the revocation takes.
        if !state.store.disable_account(user_id, &reason, now).await? {
            return Err(ApiError::NoSuch("No such account."));
        }
        state.store.revoke_all_devices(user_id, now).await?;
        state.pubsub.publish(Envelope::DisconnectUser { user: user_id }).await;
        Ok(reason)
    }
    .await;
    let reason = done.as_ref().ok().cloned();
    record(state, admin, audit::USER_DISABLE, target, reason, done.map(drop)).await?;
    tracing::info!(user = %user_id, fingerprint = %admin.fingerprint, "account disabled by an administrator");
    Ok(())
}

/// Lets the account sign in again (its revoked sessions stay revoked).
pub async fn enable(state: &AppState, admin: &Admin, user_id: Uuid) -> ApiResult<()> {
    let target = target(state, user_id).await?;
    let done: ApiResult<()> = async {
        existing(state, user_id).await?;
        Ok(state.store.enable_account(user_id).await?)
    }
    .await;
    record(state, admin, audit::USER_ENABLE, target, None, done).await?;
    tracing::info!(user = %user_id, fingerprint = %admin.fingerprint, "account enabled by an administrator");
    Ok(())
}

/// Deletes the account and everything of it, as `DELETE /api/account` does; its sockets close.
pub async fn delete(state: &AppState, admin: &Admin, user_id: Uuid, reason: Option<&str>) -> ApiResult<()> {
    let target = target(state, user_id).await?;
    let done: ApiResult<String> = async {
        let reason = checked_reason(reason)?;
        existing(state, user_id).await?;
        crate::accounts::erase(state, user_id).await?;
        Ok(reason)
    }
    .await;
    let reason = done.as_ref().ok().cloned();
    record(state, admin, audit::USER_DELETE, target, reason, done.map(drop)).await?;
    tracing::info!(user = %user_id, fingerprint = %admin.fingerprint, "account deleted by an administrator");
    Ok(())
}

/// Grants or takes back a role.
pub async fn set_role(state: &AppState, admin: &Admin, user_id: Uuid, role: Role, granted: bool) -> ApiResult<()> {
    let target = format!("{} role:{}", target(state, user_id).await?, role.as_str());
    let done: ApiResult<()> = async {
        existing(state, user_id).await?;
        Ok(state.store.set_account_role(user_id, role.as_str(), granted, Timestamp::now()).await?)
    }
    .await;
    let action = if granted { audit::ROLE_GRANT } else { audit::ROLE_REVOKE };
    record(state, admin, action, target, None, done).await?;
    tracing::info!(user = %user_id, role = role.as_str(), granted, fingerprint = %admin.fingerprint, "role changed");
    Ok(())
}

/// Refuses a disabled account (sign-in, refresh).
pub async fn refuse_if_disabled(state: &AppState, user_id: Uuid) -> ApiResult<()> {
    if state.store.account_disabled(user_id).await? {
        return Err(DISABLED);
    }
    Ok(())
}

/// What a disabled account is told.
pub const DISABLED: ApiError = ApiError::Forbidden {
    code: "account_disabled",
    message: "This account has been disabled by the server's administrators.",
};
