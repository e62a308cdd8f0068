//! The deterministic answer text, so a test can tell which provider answered what.

use crate::Provider;

/// The fake's answer: `"{provider} reply to: {last user message text}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The whole answer text.
    pub(crate) text: String,
}

impl Reply {
    /// The answer `provider` gives to `user_text`.
    pub(crate) fn to(provider: Provider, user_text: &str) -> Reply {
        Reply { text: format!("{provider} reply to: {user_text}") }
    }

    /// The stream's text deltas: one per word, each keeping its trailing space, so that they
    /// concatenate to the exact text. There are always at least three (`{provider} `,
    /// `reply `, `to: `…).
    pub(crate) fn deltas(&self) -> impl Iterator<Item = &str> {
        self.text.split_inclusive(' ')
    }

    /// The answer's size in the fake's tokens.
    pub(crate) fn tokens(&self) -> u64 {
        count_tokens(&self.text)
    }
}

/// The fake's token count: whitespace-separated words (real tokenizers differ; usage fields
/// only need to be present, plausible and deterministic).
pub(crate) fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_concatenate_to_the_text() {
        for user in ["", "hello", "two  spaces and a trailing one ", "ünï cödé"] {
            let reply = Reply::to(Provider::Gemini, user);
            let deltas: Vec<&str> = reply.deltas().collect();
            assert!(deltas.len() >= 3);
            assert_eq!(deltas.concat(), reply.text);
        }
        let reply = Reply::to(Provider::Groq, "hi there");
        assert_eq!(reply.deltas().collect::<Vec<_>>(), ["groq ", "reply ", "to: ", "hi ", "there"]);
        assert_eq!(reply.tokens(), 5);
    }
}
