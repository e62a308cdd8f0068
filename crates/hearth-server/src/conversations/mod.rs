//! Conversations, the domain: starting them, what a member sees on joining, sending, editing and
//! deleting messages, history pages, typing and read marks, aliases, members, and each member's
//! keys. The socket adapter (`realtime`) and the REST adapter (`http`) both call in here; what
//! each operation tells other people is published from here, through [`crate::events`].

pub mod delivery;
pub mod keys;
mod replies;

use std::collections::BTreeMap;

use hearth_store::{NewConversation, NewMessageGroup, StoreError, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

pub use delivery::deliver;
pub use replies::{
    Announcement, ConversationList, ConversationSummary, JoinView, ListedConversation, Message, MessagePage,
    PrivateConversation,
};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::events::{Envelope, conversation_topic, user_topic};
use crate::state::AppState;

/// Messages in the join reply and the default page of `GET /api/messages`.
pub const FIRST_PAGE: u32 = 50;

/// Largest ciphertext for one recipient.
pub const MAX_CIPHERTEXT_BYTES: usize = 64 * 1024;

/// Largest group alias, in characters.
pub const MAX_ALIAS_CHARS: usize = 100;

/// Longest `client_msg_id`, in bytes.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 100;

/// The refusal of an event from someone who is not (or no longer) a member.
fn not_a_member() -> ApiError {
    ApiError::Forbidden { code: "not_a_member", message: "you are not a member of this conversation" }
}

/// A group alias as given: trimmed; empty means none.
fn checked_alias(alias: Option<&str>) -> ApiResult<Option<String>> {
    match alias.map(str::trim) {
        None => Ok(None),
        Some(alias) if alias.chars().count() > MAX_ALIAS_CHARS || alias.chars().any(char::is_control) => {
            Err(ApiError::refused(
                "invalid_alias",
                format!("alias must be at most {MAX_ALIAS_CHARS} characters without control characters"),
            ))
        }
        Some("") => Ok(None),
        Some(alias) => Ok(Some(alias.to_owned())),
    }
}

fn check_ciphertexts(contents: &BTreeMap<Uuid, String>) -> ApiResult<()> {
    if contents.values().any(|c| c.len() > MAX_CIPHERTEXT_BYTES) {
        return Err(ApiError::refused(
            "ciphertext_too_large",
            format!("each encrypted message must be at most {MAX_CIPHERTEXT_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// `start_group_conversation`.
#[derive(Debug, Deserialize)]
pub struct StartGroup {
    user_ids: Vec<Uuid>,
    public_key: Value,
    private_key: Value,
    alias: Option<String>,
    /// (+) The new conversation's id, chosen by the client so that it can wrap its private key
    /// for the real id before the conversation exists; the server picks one when absent.
    conversation_id: Option<Uuid>,
}

/// `start_private_conversation`.
#[derive(Debug, Deserialize)]
pub struct StartPrivate {
    other_user_id: Uuid,
    public_key: Value,
    private_key: Value,
    /// (+) As [`StartGroup`]'s.
    conversation_id: Option<Uuid>,
}

/// Starts a group of the caller and `user_ids`, announced to every member.
pub async fn start_group(state: &AppState, me: Uuid, request: StartGroup) -> ApiResult<Announcement> {
    let alias = checked_alias(request.alias.as_deref())?;
    let mut members = vec![me];
    for user in request.user_ids {
        if !members.contains(&user) {
            members.push(user);
        }
    }
    let id = new_conversation_id(state, request.conversation_id).await?;
    let creator_keys = keys::seal(state, id, me, &request.public_key, &request.private_key)?;
    let now = Timestamp::now();
    start(state, NewConversation { id, private: false, alias, creator: me, members, creator_keys, now }).await
}

/// Starts the private conversation of the caller and someone else.
pub async fn start_private(state: &AppState, me: Uuid, request: StartPrivate) -> ApiResult<Announcement> {
    if request.other_user_id == me {
        return Err(ApiError::refused("private_with_oneself", "a private conversation needs another user"));
    }
    let id = new_conversation_id(state, request.conversation_id).await?;
    let creator_keys = keys::seal(state, id, me, &request.public_key, &request.private_key)?;
    let members = vec![me, request.other_user_id];
    let now = Timestamp::now();
    start(state, NewConversation { id, private: true, alias: None, creator: me, members, creator_keys, now }).await
}

/// The id of a conversation about to start: the client's choice if it made one (never the nil
/// UUID, which a client could mistake for "not created yet", and never an id in use), else a
/// new one.
async fn new_conversation_id(state: &AppState, chosen: Option<Uuid>) -> ApiResult<Uuid> {
    match chosen {
        None => Ok(Uuid::now_v7()),
        Some(id) if id.is_nil() => {
            Err(ApiError::refused("invalid_conversation_id", "conversation_id must not be the nil UUID"))
        }
        Some(id) => match state.store.conversation(id).await? {
            Some(_) => Err(ApiError::Conflict {
                code: "conversation_id_taken",
                message: "a conversation with this id already exists; choose another",
            }),
            None => Ok(id),
        },
    }
}

/// Creates the conversation and announces it.
async fn start(state: &AppState, conversation: NewConversation) -> ApiResult<Announcement> {
    let created = state.store.create_conversation(&conversation).await?;
    let announcement = Announcement { conversation: (&created).into(), user_ids: conversation.members };
    announce(state, &announcement).await;
    Ok(announcement)
}

/// Tells every member of a conversation about it (`new_conversation` on `user:{id}`), and
/// shows them to each other in presence.
async fn announce(state: &AppState, announcement: &Announcement) {
    for member in &announcement.user_ids {
        state.publish_typed(user_topic(*member), "new_conversation", announcement).await;
    }
    crate::presence::introduce(state, &announcement.user_ids).await;
}

/// The person's assistant conversation, made on first use (and announced as a
/// `new_conversation` then); later calls return the same one.
pub async fn start_assistant(state: &AppState, me: Uuid) -> ApiResult<Announcement> {
    let (conversation, created) =
        state.store.create_assistant_conversation(Uuid::now_v7(), me, Timestamp::now()).await?;
    let announcement = Announcement { conversation: (&conversation).into(), user_ids: vec![me] };
    if created {
        state.publish_typed(user_topic(me), "new_conversation", &announcement).await;
    }
    Ok(announcement)
}

/// The user's conversations, each with its unread count and last message time.
pub async fn list(state: &AppState, user: Uuid) -> ApiResult<ConversationList> {
    let conversations = state.store.conversations_of(user).await?;
    // Read apart from the list: a conversation started in between simply shows nothing new.
    let activity: std::collections::HashMap<Uuid, hearth_store::ConversationActivity> =
        state.store.conversation_activity(user).await?.into_iter().map(|a| (a.conversation_id, a)).collect();
    let items = conversations
        .iter()
        .map(|conversation| {
            let activity = activity.get(&conversation.id);
            ListedConversation {
                conversation: ConversationSummary::from(conversation),
                unread: activity.map_or(0, |a| a.unread),
                last_message_at: activity.and_then(|a| a.last_message_at),
            }
        })
        .collect();
    Ok(ConversationList { items })
}

/// The private conversation of the caller and `other`: 404 when nobody is `other`, a null id
/// when the two have none yet.
pub async fn private_with(state: &AppState, me: Uuid, other: Uuid) -> ApiResult<PrivateConversation> {
    if state.store.user(other).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let conversation_id = state.store.private_conversation_between(me, other).await?;
    Ok(PrivateConversation { conversation_id })
}

/// The listing name page tokens of a conversation's history are bound to.
fn listing(conversation_id: Uuid) -> String {
    format!("messages:{conversation_id}")
}

/// One page of the recipient's history, newest first.
pub async fn messages_page(
    state: &AppState,
    conversation_id: Uuid,
    recipient: Uuid,
    before: Option<Uuid>,
    size: u32,
) -> ApiResult<MessagePage> {
    let mut messages = state.store.messages_page(conversation_id, recipient, before, size + 1).await?;
    let page_token =
        state.page_tokens.next_page(&listing(conversation_id), &mut messages, size, |last| last.history_key);
    Ok(MessagePage { items: messages.iter().map(Message::from).collect(), page_token })
}

/// A page of a member's history: 404 for someone who is not a member (or no such conversation),
/// the page after `page_token` when one is given.
pub async fn history(
    state: &AppState,
    conversation_id: Uuid,
    reader: Uuid,
    page_token: Option<&str>,
    size: u32,
) -> ApiResult<MessagePage> {
    if !state.store.member_ids(conversation_id).await?.contains(&reader) {
        return Err(ApiError::NotFound);
    }
    let before = state.page_tokens.decode_id(&listing(conversation_id), page_token)?;
    messages_page(state, conversation_id, reader, before, size).await
}

/// What a member sees on joining: the conversation, read times, the first page of their
/// messages, everyone's public keys and identities, and their own private key. Not a member
/// and no such conversation get the same answer.
pub async fn join(state: &AppState, user: Uuid, conversation_id: Uuid) -> ApiResult<JoinView> {
    let not_found = || ApiError::NoSuch("conversation not found");
    if !state.store.member_ids(conversation_id).await?.contains(&user) {
        return Err(not_found());
    }
    let conversation = state.store.conversation(conversation_id).await?.ok_or_else(not_found)?;
    let read_times = state.store.read_times(conversation_id).await?.into_iter().collect();
    let delivered_times = state.store.delivered_times(conversation_id).await?.into_iter().collect();
    let public_keys = state
        .store
        .public_keys(conversation_id)
        .await?
        .into_iter()
        .map(|(member, key)| (member, keys::key_json(&key)))
        .collect();
    let private_key = keys::own_private_key(state, conversation_id, user).await?;
    let identity_keys = state
        .store
        .member_identity_keys(conversation_id)
        .await?
        .into_iter()
        .map(|(member, key)| (member, key.as_deref().map_or(Value::Null, keys::key_json)))
        .collect();
    let messages = messages_page(state, conversation_id, user, None, FIRST_PAGE).await?;
    Ok(JoinView {
        conversation: (&conversation).into(),
        read_times,
        delivered_times,
        messages,
        public_keys,
        private_key,
        identity_keys,
    })
}

/// `send_message`: one ciphertext per member, keyed by member id.
#[derive(Debug, Deserialize)]
pub struct SendMessage {
    /// Member id → that member's ciphertext.
    pub encrypted_messages: BTreeMap<Uuid, String>,
    /// The sender's own id for the message: a resend with the same one is not stored twice.
    pub client_msg_id: Option<String>,
    /// (+) The message group's id, chosen by the sender's client (it puts the id inside the
    /// encrypted message, docs/e2e.md); the server picks one when absent. Never the nil UUID,
    /// never an id in use.
    pub message_group_id: Option<Uuid>,
}

/// What the sender's reply says: their own copy (null when they were not a recipient).
#[derive(Debug, serde::Serialize)]
pub struct Sent {
    /// The sender's copy.
    pub message: Option<Message>,
}

/// Stores a message group and delivers each copy. The store checks membership inside the
/// send's own transaction: the hottest path makes no read before it.
pub async fn send_message(
    state: &AppState,
    auth: AuthUser,
    conversation_id: Uuid,
    request: SendMessage,
) -> ApiResult<Sent> {
    let me = auth.user_id;
    check_ciphertexts(&request.encrypted_messages)?;
    if request.client_msg_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > MAX_CLIENT_MSG_ID_BYTES) {
        return Err(ApiError::refused("invalid_client_msg_id", "client_msg_id must be 1 to 100 characters"));
    }
    // Where the message sits in history is the server's to say, whatever id the client chose.
    let history_key = Uuid::now_v7();
    let (id, client_chose_id) = match request.message_group_id {
        None => (history_key, false),
        Some(id) if id.is_nil() => {
            return Err(ApiError::refused("invalid_message_id", "message_group_id must not be the nil UUID"));
        }
        Some(id) => (id, true),
    };
    let message = NewMessageGroup {
        id,
        history_key,
        client_chose_id,
        conversation_id,
        sender: me,
        client_msg_id: request.client_msg_id,
        contents: request.encrypted_messages,
        now: Timestamp::now(),
    };
    // The reply is sent only after this commit: an acknowledged message is stored.
    let delivery = state.store.send_message(&message).await.map_err(|error| match error {
        StoreError::NotFound => not_a_member(),
        StoreError::Conflict("message_group_id") => ApiError::Conflict {
            code: "message_id_taken",
            message: "a message with this message_group_id already exists; choose another",
        },
        other => other.into(),
    })?;
    if delivery.fresh {
        state.metrics.message_sent();
        deliver(state, "new_message", &delivery).await;
    }
    let mine = delivery.messages.get(&me);
    // Only a conversation where the sender is alone can be their assistant conversation: the
    // look-up is skipped for every other send.
    if let (true, 1, Some(prompt)) = (delivery.fresh, delivery.messages.len(), mine) {
        match state.store.conversation(conversation_id).await {
            Ok(Some(conversation)) if conversation.assistant => {
                let prompt = crate::assistant::chat::Prompt {
                    conversation_id,
                    user_id: me,
                    device_id: auth.device_id,
                    group: prompt.message_group,
                    text: prompt.content.clone(),
                };
                crate::assistant::chat::answer(state.clone(), prompt);
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "could not tell whether a conversation is the assistant's"),
        }
    }
    Ok(Sent { message: mine.map(Message::from) })
}

/// `edit_message`: new ciphertexts for a message group the caller sent.
#[derive(Debug, Deserialize)]
pub struct EditMessage {
    message_group_id: Uuid,
    encrypted_messages: BTreeMap<Uuid, String>,
}

/// `delete_message`.
#[derive(Debug, Deserialize)]
pub struct DeleteMessage {
    message_group_id: Uuid,
}

/// `change_alias`.
#[derive(Debug, Deserialize)]
pub struct ChangeAlias {
    alias: Option<String>,
}

/// `modify_conversation`: add members, optionally renaming.
#[derive(Debug, Deserialize)]
pub struct ModifyConversation {
    new_members: Vec<Uuid>,
    alias: Option<String>,
}

/// `set_encryption_keys`: the member's key pair for the conversation.
#[derive(Debug, Deserialize)]
pub struct SetKeys {
    public_key: Value,
    private_key: Value,
}

/// Typing started or stopped.
#[derive(Debug, Clone, Copy)]
pub enum Typing {
    /// `start_typing`.
    Started,
    /// `finish_typing`.
    Finished,
}

/// A current member acting in one conversation: every event but `send_message` checks
/// membership first.
#[derive(Debug)]
pub struct Member<'a> {
    state: &'a AppState,
    conversation_id: Uuid,
    me: Uuid,
    members: Vec<Uuid>,
}

impl<'a> Member<'a> {
    /// The caller as a member of the conversation, or a refusal if they are not one now.
    pub async fn check(state: &'a AppState, conversation_id: Uuid, me: Uuid) -> ApiResult<Self> {
        let members = state.store.member_ids(conversation_id).await?;
        if !members.contains(&me) {
            return Err(not_a_member());
        }
        Ok(Self { state, conversation_id, me, members })
    }

    fn topic(&self) -> String {
        conversation_topic(self.conversation_id)
    }

    /// Replaces the ciphertexts of a message group the caller sent.
    pub async fn edit_message(&self, request: EditMessage) -> ApiResult<()> {
        check_ciphertexts(&request.encrypted_messages)?;
        let delivery = self
            .state
            .store
            .edit_message(request.message_group_id, self.me, &request.encrypted_messages, Timestamp::now())
            .await?;
        deliver(self.state, "edit_message", &delivery).await;
        Ok(())
    }

    /// Deletes a message group the caller sent; returns the `delete_message` payload.
    pub async fn delete_message(&self, request: DeleteMessage) -> ApiResult<Value> {
        let group = request.message_group_id;
        // Only the sender may delete; the store says which conversation the group was in
        // (the sender's right does not depend on the channel the request came through).
        let conversation_id = self.state.store.delete_message(group, self.me).await?;
        let members = if conversation_id == self.conversation_id {
            self.members.clone()
        } else {
            self.state.store.member_ids(conversation_id).await?
        };
        let payload = json!({ "message_group_id": group });
        self.state.publish(conversation_topic(conversation_id), "delete_message", payload.clone()).await;
        for member in members {
            let to_user = json!({ "conversation_id": conversation_id, "message_group_id": group });
            self.state.publish(user_topic(member), "delete_message", to_user).await;
        }
        Ok(payload)
    }

    /// Tells the other members that the caller started or stopped typing.
    pub async fn typing(&self, typing: Typing) {
        let event = match typing {
            Typing::Started => "start_typing",
            Typing::Finished => "finish_typing",
        };
        self.state.publish(self.topic(), event, json!({ "user_id": self.me })).await;
    }

    /// Marks the conversation read by the caller now.
    pub async fn read(&self) -> ApiResult<()> {
        let now = Timestamp::now();
        self.state.store.mark_read(self.conversation_id, self.me, now).await?;
        self.state.publish(self.topic(), "read_conversation", json!({ "user_id": self.me, "read_at": now })).await;
        Ok(())
    }

    /// Records that the caller's device has received the conversation up to now (a delivery
    /// receipt: the senders' clients show their messages as delivered).
    pub async fn delivered(&self) -> ApiResult<()> {
        let now = Timestamp::now();
        self.state.store.mark_delivered(self.conversation_id, self.me, now).await?;
        let payload = json!({ "user_id": self.me, "delivered_at": now });
        self.state.publish(self.topic(), "delivered_conversation", payload).await;
        Ok(())
    }

    /// Renames a group (an empty alias clears it).
    pub async fn change_alias(&self, request: ChangeAlias) -> ApiResult<ConversationSummary> {
        let alias = checked_alias(request.alias.as_deref())?;
        let conversation = self.state.store.set_alias(self.conversation_id, alias.as_deref(), Timestamp::now()).await?;
        let payload = json!({ "conversation_id": self.conversation_id, "alias": conversation.alias });
        self.state.publish(self.topic(), "update_alias", payload).await;
        Ok((&conversation).into())
    }

    /// The assistant conversation keeps its one member: nobody is added, its owner cannot leave.
    async fn refuse_if_assistant(&self) -> ApiResult<()> {
        let conversation = self.state.store.conversation(self.conversation_id).await?;
        if conversation.is_some_and(|conversation| conversation.assistant) {
            return Err(ApiError::refused(
                "assistant_conversation",
                "the assistant conversation has no other members and cannot be left",
            ));
        }
        Ok(())
    }

    /// Adds members to a group (and renames it when an alias is given), announced to everyone.
    pub async fn modify(&self, request: ModifyConversation) -> ApiResult<Announcement> {
        self.refuse_if_assistant().await?;
        let alias = checked_alias(request.alias.as_deref())?;
        let now = Timestamp::now();
        let mut conversation = self.state.store.add_members(self.conversation_id, &request.new_members, now).await?;
        if request.alias.is_some() {
            conversation = self.state.store.set_alias(self.conversation_id, alias.as_deref(), now).await?;
        }
        let members = self.state.store.member_ids(self.conversation_id).await?;
        let announcement = Announcement { conversation: (&conversation).into(), user_ids: members };
        announce(self.state, &announcement).await;
        Ok(announcement)
    }

    /// Leaves a group: the others are told, and the conversation's channel ends on every
    /// socket of the caller.
    pub async fn leave(&self) -> ApiResult<()> {
        self.refuse_if_assistant().await?;
        self.state.store.leave_conversation(self.conversation_id, self.me).await?;
        self.state.publish(self.topic(), "leave_conversation", json!({ "user_id": self.me })).await;
        // The channel ends on every socket of the member, the asking one included (after its
        // reply, which that socket sends first): none of them hears the conversation any more.
        self.state.pubsub.publish(Envelope::CloseTopic { user: self.me, topic: self.topic() }).await;
        Ok(())
    }

    /// Sets the caller's key pair for the conversation, announced to the members.
    pub async fn set_keys(&self, request: SetKeys) -> ApiResult<()> {
        let keys = keys::seal(self.state, self.conversation_id, self.me, &request.public_key, &request.private_key)?;
        self.state.store.set_encryption_keys(self.conversation_id, self.me, &keys, Timestamp::now()).await?;
        let payload = json!({ "user_id": self.me, "public_key": request.public_key });
        self.state.publish(self.topic(), "set_encryption_keys", payload).await;
        Ok(())
    }
}
