//! The typed REST API of a hearth server (docs/ARCHITECTURE.md): sign-in with the password kept on
//! the device, automatic token refresh, and one typed call per endpoint.
//!
//! A [`Client`] is one device session. [`register`](Client::register) and
//! [`login`](Client::login) derive the `auth_secret` and the [`WrapKey`] from the email and
//! password ([`e2e::derive`]): the server receives the `auth_secret` as the `password` field,
//! never the password, and the wrap key stays in the client
//! ([`wrap_key`](Client::wrap_key)) to unwrap the user's private keys.
//!
//! Access tokens live 30 minutes. A call answered 401 refreshes the session once
//! (`POST /auth/refresh`) and is retried with the new token. Refresh tokens are single use and
//! presenting a spent one again signs the device out, so concurrent calls never refresh
//! twice with the same token: refreshes are serialized, and a call that finds another one
//! already refreshed simply retries with the new token.
//!
//! ```no_run
//! # async fn example() -> Result<(), hearth_client::ClientError> {
//! use hearth_client::api::Client;
//!
//! let mut client = Client::new("https://chat.example.org")?;
//! let signed_in = client.login("ada@example.org", "correct horse battery staple", Some("laptop")).await?;
//! println!("hello {}, {} conversations", signed_in.user.display_name, signed_in.conversations.len());
//!
//! // Share one signed-in client between tasks with an `Arc`.
//! let client = std::sync::Arc::new(client);
//! for conversation in client.conversations().await? {
//!     let page = client.messages(conversation.id, None).await?;
//!     println!("{:?}: {} recent messages", conversation.alias, page.items.len());
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod replies;
mod rooms;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use uuid::Uuid;
use zeroize::Zeroizing;

pub use error::ClientError;
pub use replies::{
    Conversation, Device, Message, MessagePage, ProviderKey, PublicUser, SignedIn, Theme, User, UserPage,
};
pub use rooms::{ASSISTANT_ID, MemberPage, Post, PostPage, Registration, Room, RoomPage, Visibility};
pub use session::Identity;

use crate::e2e::{self, E2eError, WrapKey, WrappedIdentity};
use crate::trust::{Keyring, TrustStore};
use replies::{ErrorBody, Items, PrivateConversation};
use session::{SessionReply, Tokens, identity_of};

/// The shortest password a new account may have (the server's 8 characters): the server sees
/// only the 43-character `auth_secret` derived from it, so the client enforces it.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// `GET /api/encryption_keys`: the user's wrapped private keys, by conversation.
#[derive(serde::Deserialize)]
struct StoredPrivateKeys {
    private_keys: std::collections::BTreeMap<String, serde_json::Value>,
}

/// `PATCH /api/password` with the re-wrapped private keys. No `Debug`: it holds secrets.
#[derive(Serialize)]
struct PasswordChange<'a> {
    password: &'a str,
    new_password: &'a str,
    new_password_confirmation: &'a str,
    private_keys: std::collections::BTreeMap<Uuid, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_private_key: Option<WrappedIdentity>,
}

/// `PUT /api/identity_key`. No `Debug`: it may hold the password's `auth_secret`.
#[derive(Serialize)]
struct IdentityPublication<'a> {
    identity_key: serde_json::Value,
    identity_private_key: &'a WrappedIdentity,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
}

/// The account's identity as this client has it.
#[derive(Debug)]
enum IdentityState {
    /// Not signed in.
    None,
    /// Unwrapped (or made) at sign-in.
    Ready(Box<e2e::Identity>),
    /// Stored, but it does not open with this password, or is not the published one.
    Unopenable,
}

/// `PATCH /api/email` with the new address's secret and the re-wrapped private keys. No
/// `Debug`: it holds secrets.
#[derive(Serialize)]
struct EmailChange<'a> {
    token: &'a str,
    email: &'a str,
    password: &'a str,
    new_password: &'a str,
    private_keys: std::collections::BTreeMap<Uuid, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_private_key: Option<WrappedIdentity>,
}

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one hearth server, holding (once signed in) one device session.
///
/// Calls take `&self`: share a signed-in client between tasks with an `Arc`.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    /// The server's base URL, ending in `/` so relative paths join below it.
    base: Url,
    /// Whose session this is; `None` before sign-in.
    identity: Option<Identity>,
    /// Never leaves the device.
    wrap_key: Option<WrapKey>,
    /// The account's end-to-end identity (docs/e2e.md). Behind a lock so that a client shared
    /// with a socket (`Arc<Client>`) can still replace it.
    e2e_identity: std::sync::Mutex<IdentityState>,
    /// The current tokens; `None` before sign-in and after the session ended. The lock is
    /// held across a refresh, which serializes refreshes.
    tokens: Mutex<Option<Tokens>>,
    /// How many refreshes this client made.
    refreshes: AtomicU64,
    /// Told every new refresh token (sign-in and each refresh), to keep the session.
    refresh_token_keeper: Option<RefreshTokenKeeper>,
}

/// A function told each new refresh token ([`Client::keep_refresh_tokens`]).
type KeepRefreshToken = Box<dyn Fn(&str) + Send + Sync>;

/// The keeper of refresh tokens; its `Debug` shows only that there is one.
struct RefreshTokenKeeper(KeepRefreshToken);

impl std::fmt::Debug for RefreshTokenKeeper {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("RefreshTokenKeeper")
    }
}

impl Client {
    /// A client of the server at `base_url` (such as `https://chat.example.org`; a path is
    /// kept as a prefix), not signed in.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("hearth-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        Self::with_http_client(base_url, http)
    }

    /// A client of the server at `base_url` that sends its requests through `http` (to
    /// share a connection pool, or set timeouts and proxies).
    pub fn with_http_client(base_url: &str, http: reqwest::Client) -> Result<Self, ClientError> {
        let mut base = Url::parse(base_url).map_err(|e| ClientError::InvalidUrl(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::InvalidUrl("not an http or https URL".to_owned()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        Ok(Self {
            http,
            base,
            identity: None,
            wrap_key: None,
            e2e_identity: std::sync::Mutex::new(IdentityState::None),
            tokens: Mutex::new(None),
            refreshes: AtomicU64::new(0),
            refresh_token_keeper: None,
        })
    }

    /// Who is signed in: `None` before [`register`](Self::register) or [`login`](Self::login).
    /// It stays set after the session ends, naming whose it was.
    pub fn identity(&self) -> Option<Identity> {
        self.identity
    }

    /// The key that wraps the user's private keys ([`e2e::unwrap_private_key`]), derived at
    /// sign-in; `None` before. Never send it anywhere.
    pub fn wrap_key(&self) -> Option<&WrapKey> {
        self.wrap_key.as_ref()
    }

    /// How many times this client refreshed its session.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// Calls `keep` with every refresh token this client gets from now on: the one of each
    /// sign-in and of each refresh (refresh tokens are single use, so a session is resumed
    /// with the newest). A client that keeps its session between runs (a terminal client)
    /// stores it; `keep` runs while no other call can refresh, and must not call the client.
    pub fn keep_refresh_tokens(&mut self, keep: impl Fn(&str) + Send + Sync + 'static) {
        self.refresh_token_keeper = Some(RefreshTokenKeeper(Box::new(keep)));
    }

    /// # POST /auth/refresh, to resume a kept session
    ///
    /// Takes over the device session of `refresh_token` (kept from an earlier run, see
    /// [`keep_refresh_tokens`](Self::keep_refresh_tokens)): the same device, no password.
    /// `wrap_key` is the one derived at that session's sign-in and kept on the device; the
    /// account's identity is opened with it as at sign-in. A spent, expired or revoked token
    /// is a 401 ([`ClientError::needs_sign_in`]).
    pub async fn resume(&mut self, refresh_token: &str, wrap_key: WrapKey) -> Result<SignedIn, ClientError> {
        let mut signed_in = self.refresh_session(refresh_token).await?;
        self.wrap_key = Some(wrap_key);
        self.establish_identity(&mut signed_in.user).await?;
        Ok(signed_in)
    }

    /// # POST /auth/refresh, without the end-to-end keys
    ///
    /// Takes over the device session of `refresh_token` for calls that need no keys (such as
    /// [`revoke_device`](Self::revoke_device) to sign it out). Errors as [`resume`](Self::resume).
    pub async fn refresh_session(&mut self, refresh_token: &str) -> Result<SignedIn, ClientError> {
        let response =
            self.http.post(self.url("auth/refresh")).json(&RefreshRequest { token: refresh_token }).send().await?;
        let reply: SessionReply = read_json("POST /auth/refresh", response).await?;
        self.adopt("POST /auth/refresh", reply)
    }

    /// Tells the keeper (if any) the refresh token of `tokens`.
    fn keep(&self, tokens: &Tokens) {
        if let Some(keeper) = &self.refresh_token_keeper {
            (keeper.0)(&tokens.refresh);
        }
    }

    /// # GET /api/assistant/images/{id}
    ///
    /// An image the assistant made for the user (`/image`): its content type and bytes.
    /// Anyone else's image, or none, is a 404.
    pub async fn assistant_image(&self, image_id: Uuid) -> Result<(String, Vec<u8>), ClientError> {
        let url = self.url(&format!("api/assistant/images/{image_id}"));
        let response = self.authorized(|http| http.get(url.clone())).await?;
        if !response.status().is_success() {
            return Err(error_from("GET /api/assistant/images/{id}", response).await);
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        Ok((content_type, response.bytes().await?.to_vec()))
    }

    /// # POST /auth/register
    ///
    /// Creates an account and signs this client in as a new device. `display_name` defaults
    /// to the email, `device_name` to the client's user agent. Errors: 409 `email_taken`,
    /// 422 `invalid` (with `fields`), 429, and on a server that takes new accounts by
    /// invitation only 403 `invite_required` ([`register_with_invite`](Self::register_with_invite)
    /// takes the code).
    pub async fn register(
        &mut self,
        email: &str,
        password: &str,
        display_name: Option<&str>,
        device_name: Option<&str>,
    ) -> Result<SignedIn, ClientError> {
        self.register_with_invite(email, password, display_name, device_name, None).await
    }

    /// # POST /auth/register, with an invite code
    ///
    /// [`register`](Self::register) with the `invite` code an administrator made, which a
    /// server whose [`registration`](Self::registration) is [`Registration::Invite`] needs (a
    /// server open to everyone ignores it). Beyond `register`'s errors: 403 `invite_required`
    /// (no code), `invalid_invite` (unknown, used up or expired) and `registration_closed`.
    pub async fn register_with_invite(
        &mut self,
        email: &str,
        password: &str,
        display_name: Option<&str>,
        device_name: Option<&str>,
        invite: Option<&str>,
    ) -> Result<SignedIn, ClientError> {
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(ClientError::PasswordTooShort);
        }
        let (auth_secret, wrap_key) = derive(email, password).await;
        let credentials = Credentials { email, password: &auth_secret, display_name, device_name, invite };
        let reply = self.post_session("POST /auth/register", "auth/register", &credentials).await?;
        let mut signed_in = self.sign_in("POST /auth/register", reply, wrap_key)?;
        self.establish_identity(&mut signed_in.user).await?;
        Ok(signed_in)
    }

    /// # POST /auth/login
    ///
    /// Signs this client in as a new device of an existing account. A wrong password or an
    /// unknown email is a 401 `unauthorized`; too many attempts a 429.
    pub async fn login(
        &mut self,
        email: &str,
        password: &str,
        device_name: Option<&str>,
    ) -> Result<SignedIn, ClientError> {
        let (auth_secret, wrap_key) = derive(email, password).await;
        let credentials = Credentials { email, password: &auth_secret, display_name: None, device_name, invite: None };
        let reply = self.post_session("POST /auth/login", "auth/login", &credentials).await?;
        let mut signed_in = self.sign_in("POST /auth/login", reply, wrap_key)?;
        self.establish_identity(&mut signed_in.user).await?;
        Ok(signed_in)
    }

    /// The account's end-to-end identity (docs/e2e.md), set up by [`register`](Self::register)
    /// and [`login`](Self::login): unwrapped from the stored one, or made and published by the
    /// first sign-in of a client that has identities. [`ClientError::IdentityUnopenable`] when
    /// the stored one does not open with this password (it is never silently replaced: see
    /// [`replace_identity`](Self::replace_identity)).
    pub fn e2e_identity(&self) -> Result<e2e::Identity, ClientError> {
        match &*self.identity_state() {
            IdentityState::Ready(identity) => Ok((**identity).clone()),
            IdentityState::Unopenable => Err(ClientError::IdentityUnopenable),
            IdentityState::None => Err(ClientError::NotSignedIn),
        }
    }

    /// A [`Keyring`] for this session: the account's identity and wrap key, and the pins in
    /// `store`.
    pub fn keyring(&self, store: TrustStore) -> Result<Keyring, ClientError> {
        let identity = self.e2e_identity()?;
        let me = self.identity.ok_or(ClientError::NotSignedIn)?.user_id;
        let wrap_key = self.wrap_key.clone().ok_or(ClientError::NotSignedIn)?;
        Ok(Keyring::new(me, wrap_key, identity, store))
    }

    /// Unwraps the user's stored identity, or makes and publishes one when there is none (and
    /// then shows it in `user`, as the server now has it).
    async fn establish_identity(&mut self, user: &mut User) -> Result<(), ClientError> {
        let wrap_key = self.wrap_key.clone().ok_or(ClientError::NotSignedIn)?;
        let stored = (user.identity_key.as_ref(), user.identity_private_key.as_ref());
        let state = match stored {
            (Some(published), Some(wrapped)) if !published.is_null() && !wrapped.is_null() => {
                let opened = serde_json::from_value::<WrappedIdentity>(wrapped.clone())
                    .map_err(|_| E2eError::Malformed("the stored identity is not two wrapped keys"))
                    .and_then(|wrapped| {
                        e2e::Identity::unwrap(&wrap_key, user.id, &wrapped, &e2e::IdentityKey::from_json(published)?)
                    });
                match opened {
                    Ok(identity) => IdentityState::Ready(Box::new(identity)),
                    Err(_) => IdentityState::Unopenable,
                }
            }
            _ => {
                let (identity, wrapped) = self.publish_identity(&wrap_key, user.id, None).await?;
                user.identity_key = Some(identity.public().to_json());
                user.identity_private_key = Some(serde_json::to_value(wrapped).expect("two strings serialise"));
                IdentityState::Ready(Box::new(identity))
            }
        };
        *self.identity_state() = state;
        Ok(())
    }

    /// The identity's state. A panic while the lock was held cannot leave it half-changed
    /// (every change is one assignment), so a poisoned lock is used as it is.
    fn identity_state(&self) -> std::sync::MutexGuard<'_, IdentityState> {
        self.e2e_identity.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// # PUT /api/identity_key
    ///
    /// Makes a new identity and publishes it, replacing one that does not open
    /// ([`ClientError::IdentityUnopenable`]): the server asks for the password to replace an
    /// identity, so a stolen access token cannot. Contacts see the change as a new security
    /// key, as after a password reset.
    pub async fn replace_identity(&self, password: &str) -> Result<(), ClientError> {
        let me = self.identity.ok_or(ClientError::NotSignedIn)?.user_id;
        let email = self.me().await?.email;
        let (auth_secret, wrap_key) = derive(&email, password).await;
        let (identity, _) = self.publish_identity(&wrap_key, me, Some(&auth_secret)).await?;
        *self.identity_state() = IdentityState::Ready(Box::new(identity));
        Ok(())
    }

    async fn publish_identity(
        &self,
        wrap_key: &WrapKey,
        me: Uuid,
        password: Option<&str>,
    ) -> Result<(e2e::Identity, WrappedIdentity), ClientError> {
        let identity = e2e::Identity::generate();
        let wrapped = identity.wrap(wrap_key, me);
        let body =
            IdentityPublication { identity_key: identity.public().to_json(), identity_private_key: &wrapped, password };
        let url = self.url("api/identity_key");
        let response = self.authorized(|http| http.put(url.clone()).json(&body)).await?;
        if !response.status().is_success() {
            return Err(error_from("PUT /api/identity_key", response).await);
        }
        Ok((identity, wrapped))
    }

    /// # GET /api/me
    ///
    /// The signed-in user with their profile.
    pub async fn me(&self) -> Result<User, ClientError> {
        self.get("GET /api/me", self.url("api/me")).await
    }

    /// # GET /api/conversations
    ///
    /// The user's conversations.
    pub async fn conversations(&self) -> Result<Vec<Conversation>, ClientError> {
        let list: Items<Conversation> = self.get("GET /api/conversations", self.url("api/conversations")).await?;
        Ok(list.items)
    }

    /// # GET /api/messages
    ///
    /// A page (50) of the user's copies of a conversation's messages, newest first: the first
    /// page with `page_token` `None`, then the next with the previous page's token. A
    /// conversation the user is not a member of is a 404; a tampered page token a 400.
    pub async fn messages(&self, conversation_id: Uuid, page_token: Option<&str>) -> Result<MessagePage, ClientError> {
        let mut url = self.url("api/messages");
        url.query_pairs_mut().append_pair("conversation_id", &conversation_id.to_string());
        if let Some(token) = page_token {
            url.query_pairs_mut().append_pair("page_token", token);
        }
        self.get("GET /api/messages", url).await
    }

    /// # GET /api/users
    ///
    /// A page (50) of the directory: the first with `page_token` `None`, then the next with
    /// the previous page's token. With `query`, only the people whose display name contains it
    /// (any case) or whose email is exactly it (1–320 characters). Emails of people one shares
    /// no conversation with are `None` (unless the server shows everyone's).
    pub async fn users(&self, query: Option<&str>, page_token: Option<&str>) -> Result<UserPage, ClientError> {
        let mut url = self.url("api/users");
        if let Some(query) = query {
            url.query_pairs_mut().append_pair("query", query);
        }
        if let Some(token) = page_token {
            url.query_pairs_mut().append_pair("page_token", token);
        }
        self.get("GET /api/users", url).await
    }

    /// # GET /api/conversations/private/{user_id}
    ///
    /// The private conversation between the user and `user_id`, if there is one.
    pub async fn private_conversation_with(&self, user_id: Uuid) -> Result<Option<Uuid>, ClientError> {
        let url = self.url(&format!("api/conversations/private/{user_id}"));
        let reply: PrivateConversation = self.get("GET /api/conversations/private/{user_id}", url).await?;
        Ok(reply.conversation_id)
    }

    /// # GET /api/devices
    ///
    /// The user's signed-in devices, this one marked [`current`](Device::current).
    pub async fn devices(&self) -> Result<Vec<Device>, ClientError> {
        let list: Items<Device> = self.get("GET /api/devices", self.url("api/devices")).await?;
        Ok(list.items)
    }

    /// # DELETE /api/devices/{id}
    ///
    /// Signs a device of the user's out; its tokens stop working at once. Revoking this
    /// client's own device ends its session. Any other id is a 404.
    pub async fn revoke_device(&self, device_id: Uuid) -> Result<(), ClientError> {
        let url = self.url(&format!("api/devices/{device_id}"));
        self.call_without_reply("DELETE /api/devices/{id}", Method::DELETE, url).await?;
        if self.identity.is_some_and(|identity| identity.device_id == device_id) {
            self.end_session().await;
        }
        Ok(())
    }

    /// # POST /api/signout_all
    ///
    /// Signs every device of the user out, this one included: afterwards this client's calls
    /// fail with [`ClientError::NotSignedIn`], and other devices' with a 401.
    pub async fn signout_all(&self) -> Result<(), ClientError> {
        self.call_without_reply("POST /api/signout_all", Method::POST, self.url("api/signout_all")).await?;
        self.end_session().await;
        Ok(())
    }

    /// # GET /api/keys
    ///
    /// The user's stored AI provider keys (added with `/configure`), oldest first: the order
    /// they are tried in. Never the keys themselves.
    pub async fn keys(&self) -> Result<Vec<ProviderKey>, ClientError> {
        let list: Items<ProviderKey> = self.get("GET /api/keys", self.url("api/keys")).await?;
        Ok(list.items)
    }

    /// # PATCH /api/password, with the private keys re-wrapped
    ///
    /// Changes the password on the device and the server together: every private key the user
    /// stored (`GET /api/encryption_keys`) is unwrapped with the old password's wrap key,
    /// wrapped again with the new one, and sent with the change, which replaces them in the
    /// same transaction (docs/ARCHITECTURE.md), so history stays readable. The server then signs every
    /// session out; this client signs in again with the new password.
    pub async fn change_password(
        &mut self,
        email: &str,
        password: &str,
        new_password: &str,
        device_name: Option<&str>,
    ) -> Result<SignedIn, ClientError> {
        if new_password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(ClientError::PasswordTooShort);
        }
        let (old_secret, old_wrap_key) = derive(email, password).await;
        let (new_secret, new_wrap_key) = derive(email, new_password).await;
        let private_keys = self.rewrapped_private_keys(&old_wrap_key, &new_wrap_key).await?;
        let identity_private_key = self.rewrapped_identity(&new_wrap_key)?;
        let body = PasswordChange {
            password: &old_secret,
            new_password: &new_secret,
            new_password_confirmation: &new_secret,
            private_keys,
            identity_private_key,
        };
        self.change_credentials("PATCH /api/password", self.url("api/password"), &body).await?;
        self.login(email, new_password, device_name).await
    }

    /// # POST /api/token/email_change
    ///
    /// Asks the server to email an email-change token to the account's current address: the
    /// token [`change_email`](Self::change_email) needs.
    pub async fn request_email_change(&self) -> Result<(), ClientError> {
        let url = self.url("api/token/email_change");
        self.call_without_reply("POST /api/token/email_change", Method::POST, url).await
    }

    /// # PATCH /api/email, with a new secret and the private keys re-wrapped
    ///
    /// Moves the account to `new_email` with the `token` emailed by
    /// [`request_email_change`](Self::request_email_change). Keys derive from the email and the
    /// password together (docs/ARCHITECTURE.md), so a new address means a new `auth_secret` and a new
    /// wrap key: the password stays the same, but every stored private key is unwrapped with
    /// the old wrap key and wrapped again with the new one, and the server replaces the
    /// secret and the keys in the email change's transaction, so history stays readable. The
    /// server then signs every session out; this client signs in again at the new address.
    ///
    /// Errors: 400 `invalid_token` for a spent or foreign token, 409 `email_taken`, 422 for a
    /// wrong password or an invalid address. A wrong password is usually caught earlier, as
    /// [`ClientError::Crypto`]: the keys it derives do not open the stored private keys.
    ///
    /// ```no_run
    /// # async fn example(client: &mut hearth_client::api::Client, password: &str) -> Result<(), hearth_client::ClientError> {
    /// client.request_email_change().await?;
    /// // The person copies the code from the email sent to their current address.
    /// let code = "the code from the email";
    /// let signed_in = client.change_email(code, "ada@new.example.org", password, Some("laptop")).await?;
    /// assert_eq!(signed_in.user.email, "ada@new.example.org");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn change_email(
        &mut self,
        token: &str,
        new_email: &str,
        password: &str,
        device_name: Option<&str>,
    ) -> Result<SignedIn, ClientError> {
        // The current address, as the server has it: the old secrets derive from it.
        let current = self.me().await?.email;
        let (old_secret, old_wrap_key) = derive(&current, password).await;
        let (new_secret, new_wrap_key) = derive(new_email, password).await;
        let private_keys = self.rewrapped_private_keys(&old_wrap_key, &new_wrap_key).await?;
        let identity_private_key = self.rewrapped_identity(&new_wrap_key)?;
        let body = EmailChange {
            token,
            email: new_email,
            password: &old_secret,
            new_password: &new_secret,
            private_keys,
            identity_private_key,
        };
        self.change_credentials("PATCH /api/email", self.url("api/email"), &body).await?;
        self.login(new_email, password, device_name).await
    }

    /// `PATCH url` with a new secret and the re-wrapped private keys; the server then signs
    /// every session out, this one included, so the caller signs in again.
    async fn change_credentials(
        &mut self,
        endpoint: &'static str,
        url: Url,
        body: &impl Serialize,
    ) -> Result<(), ClientError> {
        let response = self.authorized(|http| http.patch(url.clone()).json(body)).await?;
        if !response.status().is_success() {
            return Err(error_from(endpoint, response).await);
        }
        self.end_session().await;
        Ok(())
    }

    /// The identity wrapped under the new wrap key, to replace the stored one with the
    /// password (none when the account has none yet).
    fn rewrapped_identity(&self, new_wrap_key: &WrapKey) -> Result<Option<WrappedIdentity>, ClientError> {
        let me = self.identity.ok_or(ClientError::NotSignedIn)?.user_id;
        match &*self.identity_state() {
            IdentityState::Ready(identity) => Ok(Some(identity.wrap(new_wrap_key, me))),
            IdentityState::Unopenable => Err(ClientError::IdentityUnopenable),
            IdentityState::None => Ok(None),
        }
    }

    /// Every private key the user stored (`GET /api/encryption_keys`), unwrapped with
    /// `old_wrap_key` and wrapped again with `new_wrap_key`, by conversation.
    async fn rewrapped_private_keys(
        &self,
        old_wrap_key: &WrapKey,
        new_wrap_key: &WrapKey,
    ) -> Result<std::collections::BTreeMap<Uuid, String>, ClientError> {
        let stored: StoredPrivateKeys = self.get("GET /api/encryption_keys", self.url("api/encryption_keys")).await?;
        let unexpected = |detail: &str| ClientError::UnexpectedReply {
            status: StatusCode::OK,
            endpoint: "GET /api/encryption_keys",
            detail: detail.to_owned(),
        };
        let mut private_keys = std::collections::BTreeMap::new();
        for (conversation, wrapped) in &stored.private_keys {
            let conversation_id: Uuid =
                conversation.parse().map_err(|_| unexpected("a key that is no conversation id"))?;
            let wrapped = wrapped.as_str().ok_or_else(|| unexpected("a private key this client did not wrap"))?;
            let pair = e2e::unwrap_private_key(old_wrap_key, conversation_id, wrapped)?;
            private_keys.insert(conversation_id, e2e::wrap_private_key(new_wrap_key, conversation_id, &pair));
        }
        Ok(private_keys)
    }

    /// The current access token, for a socket of this session
    /// ([`channels::Socket::connect`](crate::channels::Socket::connect)). It lives 30 minutes;
    /// a socket refused with 403 reconnects with a fresh one after any REST call refreshed it.
    pub async fn access_token(&self) -> Result<Zeroizing<String>, ClientError> {
        let tokens = self.tokens.lock().await;
        let tokens = tokens.as_ref().ok_or(ClientError::NotSignedIn)?;
        Ok(Zeroizing::new(tokens.access.clone()))
    }

    /// `path` (relative, no leading `/`) below the base URL.
    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("a relative path joins onto an http(s) base URL")
    }

    /// Posts to a sign-in endpoint and reads its session reply.
    async fn post_session(
        &self,
        endpoint: &'static str,
        path: &str,
        credentials: &Credentials<'_>,
    ) -> Result<SessionReply, ClientError> {
        let response = self.http.post(self.url(path)).json(credentials).send().await?;
        read_json(endpoint, response).await
    }

    /// Takes over a new session from a sign-in reply, with the wrap key derived for it.
    fn sign_in(
        &mut self,
        endpoint: &'static str,
        reply: SessionReply,
        wrap_key: WrapKey,
    ) -> Result<SignedIn, ClientError> {
        let signed_in = self.adopt(endpoint, reply)?;
        self.wrap_key = Some(wrap_key);
        Ok(signed_in)
    }

    /// Takes over the session of a sign-in or refresh reply (telling the keeper its token).
    fn adopt(&mut self, endpoint: &'static str, reply: SessionReply) -> Result<SignedIn, ClientError> {
        let identity = identity_of(&reply.auth_token).ok_or_else(|| ClientError::UnexpectedReply {
            status: StatusCode::OK,
            endpoint,
            detail: "the access token names no user and device".to_owned(),
        })?;
        let generation = self.tokens.get_mut().as_ref().map_or(0, |tokens| tokens.generation + 1);
        let (signed_in, tokens) = reply.split(generation);
        self.keep(&tokens);
        self.identity = Some(identity);
        *self.tokens.get_mut() = Some(tokens);
        Ok(signed_in)
    }

    /// Forgets the tokens: the session is over.
    async fn end_session(&self) {
        *self.tokens.lock().await = None;
    }

    /// An authenticated GET, its reply parsed as `T`.
    async fn get<T: DeserializeOwned>(&self, endpoint: &'static str, url: Url) -> Result<T, ClientError> {
        let response = self.authorized(|http| http.get(url.clone())).await?;
        read_json(endpoint, response).await
    }

    /// An authenticated call whose success has no body (204).
    async fn call_without_reply(&self, endpoint: &'static str, method: Method, url: Url) -> Result<(), ClientError> {
        let response = self.authorized(|http| http.request(method.clone(), url.clone())).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(error_from(endpoint, response).await)
    }

    /// Sends the request `build` makes with the current access token; on a 401, refreshes
    /// the session (unless another call already did) and sends it once more.
    async fn authorized(&self, build: impl Fn(&reqwest::Client) -> RequestBuilder) -> Result<Response, ClientError> {
        let (access, generation) = {
            let tokens = self.tokens.lock().await;
            let tokens = tokens.as_ref().ok_or(ClientError::NotSignedIn)?;
            (Zeroizing::new(tokens.access.clone()), tokens.generation)
        };
        let response = build(&self.http).bearer_auth(access.as_str()).send().await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let access = self.refresh_after(generation).await?;
        Ok(build(&self.http).bearer_auth(access.as_str()).send().await?)
    }

    /// The access token to retry with after a 401 to a request sent with the tokens of
    /// `generation`: the current one if another call refreshed since, else a fresh one.
    async fn refresh_after(&self, generation: u64) -> Result<Zeroizing<String>, ClientError> {
        // Held across the refresh: concurrent calls wait here, then see the new generation.
        let mut guard = self.tokens.lock().await;
        let tokens = guard.as_ref().ok_or(ClientError::NotSignedIn)?;
        if tokens.generation != generation {
            return Ok(Zeroizing::new(tokens.access.clone()));
        }
        let response =
            self.http.post(self.url("auth/refresh")).json(&RefreshRequest { token: &tokens.refresh }).send().await?;
        let reply: SessionReply = match read_json("POST /auth/refresh", response).await {
            Ok(reply) => reply,
            Err(error) => {
                // The refresh token is no good (spent, expired or revoked): the session is
                // over, and presenting the token again would achieve nothing.
                if error.status() == Some(StatusCode::UNAUTHORIZED) {
                    *guard = None;
                }
                return Err(error);
            }
        };
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let (_, tokens) = reply.split(generation + 1);
        self.keep(&tokens);
        let access = Zeroizing::new(tokens.access.clone());
        *guard = Some(tokens);
        Ok(access)
    }
}

/// The body of register and login: `password` is the `auth_secret`. No `Debug`: it holds it.
#[derive(Serialize)]
struct Credentials<'a> {
    email: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<&'a str>,
    device_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invite: Option<&'a str>,
}

/// The body of `POST /auth/refresh`. No `Debug`: it holds the token.
#[derive(Serialize)]
struct RefreshRequest<'a> {
    token: &'a str,
}

/// Derives the `auth_secret` and wrap key off the async worker threads (PBKDF2 with 600 000
/// iterations takes a noticeable time).
async fn derive(email: &str, password: &str) -> (Zeroizing<String>, WrapKey) {
    let email = email.to_owned();
    let password = Zeroizing::new(password.to_owned());
    let derived = tokio::task::spawn_blocking(move || e2e::derive(&email, &password))
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
    let e2e::Derived { auth_secret, wrap_key } = derived;
    (Zeroizing::new(auth_secret), wrap_key)
}

/// Reads a successful reply as `T`, or the error the response stands for.
async fn read_json<T: DeserializeOwned>(endpoint: &'static str, response: Response) -> Result<T, ClientError> {
    let status = response.status();
    if !status.is_success() {
        return Err(error_from(endpoint, response).await);
    }
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|error| ClientError::UnexpectedReply {
        status,
        endpoint,
        // Not the error's text: it can quote values from the body, and bodies hold tokens.
        detail: format!("{:?} error at line {} column {}", error.classify(), error.line(), error.column()),
    })
}

/// The error a non-success response stands for: hearth's `{"error", "message"}` body as
/// [`ClientError::Api`], anything else as [`ClientError::UnexpectedReply`].
async fn error_from(endpoint: &'static str, response: Response) -> ClientError {
    let status = response.status();
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => return ClientError::Transport(error),
    };
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => ClientError::Api {
            status,
            code: body.error,
            message: body.message,
            fields: body.fields.unwrap_or_default(),
            retry_after: body.retry_after,
        },
        Err(_) => ClientError::UnexpectedReply { status, endpoint, detail: "no hearth error body".to_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_keeps_its_path_as_a_prefix() {
        let client = Client::new("http://example.org/hearth").expect("client");
        assert_eq!(client.url("api/me").as_str(), "http://example.org/hearth/api/me");
        let client = Client::new("https://example.org").expect("client");
        assert_eq!(client.url("auth/login").as_str(), "https://example.org/auth/login");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        for bad in ["example.org", "ftp://example.org", "mailto:ada@example.org", ""] {
            assert!(matches!(Client::new(bad), Err(ClientError::InvalidUrl(_))), "{bad}");
        }
    }
}
