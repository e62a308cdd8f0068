//! What each key does, screen by screen. The keys are listed in the help line at the
//! bottom of the screen (`render.rs`), which must be kept in step with this file.

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use hearth_client::trust::ContactState;
use zeroize::Zeroizing;

use hearth_client::api::{Registration, Visibility};

use super::app::{App, Confirm, Editing, Focus, LoginField, Picker, PickerField, RoomsDialog, RoomsField, Screen};
use super::editor::Editor;
use super::network::{Command, Pending, Shown, SignIn};

/// What the keys do while a message of the person's is chosen (said in the status line).
const CHOSEN_KEYS: &str = "your message: e edit · d delete · ↑↓ another of yours · Esc back";

/// What the keys do while someone else's post is chosen, in a room the person moderates.
const CHOSEN_POST_KEYS: &str = "a post in the room you moderate: d delete · ↑↓ another · Esc back";

/// Lines a page key scrolls the history by.
const PAGE: usize = 10;

/// What an editing key did to an editor.
#[derive(Debug, PartialEq, Eq)]
enum Edit {
    /// The text changed.
    Changed,
    /// Only the cursor moved.
    Moved,
    /// The key is not an editing key.
    Ignored,
}

/// Applies an editing key (characters, Backspace, Delete, arrows, Home, End, Ctrl-U).
fn edit(editor: &mut Editor, key: KeyEvent) -> Edit {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('u') if ctrl => {
            editor.clear();
            Edit::Changed
        }
        KeyCode::Char(_) if ctrl || key.modifiers.contains(KeyModifiers::ALT) => Edit::Ignored,
        KeyCode::Char(c) => {
            editor.insert(c);
            Edit::Changed
        }
        KeyCode::Backspace => {
            editor.backspace();
            Edit::Changed
        }
        KeyCode::Delete => {
            editor.delete();
            Edit::Changed
        }
        KeyCode::Left => {
            editor.left();
            Edit::Moved
        }
        KeyCode::Right => {
            editor.right();
            Edit::Moved
        }
        KeyCode::Home => {
            editor.home();
            Edit::Moved
        }
        KeyCode::End => {
            editor.end();
            Edit::Moved
        }
        _ => Edit::Ignored,
    }
}

impl App {
    /// Handles one key press.
    pub fn on_key(&mut self, key: KeyEvent, now: Instant) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        if let Some(confirm) = self.confirm {
            self.confirm_key(confirm, key);
            return;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.request_quit();
            return;
        }
        match self.screen {
            Screen::Login => self.login_key(key),
            Screen::Chat if self.picker.is_some() => self.picker_key(key),
            Screen::Chat if self.rooms_dialog.is_some() => self.rooms_key(key),
            Screen::Chat => self.chat_key(key, now),
        }
    }

    /// y or n to what the person is asked (Esc is n).
    fn confirm_key(&mut self, confirm: Confirm, key: KeyEvent) {
        let yes = match key.code {
            KeyCode::Char('y' | 'Y') => true,
            KeyCode::Char('n' | 'N') | KeyCode::Esc => false,
            _ => return,
        };
        self.confirm = None;
        self.status = None;
        match (confirm, yes) {
            (Confirm::Quit, true) => self.quit = true,
            (Confirm::Delete { conversation_id, group }, true) => {
                self.chosen = None;
                self.info("deleting…");
                self.command(Command::Delete { conversation_id, group });
            }
            (Confirm::LeaveRoom(id), true) => {
                self.info("leaving…");
                self.command(Command::LeaveRoom(id));
            }
            (_, false) => {}
        }
    }

    fn login_key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let fields = self.login.fields();
        let at = fields.iter().position(|field| *field == self.login.field()).unwrap_or(0);
        match key.code {
            KeyCode::Esc => {
                let typed = [&self.login.email, &self.login.password, &self.login.display_name, &self.login.invite];
                if typed.iter().all(|editor| editor.is_empty()) {
                    self.quit = true;
                } else {
                    self.error("Esc does not quit while something is typed: Ctrl-U clears a field, Ctrl-C quits");
                }
            }
            KeyCode::Char('r') if ctrl => {
                self.login.register = !self.login.register;
                if !self.login.fields().contains(&self.login.field()) {
                    self.login.field = Some(LoginField::Email);
                }
            }
            KeyCode::Tab | KeyCode::Down => self.login.field = Some(fields[(at + 1) % fields.len()]),
            KeyCode::BackTab | KeyCode::Up => self.login.field = Some(fields[(at + fields.len() - 1) % fields.len()]),
            KeyCode::Enter => self.submit_login(),
            _ => {
                edit(self.login.editor(), key);
            }
        }
    }

    fn submit_login(&mut self) {
        if self.login.busy {
            return;
        }
        if self.login.sign_up_closed() {
            self.error("sign-up is closed on this server: log in (Ctrl-R) or ask its administrators");
            return;
        }
        if self.login.email.text().trim().is_empty() {
            self.login.field = Some(LoginField::Email);
            self.error("enter your email address");
            return;
        }
        if self.login.password.is_empty() {
            self.login.field = Some(LoginField::Password);
            self.error("enter your password");
            return;
        }
        let invite = self.login.invite.text().trim().to_owned();
        let invited = self.login.register && self.login.registration == Some(Registration::Invite);
        if invited && invite.is_empty() {
            self.login.field = Some(LoginField::Invite);
            self.error("this server signs people up by invitation: enter your invite code");
            return;
        }
        let display_name = self.login.display_name.text().trim();
        let request = SignIn {
            register: self.login.register,
            email: self.login.email.text().trim().to_owned(),
            // Moved out of the form: zeroized once the SDK has derived the keys from it.
            password: Zeroizing::new(self.login.password.take()),
            display_name: (self.login.register && !display_name.is_empty()).then(|| display_name.to_owned()),
            invite: invited.then_some(invite),
        };
        self.login.busy = true;
        self.info(if request.register { "registering…" } else { "signing in…" });
        self.command(Command::SignIn(request));
    }

    fn chat_key(&mut self, key: KeyEvent, now: Instant) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc if self.info => self.info = false,
            KeyCode::Esc if self.chosen.is_some() => {
                self.chosen = None;
                self.status = None;
            }
            KeyCode::Esc if self.editing.is_some() => {
                self.cancel_edit();
                self.info("not edited");
            }
            KeyCode::Esc if !self.composer.is_empty() => {
                self.error("Esc does not quit while you have typed text: Enter sends it, Ctrl-U clears it");
            }
            KeyCode::Esc => self.request_quit(),
            KeyCode::Char('n') if ctrl => {
                self.picker = Some(Picker {
                    find: Editor::default(),
                    alias: Editor::default(),
                    field: PickerField::Find,
                    highlighted: 0,
                    picked: Default::default(),
                    found: Default::default(),
                });
                // Someone may have registered since the list was read.
                self.command(Command::RefreshUsers);
            }
            KeyCode::Char('a') if ctrl => {
                self.info("opening the assistant…");
                self.command(Command::OpenAssistant);
            }
            KeyCode::Char('k') if ctrl => self.info = !self.info,
            KeyCode::Char('r') if ctrl => {
                self.rooms_dialog = Some(RoomsDialog {
                    field: RoomsField::Browse,
                    highlighted: 0,
                    name: Editor::default(),
                    public: true,
                });
                // Rooms may have been made since they were read.
                self.command(Command::RefreshRooms);
            }
            KeyCode::Char('l') if ctrl => match self.open_view().and_then(|view| view.room.as_ref()) {
                Some(room) => {
                    let (id, name) = (room.id, room.name.clone());
                    self.confirm = Some(Confirm::LeaveRoom(id));
                    self.error(format!("leave the room {name}? y leaves, n stays"));
                }
                None => self.info("Ctrl-L leaves a room: open one first"),
            },
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    Focus::List => Focus::Composer,
                    Focus::Composer => Focus::List,
                };
            }
            KeyCode::PageUp => self.scroll_up(),
            KeyCode::PageDown => {
                if let Some(view) = self.open_view_mut() {
                    view.scroll = view.scroll.saturating_sub(PAGE);
                }
            }
            _ if self.info => self.security_key(key),
            _ => match self.focus {
                Focus::List => self.list_key(key),
                Focus::Composer => self.composer_key(key, now),
            },
        }
    }

    /// A key in the security pane: choose a member, mark them verified, accept their changed
    /// security key, or replace a key of the person's own that does not open.
    fn security_key(&mut self, key: KeyEvent) {
        if key.code == KeyCode::Char('r') {
            if self.identity_unopenable {
                self.info("making a new security key…");
                self.command(Command::ReplaceIdentity);
            } else {
                self.info("your security key opens: it needs no replacing");
            }
            return;
        }
        let Some(view) = self.open_view() else { return };
        let (id, own_key_unopenable, members) = (view.id(), view.own_key_unopenable, self.others(view).len());
        let member = self.highlighted_member();
        let name = member.map(|member| self.name(member)).unwrap_or_default();
        match (key.code, member) {
            (KeyCode::Up, _) => self.info_highlighted = self.info_highlighted.saturating_sub(1),
            (KeyCode::Down, _) => self.info_highlighted = (self.info_highlighted + 1).min(members.saturating_sub(1)),
            (KeyCode::Char('v'), Some(member)) => match self.contact_state(member) {
                ContactState::Trusted { verified: false } => {
                    self.info(format!("marking {name} verified…"));
                    self.command(Command::MarkVerified(member));
                }
                ContactState::Trusted { verified: true } => self.info(format!("{name} is verified already")),
                ContactState::Changed { .. } => {
                    self.error(format!("{name}'s security key changed: accept it (a) before marking it verified"));
                }
                ContactState::NoIdentity => self.error(format!("{name} has no security key yet: nothing to verify")),
            },
            (KeyCode::Char('a'), Some(member)) => {
                if let ContactState::Changed { .. } = self.contact_state(member) {
                    self.info(format!("accepting {name}'s new security key…"));
                    self.command(Command::AcceptSecurityKey(member));
                } else {
                    self.info(format!("{name}'s security key has not changed: nothing to accept"));
                }
            }
            (KeyCode::Char('n'), _) => {
                if own_key_unopenable {
                    self.info("making a new key of yours for this conversation…");
                    self.command(Command::ReplaceOwnKey(id));
                } else {
                    self.info("your key for this conversation opens: it needs no replacing");
                }
            }
            _ => {}
        }
    }

    /// Scrolls the history up a page; at the top, asks for the page before.
    fn scroll_up(&mut self) {
        let Some(view) = self.open_view_mut() else { return };
        if view.scroll < view.max_scroll {
            view.scroll = (view.scroll + PAGE).min(view.max_scroll);
            return;
        }
        match (&view.page_token, view.loading_older) {
            (Some(token), false) => {
                let command = Command::LoadOlder { conversation_id: view.id(), page_token: token.clone() };
                view.loading_older = true;
                self.command(command);
                self.info("loading older messages…");
            }
            (None, _) => self.info("this is the beginning of the conversation"),
            (Some(_), true) => {}
        }
    }

    fn list_key(&mut self, key: KeyEvent) {
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(self.conversations.len().saturating_sub(1));
            }
            KeyCode::Enter => {
                if let Some(id) = self.conversations.get(self.selected).map(|view| view.id()) {
                    self.open_conversation(id);
                }
            }
            _ => {}
        }
    }

    fn composer_key(&mut self, key: KeyEvent, now: Instant) {
        if self.chosen.is_some() && self.chosen_key(key) {
            return;
        }
        if key.code == KeyCode::Up && self.composer.is_empty() && self.editing.is_none() {
            match self.choosable_messages().last() {
                Some(last) => self.choose(*last),
                None => self.info("nothing of yours to edit here"),
            }
            return;
        }
        if key.code == KeyCode::Enter {
            self.send();
            return;
        }
        if edit(&mut self.composer, key) == Edit::Changed {
            if self.composer.is_empty() {
                self.finish_typing();
            } else {
                self.typed(now);
            }
        }
    }

    /// Chooses message `group` and says what the keys do with it.
    fn choose(&mut self, group: uuid::Uuid) {
        self.chosen = Some(group);
        self.info(if self.others_message(group).is_some() { CHOSEN_POST_KEYS } else { CHOSEN_KEYS });
    }

    /// A key while a message is chosen (one of the person's, or any post of a room they
    /// moderate): whether it was for the choice (any other key lets the choice go, and does
    /// what it does).
    fn chosen_key(&mut self, key: KeyEvent) -> bool {
        let Some(chosen) = self.chosen else { return false };
        let choosable = self.choosable_messages();
        let Some(at) = choosable.iter().position(|group| *group == chosen) else {
            self.chosen = None;
            return false;
        };
        let Some(conversation_id) = self.open else { return false };
        let others = self.others_message(chosen);
        match key.code {
            KeyCode::Up => self.choose(choosable[at.saturating_sub(1)]),
            KeyCode::Down if at + 1 < choosable.len() => self.choose(choosable[at + 1]),
            KeyCode::Down => {
                self.chosen = None;
                self.status = None;
            }
            KeyCode::Char('e') | KeyCode::Enter if others.is_some() => {
                self.info("only the person who wrote a post edits it; d deletes it, as you moderate this room");
            }
            KeyCode::Char('e') | KeyCode::Enter => {
                let text = self
                    .open_view()
                    .and_then(|view| view.messages.iter().find(|m| m.group == chosen))
                    .and_then(|m| m.text.clone().ok())
                    .unwrap_or_default();
                let draft = self.composer.take();
                self.composer.put_back(&text);
                self.editing = Some(Editing { conversation_id, group: chosen, draft });
                self.chosen = None;
                self.info("editing your message: Enter saves, Esc cancels");
            }
            KeyCode::Char('d') | KeyCode::Delete => {
                self.confirm = Some(Confirm::Delete { conversation_id, group: chosen });
                match others {
                    Some(sender) => {
                        let name = self.name(sender);
                        self.error(format!(
                            "delete {name}'s post for everyone, as this room's moderator? y deletes, n keeps it"
                        ));
                    }
                    None => self.error("delete this message for everyone? y deletes, n keeps it"),
                }
            }
            _ => {
                self.chosen = None;
                self.status = None;
                return false;
            }
        }
        true
    }

    fn send(&mut self) {
        let text = self.composer.text().trim().to_owned();
        if text.is_empty() {
            return;
        }
        if let Some(editing) = self.editing.take() {
            let Editing { conversation_id, group, draft } = editing;
            self.composer.clear();
            self.composer.put_back(&draft);
            self.info("saving your edit…");
            self.command(Command::Edit { conversation_id, group, text });
            return;
        }
        let Some(view) = self.open_view() else {
            self.error("open a conversation first (Tab to the list, Enter to open)");
            return;
        };
        if !view.joined {
            self.error("still joining this conversation; try again in a moment");
            return;
        }
        let conversation_id = view.id();
        let Some(me) = self.me() else { return };
        self.composer.clear();
        self.finish_typing();
        // Shown at once, as on its way, under an id of its own until the server has it.
        let local = uuid::Uuid::now_v7();
        let pending = Shown {
            group: local,
            sender: me,
            text: Ok(text.clone()),
            at: chrono::Utc::now(),
            edited: false,
            flags: Vec::new(),
            unchecked: false,
            sent_at: None,
            pending: Some(Pending::Sending),
        };
        if let Some(view) = self.open_view_mut() {
            view.scroll = 0;
            view.messages.push(pending);
        }
        self.command(Command::Send { conversation_id, local, text });
    }

    fn picker_key(&mut self, key: KeyEvent) {
        let matches: Vec<uuid::Uuid> = self.picker_matches().iter().map(|user| user.id).collect();
        let Some(picker) = self.picker.as_mut() else { return };
        match key.code {
            KeyCode::Esc => self.picker = None,
            KeyCode::Tab | KeyCode::BackTab => {
                picker.field = match picker.field {
                    PickerField::Find => PickerField::Alias,
                    PickerField::Alias => PickerField::Find,
                };
            }
            KeyCode::Up => picker.highlighted = picker.highlighted.saturating_sub(1),
            KeyCode::Down => picker.highlighted = (picker.highlighted + 1).min(matches.len().saturating_sub(1)),
            KeyCode::Char(' ') if picker.field == PickerField::Find => {
                if let Some(user) = matches.get(picker.highlighted)
                    && !picker.picked.remove(user)
                {
                    picker.picked.insert(*user);
                }
            }
            KeyCode::Enter => self.start_picked(&matches),
            _ => {
                let field = picker.field;
                let editor = match field {
                    PickerField::Find => &mut picker.find,
                    PickerField::Alias => &mut picker.alias,
                };
                if edit(editor, key) == Edit::Changed && field == PickerField::Find {
                    picker.highlighted = 0;
                    picker.found.clear();
                    // The server finds people by name, and by an exact email it may not show.
                    let query = picker.find.text().trim().to_owned();
                    // The server's limit: an address is at most 320 characters.
                    if !query.is_empty() && query.chars().count() <= 320 {
                        self.command(Command::FindUsers(query));
                    }
                }
            }
        }
    }

    /// A key in the rooms dialog: ↑↓ and Enter join a public room; Tab goes to the name of a
    /// new room, where Enter makes it and Ctrl-P switches it between public and private.
    fn rooms_key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let public_rooms = self.public_rooms.len();
        let Some(dialog) = self.rooms_dialog.as_mut() else { return };
        match key.code {
            KeyCode::Esc => self.rooms_dialog = None,
            KeyCode::Tab | KeyCode::BackTab => {
                dialog.field = match dialog.field {
                    RoomsField::Browse => RoomsField::Name,
                    RoomsField::Name => RoomsField::Browse,
                };
            }
            KeyCode::Char('p') if ctrl => dialog.public = !dialog.public,
            KeyCode::Up if dialog.field == RoomsField::Browse => {
                dialog.highlighted = dialog.highlighted.saturating_sub(1);
            }
            KeyCode::Down if dialog.field == RoomsField::Browse => {
                dialog.highlighted = (dialog.highlighted + 1).min(public_rooms.saturating_sub(1));
            }
            KeyCode::Enter if dialog.field == RoomsField::Browse => {
                let Some(room) = self.public_rooms.get(dialog.highlighted) else {
                    self.error("no public room to join: Tab, then name one to make it");
                    return;
                };
                let (id, name) = (room.id, room.name.clone());
                self.rooms_dialog = None;
                self.info(format!("joining {name}…"));
                self.command(Command::JoinRoom(id));
            }
            KeyCode::Enter => {
                let name = dialog.name.text().trim().to_owned();
                if name.is_empty() {
                    self.error("name the room first");
                    return;
                }
                let visibility = if dialog.public { Visibility::Public } else { Visibility::Private };
                self.rooms_dialog = None;
                self.info(format!("making the room {name}…"));
                self.command(Command::CreateRoom { name, visibility });
            }
            _ if dialog.field == RoomsField::Name => {
                edit(&mut dialog.name, key);
            }
            _ => {}
        }
    }

    /// Starts the conversation the picker describes: one person and no name is a private
    /// conversation, anything more a group.
    fn start_picked(&mut self, matches: &[uuid::Uuid]) {
        let Some(picker) = self.picker.as_ref() else { return };
        let mut picked: Vec<uuid::Uuid> = picker.picked.iter().copied().collect();
        if picked.is_empty() {
            match matches.get(picker.highlighted) {
                Some(user) => picked.push(*user),
                None => {
                    self.error("nobody matches: pick someone (Space) or change the search");
                    return;
                }
            }
        }
        let alias = picker.alias.text().trim().to_owned();
        self.picker = None;
        if let ([other], true) = (picked.as_slice(), alias.is_empty()) {
            self.info(format!("opening the conversation with {}…", self.name(*other)));
            self.command(Command::StartPrivate(*other));
        } else {
            self.info("starting the group…");
            self.command(Command::StartGroup { user_ids: picked, alias: (!alias.is_empty()).then_some(alias) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(app: &mut App, code: KeyCode) {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE), Instant::now());
    }

    fn ctrl(app: &mut App, c: char) {
        app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL), Instant::now());
    }

    fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    #[test]
    fn the_login_form_sends_a_registration_and_forgets_the_password() {
        let mut app = App::new("http://localhost");
        ctrl(&mut app, 'r');
        type_text(&mut app, "ann@example.org");
        press(&mut app, KeyCode::Tab);
        type_text(&mut app, "correct horse");
        press(&mut app, KeyCode::Tab);
        type_text(&mut app, "Ann");
        press(&mut app, KeyCode::Enter);
        let commands = app.take_commands();
        let [Command::SignIn(request)] = commands.as_slice() else { panic!("a sign-in, got {commands:?}") };
        assert!(request.register);
        assert_eq!((request.email.as_str(), request.password.as_str()), ("ann@example.org", "correct horse"));
        assert_eq!(request.display_name.as_deref(), Some("Ann"));
        assert!(app.login.password.is_empty(), "the form keeps no password");
        assert!(!format!("{commands:?}").contains("correct horse"), "nor does a debug print");
        // Waiting for the server: a second Enter sends nothing.
        press(&mut app, KeyCode::Enter);
        assert!(app.take_commands().is_empty());
    }

    #[test]
    fn the_security_pane_verifies_and_accepts_the_highlighted_member_and_types_nothing() {
        use crate::app::testing::{ann_talking_to_bob, contact};

        let mut app = App::new("http://localhost");
        let (_, bob, id) = ann_talking_to_bob(&mut app);
        contact(&mut app, bob, ContactState::Trusted { verified: false }, Some("12345"));
        ctrl(&mut app, 'k');
        assert!(app.info);
        press(&mut app, KeyCode::Down);
        assert_eq!(app.highlighted_member(), Some(bob), "one member: Down stays on him");
        press(&mut app, KeyCode::Char('a'));
        assert!(app.take_commands().is_empty(), "his key has not changed");
        press(&mut app, KeyCode::Char('v'));
        assert!(matches!(app.take_commands().as_slice(), [Command::MarkVerified(user)] if *user == bob));
        contact(&mut app, bob, ContactState::Changed { was_verified: true }, Some("67890"));
        press(&mut app, KeyCode::Char('v'));
        assert!(app.take_commands().is_empty(), "a changed key is accepted before it is verified");
        press(&mut app, KeyCode::Char('a'));
        assert!(matches!(app.take_commands().as_slice(), [Command::AcceptSecurityKey(user)] if *user == bob));
        press(&mut app, KeyCode::Char('n'));
        assert!(app.take_commands().is_empty(), "Ann's own key opens");
        assert!(app.composer.is_empty(), "the pane's keys are not typed");
        press(&mut app, KeyCode::Esc);
        assert!(!app.info && !app.quit, "Esc closes the pane first");
        let own_key = crate::network::Joined {
            conversation: app.view(id).expect("the conversation").conversation.clone(),
            members: app.view(id).expect("the conversation").members.clone(),
            messages: Vec::new(),
            page_token: None,
            unread: 0,
            own_key_unopenable: true,
            read_times: std::collections::BTreeMap::new(),
            delivered_times: std::collections::BTreeMap::new(),
            room: None,
            member_count: None,
        };
        app.apply(crate::network::Update::Joined(Box::new(own_key)), Instant::now());
        ctrl(&mut app, 'k');
        press(&mut app, KeyCode::Char('n'));
        assert!(
            matches!(app.take_commands().as_slice(), [Command::ReplaceOwnKey(conversation)] if *conversation == id)
        );
    }

    #[test]
    fn the_sign_up_form_asks_for_an_invite_code_or_says_sign_up_is_closed() {
        use crate::network::Update;

        let mut app = App::new("http://localhost");
        app.apply(Update::Registration(Registration::Invite), Instant::now());
        ctrl(&mut app, 'r');
        assert!(app.login.fields().contains(&LoginField::Invite));
        type_text(&mut app, "ann@example.org");
        press(&mut app, KeyCode::Tab);
        type_text(&mut app, "correct horse");
        press(&mut app, KeyCode::Enter);
        assert!(app.take_commands().is_empty(), "no code yet");
        assert_eq!(app.login.field(), LoginField::Invite);
        type_text(&mut app, "the-code");
        press(&mut app, KeyCode::Enter);
        let commands = app.take_commands();
        let [Command::SignIn(request)] = commands.as_slice() else { panic!("a sign-in, got {commands:?}") };
        assert_eq!(request.invite.as_deref(), Some("the-code"));

        let mut app = App::new("http://localhost");
        app.apply(Update::Registration(Registration::Closed), Instant::now());
        ctrl(&mut app, 'r');
        assert!(app.login.sign_up_closed() && !app.login.fields().contains(&LoginField::Invite));
        type_text(&mut app, "ann@example.org");
        press(&mut app, KeyCode::Tab);
        type_text(&mut app, "correct horse");
        press(&mut app, KeyCode::Enter);
        assert!(app.take_commands().is_empty());
        assert!(app.status.as_ref().is_some_and(|s| s.text.starts_with("sign-up is closed")));
        ctrl(&mut app, 'r');
        press(&mut app, KeyCode::Enter);
        assert!(matches!(app.take_commands().as_slice(), [Command::SignIn(request)] if !request.register));
    }

    #[test]
    fn the_rooms_dialog_joins_and_makes_rooms_and_ctrl_l_leaves_one() {
        use crate::app::testing::ann_in_a_room;

        let (room, other) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let mut app = App::new("http://localhost");
        ann_in_a_room(&mut app, room, other);
        ctrl(&mut app, 'r');
        assert!(matches!(app.take_commands().as_slice(), [Command::RefreshRooms]));
        press(&mut app, KeyCode::Enter);
        assert!(matches!(app.take_commands().as_slice(), [Command::JoinRoom(id)] if *id == other));
        assert!(app.rooms_dialog.is_none());

        ctrl(&mut app, 'r');
        app.take_commands();
        press(&mut app, KeyCode::Tab);
        type_text(&mut app, "plans");
        ctrl(&mut app, 'p');
        press(&mut app, KeyCode::Enter);
        let commands = app.take_commands();
        let [Command::CreateRoom { name, visibility }] = commands.as_slice() else { panic!("{commands:?}") };
        assert_eq!((name.as_str(), *visibility), ("plans", Visibility::Private));
        assert!(app.composer.is_empty(), "the dialog's keys are not typed");

        ctrl(&mut app, 'l');
        assert!(app.take_commands().is_empty(), "asked first");
        press(&mut app, KeyCode::Char('y'));
        assert!(matches!(app.take_commands().as_slice(), [Command::LeaveRoom(id)] if *id == room));
    }

    #[test]
    fn a_moderator_chooses_any_post_of_the_room_to_delete_but_edits_only_their_own() {
        use crate::app::testing::{ann_in_a_room, shown};
        use crate::network::Update;

        let (room_id, other) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let mut app = App::new("http://localhost");
        let me = ann_in_a_room(&mut app, room_id, other);
        let (bob, mine, bobs) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        app.apply(Update::Message { conversation_id: room_id, message: shown(mine, me, "hello") }, Instant::now());
        app.apply(Update::Message { conversation_id: room_id, message: shown(bobs, bob, "spam") }, Instant::now());
        let said = |app: &App| app.status.as_ref().map(|status| status.text.clone()).unwrap_or_default();

        // A member who does not moderate chooses only her own.
        press(&mut app, KeyCode::Up);
        assert_eq!((app.chosen, said(&app)), (Some(mine), CHOSEN_KEYS.to_owned()));
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.chosen, None);

        // Someone else appointed: nothing changes for her.
        app.apply(Update::ModeratorAppointed { conversation_id: room_id, user_id: bob }, Instant::now());
        press(&mut app, KeyCode::Up);
        assert_eq!(app.chosen, Some(mine));
        press(&mut app, KeyCode::Esc);

        // The room's last moderator left and she moderates it now (`moderator_appointed`).
        app.apply(Update::ModeratorAppointed { conversation_id: room_id, user_id: me }, Instant::now());
        assert!(said(&app).starts_with("you now moderate"), "{}", said(&app));
        press(&mut app, KeyCode::Up);
        assert_eq!((app.chosen, said(&app)), (Some(bobs), CHOSEN_POST_KEYS.to_owned()));
        press(&mut app, KeyCode::Char('e'));
        assert!(app.editing.is_none() && app.composer.is_empty(), "another's post is not edited");
        assert_eq!(app.chosen, Some(bobs));
        assert!(said(&app).starts_with("only the person who wrote a post edits it"), "{}", said(&app));
        press(&mut app, KeyCode::Up);
        assert_eq!((app.chosen, said(&app)), (Some(mine), CHOSEN_KEYS.to_owned()));
        press(&mut app, KeyCode::Down);
        assert_eq!(app.chosen, Some(bobs));
        app.take_commands();
        press(&mut app, KeyCode::Char('d'));
        assert!(app.take_commands().is_empty(), "asked first");
        let asked = said(&app);
        assert!(asked.contains("'s post for everyone, as this room's moderator? y deletes"), "{asked}");
        press(&mut app, KeyCode::Char('y'));
        let commands = app.take_commands();
        let [Command::Delete { conversation_id, group }] = commands.as_slice() else { panic!("{commands:?}") };
        assert_eq!((*conversation_id, *group), (room_id, bobs));
    }

    #[test]
    fn ctrl_c_and_esc_quit() {
        let mut app = App::new("http://localhost");
        ctrl(&mut app, 'c');
        assert!(app.quit);
        let mut app = App::new("http://localhost");
        press(&mut app, KeyCode::Esc);
        assert!(app.quit);
    }
}

#[cfg(test)]
mod sending {
    use super::*;
    use crate::app::testing::{ann_talking_to_bob, shown};
    use crate::network::{Pending, Refusal, Update};

    fn press(app: &mut App, code: KeyCode) {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE), Instant::now());
    }

    fn sent_local(app: &mut App) -> uuid::Uuid {
        match app.take_commands().as_slice() {
            [.., Command::Send { local, .. }] => *local,
            other => panic!("a send, got {other:?}"),
        }
    }

    #[test]
    fn a_message_is_pending_until_the_server_has_it_and_refused_text_comes_back() {
        let mut app = App::new("http://localhost");
        let (me, bob, id) = ann_talking_to_bob(&mut app);
        for c in "hello".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        press(&mut app, KeyCode::Enter);
        let local = sent_local(&mut app);
        assert_eq!(app.pending(), 1);
        let refused = Update::NotSent {
            local: Some(local),
            conversation_id: id,
            text: "hello".to_owned(),
            reason: Refusal::KeyChanged(vec![bob]),
        };
        app.apply(refused, Instant::now());
        assert_eq!((app.pending(), app.composer.text()), (0, "hello"));
        press(&mut app, KeyCode::Enter);
        let local = sent_local(&mut app);
        app.apply(Update::Queued { conversation_id: id, locals: vec![local] }, Instant::now());
        let view = app.view(id).expect("the conversation");
        assert_eq!(view.messages.last().and_then(|m| m.pending), Some(Pending::Queued));
        app.apply(Update::Sending { conversation_id: id, local }, Instant::now());
        let stored = shown(uuid::Uuid::now_v7(), me, "hello");
        app.apply(Update::Sent { conversation_id: id, local, message: stored.clone() }, Instant::now());
        app.apply(Update::Message { conversation_id: id, message: stored }, Instant::now());
        assert_eq!(app.pending(), 0, "{:?}", app.view(id).map(|v| &v.messages));
        assert_eq!(app.view(id).map(|v| v.messages.len()), Some(1));
        press(&mut app, KeyCode::Esc);
        assert!(app.quit, "nothing queued: Esc quits");
    }
}

#[cfg(test)]
mod quitting {
    use super::*;
    use crate::app::testing::{ann_talking_to_bob, shown};
    use crate::network::Update;

    fn press(app: &mut App, code: KeyCode) {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE), Instant::now());
    }

    #[test]
    fn esc_never_quits_with_text_typed_and_quitting_with_queued_messages_asks() {
        let mut app = App::new("http://localhost");
        press(&mut app, KeyCode::Char('a'));
        press(&mut app, KeyCode::Esc);
        assert!(!app.quit, "the form has text");
        let (me, _, id) = ann_talking_to_bob(&mut app);
        press(&mut app, KeyCode::Char('x'));
        press(&mut app, KeyCode::Esc);
        assert!(!app.quit && app.status.as_ref().is_some_and(|s| s.text.starts_with("Esc does not quit")));
        press(&mut app, KeyCode::Enter);
        let Some(Command::Send { local, .. }) = app.take_commands().pop() else { panic!("a send") };
        app.apply(Update::Queued { conversation_id: id, locals: vec![local] }, Instant::now());
        // Esc asks; n stays.
        press(&mut app, KeyCode::Esc);
        assert!(!app.quit && app.confirm.is_some());
        press(&mut app, KeyCode::Char('n'));
        assert!(!app.quit && app.confirm.is_none());
        // Ctrl-C asks too; y quits.
        app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), Instant::now());
        assert!(!app.quit && app.confirm.is_some());
        press(&mut app, KeyCode::Char('y'));
        assert!(app.quit);
        // Asked, and the message goes out meanwhile: the client quits.
        let mut app = App::new("http://localhost");
        let (_, _, id) = ann_talking_to_bob(&mut app);
        press(&mut app, KeyCode::Char('x'));
        press(&mut app, KeyCode::Enter);
        let Some(Command::Send { local, .. }) = app.take_commands().pop() else { panic!("a send") };
        press(&mut app, KeyCode::Esc);
        assert!(!app.quit && app.confirm.is_some());
        let message = shown(uuid::Uuid::now_v7(), me, "x");
        app.apply(Update::Sent { conversation_id: id, local, message }, Instant::now());
        assert!(app.quit);
    }
}
