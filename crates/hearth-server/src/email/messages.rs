//! The text of hearth's emails. Links point at the web client with the token in the URL
//! fragment, which browsers never send to a server, so it stays out of access logs.

use zeroize::Zeroizing;

/// A message ready to send. Its body holds a one-time token: it is zeroized on drop.
pub struct Letter {
    /// Which message this is, for logs (`"email_confirm"`, …).
    pub kind: &'static str,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: Zeroizing<String>,
}

impl std::fmt::Debug for Letter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Letter").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl Letter {
    /// "Confirm your email address", sent on registration, on request and after a change.
    pub fn email_confirmation(public_url: &str, token: &str, ttl_secs: i64) -> Self {
        Self::with_link(
            "email_confirm",
            "Confirm your email address for hearth",
            "Confirm that this address belongs to your hearth account by opening this link:",
            &format!("{public_url}/#/confirm-email/{token}"),
            token,
            ttl_secs,
            "If you did not create a hearth account, ignore this message.",
        )
    }

    /// "Reset your password".
    pub fn password_reset(public_url: &str, token: &str, ttl_secs: i64) -> Self {
        Self::with_link(
            "password_reset",
            "Reset your hearth password",
            "Someone (hopefully you) asked to reset the password of your hearth account. \
             To choose a new password, open this link:",
            &format!("{public_url}/#/reset-password/{token}"),
            token,
            ttl_secs,
            "If you did not ask for this, ignore this message: your password stays as it is.\n\
             Note: a reset signs out every device and gives your account new keys: messages \
             protected by your old password (in end-to-end encrypted conversations) cannot be \
             read any more, and the people you talk with are told that your security key changed.",
        )
    }

    /// "Change your email address", sent to the current address.
    pub fn email_change(public_url: &str, token: &str, ttl_secs: i64) -> Self {
        Self::with_link(
            "email_change",
            "Change the email address of your hearth account",
            "To move your hearth account to a new email address, open this link and enter the new address:",
            &format!("{public_url}/#/change-email/{token}"),
            token,
            ttl_secs,
            "If you did not ask for this, ignore this message and consider changing your password.",
        )
    }

    fn with_link(
        kind: &'static str,
        subject: &str,
        intro: &str,
        link: &str,
        token: &str,
        ttl_secs: i64,
        outro: &str,
    ) -> Self {
        let validity = if ttl_secs >= 3600 && ttl_secs % 3600 == 0 {
            format!("{} hour(s)", ttl_secs / 3600)
        } else {
            format!("{} minute(s)", (ttl_secs + 59) / 60)
        };
        let body = Zeroizing::new(format!(
            "{intro}\n\n{link}\n\nOr enter this code in the app: {token}\n\n\
             The link works once and expires in {validity}.\n\n{outro}\n"
        ));
        Self { kind, subject: subject.to_owned(), body }
    }
}
