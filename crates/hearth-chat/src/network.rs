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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hearth_client::api::{Client, ClientError, Conversation, Message, PublicUser, User};
use hearth_client::channels::{
    self, AssistantDelta, ChannelError, Event, Events, Incoming, NewConversation, SYSTEM_TOPIC, Socket, SocketOptions,
};
use hearth_client::e2e::Flag;
use hearth_client::trust::{ContactState, Keyring, Notice, Opened, TrustError, TrustStore};
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::error::ChatError;
use super::trust_file::trust_file;

/// The device name sessions of this client get (`GET /api/devices` shows it).
const DEVICE_NAME: &str = "hearth chat";

/// At most this many pages of `GET /api/users` are read (50 each): enough to pick people
/// from on a self-hosted server, and bounded on a large one.
const MAX_USER_PAGES: usize = 20;

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
    /// Send a message (encrypted for each member; plain in the assistant conversation).
    Send {
        /// The conversation.
        conversation_id: Uuid,
        /// What was written.
        text: String,
    },
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
            Command::Send { conversation_id, .. } => {
                formatter.debug_struct("Send").field("conversation_id", conversation_id).finish_non_exhaustive()
            }
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
}

impl Shown {
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
    /// A message the person wrote was not sent: its text, to give back to them.
    NotSent {
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

/// Starts the network task for the server at `server`, keeping what it trusts under
/// `config_dir` (see `trust_file.rs`): commands go in, updates come out. The task ends
/// (closing the socket) when the command sender is dropped.
pub fn spawn(
    server: String,
    config_dir: Option<PathBuf>,
) -> (mpsc::UnboundedSender<Command>, mpsc::UnboundedReceiver<Update>, tokio::task::JoinHandle<()>) {
    let (commands, command_receiver) = mpsc::unbounded_channel();
    let (update_sender, updates) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(server, config_dir, command_receiver, update_sender));
    (commands, updates, task)
}

async fn run(
    server: String,
    config_dir: Option<PathBuf>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    updates: mpsc::UnboundedSender<Update>,
) {
    // Until signed in, only sign-ins mean anything.
    let (session, events) = loop {
        match commands.recv().await {
            None => return,
            Some(Command::SignIn(request)) => {
                match Session::sign_in(&server, config_dir.clone(), request, updates.clone()).await {
                    Ok(signed_in) => break signed_in,
                    Err(error) => {
                        let _ = updates.send(Update::SignInFailed(error.to_string()));
                    }
                }
            }
            Some(_) => {}
        }
    };
    session.run(commands, events).await;
}

/// A signed-in session.
struct Session {
    api: Arc<Client>,
    socket: Socket,
    me: Uuid,
    updates: mpsc::UnboundedSender<Update>,
    /// The account's keys and pins; `None` while its security key does not open.
    keyring: Option<Keyring>,
    /// The sign-in's password, kept only while the security key does not open: replacing it
    /// needs the password, and the person is not asked a second time for it. Zeroized when
    /// dropped (once the key is replaced, or when the client quits).
    password: Option<Zeroizing<String>>,
    /// Where the keyring's pins are kept.
    trust_file: PathBuf,
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
}

impl Session {
    /// Signs in, opens the keyring, connects the socket, joins the person's topics, reports
    /// who they are and then joins every conversation.
    async fn sign_in(
        server: &str,
        config_dir: Option<PathBuf>,
        request: SignIn,
        updates: mpsc::UnboundedSender<Update>,
    ) -> Result<(Self, Events), ChatError> {
        let mut client = Client::new(server)?;
        let SignIn { register, email, password, display_name } = request;
        let signed_in = if register {
            client.register(email.trim(), &password, display_name.as_deref(), Some(DEVICE_NAME)).await?
        } else {
            client.login(email.trim(), &password, Some(DEVICE_NAME)).await?
        };
        let me = signed_in.user.id;
        let trust_file = trust_file(config_dir.as_deref(), server, me)?;
        let keyring = match client.keyring(TrustStore::open(&trust_file)?) {
            Ok(keyring) => Some(keyring),
            // Signed in all the same: the person sees their conversations, is told, and can
            // make a new security key.
            Err(ClientError::IdentityUnopenable) => None,
            Err(error) => return Err(error.into()),
        };
        let password = keyring.is_none().then_some(password);
        let api = Arc::new(client);
        let socket = Socket::connect_with_client(server, api.clone(), SocketOptions::default()).await?;
        // Subscribed before joining, so the first presence_state is not missed.
        let events = socket.events();
        socket.join(&channels::user_topic(me), json!({})).await?;
        socket.join(SYSTEM_TOPIC, json!({})).await?;
        let mut session = Self {
            api,
            socket,
            me,
            updates,
            keyring,
            password,
            trust_file,
            known_users: HashSet::new(),
            members: HashMap::new(),
            checked: HashMap::new(),
            own_key_unopenable: HashSet::new(),
            listed_unread: HashMap::new(),
        };
        let users = session.read_users().await?;
        let conversations = session.api.conversations().await?;
        session.listed_unread = conversations.iter().map(|c| (c.id, c.unread)).collect();
        session.send(Update::SignedIn {
            me: signed_in.user,
            users: users.clone(),
            conversations: conversations.clone(),
            identity_unopenable: session.keyring.is_none(),
        });
        // After `SignedIn`, so that what changed while the person was away is the last word.
        session.learn_identities(&users)?;
        for conversation in conversations {
            let joined = session.join(conversation.id).await;
            session.report(joined);
        }
        Ok((session, events))
    }

    /// Serves commands and events until the interface goes away.
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, mut events: Events) {
        let mut connected = true;
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        let done = self.command(command).await;
                        self.report(done);
                    }
                    None => break,
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
                        self.send(Update::Error(format!("disconnected ({error}): quit and sign in again")));
                    }
                },
            }
        }
        self.socket.close().await;
    }

    fn send(&self, update: Update) {
        // The interface is gone only when the client is quitting.
        let _ = self.updates.send(update);
    }

    fn report(&self, done: Result<(), ChatError>) {
        if let Err(error) = done {
            self.send(Update::Error(error.to_string()));
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
            Command::Send { conversation_id, text } => {
                match self.deliver(conversation_id, &text).await {
                    Ok(stored) => {
                        // Shown at once; the copy that arrives on the user topic is the same
                        // message group, opened and checked.
                        let message = Shown {
                            group: stored.message_group,
                            sender: self.me,
                            text: Ok(text),
                            at: stored.inserted_at,
                            edited: false,
                            flags: Vec::new(),
                            unchecked: false,
                            sent_at: None,
                        };
                        self.send(Update::Message { conversation_id, message });
                    }
                    Err(reason) => self.send(Update::NotSent { conversation_id, text, reason }),
                }
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
            Incoming::Presence => self.send(Update::Presence(event)),
            Incoming::NewConversation(new) => self.new_conversation(new).await?,
            Incoming::NewMessage(delivered) => {
                let conversation_id = delivered.conversation_id;
                if let Some(message) = self.open_live(conversation_id, &delivered.message).await? {
                    self.send(Update::Message { conversation_id, message });
                }
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
                self.send(Update::Info("reconnected".to_owned()));
                self.catch_up().await?;
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

    /// A page of history, oldest first, opened and checked.
    fn open_page(&mut self, conversation_id: Uuid, oldest_first: &[Message], joined_page: bool) -> Vec<Shown> {
        let opened = match self.keyring.as_mut() {
            Some(keyring) => keyring.open_page(conversation_id, oldest_first, joined_page),
            None => oldest_first.iter().map(|_| unreadable(IDENTITY_UNOPENABLE)).collect(),
        };
        oldest_first.iter().zip(opened).map(|(message, opened)| Shown::opened(message, opened)).collect()
    }

    /// Encrypts and sends a message: plain text only where the keyring allows it (the
    /// assistant's conversation), else one copy per member, sealed.
    async fn deliver(&mut self, conversation_id: Uuid, text: &str) -> Result<Message, Refusal> {
        let keyring = self.keyring.as_mut().ok_or(Refusal::IdentityUnopenable)?;
        let failed = |error: ChannelError| Refusal::Failed(error.to_string());
        if keyring.plaintext_allowed(conversation_id) {
            return self.socket.send_prompt(conversation_id, self.me, text).await.map_err(failed);
        }
        let outgoing = keyring.seal(conversation_id, text, None)?;
        self.socket
            .send_message(conversation_id, Some(outgoing.message_group_id), &outgoing.copies)
            .await
            .map_err(failed)
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
        })));
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

/// A message that cannot be read, and why.
fn unreadable(reason: &str) -> Opened {
    Opened { text: Err(reason.to_owned()), flags: Vec::new(), unchecked: false, sent_at: None }
}
