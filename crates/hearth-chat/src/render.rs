//! Drawing the screen from the state. Messages are shown as text, never interpreted.

use chrono::Local;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};
use uuid::Uuid;

use super::app::{App, ConversationView, Focus, LoginField, PickerField, Screen};
use super::editor::Editor;

/// Width of the conversation list.
const LIST_WIDTH: u16 = 32;

/// Width of the info pane.
const INFO_WIDTH: u16 = 46;

/// The keys of the chat screen (see `input.rs`).
const CHAT_KEYS: &str =
    "Tab pane · ↑↓ Enter open/send · PgUp/PgDn history · Ctrl-N new · Ctrl-A assistant · Ctrl-K keys · Esc/Ctrl-C quit";

fn dim() -> Style {
    Style::default().fg(Color::DarkGray)
}

fn focused(is: bool) -> Style {
    if is { Style::default().fg(Color::Cyan) } else { Style::default() }
}

/// Draws the whole screen. Takes the state mutably only to record how far each history can
/// scroll, which depends on the terminal's size.
pub fn draw(frame: &mut Frame, app: &mut App) {
    match app.screen {
        Screen::Login => login(frame, app),
        Screen::Chat => chat(frame, app),
    }
}

fn status_line(app: &App) -> Line<'static> {
    match &app.status {
        Some(status) if status.error => {
            Line::from(Span::styled(format!(" ⚠ {}", status.text), Style::default().fg(Color::Red)))
        }
        Some(status) => Line::from(format!(" {}", status.text)),
        None => Line::default(),
    }
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
    let hint = if form.busy { "waiting for the server…" } else { "Enter: submit · Tab: next field · Esc: quit" };
    lines.push(Line::from(Span::styled(hint, dim())));
    lines.push(Line::from(Span::styled("The password never leaves this computer.", dim())));
    frame.render_widget(Paragraph::new(lines), inner);
    if let Some(position) = cursor.filter(|_| !form.busy) {
        frame.set_cursor_position(position);
    }
    frame.render_widget(Paragraph::new(status_line(app)), status_area);
}

fn chat(frame: &mut Frame, app: &mut App) {
    let [body, composer_area, status_area, help_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(3), Constraint::Length(1), Constraint::Length(1)])
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
    frame.render_widget(Paragraph::new(Line::from(Span::styled(format!(" {CHAT_KEYS}"), dim()))), help_area);
    if app.picker.is_some() {
        picker(frame, app);
    }
}

/// A presence dot for a private conversation's partner.
fn dot(app: &App, view: &ConversationView) -> Span<'static> {
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
        let hint = "None yet: Ctrl-N starts one, Ctrl-A opens the assistant.";
        let lines: Vec<Line> = wrap(hint, inner.width as usize).into_iter().map(|l| Line::styled(l, dim())).collect();
        frame.render_widget(Paragraph::new(lines), inner);
        return;
    }
    // Keep the highlighted row in view.
    let height = inner.height as usize;
    let first = app.selected.saturating_sub(height.saturating_sub(1));
    let width = inner.width as usize;
    let lines: Vec<Line> = app
        .conversations
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(index, view)| {
            let unread = if view.unread > 0 { format!(" ({})", view.unread) } else { String::new() };
            let title = truncate(&app.title(view), width.saturating_sub(3 + unread.width()));
            let mut style = Style::default();
            if view.unread > 0 {
                style = style.add_modifier(Modifier::BOLD);
            }
            if index == app.selected {
                style = style.add_modifier(Modifier::REVERSED);
            }
            // A mark as well as the colours, so the highlight shows on any terminal.
            let pointer = if index == app.selected { "›" } else { " " };
            Line::from(vec![Span::raw(pointer), dot(app, view), Span::styled(format!(" {title}{unread}"), style)])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The first groups of a fingerprint, enough to tell keys apart at a glance (the info pane
/// shows all of it).
fn short_fingerprint(fingerprint: &str) -> String {
    fingerprint.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

fn conversation(frame: &mut Frame, app: &mut App, area: Rect) {
    let Some(view) = app.open_view() else {
        let block = Block::bordered();
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let hint = "Pick a conversation and press Enter, start one with Ctrl-N, or talk to the assistant with Ctrl-A.";
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

    // Header: what protects this conversation.
    let header = if view.conversation.assistant {
        "not end-to-end encrypted: the server reads this conversation (the assistant answers here)".to_owned()
    } else {
        let keys: Vec<String> = view
            .members
            .iter()
            .map(|member| match view.fingerprints.get(member) {
                Some(fingerprint) => format!("{} {}", app.name(*member), short_fingerprint(fingerprint)),
                None => format!("{} (no keys yet)", app.name(*member)),
            })
            .collect();
        format!("keys: {} · Ctrl-K for details", keys.join(" · "))
    };
    let [header_area, history_area, typing_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(Paragraph::new(Line::styled(truncate(&header, width), dim())), header_area);

    let lines = history_lines(app, view, width);
    let height = history_area.height as usize;
    let max_scroll = lines.len().saturating_sub(height);
    let typing = app.typing_line();
    let Some(view) = app.open_view_mut() else { return };
    view.max_scroll = max_scroll;
    view.scroll = view.scroll.min(max_scroll);
    let end = lines.len() - view.scroll;
    let start = end.saturating_sub(height);
    // The newest message sits at the bottom, as in every chat.
    let mut visible: Vec<Line> = vec![Line::default(); height.saturating_sub(end - start)];
    visible.extend_from_slice(&lines[start..end]);
    frame.render_widget(Paragraph::new(visible), history_area);
    let below = if view.scroll > 0 { format!("  ↓ {} more lines (PgDn)", view.scroll) } else { String::new() };
    let typing = Line::from(vec![
        Span::styled(typing.unwrap_or_default(), Style::default().fg(Color::Yellow)),
        Span::styled(below, dim()),
    ]);
    frame.render_widget(Paragraph::new(typing), typing_area);
}

/// The history as lines of at most `width` columns, oldest first.
fn history_lines(app: &App, view: &ConversationView, width: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if !view.joined {
        lines.push(Line::styled("joining…", dim()));
        return lines;
    }
    if view.loading_older {
        lines.push(Line::styled("loading older messages…", dim()));
    } else if view.page_token.is_some() {
        lines.push(Line::styled("PgUp for older messages", dim()));
    } else if !view.messages.is_empty() {
        lines.push(Line::styled("— the beginning of the conversation —", dim()));
    }
    let assistant_name = |sender: Uuid| {
        if view.conversation.assistant && Some(sender) != app.me() { "assistant".to_owned() } else { app.name(sender) }
    };
    for message in &view.messages {
        let time = message.at.with_timezone(&Local).format("%H:%M").to_string();
        let (text, style) = match &message.text {
            Ok(text) => (text.clone(), Style::default()),
            Err(reason) => (reason.clone(), dim().add_modifier(Modifier::ITALIC)),
        };
        let edited = if message.edited { " (edited)" } else { "" };
        let name_style = if Some(message.sender) == app.me() {
            Style::default().fg(Color::Cyan)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        };
        push_message(
            &mut lines,
            width,
            &time,
            &assistant_name(message.sender),
            name_style,
            &format!("{text}{edited}"),
            style,
        );
    }
    if let Some(streaming) = &view.streaming {
        let style = Style::default().add_modifier(Modifier::ITALIC);
        let text = format!("{}▍", streaming.text);
        push_message(&mut lines, width, "     ", "assistant", Style::default().fg(Color::Magenta), &text, style);
    }
    if view.joined && view.messages.is_empty() && view.streaming.is_none() {
        lines.push(Line::styled("No messages yet: write the first one below.", dim()));
    }
    lines
}

/// One message: `HH:MM name: text`, wrapped, continuation lines indented.
fn push_message(
    lines: &mut Vec<Line<'static>>,
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
    let mut paragraphs = text.split('\n');
    let first_paragraph = paragraphs.next().unwrap_or_default();
    let mut wrapped = wrap(first_paragraph, first_width);
    let rest: Vec<String> = paragraphs.flat_map(|p| wrap(p, width.saturating_sub(indent).max(8))).collect();
    let first = if wrapped.is_empty() { String::new() } else { wrapped.remove(0) };
    lines.push(Line::from(vec![
        Span::styled(format!("{time} "), dim()),
        Span::styled(format!("{name}: "), name_style),
        Span::styled(first, style),
    ]));
    // What did not fit after the prefix is wrapped again to the full width.
    let spill = wrapped.join(" ");
    let spilled = if spill.is_empty() { Vec::new() } else { wrap(&spill, width.saturating_sub(indent).max(8)) };
    for line in spilled.into_iter().chain(rest) {
        lines.push(Line::from(vec![Span::raw(" ".repeat(indent)), Span::styled(line, style)]));
    }
}

fn info(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered().title(" Members and keys ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(view) = app.open_view() else {
        frame.render_widget(Paragraph::new(Line::styled("No conversation open.", dim())), inner);
        return;
    };
    let mut lines = Vec::new();
    if view.conversation.assistant {
        lines.push(Line::from("The assistant conversation is not end-to-end encrypted: the server reads it."));
    }
    for member in &view.members {
        let email = app.users.get(member).map(|user| user.email.clone()).unwrap_or_default();
        let online = if app.presence.is_online(*member) { "online" } else { "offline" };
        lines.push(Line::from(vec![
            Span::styled(app.name(*member), Style::default().add_modifier(Modifier::BOLD)),
            Span::styled(format!(" {email} ({online})"), dim()),
        ]));
        match view.fingerprints.get(member) {
            Some(fingerprint) => lines.push(Line::from(format!("  {fingerprint}"))),
            None if !view.conversation.assistant => lines.push(Line::styled("  no keys yet", dim())),
            None => {}
        }
    }
    if !view.conversation.assistant {
        lines.push(Line::default());
        lines.push(Line::styled("Compare fingerprints with each member in person or over another channel.", dim()));
    }
    let wrapped: Vec<Line> = lines
        .into_iter()
        .flat_map(|line| {
            let style = line.spans.first().map(|span| span.style).unwrap_or_default();
            let text: String = line.spans.iter().map(|span| span.content.as_ref()).collect();
            wrap(&text, inner.width as usize).into_iter().map(move |l| Line::styled(l, style)).collect::<Vec<_>>()
        })
        .collect();
    frame.render_widget(Paragraph::new(wrapped), inner);
}

fn composer(frame: &mut Frame, app: &App, area: Rect) {
    let is_focused = app.focus == Focus::Composer && app.picker.is_none();
    let title = match app.open_view() {
        Some(view) => format!(" Message to {} ", app.title(view)),
        None => " Message ".to_owned(),
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
            Line::styled(format!("{pointer}{mark} {} <{}>", user.display_name, user.email), style)
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
    use super::*;

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
