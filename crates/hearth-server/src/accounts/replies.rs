//! How accounts look to clients, as seed 002 defines them, and the helpers that start and
//! describe a device session.

use hearth_store::{NewSession, Profile, Theme, Timestamp, User, UserSummary};
use hearth_vault::RandomToken;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::identity::{self, IdentityKey, IdentityPrivateKey, OwnIdentity};
use crate::conversations::ConversationSummary;
use crate::conversations::keys::key_json;
use crate::error::ApiResult;
use crate::state::AppState;

/// A user as they see themselves: identity plus profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserWithProfile {
    /// User id.
    pub id: Uuid,
    /// Email address.
    pub email: String,
    /// Display name (defaults to the email).
    pub display_name: String,
    /// Shown as offline even when connected.
    pub hidden: bool,
    /// `day` or `night`.
    #[schema(value_type = String, example = "day")]
    pub theme: Theme,
    /// Text magnification, 0.7–1.4.
    pub magnification: f64,
    /// Recently viewed pages.
    pub recents: Vec<String>,
    /// (+) The public form of the account's identity (docs/e2e.md), as its client published it
    /// with `PUT /api/identity_key`; null before it did (and after a password reset).
    #[schema(value_type = Option<IdentityKey>, required)]
    pub identity_key: Value,
    /// (+) The private form of the account's identity, as its client wrapped it; only ever in
    /// the account's own views. Null when there is none.
    #[schema(value_type = Option<IdentityPrivateKey>, required)]
    pub identity_private_key: Value,
}

impl UserWithProfile {
    /// Combines a user, their profile and their own identity.
    pub fn new(user: &User, profile: Profile, identity: OwnIdentity) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            hidden: profile.hidden,
            theme: profile.theme,
            magnification: profile.magnification,
            recents: profile.recents,
            identity_key: identity.identity_key,
            identity_private_key: identity.identity_private_key,
        }
    }
}

/// What others see of a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicUser {
    /// User id.
    pub id: Uuid,
    /// Email address; null where the directory keeps it private (`directory.show_emails`:
    /// shown for oneself and the people one shares a conversation with).
    #[schema(required)]
    pub email: Option<String>,
    /// Display name.
    pub display_name: String,
    /// (+) The public form of their identity (docs/e2e.md); null when they have none yet.
    #[schema(value_type = Option<IdentityKey>, required)]
    pub identity_key: Value,
}

impl PublicUser {
    /// `user` as a viewer sees them: their email only if `email_visible`.
    pub fn seen(user: UserSummary, email_visible: bool) -> Self {
        let identity_key = user.identity_key.as_deref().map_or(Value::Null, key_json);
        let email = email_visible.then_some(user.email);
        Self { id: user.id, email, display_name: user.display_name, identity_key }
    }
}

/// A user whose email the viewer may see (themselves, a conversation partner).
impl From<UserSummary> for PublicUser {
    fn from(user: UserSummary) -> Self {
        Self::seen(user, true)
    }
}

impl From<&User> for PublicUser {
    fn from(user: &User) -> Self {
        UserSummary::from(user).into()
    }
}

/// The reply to register, login, refresh and device linking.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionReply {
    /// The signed-in user with their profile.
    pub user: UserWithProfile,
    /// The user's conversations.
    pub conversations: Vec<ConversationSummary>,
    /// Every user who shares a conversation with the user.
    pub users: Vec<PublicUser>,
    /// Access token (30 minutes), for `Authorization: Bearer`.
    pub auth_token: String,
    /// Refresh token (14 days, single use), for `/auth/refresh`.
    pub refresh_token: String,
}

/// A new device session and the refresh token that goes with it.
pub struct PendingSession {
    /// What the store saves.
    pub row: NewSession,
    /// What the client gets.
    pub refresh_token: RandomToken,
}

impl PendingSession {
    /// A new device session, named by the client or after its user agent.
    pub fn new(state: &AppState, device_name: Option<&str>, user_agent: Option<&str>, now: Timestamp) -> Self {
        let refresh_token = RandomToken::generate();
        let row = NewSession {
            device_id: Uuid::now_v7(),
            name: super::fields::device_name(device_name, user_agent),
            refresh_token_hash: refresh_token.hash().0,
            refresh_expires_at: now.plus_secs(state.settings.auth.refresh_token_ttl_secs),
            created_at: now,
        };
        Self { row, refresh_token }
    }
}

/// The session reply for `user` on `device_id`, with a fresh access token.
pub async fn session_reply(
    state: &AppState,
    user: &User,
    device_id: Uuid,
    refresh_token: &RandomToken,
    now: Timestamp,
) -> ApiResult<SessionReply> {
    let profile = state.store.profile(user.id).await?;
    let identity = identity::own(state, user.id).await?;
    let conversations = state.store.conversations_of(user.id).await?;
    let partners = state.store.conversation_partners(user.id).await?;
    Ok(SessionReply {
        user: UserWithProfile::new(user, profile, identity),
        conversations: conversations.iter().map(ConversationSummary::from).collect(),
        users: partners.into_iter().map(PublicUser::from).collect(),
        auth_token: state.sessions.tokens().issue(user.id, device_id, now),
        refresh_token: refresh_token.expose().to_owned(),
    })
}
