//! `system:general`: hiding, renaming oneself, and starting conversations (the assistant
//! conversation included).

use hearth_store::{NewConversation, ProfileUpdate, Timestamp};
use phoenix_channels::server::Reply;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::conversation::conversation_json;
use super::events::{parse, publish, seal_keys, store_error, user_topic};
use super::socket::Session;

/// Largest group alias, in characters.
pub const MAX_ALIAS_CHARS: usize = 100;

/// Events on `system:general`.
pub async fn handle_in(session: &mut Session, event: &str, payload: Value) -> Reply {
    let result = match event {
        "set_hidden" => set_hidden(session, payload).await,
        "set_display_name" => set_display_name(session, payload).await,
        "start_group_conversation" => start_group(session, payload).await,
        "start_private_conversation" => start_private(session, payload).await,
        "start_assistant_conversation" => start_assistant(session).await,
        _ => Err(Reply::error(format!("unknown event {event:?}"))),
    };
    result.unwrap_or_else(|refusal| refusal)
}

#[derive(Deserialize)]
pub(crate) struct SetHidden {
    hidden: bool,
}

async fn set_hidden(session: &mut Session, payload: Value) -> Result<Reply, Reply> {
    let request: SetHidden = parse(payload)?;
    let update = ProfileUpdate { hidden: Some(request.hidden), ..ProfileUpdate::default() };
    session.state.store.update_profile(session.auth.user_id, &update).await.map_err(store_error)?;
    super::presence::hidden_changed(&session.state, session.auth.user_id, request.hidden).await;
    Ok(Reply { status: "ok".into(), response: phoenix_channels::Payload::Json(json!("message_sent")) })
}

#[derive(Deserialize)]
pub(crate) struct SetDisplayName {
    display_name: String,
}

async fn set_display_name(session: &mut Session, payload: Value) -> Result<Reply, Reply> {
    let request: SetDisplayName = parse(payload)?;
    let name = crate::http::fields::display_name("display_name", &request.display_name)
        .map_err(|_| Reply::error("display_name must be 1 to 100 characters without control characters"))?;
    let user = session.auth.user_id;
    session.state.store.set_display_name(user, &name, Timestamp::now()).await.map_err(store_error)?;
    publish(
        &session.state,
        "system:general".into(),
        "set_display_name",
        json!({ "user_id": user, "display_name": name }),
    )
    .await;
    Ok(Reply::ok(json!({})))
}

pub(super) fn check_alias(alias: Option<&str>) -> Result<Option<String>, Reply> {
    match alias.map(str::trim) {
        None => Ok(None),
        Some(alias) if alias.chars().count() > MAX_ALIAS_CHARS || alias.chars().any(char::is_control) => {
            Err(Reply::error(format!("alias must be at most {MAX_ALIAS_CHARS} characters without control characters")))
        }
        Some("") => Ok(None),
        Some(alias) => Ok(Some(alias.to_owned())),
    }
}

#[derive(Deserialize)]
pub(crate) struct StartGroup {
    user_ids: Vec<Uuid>,
    public_key: Value,
    private_key: Value,
    alias: Option<String>,
}

async fn start_group(session: &mut Session, payload: Value) -> Result<Reply, Reply> {
    let request: StartGroup = parse(payload)?;
    let alias = check_alias(request.alias.as_deref())?;
    let me = session.auth.user_id;
    let mut members = vec![me];
    for user in request.user_ids {
        if !members.contains(&user) {
            members.push(user);
        }
    }
    start(session, false, alias, members, &request.public_key, &request.private_key).await
}

#[derive(Deserialize)]
pub(crate) struct StartPrivate {
    other_user_id: Uuid,
    public_key: Value,
    private_key: Value,
}

async fn start_private(session: &mut Session, payload: Value) -> Result<Reply, Reply> {
    let request: StartPrivate = parse(payload)?;
    let me = session.auth.user_id;
    if request.other_user_id == me {
        return Err(Reply::error("a private conversation needs another user"));
    }
    start(session, true, None, vec![me, request.other_user_id], &request.public_key, &request.private_key).await
}

/// The person's assistant conversation, made on first use (and announced as a
/// `new_conversation` then); later calls return the same one.
async fn start_assistant(session: &mut Session) -> Result<Reply, Reply> {
    let state = &session.state;
    let me = session.auth.user_id;
    let (conversation, created) =
        state.store.create_assistant_conversation(Uuid::now_v7(), me, Timestamp::now()).await.map_err(store_error)?;
    let announcement = json!({ "conversation": conversation_json(&conversation), "user_ids": [me] });
    if created {
        publish(state, user_topic(me), "new_conversation", announcement.clone()).await;
    }
    Ok(Reply::ok(announcement))
}

async fn start(
    session: &mut Session,
    private: bool,
    alias: Option<String>,
    members: Vec<Uuid>,
    public_key: &Value,
    private_key: &Value,
) -> Result<Reply, Reply> {
    let state = &session.state;
    let me = session.auth.user_id;
    let id = Uuid::now_v7();
    let creator_keys = seal_keys(state, id, me, public_key, private_key)?;
    let conversation = state
        .store
        .create_conversation(&NewConversation {
            id,
            private,
            alias,
            creator: me,
            members: members.clone(),
            creator_keys,
            now: Timestamp::now(),
        })
        .await
        .map_err(store_error)?;
    let announcement = json!({ "conversation": conversation_json(&conversation), "user_ids": members });
    for member in &members {
        publish(state, user_topic(*member), "new_conversation", announcement.clone()).await;
    }
    super::presence::introduce(state, &members).await;
    Ok(Reply::ok(announcement))
}
