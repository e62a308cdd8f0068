//! The network task: the only part of the client that talks to the server, through the SDK.
//!
//! It takes [`Command`]s from the interface and answers with [`Update`]s, so the interface
//! never waits on the network and never sees a key. It holds the session (REST client and
//! socket) and the account's [`Keyring`], which decides whose keys are used, encrypts, opens
//! and checks every message (docs/e2e.md, "What clients keep and refuse"): what it hands the
//! interface is plaintext with what the checks found, or why a message cannot be read.
//!
//! Every conversation is joined as soon as it is known (at sign-in and on
//! `new_conversation`), and the person's signed key is published then if it is not yet: so
//! others write to that key rather than to the person's identity, and typing and streamed
//! replies arrive for every conversation.
//!
//! Rooms (`room:{id}`) are joined the same way, at sign-in and when the person joins or makes
//! one. They are not end-to-end encrypted: their posts go to the server as plain text and come
//! back as [`Shown`] messages without any check. The interface names a room by its id like a
//! conversation, and this task sends what it asks for there to the room's channel.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hearth_client::api::{
    Client, ClientError, Conversation, Message, Post, PublicUser, Registration, Room, User, Visibility,
};
use hearth_client::channels::{
    self, AssistantDelta, ChannelError, Event, Events, Incoming, JoinedRoom, NewConversation, SYSTEM_TOPIC, Socket,
    SocketOptions,
};
use hearth_client::e2e::Flag;
use hearth_client::trust::{ContactState, Keyring, Notice, Opened, TrustError, TrustStore};
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::error::ChatError;
use super::session_file::{KeptSession, SessionFile};
use super::trust_file::{resolve, trust_file};

/// The device name sessions of this client get (`GET /api/devices` shows it).
const DEVICE_NAME: &str = "hearth chat";

/// At most this many pages of `GET /api/users` are read (50 each): enough to pick people
/// from on a self-hosted server, and bounded on a large one.
const MAX_USER_PAGES: usize = 20;

/// At most this many pages of `GET /api/rooms` are read (50 each), for the same reason.
const MAX_ROOM_PAGES: usize = 20;

/// Why nothing end-to-end can be read or sent while the person's security key does not open.
const IDENTITY_UNOPENABLE: &str = "your security key does not open with your password";

/// What the interface asks the network task to do.
pub enum Command {
    /// Register or log in.
    SignIn(SignIn),
    /// The person opened a conversation: make sure it is joined, and mark it read.
    Open(Uuid),
    /// The page of history before the oldest one shown.
    LoadOlder {
        /// The conversation.
        conversation_id: Uuid,
        /// The previous page's token.
        page_token: String,
    },
    /// Send a message (encrypted for each member; plain in the assistant conversation), or
    /// queue it until the connection is back.
    Send {
        /// The conversation.
        conversation_id: Uuid,
        /// The id the interface shows it under until the server has it.
        local: Uuid,
        /// What was written.
        text: String,
    },
    /// Replace the text of one of the person's own messages.
    Edit {
        /// The conversation.
        conversation_id: Uuid,
        /// The message group.
        group: Uuid,
        /// The new text.
        text: String,
    },
    /// Delete one of the person's own messages.
    Delete {
        /// The conversation.
        conversation_id: Uuid,
        /// The message group.
        group: Uuid,
    },
    /// Find people by display name or exact email (`GET /api/users?query=`).
    FindUsers(String),
    /// `start_typing` (true) or `finish_typing`.
    Typing {
        /// The conversation.
        conversation_id: Uuid,
        /// Started or finished.
        typing: bool,
    },
    /// Mark a conversation read now.
    MarkRead(Uuid),
    /// Open the private conversation with this user, starting it if there is none.
    StartPrivate(Uuid),
    /// Start a group with these users (the person is added by the server).
    StartGroup {
        /// The other members.
        user_ids: Vec<Uuid>,
        /// Its name.
        alias: Option<String>,
    },
    /// Open the assistant conversation, starting it on first use.
    OpenAssistant,
    /// Read the list of users again (someone new may have registered).
    RefreshUsers,
    /// The person compared safety numbers with this contact and they matched.
    MarkVerified(Uuid),
    /// The person accepts this contact's changed security key: sending to them resumes.
    AcceptSecurityKey(Uuid),
    /// Make a new key of the person's own for a conversation whose key does not open.
    ReplaceOwnKey(Uuid),
    /// Make a new security key (identity) for the person, whose stored one does not open.
    ReplaceIdentity,
    /// Read the rooms again: the person's and the public ones to browse.
    RefreshRooms,
    /// Join this public room and open it.
    JoinRoom(Uuid),
    /// Make a room (the person is its moderator) and open it.
    CreateRoom {
        /// Its name.
        name: String,
        /// Public (anyone may find and join it) or private.
        visibility: Visibility,
    },
    /// Leave this room.
    LeaveRoom(Uuid),
}

// Not derived: a sign-in holds the password.
impl fmt::Debug for Command {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::SignIn(sign_in) => formatter.debug_tuple("SignIn").field(sign_in).finish(),
            Command::Open(id) => formatter.debug_tuple("Open").field(id).finish(),
            Command::LoadOlder { conversation_id, .. } => {
                formatter.debug_struct("LoadOlder").field("conversation_id", conversation_id).finish_non_exhaustive()
            }
            Command::Send { conversation_id, local, .. } => formatter
                .debug_struct("Send")
                .field("conversation_id", conversation_id)
                .field("local", local)
                .finish_non_exhaustive(),
            Command::Edit { conversation_id, group, .. } => formatter
                .debug_struct("Edit")
                .field("conversation_id", conversation_id)
                .field("group", group)
                .finish_non_exhaustive(),
            Command::Delete { conversation_id, group } => formatter
                .debug_struct("Delete")
                .field("conversation_id", conversation_id)
                .field("group", group)
                .finish(),
            Command::FindUsers(_) => formatter.write_str("FindUsers"),
            Command::Typing { conversation_id, typing } => formatter
                .debug_struct("Typing")
                .field("conversation_id", conversation_id)
                .field("typing", typing)
                .finish(),
            Command::MarkRead(id) => formatter.debug_tuple("MarkRead").field(id).finish(),
            Command::StartPrivate(id) => formatter.debug_tuple("StartPrivate").field(id).finish(),
            Command::StartGroup { user_ids, .. } => {
                formatter.debug_struct("StartGroup").field("user_ids", user_ids).finish_non_exhaustive()
            }
            Command::OpenAssistant => formatter.write_str("OpenAssistant"),
            Command::RefreshUsers => formatter.write_str("RefreshUsers"),
            Command::MarkVerified(id) => formatter.debug_tuple("MarkVerified").field(id).finish(),
            Command::AcceptSecurityKey(id) => formatter.debug_tuple("AcceptSecurityKey").field(id).finish(),
            Command::ReplaceOwnKey(id) => formatter.debug_tuple("ReplaceOwnKey").field(id).finish(),
            Command::ReplaceIdentity => formatter.write_str("ReplaceIdentity"),
            Command::RefreshRooms => formatter.write_str("RefreshRooms"),
            Command::JoinRoom(id) => formatter.debug_tuple("JoinRoom").field(id).finish(),
            Command::CreateRoom { visibility, .. } => {
                formatter.debug_struct("CreateRoom").field("visibility", visibility).finish_non_exhaustive()
            }
            Command::LeaveRoom(id) => formatter.debug_tuple("LeaveRoom").field(id).finish(),
        }
    }
}

/// Register or log in. The password goes no further than the SDK, which derives the
/// `auth_secret` (what the server receives) and the wrap key from it; the network task keeps
/// it only when the account's security key does not open, to replace that key.
pub struct SignIn {
    /// A new account (true) or an existing one.
    pub register: bool,
    /// The email address.
    pub email: String,
    /// The password; zeroized when dropped.
    pub password: Zeroizing<String>,
    /// The display name of a new account.
    pub display_name: Option<String>,
    /// The invite code of a new account, on a server that takes new accounts by invitation.
    pub invite: Option<String>,
}

impl fmt::Debug for SignIn {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SignIn")
            .field("register", &self.register)
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A message as the interface shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// Its message group (what edits, deletes and duplicates are matched by).
    pub group: Uuid,
    /// Who sent it.
    pub sender: Uuid,
    /// The plaintext, or why it cannot be read.
    pub text: Result<String, String>,
    /// When the server says it was sent.
    pub at: DateTime<Utc>,
    /// Whether it was edited.
    pub edited: bool,
    /// What the checks found the server changed (empty for a genuine message).
    pub flags: Vec<Flag>,
    /// In the format from before authenticated headers: it could not be checked.
    pub unchecked: bool,
    /// When the sender's clock says it was sent, if that could be read.
    pub sent_at: Option<DateTime<Utc>>,
    /// For a message of the person's that the server does not have yet: how far it is.
    pub pending: Option<Pending>,
}

/// How far a message the person wrote is on its way to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Waiting for the connection to come back.
    Queued,
    /// Sent, not acknowledged yet.
    Sending,
}

/// The connection to the server, as the person sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Not signed in yet: nothing to connect.
    SignedOut,
    /// Signing in, or resuming the kept session.
    Connecting,
    /// Connected.
    Connected,
    /// The connection dropped; the socket is trying again.
    Reconnecting,
    /// The server cannot be reached: why, in words.
    Unreachable(String),
}

impl Shown {
    /// A room's post: plain text, nothing to check.
    pub fn post(post: &Post) -> Self {
        Self {
            group: post.id,
            sender: post.sender,
            text: Ok(post.text.clone()),
            at: post.inserted_at,
            edited: post.edited(),
            flags: Vec::new(),
            unchecked: false,
            sent_at: None,
            pending: None,
        }
    }

    /// A delivered copy as the keyring opened it.
    fn opened(message: &Message, opened: Opened) -> Self {
        Self {
            group: message.message_group,
            sender: message.sender,
            text: opened.text,
            at: message.inserted_at,
            edited: message.updated_at > message.inserted_at,
            flags: opened.flags,
            unchecked: opened.unchecked,
            sent_at: opened.sent_at,
            pending: None,
        }
    }
}

/// A contact's security state with their safety number, if they have a security key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// How far their security key is trusted.
    pub state: ContactState,
    /// The person's and their safety number: 12 groups of 5 digits.
    pub safety_number: Option<String>,
}

/// A conversation's state, fresh from a join.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The conversation.
    pub conversation: Conversation,
    /// Its members (the person included).
    pub members: Vec<Uuid>,
    /// The newest page of history, oldest first.
    pub messages: Vec<Shown>,
    /// The token of the page before it, if there is one.
    pub page_token: Option<String>,
    /// Messages from others the person has not read.
    pub unread: u64,
    /// The person's own key here does not open: nothing here can be read or sent until they
    /// make a new one.
    pub own_key_unopenable: bool,
    /// When each member last read it (`None`: never).
    pub read_times: BTreeMap<Uuid, Option<DateTime<Utc>>>,
    /// Up to when each member's devices have received it (`None`: never).
    pub delivered_times: BTreeMap<Uuid, Option<DateTime<Utc>>>,
    /// The room, when this is one (not end-to-end encrypted).
    pub room: Option<Room>,
    /// How many members the room has (its `members` are only the first hundred).
    pub member_count: Option<u64>,
}

/// Why a message was not sent (its text goes back to the person).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// These members' security keys changed and the person has not accepted the change.
    KeyChanged(Vec<Uuid>),
    /// These members have neither a signed key nor a security key to write to yet.
    Unreachable(Vec<Uuid>),
    /// The person's own key for the conversation does not open.
    OwnKeyUnopenable,
    /// The person's security key does not open with their password.
    IdentityUnopenable,
    /// Anything else (the server refused, the connection dropped): what happened.
    Failed(String),
}

impl From<TrustError> for Refusal {
    fn from(error: TrustError) -> Self {
        match error {
            TrustError::Blocked(users) => Refusal::KeyChanged(users),
            TrustError::Waiting(users) => Refusal::Unreachable(users),
            TrustError::OwnKeyUnopenable => Refusal::OwnKeyUnopenable,
            other => Refusal::Failed(other.to_string()),
        }
    }
}

/// What the network task tells the interface.
#[derive(Debug, Clone)]
pub enum Update {
    /// Signed in: who the person is, the users on the server, their conversations.
    SignedIn {
        /// The person.
        me: User,
        /// Users to pick from and to name senders by.
        users: Vec<PublicUser>,
        /// The person's conversations.
        conversations: Vec<Conversation>,
        /// The person's security key does not open with their password: nothing end-to-end
        /// can be read or sent until they replace it ([`Command::ReplaceIdentity`]).
        identity_unopenable: bool,
    },
    /// Signing in failed.
    SignInFailed(String),
    /// Who may sign up on the server (read before the sign-in form is used).
    Registration(Registration),
    /// The rooms as the server lists them now: the person's and the public ones to browse.
    Rooms(Vec<Room>),
    /// The person left this room.
    LeftRoom(Uuid),
    /// Someone joined a room (or was added to it).
    MemberJoined {
        /// The room.
        conversation_id: Uuid,
        /// Who.
        user_id: Uuid,
    },
    /// The users on the server, read again.
    Users(Vec<PublicUser>),
    /// The security state of these contacts now.
    Contacts(BTreeMap<Uuid, Contact>),
    /// Something about keys the person must be told.
    Notice(Notice),
    /// A conversation was joined (or joined again after a reconnect).
    Joined(Box<Joined>),
    /// An older page of history, oldest first.
    Older {
        /// The conversation.
        conversation_id: Uuid,
        /// The messages.
        messages: Vec<Shown>,
        /// The token of the page before, if any.
        page_token: Option<String>,
    },
    /// A new message (the person's own included).
    Message {
        /// The conversation.
        conversation_id: Uuid,
        /// The message.
        message: Shown,
    },
    /// The kept session is being resumed.
    Resuming,
    /// How the connection is now.
    Connection(Connection),
    /// Messages the person wrote wait for the connection.
    Queued {
        /// The conversation.
        conversation_id: Uuid,
        /// Their ids in the interface.
        locals: Vec<Uuid>,
    },
    /// A queued message is being sent now.
    Sending {
        /// The conversation.
        conversation_id: Uuid,
        /// Its id in the interface.
        local: Uuid,
    },
    /// A message the person wrote reached the server: it replaces the one shown as pending.
    Sent {
        /// The conversation.
        conversation_id: Uuid,
        /// Its id in the interface until now.
        local: Uuid,
        /// The message as stored.
        message: Shown,
    },
    /// A member read a conversation up to now.
    Read {
        /// The conversation.
        conversation_id: Uuid,
        /// Who.
        user_id: Uuid,
        /// When.
        read_at: Option<DateTime<Utc>>,
    },
    /// A member's devices received a conversation up to `delivered_at`.
    Delivered {
        /// The conversation.
        conversation_id: Uuid,
        /// Who.
        user_id: Uuid,
        /// Up to when.
        delivered_at: DateTime<Utc>,
    },
    /// People found by the picker's search, for `query`.
    Found {
        /// What was searched for.
        query: String,
        /// Who matches.
        users: Vec<PublicUser>,
    },
    /// An image the assistant made was fetched and saved.
    ImageSaved {
        /// Its address, as the message shows it.
        url: String,
        /// Where it was saved.
        path: PathBuf,
    },
    /// The session ended (this device was signed out): back to the sign-in form.
    SignedOut(String),
    /// A message the person wrote was not sent: its text, to give back to them.
    NotSent {
        /// Its id in the interface, if it was shown as pending.
        local: Option<Uuid>,
        /// The conversation it was for.
        conversation_id: Uuid,
        /// What they wrote.
        text: String,
        /// Why it was not sent.
        reason: Refusal,
    },
    /// A message was edited.
    Edited {
        /// The conversation.
        conversation_id: Uuid,
        /// The message as it is now.
        message: Shown,
    },
    /// A message was deleted.
    Deleted {
        /// The conversation.
        conversation_id: Uuid,
        /// Its message group.
        group: Uuid,
    },
    /// Someone started or stopped typing.
    Typing {
        /// The conversation.
        conversation_id: Uuid,
        /// Who.
        user_id: Uuid,
        /// Started or stopped.
        typing: bool,
    },
    /// A conversation's members or alias changed.
    Members {
        /// The conversation as it is now.
        conversation: Conversation,
        /// Its members now.
        members: Vec<Uuid>,
    },
    /// The person made a new key for a conversation whose key did not open.
    OwnKeyReplaced(Uuid),
    /// The person made a new security key; every conversation is joined again with it.
    IdentityReplaced,
    /// A group was renamed.
    Alias {
        /// The conversation.
        conversation_id: Uuid,
        /// Its new name.
        alias: Option<String>,
    },
    /// A member left a group.
    MemberLeft {
        /// The conversation.
        conversation_id: Uuid,
        /// Who.
        user_id: Uuid,
    },
    /// A room's last moderator left, and this member moderates it now.
    ModeratorAppointed {
        /// The room.
        conversation_id: Uuid,
        /// Who.
        user_id: Uuid,
    },
    /// A piece of the assistant's reply.
    Delta(AssistantDelta),
    /// Someone renamed themselves.
    DisplayName {
        /// Who.
        user_id: Uuid,
        /// The new name.
        display_name: String,
    },
    /// A presence event, for the interface's [`channels::Presence`].
    Presence(Event),
    /// Show this conversation (one the person just started or asked for).
    Open(Uuid),
    /// Something to tell the person.
    Info(String),
    /// Something that went wrong.
    Error(String),
}

/// Starts the network task for the server at `server`, keeping what it trusts and the
/// session under `config_dir` (see `trust_file.rs`, `session_file.rs`): commands go in,
/// updates come out. The task ends (closing the socket) when the command sender is dropped.
pub fn spawn(
    server: String,
    config_dir: Option<PathBuf>,
) -> (mpsc::UnboundedSender<Command>, mpsc::UnboundedReceiver<Update>, tokio::task::JoinHandle<()>) {
    let (commands, command_receiver) = mpsc::unbounded_channel();
    let (update_sender, updates) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(server, config_dir, command_receiver, update_sender));
    (commands, updates, task)
}

/// How long to wait before trying an unreachable server again.
const RETRY_UNREACHABLE: Duration = Duration::from_secs(2);

/// How often the connection's state is looked at (the socket reconnects by itself).
const CONNECTION_CHECK: Duration = Duration::from_millis(250);

/// How long after a send that got no answer (the server may be slow) it is tried again.
const RESEND_AFTER: Duration = Duration::from_secs(5);

async fn run(
    server: String,
    config_dir: Option<PathBuf>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    updates: mpsc::UnboundedSender<Update>,
) {
    let setup = Setup { server, config_dir, updates };
    let mut kept = setup.kept_session();
    loop {
        let session = match kept.take() {
            Some(kept) => setup.resume(kept, &mut commands).await,
            None => setup.sign_in(&mut commands).await,
        };
        let Some((session, events)) = session else { return };
        if !session.run(&mut commands, events).await {
            return;
        }
        // Signed out: back to the sign-in form.
    }
}

/// What starting a session needs.
struct Setup {
    server: String,
    config_dir: Option<PathBuf>,
    updates: mpsc::UnboundedSender<Update>,
}

impl Setup {
    fn send(&self, update: Update) {
        let _ = self.updates.send(update);
    }

    /// The session kept from an earlier run, if there is one that can be used.
    fn kept_session(&self) -> Option<KeptSession> {
        let loaded = SessionFile::new(self.config_dir.as_deref(), &self.server).and_then(|file| file.load());
        match loaded {
            Ok(kept) => kept,
            Err(error) => {
                self.send(Update::SignInFailed(format!("{error}: sign in again")));
                None
            }
        }
    }

    /// Waits for the person to sign in (until the interface goes away: `None`).
    async fn sign_in(&self, commands: &mut mpsc::UnboundedReceiver<Command>) -> Option<(Session, Events)> {
        // The sign-up form asks for an invite code, or says sign-up is closed, from this. A
        // server that cannot say (unreachable, or older) answers the sign-up itself.
        if let Ok(client) = Client::new(&self.server)
            && let Ok(registration) = client.registration().await
        {
            self.send(Update::Registration(registration));
        }
        loop {
            // Anything but a sign-in means nothing until signed in.
            let Command::SignIn(request) = commands.recv().await? else { continue };
            self.send(Update::Connection(Connection::Connecting));
            match Session::sign_in(self, request).await {
                Ok(signed_in) => return Some(signed_in),
                Err(error) => {
                    let text = match &error {
                        // Sign-up refused (closed, an invite code missing or wrong), a disabled
                        // account: the server's words, as it gives them.
                        ChatError::Api(ClientError::Api { status, message, .. }) if status.as_u16() == 403 => {
                            message.clone()
                        }
                        _ => error.describe(&self.server),
                    };
                    if error.unreachable() {
                        self.send(Update::Connection(Connection::Unreachable(text.clone())));
                    } else {
                        self.send(Update::Connection(Connection::SignedOut));
                    }
                    self.send(Update::SignInFailed(text));
                }
            }
        }
    }

    /// Resumes the kept session, trying again while the server cannot be reached; a session
    /// that has ended (signed out, revoked, expired) is forgotten and the person signs in.
    async fn resume(
        &self,
        kept: KeptSession,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Option<(Session, Events)> {
        self.send(Update::Resuming);
        self.send(Update::Connection(Connection::Connecting));
        loop {
            // Read again each time: a refresh that got through but whose answer was lost
            // has left the newest token in the file.
            let attempt = match SessionFile::new(self.config_dir.as_deref(), &self.server).and_then(|f| f.load()) {
                Ok(Some(newest)) => Session::resume(self, newest).await,
                _ => Session::resume(self, clone_kept(&kept)).await,
            };
            let error = match attempt {
                Ok(resumed) => return Some(resumed),
                Err(error) => error,
            };
            if error.unreachable() {
                self.send(Update::Connection(Connection::Unreachable(error.describe(&self.server))));
                // Quitting meanwhile ends the wait; other commands mean nothing yet.
                let retry = tokio::time::sleep(RETRY_UNREACHABLE);
                tokio::pin!(retry);
                loop {
                    tokio::select! {
                        () = &mut retry => break,
                        command = commands.recv() => { command.as_ref()?; }
                    }
                }
                continue;
            }
            let why = if error.needs_sign_in() {
                "your kept session has ended (this device was signed out): sign in again".to_owned()
            } else {
                format!("{}: sign in again", error.describe(&self.server))
            };
            if let Ok(file) = SessionFile::new(self.config_dir.as_deref(), &self.server) {
                let _ = file.remove();
            }
            self.send(Update::Connection(Connection::SignedOut));
            self.send(Update::SignInFailed(why));
            return self.sign_in(commands).await;
        }
    }
}

impl Setup {
    /// The keeper of this server's session file, told every refresh token `client` gets.
    fn keeper(&self, client: &mut Client) -> Result<Arc<Keeper>, ChatError> {
        let file = SessionFile::new(self.config_dir.as_deref(), &self.server)?;
        let keeper = Arc::new(Keeper {
            file,
            updates: self.updates.clone(),
            state: std::sync::Mutex::new(KeeperState::default()),
        });
        let kept = keeper.clone();
        client.keep_refresh_tokens(move |token| kept.token(token));
        Ok(keeper)
    }
}

/// A copy of a kept session (it holds secrets, so it is not `Clone`).
fn clone_kept(kept: &KeptSession) -> KeptSession {
    KeptSession { user_id: kept.user_id, refresh_token: kept.refresh_token.clone(), wrap_key: kept.wrap_key.clone() }
}

/// Keeps the session file up to date: every new refresh token the client gets is written
/// with the account and wrap key (which are known only once sign-in is done).
struct Keeper {
    file: SessionFile,
    updates: mpsc::UnboundedSender<Update>,
    state: std::sync::Mutex<KeeperState>,
}

#[derive(Default)]
struct KeeperState {
    account: Option<(Uuid, hearth_client::e2e::WrapKey)>,
    token: Option<Zeroizing<String>>,
}

impl Keeper {
    fn state(&self) -> std::sync::MutexGuard<'_, KeeperState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new refresh token.
    fn token(&self, token: &str) {
        let mut state = self.state();
        state.token = Some(Zeroizing::new(token.to_owned()));
        self.save(&state);
    }

    /// Sign-in is done: whose session it is, and its wrap key.
    fn account(&self, user: Uuid, wrap_key: hearth_client::e2e::WrapKey) {
        let mut state = self.state();
        state.account = Some((user, wrap_key));
        self.save(&state);
    }

    fn save(&self, state: &KeeperState) {
        let (Some((user, wrap_key)), Some(token)) = (&state.account, &state.token) else { return };
        if let Err(error) = self.file.save(*user, token, wrap_key) {
            let _ = self.updates.send(Update::Error(format!("{error}; you will have to sign in next time")));
        }
    }
}

/// A signed-in session.
struct Session {
    api: Arc<Client>,
    socket: Socket,
    me: Uuid,
    server: String,
    updates: mpsc::UnboundedSender<Update>,
    /// Where the session is kept between runs.
    session_file: SessionFile,
    /// The account's keys and pins; `None` while its security key does not open.
    keyring: Option<Keyring>,
    /// The sign-in's password, kept only while the security key does not open: replacing it
    /// needs the password, and the person is not asked a second time for it. Zeroized when
    /// dropped (once the key is replaced, or when the client quits).
    password: Option<Zeroizing<String>>,
    /// Where the keyring's pins are kept.
    trust_file: PathBuf,
    /// Where the assistant's images are saved.
    images_dir: PathBuf,
    /// The users known from `GET /api/users` (a conversation with someone else reads it again).
    known_users: HashSet<Uuid>,
    /// Each joined conversation's members (the person included).
    members: HashMap<Uuid, BTreeSet<Uuid>>,
    /// The copies (id and version) shown from each conversation since it was last joined. A
    /// copy can arrive twice: in a join's page and then as the `new_message` that was on its
    /// way meanwhile; it is shown once.
    checked: HashMap<Uuid, HashSet<(Uuid, DateTime<Utc>)>>,
    /// The joined conversations whose own key does not open.
    own_key_unopenable: HashSet<Uuid>,
    /// The unread counts `GET /api/conversations` gave at sign-in, used by the first join.
    listed_unread: HashMap<Uuid, u64>,
    /// Messages the person wrote that the server does not have yet, oldest first.
    outbox: VecDeque<Outbound>,
    /// When the front of the outbox was last tried.
    last_attempt: Option<tokio::time::Instant>,
    /// The images saved (or found saved) this run, by address.
    saved_images: HashSet<String>,
    /// The rooms the person is a member of: what the interface asks for there goes to the
    /// room's channel.
    rooms: HashSet<Uuid>,
    /// The rooms whose channel is joined.
    joined_rooms: HashSet<Uuid>,
}

/// A message on its way to the server.
struct Outbound {
    conversation_id: Uuid,
    local: Uuid,
    text: String,
    /// Sealed at the first attempt, and sent as it is at every next one: its message group
    /// is its `client_msg_id`, so a resend after a lost reply is not stored twice.
    sealed: Option<hearth_client::trust::Outgoing>,
}

/// Why a message did not go out.
enum Undelivered {
    /// The connection is not there: it waits.
    Disconnected,
    /// It cannot be sent: its text goes back.
    Refused(Refusal),
}

impl Session {
    /// Signs in with the password.
    async fn sign_in(setup: &Setup, request: SignIn) -> Result<(Self, Events), ChatError> {
        let mut client = Client::new(&setup.server)?;
        let keeper = setup.keeper(&mut client)?;
        let SignIn { register, email, password, display_name, invite } = request;
        let signed_in = if register {
            client
                .register_with_invite(
                    email.trim(),
                    &password,
                    display_name.as_deref(),
                    Some(DEVICE_NAME),
                    invite.as_deref(),
                )
                .await?
        } else {
            client.login(email.trim(), &password, Some(DEVICE_NAME)).await?
        };
        Self::start(setup, client, keeper, signed_in.user, Some(password)).await
    }

    /// Resumes a kept session: the same device, no password.
    async fn resume(setup: &Setup, kept: KeptSession) -> Result<(Self, Events), ChatError> {
        let mut client = Client::new(&setup.server)?;
        let keeper = setup.keeper(&mut client)?;
        // Known already: the refresh token that replaces the kept one is kept at once (the
        // kept one is spent, and presenting it again would sign the device out).
        keeper.account(kept.user_id, kept.wrap_key.clone());
        let signed_in = client.resume(&kept.refresh_token, kept.wrap_key.clone()).await?;
        if signed_in.user.id != kept.user_id {
            return Err(ChatError::Refused("the kept session is another account's".to_owned()));
        }
        Self::start(setup, client, keeper, signed_in.user, None).await
    }

    /// Opens the keyring, connects the socket, joins the person's topics, reports who they
    /// are and then joins every conversation.
    async fn start(
        setup: &Setup,
        client: Client,
        keeper: Arc<Keeper>,
        user: User,
        password: Option<Zeroizing<String>>,
    ) -> Result<(Self, Events), ChatError> {
        let me = user.id;
        let trust_file = trust_file(setup.config_dir.as_deref(), &setup.server, me)?;
        let images_dir = resolve(setup.config_dir.as_deref())?.join("images");
        let keyring = match client.keyring(TrustStore::open(&trust_file)?) {
            Ok(keyring) => Some(keyring),
            // Signed in all the same: the person sees their conversations, is told, and can
            // make a new security key.
            Err(ClientError::IdentityUnopenable) => None,
            Err(error) => return Err(error.into()),
        };
        let password = if keyring.is_none() { password } else { None };
        let wrap_key = client.wrap_key().cloned().ok_or(ClientError::NotSignedIn)?;
        let api = Arc::new(client);
        let socket = Socket::connect_with_client(&setup.server, api.clone(), SocketOptions::default()).await?;
        // Subscribed before joining, so the first presence_state is not missed.
        let events = socket.events();
        socket.join(&channels::user_topic(me), json!({})).await?;
        socket.join(SYSTEM_TOPIC, json!({})).await?;
        // Kept only once everything worked: a sign-in that failed halfway keeps nothing.
        keeper.account(me, wrap_key);
        let mut session = Self {
            api,
            socket,
            me,
            server: setup.server.clone(),
            updates: setup.updates.clone(),
            session_file: keeper.file.clone(),
            keyring,
            password,
            trust_file,
            images_dir,
            known_users: HashSet::new(),
            members: HashMap::new(),
            checked: HashMap::new(),
            own_key_unopenable: HashSet::new(),
            listed_unread: HashMap::new(),
            outbox: VecDeque::new(),
            last_attempt: None,
            saved_images: HashSet::new(),
            rooms: HashSet::new(),
            joined_rooms: HashSet::new(),
        };
        let users = session.read_users().await?;
        let conversations = session.api.conversations().await?;
        session.listed_unread = conversations.iter().map(|c| (c.id, c.unread)).collect();
        session.send(Update::SignedIn {
            me: user,
            users: users.clone(),
            conversations: conversations.clone(),
            identity_unopenable: session.keyring.is_none(),
        });
        session.send(Update::Connection(Connection::Connected));
        // After `SignedIn`, so that what changed while the person was away is the last word.
        session.learn_identities(&users)?;
        for conversation in conversations {
            let joined = session.join(conversation.id).await;
            session.report(joined);
        }
        let rooms = session.read_rooms().await;
        session.report(rooms);
        Ok((session, events))
    }

    /// Serves commands and events until the interface goes away (false) or the session
    /// ends (true: the person signs in again).
    async fn run(mut self, commands: &mut mpsc::UnboundedReceiver<Command>, mut events: Events) -> bool {
        let mut connected = true;
        let mut shown = Connection::Connected;
        let mut check = tokio::time::interval(CONNECTION_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let signed_out = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        let done = self.command(command).await;
                        self.report(done);
                    }
                    None => break false,
                },
                event = events.recv(), if connected => match event {
                    Ok(event) => {
                        let done = self.event(event).await;
                        self.report(done);
                    }
                    Err(ChannelError::Lagged { .. }) => {
                        let done = self.catch_up().await;
                        self.report(done);
                    }
                    Err(error) => {
                        connected = false;
                        // Closed for good: most likely this device was signed out.
                        match self.api.me().await {
                            Err(me) if me.needs_sign_in() => break true,
                            _ => self.send(Update::Error(format!("disconnected ({error}): quit and start again"))),
                        }
                    }
                },
                _ = check.tick() => {
                    let now = if self.socket.is_closed() {
                        Connection::Unreachable("disconnected".to_owned())
                    } else if self.socket.is_reconnecting() {
                        Connection::Reconnecting
                    } else {
                        Connection::Connected
                    };
                    if now != shown {
                        shown = now.clone();
                        self.send(Update::Connection(now));
                    }
                    let stalled = self.last_attempt.is_none_or(|at| at.elapsed() >= RESEND_AFTER);
                    if shown == Connection::Connected && !self.outbox.is_empty() && stalled {
                        self.flush().await;
                    }
                }
            }
        };
        if signed_out {
            let _ = self.session_file.remove();
            self.send(Update::Connection(Connection::SignedOut));
            self.send(Update::SignedOut("this device was signed out: sign in again".to_owned()));
        }
        self.socket.close().await;
        signed_out
    }

    fn send(&self, update: Update) {
        // The interface is gone only when the client is quitting.
        let _ = self.updates.send(update);
    }

    fn report(&self, done: Result<(), ChatError>) {
        match done {
            // The connection's state is always shown: a call it refused needs no word.
            Ok(()) | Err(ChatError::Channel(ChannelError::Reconnecting)) => {}
            Err(error) => self.send(Update::Error(error.describe(&self.server))),
        }
    }

    /// The keyring, or why there is none.
    fn keyring(&mut self) -> Result<&mut Keyring, ChatError> {
        self.keyring
            .as_mut()
            .ok_or_else(|| ChatError::Refused(format!("{IDENTITY_UNOPENABLE}: make a new one first (Ctrl-K, then r)")))
    }

    async fn command(&mut self, command: Command) -> Result<(), ChatError> {
        match command {
            // Already signed in.
            Command::SignIn(_) => Ok(()),
            Command::Open(id) if self.rooms.contains(&id) => {
                if !self.joined_rooms.contains(&id) {
                    self.join_room(id).await?;
                }
                self.socket.read_room(id).await?;
                Ok(())
            }
            Command::LoadOlder { conversation_id, page_token } if self.rooms.contains(&conversation_id) => {
                let page = self.api.room_messages(conversation_id, Some(&page_token)).await?;
                let messages = page.items.iter().rev().map(Shown::post).collect();
                self.send(Update::Older { conversation_id, messages, page_token: page.page_token });
                Ok(())
            }
            Command::Edit { conversation_id, group, text } if self.rooms.contains(&conversation_id) => {
                self.socket.edit_post(conversation_id, group, &text).await?;
                self.send(Update::Info("edited".to_owned()));
                Ok(())
            }
            Command::Delete { conversation_id, group } if self.rooms.contains(&conversation_id) => {
                self.socket.delete_post(conversation_id, group).await?;
                self.send(Update::Deleted { conversation_id, group });
                self.send(Update::Info("deleted".to_owned()));
                Ok(())
            }
            Command::Typing { conversation_id, typing } if self.rooms.contains(&conversation_id) => {
                self.socket.room_typing(conversation_id, typing).await?;
                Ok(())
            }
            Command::MarkRead(id) if self.rooms.contains(&id) => {
                self.socket.read_room(id).await?;
                Ok(())
            }
            Command::RefreshRooms => self.read_rooms().await,
            Command::JoinRoom(id) => {
                let room = self.api.join_room(id).await?;
                self.rooms.insert(id);
                self.join_room(id).await?;
                self.send(Update::Info(format!("you joined {}", room.name)));
                self.send(Update::Open(id));
                Ok(())
            }
            Command::CreateRoom { name, visibility } => {
                let room = self.api.create_room(&name, None, visibility).await?;
                self.rooms.insert(room.id);
                self.join_room(room.id).await?;
                self.send(Update::Open(room.id));
                Ok(())
            }
            Command::LeaveRoom(id) => {
                self.api.leave_room(id).await?;
                self.rooms.remove(&id);
                self.joined_rooms.remove(&id);
                self.outbox.retain(|outbound| outbound.conversation_id != id);
                self.send(Update::LeftRoom(id));
                Ok(())
            }
            Command::Open(id) => {
                if !self.members.contains_key(&id) {
                    self.join(id).await?;
                }
                self.socket.read_conversation(id).await?;
                Ok(())
            }
            Command::LoadOlder { conversation_id, page_token } => {
                let page = self.api.messages(conversation_id, Some(&page_token)).await?;
                let oldest_first: Vec<Message> = page.items.into_iter().rev().collect();
                let messages = self.open_page(conversation_id, &oldest_first, false);
                self.send(Update::Older { conversation_id, messages, page_token: page.page_token });
                Ok(())
            }
            Command::Send { conversation_id, local, text } => {
                self.outbox.push_back(Outbound { conversation_id, local, text, sealed: None });
                self.flush().await;
                Ok(())
            }
            Command::Edit { conversation_id, group, text } => {
                let keyring = self.keyring()?;
                if keyring.plaintext_allowed(conversation_id) {
                    return Err(ChatError::Refused("messages to the assistant cannot be edited".to_owned()));
                }
                let outgoing = keyring
                    .seal(conversation_id, &text, Some(group))
                    .map_err(|error| ChatError::Refused(format!("not edited: {error}")))?;
                self.socket.edit_message(conversation_id, group, &outgoing.copies).await?;
                self.send(Update::Info("edited".to_owned()));
                Ok(())
            }
            Command::Delete { conversation_id, group } => {
                self.socket.delete_message(conversation_id, group).await?;
                self.send(Update::Deleted { conversation_id, group });
                self.send(Update::Info("deleted".to_owned()));
                Ok(())
            }
            Command::FindUsers(query) => {
                let users = self.api.users(Some(&query), None).await?.items;
                self.known_users.extend(users.iter().map(|user| user.id));
                self.learn_identities(&users)?;
                self.send(Update::Found { query, users });
                Ok(())
            }
            Command::Typing { conversation_id, typing } => {
                self.socket.typing(conversation_id, typing).await?;
                Ok(())
            }
            Command::MarkRead(id) => {
                self.socket.read_conversation(id).await?;
                Ok(())
            }
            Command::StartPrivate(other) => self.start_private(other).await,
            Command::StartGroup { user_ids, alias } => self.start_group(&user_ids, alias.as_deref()).await,
            Command::OpenAssistant => {
                let started = self.socket.start_assistant_conversation().await?;
                let id = started.conversation.id;
                if !self.members.contains_key(&id) {
                    self.join(id).await?;
                }
                self.send(Update::Open(id));
                Ok(())
            }
            Command::RefreshUsers => {
                let users = self.read_users().await?;
                self.send(Update::Users(users.clone()));
                self.learn_identities(&users)
            }
            Command::MarkVerified(user) => {
                self.keyring()?.mark_verified(user)?;
                self.report_contacts([user]);
                Ok(())
            }
            Command::AcceptSecurityKey(user) => {
                self.keyring()?.acknowledge(user)?;
                self.report_contacts([user]);
                Ok(())
            }
            Command::ReplaceOwnKey(id) => {
                let keys = self.keyring()?.replace_own_key(id)?;
                self.socket.set_encryption_keys(id, &keys.public_key, &keys.private_key).await?;
                self.own_key_unopenable.remove(&id);
                self.send(Update::OwnKeyReplaced(id));
                Ok(())
            }
            Command::ReplaceIdentity => self.replace_identity().await,
        }
    }

    async fn event(&mut self, event: Event) -> Result<(), ChatError> {
        let Some(incoming) = Incoming::parse(&event) else { return Ok(()) };
        match incoming {
            Incoming::NewPost(post) if self.joined_rooms.contains(&post.room_id) => {
                self.send(Update::Message { conversation_id: post.room_id, message: Shown::post(&post) });
            }
            Incoming::PostEdited(post) if self.joined_rooms.contains(&post.room_id) => {
                self.send(Update::Edited { conversation_id: post.room_id, message: Shown::post(&post) });
            }
            Incoming::PostDeleted { room_id, message_id } => {
                self.send(Update::Deleted { conversation_id: room_id, group: message_id });
            }
            Incoming::RoomTyping { room_id, user_id, typing } if user_id != self.me => {
                self.send(Update::Typing { conversation_id: room_id, user_id, typing });
            }
            Incoming::RoomMemberJoined { room_id, user_id } => {
                if !self.known_users.contains(&user_id) {
                    let users = self.read_users().await?;
                    self.send(Update::Users(users));
                }
                self.send(Update::MemberJoined { conversation_id: room_id, user_id });
            }
            Incoming::RoomMemberLeft { room_id, user_id } if user_id == self.me => {
                // Left on another device.
                self.rooms.remove(&room_id);
                self.joined_rooms.remove(&room_id);
                self.send(Update::LeftRoom(room_id));
            }
            Incoming::RoomMemberLeft { room_id, user_id } => {
                self.send(Update::MemberLeft { conversation_id: room_id, user_id });
            }
            Incoming::RoomModeratorAppointed { room_id, user_id } => {
                self.send(Update::ModeratorAppointed { conversation_id: room_id, user_id });
            }
            Incoming::RoomAssistantDelta(delta) => {
                // The interface streams it like a reply in the assistant conversation.
                self.send(Update::Delta(AssistantDelta {
                    conversation_id: delta.room_id,
                    reply_id: delta.reply_id,
                    prompt_group: delta.prompt_id,
                    index: delta.index,
                    delta: delta.delta,
                }));
            }
            Incoming::Presence => self.send(Update::Presence(event)),
            Incoming::NewConversation(new) => self.new_conversation(new).await?,
            // Made, joined (here or on another device) or added by a moderator: the list is
            // read again and the new room's channel joined.
            Incoming::NewRoom(room) if !self.joined_rooms.contains(&room.id) => self.read_rooms().await?,
            Incoming::NewMessage(delivered) => {
                let conversation_id = delivered.conversation_id;
                if delivered.message.sender != self.me {
                    self.delivered(conversation_id).await?;
                }
                if let Some(message) = self.open_live(conversation_id, &delivered.message).await? {
                    self.save_images(conversation_id, std::slice::from_ref(&message)).await;
                    self.send(Update::Message { conversation_id, message });
                }
            }
            Incoming::Read { conversation_id, user_id, read_at } => {
                self.send(Update::Read { conversation_id, user_id, read_at });
            }
            Incoming::Delivered { conversation_id, user_id, delivered_at } => {
                self.send(Update::Delivered { conversation_id, user_id, delivered_at });
            }
            Incoming::EditMessage(delivered) => {
                let conversation_id = delivered.conversation_id;
                if let Some(message) = self.open_live(conversation_id, &delivered.message).await? {
                    self.send(Update::Edited { conversation_id, message });
                }
            }
            Incoming::DeleteMessage { conversation_id, message_group_id } => {
                self.send(Update::Deleted { conversation_id, group: message_group_id });
            }
            Incoming::Typing { conversation_id, user_id, typing } if user_id != self.me => {
                self.send(Update::Typing { conversation_id, user_id, typing });
            }
            Incoming::KeysSet { conversation_id, user_id, public_key } => {
                if let Some(notice) = self
                    .keyring
                    .as_mut()
                    .and_then(|keyring| keyring.member_key_set(conversation_id, user_id, &public_key))
                {
                    self.notice(notice);
                }
            }
            Incoming::IdentityKey { user_id, identity_key, .. } => {
                if let Some(keyring) = self.keyring.as_mut() {
                    let notice = keyring.learn_identity(user_id, Some(&identity_key))?;
                    self.report_contacts([user_id]);
                    if let Some(notice) = notice {
                        self.notice(notice);
                    }
                }
            }
            Incoming::AliasChanged { conversation_id, alias } => self.send(Update::Alias { conversation_id, alias }),
            Incoming::MemberLeft { conversation_id, user_id } => {
                if let Some(members) = self.members.get_mut(&conversation_id) {
                    members.remove(&user_id);
                    let members = members.clone();
                    if let Some(keyring) = self.keyring.as_mut() {
                        keyring.members_changed(conversation_id, members);
                    }
                }
                self.send(Update::MemberLeft { conversation_id, user_id });
            }
            Incoming::AssistantDelta(delta) => self.send(Update::Delta(delta)),
            Incoming::DisplayName { user_id, display_name } => {
                self.send(Update::DisplayName { user_id, display_name });
            }
            Incoming::Reconnected { .. } => {
                self.send(Update::Connection(Connection::Connected));
                let caught_up = self.catch_up().await;
                // What waited for the connection goes out now, in order.
                self.flush().await;
                caught_up?;
            }
            // Typing of one's own, read receipts, closed channels: nothing to show.
            _ => {}
        }
        Ok(())
    }

    /// A message that just arrived, opened and checked; `None` when a join reported it
    /// instead (in its page).
    async fn open_live(&mut self, conversation_id: Uuid, message: &Message) -> Result<Option<Shown>, ChatError> {
        if !self.members.contains_key(&conversation_id) {
            // Not joined yet: the join's page holds the message.
            self.join(conversation_id).await?;
            return Ok(None);
        }
        if !self.checked.entry(conversation_id).or_default().insert((message.id, message.updated_at)) {
            // Already shown, from the join's page.
            return Ok(None);
        }
        let Some(keyring) = self.keyring.as_mut() else {
            return Ok(Some(Shown::opened(message, unreadable(IDENTITY_UNOPENABLE))));
        };
        let opened = keyring.open(conversation_id, message);
        if opened.text.is_err() && message.sender != self.me && !self.own_key_unopenable.contains(&conversation_id) {
            // Most likely the sender set a key while this client missed it (between a join's
            // reply and its subscription): the join's page opens it with the keys as they are.
            self.join(conversation_id).await?;
            return Ok(None);
        }
        Ok(Some(Shown::opened(message, opened)))
    }

    /// Tells the server this device has everything in `conversation_id` up to now: the
    /// senders see their messages delivered.
    async fn delivered(&self, conversation_id: Uuid) -> Result<(), ChatError> {
        self.socket.delivered_conversation(self.me, conversation_id).await?;
        Ok(())
    }

    /// A page of history, oldest first, opened and checked.
    fn open_page(&mut self, conversation_id: Uuid, oldest_first: &[Message], joined_page: bool) -> Vec<Shown> {
        let opened = match self.keyring.as_mut() {
            Some(keyring) => keyring.open_page(conversation_id, oldest_first, joined_page),
            None => oldest_first.iter().map(|_| unreadable(IDENTITY_UNOPENABLE)).collect(),
        };
        oldest_first.iter().zip(opened).map(|(message, opened)| Shown::opened(message, opened)).collect()
    }

    /// Sends what waits in the outbox, oldest first, until it is empty or the connection is
    /// not there (then what is left is shown as queued).
    async fn flush(&mut self) {
        while let Some(mut outbound) = self.outbox.pop_front() {
            let (conversation_id, local) = (outbound.conversation_id, outbound.local);
            if self.socket.is_reconnecting() {
                self.outbox.push_front(outbound);
                break;
            }
            self.last_attempt = Some(tokio::time::Instant::now());
            self.send(Update::Sending { conversation_id, local });
            match self.deliver(&mut outbound).await {
                Ok(message) => self.send(Update::Sent { conversation_id, local, message }),
                Err(Undelivered::Disconnected) => {
                    self.outbox.push_front(outbound);
                    break;
                }
                Err(Undelivered::Refused(reason)) => {
                    let text = std::mem::take(&mut outbound.text);
                    self.send(Update::NotSent { local: Some(local), conversation_id, text, reason });
                }
            }
        }
        let mut queued: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        for outbound in &self.outbox {
            queued.entry(outbound.conversation_id).or_default().push(outbound.local);
        }
        for (conversation_id, locals) in queued {
            self.send(Update::Queued { conversation_id, locals });
        }
    }

    /// Sends a message: a room's post as plain text; in a conversation, plain text only
    /// where the keyring allows it (the assistant's conversation), else one copy per member,
    /// sealed (once: a resend sends the same copies under the same message group). What the
    /// server stored, as the interface shows it.
    async fn deliver(&mut self, outbound: &mut Outbound) -> Result<Shown, Undelivered> {
        let failed = |error: ChannelError| match error {
            ChannelError::Reconnecting | ChannelError::Timeout => Undelivered::Disconnected,
            other => Undelivered::Refused(Refusal::Failed(other.to_string())),
        };
        if self.rooms.contains(&outbound.conversation_id) {
            // The interface's id for it is its `client_msg_id`: a resend after a lost reply is
            // answered with the post already stored.
            let client_msg_id = outbound.local.to_string();
            let post = self
                .socket
                .post(outbound.conversation_id, &outbound.text, Some(&client_msg_id))
                .await
                .map_err(failed)?;
            return Ok(Shown::post(&post));
        }
        let stored = self.deliver_message(outbound).await?;
        // Shown at once; the copy that arrives on the user topic is the same message group,
        // opened and checked.
        Ok(Shown {
            group: stored.message_group,
            sender: self.me,
            text: Ok(outbound.text.clone()),
            at: stored.inserted_at,
            edited: false,
            flags: Vec::new(),
            unchecked: false,
            sent_at: None,
            pending: None,
        })
    }

    /// Encrypts and sends a message in a conversation (see [`deliver`](Self::deliver)).
    async fn deliver_message(&mut self, outbound: &mut Outbound) -> Result<Message, Undelivered> {
        let conversation_id = outbound.conversation_id;
        let keyring = self.keyring.as_mut().ok_or(Undelivered::Refused(Refusal::IdentityUnopenable))?;
        let failed = |error: ChannelError| match error {
            ChannelError::Reconnecting | ChannelError::Timeout => Undelivered::Disconnected,
            other => Undelivered::Refused(Refusal::Failed(other.to_string())),
        };
        if keyring.plaintext_allowed(conversation_id) {
            return self.socket.send_prompt(conversation_id, self.me, &outbound.text).await.map_err(failed);
        }
        if outbound.sealed.is_none() {
            let sealed =
                keyring.seal(conversation_id, &outbound.text, None).map_err(|e| Undelivered::Refused(e.into()))?;
            outbound.sealed = Some(sealed);
        }
        let sealed = outbound.sealed.as_ref().expect("sealed above");
        self.socket.send_message(conversation_id, Some(sealed.message_group_id), &sealed.copies).await.map_err(failed)
    }

    /// Tells the interface what the keyring found.
    fn notice(&self, notice: Notice) {
        // A changed security key makes every key its owner signed before refused: the change
        // is what the person must hear about, not each of its consequences.
        if let Notice::KeyRefused { user, .. } = notice
            && self
                .keyring
                .as_ref()
                .is_some_and(|keyring| matches!(keyring.contact_state(user), ContactState::Changed { .. }))
        {
            return;
        }
        self.send(Update::Notice(notice));
    }

    /// Reports the security state of `users` (the person excepted).
    fn report_contacts(&self, users: impl IntoIterator<Item = Uuid>) {
        let Some(keyring) = &self.keyring else { return };
        let contacts: BTreeMap<Uuid, Contact> = users
            .into_iter()
            .filter(|user| *user != self.me)
            .map(|user| {
                (user, Contact { state: keyring.contact_state(user), safety_number: keyring.safety_number(user) })
            })
            .collect();
        if !contacts.is_empty() {
            self.send(Update::Contacts(contacts));
        }
    }

    /// Feeds the identities the user list publishes to the keyring (pinning the new ones,
    /// noticing changes), and reports them.
    fn learn_identities(&mut self, users: &[PublicUser]) -> Result<(), ChatError> {
        let Some(keyring) = self.keyring.as_mut() else { return Ok(()) };
        let mut notices = Vec::new();
        for user in users {
            notices.extend(keyring.learn_identity(user.id, user.identity_key.as_ref())?);
        }
        self.report_contacts(users.iter().map(|user| user.id));
        for notice in notices {
            self.notice(notice);
        }
        Ok(())
    }

    /// A conversation started (or its members changed): join it, or note its members.
    async fn new_conversation(&mut self, new: NewConversation) -> Result<(), ChatError> {
        if new.user_ids.iter().any(|user| !self.known_users.contains(user)) {
            let users = self.read_users().await?;
            self.send(Update::Users(users.clone()));
            self.learn_identities(&users)?;
        }
        let id = new.conversation.id;
        if !self.members.contains_key(&id) {
            return self.join(id).await;
        }
        let members: BTreeSet<Uuid> = new.user_ids.iter().copied().chain([self.me]).collect();
        if let Some(keyring) = self.keyring.as_mut() {
            keyring.members_changed(id, members.iter().copied());
        }
        self.report_contacts(members.iter().copied());
        self.members.insert(id, members);
        self.send(Update::Members { conversation: new.conversation, members: new.user_ids });
        Ok(())
    }

    /// After a reconnect, missed events or a new security key: every conversation joined
    /// again (fresh history), and any started meanwhile joined for the first time.
    async fn catch_up(&mut self) -> Result<(), ChatError> {
        let users = self.read_users().await?;
        self.send(Update::Users(users.clone()));
        self.learn_identities(&users)?;
        let conversations = self.api.conversations().await?;
        for conversation in conversations {
            let joined = self.join(conversation.id).await;
            self.report(joined);
        }
        self.joined_rooms.clear();
        self.read_rooms().await
    }

    /// Reads the rooms (the person's and the public ones, up to [`MAX_ROOM_PAGES`] pages),
    /// reports them, and joins the channel of each of the person's rooms not joined yet.
    async fn read_rooms(&mut self) -> Result<(), ChatError> {
        let mut rooms = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_ROOM_PAGES {
            let page = self.api.rooms(token.as_deref()).await?;
            rooms.extend(page.items);
            token = page.page_token;
            if token.is_none() {
                break;
            }
        }
        self.rooms = rooms.iter().filter(|room| room.joined).map(|room| room.id).collect();
        self.joined_rooms.retain(|id| self.rooms.contains(id));
        let to_join: Vec<Uuid> = self.rooms.iter().filter(|id| !self.joined_rooms.contains(id)).copied().collect();
        self.send(Update::Rooms(rooms));
        for id in to_join {
            let joined = self.join_room(id).await;
            self.report(joined);
        }
        Ok(())
    }

    /// Joins a room's channel and reports its state: the room, its members, its newest posts.
    async fn join_room(&mut self, id: Uuid) -> Result<(), ChatError> {
        let JoinedRoom { room, members, member_count, messages: page } = self.socket.join_room(id).await?;
        self.joined_rooms.insert(id);
        if members.iter().any(|member| !self.known_users.contains(&member.user_id)) {
            let users = self.read_users().await?;
            self.send(Update::Users(users));
        }
        let read_at = members.iter().find(|member| member.user_id == self.me).and_then(|member| member.read_at);
        let unread = page
            .items
            .iter()
            .filter(|post| post.sender != self.me && read_at.is_none_or(|read_at| post.inserted_at > read_at))
            .count() as u64;
        self.send(Update::Joined(Box::new(Joined {
            conversation: room_entry(&room),
            members: members.iter().map(|member| member.user_id).collect(),
            messages: page.items.iter().rev().map(Shown::post).collect(),
            page_token: page.page_token,
            unread,
            own_key_unopenable: false,
            read_times: members.iter().map(|member| (member.user_id, member.read_at)).collect(),
            delivered_times: BTreeMap::new(),
            room: Some(room),
            member_count: Some(member_count),
        })));
        Ok(())
    }

    /// Every user on the server (up to [`MAX_USER_PAGES`] pages).
    async fn read_users(&mut self) -> Result<Vec<PublicUser>, ChatError> {
        let mut users = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_USER_PAGES {
            let page = self.api.users(None, token.as_deref()).await?;
            users.extend(page.items);
            token = page.page_token;
            if token.is_none() {
                break;
            }
        }
        self.known_users.extend(users.iter().map(|user| user.id));
        Ok(users)
    }

    /// Joins a conversation: the keyring takes the members' identities and keys and the
    /// person's own key (publishing it signed if it is not yet), opens the history page, and
    /// the state is reported with what the person must be told.
    async fn join(&mut self, id: Uuid) -> Result<(), ChatError> {
        let joined = self.socket.join_conversation(id).await?;
        let mut members: BTreeSet<Uuid> = joined.read_times.keys().copied().collect();
        members.insert(self.me);
        let notices = match self.keyring.as_mut() {
            Some(keyring) => {
                let joining = keyring.join(&joined)?;
                if let Some(keys) = &joining.publish {
                    self.socket.set_encryption_keys(id, &keys.public_key, &keys.private_key).await?;
                }
                joining.notices
            }
            None => Vec::new(),
        };
        let own_key_unopenable = notices.contains(&Notice::OwnKeyUnopenable { conversation: id });
        if own_key_unopenable {
            self.own_key_unopenable.insert(id);
        } else {
            self.own_key_unopenable.remove(&id);
        }
        self.members.insert(id, members.clone());
        let oldest_first: Vec<Message> = joined.messages.items.iter().rev().cloned().collect();
        let messages = self.open_page(id, &oldest_first, true);
        self.save_images(id, &messages).await;
        self.checked.insert(id, oldest_first.iter().map(|message| (message.id, message.updated_at)).collect());
        // Read time `None`: never read, so everything from others is new.
        let read_at = joined.read_times.get(&self.me).copied().flatten();
        let unread_on_page = joined
            .messages
            .items
            .iter()
            .filter(|m| m.sender != self.me && read_at.is_none_or(|read_at| m.inserted_at > read_at))
            .count() as u64;
        // The server's count covers the whole history, the page's only its last 50; it is
        // stale after the first join, so it is used once.
        let unread = unread_on_page.max(self.listed_unread.remove(&id).unwrap_or(0));
        self.report_contacts(members.iter().copied());
        self.send(Update::Joined(Box::new(Joined {
            conversation: joined.conversation,
            members: members.into_iter().collect(),
            messages,
            page_token: joined.messages.page_token,
            unread,
            own_key_unopenable,
            read_times: joined.read_times,
            delivered_times: joined.delivered_times,
            room: None,
            member_count: None,
        })));
        if unread > 0 {
            // Received while away: the senders see it delivered.
            self.delivered(id).await?;
        }
        // After `Joined`, so the interface can name the conversation.
        for notice in notices {
            self.notice(notice);
        }
        Ok(())
    }

    async fn start_private(&mut self, other: Uuid) -> Result<(), ChatError> {
        let existing = self.api.private_conversation_with(other).await?;
        let id = match existing {
            Some(existing) => existing,
            None => {
                let keys = self.keyring()?.start_conversation()?;
                self.socket
                    .start_private_conversation(keys.conversation_id, other, &keys.public_key, &keys.private_key)
                    .await?
                    .conversation
                    .id
            }
        };
        if !self.members.contains_key(&id) {
            self.join(id).await?;
        }
        self.send(Update::Open(id));
        Ok(())
    }

    async fn start_group(&mut self, user_ids: &[Uuid], alias: Option<&str>) -> Result<(), ChatError> {
        let keys = self.keyring()?.start_conversation()?;
        let started = self
            .socket
            .start_group_conversation(keys.conversation_id, user_ids, alias, &keys.public_key, &keys.private_key)
            .await?;
        let id = started.conversation.id;
        if !self.members.contains_key(&id) {
            self.join(id).await?;
        }
        self.send(Update::Open(id));
        Ok(())
    }

    /// Replaces the person's security key, which does not open with their password, with a
    /// new one (contacts see it as changed), and joins everything again with it.
    async fn replace_identity(&mut self) -> Result<(), ChatError> {
        if self.keyring.is_some() {
            return Err(ChatError::Refused("your security key opens: there is nothing to replace".to_owned()));
        }
        let password = self
            .password
            .as_ref()
            .ok_or_else(|| ChatError::Refused("the password is gone: quit and sign in again".to_owned()))?;
        self.api.replace_identity(password).await?;
        let keyring = self.api.keyring(TrustStore::open(&self.trust_file)?)?;
        self.keyring = Some(keyring);
        // Not needed any more: zeroized now.
        self.password = None;
        self.send(Update::IdentityReplaced);
        self.catch_up().await
    }
}

impl Session {
    /// Fetches the images the assistant made that `messages` link to (the address needs the
    /// person's token, so a browser cannot open it) and saves each under `images/` in the
    /// configuration directory, once; the interface shows where.
    async fn save_images(&mut self, conversation_id: Uuid, messages: &[Shown]) {
        if !self.keyring.as_ref().is_some_and(|keyring| keyring.plaintext_allowed(conversation_id)) {
            return;
        }
        for message in messages.iter().filter(|message| message.sender != self.me) {
            let Ok(text) = &message.text else { continue };
            for (url, image_id) in image_links(text) {
                if !self.saved_images.insert(url.clone()) {
                    continue;
                }
                match self.save_image(image_id).await {
                    Ok(path) => self.send(Update::ImageSaved { url, path }),
                    Err(error) => {
                        self.saved_images.remove(&url);
                        self.send(Update::Error(format!("the image was not saved: {}", error.describe(&self.server))));
                    }
                }
            }
        }
    }

    async fn save_image(&self, image_id: Uuid) -> Result<PathBuf, ChatError> {
        if let Some(existing) = ["png", "jpg", "webp", "gif", "img"]
            .iter()
            .map(|extension| self.images_dir.join(format!("{image_id}.{extension}")))
            .find(|path| path.exists())
        {
            return Ok(existing);
        }
        let (content_type, bytes) = self.api.assistant_image(image_id).await?;
        let extension = match content_type.split(';').next().unwrap_or_default().trim() {
            "image/png" => "png",
            "image/jpeg" => "jpg",
            "image/webp" => "webp",
            "image/gif" => "gif",
            _ => "img",
        };
        let path = self.images_dir.join(format!("{image_id}.{extension}"));
        let failed = |error: std::io::Error| ChatError::Refused(format!("cannot write {}: {error}", path.display()));
        std::fs::create_dir_all(&self.images_dir).map_err(failed)?;
        std::fs::write(&path, bytes).map_err(failed)?;
        Ok(path)
    }
}

/// The assistant's image links in `text` (`…/api/assistant/images/<id>`): each address with
/// the image's id.
pub fn image_links(text: &str) -> Vec<(String, Uuid)> {
    text.split_whitespace()
        .filter(|word| word.starts_with("http://") || word.starts_with("https://"))
        .filter_map(|word| {
            let (_, id) = word.rsplit_once("/api/assistant/images/")?;
            Some((word.to_owned(), id.parse().ok()?))
        })
        .collect()
}

/// A room as an entry of the conversation list: its id, its name (as a group's alias) and its
/// times, so that the list, the history and the composer treat rooms and conversations alike;
/// [`Joined::room`] says it is a room.
pub fn room_entry(room: &Room) -> Conversation {
    Conversation {
        id: room.id,
        private: false,
        alias: Some(room.name.clone()),
        inserted_at: room.inserted_at,
        updated_at: room.updated_at,
        assistant: false,
        unread: 0,
        last_message_at: None,
    }
}

/// A message that cannot be read, and why.
fn unreadable(reason: &str) -> Opened {
    Opened { text: Err(reason.to_owned()), flags: Vec::new(), unchecked: false, sent_at: None }
}
