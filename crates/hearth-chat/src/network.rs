//! The network task: the only part of the client that talks to the server, through the SDK.
//!
//! It takes [`Command`]s from the interface and answers with [`Update`]s, so the interface
//! never waits on the network and never sees a key. It holds the session (REST client and
//! socket), each conversation's key pair and its members' public keys, and does all the
//! encryption: what it hands the interface is plaintext, or why a message cannot be read.
//!
//! Every conversation is joined as soon as it is known (at sign-in and on
//! `new_conversation`), and a member without keys gets a fresh key pair then: so others can
//! write to a person who has not opened the conversation yet, and typing and streamed
//! replies arrive for every conversation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hearth_client::api::{Client, Conversation, Message, PublicUser, User};
use hearth_client::channels::{
    self, AssistantDelta, ChannelError, Event, Events, Incoming, NewConversation, SYSTEM_TOPIC, Socket, SocketOptions,
};
use hearth_client::e2e::{self, KeyPair};
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::error::ChatError;

/// The device name sessions of this client get (`GET /api/devices` shows it).
const DEVICE_NAME: &str = "hearth chat";

/// At most this many pages of `GET /api/users` are read (50 each): enough to pick people
/// from on a self-hosted server, and bounded on a large one.
const MAX_USER_PAGES: usize = 20;

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
        }
    }
}

/// Register or log in. The password goes no further than the SDK, which derives the
/// `auth_secret` (what the server receives) and the wrap key from it.
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
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// Whether it was edited.
    pub edited: bool,
}

/// A conversation's state, fresh from a join.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The conversation.
    pub conversation: Conversation,
    /// Its members (the person included).
    pub members: Vec<Uuid>,
    /// The fingerprint of each member's public key, for those who set one.
    pub fingerprints: BTreeMap<Uuid, String>,
    /// The newest page of history, oldest first.
    pub messages: Vec<Shown>,
    /// The token of the page before it, if there is one.
    pub page_token: Option<String>,
    /// Messages from others the person has not read.
    pub unread: u64,
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
    },
    /// Signing in failed.
    SignInFailed(String),
    /// The users on the server, read again.
    Users(Vec<PublicUser>),
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
    /// A member set keys.
    KeySet {
        /// The conversation.
        conversation_id: Uuid,
        /// Whose keys.
        user_id: Uuid,
        /// The fingerprint of the public key.
        fingerprint: String,
    },
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

/// Starts the network task for the server at `server`: commands go in, updates come out.
/// The task ends (closing the socket) when the command sender is dropped.
pub fn spawn(
    server: String,
) -> (mpsc::UnboundedSender<Command>, mpsc::UnboundedReceiver<Update>, tokio::task::JoinHandle<()>) {
    let (commands, command_receiver) = mpsc::unbounded_channel();
    let (update_sender, updates) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(server, command_receiver, update_sender));
    (commands, updates, task)
}

async fn run(server: String, mut commands: mpsc::UnboundedReceiver<Command>, updates: mpsc::UnboundedSender<Update>) {
    // Until signed in, only sign-ins mean anything.
    let (session, events) = loop {
        match commands.recv().await {
            None => return,
            Some(Command::SignIn(request)) => match Session::sign_in(&server, request, updates.clone()).await {
                Ok(signed_in) => break signed_in,
                Err(error) => {
                    let _ = updates.send(Update::SignInFailed(error.to_string()));
                }
            },
            Some(_) => {}
        }
    };
    session.run(commands, events).await;
}

/// What the client keeps of one conversation.
#[derive(Debug)]
struct Keys {
    /// The assistant conversation: not end-to-end encrypted, no keys.
    assistant: bool,
    /// The person's key pair for it (`None` in the assistant conversation).
    mine: Option<KeyPair>,
    /// Each member's public JWK, for those who set one.
    public: BTreeMap<Uuid, String>,
    /// Its current members.
    members: BTreeSet<Uuid>,
}

/// A signed-in session.
struct Session {
    api: Arc<Client>,
    socket: Socket,
    me: Uuid,
    updates: mpsc::UnboundedSender<Update>,
    /// Display names, for messages about people (missing keys).
    names: HashMap<Uuid, String>,
    /// Each joined conversation.
    conversations: HashMap<Uuid, Keys>,
    /// The unread counts `GET /api/conversations` gave at sign-in, used by the first join.
    listed_unread: HashMap<Uuid, u64>,
}

impl Session {
    /// Signs in, connects the socket, joins the person's topics, reports who they are and
    /// then joins every conversation.
    async fn sign_in(
        server: &str,
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
        drop(password);
        let me = signed_in.user.id;
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
            names: HashMap::new(),
            conversations: HashMap::new(),
            listed_unread: HashMap::new(),
        };
        let users = session.all_users().await?;
        let conversations = session.api.conversations().await?;
        session.listed_unread = conversations.iter().map(|c| (c.id, c.unread)).collect();
        session.send(Update::SignedIn { me: signed_in.user, users, conversations: conversations.clone() });
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

    fn name(&self, user: Uuid) -> String {
        self.names.get(&user).cloned().unwrap_or_else(|| user.to_string())
    }

    async fn command(&mut self, command: Command) -> Result<(), ChatError> {
        match command {
            // Already signed in.
            Command::SignIn(_) => Ok(()),
            Command::Open(id) => {
                if !self.conversations.contains_key(&id) {
                    self.join(id).await?;
                }
                self.socket.read_conversation(id).await?;
                Ok(())
            }
            Command::LoadOlder { conversation_id, page_token } => {
                let page = self.api.messages(conversation_id, Some(&page_token)).await?;
                let messages = page.items.iter().rev().map(|m| self.reveal(conversation_id, m)).collect();
                self.send(Update::Older { conversation_id, messages, page_token: page.page_token });
                Ok(())
            }
            Command::Send { conversation_id, text } => self.send_message(conversation_id, &text).await,
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
                if !self.conversations.contains_key(&id) {
                    self.join(id).await?;
                }
                self.send(Update::Open(id));
                Ok(())
            }
            Command::RefreshUsers => {
                let users = self.all_users().await?;
                self.send(Update::Users(users));
                Ok(())
            }
        }
    }

    async fn event(&mut self, event: Event) -> Result<(), ChatError> {
        let Some(incoming) = Incoming::parse(&event) else { return Ok(()) };
        match incoming {
            Incoming::Presence => self.send(Update::Presence(event)),
            Incoming::NewConversation(new) => self.new_conversation(new).await?,
            Incoming::NewMessage(delivered) => {
                let message = self.reveal_fresh(delivered.conversation_id, &delivered.message).await;
                self.send(Update::Message { conversation_id: delivered.conversation_id, message });
            }
            Incoming::EditMessage(delivered) => {
                let message = self.reveal_fresh(delivered.conversation_id, &delivered.message).await;
                self.send(Update::Edited { conversation_id: delivered.conversation_id, message });
            }
            Incoming::DeleteMessage { conversation_id, message_group_id } => {
                self.send(Update::Deleted { conversation_id, group: message_group_id });
            }
            Incoming::Typing { conversation_id, user_id, typing } if user_id != self.me => {
                self.send(Update::Typing { conversation_id, user_id, typing });
            }
            Incoming::KeysSet { conversation_id, user_id, public_key } => {
                let fingerprint = e2e::fingerprint(&public_key).unwrap_or_else(|_| "not a P-256 key".to_owned());
                if let Some(keys) = self.conversations.get_mut(&conversation_id) {
                    keys.public.insert(user_id, public_key);
                }
                self.send(Update::KeySet { conversation_id, user_id, fingerprint });
            }
            Incoming::AliasChanged { conversation_id, alias } => self.send(Update::Alias { conversation_id, alias }),
            Incoming::MemberLeft { conversation_id, user_id } => {
                if let Some(keys) = self.conversations.get_mut(&conversation_id) {
                    keys.members.remove(&user_id);
                    keys.public.remove(&user_id);
                }
                self.send(Update::MemberLeft { conversation_id, user_id });
            }
            Incoming::AssistantDelta(delta) => self.send(Update::Delta(delta)),
            Incoming::DisplayName { user_id, display_name } => {
                self.names.insert(user_id, display_name.clone());
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

    /// A conversation started (or its members changed): join it, or note its members.
    async fn new_conversation(&mut self, new: NewConversation) -> Result<(), ChatError> {
        if new.user_ids.iter().any(|user| !self.names.contains_key(user)) {
            let users = self.all_users().await?;
            self.send(Update::Users(users));
        }
        let id = new.conversation.id;
        match self.conversations.get_mut(&id) {
            Some(keys) => {
                keys.members = new.user_ids.iter().copied().collect();
                self.send(Update::Members { conversation: new.conversation, members: new.user_ids });
                Ok(())
            }
            None => self.join(id).await,
        }
    }

    /// After a reconnect or missed events: every conversation joined again (fresh history),
    /// and any started meanwhile joined for the first time.
    async fn catch_up(&mut self) -> Result<(), ChatError> {
        let users = self.all_users().await?;
        self.send(Update::Users(users));
        for conversation in self.api.conversations().await? {
            let joined = self.join(conversation.id).await;
            self.report(joined);
        }
        Ok(())
    }

    /// Every user on the server (up to [`MAX_USER_PAGES`] pages).
    async fn all_users(&mut self) -> Result<Vec<PublicUser>, ChatError> {
        let mut users = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_USER_PAGES {
            let page = self.api.users(token.as_deref()).await?;
            users.extend(page.items);
            token = page.page_token;
            if token.is_none() {
                break;
            }
        }
        self.names.extend(users.iter().map(|user| (user.id, user.display_name.clone())));
        Ok(users)
    }

    /// Joins a conversation, sets the person's keys if they have none, and reports its state.
    async fn join(&mut self, id: Uuid) -> Result<(), ChatError> {
        let joined = self.socket.join_conversation(id).await?;
        let assistant = joined.conversation.assistant;
        let mut members: BTreeSet<Uuid> = joined.read_times.keys().copied().collect();
        members.insert(self.me);
        let mut public = joined.public_keys.clone();
        let mine = if assistant { None } else { Some(self.own_key(id, joined.private_key.as_deref()).await?) };
        if let Some(pair) = &mine {
            public.insert(self.me, pair.public_jwk());
        }
        let fingerprints = public
            .iter()
            .map(|(user, key)| (*user, e2e::fingerprint(key).unwrap_or_else(|_| "not a P-256 key".to_owned())))
            .collect();
        self.conversations.insert(id, Keys { assistant, mine, public, members: members.clone() });
        let messages = joined.messages.items.iter().rev().map(|m| self.reveal(id, m)).collect();
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
        self.send(Update::Joined(Box::new(Joined {
            conversation: joined.conversation,
            members: members.into_iter().collect(),
            fingerprints,
            messages,
            page_token: joined.messages.page_token,
            unread,
        })));
        Ok(())
    }

    /// The person's key pair for conversation `id`: unwrapped from the stored one, or made
    /// and set now.
    async fn own_key(&self, id: Uuid, wrapped: Option<&str>) -> Result<KeyPair, ChatError> {
        let wrap_key = self.api.wrap_key().ok_or_else(|| ChatError::Refused("not signed in".to_owned()))?;
        if let Some(wrapped) = wrapped {
            if let Ok(pair) = e2e::unwrap_private_key(wrap_key, id, wrapped) {
                return Ok(pair);
            }
            // A conversation is started with a key wrapped for the nil id (its id is the
            // server's); this is where it is wrapped again for the real one.
            if let Ok(pair) = e2e::unwrap_private_key(wrap_key, Uuid::nil(), wrapped) {
                let rewrapped = e2e::wrap_private_key(wrap_key, id, &pair);
                self.socket.set_encryption_keys(id, &pair.public_jwk(), &rewrapped).await?;
                return Ok(pair);
            }
            // Neither opens it: the password was reset since (the server never had the old
            // wrap key). New keys from now on; earlier messages stay unreadable here.
            self.send(Update::Info(
                "your key for a conversation could not be opened (password reset?): new keys were made; \
                 earlier messages there stay unreadable"
                    .to_owned(),
            ));
        }
        let pair = KeyPair::generate();
        let wrapped = e2e::wrap_private_key(wrap_key, id, &pair);
        self.socket.set_encryption_keys(id, &pair.public_jwk(), &wrapped).await?;
        Ok(pair)
    }

    /// A stored message as shown: decrypted with the person's key and the sender's public key.
    fn reveal(&self, conversation_id: Uuid, message: &Message) -> Shown {
        let text = match self.conversations.get(&conversation_id) {
            None => Err("[not joined]".to_owned()),
            Some(keys) if keys.assistant => Ok(message.content.clone()),
            Some(keys) => match (&keys.mine, keys.public.get(&message.sender)) {
                (Some(mine), Some(sender_key)) => {
                    e2e::decrypt(mine, self.me, sender_key, message.sender, conversation_id, &message.content)
                        .map_err(|error| format!("[cannot decrypt: {error}]"))
                }
                (None, _) => Err("[cannot decrypt: no key of yours]".to_owned()),
                (Some(_), None) => Err("[cannot decrypt: the sender's key is unknown]".to_owned()),
            },
        };
        Shown {
            group: message.message_group,
            sender: message.sender,
            text,
            at: message.inserted_at,
            edited: message.updated_at > message.inserted_at,
        }
    }

    /// [`reveal`](Self::reveal), first joining again when the sender's key is not known yet
    /// (a member who set keys while this client missed it).
    async fn reveal_fresh(&mut self, conversation_id: Uuid, message: &Message) -> Shown {
        let stale = self
            .conversations
            .get(&conversation_id)
            .is_none_or(|keys| !keys.assistant && !keys.public.contains_key(&message.sender));
        if stale {
            let joined = self.join(conversation_id).await;
            self.report(joined);
        }
        self.reveal(conversation_id, message)
    }

    async fn send_message(&mut self, conversation_id: Uuid, text: &str) -> Result<(), ChatError> {
        let keys = self
            .conversations
            .get(&conversation_id)
            .ok_or_else(|| ChatError::Refused("that conversation is not joined".to_owned()))?;
        let stored = if keys.assistant {
            self.socket.send_prompt(conversation_id, self.me, text).await?
        } else {
            let mine = keys.mine.as_ref().ok_or_else(|| ChatError::Refused("you have no key here".to_owned()))?;
            let missing: Vec<String> =
                keys.members.iter().filter(|member| !keys.public.contains_key(member)).map(|m| self.name(*m)).collect();
            if !missing.is_empty() {
                return Err(ChatError::Refused(format!(
                    "not sent: {} has no encryption keys yet (they get them when their client joins)",
                    missing.join(", ")
                )));
            }
            let mut copies = BTreeMap::new();
            for (member, public_key) in keys.public.iter().filter(|(member, _)| keys.members.contains(member)) {
                copies.insert(*member, e2e::encrypt(mine, self.me, public_key, *member, conversation_id, text)?);
            }
            self.socket.send_message(conversation_id, &copies).await?
        };
        // Shown at once; the copy that arrives on the user topic is the same message group.
        let message = Shown {
            group: stored.message_group,
            sender: self.me,
            text: Ok(text.to_owned()),
            at: stored.inserted_at,
            edited: false,
        };
        self.send(Update::Message { conversation_id, message });
        Ok(())
    }

    async fn start_private(&mut self, other: Uuid) -> Result<(), ChatError> {
        let id = match self.api.private_conversation_with(other).await? {
            Some(existing) => existing,
            None => {
                let (public, provisional) = self.provisional_keys()?;
                self.socket.start_private_conversation(other, &public, &provisional).await?.conversation.id
            }
        };
        if !self.conversations.contains_key(&id) {
            self.join(id).await?;
        }
        self.send(Update::Open(id));
        Ok(())
    }

    async fn start_group(&mut self, user_ids: &[Uuid], alias: Option<&str>) -> Result<(), ChatError> {
        let (public, provisional) = self.provisional_keys()?;
        let started = self.socket.start_group_conversation(user_ids, alias, &public, &provisional).await?;
        let id = started.conversation.id;
        if !self.conversations.contains_key(&id) {
            self.join(id).await?;
        }
        self.send(Update::Open(id));
        Ok(())
    }

    /// A fresh key pair's public JWK and its private key wrapped for the nil id: a new
    /// conversation's id is the server's, so [`own_key`](Self::own_key) wraps it again for
    /// the real id when the conversation is joined.
    fn provisional_keys(&self) -> Result<(String, String), ChatError> {
        let wrap_key = self.api.wrap_key().ok_or_else(|| ChatError::Refused("not signed in".to_owned()))?;
        let pair = KeyPair::generate();
        Ok((pair.public_jwk(), e2e::wrap_private_key(wrap_key, Uuid::nil(), &pair)))
    }
}
