//! Drawing the screen from the state. Messages are shown as text, never interpreted.

use chrono::{DateTime, Local, Utc};
use hearth_client::e2e::Flag;
use hearth_client::trust::ContactState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};
use uuid::Uuid;

use hearth_client::api::{ASSISTANT_ID, Visibility};

use super::app::{
    App, ConversationView, DrawnLink, Focus, LoginField, PickerField, Receipt, RoomsField, Screen, email_of,
};
use super::editor::Editor;
use super::network::Connection;

/// Width of the conversation list.
const LIST_WIDTH: u16 = 32;

/// Width of the security pane (a safety number's half, 35 columns, fits with its indent).
const INFO_WIDTH: u16 = 46;

/// The keys of the chat screen (see `input.rs`), on two lines.
const CHAT_KEYS: &str = "Tab pane · ↑↓ Enter open/send · ↑ edit yours · PgUp/Dn · Ctrl-N new · \
     Ctrl-A assistant · Ctrl-K security · Esc quit";

/// The keys of rooms (see `input.rs`), the help's second line.
const ROOM_KEYS: &str = "Ctrl-R rooms: browse, join, make · @assistant <question> asks the assistant · Ctrl-L \
     leaves · moderators: ↑ any post";

/// Said wherever a room shows.
const NOT_E2E: &str = "not end-to-end encrypted";

/// The keys of the security pane, while it is up (see `input.rs`).
const SECURITY_KEYS: &str = "↑↓ member · v verified (safety numbers match) · a accept changed key · n new own key · r new security key · Esc close";

fn dim() -> Style {
    Style::default().fg(Color::DarkGray)
}

fn focused(is: bool) -> Style {
    if is { Style::default().fg(Color::Cyan) } else { Style::default() }
}

/// A line of the history, and the link it shows (at which column), if it is one.
struct HistoryLine {
    line: Line<'static>,
    link: Option<(usize, String, String)>,
}

impl From<Line<'static>> for HistoryLine {
    fn from(line: Line<'static>) -> Self {
        Self { line, link: None }
    }
}

/// Draws the whole screen. Takes the state mutably only to record how far each history can
/// scroll and where links are, which depend on the terminal's size.
pub fn draw(frame: &mut Frame, app: &mut App) {
    app.links.clear();
    match app.screen {
        Screen::Login => login(frame, app),
        Screen::Chat => chat(frame, app),
    }
}

/// The status line: the connection's state, always, then what there is to say.
fn status_line(app: &App) -> Line<'static> {
    let mut spans = connection_spans(app);
    match &app.status {
        Some(status) if status.error => {
            spans.push(Span::styled(format!(" ⚠ {}", status.text), Style::default().fg(Color::Red)));
        }
        Some(status) => spans.push(Span::raw(format!(" {}", status.text))),
        None => {}
    }
    Line::from(spans)
}

/// The connection's state in a few words, with what waits for it.
fn connection_spans(app: &App) -> Vec<Span<'static>> {
    let yellow = Style::default().fg(Color::Yellow);
    let (text, style) = match &app.connection {
        Connection::SignedOut => return Vec::new(),
        Connection::Connecting => ("◌ connecting…", yellow),
        Connection::Connected => ("● connected", Style::default().fg(Color::Green)),
        Connection::Reconnecting => ("◌ reconnecting…", yellow),
        Connection::Unreachable(_) => ("✕ server unreachable", Style::default().fg(Color::Red)),
    };
    let mut spans = vec![Span::raw(" ["), Span::styled(text, style)];
    let pending = app.pending();
    if pending > 0 {
        spans.push(Span::styled(format!(" · {pending} queued"), yellow));
    }
    spans.push(Span::raw("]"));
    spans
}

fn login(frame: &mut Frame, app: &App) {
    let [form_area, status_area] = Layout::vertical([Constraint::Min(12), Constraint::Length(1)]).areas(frame.area());
    let area = form_area.centered(Constraint::Length(72), Constraint::Length(12));
    let form = &app.login;
    let block = Block::bordered().title(" hearth chat ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mode = if form.register {
        "Register a new account   (Ctrl-R: log in instead)"
    } else {
        "Log in                   (Ctrl-R: register instead)"
    };
    let mut lines = vec![
        Line::from(vec![Span::styled("Server        ", dim()), Span::raw(app.server.clone())]),
        Line::from(vec![Span::styled("Mode          ", dim()), Span::raw(mode)]),
        Line::default(),
    ];
    let mut cursor = None;
    for (row, field) in form.fields().iter().enumerate() {
        let (label, editor, secret) = match field {
            LoginField::Email => ("Email         ", &form.email, false),
            LoginField::Password => ("Password      ", &form.password, true),
            LoginField::DisplayName => ("Display name  ", &form.display_name, false),
            LoginField::Invite => ("Invite code   ", &form.invite, false),
        };
        let current = *field == form.field();
        let shown = if secret { "*".repeat(editor.chars()) } else { editor.text().to_owned() };
        let label_style = if current { Style::default().add_modifier(Modifier::BOLD) } else { dim() };
        lines.push(Line::from(vec![Span::styled(label, label_style), Span::raw(shown)]));
        if current {
            let at = if secret { editor.chars() } else { editor.cursor_width() };
            cursor = Some((inner.x + label.width() as u16 + at as u16, inner.y + 3 + row as u16));
        }
    }
    lines.push(Line::default());
    if form.sign_up_closed() {
        let closed = "Sign-up is closed on this server: Ctrl-R to log in.";
        lines.push(Line::from(Span::styled(closed, Style::default().fg(Color::Yellow))));
    } else {
        let hint =
            if form.busy { "waiting for the server…" } else { "Enter: submit · Tab: next field · Esc: quit" };
        lines.push(Line::from(Span::styled(hint, dim())));
    }
    lines.push(Line::from(Span::styled("The password never leaves this computer.", dim())));
    frame.render_widget(Paragraph::new(lines), inner);
    if let Some(position) = cursor.filter(|_| !form.busy) {
        frame.set_cursor_position(position);
    }
    frame.render_widget(Paragraph::new(status_line(app)), status_area);
}

fn chat(frame: &mut Frame, app: &mut App) {
    let [body, composer_area, status_area, help_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(3), Constraint::Length(1), Constraint::Length(2)])
            .areas(frame.area());
    let info_width = if app.info { INFO_WIDTH } else { 0 };
    let [list_area, conversation_area, info_area] =
        Layout::horizontal([Constraint::Length(LIST_WIDTH), Constraint::Min(20), Constraint::Length(info_width)])
            .areas(body);
    list(frame, app, list_area);
    conversation(frame, app, conversation_area);
    if app.info {
        info(frame, app, info_area);
    }
    composer(frame, app, composer_area);
    frame.render_widget(Paragraph::new(status_line(app)), status_area);
    let help: Vec<Line> = if app.info {
        vec![Line::styled(format!(" {SECURITY_KEYS}"), dim())]
    } else {
        vec![Line::styled(format!(" {CHAT_KEYS}"), dim()), Line::styled(format!(" {ROOM_KEYS}"), dim())]
    };
    frame.render_widget(Paragraph::new(help), help_area);
    if app.picker.is_some() {
        picker(frame, app);
    }
    if app.rooms_dialog.is_some() {
        rooms_dialog(frame, app);
    }
}

/// A presence dot for a private conversation's partner.
fn dot(app: &App, view: &ConversationView) -> Span<'static> {
    if view.is_room() {
        return Span::styled("#", Style::default().fg(Color::Yellow));
    }
    if view.conversation.assistant {
        return Span::styled("◆", Style::default().fg(Color::Magenta));
    }
    match app.partner(view) {
        Some(partner) if app.presence.is_online(partner) => Span::styled("●", Style::default().fg(Color::Green)),
        Some(_) => Span::styled("○", dim()),
        None => Span::styled("#", dim()),
    }
}

fn list(frame: &mut Frame, app: &App, area: Rect) {
    let me = app.me.as_ref().map(|me| me.display_name.clone()).unwrap_or_default();
    let block = Block::bordered()
        .title(" Conversations ")
        .title_bottom(Line::from(Span::styled(format!(" {me} "), dim())))
        .border_style(focused(app.focus == Focus::List && app.picker.is_none()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if app.conversations.is_empty() {
        let hint = "None yet: Ctrl-N starts one, Ctrl-A opens the assistant, Ctrl-R finds rooms.";
        let lines: Vec<Line> = wrap(hint, inner.width as usize).into_iter().map(|l| Line::styled(l, dim())).collect();
        frame.render_widget(Paragraph::new(lines), inner);
        return;
    }
    let width = inner.width as usize;
    // Rooms come after the conversations (`App::sort`), under a heading that says what they are.
    let mut lines: Vec<Line> = Vec::new();
    let mut selected_line = 0;
    for (index, view) in app.conversations.iter().enumerate() {
        if view.is_room() && (index == 0 || !app.conversations[index - 1].is_room()) {
            lines.push(Line::styled(truncate("Rooms", width), Style::default().add_modifier(Modifier::BOLD)));
            lines.push(Line::styled(truncate(&format!(" {NOT_E2E}"), width), Style::default().fg(Color::Yellow)));
        }
        let unread = if view.unread > 0 { format!(" ({})", view.unread) } else { String::new() };
        let title = truncate(&app.title(view), width.saturating_sub(3 + unread.width()));
        let mut style = Style::default();
        if view.unread > 0 {
            style = style.add_modifier(Modifier::BOLD);
        }
        if index == app.selected {
            style = style.add_modifier(Modifier::REVERSED);
            selected_line = lines.len();
        }
        // A mark as well as the colours, so the highlight shows on any terminal.
        let pointer = if index == app.selected { "›" } else { " " };
        lines.push(Line::from(vec![
            Span::raw(pointer),
            dot(app, view),
            Span::styled(format!(" {title}{unread}"), style),
        ]));
    }
    // Keep the highlighted row in view.
    let height = inner.height as usize;
    let first = selected_line.saturating_sub(height.saturating_sub(1));
    let lines: Vec<Line> = lines.into_iter().skip(first).take(height).collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// A contact's security state in words, and how it is shown.
fn contact_label(state: ContactState) -> (&'static str, Style) {
    let warning = Style::default().fg(Color::Red).add_modifier(Modifier::BOLD);
    match state {
        ContactState::Trusted { verified: true } => ("verified ✓", Style::default().fg(Color::Green)),
        ContactState::Trusted { verified: false } => ("not verified", dim()),
        ContactState::Changed { was_verified: false } => ("⚠ security key changed", warning),
        ContactState::Changed { was_verified: true } => ("⚠ security key changed (had been verified)", warning),
        ContactState::NoIdentity => ("no security key yet", Style::default().fg(Color::Yellow)),
    }
}

/// The line under a conversation's title: what protects it, and what is wrong with that.
fn security_header(app: &App, view: &ConversationView) -> Line<'static> {
    let warning = Style::default().fg(Color::Red).add_modifier(Modifier::BOLD);
    if let Some(room) = &view.room {
        let visibility = match room.visibility {
            Visibility::Public => "public room",
            Visibility::Private => "private room",
        };
        let members = match view.member_count.unwrap_or(view.members.len() as u64) {
            1 => "1 member".to_owned(),
            many => format!("{many} members"),
        };
        let mut spans = vec![
            Span::styled(NOT_E2E, Style::default().fg(Color::Yellow)),
            Span::styled(format!(" · {visibility} · {members}"), dim()),
        ];
        if room.moderator {
            spans.push(Span::styled(" · you moderate it", dim()));
        }
        if let Some(topic) = &room.topic {
            spans.push(Span::styled(format!(" · {topic}"), dim()));
        }
        return Line::from(spans);
    }
    if view.conversation.assistant {
        return Line::styled(
            "not end-to-end encrypted: the server reads this conversation (the assistant answers here)",
            dim(),
        );
    }
    if app.identity_unopenable {
        return Line::styled(
            "⚠ your security key does not open with your password: Ctrl-K, then r makes a new one",
            warning,
        );
    }
    if view.own_key_unopenable {
        return Line::styled(
            "⚠ your key for this conversation does not open: nothing here can be read or sent \
             (Ctrl-K, then n makes a new one)",
            warning,
        );
    }
    let mut spans = Vec::new();
    for member in app.others(view) {
        let (label, style) = contact_label(app.contact_state(member));
        if !spans.is_empty() {
            spans.push(Span::styled(" · ", dim()));
        }
        spans.push(Span::styled(format!("{}: ", app.name(member)), dim()));
        spans.push(Span::styled(label, style));
    }
    spans.push(Span::styled(" · Ctrl-K to compare safety numbers", dim()));
    Line::from(spans)
}

fn conversation(frame: &mut Frame, app: &mut App, area: Rect) {
    let Some(view) = app.open_view() else {
        let block = Block::bordered();
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let hint = "Pick a conversation and press Enter, start one with Ctrl-N, talk to the assistant with Ctrl-A, \
                    or browse and make rooms with Ctrl-R.";
        let lines: Vec<Line> = wrap(hint, inner.width as usize).into_iter().map(|l| Line::styled(l, dim())).collect();
        frame.render_widget(Paragraph::new(lines), inner);
        return;
    };
    let mut title = vec![Span::raw(" "), dot(app, view), Span::raw(format!(" {} ", app.title(view)))];
    if let Some(partner) = app.partner(view) {
        let presence = if app.presence.is_online(partner) { "online " } else { "offline " };
        title.push(Span::styled(presence, dim()));
    }
    let block = Block::bordered().title(Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;

    let [header_area, history_area, typing_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(Paragraph::new(truncate_line(security_header(app, view), width)), header_area);

    let lines = history_lines(app, view, width);
    let height = history_area.height as usize;
    let popup = app.picker.is_some();
    let max_scroll = lines.len().saturating_sub(height);
    let typing = app.typing_line();
    let Some(view) = app.open_view_mut() else { return };
    view.max_scroll = max_scroll;
    view.scroll = view.scroll.min(max_scroll);
    let end = lines.len() - view.scroll;
    let start = end.saturating_sub(height);
    // The newest message sits at the bottom, as in every chat.
    let top = height.saturating_sub(end - start);
    let mut visible: Vec<Line> = vec![Line::default(); top];
    let mut links = Vec::new();
    for (row, history_line) in lines[start..end].iter().enumerate() {
        visible.push(history_line.line.clone());
        if let Some((column, url, label)) = history_line.link.clone().filter(|_| !popup) {
            let (x, y) = (history_area.x + column as u16, history_area.y + (top + row) as u16);
            links.push(DrawnLink { x, y, label, url });
        }
    }
    frame.render_widget(Paragraph::new(visible), history_area);
    app.links = links;
    let Some(view) = app.open_view() else { return };
    let below = if view.scroll > 0 { format!("  ↓ {} more lines (PgDn)", view.scroll) } else { String::new() };
    let typing = Line::from(vec![
        Span::styled(typing.unwrap_or_default(), Style::default().fg(Color::Yellow)),
        Span::styled(below, dim()),
    ]);
    frame.render_widget(Paragraph::new(typing), typing_area);
}

/// The history as lines of at most `width` columns, oldest first.
fn history_lines(app: &App, view: &ConversationView, width: usize) -> Vec<HistoryLine> {
    let mut lines: Vec<HistoryLine> = Vec::new();
    if !view.joined {
        lines.push(Line::styled("joining…", dim()).into());
        return lines;
    }
    if view.loading_older {
        lines.push(Line::styled("loading older messages…", dim()).into());
    } else if view.page_token.is_some() {
        lines.push(Line::styled("PgUp for older messages", dim()).into());
    } else if !view.messages.is_empty() {
        lines.push(Line::styled("— the beginning of the conversation —", dim()).into());
    }
    let assistant_name = |sender: Uuid| {
        let assistant = sender == ASSISTANT_ID || (view.conversation.assistant && Some(sender) != app.me());
        if assistant { "assistant".to_owned() } else { app.name(sender) }
    };
    for message in &view.messages {
        let time = message.at.with_timezone(&Local).format("%H:%M").to_string();
        let (text, style) = match &message.text {
            Ok(text) => (text.clone(), Style::default()),
            Err(reason) => (format!("cannot be read: {reason}"), dim().add_modifier(Modifier::ITALIC)),
        };
        let edited = if message.edited { " (edited)" } else { "" };
        let unchecked = if message.unchecked { " (older format, not checked)" } else { "" };
        let mut name_style = if Some(message.sender) == app.me() {
            Style::default().fg(Color::Cyan)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        };
        let chosen = app.chosen == Some(message.group);
        let mut style = style;
        if chosen {
            name_style = name_style.add_modifier(Modifier::REVERSED);
            style = style.add_modifier(Modifier::REVERSED);
        }
        let first = lines.len();
        push_message(
            &mut lines,
            width,
            &time,
            &assistant_name(message.sender),
            name_style,
            &format!("{text}{edited}{unchecked}"),
            style,
        );
        if let Some(receipt) = app.receipt(view, message) {
            let style = match receipt {
                Receipt::Queued => Style::default().fg(Color::Yellow),
                _ => dim(),
            };
            let label = format!(" · {}", app.receipt_text(&receipt));
            // After the text when it fits on its last line, else on a line of its own.
            let last =
                lines.last_mut().filter(|last| last.link.is_none() && lines_len(&last.line) + label.width() <= width);
            match last {
                Some(last) => last.line.spans.push(Span::styled(label, style)),
                None => lines
                    .push(Line::from(vec![Span::raw("  "), Span::styled(label.trim_start().to_owned(), style)]).into()),
            }
        }
        if chosen {
            let marker = Span::styled("› ", Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD));
            if let Some(line) = lines.get_mut(first) {
                line.line.spans.insert(0, marker);
            }
        }
        if let Ok(text) = &message.text {
            for (url, _) in crate::network::image_links(text) {
                if let Some(path) = app.images.get(&url) {
                    let saved = format!("image saved to {}", path.display());
                    for line in wrap(&saved, width.saturating_sub(2).max(8)) {
                        lines.push(
                            Line::from(vec![Span::raw("  "), Span::styled(line, Style::default().fg(Color::Green))])
                                .into(),
                        );
                    }
                }
            }
        }
        for flag in &message.flags {
            let warning = flag_warning(*flag, message.sent_at);
            for line in wrap(&warning, width.saturating_sub(2).max(8)) {
                lines.push(
                    Line::from(vec![Span::raw("  "), Span::styled(line, Style::default().fg(Color::Yellow))]).into(),
                );
            }
        }
    }
    if let Some(streaming) = &view.streaming {
        let style = Style::default().add_modifier(Modifier::ITALIC);
        let text = format!("{}▍", streaming.text);
        push_message(&mut lines, width, "     ", "assistant", Style::default().fg(Color::Magenta), &text, style);
    }
    if view.joined && view.messages.is_empty() && view.streaming.is_none() {
        lines.push(Line::styled("No messages yet: write the first one below.", dim()).into());
    }
    lines
}

/// How wide a line is.
fn lines_len(line: &Line<'_>) -> usize {
    line.spans.iter().map(|span| span.content.width()).sum()
}

/// Whether a word is a web address (shown on a line of its own, whole, and as a link).
fn is_link(word: &str) -> bool {
    (word.starts_with("https://") || word.starts_with("http://")) && !word.chars().any(char::is_control)
}

/// An address shortened in the middle to fit `width` columns (addresses are ASCII here; any
/// other character counts by its width).
fn shorten(url: &str, width: usize) -> String {
    if url.width() <= width {
        return url.to_owned();
    }
    let tail_chars = (width / 4).min(12);
    let tail: String = url.chars().rev().take(tail_chars).collect::<Vec<_>>().into_iter().rev().collect();
    let head = truncate(url, width.saturating_sub(tail.width()));
    format!("{head}{tail}")
}

/// What a flag says about a message the checks found changed by the server.
fn flag_warning(flag: Flag, sent_at: Option<DateTime<Utc>>) -> String {
    match flag {
        Flag::Substituted => "⚠ not as sent: the server moved or replaced this message".to_owned(),
        Flag::Redated => match sent_at {
            Some(sent_at) => format!(
                "⚠ the server's time differs from the sender's (sent {} by the sender's clock)",
                sent_at.with_timezone(&Local).format("%Y-%m-%d %H:%M")
            ),
            None => "⚠ the server's time differs from the sender's".to_owned(),
        },
        Flag::Reordered => "⚠ out of order: the sender wrote this before messages shown above it".to_owned(),
    }
}

/// One message: `HH:MM name: text`, wrapped, continuation lines indented; each web address
/// on a line of its own, never wrapped (shortened in the middle if it cannot fit).
fn push_message(
    lines: &mut Vec<HistoryLine>,
    width: usize,
    time: &str,
    name: &str,
    name_style: Style,
    text: &str,
    style: Style,
) {
    let prefix = format!("{time} {name}: ");
    let indent = 2;
    let first_width = width.saturating_sub(prefix.width()).max(8);
    let full_width = width.saturating_sub(indent).max(8);
    // Paragraphs, with each address taken out into one of its own (`true`).
    let mut paragraphs: Vec<(bool, String)> = Vec::new();
    for paragraph in text.split('\n') {
        let mut words: Vec<&str> = Vec::new();
        for word in paragraph.split(' ') {
            if is_link(word) {
                if !words.is_empty() {
                    paragraphs.push((false, std::mem::take(&mut words).join(" ")));
                }
                paragraphs.push((true, word.to_owned()));
            } else {
                words.push(word);
            }
        }
        if !words.is_empty() || paragraph.is_empty() {
            paragraphs.push((false, words.join(" ")));
        }
    }
    let mut paragraphs = paragraphs.into_iter().peekable();
    let mut first = String::new();
    let mut spill = String::new();
    if let Some((false, paragraph)) = paragraphs.peek() {
        let mut wrapped = wrap(paragraph, first_width);
        first = if wrapped.is_empty() { String::new() } else { wrapped.remove(0) };
        spill = wrapped.join(" ");
        paragraphs.next();
    }
    lines.push(
        Line::from(vec![
            Span::styled(format!("{time} "), dim()),
            Span::styled(format!("{name}: "), name_style),
            Span::styled(first, style),
        ])
        .into(),
    );
    let text_line = |line: String| -> HistoryLine {
        Line::from(vec![Span::raw(" ".repeat(indent)), Span::styled(line, style)]).into()
    };
    // What did not fit after the prefix is wrapped again to the full width.
    if !spill.is_empty() {
        lines.extend(wrap(&spill, full_width).into_iter().map(text_line));
    }
    for (link, paragraph) in paragraphs {
        if !link {
            lines.extend(wrap(&paragraph, full_width).into_iter().map(text_line));
            continue;
        }
        let label = shorten(&paragraph, full_width);
        let link_style = style.fg(Color::Blue).add_modifier(Modifier::UNDERLINED);
        lines.push(HistoryLine {
            line: Line::from(vec![Span::raw(" ".repeat(indent)), Span::styled(label.clone(), link_style)]),
            link: Some((indent, paragraph, label)),
        });
    }
}

/// The security pane: the person's own keys if something is wrong with them, then each
/// other member with their security state; the highlighted one with the safety number to
/// compare.
fn info(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered().title(" Members and security keys ").border_style(focused(true));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let wrapped: Vec<Line> = security_lines(app)
        .into_iter()
        .flat_map(|(text, style)| {
            // Indented lines stay indented when wrapped.
            let body = text.trim_start_matches(' ');
            let indent = " ".repeat(text.len() - body.len());
            wrap(body, width.saturating_sub(indent.len()))
                .into_iter()
                .map(|line| Line::styled(format!("{indent}{line}"), style))
                .collect::<Vec<_>>()
        })
        .collect();
    frame.render_widget(Paragraph::new(wrapped), inner);
}

/// The security pane's lines, each with its style, before wrapping.
fn security_lines(app: &App) -> Vec<(String, Style)> {
    let warning = Style::default().fg(Color::Red).add_modifier(Modifier::BOLD);
    let mut lines = Vec::new();
    if app.identity_unopenable {
        lines.push((
            "⚠ Your security key does not open with your password: nothing end-to-end can be read or sent. \
             Press r to make a new one (your contacts will see it change)."
                .to_owned(),
            warning,
        ));
        lines.push((String::new(), Style::default()));
    }
    let Some(view) = app.open_view() else {
        lines.push(("No conversation open.".to_owned(), dim()));
        return lines;
    };
    if view.conversation.assistant {
        lines.push(("The assistant conversation is not end-to-end encrypted: the server reads it.".to_owned(), dim()));
        return lines;
    }
    if view.is_room() {
        lines.push((
            "This room is not end-to-end encrypted: the server reads its posts, and there are no security \
             keys to compare. Its members:"
                .to_owned(),
            dim(),
        ));
        for member in &view.members {
            let online = if app.presence.is_online(*member) { "online" } else { "offline" };
            lines.push((format!(" {} ({online})", app.name(*member)), Style::default()));
        }
        return lines;
    }
    if view.own_key_unopenable {
        lines.push((
            "⚠ Your key for this conversation does not open: press n to make a new one (its earlier messages \
             stay unreadable)."
                .to_owned(),
            warning,
        ));
        lines.push((String::new(), Style::default()));
    }
    let highlighted = app.highlighted_member();
    for member in app.others(view) {
        let email = app.users.get(&member).and_then(email_of).map(|email| format!(" {email}")).unwrap_or_default();
        let online = if app.presence.is_online(member) { "online" } else { "offline" };
        let is_highlighted = highlighted == Some(member);
        let (pointer, name_style) = if is_highlighted {
            ("›", Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED))
        } else {
            (" ", Style::default().add_modifier(Modifier::BOLD))
        };
        lines.push((format!("{pointer}{}{email} ({online})", app.name(member)), name_style));
        let (label, style) = contact_label(app.contact_state(member));
        lines.push((format!("  {label}"), style));
        if !is_highlighted {
            continue;
        }
        match app.contacts.get(&member).and_then(|contact| contact.safety_number.as_deref()) {
            Some(number) => {
                lines.push(("  safety number:".to_owned(), dim()));
                // 12 groups of 5 digits, as two rows of 6 that fit the pane.
                let groups: Vec<&str> = number.split(' ').collect();
                for row in groups.chunks(6) {
                    lines.push((format!("  {}", row.join(" ")), Style::default()));
                }
            }
            None => lines.push(("  no safety number: they have no security key yet".to_owned(), dim())),
        }
    }
    if view.members.len() > 1 {
        lines.push((String::new(), Style::default()));
        lines.push((
            "Compare the safety number with the person (in person, or on a call you trust): if it matches, \
             press v."
                .to_owned(),
            dim(),
        ));
    }
    lines
}

fn composer(frame: &mut Frame, app: &App, area: Rect) {
    let is_focused = app.focus == Focus::Composer && app.picker.is_none();
    let title = match (app.open_view(), &app.editing) {
        (Some(_), Some(_)) => " Editing your message (Enter saves, Esc cancels) ".to_owned(),
        (Some(view), None) => format!(" Message to {} ", app.title(view)),
        (None, _) => " Message ".to_owned(),
    };
    let block = Block::bordered().title(title).border_style(focused(is_focused));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (shown, cursor) = visible_tail(&app.composer, inner.width as usize);
    frame.render_widget(Paragraph::new(shown), inner);
    if is_focused {
        frame.set_cursor_position((inner.x + cursor as u16, inner.y));
    }
}

/// The part of an editor's text that fits in `width` columns with the cursor in view, and
/// the cursor's column in it.
fn visible_tail(editor: &Editor, width: usize) -> (String, usize) {
    let cursor = editor.cursor_width();
    if cursor < width {
        return (truncate(editor.text(), width), cursor);
    }
    // Drop characters from the start until the cursor fits (only characters before the
    // cursor: the loop stops once none is left before it).
    let mut skipped = 0;
    let mut text = editor.text();
    while cursor.saturating_sub(skipped) >= width.max(1) {
        let Some(c) = text.chars().next() else { break };
        skipped += c.width().unwrap_or(0);
        text = &text[c.len_utf8()..];
    }
    (truncate(text, width), cursor.saturating_sub(skipped))
}

fn picker(frame: &mut Frame, app: &App) {
    let Some(picker) = &app.picker else { return };
    let area = frame.area().centered(Constraint::Length(80), Constraint::Length(20));
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(" New conversation ").border_style(Style::default().fg(Color::Cyan));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [find_area, list_area, alias_area, hint_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1), Constraint::Length(2)])
            .areas(inner);
    let label = |text: &'static str, current: bool| {
        Span::styled(text, if current { Style::default().add_modifier(Modifier::BOLD) } else { dim() })
    };
    let find_current = picker.field == PickerField::Find;
    frame.render_widget(
        Paragraph::new(Line::from(vec![label("Find: ", find_current), Span::raw(picker.find.text().to_owned())])),
        find_area,
    );
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            label("Group name: ", !find_current),
            Span::raw(picker.alias.text().to_owned()),
        ])),
        alias_area,
    );
    let matches = app.picker_matches();
    let height = list_area.height as usize;
    let first = picker.highlighted.saturating_sub(height.saturating_sub(1));
    let mut lines: Vec<Line> = matches
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(index, user)| {
            let mark = if picker.picked.contains(&user.id) { "[x]" } else { "[ ]" };
            let (pointer, style) = if index == picker.highlighted {
                ("›", Style::default().add_modifier(Modifier::REVERSED))
            } else {
                (" ", Style::default())
            };
            // An address the server does not show (no shared conversation) is left out.
            let email = email_of(user).map(|email| format!(" <{email}>")).unwrap_or_default();
            Line::styled(format!("{pointer}{mark} {}{email}", user.display_name), style)
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::styled("Nobody matches.", dim()));
    }
    frame.render_widget(Paragraph::new(lines), list_area);
    let hint = "↑↓ move · Space pick · Tab group name · Enter start (one person: private; more, or a name: group) · Esc cancel";
    let hint: Vec<Line> = wrap(hint, hint_area.width as usize).into_iter().map(|l| Line::styled(l, dim())).collect();
    frame.render_widget(Paragraph::new(hint), hint_area);
    let (editor, row, label_width) = match picker.field {
        PickerField::Find => (&picker.find, find_area.y, "Find: ".width()),
        PickerField::Alias => (&picker.alias, alias_area.y, "Group name: ".width()),
    };
    frame.set_cursor_position((inner.x + (label_width + editor.cursor_width()) as u16, row));
}

/// The rooms dialog: the public rooms to join, and the name and visibility of a new room.
fn rooms_dialog(frame: &mut Frame, app: &App) {
    let Some(dialog) = &app.rooms_dialog else { return };
    let area = frame.area().centered(Constraint::Length(80), Constraint::Length(20));
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(" Rooms ").border_style(Style::default().fg(Color::Cyan));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [note_area, browse_label_area, list_area, name_area, visibility_area, hint_area] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(2),
    ])
    .areas(inner);
    let width = inner.width as usize;
    let note = format!("Rooms are {NOT_E2E}: the server reads their posts (and its administrators may).");
    let note: Vec<Line> =
        wrap(&note, width).into_iter().map(|l| Line::styled(l, Style::default().fg(Color::Yellow))).collect();
    frame.render_widget(Paragraph::new(note), note_area);
    let label = |text: &'static str, current: bool| {
        Span::styled(text, if current { Style::default().add_modifier(Modifier::BOLD) } else { dim() })
    };
    let browsing = dialog.field == RoomsField::Browse;
    frame.render_widget(Paragraph::new(Line::from(label("Public rooms to join:", browsing))), browse_label_area);
    let height = list_area.height as usize;
    let first = dialog.highlighted.saturating_sub(height.saturating_sub(1));
    let mut lines: Vec<Line> = app
        .public_rooms
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(index, room)| {
            let (pointer, style) = if index == dialog.highlighted && browsing {
                ("›", Style::default().add_modifier(Modifier::REVERSED))
            } else {
                (" ", Style::default())
            };
            let topic = room.topic.as_ref().map(|topic| format!(" — {topic}")).unwrap_or_default();
            Line::styled(truncate(&format!("{pointer}# {}{topic}", room.name), width), style)
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::styled(" None to join: make one below.", dim()));
    }
    frame.render_widget(Paragraph::new(lines), list_area);
    let naming = dialog.field == RoomsField::Name;
    frame.render_widget(
        Paragraph::new(Line::from(vec![label("New room's name: ", naming), Span::raw(dialog.name.text().to_owned())])),
        name_area,
    );
    let visibility =
        if dialog.public { "public (anyone here may find and join it)" } else { "private (only the people you add)" };
    frame.render_widget(
        Paragraph::new(Line::from(vec![label("Visibility: ", naming), Span::raw(visibility)])),
        visibility_area,
    );
    let hint = "↑↓ move · Enter join · Tab new room's name, then Enter make it · Ctrl-P public/private · Esc close";
    let hint: Vec<Line> = wrap(hint, hint_area.width as usize).into_iter().map(|l| Line::styled(l, dim())).collect();
    frame.render_widget(Paragraph::new(hint), hint_area);
    if naming {
        let x = inner.x + ("New room's name: ".width() + dialog.name.cursor_width()) as u16;
        frame.set_cursor_position((x, name_area.y));
    }
}

/// A styled line cut to `width` columns, with an ellipsis when cut.
fn truncate_line(line: Line<'static>, width: usize) -> Line<'static> {
    let mut used = 0;
    let mut spans = Vec::new();
    for span in line.spans {
        let room = width.saturating_sub(used);
        let span_width = span.content.width();
        if span_width <= room {
            used += span_width;
            spans.push(span);
            continue;
        }
        spans.push(Span::styled(truncate(&span.content, room), span.style));
        break;
    }
    Line::from(spans)
}

/// `text` cut to `width` columns, with an ellipsis when cut.
fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// Greedy word wrap to `width` columns; words longer than a line are split. Control
/// characters (other than the newlines split on before) are shown as spaces, so nothing a
/// message holds can move the cursor or restyle the terminal.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut used = 0;
    for word in text.split(' ') {
        let word: String = word.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let word_width = word.width();
        if used > 0 && used + 1 + word_width <= width {
            line.push(' ');
            line.push_str(&word);
            used += 1 + word_width;
            continue;
        }
        if used > 0 {
            lines.push(std::mem::take(&mut line));
            used = 0;
        }
        // Split a word that does not fit on a line of its own.
        for c in word.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width {
                lines.push(std::mem::take(&mut line));
                used = 0;
            }
            line.push(c);
            used += w;
        }
    }
    if used > 0 || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::app::testing::{ann_talking_to_bob, contact, shown};
    use crate::network::Update;

    /// The screen as text, one line per row.
    fn screen(app: &mut App) -> String {
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("a test terminal");
        terminal.draw(|frame| draw(frame, app)).expect("draw");
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| (0..buffer.area.width).map(|x| buffer[(x, y)].symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_room_is_marked_not_end_to_end_encrypted_in_the_list_and_its_header() {
        let (room, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut app = App::new("http://localhost");
        let me = crate::app::testing::ann_in_a_room(&mut app, room, other);
        app.apply(
            Update::Message { conversation_id: room, message: shown(Uuid::now_v7(), me, "hello") },
            Instant::now(),
        );
        let answer = shown(Uuid::now_v7(), ASSISTANT_ID, "an answer");
        app.apply(Update::Message { conversation_id: room, message: answer }, Instant::now());
        let screen = screen(&mut app);
        let lines: Vec<&str> = screen.lines().collect();
        let heading = lines.iter().position(|line| line.starts_with("│Rooms")).expect("the rooms' heading");
        assert!(lines[heading + 1].starts_with("│ not end-to-end encrypted"), "{screen}");
        assert!(lines[heading + 2].starts_with("│›# lobby"), "{screen}");
        assert!(screen.contains("not end-to-end encrypted · public room · 1 member"), "{screen}");
        assert!(screen.contains("you: hello · sent") && screen.contains("assistant: an answer"), "{screen}");
        assert!(screen.contains("Ctrl-R rooms"), "the help lists the rooms' keys:\n{screen}");
    }

    #[test]
    fn the_header_shows_each_members_security_state_not_key_fingerprints() {
        let mut app = App::new("http://localhost");
        let (_, bob, id) = ann_talking_to_bob(&mut app);
        assert!(screen(&mut app).contains("Bob: no security key yet"));
        contact(&mut app, bob, ContactState::Trusted { verified: false }, None);
        assert!(screen(&mut app).contains("Bob: not verified · Ctrl-K to compare safety numbers"));
        contact(&mut app, bob, ContactState::Changed { was_verified: true }, None);
        assert!(screen(&mut app).contains("Bob: ⚠ security key changed (had been verified)"));
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
        app.apply(Update::Joined(Box::new(own_key)), Instant::now());
        assert!(screen(&mut app).contains("⚠ your key for this conversation does not open"));
    }

    #[test]
    fn the_key_help_lines_fit_a_120_column_terminal() {
        for keys in [CHAT_KEYS, ROOM_KEYS, SECURITY_KEYS] {
            assert!(keys.width() < 120, "{keys}");
        }
    }

    #[test]
    fn the_security_pane_shows_the_highlighted_members_safety_number_in_two_rows() {
        let mut app = App::new("http://localhost");
        let (_, bob, _) = ann_talking_to_bob(&mut app);
        let number = (1..=12).map(|group| format!("{group:05}")).collect::<Vec<_>>().join(" ");
        contact(&mut app, bob, ContactState::Trusted { verified: true }, Some(&number));
        app.info = true;
        let shown = screen(&mut app);
        assert!(shown.contains("Members and security keys"), "{shown}");
        assert!(shown.contains("›Bob bob@example.org (offline)"), "{shown}");
        assert!(shown.contains("verified ✓"), "{shown}");
        assert!(shown.contains("00001 00002 00003 00004 00005 00006"), "{shown}");
        assert!(shown.contains("00007 00008 00009 00010 00011 00012"), "{shown}");
        assert!(shown.contains("v verified (safety numbers match)"), "the help line is the pane's:\n{shown}");
        assert!(shown.contains("  verified ✓"), "indented under the name:\n{shown}");
    }

    #[test]
    fn messages_show_what_the_checks_found() {
        let mut app = App::new("http://localhost");
        let (_, bob, id) = ann_talking_to_bob(&mut app);
        let mut moved = shown(Uuid::now_v7(), bob, "I approve the transfer");
        moved.flags = vec![Flag::Substituted, Flag::Redated, Flag::Reordered];
        moved.sent_at = Some(moved.at - chrono::Duration::days(1));
        let mut old = shown(Uuid::now_v7(), bob, "from before");
        old.unchecked = true;
        old.at = moved.at - chrono::Duration::seconds(1);
        let mut unreadable = shown(Uuid::now_v7(), bob, "");
        unreadable.text = Err("it does not decrypt with the keys it names".to_owned());
        for message in [old, moved, unreadable] {
            app.apply(Update::Message { conversation_id: id, message }, Instant::now());
        }
        let shown = screen(&mut app);
        assert!(shown.contains("Bob: I approve the transfer"), "{shown}");
        assert!(shown.contains("⚠ not as sent: the server moved or replaced this message"), "{shown}");
        assert!(shown.contains("⚠ the server's time differs from the sender's (sent "), "{shown}");
        assert!(shown.contains("⚠ out of order"), "{shown}");
        assert!(shown.contains("Bob: from before (older format, not checked)"), "{shown}");
        assert!(shown.contains("cannot be read: it does not decrypt with the keys it names"), "{shown}");
    }

    #[test]
    fn wrapping_breaks_at_spaces_and_splits_long_words() {
        assert_eq!(wrap("hello there world", 11), ["hello there", "world"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 10), [""]);
        assert_eq!(wrap("a\u{1b}[31mb", 20), ["a [31mb"], "escape sequences are not passed through");
    }

    #[test]
    fn a_long_line_scrolls_to_keep_the_cursor_in_view() {
        let mut editor = Editor::default();
        for c in "abcdefghij".chars() {
            editor.insert(c);
        }
        assert_eq!(visible_tail(&editor, 20), ("abcdefghij".to_owned(), 10));
        assert_eq!(visible_tail(&editor, 4), ("hij".to_owned(), 3));
        editor.home();
        editor.right();
        // No room at all: nothing to show, and no panic.
        assert_eq!(visible_tail(&editor, 0).1, 0);
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("bob@example.org", 8), "bob@exa…");
        assert_eq!(truncate("bob", 8), "bob");
    }
}
