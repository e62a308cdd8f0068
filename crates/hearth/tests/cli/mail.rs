//! Reading the emails hearth sends: headers, the body decoded from its transfer encoding
//! (lettre picks quoted-printable for hearth's long lines, so soft line breaks must go),
//! and the one-time code in it.

use base64::Engine as _;

/// One parsed message.
#[derive(Debug)]
pub struct Mail {
    headers: Vec<(String, String)>,
    /// The decoded body, with `\n` line ends.
    pub body: String,
}

/// The sentence before the code in every message with a link.
const CODE_INTRO: &str = "Or enter this code in the app: ";

impl Mail {
    /// Parses an RFC 5322 message (CRLF or LF line ends).
    pub fn parse(raw: &str) -> Self {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or_else(|| panic!("no blank line after headers:\n{raw}"));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                let (_, value) = headers.last_mut().unwrap_or_else(|| panic!("continuation first:\n{raw}"));
                value.push(' ');
                value.push_str(line.trim());
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            } else {
                panic!("not a header line {line:?} in:\n{raw}");
            }
        }
        let mut mail = Self { headers, body: String::new() };
        let encoding = mail.header("Content-Transfer-Encoding").unwrap_or("7bit").to_ascii_lowercase();
        mail.body = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(body),
            "base64" => {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                let bytes = base64::engine::general_purpose::STANDARD.decode(compact).expect("the body is base64");
                String::from_utf8(bytes).expect("the body is UTF-8").replace("\r\n", "\n")
            }
            _ => body.to_owned(),
        };
        mail
    }

    /// A header's value (the first of that name, case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The one-time code the message carries.
    pub fn code(&self) -> String {
        let (_, rest) =
            self.body.split_once(CODE_INTRO).unwrap_or_else(|| panic!("no {CODE_INTRO:?} in the body:\n{}", self.body));
        let code: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
        assert!(!code.is_empty(), "empty code in:\n{}", self.body);
        code
    }

    /// The page the link opens (`confirm-email`, `reset-password`, `change-email`), and
    /// checks that the link carries the same code as the text.
    pub fn link_kind(&self) -> String {
        let (_, rest) = self.body.split_once("/#/").unwrap_or_else(|| panic!("no link in the body:\n{}", self.body));
        let link: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
        let (kind, token) = link.split_once('/').unwrap_or_else(|| panic!("odd link {link:?}"));
        assert_eq!(token, self.code(), "the link and the code differ:\n{}", self.body);
        kind.to_owned()
    }
}

/// Decodes quoted-printable text: `=` at a line end joins lines, `=XX` is a byte; line ends
/// come out as `\n`.
pub fn decode_quoted_printable(text: &str) -> String {
    let bytes =
        quoted_printable::decode(text, quoted_printable::ParseMode::Robust).expect("the body is quoted-printable");
    String::from_utf8(bytes).expect("the decoded body is UTF-8").replace("\r\n", "\n")
}

#[test]
fn quoted_printable_soft_breaks_and_escapes_are_decoded() {
    assert_eq!(decode_quoted_printable("Or enter this co=\nde: abc=3Ddef\nnext"), "Or enter this code: abc=def\nnext");
    let mail = Mail::parse(
        "To: a@example.org\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         Open http://x/#/confirm-email/Ab-c_9 now\r\nOr enter this code in the app: A=\r\nb-c_9\r\n",
    );
    assert_eq!(mail.code(), "Ab-c_9");
    assert_eq!(mail.link_kind(), "confirm-email");
    assert_eq!(mail.header("to"), Some("a@example.org"));
}

/// Waits for the next message the server writes to its outbox after log line `from`.
pub async fn next_outbox_mail(hearth: &crate::harness::Hearth, from: usize) -> Mail {
    let (_, line) =
        hearth.process.wait_line(from, crate::harness::WAIT, |line| line.contains("email written to outbox")).await;
    let path = line
        .split(" path=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no path in {line:?}"));
    Mail::parse(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")))
}
