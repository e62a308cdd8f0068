//! The client's state: what is on screen, and how each [`Update`] from the network changes
//! it. Nothing here waits or talks to the network: requests are queued as [`Command`]s for
//! the loop in `mod.rs` to hand over.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hearth_client::api::{ASSISTANT_ID, Conversation, PublicUser, Registration, Room, User, Visibility};
use hearth_client::channels::{AssistantDelta, Presence};
use hearth_client::trust::{ContactState, Notice};
use uuid::Uuid;

use super::editor::Editor;
use super::network::{Command, Connection, Contact, Joined, Pending, Refusal, Shown, Update};

/// How long someone shows as typing without a new `start_typing` (a client that went away
/// never says `finish_typing`).
pub const TYPING_SHOWN_FOR: Duration = Duration::from_secs(8);

/// How often `start_typing` is repeated while the person keeps typing.
pub const TYPING_REPEAT: Duration = Duration::from_secs(3);

/// How long after the last keystroke the person counts as no longer typing.
pub const TYPING_PAUSE: Duration = Duration::from_secs(5);

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The sign-in form.
    Login,
    /// Conversations and messages.
    Chat,
}

/// Which pane takes the keys on the chat screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The conversation list.
    List,
    /// The message composer.
    Composer,
}

/// A field of the sign-in form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginField {
    /// The email address.
    Email,
    /// The password.
    Password,
    /// The display name (registering only).
    DisplayName,
    /// The invite code (registering on a server that takes new accounts by invitation).
    Invite,
}

/// The sign-in form.
#[derive(Debug, Default)]
pub struct LoginForm {
    /// Registering a new account (else logging in).
    pub register: bool,
    /// The field being typed in; `None` is the first one.
    pub field: Option<LoginField>,
    /// The email address.
    pub email: Editor,
    /// The password (shown as stars, cleared once sent to the network task).
    pub password: Editor,
    /// The display name of a new account.
    pub display_name: Editor,
    /// The invite code of a new account.
    pub invite: Editor,
    /// Who may sign up on the server, once it said (`None`: not known, the server decides).
    pub registration: Option<Registration>,
    /// Waiting for the server.
    pub busy: bool,
}

impl LoginForm {
    /// The field being typed in.
    pub fn field(&self) -> LoginField {
        self.field.unwrap_or(LoginField::Email)
    }

    /// The fields of the current mode, in order.
    pub fn fields(&self) -> &'static [LoginField] {
        match (self.register, self.registration) {
            (true, Some(Registration::Invite)) => {
                &[LoginField::Email, LoginField::Password, LoginField::DisplayName, LoginField::Invite]
            }
            (true, _) => &[LoginField::Email, LoginField::Password, LoginField::DisplayName],
            (false, _) => &[LoginField::Email, LoginField::Password],
        }
    }

    /// Whether the person is about to sign up on a server that takes no new accounts.
    pub fn sign_up_closed(&self) -> bool {
        self.register && self.registration == Some(Registration::Closed)
    }

    /// The editor of the current field.
    pub fn editor(&mut self) -> &mut Editor {
        match self.field() {
            LoginField::Email => &mut self.email,
            LoginField::Password => &mut self.password,
            LoginField::DisplayName => &mut self.display_name,
            LoginField::Invite => &mut self.invite,
        }
    }
}

/// A field of the new-conversation dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickerField {
    /// Filtering the users.
    Find,
    /// The group's name.
    Alias,
}

/// The new-conversation dialog: pick one person for a private conversation, or several
/// (and a name) for a group.
#[derive(Debug)]
pub struct Picker {
    /// Filters the users by email or display name.
    pub find: Editor,
    /// The group's name.
    pub alias: Editor,
    /// The field being typed in.
    pub field: PickerField,
    /// The highlighted row of the filtered list.
    pub highlighted: usize,
    /// The users picked so far.
    pub picked: BTreeSet<Uuid>,
    /// Who the server found for the search as it is now (by exact email, or by a name
    /// among people not known yet).
    pub found: BTreeSet<Uuid>,
}

/// A field of the rooms dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomsField {
    /// The public rooms to join.
    Browse,
    /// The name of a room to make.
    Name,
}

/// The rooms dialog: browse the public rooms and join one, or make a room.
#[derive(Debug)]
pub struct RoomsDialog {
    /// The field that takes the keys.
    pub field: RoomsField,
    /// The highlighted public room.
    pub highlighted: usize,
    /// The name of a new room.
    pub name: Editor,
    /// Whether a new room is public (else private).
    pub public: bool,
}

/// A line for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// What to say.
    pub text: String,
    /// Whether it is an error.
    pub error: bool,
}

/// An assistant reply still streaming in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streaming {
    /// The reply's message group, once it is complete.
    pub reply_id: Uuid,
    /// The text so far.
    pub text: String,
    /// How many pieces arrived.
    pub parts: u64,
}

/// One conversation as the client knows it.
#[derive(Debug, Clone)]
pub struct ConversationView {
    /// The conversation.
    pub conversation: Conversation,
    /// Its members (the person included); empty until joined.
    pub members: Vec<Uuid>,
    /// The person's own key here does not open: nothing here can be read or sent until they
    /// make a new one.
    pub own_key_unopenable: bool,
    /// Text the person wrote here that was not sent while another conversation was open:
    /// given back to the composer when this one is opened.
    pub unsent: Option<String>,
    /// The history loaded so far, oldest first.
    pub messages: Vec<Shown>,
    /// The token of the page before the oldest loaded, if there is one.
    pub page_token: Option<String>,
    /// An older page was asked for and has not arrived.
    pub loading_older: bool,
    /// Whether it has been joined (history and keys are known).
    pub joined: bool,
    /// Messages from others not read yet.
    pub unread: u64,
    /// Who is typing, since when.
    pub typing: BTreeMap<Uuid, Instant>,
    /// The assistant's reply as it streams in.
    pub streaming: Option<Streaming>,
    /// Replies that are complete: their late pieces are ignored.
    pub finished_replies: BTreeSet<Uuid>,
    /// How many lines the history is scrolled up from the newest.
    pub scroll: usize,
    /// How far it can scroll up with what is loaded (the last drawing's, set by `render.rs`).
    pub max_scroll: usize,
    /// When each member last read it (`None`: never).
    pub read_times: BTreeMap<Uuid, Option<DateTime<Utc>>>,
    /// When each member's devices last had everything in it (`None`: never).
    pub delivered_times: BTreeMap<Uuid, Option<DateTime<Utc>>>,
    /// The room, when this entry is one: not end-to-end encrypted, and said so wherever it
    /// shows. Its `conversation` then carries the room's id, name (as the alias) and times.
    pub room: Option<Room>,
    /// How many members the room has, when this entry is one (`members` holds only the first
    /// hundred of a big room).
    pub member_count: Option<u64>,
}

impl ConversationView {
    fn new(conversation: Conversation) -> Self {
        Self {
            unread: conversation.unread,
            conversation,
            members: Vec::new(),
            own_key_unopenable: false,
            unsent: None,
            messages: Vec::new(),
            page_token: None,
            loading_older: false,
            joined: false,
            typing: BTreeMap::new(),
            streaming: None,
            finished_replies: BTreeSet::new(),
            scroll: 0,
            max_scroll: 0,
            read_times: BTreeMap::new(),
            delivered_times: BTreeMap::new(),
            room: None,
            member_count: None,
        }
    }

    /// A room the person is in, not joined yet.
    fn of_room(room: Room) -> Self {
        let mut view = Self::new(super::network::room_entry(&room));
        view.room = Some(room);
        view
    }

    /// Whether it is a room (not end-to-end encrypted).
    pub fn is_room(&self) -> bool {
        self.room.is_some()
    }

    /// The id.
    pub fn id(&self) -> Uuid {
        self.conversation.id
    }

    /// When something last happened in it: for the list's order.
    pub fn last_activity(&self) -> DateTime<Utc> {
        let newest = self.messages.last().map(|m| m.at);
        [Some(self.conversation.inserted_at), self.conversation.last_message_at, newest]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.conversation.inserted_at)
    }

    /// Adds or replaces a message (by message group), keeping the history in time order;
    /// what is still on its way to the server stays last.
    fn upsert(&mut self, message: Shown) {
        if let Some(existing) = self.messages.iter_mut().find(|m| m.group == message.group) {
            *existing = message;
            return;
        }
        let at = if message.pending.is_some() {
            self.messages.len()
        } else {
            self.messages.partition_point(|m| m.pending.is_none() && m.at <= message.at)
        };
        self.messages.insert(at, message);
    }

    /// How many of the person's messages here the server does not have yet.
    pub fn pending(&self) -> usize {
        self.messages.iter().filter(|m| m.pending.is_some()).count()
    }
}

/// Something the person is asked to confirm (y or n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// Quitting, which loses the messages still queued.
    Quit,
    /// Deleting a message of theirs.
    Delete {
        /// The conversation.
        conversation_id: Uuid,
        /// The message group.
        group: Uuid,
    },
    /// Leaving a room.
    LeaveRoom(Uuid),
}

/// A message of the person's being edited in the composer.
#[derive(Debug, Clone)]
pub struct Editing {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The message group.
    pub group: Uuid,
    /// What the composer held before, given back when the edit is done or cancelled.
    pub draft: String,
}

/// How far a message of the person's got: to the server, then to the others' devices, then
/// read by them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// Waiting for the connection.
    Queued,
    /// Sent, not acknowledged yet.
    Sending,
    /// The server has it.
    Sent,
    /// On some of the others' devices (a group): how many of how many.
    DeliveredTo(usize, usize),
    /// On every other member's device.
    Delivered,
    /// Read by some of the others (a group): who.
    ReadBy(Vec<Uuid>),
    /// Read by every other member.
    Read,
}

/// A user's email address, when the server shows it (people who share a conversation with
/// the person, or everyone if the server says so).
pub fn email_of(user: &PublicUser) -> Option<&str> {
    user.email.as_deref()
}

/// The whole client state.
#[derive(Debug)]
pub struct App {
    /// The server's URL.
    pub server: String,
    /// The screen that is up.
    pub screen: Screen,
    /// The sign-in form.
    pub login: LoginForm,
    /// The signed-in person.
    pub me: Option<User>,
    /// Every user known, by id.
    pub users: BTreeMap<Uuid, PublicUser>,
    /// The person's conversations, most recently active first.
    pub conversations: Vec<ConversationView>,
    /// The highlighted row of the list.
    pub selected: usize,
    /// The conversation shown.
    pub open: Option<Uuid>,
    /// The pane that takes the keys.
    pub focus: Focus,
    /// The message being written.
    pub composer: Editor,
    /// The new-conversation dialog, when up.
    pub picker: Option<Picker>,
    /// The rooms dialog, when up.
    pub rooms_dialog: Option<RoomsDialog>,
    /// The public rooms the person is not in, to browse, by name.
    pub public_rooms: Vec<Room>,
    /// The security pane (members, their security state and safety numbers), when up: it
    /// takes the keys.
    pub info: bool,
    /// The highlighted member of the security pane (among [`others`](Self::others)).
    pub info_highlighted: usize,
    /// What the person's client knows of each contact's security key.
    pub contacts: BTreeMap<Uuid, Contact>,
    /// The person's own security key does not open with their password.
    pub identity_unopenable: bool,
    /// The status bar's line.
    pub status: Option<Status>,
    /// Who is online.
    pub presence: Presence,
    /// Set when the person asked to quit.
    pub quit: bool,
    /// The person's own typing: in which conversation, when `start_typing` was last sent,
    /// and the last keystroke.
    pub own_typing: Option<(Uuid, Instant, Instant)>,
    /// The connection to the server.
    pub connection: Connection,
    /// What the person is asked to confirm, if anything: it takes the keys.
    pub confirm: Option<Confirm>,
    /// The message of the person's chosen in the open conversation (to edit or delete).
    pub chosen: Option<Uuid>,
    /// The message being edited.
    pub editing: Option<Editing>,
    /// The images the assistant made, saved: address → file.
    pub images: BTreeMap<String, std::path::PathBuf>,
    /// The links drawn in the last frame (set by `render.rs`), made clickable after it.
    pub links: Vec<DrawnLink>,
    /// Requests for the network task, in order.
    commands: Vec<Command>,
}

impl App {
    /// A client of `server`, at the sign-in form.
    pub fn new(server: &str) -> Self {
        Self {
            server: server.to_owned(),
            screen: Screen::Login,
            login: LoginForm::default(),
            me: None,
            users: BTreeMap::new(),
            conversations: Vec::new(),
            selected: 0,
            open: None,
            focus: Focus::List,
            composer: Editor::default(),
            picker: None,
            rooms_dialog: None,
            public_rooms: Vec::new(),
            info: false,
            info_highlighted: 0,
            contacts: BTreeMap::new(),
            identity_unopenable: false,
            status: None,
            presence: Presence::new(),
            quit: false,
            own_typing: None,
            connection: Connection::SignedOut,
            confirm: None,
            chosen: None,
            editing: None,
            images: BTreeMap::new(),
            links: Vec::new(),
            commands: Vec::new(),
        }
    }

    /// The requests queued since the last call.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// Queues a request for the network task.
    pub(super) fn command(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// Says something in the status bar.
    pub fn info(&mut self, text: impl Into<String>) {
        self.status = Some(Status { text: text.into(), error: false });
    }

    /// Shows an error in the status bar.
    pub fn error(&mut self, text: impl Into<String>) {
        self.status = Some(Status { text: text.into(), error: true });
    }

    /// The person's id, once signed in.
    pub fn me(&self) -> Option<Uuid> {
        self.me.as_ref().map(|me| me.id)
    }

    /// How a user is named: "you", their display name, or (unknown) the start of their id.
    pub fn name(&self, user: Uuid) -> String {
        if Some(user) == self.me() {
            return "you".to_owned();
        }
        match self.users.get(&user) {
            Some(known) => known.display_name.clone(),
            None => format!("user {}", &user.to_string()[..8]),
        }
    }

    /// The other member of a private conversation.
    pub fn partner(&self, view: &ConversationView) -> Option<Uuid> {
        if !view.conversation.private {
            return None;
        }
        view.members.iter().copied().find(|member| Some(*member) != self.me())
    }

    /// A conversation's title: its alias, the partner's name, or the members' names; a
    /// room's name.
    pub fn title(&self, view: &ConversationView) -> String {
        if let Some(room) = &view.room {
            return room.name.clone();
        }
        if view.conversation.assistant {
            return "Assistant".to_owned();
        }
        if let Some(alias) = &view.conversation.alias {
            return alias.clone();
        }
        if let Some(partner) = self.partner(view) {
            return self.name(partner);
        }
        let others: Vec<String> =
            view.members.iter().filter(|m| Some(**m) != self.me()).map(|m| self.name(*m)).collect();
        if others.is_empty() { "(conversation)".to_owned() } else { others.join(", ") }
    }

    /// A conversation's title by id, for messages about it.
    fn title_of(&self, id: Uuid) -> String {
        self.view(id).map_or_else(|| "a conversation".to_owned(), |view| self.title(view))
    }

    /// The members of a conversation other than the person, in the order shown.
    pub fn others(&self, view: &ConversationView) -> Vec<Uuid> {
        view.members.iter().copied().filter(|member| Some(*member) != self.me()).collect()
    }

    /// The member highlighted in the security pane.
    pub fn highlighted_member(&self) -> Option<Uuid> {
        let others = self.others(self.open_view()?);
        others.get(self.info_highlighted.min(others.len().saturating_sub(1))).copied()
    }

    /// How far a contact's security key is trusted (none known yet: no security key).
    pub fn contact_state(&self, user: Uuid) -> ContactState {
        self.contacts.get(&user).map_or(ContactState::NoIdentity, |contact| contact.state)
    }

    /// People's names as a list: "Bob", "Bob and Carol", "Bob, Carol and Dan".
    pub fn names(&self, users: &[Uuid]) -> String {
        let names: Vec<String> = users.iter().map(|user| self.name(*user)).collect();
        match names.as_slice() {
            [] => "nobody".to_owned(),
            [one] => one.clone(),
            [first @ .., last] => format!("{} and {last}", first.join(", ")),
        }
    }

    /// What a notice of the keyring says, in words.
    pub fn notice_text(&self, notice: &Notice) -> String {
        match notice {
            Notice::IdentityChanged { user, was_verified: false } => format!(
                "{}'s security key changed: nothing is sent to them until you accept it \
                 (Ctrl-K: compare safety numbers, then a)",
                self.name(*user)
            ),
            Notice::IdentityChanged { user, was_verified: true } => {
                let name = self.name(*user);
                format!(
                    "{name}'s security key changed, and {name} had been verified: compare safety numbers \
                     again before accepting it (Ctrl-K, then a); nothing is sent to them until then"
                )
            }
            Notice::KeyRefused { conversation, user } => format!(
                "{}'s key in {} is not signed by their security key: it is not used",
                self.name(*user),
                self.title_of(*conversation)
            ),
            Notice::OwnKeyUnopenable { conversation } => format!(
                "your key for {} does not open (was your password reset?): its messages cannot be read \
                 and nothing can be sent there; Ctrl-K, then n makes a new one",
                self.title_of(*conversation)
            ),
            Notice::DowngradeRefused { conversation } => format!(
                "the server says {} is not end-to-end encrypted, but it is: it stays encrypted",
                self.title_of(*conversation)
            ),
        }
    }

    /// Why a message was not sent, in words.
    pub fn refusal_text(&self, reason: &Refusal) -> String {
        match reason {
            Refusal::KeyChanged(users) => {
                let changed = match users.as_slice() {
                    [one] => format!("{}'s security key changed", self.name(*one)),
                    several => format!("the security keys of {} changed", self.names(several)),
                };
                format!("not sent: {changed} (Ctrl-K: compare safety numbers, then a to accept)")
            }
            Refusal::Unreachable(users) => {
                format!("not sent: {} cannot be written to until they sign in with a current client", self.names(users))
            }
            Refusal::OwnKeyUnopenable => {
                "not sent: your key for this conversation does not open (Ctrl-K, then n makes a new one)".to_owned()
            }
            Refusal::IdentityUnopenable => {
                "not sent: your security key does not open with your password (Ctrl-K, then r makes a new one)"
                    .to_owned()
            }
            Refusal::Failed(reason) => format!("not sent: {reason}"),
        }
    }

    /// The conversation with this id.
    pub fn view(&self, id: Uuid) -> Option<&ConversationView> {
        self.conversations.iter().find(|view| view.id() == id)
    }

    fn view_mut(&mut self, id: Uuid) -> Option<&mut ConversationView> {
        self.conversations.iter_mut().find(|view| view.id() == id)
    }

    /// The open conversation.
    pub fn open_view(&self) -> Option<&ConversationView> {
        self.open.and_then(|id| self.view(id))
    }

    /// The open conversation, to change.
    pub fn open_view_mut(&mut self) -> Option<&mut ConversationView> {
        let id = self.open?;
        self.view_mut(id)
    }

    /// Shows conversation `id`: marks it read and moves the keys to the composer.
    pub fn open_conversation(&mut self, id: Uuid) {
        self.finish_typing();
        let Some(index) = self.conversations.iter().position(|view| view.id() == id) else { return };
        self.selected = index;
        self.open = Some(id);
        self.focus = Focus::Composer;
        self.info_highlighted = 0;
        self.chosen = None;
        if self.editing.as_ref().is_some_and(|editing| editing.conversation_id != id) {
            self.cancel_edit();
        }
        let view = &mut self.conversations[index];
        view.unread = 0;
        view.scroll = 0;
        if let Some(unsent) = view.unsent.take() {
            self.composer.put_back(&unsent);
            self.info("your text that was not sent is back in the composer");
        }
        self.command(Command::Open(id));
    }

    /// How far a message of the person's in `view` got (`None` for others' messages, and in
    /// the assistant's conversation once sent: nobody there reads).
    pub fn receipt(&self, view: &ConversationView, message: &Shown) -> Option<Receipt> {
        if Some(message.sender) != self.me() {
            return None;
        }
        match message.pending {
            Some(Pending::Queued) => return Some(Receipt::Queued),
            Some(Pending::Sending) => return Some(Receipt::Sending),
            None => {}
        }
        let others = self.others(view);
        // Rooms keep read marks, but a post is for whoever comes by: sent is all there is.
        if view.conversation.assistant || view.is_room() || others.is_empty() {
            return Some(Receipt::Sent);
        }
        let reached = |times: &BTreeMap<Uuid, Option<DateTime<Utc>>>, user: &Uuid| {
            times.get(user).copied().flatten().is_some_and(|at| at >= message.at)
        };
        let read: Vec<Uuid> = others.iter().copied().filter(|user| reached(&view.read_times, user)).collect();
        // Read implies delivered.
        let delivered =
            others.iter().filter(|user| read.contains(user) || reached(&view.delivered_times, user)).count();
        Some(if read.len() == others.len() {
            Receipt::Read
        } else if !read.is_empty() {
            Receipt::ReadBy(read)
        } else if delivered == others.len() {
            Receipt::Delivered
        } else if delivered > 0 {
            Receipt::DeliveredTo(delivered, others.len())
        } else {
            Receipt::Sent
        })
    }

    /// A receipt in words.
    pub fn receipt_text(&self, receipt: &Receipt) -> String {
        match receipt {
            Receipt::Queued => "queued: sent when the connection is back".to_owned(),
            Receipt::Sending => "sending…".to_owned(),
            Receipt::Sent => "sent".to_owned(),
            Receipt::DeliveredTo(some, all) => format!("delivered to {some} of {all}"),
            Receipt::Delivered => "delivered".to_owned(),
            Receipt::ReadBy(users) => format!("read by {}", self.names(users)),
            Receipt::Read => "read".to_owned(),
        }
    }

    /// How many of the person's messages the server does not have yet, everywhere.
    pub fn pending(&self) -> usize {
        self.conversations.iter().map(ConversationView::pending).sum()
    }

    /// The person asked to quit: done, unless messages are still queued (then they are
    /// asked first).
    pub fn request_quit(&mut self) {
        let pending = self.pending();
        if pending == 0 {
            self.quit = true;
            return;
        }
        let messages = if pending == 1 { "1 message is" } else { &format!("{pending} messages are") };
        self.confirm = Some(Confirm::Quit);
        self.error(format!("{messages} not sent yet and would be lost: quit anyway? y quits, n stays"));
    }

    /// Ends editing a message: the composer gets back what it held before.
    pub fn cancel_edit(&mut self) {
        if let Some(editing) = self.editing.take() {
            self.composer.clear();
            self.composer.put_back(&editing.draft);
        }
    }

    /// The messages the person may choose in the open conversation (↑ from an empty composer),
    /// oldest first: their own, and in a room they moderate everyone's posts too, which they
    /// may delete (as on the web client) but not edit.
    pub fn choosable_messages(&self) -> Vec<Uuid> {
        let Some(view) = self.open_view() else { return Vec::new() };
        let moderates = view.room.as_ref().is_some_and(|room| room.moderator);
        view.messages
            .iter()
            .filter(|m| m.pending.is_none() && (moderates || (Some(m.sender) == self.me() && m.text.is_ok())))
            .map(|m| m.group)
            .collect()
    }

    /// Who wrote message `group` of the open conversation, when it is someone else.
    pub fn others_message(&self, group: Uuid) -> Option<Uuid> {
        let message = self.open_view()?.messages.iter().find(|m| m.group == group)?;
        (Some(message.sender) != self.me()).then_some(message.sender)
    }

    /// Who is typing in the open conversation, as a line ("bob is typing…").
    pub fn typing_line(&self) -> Option<String> {
        let view = self.open_view()?;
        let names: Vec<String> = view.typing.keys().map(|user| self.name(*user)).collect();
        match names.as_slice() {
            [] => None,
            [one] => Some(format!("{one} is typing…")),
            [first @ .., last] => Some(format!("{} and {last} are typing…", first.join(", "))),
        }
    }

    /// Users matching the picker's filter (everyone but the person), by name.
    pub fn picker_matches(&self) -> Vec<&PublicUser> {
        let Some(picker) = &self.picker else { return Vec::new() };
        let needle = picker.find.text().trim().to_lowercase();
        let mut users: Vec<&PublicUser> = self
            .users
            .values()
            .filter(|user| Some(user.id) != self.me())
            .filter(|user| {
                needle.is_empty()
                    || picker.found.contains(&user.id)
                    || email_of(user).is_some_and(|email| email.to_lowercase().contains(&needle))
                    || user.display_name.to_lowercase().contains(&needle)
            })
            .collect();
        users.sort_by(|a, b| a.display_name.to_lowercase().cmp(&b.display_name.to_lowercase()).then(a.id.cmp(&b.id)));
        users
    }

    /// The person typed in the composer: `start_typing` now and then while they go on.
    pub fn typed(&mut self, now: Instant) {
        let Some(view) = self.open_view() else { return };
        if view.conversation.assistant {
            return;
        }
        let id = view.id();
        match self.own_typing {
            Some((conversation, sent, _)) if conversation == id && now.duration_since(sent) < TYPING_REPEAT => {
                self.own_typing = Some((id, sent, now));
            }
            _ => {
                self.own_typing = Some((id, now, now));
                self.command(Command::Typing { conversation_id: id, typing: true });
            }
        }
    }

    /// The person stopped typing (sent, cleared, or left the conversation).
    pub fn finish_typing(&mut self) {
        if let Some((conversation_id, _, _)) = self.own_typing.take() {
            self.command(Command::Typing { conversation_id, typing: false });
        }
    }

    /// Time passed: typing that was never finished expires.
    pub fn tick(&mut self, now: Instant) {
        for view in &mut self.conversations {
            view.typing.retain(|_, since| now.duration_since(*since) < TYPING_SHOWN_FOR);
        }
        if self.own_typing.is_some_and(|(_, _, last_key)| now.duration_since(last_key) >= TYPING_PAUSE) {
            self.finish_typing();
        }
    }

    /// Keeps the list in order of activity, conversations first and then rooms, the
    /// highlighted conversation highlighted.
    fn sort(&mut self) {
        let selected = self.conversations.get(self.selected).map(ConversationView::id);
        self.conversations.sort_by_key(|view| (view.is_room(), std::cmp::Reverse(view.last_activity())));
        if let Some(selected) = selected {
            self.selected = self.conversations.iter().position(|view| view.id() == selected).unwrap_or(0);
        }
    }

    /// Applies what the network task reports.
    pub fn apply(&mut self, update: Update, now: Instant) {
        self.apply_update(update, now);
        // Asked whether to quit only because of messages on their way: once they are all
        // sent, the person's wish stands.
        if self.confirm == Some(Confirm::Quit) && self.pending() == 0 {
            self.quit = true;
        }
    }

    fn apply_update(&mut self, update: Update, now: Instant) {
        match update {
            Update::SignedIn { me, users, conversations, identity_unopenable } => {
                self.login = LoginForm::default();
                self.screen = Screen::Chat;
                self.identity_unopenable = identity_unopenable;
                if identity_unopenable {
                    self.error(format!(
                        "signed in as {}, but your security key does not open with this password: nothing \
                         end-to-end can be read or sent. Ctrl-K, then r makes a new one (your contacts will \
                         see it change)",
                        me.email
                    ));
                } else {
                    self.info(format!("signed in as {} <{}>", me.display_name, me.email));
                }
                self.me = Some(me);
                self.users = users.into_iter().map(|user| (user.id, user)).collect();
                self.conversations = conversations.into_iter().map(ConversationView::new).collect();
                self.sort();
            }
            Update::SignInFailed(reason) => {
                self.login.busy = false;
                self.error(reason);
            }
            Update::Registration(registration) => {
                self.login.registration = Some(registration);
                if !self.login.fields().contains(&self.login.field()) {
                    self.login.field = Some(LoginField::Email);
                }
            }
            Update::Rooms(rooms) => self.rooms(rooms),
            Update::LeftRoom(id) => {
                let Some(index) = self.conversations.iter().position(|view| view.id() == id) else { return };
                let view = self.conversations.remove(index);
                if self.open == Some(id) {
                    self.open = None;
                    self.chosen = None;
                    self.focus = Focus::List;
                    if self.editing.as_ref().is_some_and(|editing| editing.conversation_id == id) {
                        self.cancel_edit();
                    }
                }
                self.selected = self.selected.min(self.conversations.len().saturating_sub(1));
                let title = self.title(&view);
                if let Some(room) = view.room.filter(|room| room.visibility == Visibility::Public) {
                    self.public_rooms.push(Room { joined: false, moderator: false, ..room });
                    self.public_rooms.sort_by_key(|room| room.name.to_lowercase());
                }
                self.info(format!("you left {title}"));
            }
            Update::MemberJoined { conversation_id, user_id } => {
                let name = self.name(user_id);
                let title = self.view(conversation_id).map(|view| self.title(view));
                if let Some(view) = self.view_mut(conversation_id)
                    && !view.members.contains(&user_id)
                {
                    view.members.push(user_id);
                    if let Some(count) = view.member_count.as_mut() {
                        *count += 1;
                    }
                }
                if let Some(title) = title.filter(|_| Some(user_id) != self.me()) {
                    self.info(format!("{name} joined {title}"));
                }
            }
            Update::Resuming => {
                self.login.busy = true;
                self.info(format!("signing in to {} with the kept session…", self.server));
            }
            Update::Connection(connection) => {
                if let (Connection::Unreachable(why), Screen::Login) = (&connection, self.screen) {
                    let why = why.clone();
                    if self.login.busy {
                        self.error(format!("{why}; trying again…"));
                    }
                }
                self.connection = connection;
            }
            Update::SignedOut(why) => {
                // Back to the form; what was not sent cannot go any more.
                let email = self.me.take().map(|me| me.email).unwrap_or_default();
                let server = std::mem::take(&mut self.server);
                *self = Self::new(&server);
                self.login.email.put_back(&email);
                self.error(why);
            }
            Update::Queued { conversation_id, locals } => {
                if let Some(view) = self.view_mut(conversation_id) {
                    for message in view.messages.iter_mut().filter(|m| locals.contains(&m.group)) {
                        message.pending = Some(Pending::Queued);
                    }
                }
            }
            Update::Sending { conversation_id, local } => {
                if let Some(message) =
                    self.view_mut(conversation_id).and_then(|view| view.messages.iter_mut().find(|m| m.group == local))
                {
                    message.pending = Some(Pending::Sending);
                }
            }
            Update::Sent { conversation_id, local, message } => {
                if let Some(view) = self.view_mut(conversation_id) {
                    view.messages.retain(|m| m.group != local);
                }
                self.message(conversation_id, message);
            }
            Update::Read { conversation_id, user_id, read_at } => {
                if let Some(view) = self.view_mut(conversation_id) {
                    view.read_times.insert(user_id, read_at);
                }
            }
            Update::Delivered { conversation_id, user_id, delivered_at } => {
                if let Some(view) = self.view_mut(conversation_id) {
                    view.delivered_times.insert(user_id, Some(delivered_at));
                }
            }
            Update::Found { query, users } => {
                for user in &users {
                    // Typing someone's exact address shows it, where the list did not.
                    let known = self.users.get(&user.id).is_some_and(|known| known.email.is_some());
                    if !known {
                        self.users.insert(user.id, user.clone());
                    }
                }
                if let Some(picker) = self.picker.as_mut().filter(|picker| picker.find.text().trim() == query) {
                    picker.found = users.into_iter().map(|user| user.id).collect();
                }
            }
            Update::ImageSaved { url, path } => {
                self.info(format!("the assistant's image is saved to {}", path.display()));
                self.images.insert(url, path);
            }
            Update::Users(users) => {
                self.users = users.into_iter().map(|user| (user.id, user)).collect();
            }
            Update::Contacts(contacts) => self.contacts.extend(contacts),
            Update::Notice(notice) => {
                let text = self.notice_text(&notice);
                self.error(text);
            }
            Update::Joined(joined) => self.joined(*joined),
            Update::Older { conversation_id, messages, page_token } => {
                if let Some(view) = self.view_mut(conversation_id) {
                    view.loading_older = false;
                    view.page_token = page_token;
                    for message in messages {
                        view.upsert(message);
                    }
                }
            }
            Update::Message { conversation_id, message } => self.message(conversation_id, message),
            Update::NotSent { local, conversation_id, text, reason } => {
                if let (Some(local), Some(view)) = (local, self.view_mut(conversation_id)) {
                    view.messages.retain(|m| m.group != local);
                }
                self.not_sent(conversation_id, &text, &reason);
            }
            Update::Edited { conversation_id, message } => {
                if let Some(view) = self.view_mut(conversation_id) {
                    view.upsert(message);
                }
            }
            Update::Deleted { conversation_id, group } => {
                if let Some(view) = self.view_mut(conversation_id) {
                    view.messages.retain(|m| m.group != group);
                }
                if self.chosen == Some(group) {
                    self.chosen = None;
                }
                if self.editing.as_ref().is_some_and(|editing| editing.group == group) {
                    self.cancel_edit();
                }
            }
            Update::Typing { conversation_id, user_id, typing } => {
                if let Some(view) = self.view_mut(conversation_id) {
                    if typing {
                        view.typing.insert(user_id, now);
                    } else {
                        view.typing.remove(&user_id);
                    }
                }
            }
            Update::Members { conversation, members } => match self.view_mut(conversation.id) {
                Some(view) => {
                    view.conversation = Conversation { unread: view.conversation.unread, ..conversation };
                    view.members = members;
                }
                None => {
                    let mut view = ConversationView::new(conversation);
                    view.members = members;
                    self.conversations.push(view);
                    self.sort();
                }
            },
            Update::OwnKeyReplaced(id) => {
                let title = self.title_of(id);
                if let Some(view) = self.view_mut(id) {
                    view.own_key_unopenable = false;
                }
                self.info(format!("you have a new key for {title}; its earlier messages stay unreadable"));
            }
            Update::IdentityReplaced => {
                self.identity_unopenable = false;
                self.info("you have a new security key: your contacts will see it as changed; joining again…");
            }
            Update::Alias { conversation_id, alias } => {
                if let Some(view) = self.view_mut(conversation_id) {
                    view.conversation.alias = alias;
                }
            }
            Update::MemberLeft { conversation_id, user_id } => {
                let name = self.name(user_id);
                let title = self.view(conversation_id).map(|view| self.title(view));
                if let Some(view) = self.view_mut(conversation_id) {
                    view.members.retain(|member| *member != user_id);
                    view.typing.remove(&user_id);
                    if let Some(count) = view.member_count.as_mut() {
                        *count = count.saturating_sub(1);
                    }
                }
                if let Some(title) = title {
                    self.info(format!("{name} left {title}"));
                }
            }
            Update::ModeratorAppointed { conversation_id, user_id } => {
                let me = self.me() == Some(user_id);
                let name = self.name(user_id);
                let Some(view) = self.view_mut(conversation_id) else { return };
                if me && let Some(room) = view.room.as_mut() {
                    room.moderator = true;
                }
                let title = self.title_of(conversation_id);
                // "you now moderate …" (the header says it too), or who does.
                self.info(format!("{name} now moderate{} {title}", if me { "" } else { "s" }));
            }
            Update::Delta(delta) => self.delta(delta),
            Update::DisplayName { user_id, display_name } => {
                if let Some(user) = self.users.get_mut(&user_id) {
                    user.display_name.clone_from(&display_name);
                }
                if let Some(me) = self.me.as_mut().filter(|me| me.id == user_id) {
                    me.display_name = display_name;
                }
            }
            Update::Presence(event) => {
                self.presence.apply(&event);
            }
            Update::Open(id) => {
                // What was asked for ("opening…") is done.
                self.status = None;
                self.open_conversation(id);
            }
            Update::Info(text) => self.info(text),
            Update::Error(text) => self.error(text),
        }
    }

    fn joined(&mut self, joined: Joined) {
        let Joined {
            conversation,
            members,
            messages,
            page_token,
            unread,
            own_key_unopenable,
            read_times,
            delivered_times,
            room,
            member_count,
        } = joined;
        let id = conversation.id;
        let is_open = self.open == Some(id);
        let view = match self.conversations.iter().position(|view| view.id() == id) {
            Some(index) => &mut self.conversations[index],
            None => {
                self.conversations.push(ConversationView::new(conversation.clone()));
                let last = self.conversations.len() - 1;
                &mut self.conversations[last]
            }
        };
        view.conversation = conversation;
        view.members = members;
        view.own_key_unopenable = own_key_unopenable;
        if room.is_some() {
            view.room = room;
            view.member_count = member_count;
        }
        // What is still on its way to the server stays, after the history.
        let pending: Vec<Shown> = view.messages.drain(..).filter(|m| m.pending.is_some()).collect();
        view.messages = messages;
        view.messages.extend(pending);
        view.read_times = read_times;
        view.delivered_times = delivered_times;
        view.page_token = page_token;
        view.loading_older = false;
        view.joined = true;
        view.scroll = 0;
        view.unread = if is_open { 0 } else { unread };
        if is_open && unread > 0 {
            self.command(Command::MarkRead(id));
        }
        self.sort();
    }

    fn message(&mut self, conversation_id: Uuid, message: Shown) {
        let me = self.me();
        let is_open = self.open == Some(conversation_id);
        let Some(view) = self.view_mut(conversation_id) else { return };
        let fresh = !view.messages.iter().any(|m| m.group == message.group);
        let from_other = Some(message.sender) != me;
        let (group, sender) = (message.group, message.sender);
        view.typing.remove(&message.sender);
        view.upsert(message);
        let mut streamed = None;
        if view.streaming.as_ref().is_some_and(|streaming| streaming.reply_id == group) {
            streamed = view.streaming.take().map(|streaming| streaming.parts);
        }
        if (view.conversation.assistant && from_other) || sender == ASSISTANT_ID {
            view.finished_replies.insert(group);
        }
        if fresh && from_other {
            if is_open {
                view.scroll = 0;
                self.command(Command::MarkRead(conversation_id));
            } else {
                view.unread += 1;
            }
        }
        if let Some(parts) = streamed {
            self.info(format!("the assistant's reply streamed in {parts} parts"));
        }
        self.sort();
    }

    /// A message was not sent: its text goes back to the composer if its conversation is
    /// open, or waits for the conversation to be opened; the person is told why.
    fn not_sent(&mut self, conversation_id: Uuid, text: &str, reason: &Refusal) {
        let why = self.refusal_text(reason);
        if self.open == Some(conversation_id) {
            self.composer.put_back(text);
            self.error(format!("{why}; your text is back in the composer"));
            return;
        }
        let title = self.title_of(conversation_id);
        let Some(view) = self.view_mut(conversation_id) else {
            self.error(why);
            return;
        };
        view.unsent = Some(match view.unsent.take() {
            Some(earlier) => format!("{earlier} {text}"),
            None => text.to_owned(),
        });
        self.error(format!("{why}; your text comes back when you open {title}"));
    }

    /// The rooms as the server lists them: the person's are added to the list (the network
    /// task joins them), the others kept to browse.
    fn rooms(&mut self, rooms: Vec<Room>) {
        let (joined, public): (Vec<Room>, Vec<Room>) = rooms.into_iter().partition(|room| room.joined);
        for room in joined {
            match self.view_mut(room.id) {
                Some(view) => view.room = Some(room),
                None => self.conversations.push(ConversationView::of_room(room)),
            }
        }
        self.public_rooms = public;
        self.public_rooms.sort_by_key(|room| room.name.to_lowercase());
        if let Some(dialog) = self.rooms_dialog.as_mut() {
            dialog.highlighted = dialog.highlighted.min(self.public_rooms.len().saturating_sub(1));
        }
        self.sort();
    }

    fn delta(&mut self, delta: AssistantDelta) {
        let Some(view) = self.view_mut(delta.conversation_id) else { return };
        if view.finished_replies.contains(&delta.reply_id) {
            return;
        }
        match &mut view.streaming {
            Some(streaming) if streaming.reply_id == delta.reply_id => {
                streaming.text.push_str(&delta.delta);
                streaming.parts += 1;
            }
            _ => view.streaming = Some(Streaming { reply_id: delta.reply_id, text: delta.delta, parts: 1 }),
        }
    }
}

/// States to test the interface in, reached through the updates the network task sends.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) fn conversation(id: Uuid, assistant: bool) -> Conversation {
        let now = Utc::now();
        serde_json::from_value(serde_json::json!({
            "id": id, "private": !assistant, "alias": null, "inserted_at": now, "updated_at": now,
            "assistant": assistant,
        }))
        .expect("a conversation")
    }

    pub(crate) fn signed_in(app: &mut App, me: Uuid, conversations: Vec<Conversation>) {
        let user: User = serde_json::from_value(serde_json::json!({
            "id": me, "email": "ann@example.org", "display_name": "Ann", "hidden": false, "theme": "day",
            "magnification": 1.0, "recents": [],
        }))
        .expect("a user");
        let signed_in = Update::SignedIn { me: user, users: Vec::new(), conversations, identity_unopenable: false };
        app.apply(signed_in, Instant::now());
    }

    pub(crate) fn shown(group: Uuid, sender: Uuid, text: &str) -> Shown {
        Shown {
            group,
            sender,
            text: Ok(text.to_owned()),
            at: Utc::now(),
            edited: false,
            flags: Vec::new(),
            unchecked: false,
            sent_at: None,
            pending: None,
        }
    }

    pub(crate) fn user(id: Uuid, name: &str) -> PublicUser {
        serde_json::from_value(serde_json::json!({
            "id": id, "email": format!("{}@example.org", name.to_lowercase()), "display_name": name,
        }))
        .expect("a user")
    }

    pub(crate) fn joined(app: &mut App, conversation: Conversation, members: Vec<Uuid>) {
        let joined = Joined {
            conversation,
            members,
            messages: Vec::new(),
            page_token: None,
            unread: 0,
            own_key_unopenable: false,
            read_times: BTreeMap::new(),
            room: None,
            member_count: None,
            delivered_times: BTreeMap::new(),
        };
        app.apply(Update::Joined(Box::new(joined)), Instant::now());
    }

    /// Ann, signed in, with her private conversation with Bob open: her id, Bob's, and the
    /// conversation's.
    pub(crate) fn ann_talking_to_bob(app: &mut App) -> (Uuid, Uuid, Uuid) {
        let (me, bob, id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        signed_in(app, me, vec![conversation(id, false)]);
        app.apply(Update::Users(vec![user(bob, "Bob")]), Instant::now());
        joined(app, conversation(id, false), vec![me, bob]);
        app.open_conversation(id);
        app.take_commands();
        (me, bob, id)
    }

    pub(crate) fn room(id: Uuid, name: &str, joined: bool) -> Room {
        let now = Utc::now();
        serde_json::from_value(serde_json::json!({
            "id": id, "name": name, "topic": null, "visibility": "public", "inserted_at": now,
            "updated_at": now, "joined": joined, "moderator": false,
        }))
        .expect("a room")
    }

    /// Ann, signed in with a conversation, in the room `room` (joined, no posts yet), which is
    /// open; a public room she is not in is listed to browse. Her id.
    pub(crate) fn ann_in_a_room(app: &mut App, room_id: Uuid, other: Uuid) -> Uuid {
        let me = Uuid::now_v7();
        signed_in(app, me, vec![conversation(Uuid::now_v7(), false)]);
        app.apply(Update::Rooms(vec![room(room_id, "lobby", true), room(other, "elsewhere", false)]), Instant::now());
        let joined = Joined {
            conversation: crate::network::room_entry(&room(room_id, "lobby", true)),
            members: vec![me],
            messages: Vec::new(),
            page_token: None,
            unread: 0,
            own_key_unopenable: false,
            read_times: BTreeMap::new(),
            delivered_times: BTreeMap::new(),
            room: Some(room(room_id, "lobby", true)),
            member_count: Some(1),
        };
        app.apply(Update::Joined(Box::new(joined)), Instant::now());
        app.open_conversation(room_id);
        app.take_commands();
        me
    }

    /// The network task reports `user`'s security state.
    pub(crate) fn contact(app: &mut App, user: Uuid, state: ContactState, safety_number: Option<&str>) {
        let contact = Contact { state, safety_number: safety_number.map(str::to_owned) };
        app.apply(Update::Contacts(BTreeMap::from([(user, contact)])), Instant::now());
    }
}

/// A link drawn on the screen, to be made clickable (OSC 8) once the frame is out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawnLink {
    /// Its column.
    pub x: u16,
    /// Its row.
    pub y: u16,
    /// What is shown: the address, shortened in the middle when it does not fit.
    pub label: String,
    /// The whole address.
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn a_refused_message_goes_back_to_the_composer_naming_who_blocks_it() {
        let (me, bob, id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut app = App::new("http://localhost");
        signed_in(&mut app, me, vec![conversation(id, false)]);
        app.apply(Update::Users(vec![user(bob, "Bob")]), Instant::now());
        joined(&mut app, conversation(id, false), vec![me, bob]);
        app.open_conversation(id);
        let refused = Update::NotSent {
            local: None,
            conversation_id: id,
            text: "meet at noon".to_owned(),
            reason: Refusal::KeyChanged(vec![bob]),
        };
        app.apply(refused, Instant::now());
        assert_eq!(app.composer.text(), "meet at noon");
        let status = app.status.clone().expect("a status");
        assert!(status.error);
        assert!(status.text.starts_with("not sent: Bob's security key changed"), "{}", status.text);
        // Typed meanwhile: the unsent text goes before it, nothing is lost.
        app.composer.clear();
        app.composer.insert('!');
        let waiting = Update::NotSent {
            local: None,
            conversation_id: id,
            text: "hello".to_owned(),
            reason: Refusal::Unreachable(vec![bob, Uuid::nil()]),
        };
        app.apply(waiting, Instant::now());
        assert_eq!(app.composer.text(), "hello !");
        let status = app.status.clone().expect("a status").text;
        assert!(status.contains("Bob and user 00000000 cannot be written to"), "{status}");
    }

    #[test]
    fn text_refused_in_another_conversation_waits_for_it_to_be_opened() {
        let (me, first, second) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut app = App::new("http://localhost");
        signed_in(&mut app, me, vec![conversation(first, false), conversation(second, false)]);
        app.open_conversation(second);
        let refused = Update::NotSent {
            local: None,
            conversation_id: first,
            text: "for the first".to_owned(),
            reason: Refusal::OwnKeyUnopenable,
        };
        app.apply(refused, Instant::now());
        assert!(app.composer.is_empty(), "not in the composer of another conversation");
        app.open_conversation(first);
        assert_eq!(app.composer.text(), "for the first");
        assert_eq!(app.view(first).and_then(|view| view.unsent.clone()), None);
    }

    #[test]
    fn notices_name_the_person_and_say_when_they_had_been_verified() {
        let (me, bob, id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut app = App::new("http://localhost");
        signed_in(&mut app, me, vec![conversation(id, false)]);
        app.apply(Update::Users(vec![user(bob, "Bob")]), Instant::now());
        joined(&mut app, conversation(id, false), vec![me, bob]);
        app.apply(Update::Notice(Notice::IdentityChanged { user: bob, was_verified: false }), Instant::now());
        let status = app.status.clone().expect("a status");
        assert!(status.error && status.text.starts_with("Bob's security key changed"), "{status:?}");
        assert!(!status.text.contains("had been verified"));
        app.apply(Update::Notice(Notice::IdentityChanged { user: bob, was_verified: true }), Instant::now());
        assert!(app.status.as_ref().is_some_and(|s| s.text.contains("Bob had been verified")));
        app.apply(Update::Notice(Notice::OwnKeyUnopenable { conversation: id }), Instant::now());
        assert!(app.status.as_ref().is_some_and(|s| s.text.starts_with("your key for Bob does not open")));
    }

    #[test]
    fn messages_count_as_unread_until_their_conversation_is_opened() {
        let (me, bob, id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut app = App::new("http://localhost");
        signed_in(&mut app, me, vec![conversation(id, false)]);
        let now = Instant::now();
        app.apply(Update::Message { conversation_id: id, message: shown(Uuid::now_v7(), bob, "hi") }, now);
        // The same message again (its copy on the user topic) counts once.
        let group = Uuid::now_v7();
        app.apply(Update::Message { conversation_id: id, message: shown(group, bob, "again") }, now);
        app.apply(Update::Message { conversation_id: id, message: shown(group, bob, "again") }, now);
        assert_eq!(app.view(id).map(|v| v.unread), Some(2));
        app.take_commands();
        app.open_conversation(id);
        assert_eq!(app.view(id).map(|v| v.unread), Some(0));
        assert!(matches!(app.take_commands().as_slice(), [Command::Open(opened)] if *opened == id));
        app.apply(Update::Message { conversation_id: id, message: shown(Uuid::now_v7(), bob, "seen") }, now);
        assert_eq!(app.view(id).map(|v| v.unread), Some(0));
        assert!(matches!(app.take_commands().as_slice(), [Command::MarkRead(read)] if *read == id));
    }

    #[test]
    fn a_streamed_reply_is_replaced_by_the_final_message() {
        let (me, id, reply) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut app = App::new("http://localhost");
        signed_in(&mut app, me, vec![conversation(id, true)]);
        let now = Instant::now();
        for (index, piece) in ["groq ", "reply"].into_iter().enumerate() {
            let delta = AssistantDelta {
                conversation_id: id,
                reply_id: reply,
                prompt_group: Uuid::now_v7(),
                index: index as u64,
                delta: piece.to_owned(),
            };
            app.apply(Update::Delta(delta), now);
        }
        assert_eq!(app.view(id).and_then(|v| v.streaming.as_ref()).map(|s| s.text.as_str()), Some("groq reply"));
        app.apply(Update::Message { conversation_id: id, message: shown(reply, Uuid::nil(), "groq reply") }, now);
        let view = app.view(id).expect("the conversation");
        assert!(view.streaming.is_none());
        assert_eq!(view.messages.len(), 1);
        assert_eq!(app.status.as_ref().map(|s| s.text.as_str()), Some("the assistant's reply streamed in 2 parts"));
    }

    #[test]
    fn rooms_follow_the_conversations_and_the_assistant_streams_into_them() {
        let (room, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut app = App::new("http://localhost");
        let me = ann_in_a_room(&mut app, room, other);
        assert_eq!(app.conversations.len(), 2);
        assert!(!app.conversations[0].is_room() && app.conversations[1].is_room(), "rooms come last");
        assert_eq!(app.public_rooms.iter().map(|room| room.id).collect::<Vec<_>>(), vec![other]);
        let view = app.view(room).expect("the room");
        assert_eq!(app.title(view), "lobby");
        let mine = shown(Uuid::now_v7(), me, "hello");
        app.apply(Update::Message { conversation_id: room, message: mine.clone() }, Instant::now());
        let view = app.view(room).expect("the room");
        assert_eq!(app.receipt(view, &mine), Some(Receipt::Sent), "no delivery receipts in a room");

        let reply = Uuid::now_v7();
        for piece in ["groq ", "reply"] {
            let delta = AssistantDelta {
                conversation_id: room,
                reply_id: reply,
                prompt_group: mine.group,
                index: 0,
                delta: piece.to_owned(),
            };
            app.apply(Update::Delta(delta), Instant::now());
        }
        assert_eq!(app.view(room).and_then(|v| v.streaming.as_ref()).map(|s| s.text.as_str()), Some("groq reply"));
        app.apply(
            Update::Message { conversation_id: room, message: shown(reply, ASSISTANT_ID, "groq reply") },
            Instant::now(),
        );
        let view = app.view(room).expect("the room");
        assert!(view.streaming.is_none() && view.finished_replies.contains(&reply));
        assert_eq!(view.messages.len(), 2);

        app.apply(Update::LeftRoom(room), Instant::now());
        assert_eq!((app.view(room).is_none(), app.open), (true, None));
        assert!(app.public_rooms.iter().any(|listed| listed.id == room), "a public room left can be found again");
    }

    #[test]
    fn typing_shows_until_finished_or_stale() {
        let (me, bob, id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut app = App::new("http://localhost");
        signed_in(&mut app, me, vec![conversation(id, false)]);
        app.open_conversation(id);
        let now = Instant::now();
        app.apply(Update::Typing { conversation_id: id, user_id: bob, typing: true }, now);
        assert!(app.typing_line().is_some_and(|line| line.ends_with("is typing…")));
        app.tick(now + TYPING_SHOWN_FOR);
        assert_eq!(app.typing_line(), None);
    }

    #[test]
    fn receipts_go_from_sent_to_delivered_to_read_and_say_how_far_in_a_group() {
        let (me, bob, carol, id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut app = App::new("http://localhost");
        signed_in(&mut app, me, vec![conversation(id, false)]);
        app.apply(Update::Users(vec![user(bob, "Bob"), user(carol, "Carol")]), Instant::now());
        let mut group = conversation(id, false);
        group.private = false;
        joined(&mut app, group, vec![me, bob, carol]);
        let mine = shown(Uuid::now_v7(), me, "hello");
        let at = mine.at;
        app.apply(Update::Message { conversation_id: id, message: mine.clone() }, Instant::now());
        let receipt = |app: &App| {
            let view = app.view(id).expect("the conversation");
            app.receipt_text(&app.receipt(view, &mine).expect("a receipt"))
        };
        assert_eq!(receipt(&app), "sent");
        // A receipt from before the message does not count.
        let earlier = at - chrono::Duration::seconds(1);
        app.apply(Update::Delivered { conversation_id: id, user_id: bob, delivered_at: earlier }, Instant::now());
        assert_eq!(receipt(&app), "sent");
        app.apply(Update::Delivered { conversation_id: id, user_id: bob, delivered_at: at }, Instant::now());
        assert_eq!(receipt(&app), "delivered to 1 of 2");
        app.apply(Update::Read { conversation_id: id, user_id: carol, read_at: Some(at) }, Instant::now());
        assert_eq!(receipt(&app), "read by Carol");
        app.apply(Update::Delivered { conversation_id: id, user_id: carol, delivered_at: at }, Instant::now());
        assert_eq!(receipt(&app), "read by Carol");
        app.apply(Update::Read { conversation_id: id, user_id: bob, read_at: Some(at) }, Instant::now());
        assert_eq!(receipt(&app), "read");
        let theirs = shown(Uuid::now_v7(), bob, "hi");
        assert_eq!(app.receipt(app.view(id).expect("the conversation"), &theirs), None, "only one's own");
    }
}
