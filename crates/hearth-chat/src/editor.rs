//! A one-line text editor: the composer and the form fields.

use unicode_width::UnicodeWidthStr as _;
use zeroize::Zeroize as _;

/// A line of text with a cursor (counted in characters). Its `Debug` shows no text: it may
/// be a password.
#[derive(Default, Clone)]
pub struct Editor {
    text: String,
    cursor: usize,
}

impl std::fmt::Debug for Editor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Editor").field("chars", &self.chars()).field("cursor", &self.cursor).finish()
    }
}

impl Editor {
    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether there is no text.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// How many characters there are.
    pub fn chars(&self) -> usize {
        self.text.chars().count()
    }

    /// The display width of the text before the cursor (where the terminal cursor goes).
    pub fn cursor_width(&self) -> usize {
        self.text[..self.byte_at(self.cursor)].width()
    }

    /// Types `c` at the cursor.
    pub fn insert(&mut self, c: char) {
        let at = self.byte_at(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    /// Deletes the character at the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.chars() {
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    /// Moves the cursor one character left.
    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    /// Moves the cursor one character right.
    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.chars());
    }

    /// Moves the cursor to the start.
    pub fn home(&mut self) {
        self.cursor = 0;
    }

    /// Moves the cursor to the end.
    pub fn end(&mut self) {
        self.cursor = self.chars();
    }

    /// Empties the editor, overwriting the text (it may have been a password).
    pub fn clear(&mut self) {
        self.text.zeroize();
        self.cursor = 0;
    }

    /// Gives back `text` that could not be sent: before what is there now (a space between),
    /// with the cursor at the end.
    pub fn put_back(&mut self, text: &str) {
        let mut restored = text.to_owned();
        if !self.text.is_empty() {
            restored.push(' ');
            restored.push_str(&self.text);
        }
        self.clear();
        self.text = restored;
        self.cursor = self.chars();
    }

    /// The text, leaving the editor empty.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.text.char_indices().nth(chars).map_or(self.text.len(), |(at, _)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_at_the_cursor_in_characters() {
        let mut editor = Editor::default();
        for c in "héllo".chars() {
            editor.insert(c);
        }
        editor.left();
        editor.left();
        editor.backspace();
        assert_eq!(editor.text(), "hélo");
        editor.home();
        editor.delete();
        editor.insert('J');
        assert_eq!(editor.text(), "Jélo");
        assert_eq!(editor.cursor_width(), 1);
        editor.end();
        editor.right();
        editor.insert('!');
        assert_eq!(editor.take(), "Jélo!");
        assert!(editor.is_empty());
    }

    #[test]
    fn text_put_back_goes_before_what_is_typed_now() {
        let mut editor = Editor::default();
        editor.put_back("not sent");
        assert_eq!((editor.text(), editor.cursor_width()), ("not sent", 8));
        editor.clear();
        editor.insert('x');
        editor.put_back("again");
        assert_eq!((editor.text(), editor.cursor_width()), ("again x", 7));
    }
}
