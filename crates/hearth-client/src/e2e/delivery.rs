//! Checking what the server delivered against the authenticated header (docs/e2e.md): a
//! copied, re-dated or re-ordered ciphertext is flagged instead of shown as genuine.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Plaintext, Stream};

/// How far the server's time may be from the sender's before a message counts as re-dated.
pub const REDATED_AFTER_MS: i64 = 15 * 60 * 1000;

/// What the server says about a delivered copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The message group the server delivered the copy as.
    pub message_group: Uuid,
    /// The sender the server names (the decryption already proved it).
    pub sender: Uuid,
    /// When the server says it was sent.
    pub inserted_at: DateTime<Utc>,
    /// When the server says it was last edited (`inserted_at` if never).
    pub updated_at: DateTime<Utc>,
}

/// Why a delivered message is not shown as genuine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// Its header names another message, or the edit state disagrees: a copied ciphertext, an
    /// edit passed off as another message, or a rolled-back version.
    Substituted,
    /// The server's time is more than [`REDATED_AFTER_MS`] from the sender's.
    Redated,
    /// It comes after a later message of the same sending client.
    Reordered,
}

impl Flag {
    /// The flag's name, as the web client and the test vectors write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Substituted => "substituted",
            Self::Redated => "redated",
            Self::Reordered => "reordered",
        }
    }
}

/// Checks the messages of one conversation, fed in the server's order, oldest first.
#[derive(Debug, Default)]
pub struct DeliveryChecker {
    /// The highest `seq` seen per sender and stream.
    highest: HashMap<(Uuid, Stream), u64>,
}

impl DeliveryChecker {
    /// A checker that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The flags of the next delivered message (in the order substituted, redated,
    /// reordered; empty when it is what its sender sent).
    pub fn check(&mut self, delivered: &Delivered, message: &Plaintext) -> Vec<Flag> {
        let mut flags = Vec::new();
        let inserted_at = delivered.inserted_at.timestamp_millis();
        let updated_at = delivered.updated_at.timestamp_millis();
        let edited = inserted_at != updated_at;
        let (genuine, server_time) = match message.edit_of {
            None => (message.id == delivered.message_group && !edited, inserted_at),
            Some(original) => (original == delivered.message_group && edited, updated_at),
        };
        if !genuine {
            flags.push(Flag::Substituted);
        }
        let sent_at = i64::try_from(message.sent_at).unwrap_or(i64::MAX);
        if server_time.abs_diff(sent_at) > REDATED_AFTER_MS.unsigned_abs() {
            flags.push(Flag::Redated);
        }
        if message.edit_of.is_none() {
            let stream = (delivered.sender, message.stream);
            match self.highest.get(&stream) {
                Some(&highest) if message.seq <= highest => flags.push(Flag::Reordered),
                _ => {
                    self.highest.insert(stream, message.seq);
                }
            }
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT_AT: u64 = 1_765_000_000_000;

    fn at(ms: u64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(i64::try_from(ms).expect("small")).expect("in range")
    }

    fn sent(seq: u64, stream: Stream) -> (Delivered, Plaintext) {
        let id = Uuid::now_v7();
        let sender = Uuid::from_u128(1);
        let delivered =
            Delivered { message_group: id, sender, inserted_at: at(SENT_AT + 40), updated_at: at(SENT_AT + 40) };
        let message = Plaintext { id, sent_at: SENT_AT, edit_of: None, stream, seq, text: String::new() };
        (delivered, message)
    }

    #[test]
    fn genuine_messages_in_order_have_no_flags() {
        let mut checker = DeliveryChecker::new();
        let (one, two) = (Stream::random(), Stream::random());
        for (seq, stream) in [(0, one), (1, one), (0, two), (5, one), (1, two)] {
            let (delivered, message) = sent(seq, stream);
            assert_eq!(checker.check(&delivered, &message), [], "{seq}");
        }
    }

    #[test]
    fn a_copy_in_another_message_or_a_mismatched_edit_is_substituted() {
        let mut checker = DeliveryChecker::new();
        let stream = Stream::random();
        let (delivered, message) = sent(0, stream);
        let copied = Delivered { message_group: Uuid::now_v7(), ..delivered };
        assert_eq!(checker.check(&copied, &message), [Flag::Substituted]);
        let (delivered, message) = sent(1, stream);
        let marked_edited = Delivered { updated_at: at(SENT_AT + 50_000), ..delivered };
        assert_eq!(checker.check(&marked_edited, &message), [Flag::Substituted]);

        let (delivered, mut edit) = sent(2, stream);
        edit.edit_of = Some(delivered.message_group);
        edit.id = Uuid::now_v7();
        let edited = Delivered { updated_at: at(SENT_AT + 100), inserted_at: at(SENT_AT - 60_000), ..delivered };
        assert_eq!(checker.check(&edited, &edit), []);
        let unedited = Delivered { updated_at: edited.inserted_at, ..edited };
        assert_eq!(checker.check(&unedited, &edit), [Flag::Substituted]);
        let elsewhere = Delivered { message_group: Uuid::now_v7(), ..edited };
        assert_eq!(checker.check(&elsewhere, &edit), [Flag::Substituted]);
    }

    #[test]
    fn more_than_fifteen_minutes_between_the_clocks_is_redated() {
        let mut checker = DeliveryChecker::new();
        let stream = Stream::random();
        for (seq, shift, flags) in [
            (0, 15 * 60 * 1000, &[][..]),
            (1, 15 * 60 * 1000 + 1, &[Flag::Redated][..]),
            (2, 24 * 3600 * 1000, &[Flag::Redated][..]),
        ] {
            let (delivered, message) = sent(seq, stream);
            let late = Delivered { inserted_at: at(SENT_AT + shift), updated_at: at(SENT_AT + shift), ..delivered };
            assert_eq!(checker.check(&late, &message), flags, "{shift}");
            let early = Delivered { inserted_at: at(SENT_AT - shift), updated_at: at(SENT_AT - shift), ..delivered };
            assert_eq!(DeliveryChecker::new().check(&early, &message), flags, "-{shift}");
        }
    }

    #[test]
    fn an_older_or_repeated_counter_of_the_same_stream_is_reordered() {
        let mut checker = DeliveryChecker::new();
        let stream = Stream::random();
        let flags: Vec<Vec<Flag>> = [3, 1, 3, 4, 2]
            .into_iter()
            .map(|seq| {
                let (delivered, message) = sent(seq, stream);
                checker.check(&delivered, &message)
            })
            .collect();
        assert_eq!(flags, [vec![], vec![Flag::Reordered], vec![Flag::Reordered], vec![], vec![Flag::Reordered]]);
        let (delivered, message) = sent(0, stream);
        let other_sender = Delivered { sender: Uuid::from_u128(2), ..delivered };
        assert_eq!(checker.check(&other_sender, &message), [], "another sender's stream");
        let (delivered, mut edit) = sent(0, stream);
        edit.edit_of = Some(edit.id);
        let edited = Delivered { updated_at: at(SENT_AT + 41), ..delivered };
        assert_eq!(checker.check(&edited, &edit), [], "edits are not ordered");
    }
}
