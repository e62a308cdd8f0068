//! The keys of one signed-in account and the rules that decide which keys of others it uses
//! (docs/e2e.md, "What clients keep and refuse").

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Pin, TrustError, TrustStore};
use crate::api::Message;
use crate::channels::JoinedConversation;
use crate::e2e::{
    self, Delivered, DeliveryChecker, E2eError, Flag, Identity, IdentityKey, KeyPair, Plaintext, Stream, WrapKey,
};

/// How much the client trusts a contact's identity now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    /// They have published no identity yet (an account made before identities, whose client
    /// has not signed in since): nobody can write to them yet.
    NoIdentity,
    /// Their identity is the pinned one.
    Trusted {
        /// The person compared safety numbers and marked them verified.
        verified: bool,
    },
    /// Their identity is not the pinned one (a new device key, a password reset, or someone
    /// replacing it): nothing is sent to them until the person acknowledges the change.
    Changed {
        /// The old identity had been verified: say it louder.
        was_verified: bool,
    },
}

/// Something the person must be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A contact's security key (identity) changed; sending to them waits for an
    /// acknowledgement ([`Keyring::acknowledge`]).
    IdentityChanged {
        /// Who.
        user: Uuid,
        /// Their previous identity had been verified.
        was_verified: bool,
    },
    /// A member's conversation key was refused (not signed by their identity): it is not used.
    KeyRefused {
        /// The conversation.
        conversation: Uuid,
        /// Whose key.
        user: Uuid,
    },
    /// The person's own key for a conversation does not open with their password (the
    /// password was reset, or the stored key was replaced): its messages cannot be read, and
    /// nothing is sent there until the person makes a new key ([`Keyring::replace_own_key`]).
    OwnKeyUnopenable {
        /// The conversation.
        conversation: Uuid,
    },
    /// The server says a conversation is not end-to-end encrypted, but it was, or it has
    /// other people in it: it stays end-to-end encrypted.
    DowngradeRefused {
        /// The conversation.
        conversation: Uuid,
    },
}

/// A key pair to publish for a conversation (`start_*_conversation`, `set_encryption_keys`).
#[derive(Debug, Clone)]
pub struct NewKeys {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The public JWK signed by the person's identity.
    pub public_key: String,
    /// The private key wrapped under the wrap key for this conversation.
    pub private_key: String,
}

/// What [`Keyring::join`] decided.
#[derive(Debug, Clone, Default)]
pub struct Joining {
    /// Keys to publish with `set_encryption_keys` (a new key pair, or the existing one signed
    /// for the first time).
    pub publish: Option<NewKeys>,
    /// What to tell the person.
    pub notices: Vec<Notice>,
}

/// One message to send: its group id and a ciphertext per member.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The message group id (chosen here; inside every ciphertext).
    pub message_group_id: Uuid,
    /// Member id → that member's content.
    pub copies: BTreeMap<Uuid, String>,
}

/// A delivered message, opened and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The text, or why it cannot be read.
    pub text: Result<String, String>,
    /// What the checks found the server changed (empty for a genuine message).
    pub flags: Vec<Flag>,
    /// Sent before authenticated headers (v1): it could not be checked.
    pub unchecked: bool,
    /// When the sender's clock says it was sent.
    pub sent_at: Option<DateTime<Utc>>,
}

/// A member's conversation key as this client judged it.
#[derive(Debug, Clone)]
enum MemberKey {
    /// Signed by their identity: used (the canonical JWK).
    Verified(String),
    /// Unsigned, from someone who never had an identity: read their old (v1) messages with
    /// it, never write to it.
    Legacy(String),
    /// Not signed by their identity.
    Refused,
}

/// The person's own key pair of a conversation.
#[derive(Debug)]
enum OwnKey {
    Ready(KeyPair),
    Unopenable,
}

#[derive(Debug)]
struct ConversationKeys {
    end_to_end: bool,
    own: Option<OwnKey>,
    members: BTreeSet<Uuid>,
    /// Each member's published key as the server gave it, and how it was judged.
    keys: HashMap<Uuid, (String, MemberKey)>,
    /// The next `seq` of this client's stream here.
    next_seq: u64,
    /// Checks live messages in the order they arrive, after the join's history page.
    checker: DeliveryChecker,
    /// The flags of each copy (id and version) checked since the join: a copy delivered
    /// twice (in a join's page and then as the `new_message` that was on its way) is the
    /// same message, not one out of order.
    checked: HashMap<(Uuid, DateTime<Utc>), Vec<Flag>>,
}

/// What the client knows of a contact.
#[derive(Debug, Clone)]
struct Contact {
    identity: Option<IdentityKey>,
    state: ContactState,
}

/// The keys of one signed-in account: its identity, its key pair per conversation, the
/// members' keys it accepted, the pins, and the checks of what the server delivers. It does no
/// I/O but its trust store's: the caller sends what it returns and feeds it what arrives.
#[derive(Debug)]
pub struct Keyring {
    me: Uuid,
    wrap_key: WrapKey,
    identity: Identity,
    store: TrustStore,
    /// This run's stream: with `seq`, orders the messages this client sends.
    stream: Stream,
    contacts: HashMap<Uuid, Contact>,
    conversations: HashMap<Uuid, ConversationKeys>,
}

impl Keyring {
    /// The keyring of `me`, whose identity is `identity` and wrap key `wrap_key`.
    pub fn new(me: Uuid, wrap_key: WrapKey, identity: Identity, store: TrustStore) -> Self {
        Self {
            me,
            wrap_key,
            identity,
            store,
            stream: Stream::random(),
            contacts: HashMap::new(),
            conversations: HashMap::new(),
        }
    }

    /// The person's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Takes note of the identity the server publishes for `user` (a user object's or a join
    /// reply's `identity_key`). The first identity seen is pinned; a different one later makes
    /// the contact [`ContactState::Changed`] and is reported once.
    pub fn learn_identity(&mut self, user: Uuid, published: Option<&Value>) -> Result<Option<Notice>, TrustError> {
        if user == self.me {
            return Ok(None);
        }
        let identity = published.filter(|value| !value.is_null()).and_then(|value| IdentityKey::from_json(value).ok());
        let previous = self.contacts.get(&user).map(|contact| contact.state);
        let state = match (&identity, self.store.pin(user).cloned()) {
            (None, None) => ContactState::NoIdentity,
            (Some(identity), None) => {
                self.store.set_pin(user, Pin { fingerprint: identity.fingerprint(), verified: false })?;
                ContactState::Trusted { verified: false }
            }
            (Some(identity), Some(pin)) if identity.fingerprint() == pin.fingerprint => {
                ContactState::Trusted { verified: pin.verified }
            }
            // Another identity, or none where one was pinned: both are changes.
            (_, Some(pin)) => ContactState::Changed { was_verified: pin.verified },
        };
        let identity_changed = self.contacts.get(&user).is_none_or(|contact| contact.identity != identity);
        self.contacts.insert(user, Contact { identity, state });
        if identity_changed {
            self.rejudge(user);
        }
        Ok(match state {
            ContactState::Changed { was_verified } if !matches!(previous, Some(ContactState::Changed { .. })) => {
                Some(Notice::IdentityChanged { user, was_verified })
            }
            _ => None,
        })
    }

    /// How far `user`'s identity is trusted.
    pub fn contact_state(&self, user: Uuid) -> ContactState {
        self.contacts.get(&user).map_or(ContactState::NoIdentity, |contact| contact.state)
    }

    /// The person accepts `user`'s changed identity: it is pinned (unverified) and sending to
    /// them resumes.
    pub fn acknowledge(&mut self, user: Uuid) -> Result<(), TrustError> {
        let contact = self.contacts.get_mut(&user).ok_or(TrustError::UnknownContact)?;
        let identity = contact.identity.as_ref().ok_or(TrustError::UnknownContact)?;
        self.store.set_pin(user, Pin { fingerprint: identity.fingerprint(), verified: false })?;
        contact.state = ContactState::Trusted { verified: false };
        Ok(())
    }

    /// The person compared safety numbers with `user` and they matched.
    pub fn mark_verified(&mut self, user: Uuid) -> Result<(), TrustError> {
        let contact = self.contacts.get_mut(&user).ok_or(TrustError::UnknownContact)?;
        let ContactState::Trusted { .. } = contact.state else { return Err(TrustError::UnknownContact) };
        let identity = contact.identity.as_ref().ok_or(TrustError::UnknownContact)?;
        self.store.set_pin(user, Pin { fingerprint: identity.fingerprint(), verified: true })?;
        contact.state = ContactState::Trusted { verified: true };
        Ok(())
    }

    /// The safety number of the person and `user` (docs/e2e.md), if `user` has an identity.
    pub fn safety_number(&self, user: Uuid) -> Option<String> {
        let identity = self.contacts.get(&user)?.identity.as_ref()?;
        Some(e2e::safety_number(self.me, &self.identity.public(), user, identity))
    }

    /// Keys for a conversation this client is about to start: its id (chosen here), a fresh
    /// key pair signed and wrapped for it. The conversation counts as end-to-end from now on.
    pub fn start_conversation(&mut self) -> Result<NewKeys, TrustError> {
        let conversation_id = Uuid::now_v7();
        let key_pair = KeyPair::generate();
        let keys = self.keys_to_publish(conversation_id, &key_pair)?;
        self.store.record_end_to_end(conversation_id)?;
        self.conversations.insert(
            conversation_id,
            ConversationKeys {
                end_to_end: true,
                own: Some(OwnKey::Ready(key_pair)),
                members: BTreeSet::from([self.me]),
                keys: HashMap::new(),
                next_seq: 0,
                checker: DeliveryChecker::new(),
                checked: HashMap::new(),
            },
        );
        Ok(keys)
    }

    /// Takes a join reply: the members' identities (pinned or checked), whether the
    /// conversation is end-to-end (never turning back), the person's own key (unwrapped, made,
    /// or signed for the first time) and the members' keys (accepted only when signed).
    pub fn join(&mut self, joined: &JoinedConversation) -> Result<Joining, TrustError> {
        let id = joined.conversation.id;
        let mut notices = Vec::new();
        for (user, published) in &joined.identity_keys {
            notices.extend(self.learn_identity(*user, published.as_ref())?);
        }
        let mut members: BTreeSet<Uuid> = joined.read_times.keys().copied().collect();
        members.insert(self.me);
        // Plain text only where the server says so, this client never saw it end-to-end, and
        // nobody else is in it (the assistant's replies come from no member).
        let claims_plaintext = joined.conversation.assistant;
        let plaintext = claims_plaintext && !self.store.is_end_to_end(id) && members.len() == 1;
        if claims_plaintext && !plaintext {
            notices.push(Notice::DowngradeRefused { conversation: id });
        }
        if !plaintext {
            self.store.record_end_to_end(id)?;
        }
        let previous = self.conversations.remove(&id);
        let mut publish = None;
        let own = if plaintext {
            None
        } else {
            match joined.private_key.as_deref() {
                Some(wrapped) => match e2e::unwrap_private_key(&self.wrap_key, id, wrapped) {
                    Ok(key_pair) => {
                        let published = joined.public_keys.get(&self.me).map(String::as_str);
                        if !self.is_own_signed_key(id, &key_pair, published) {
                            publish = Some(self.keys_to_publish(id, &key_pair)?);
                        }
                        Some(OwnKey::Ready(key_pair))
                    }
                    Err(_) => {
                        notices.push(Notice::OwnKeyUnopenable { conversation: id });
                        Some(OwnKey::Unopenable)
                    }
                },
                None => {
                    let key_pair = KeyPair::generate();
                    publish = Some(self.keys_to_publish(id, &key_pair)?);
                    Some(OwnKey::Ready(key_pair))
                }
            }
        };
        let mut keys = HashMap::new();
        for (user, public_key) in joined.public_keys.iter().filter(|(user, _)| **user != self.me) {
            let key = self.judge(id, *user, public_key);
            if matches!(key, MemberKey::Refused) {
                notices.push(Notice::KeyRefused { conversation: id, user: *user });
            }
            keys.insert(*user, (public_key.clone(), key));
        }
        let next_seq = previous.map_or(0, |previous| previous.next_seq);
        self.conversations.insert(
            id,
            ConversationKeys {
                end_to_end: !plaintext,
                own,
                members,
                keys,
                next_seq,
                checker: DeliveryChecker::new(),
                checked: HashMap::new(),
            },
        );
        Ok(Joining { publish, notices })
    }

    /// A member set a key (`set_encryption_keys`): accepted only when signed by their
    /// identity; `Some` notice when refused.
    pub fn member_key_set(&mut self, conversation: Uuid, user: Uuid, public_key: &str) -> Option<Notice> {
        if user == self.me {
            return None;
        }
        let key = self.judge(conversation, user, public_key);
        let refused = matches!(key, MemberKey::Refused);
        let entry = self.conversations.get_mut(&conversation)?;
        entry.keys.insert(user, (public_key.to_owned(), key));
        refused.then_some(Notice::KeyRefused { conversation, user })
    }

    /// The conversation's members now (after `new_conversation` for a change, or a leave).
    pub fn members_changed(&mut self, conversation: Uuid, members: impl IntoIterator<Item = Uuid>) {
        if let Some(entry) = self.conversations.get_mut(&conversation) {
            entry.members = members.into_iter().chain([self.me]).collect();
            let current = entry.members.clone();
            entry.keys.retain(|user, _| current.contains(user));
        }
    }

    /// The person chose to make a new key for a conversation whose key does not open: the
    /// keys to publish. Earlier messages there stay unreadable.
    pub fn replace_own_key(&mut self, conversation: Uuid) -> Result<NewKeys, TrustError> {
        let key_pair = KeyPair::generate();
        let keys = self.keys_to_publish(conversation, &key_pair)?;
        let entry = self.conversations.get_mut(&conversation).ok_or(TrustError::NotJoined)?;
        entry.own = Some(OwnKey::Ready(key_pair));
        Ok(keys)
    }

    /// Whether plain text may be sent in `conversation`: only where the server says it is not
    /// end-to-end, this client never saw it so, and the person is its only member.
    pub fn plaintext_allowed(&self, conversation: Uuid) -> bool {
        self.conversations.get(&conversation).is_some_and(|entry| !entry.end_to_end)
    }

    /// Encrypts `text` for every member of `conversation`: to their signed conversation key,
    /// or to their identity when they have none yet. For an edit, `edit_of` is the message
    /// group it replaces.
    ///
    /// Refused when a member's identity changed unacknowledged ([`TrustError::Blocked`]) or a
    /// member can be written to neither way ([`TrustError::Waiting`]).
    pub fn seal(&mut self, conversation: Uuid, text: &str, edit_of: Option<Uuid>) -> Result<Outgoing, TrustError> {
        let entry = self.conversations.get(&conversation).ok_or(TrustError::NotJoined)?;
        if !entry.end_to_end {
            return Err(TrustError::NotEndToEnd);
        }
        let own = match &entry.own {
            Some(OwnKey::Ready(key_pair)) => key_pair,
            _ => return Err(TrustError::OwnKeyUnopenable),
        };
        let others: Vec<Uuid> = entry.members.iter().copied().filter(|member| *member != self.me).collect();
        let blocked: Vec<Uuid> = others
            .iter()
            .copied()
            .filter(|member| matches!(self.contact_state(*member), ContactState::Changed { .. }))
            .collect();
        if !blocked.is_empty() {
            return Err(TrustError::Blocked(blocked));
        }
        let message_group_id = edit_of.unwrap_or_else(Uuid::now_v7);
        let plaintext = Plaintext {
            id: if edit_of.is_some() { Uuid::now_v7() } else { message_group_id },
            sent_at: u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0),
            edit_of,
            stream: self.stream,
            seq: entry.next_seq,
            text: text.to_owned(),
        };
        let mut copies = BTreeMap::new();
        let mut waiting = Vec::new();
        copies
            .insert(self.me, e2e::encrypt_message(own, self.me, &own.public_jwk(), self.me, conversation, &plaintext)?);
        for member in others {
            let content = match (entry.keys.get(&member).map(|(_, key)| key), self.contacts.get(&member)) {
                (Some(MemberKey::Verified(key)), _) => {
                    e2e::encrypt_message(own, self.me, key, member, conversation, &plaintext)?
                }
                (_, Some(Contact { identity: Some(identity), .. })) => {
                    e2e::encrypt_to_identity(&self.identity, self.me, identity, member, conversation, &plaintext)?
                }
                _ => {
                    waiting.push(member);
                    continue;
                }
            };
            copies.insert(member, content);
        }
        if !waiting.is_empty() {
            return Err(TrustError::Waiting(waiting));
        }
        if let Some(entry) = self.conversations.get_mut(&conversation) {
            entry.next_seq += 1;
        }
        Ok(Outgoing { message_group_id, copies })
    }

    /// Opens a message that just arrived (after the join's page), checking it against the
    /// messages before it. A copy already checked since the join keeps its flags.
    pub fn open(&mut self, conversation: Uuid, message: &Message) -> Opened {
        let (mut checker, earlier) = match self.conversations.get_mut(&conversation) {
            Some(entry) => {
                let earlier = entry.checked.get(&(message.id, message.updated_at)).cloned();
                (std::mem::take(&mut entry.checker), earlier)
            }
            None => return unreadable("not joined"),
        };
        let opened = match earlier {
            // Opened again, checked against nothing, and given its first check's flags.
            Some(flags) => Opened { flags, ..self.open_checked(conversation, message, &mut DeliveryChecker::new()) },
            None => self.open_checked(conversation, message, &mut checker),
        };
        if let Some(entry) = self.conversations.get_mut(&conversation) {
            entry.checker = checker;
            entry.checked.insert((message.id, message.updated_at), opened.flags.clone());
        }
        opened
    }

    /// Opens a page of history, oldest first, checking its messages against each other; the
    /// join's page also starts the live checks of [`open`](Self::open).
    pub fn open_page(&mut self, conversation: Uuid, messages: &[Message], joined_page: bool) -> Vec<Opened> {
        let mut checker = DeliveryChecker::new();
        let opened: Vec<Opened> =
            messages.iter().map(|message| self.open_checked(conversation, message, &mut checker)).collect();
        if joined_page && let Some(entry) = self.conversations.get_mut(&conversation) {
            entry.checker = checker;
            entry.checked = messages
                .iter()
                .zip(&opened)
                .map(|(message, opened)| ((message.id, message.updated_at), opened.flags.clone()))
                .collect();
        }
        opened
    }

    fn open_checked(&self, conversation: Uuid, message: &Message, checker: &mut DeliveryChecker) -> Opened {
        let Some(entry) = self.conversations.get(&conversation) else { return unreadable("not joined") };
        if !entry.end_to_end {
            return Opened { text: Ok(message.content.clone()), flags: Vec::new(), unchecked: false, sent_at: None };
        }
        let Some(OwnKey::Ready(own)) = &entry.own else {
            return unreadable("your key for this conversation cannot be opened");
        };
        let sender = message.sender;
        let tag = message.content.split_once('.').map(|(tag, _)| tag);
        let opened = match tag {
            Some("v2") => self.sender_key(entry, own, sender).and_then(|key| {
                e2e::decrypt_message(own, self.me, &key, sender, conversation, &message.content).map_err(describe)
            }),
            Some("v2i") => self.sender_identity(sender).and_then(|identity| {
                e2e::decrypt_from_identity(&self.identity, self.me, &identity, sender, conversation, &message.content)
                    .map_err(describe)
            }),
            Some("v1") => {
                let key = self.sender_key(entry, own, sender).or_else(|error| match entry.keys.get(&sender) {
                    Some((_, MemberKey::Legacy(key))) => Ok(key.clone()),
                    _ => Err(error),
                });
                let text = key.and_then(|key| {
                    e2e::decrypt(own, self.me, &key, sender, conversation, &message.content).map_err(describe)
                });
                return Opened { text, flags: Vec::new(), unchecked: true, sent_at: None };
            }
            _ => Err("not a message format this client knows".to_owned()),
        };
        match opened {
            Ok(plaintext) => {
                let delivered = Delivered {
                    message_group: message.message_group,
                    sender,
                    inserted_at: message.inserted_at,
                    updated_at: message.updated_at,
                };
                let flags = checker.check(&delivered, &plaintext);
                let sent_at = i64::try_from(plaintext.sent_at).ok().and_then(DateTime::from_timestamp_millis);
                Opened { text: Ok(plaintext.text), flags, unchecked: false, sent_at }
            }
            Err(reason) => unreadable(&reason),
        }
    }

    /// The verified conversation key of `sender` (the person's own for their own messages).
    fn sender_key(&self, entry: &ConversationKeys, own: &KeyPair, sender: Uuid) -> Result<String, String> {
        if sender == self.me {
            return Ok(own.public_jwk());
        }
        match entry.keys.get(&sender).map(|(_, key)| key) {
            Some(MemberKey::Verified(key)) => Ok(key.clone()),
            Some(MemberKey::Refused) => Err("the sender's key is not signed by their security key".to_owned()),
            Some(MemberKey::Legacy(_)) => Err("the sender has no security key yet".to_owned()),
            None => Err("the sender's key is unknown".to_owned()),
        }
    }

    fn sender_identity(&self, sender: Uuid) -> Result<IdentityKey, String> {
        if sender == self.me {
            return Ok(self.identity.public());
        }
        self.contacts
            .get(&sender)
            .and_then(|contact| contact.identity.clone())
            .ok_or_else(|| "the sender has no security key".to_owned())
    }

    /// A member's published conversation key, judged against their identity.
    fn judge(&self, conversation: Uuid, user: Uuid, public_key: &str) -> MemberKey {
        match self.contacts.get(&user) {
            Some(Contact { identity: Some(identity), .. }) => {
                match e2e::verify_conversation_key(identity, user, conversation, public_key) {
                    Ok(canonical) => MemberKey::Verified(canonical),
                    Err(_) => MemberKey::Refused,
                }
            }
            // Nobody ever saw an identity of theirs: an account from before identities, whose
            // old messages stay readable. Once one was pinned, an unsigned key is refused.
            _ if self.store.pin(user).is_none() => match e2e::fingerprint(public_key) {
                Ok(_) => MemberKey::Legacy(public_key.to_owned()),
                Err(_) => MemberKey::Refused,
            },
            _ => MemberKey::Refused,
        }
    }

    /// Judges `user`'s keys in every conversation again, against the identity now known.
    fn rejudge(&mut self, user: Uuid) {
        let judged: Vec<(Uuid, MemberKey)> = self
            .conversations
            .iter()
            .filter_map(|(id, entry)| entry.keys.get(&user).map(|(text, _)| (*id, self.judge(*id, user, text))))
            .collect();
        for (conversation, key) in judged {
            if let Some((_, judged)) =
                self.conversations.get_mut(&conversation).and_then(|entry| entry.keys.get_mut(&user))
            {
                *judged = key;
            }
        }
    }

    /// Whether `published` is `key_pair`'s public key signed by the person's identity for
    /// this conversation.
    fn is_own_signed_key(&self, conversation: Uuid, key_pair: &KeyPair, published: Option<&str>) -> bool {
        published.is_some_and(|published| {
            e2e::verify_conversation_key(&self.identity.public(), self.me, conversation, published)
                .is_ok_and(|canonical| canonical == key_pair.public_jwk())
        })
    }

    fn keys_to_publish(&self, conversation_id: Uuid, key_pair: &KeyPair) -> Result<NewKeys, TrustError> {
        Ok(NewKeys {
            conversation_id,
            public_key: e2e::sign_conversation_key(&self.identity, self.me, conversation_id, &key_pair.public_jwk())?,
            private_key: e2e::wrap_private_key(&self.wrap_key, conversation_id, key_pair),
        })
    }
}

fn unreadable(reason: &str) -> Opened {
    Opened { text: Err(reason.to_owned()), flags: Vec::new(), unchecked: false, sent_at: None }
}

fn describe(error: E2eError) -> String {
    match error {
        E2eError::Decrypt => "it does not decrypt with the keys it names".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A person with an identity and a keyring of their own.
    struct Person {
        id: Uuid,
        wrap_key: WrapKey,
        keyring: Keyring,
    }

    fn person(seed: u8) -> Person {
        let id = Uuid::now_v7();
        let wrap_key = WrapKey::from_bytes([seed; 32]);
        let keyring = Keyring::new(id, wrap_key.clone(), Identity::generate(), TrustStore::in_memory());
        Person { id, wrap_key, keyring }
    }

    impl Person {
        fn identity_json(&self) -> Value {
            self.keyring.identity().public().to_json()
        }
    }

    /// What the server stores of a conversation, as a join reply gives it.
    struct Server {
        id: Uuid,
        assistant: bool,
        members: Vec<Uuid>,
        public_keys: BTreeMap<Uuid, String>,
        private_keys: BTreeMap<Uuid, String>,
        identities: BTreeMap<Uuid, Value>,
    }

    impl Server {
        fn new(id: Uuid, people: &[&Person]) -> Self {
            Self {
                id,
                assistant: false,
                members: people.iter().map(|p| p.id).collect(),
                public_keys: BTreeMap::new(),
                private_keys: BTreeMap::new(),
                identities: people.iter().map(|p| (p.id, p.identity_json())).collect(),
            }
        }

        fn store(&mut self, user: Uuid, keys: &NewKeys) {
            self.public_keys.insert(user, keys.public_key.clone());
            self.private_keys.insert(user, keys.private_key.clone());
        }

        fn join_reply(&self, user: Uuid) -> JoinedConversation {
            serde_json::from_value(json!({
                "conversation": {
                    "id": self.id, "private": false, "alias": null, "assistant": self.assistant,
                    "inserted_at": "2026-12-06T10:00:00Z", "updated_at": "2026-12-06T10:00:00Z",
                },
                "messages": { "items": [], "page_token": null },
                "public_keys": self.public_keys,
                "private_key": self.private_keys.get(&user),
                "read_times": self.members.iter().map(|m| (*m, None::<String>)).collect::<BTreeMap<_, _>>(),
                "identity_keys": self.identities,
            }))
            .expect("a join reply")
        }

        /// Joins `person`, storing the keys their keyring publishes.
        fn join(&mut self, person: &mut Person) -> Vec<Notice> {
            let joining = person.keyring.join(&self.join_reply(person.id)).expect("join");
            if let Some(keys) = &joining.publish {
                self.store(person.id, keys);
            }
            joining.notices
        }
    }

    fn delivered(outgoing: &Outgoing, sender: Uuid, to: Uuid) -> Message {
        let now = Utc::now();
        Message {
            id: Uuid::now_v7(),
            message_group: outgoing.message_group_id,
            sender,
            content: outgoing.copies[&to].clone(),
            inserted_at: now,
            updated_at: now,
        }
    }

    /// Ada starts a conversation with Bob and joins it; Bob has not joined.
    fn started(ada: &mut Person, bob: &Person) -> Server {
        let keys = ada.keyring.start_conversation().expect("start");
        let mut server = Server::new(keys.conversation_id, &[ada, bob]);
        server.store(ada.id, &keys);
        assert!(server.join(ada).is_empty());
        server
    }

    #[test]
    fn a_member_who_never_joined_gets_a_copy_for_their_identity_and_reads_it_later() {
        let (mut ada, mut bob) = (person(1), person(2));
        let mut server = started(&mut ada, &bob);
        let sent = ada.keyring.seal(server.id, "hello Bob", None).expect("seal");
        assert!(sent.copies[&bob.id].starts_with("v2i."), "{}", sent.copies[&bob.id]);
        assert!(sent.copies[&ada.id].starts_with("v2."));
        assert!(server.join(&mut bob).is_empty());
        let opened = bob.keyring.open(server.id, &delivered(&sent, ada.id, bob.id));
        assert_eq!((opened.text, opened.flags, opened.unchecked), (Ok("hello Bob".to_owned()), vec![], false));
        // Bob published a signed key: Ada's next copies use it.
        server.join(&mut ada);
        let next = ada.keyring.seal(server.id, "again", None).expect("seal");
        assert!(next.copies[&bob.id].starts_with("v2."));
        assert_eq!(bob.keyring.open(server.id, &delivered(&next, ada.id, bob.id)).text, Ok("again".to_owned()));
        let mine = ada.keyring.open(server.id, &delivered(&next, ada.id, ada.id));
        assert_eq!(mine.text, Ok("again".to_owned()));
    }

    #[test]
    fn a_key_published_with_a_token_alone_is_refused_and_not_written_to() {
        let (mut ada, mut bob) = (person(1), person(2));
        let mut server = started(&mut ada, &bob);
        server.join(&mut bob);
        server.join(&mut ada);
        // Someone with Bob's access token sets a key of their own: unsigned, or signed by an
        // identity that is not Bob's.
        let attacker = KeyPair::generate();
        assert_eq!(
            ada.keyring.member_key_set(server.id, bob.id, &attacker.public_jwk()),
            Some(Notice::KeyRefused { conversation: server.id, user: bob.id })
        );
        let forged =
            e2e::sign_conversation_key(&Identity::generate(), bob.id, server.id, &attacker.public_jwk()).expect("sign");
        assert!(ada.keyring.member_key_set(server.id, bob.id, &forged).is_some());
        let sent = ada.keyring.seal(server.id, "door code is 4711", None).expect("seal");
        // Not to the attacker's key: to Bob's identity, which only Bob opens.
        assert!(sent.copies[&bob.id].starts_with("v2i."));
        assert!(
            e2e::decrypt_message(
                &attacker,
                bob.id,
                &ada_public(&server, ada.id),
                ada.id,
                server.id,
                &sent.copies[&bob.id]
            )
            .is_err()
        );
        assert_eq!(
            bob.keyring.open(server.id, &delivered(&sent, ada.id, bob.id)).text,
            Ok("door code is 4711".to_owned())
        );
    }

    fn ada_public(server: &Server, ada: Uuid) -> String {
        e2e::verify_conversation_key(
            &IdentityKey::from_json(&server.identities[&ada]).expect("identity"),
            ada,
            server.id,
            &server.public_keys[&ada],
        )
        .expect("signed")
    }

    #[test]
    fn a_changed_identity_blocks_sending_until_acknowledged_and_verified_contacts_say_so() {
        let (mut ada, mut bob) = (person(1), person(2));
        let mut server = started(&mut ada, &bob);
        server.join(&mut bob);
        server.join(&mut ada);
        assert_eq!(ada.keyring.contact_state(bob.id), ContactState::Trusted { verified: false });
        let number = ada.keyring.safety_number(bob.id).expect("a safety number");
        assert_eq!(Some(number), bob.keyring.safety_number(ada.id));
        ada.keyring.mark_verified(bob.id).expect("verify");
        // The server presents another identity for Bob (a reset, or someone replacing it).
        let new_bob = Identity::generate();
        server.identities.insert(bob.id, new_bob.public().to_json());
        let notices = server.join(&mut ada);
        let refused = Notice::KeyRefused { conversation: server.id, user: bob.id };
        // His key was signed by the old identity, so it is not used either.
        assert_eq!(notices, [Notice::IdentityChanged { user: bob.id, was_verified: true }, refused.clone()]);
        assert_eq!(ada.keyring.seal(server.id, "hi", None).map(|_| ()), Err(TrustError::Blocked(vec![bob.id])));
        // Told once, not on every join.
        assert_eq!(server.join(&mut ada), [refused]);
        ada.keyring.acknowledge(bob.id).expect("acknowledge");
        assert_eq!(ada.keyring.contact_state(bob.id), ContactState::Trusted { verified: false });
        let sent = ada.keyring.seal(server.id, "hi", None).expect("seal after acknowledging");
        assert!(sent.copies[&bob.id].starts_with("v2i."), "Bob's old key is not signed by his new identity");
    }

    #[test]
    fn the_server_cannot_turn_a_conversation_into_plain_text() {
        let (mut ada, bob) = (person(1), person(2));
        let mut server = started(&mut ada, &bob);
        server.assistant = true;
        assert_eq!(server.join(&mut ada), [Notice::DowngradeRefused { conversation: server.id }]);
        assert!(!ada.keyring.plaintext_allowed(server.id));
        assert!(ada.keyring.seal(server.id, "still encrypted", None).is_ok());
        // A conversation first seen as the assistant's, with only the person in it, is plain.
        let assistant = Uuid::now_v7();
        let mut plain = Server::new(assistant, &[&ada]);
        plain.assistant = true;
        assert!(plain.join(&mut ada).is_empty());
        assert!(ada.keyring.plaintext_allowed(assistant));
        assert_eq!(ada.keyring.seal(assistant, "x", None).map(|_| ()), Err(TrustError::NotEndToEnd));
        // Even the assistant's conversation stops being plain once someone else is in it.
        plain.members.push(bob.id);
        plain.identities.insert(bob.id, bob.identity_json());
        assert_eq!(plain.join(&mut ada), [Notice::DowngradeRefused { conversation: assistant }]);
        assert!(!ada.keyring.plaintext_allowed(assistant));
    }

    #[test]
    fn an_own_key_that_does_not_open_is_reported_not_replaced() {
        let (mut ada, bob) = (person(1), person(2));
        let mut server = started(&mut ada, &bob);
        let other = Uuid::now_v7();
        // A key wrapped for another conversation (the old provisional trick) does not open here.
        server.private_keys.insert(ada.id, e2e::wrap_private_key(&ada.wrap_key, other, &KeyPair::generate()));
        let joining = ada.keyring.join(&server.join_reply(ada.id)).expect("join");
        assert!(joining.publish.is_none(), "nothing is replaced silently");
        assert_eq!(joining.notices, [Notice::OwnKeyUnopenable { conversation: server.id }]);
        assert_eq!(ada.keyring.seal(server.id, "x", None).map(|_| ()), Err(TrustError::OwnKeyUnopenable));
        let replaced = ada.keyring.replace_own_key(server.id).expect("the person asked for a new key");
        assert_eq!(replaced.conversation_id, server.id);
        assert!(ada.keyring.seal(server.id, "x", None).is_ok());
    }

    #[test]
    fn an_unsigned_key_is_signed_on_the_next_join_and_old_messages_stay_readable() {
        let (mut ada, mut bob) = (person(1), person(2));
        let id = Uuid::now_v7();
        // Both set keys before identities existed.
        let (ada_key, bob_key) = (KeyPair::generate(), KeyPair::generate());
        let mut server = Server::new(id, &[&ada, &bob]);
        server.identities.clear();
        for (who, key, wrap_key) in [(ada.id, &ada_key, &ada.wrap_key), (bob.id, &bob_key, &bob.wrap_key)] {
            server.public_keys.insert(who, key.public_jwk());
            server.private_keys.insert(who, e2e::wrap_private_key(wrap_key, id, key));
        }
        let old = e2e::encrypt(&bob_key, bob.id, &ada_key.public_jwk(), ada.id, id, "from before").expect("v1");
        let old_message = Message {
            id: Uuid::now_v7(),
            message_group: Uuid::now_v7(),
            sender: bob.id,
            content: old,
            inserted_at: Utc::now(),
            updated_at: Utc::now(),
        };
        // Ada's client now has an identity; Bob's has not signed in since.
        server.identities.insert(ada.id, ada.identity_json());
        let joining = ada.keyring.join(&server.join_reply(ada.id)).expect("join");
        let republished = joining.publish.expect("Ada's key is signed now");
        assert_eq!(
            e2e::verify_conversation_key(&ada.keyring.identity().public(), ada.id, id, &republished.public_key),
            Ok(ada_key.public_jwk()),
            "the same key pair, signed",
        );
        server.store(ada.id, &republished);
        let opened = ada.keyring.open(id, &old_message);
        assert_eq!((opened.text.as_deref(), opened.unchecked), (Ok("from before"), true));
        assert_eq!(ada.keyring.seal(id, "x", None).map(|_| ()), Err(TrustError::Waiting(vec![bob.id])));
        // Bob signs in with a current client: his identity is published, his key signed.
        server.identities.insert(bob.id, bob.identity_json());
        server.join(&mut bob);
        server.join(&mut ada);
        assert!(ada.keyring.seal(id, "x", None).expect("seal").copies[&bob.id].starts_with("v2."));
        // From now on an unsigned key for Bob is refused.
        assert!(ada.keyring.member_key_set(id, bob.id, &KeyPair::generate().public_jwk()).is_some());
    }

    #[test]
    fn copies_moved_or_redated_by_the_server_are_flagged() {
        let (mut ada, mut bob) = (person(1), person(2));
        let mut server = started(&mut ada, &bob);
        server.join(&mut bob);
        server.join(&mut ada);
        let first = ada.keyring.seal(server.id, "Yes, I approve the transfer of 10 EUR", None).expect("seal");
        let second = ada.keyring.seal(server.id, "second", None).expect("seal");
        let genuine = [delivered(&first, ada.id, bob.id), delivered(&second, ada.id, bob.id)];
        let opened = bob.keyring.open_page(server.id, &genuine, true);
        assert!(opened.iter().all(|opened| opened.flags.is_empty()), "{opened:?}");
        let mut replayed = delivered(&first, ada.id, bob.id);
        replayed.message_group = Uuid::now_v7();
        replayed.inserted_at += chrono::Duration::days(1);
        replayed.updated_at = replayed.inserted_at;
        let opened = bob.keyring.open(server.id, &replayed);
        assert_eq!(opened.flags, [Flag::Substituted, Flag::Redated, Flag::Reordered]);
        let swapped = bob.keyring.open_page(server.id, &[genuine[1].clone(), genuine[0].clone()], false);
        assert_eq!(swapped[1].flags, [Flag::Reordered]);
    }

    #[test]
    fn a_copy_delivered_in_the_join_page_and_again_live_is_not_out_of_order() {
        let (mut ada, mut bob) = (person(1), person(2));
        let mut server = started(&mut ada, &bob);
        server.join(&mut bob);
        server.join(&mut ada);
        let sent = delivered(&ada.keyring.seal(server.id, "once", None).expect("seal"), ada.id, bob.id);
        assert_eq!(bob.keyring.open_page(server.id, std::slice::from_ref(&sent), true)[0].flags, []);
        let again = bob.keyring.open(server.id, &sent);
        assert_eq!((again.text, again.flags), (Ok("once".to_owned()), vec![]));
        // Another copy of the same ciphertext is still caught.
        let copied = Message { id: Uuid::now_v7(), message_group: Uuid::now_v7(), ..sent };
        assert_eq!(bob.keyring.open(server.id, &copied).flags, [Flag::Substituted, Flag::Reordered]);
    }
}
