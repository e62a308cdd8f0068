//! `room:{id}`'s events, parsed into [`RoomEvent`]; the rules are the domain's
//! (`crate::rooms::channel`). Every event needs the sender to be a member now (`post` has the
//! store check it inside the post's own transaction).

use phoenix_channels::server::Reply;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use uuid::Uuid;

use super::incoming::{ChannelError, ok};
use crate::auth::AuthUser;
use crate::rooms::channel::{self, DeletePost, EditPost, InRoom, NewPost, Typing};
use crate::state::AppState;

/// The events a client sends on `room:{id}`, named as on the wire. Events without a payload of
/// their own ignore what is sent with them.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", content = "payload", rename_all = "snake_case")]
pub enum RoomEvent {
    /// A new post: `{"text", "client_msg_id"?}`.
    Post(NewPost),
    /// New text for one of the sender's posts.
    EditPost(EditPost),
    /// Deletes a post (the sender's own, or anyone's for a moderator).
    DeletePost(DeletePost),
    /// The member started typing.
    StartTyping(IgnoredAny),
    /// The member stopped typing.
    FinishTyping(IgnoredAny),
    /// The member read the room up to now.
    ReadRoom(IgnoredAny),
}

impl RoomEvent {
    /// The event `event` with `payload`, or the error reply saying what is wrong with it.
    pub fn parse(event: &str, payload: serde_json::Value) -> Result<Self, ChannelError> {
        super::incoming::parse(event, payload)
    }

    /// Runs the event for the socket's user in the room; the reply to send.
    pub async fn run(self, state: &AppState, auth: AuthUser, room_id: Uuid) -> Result<Reply, ChannelError> {
        let member = InRoom::new(state, room_id, auth.user_id);
        let done = || Reply::ok(json!({}));
        Ok(match self {
            RoomEvent::Post(request) => ok(&member.post(request).await?),
            RoomEvent::EditPost(request) => ok(&member.edit(request).await?),
            RoomEvent::DeletePost(request) => Reply::ok(member.delete(request).await?),
            RoomEvent::StartTyping(_) => {
                member.typing(Typing::Started).await?;
                done()
            }
            RoomEvent::FinishTyping(_) => {
                member.typing(Typing::Finished).await?;
                done()
            }
            RoomEvent::ReadRoom(_) => {
                member.read().await?;
                done()
            }
        })
    }
}

/// Joins `room:{id}` if the user is a member: the domain's join view.
pub async fn join(state: &AppState, auth: AuthUser, room_id: Uuid) -> Result<serde_json::Value, ChannelError> {
    let view = channel::join_channel(state, auth.user_id, room_id).await?;
    Ok(serde_json::to_value(view).expect("reply types serialize"))
}
