//! Provider keys in memory: zeroized on drop, never printed, named only by fingerprint.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::{AiError, ProviderName};

/// Shortest and longest key hearth accepts (seed 004).
const KEY_LENGTH: std::ops::RangeInclusive<usize> = 20..=500;

/// A provider API key. Its bytes are wiped when it is dropped; `Debug` shows only the
/// fingerprint.
#[derive(Clone)]
pub struct ApiKey {
    secret: Zeroizing<String>,
    fingerprint: KeyFingerprint,
}

impl ApiKey {
    /// Takes a key without checking its shape (operator keys from settings, sealed keys).
    pub fn new(key: impl Into<String>) -> Self {
        let secret = Zeroizing::new(key.into());
        let fingerprint = KeyFingerprint::of(&secret);
        Self { secret, fingerprint }
    }

    /// Takes a key a user gave for `provider`: 20–500 printable characters without spaces,
    /// and a prefix that, if it is one some provider uses, is `provider`'s.
    pub fn for_provider(provider: ProviderName, key: impl Into<String>) -> Result<Self, AiError> {
        let key = Self::new(key);
        let text = key.expose();
        if !KEY_LENGTH.contains(&text.chars().count()) {
            return Err(AiError::KeyLength { provider });
        }
        if !text.chars().all(|c| c.is_ascii_graphic()) {
            return Err(AiError::KeyCharacters { provider });
        }
        match detect_provider(text) {
            Some(detected) if detected != provider => Err(AiError::KeyProviderMismatch { given: provider, detected }),
            _ => Ok(key),
        }
    }

    /// The key itself, for the one header of the one request that needs it.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// A stable, non-reversible name for the key.
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    /// The last four characters, as shown in key lists.
    pub fn last_four(&self) -> String {
        let chars: Vec<char> = self.secret.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    }

    /// Replaces every occurrence of the key in `text` (a provider's error message may quote it).
    pub fn scrub(&self, text: &str) -> String {
        if self.secret.is_empty() { text.to_owned() } else { text.replace(self.secret.as_str(), "[key]") }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.fingerprint)
    }
}

/// The provider whose documented key prefix `key` carries, if any: the longest prefix that
/// matches, since OpenRouter's and Anthropic's keys also start with OpenAI's `sk-`. Prefixes
/// are a convenience, not a contract (Gemini's newer keys have none of these), so `None` is
/// common.
pub fn detect_provider(key: &str) -> Option<ProviderName> {
    ProviderName::ALL
        .into_iter()
        .filter_map(|provider| Some((provider, provider.provider().key_prefix?)))
        .filter(|(_, prefix)| key.starts_with(prefix))
        .max_by_key(|(_, prefix)| prefix.len())
        .map(|(provider, _)| provider)
}

/// Characters after a prefix that make a word look like a key rather than a mention of one.
const MIN_KEY_TAIL: usize = 16;

/// `text` with every word shaped like a provider key (a documented prefix at the start of a
/// word, then at least 16 letters, digits, `-` or `_`) replaced by `[redacted key]`. A second
/// line of defence for log output: keys are never logged on purpose.
pub fn redact_key_shapes(text: &str) -> std::borrow::Cow<'_, str> {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut redacted = String::new();
    let mut copied = 0;
    let mut previous: Option<char> = None;
    for (at, c) in text.char_indices() {
        let starts_word = previous.is_none_or(|p| !is_key_char(p));
        previous = Some(c);
        if at < copied || !starts_word {
            continue;
        }
        let rest = &text[at..];
        let Some(prefix) = detect_provider(rest).and_then(|provider| provider.provider().key_prefix) else { continue };
        let tail = rest[prefix.len()..].find(|c: char| !is_key_char(c)).unwrap_or(rest.len() - prefix.len());
        if tail >= MIN_KEY_TAIL {
            redacted.push_str(&text[copied..at]);
            redacted.push_str("[redacted key]");
            copied = at + prefix.len() + tail;
        }
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(text);
    }
    redacted.push_str(&text[copied..]);
    std::borrow::Cow::Owned(redacted)
}

/// The first 8 bytes of a key's SHA-256, in hex: enough to tell keys apart in logs and
/// health tables, useless for recovering the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyFingerprint([u8; 8]);

impl KeyFingerprint {
    /// The fingerprint of `key`.
    pub fn of(key: &str) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&digest[..8]);
        Self(bytes)
    }
}

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for KeyFingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::str::FromStr for KeyFingerprint {
    type Err = &'static str;

    /// Reads the 16 hex digits [`Display`](fmt::Display) writes.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const MALFORMED: &str = "a key fingerprint is 16 hex digits";
        if text.len() != 16 || !text.is_ascii() {
            return Err(MALFORMED);
        }
        let mut bytes = [0; 8];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| MALFORMED)?;
        }
        Ok(Self(bytes))
    }
}

impl<'de> Deserialize<'de> for KeyFingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes_are_redacted_and_other_words_kept() {
        let line = "key=sk-proj-ABCDEFGHIJKLMNOPQRST failed; task-0123456789abcdefghij ok; AIzaSyA0123456789abcdefgh.";
        assert_eq!(redact_key_shapes(line), "key=[redacted key] failed; task-0123456789abcdefghij ok; [redacted key].");
        for kept in ["sk-short", "no keys here", "gsk_", "ask-0123456789abcdefghijkl", "résumé sk-"] {
            assert_eq!(redact_key_shapes(kept), kept);
        }
        assert_eq!(
            redact_key_shapes("\"gsk_0123456789abcdefghij\",\"csk-0123456789abcdefghij\""),
            "\"[redacted key]\",\"[redacted key]\""
        );
    }

    #[test]
    fn prefixes_name_their_provider() {
        assert_eq!(detect_provider("sk-or-v1-0123"), Some(ProviderName::OpenRouter));
        assert_eq!(detect_provider("sk-ant-api03-x"), Some(ProviderName::Anthropic));
        assert_eq!(detect_provider("sk-proj-abc"), Some(ProviderName::OpenAi));
        assert_eq!(detect_provider("gsk_abc"), Some(ProviderName::Groq));
        assert_eq!(detect_provider("csk-abc"), Some(ProviderName::Cerebras));
        assert_eq!(detect_provider("AIzaSyabc"), Some(ProviderName::Gemini));
        assert_eq!(detect_provider("AQ.Ab8RN6abc"), None);
    }

    #[test]
    fn user_keys_are_checked_for_shape_and_provider() {
        let ok = ApiKey::for_provider(ProviderName::Groq, "gsk_0123456789abcdefghijkl").expect("a groq key");
        assert_eq!(ok.last_four(), "ijkl");
        assert_eq!(
            ApiKey::for_provider(ProviderName::Groq, "gsk_short").expect_err("refused"),
            AiError::KeyLength { provider: ProviderName::Groq }
        );
        assert_eq!(
            ApiKey::for_provider(ProviderName::Groq, "gsk_0123456789 abcdefghijkl").expect_err("refused"),
            AiError::KeyCharacters { provider: ProviderName::Groq }
        );
        assert_eq!(
            ApiKey::for_provider(ProviderName::Gemini, "sk-or-v1-0123456789abcdef0123").expect_err("refused"),
            AiError::KeyProviderMismatch { given: ProviderName::Gemini, detected: ProviderName::OpenRouter }
        );
        // Keys without a known prefix are accepted for any provider.
        assert!(ApiKey::for_provider(ProviderName::Gemini, "AQ.Ab8RN6L0123456789abcdef").is_ok());
        assert!(ApiKey::for_provider(ProviderName::Anthropic, "x".repeat(501)).is_err());
    }

    #[test]
    fn debug_and_errors_show_no_key() {
        let key = ApiKey::new("sk-proj-CANARY0123456789abcdef");
        let shown = format!("{key:?}");
        assert!(!shown.contains("CANARY"), "{shown}");
        assert_eq!(key.scrub("bad key sk-proj-CANARY0123456789abcdef given"), "bad key [key] given");
        let error = ApiKey::for_provider(ProviderName::Gemini, "sk-proj-CANARY0123456789abcdef").expect_err("refused");
        assert!(!error.to_string().contains("CANARY"));
    }

    #[test]
    fn fingerprints_round_trip_and_differ() {
        let a = KeyFingerprint::of("key one 0123456789");
        let b = KeyFingerprint::of("key two 0123456789");
        assert_ne!(a, b);
        let json = serde_json::to_string(&a).expect("serializes");
        assert_eq!(serde_json::from_str::<KeyFingerprint>(&json).expect("parses"), a);
    }
}
