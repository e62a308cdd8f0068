//! Accounts, the domain: signing up and in and device sessions ([`signin`]), one-time tokens
//! ([`tokens`]), and the person's own account here: who they are, signing out everywhere,
//! password and email changes, the profile, the display name, and deleting the account.

mod current_password;
pub mod fields;
pub mod identity;
mod replies;
pub mod signin;
pub mod tokens;

use hearth_store::{OneTimeKind, ProfileUpdate, Redemption, Rekey, Theme, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub use replies::{PublicUser, SessionReply, UserWithProfile};

/// The listing name page tokens of the directory are bound to.
const DIRECTORY: &str = "users";

use self::current_password::verify_current_password;
use self::fields::Password;
use self::tokens::{issue_one_time_token, redeem, send_email_confirmation};
use crate::auth::AuthUser;
use crate::conversations::keys;
use crate::email::Letter;
use crate::error::{ApiError, ApiResult};
use crate::events::{Envelope, SYSTEM_TOPIC};
use crate::settings::ShowEmails;
use crate::state::AppState;

/// The user with their profile.
pub async fn me(state: &AppState, user_id: Uuid) -> ApiResult<UserWithProfile> {
    let user = state.store.user(user_id).await?.ok_or(ApiError::NotFound)?;
    let profile = state.store.profile(user_id).await?;
    let identity = identity::own(state, user_id).await?;
    Ok(UserWithProfile::new(&user, profile, identity))
}

/// Revokes every device session of the user (sockets closed, one-time tokens voided).
pub async fn signout_all(state: &AppState, user_id: Uuid) -> ApiResult<()> {
    state.store.revoke_all_devices(user_id, Timestamp::now()).await?;
    state.pubsub.publish(Envelope::DisconnectUser { user: user_id }).await;
    tracing::info!(user = %user_id, "signed out everywhere");
    Ok(())
}

/// Mails a new confirmation link to the account's address.
pub async fn request_email_confirmation(state: &AppState, user_id: Uuid) -> ApiResult<()> {
    let user = state.store.user(user_id).await?.ok_or(ApiError::NotFound)?;
    send_email_confirmation(state, &user).await
}

/// Mails an email-change token to the account's current address; it dies with the session
/// that asked.
pub async fn request_email_change(state: &AppState, auth: AuthUser) -> ApiResult<()> {
    let user = state.store.user(auth.user_id).await?.ok_or(ApiError::NotFound)?;
    let ttl = state.settings.auth.email_token_ttl_secs;
    let token = issue_one_time_token(state, user.id, Some(auth.device_id), OneTimeKind::EmailChange, ttl).await?;
    state.mailer.send_later(user.email, Letter::email_change(&state.public_url, token.expose(), ttl));
    Ok(())
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// Current password.
    #[schema(value_type = String, format = Password)]
    password: Password,
    /// 8 to 1 024 characters.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    new_password: Password,
    /// The same again.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    new_password_confirmation: Password,
    /// (+) Every private key of the caller, re-wrapped for the new password, as
    /// `PUT /api/encryption_keys` takes them: replaced in the same transaction, so history stays
    /// readable; a set that is not exactly the caller's is 409 `keys_changed` and changes nothing.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    private_keys: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// (+) The private form of the caller's identity, re-wrapped for the new password, given
    /// with `private_keys`: replaced in the same transaction. An account with an identity that
    /// re-keys without it gets 409 `keys_changed`, and nothing changes.
    #[serde(default)]
    #[schema(value_type = Option<identity::IdentityPrivateKey>)]
    identity_private_key: Option<serde_json::Value>,
}

/// Every private key of a user, re-wrapped by their client for a new secret, sealed.
struct Rewrapped {
    /// Each conversation's, by conversation.
    private_keys: Vec<(Uuid, Vec<u8>)>,
    /// The identity's, when given.
    identity_private_key: Option<Vec<u8>>,
}

/// Re-wrapped private keys as a re-keying request gives them, checked and sealed: every
/// conversation private key and, with them only, the identity's (422s naming the field).
fn sealed_rewrapped(
    state: &AppState,
    user_id: Uuid,
    private_keys: Option<&std::collections::BTreeMap<String, serde_json::Value>>,
    identity_private_key: Option<&serde_json::Value>,
) -> ApiResult<Option<Rewrapped>> {
    const IDENTITY: &str = "identity_private_key";
    match (private_keys, identity_private_key) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ApiError::invalid(IDENTITY, "is taken only together with private_keys")),
        (Some(private_keys), identity) => Ok(Some(Rewrapped {
            private_keys: keys::seal_all(state, user_id, private_keys)?,
            identity_private_key: identity
                .map(|form| identity::seal_private_form(state, user_id, IDENTITY, form))
                .transpose()?,
        })),
    }
}

/// Changes the password and signs out every session, the asking one included. With
/// `private_keys` (and `identity_private_key`), the re-wrapped private keys replace the old
/// ones in the same transaction.
pub async fn change_password(state: &AppState, user_id: Uuid, request: ChangePasswordRequest) -> ApiResult<()> {
    if !request.new_password.same_as(&request.new_password_confirmation) {
        return Err(ApiError::invalid("new_password_confirmation", "does not match new_password"));
    }
    let new_password = request.new_password.checked("new_password")?;
    let rewrapped =
        sealed_rewrapped(state, user_id, request.private_keys.as_ref(), request.identity_private_key.as_ref())?;
    verify_current_password(state, user_id, request.password).await?;
    let password_hash = state.passwords.hash(new_password).await.map_err(ApiError::internal)?;
    state
        .store
        .replace_password(
            user_id,
            &password_hash,
            rewrapped.as_ref().map(|keys| keys.private_keys.as_slice()),
            rewrapped.as_ref().and_then(|keys| keys.identity_private_key.as_deref()),
            Timestamp::now(),
        )
        .await
        .map_err(keys::not_exactly_theirs)?;
    state.pubsub.publish(Envelope::DisconnectUser { user: user_id }).await;
    tracing::info!(user = %user_id, "password changed; all sessions signed out");
    Ok(())
}

#[derive(Deserialize, ToSchema)]
pub struct ChangeEmailRequest {
    /// The email-change token sent to the current address.
    #[schema(value_type = String)]
    token: String,
    /// The new address.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// Current password.
    #[schema(value_type = String, format = Password)]
    password: Password,
    /// (+) For a client whose keys derive from the email (docs/ARCHITECTURE.md): the new password (its
    /// `auth_secret` for the new address), given together with `private_keys`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 1024)]
    new_password: Option<Password>,
    /// (+) Every private key of the caller, re-wrapped for the new address, as
    /// `PUT /api/encryption_keys` takes them. With `new_password`, both are replaced in the
    /// email change's transaction and every session is signed out.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    private_keys: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// (+) The private form of the caller's identity, re-wrapped for the new address, given
    /// with `private_keys`, as `PATCH /api/password` takes it.
    #[serde(default)]
    #[schema(value_type = Option<identity::IdentityPrivateKey>)]
    identity_private_key: Option<serde_json::Value>,
}

/// Moves the account to a new address (unconfirmed until its link is used). With
/// `new_password` and `private_keys` (and `identity_private_key`), the account's secret and
/// private keys change with it and every session is signed out.
pub async fn change_email(state: &AppState, user_id: Uuid, request: ChangeEmailRequest) -> ApiResult<()> {
    let email = fields::email("email", &request.email)?;
    let rewrapped =
        sealed_rewrapped(state, user_id, request.private_keys.as_ref(), request.identity_private_key.as_ref())?;
    let rekey = match (request.new_password, rewrapped) {
        (None, None) => None,
        (Some(new_password), Some(rewrapped)) => Some((new_password.checked("new_password")?, rewrapped)),
        (None, Some(_)) => return Err(ApiError::invalid("new_password", "is needed with private_keys")),
        (Some(_), None) => return Err(ApiError::invalid("private_keys", "are needed with new_password")),
    };
    verify_current_password(state, user_id, request.password).await?;
    let rekey = match rekey {
        Some((new_password, Rewrapped { private_keys, identity_private_key })) => {
            let password_hash = state.passwords.hash(new_password).await.map_err(ApiError::internal)?;
            Some(Rekey { password_hash, private_keys, identity_private_key })
        }
        None => None,
    };
    let rekeyed = rekey.is_some();
    let redemption = Redemption::ChangeEmail { user_id, email, rekey };
    redeem(state, &request.token, &redemption).await?;
    if rekeyed {
        state.pubsub.publish(Envelope::DisconnectUser { user: user_id }).await;
    }
    let user = state.store.user(user_id).await?.ok_or(ApiError::NotFound)?;
    tracing::info!(user = %user_id, rekeyed, "email changed");
    send_email_confirmation(state, &user).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfileRequest {
    hidden: Option<bool>,
    /// `day` or `night`.
    #[schema(value_type = Option<ThemeName>)]
    theme: Option<String>,
    /// 0.7–1.4.
    #[schema(minimum = 0.7, maximum = 1.4)]
    magnification: Option<f64>,
    /// At most 20 strings of at most 200 characters.
    #[schema(value_type = Option<Vec<Recent>>, max_items = 20)]
    recents: Option<Vec<String>>,
}

/// A colour theme.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Describes the field in the OpenAPI document only.
pub enum ThemeName {
    Day,
    Night,
}

/// One of `recents`: at most 200 characters (a path such as `/chat/<id>`).
#[derive(ToSchema)]
#[schema(max_length = 200)]
#[allow(dead_code)] // Describes the field's items in the OpenAPI document only.
pub struct Recent(String);

/// A user's profile as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileReply {
    hidden: bool,
    #[schema(value_type = ThemeName)]
    theme: Theme,
    magnification: f64,
    recents: Vec<String>,
}

impl ProfileRequest {
    /// The update asked for, or 422s naming each field that is out of range.
    pub fn validate(self) -> ApiResult<ProfileUpdate> {
        let mut problems = std::collections::BTreeMap::<String, Vec<String>>::new();
        let theme = match self.theme.as_deref() {
            None => None,
            Some(text) => match Theme::parse(text) {
                Some(theme) => Some(theme),
                None => {
                    problems.entry("theme".into()).or_default().push("must be \"day\" or \"night\"".into());
                    None
                }
            },
        };
        if let Some(m) = self.magnification
            && !(0.7..=1.4).contains(&m)
        {
            problems.entry("magnification".into()).or_default().push("must be between 0.7 and 1.4".into());
        }
        if let Some(recents) = &self.recents {
            if recents.len() > 20 {
                problems.entry("recents".into()).or_default().push("must have at most 20 entries".into());
            }
            if recents.iter().any(|r| r.chars().count() > 200) {
                problems.entry("recents".into()).or_default().push("entries must be at most 200 characters".into());
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::Invalid(problems));
        }
        Ok(ProfileUpdate { hidden: self.hidden, theme, magnification: self.magnification, recents: self.recents })
    }
}

/// Changes the profile fields given; the others stay. A change of `hidden` shows or hides the
/// person in presence.
pub async fn update_profile(state: &AppState, user: Uuid, update: &ProfileUpdate) -> ApiResult<ProfileReply> {
    let profile = state.store.update_profile(user, update).await?;
    if let Some(hidden) = update.hidden {
        crate::presence::hidden_changed(state, user, hidden).await;
    }
    Ok(ProfileReply {
        hidden: profile.hidden,
        theme: profile.theme,
        magnification: profile.magnification,
        recents: profile.recents,
    })
}

/// A display name change, as everyone on `system:general` hears it.
#[derive(Debug, Serialize)]
struct DisplayNameChanged<'a> {
    user_id: Uuid,
    display_name: &'a str,
}

/// Renames the person (1 to 100 characters without control characters, trimmed) and tells
/// everyone on `system:general`.
pub async fn set_display_name(state: &AppState, user: Uuid, requested: &str) -> ApiResult<()> {
    let name = fields::display_name("display_name", requested).map_err(|_| {
        ApiError::refused("invalid_display_name", "display_name must be 1 to 100 characters without control characters")
    })?;
    state.store.set_display_name(user, &name, Timestamp::now()).await?;
    let change = DisplayNameChanged { user_id: user, display_name: &name };
    state.publish_typed(SYSTEM_TOPIC.to_owned(), "set_display_name", &change).await;
    Ok(())
}

#[derive(Deserialize, ToSchema)]
pub struct DeleteAccountRequest {
    /// Current password, to confirm.
    #[schema(value_type = String, format = Password)]
    password: Password,
}

/// Deletes the account and everything that belongs to it (needs the password); its sockets close.
pub async fn delete_account(state: &AppState, user_id: Uuid, request: DeleteAccountRequest) -> ApiResult<()> {
    verify_current_password(state, user_id, request.password).await?;
    erase(state, user_id).await?;
    tracing::info!(user = %user_id, "account deleted");
    Ok(())
}

/// Deletes the account and everything that belongs to it (memberships, messages, sealed keys,
/// images, sessions); its sockets close. The person's own deletion and an administrator's.
pub async fn erase(state: &AppState, user_id: Uuid) -> ApiResult<()> {
    let rooms = state.store.rooms_with_member(user_id).await?;
    state.store.delete_user(user_id).await?;
    state.pubsub.publish(Envelope::DisconnectUser { user: user_id }).await;
    // Their rooms hear that they left, and one whose only moderator they were gets another.
    for room_id in rooms {
        crate::rooms::member_gone(state, room_id, user_id).await;
    }
    Ok(())
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// The users.
    pub items: Vec<PublicUser>,
    /// Pass back as `page_token` for the next page; null on the last page.
    #[schema(required)]
    pub page_token: Option<String>,
}

/// Longest directory search: an email address's limit (RFC 5321).
pub const MAX_QUERY_CHARS: usize = 320;

/// One page of the directory as `viewer` sees it, by id, after the one `page_token` ends at:
/// everyone, or those `query` finds (display name containing it, or exactly that email).
/// Emails are shown as `directory.show_emails` says: with `contacts`, only the viewer's own, of
/// people they share a conversation with, and of someone found by typing the exact address.
pub async fn directory(
    state: &AppState,
    viewer: Uuid,
    query: Option<&str>,
    page_token: Option<&str>,
    size: u32,
) -> ApiResult<UserPage> {
    let search = query.map(checked_query).transpose()?;
    let after = state.page_tokens.decode_id(DIRECTORY, page_token)?;
    // One extra row says whether another page exists.
    let page = hearth_store::DirectoryPage { viewer, search: search.as_deref(), after, limit: size + 1 };
    let mut entries = state.store.directory(&page).await?;
    let next = state.page_tokens.next_page(DIRECTORY, &mut entries, size, |last| last.user.id);
    let everyone = state.settings.directory.show_emails == ShowEmails::Everyone;
    let items = entries
        .into_iter()
        .map(|entry| {
            let email_visible = everyone || entry.email_visible;
            PublicUser::seen(entry.user, email_visible)
        })
        .collect();
    Ok(UserPage { items, page_token: next })
}

/// A directory search as typed: trimmed, 1 to [`MAX_QUERY_CHARS`] characters.
fn checked_query(raw: &str) -> ApiResult<String> {
    let query = raw.trim();
    if query.is_empty() || query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid("query", format!("must be 1 to {MAX_QUERY_CHARS} characters")));
    }
    Ok(query.to_owned())
}
