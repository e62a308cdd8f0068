//! `conversation:{id}`'s events, parsed into [`ConversationEvent`]; the rules are the domain's
//! (`crate::conversations`). Every event but `send_message` needs the sender to be a member now;
//! `send_message` has the store check it inside the send's own transaction.

use phoenix_channels::server::Reply;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use uuid::Uuid;

use super::incoming::{ChannelError, ok};
use crate::auth::AuthUser;
use crate::conversations::{
    self, ChangeAlias, DeleteMessage, EditMessage, Member, ModifyConversation, SendMessage, SetKeys, Typing,
};
use crate::state::AppState;

/// The events a client sends on `conversation:{id}`, named as on the wire. Events without a
/// payload of their own ignore what is sent with them.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", content = "payload", rename_all = "snake_case")]
pub enum ConversationEvent {
    /// A new message: one ciphertext per member.
    SendMessage(SendMessage),
    /// New ciphertexts for a message the sender sent.
    EditMessage(EditMessage),
    /// Deletes a message the sender sent.
    DeleteMessage(DeleteMessage),
    /// The member started typing.
    StartTyping(IgnoredAny),
    /// The member stopped typing.
    FinishTyping(IgnoredAny),
    /// The member read the conversation up to now.
    ReadConversation(IgnoredAny),
    /// Renames a group.
    ChangeAlias(ChangeAlias),
    /// Adds members to a group (renaming it too when an alias is given).
    ModifyConversation(ModifyConversation),
    /// The member leaves a group.
    LeaveConversation(IgnoredAny),
    /// The member's key pair for the conversation.
    SetEncryptionKeys(SetKeys),
}

impl ConversationEvent {
    /// The event `event` with `payload`, or the error reply saying what is wrong with it.
    pub fn parse(event: &str, payload: serde_json::Value) -> Result<Self, ChannelError> {
        super::incoming::parse(event, payload)
    }

    /// Runs the event for the socket's user in the conversation; the reply to send.
    pub async fn run(self, state: &AppState, auth: AuthUser, conversation_id: Uuid) -> Result<Reply, ChannelError> {
        let member = || Member::check(state, conversation_id, auth.user_id);
        let done = || Reply::ok(json!({}));
        Ok(match self {
            // The hottest path: no membership read first (the store's transaction checks it).
            ConversationEvent::SendMessage(request) => {
                ok(&conversations::send_message(state, auth, conversation_id, request).await?)
            }
            ConversationEvent::EditMessage(request) => {
                member().await?.edit_message(request).await?;
                done()
            }
            ConversationEvent::DeleteMessage(request) => Reply::ok(member().await?.delete_message(request).await?),
            ConversationEvent::StartTyping(_) => {
                member().await?.typing(Typing::Started).await;
                done()
            }
            ConversationEvent::FinishTyping(_) => {
                member().await?.typing(Typing::Finished).await;
                done()
            }
            ConversationEvent::ReadConversation(_) => {
                member().await?.read().await?;
                done()
            }
            ConversationEvent::ChangeAlias(request) => {
                Reply::ok(json!({ "conversation": member().await?.change_alias(request).await? }))
            }
            ConversationEvent::ModifyConversation(request) => ok(&member().await?.modify(request).await?),
            ConversationEvent::LeaveConversation(_) => {
                member().await?.leave().await?;
                done()
            }
            ConversationEvent::SetEncryptionKeys(request) => {
                member().await?.set_keys(request).await?;
                done()
            }
        })
    }
}

/// Joins `conversation:{id}` if the user is a member: the domain's join view.
pub async fn join(state: &AppState, auth: AuthUser, conversation_id: Uuid) -> Result<serde_json::Value, ChannelError> {
    let view = conversations::join(state, auth.user_id, conversation_id).await?;
    Ok(serde_json::to_value(view).expect("reply types serialize"))
}
