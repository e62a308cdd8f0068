//! The assistant conversation, the person's chat with the assistant: a prompt sent there (an ordinary `send_message`)
//! is answered in a task of its own. The reply streams as `assistant_delta` events on
//! `conversation:{id}` and ends as an ordinary stored message from the assistant, pushed as
//! `new_message` on the owner's `user:{id}` topic. Commands (`/help`, `/quota`, `/providers`,
//! `/image`, `/configure`, `/keys`, `/forget`, `/set_default_api_key`) and refusals (limits,
//! failing providers) are answered the same way, so the history shows them.

use hearth_ai::ProviderName;
use hearth_store::{KeyOwner, Timestamp};
use serde_json::{Map, json};
use uuid::Uuid;

use super::commands::{Command, HELP};
use super::configure::{self, LinkPurpose};
use super::stream::ask_streamed;
use super::{MAX_PROMPT_CHARS, Question, Refusal, spoken, when};
use crate::conversations::delivery::deliver;
use crate::events::conversation_topic;
use crate::state::AppState;

/// A prompt the owner sent in their assistant conversation.
#[derive(Debug)]
pub struct Prompt {
    /// The assistant conversation.
    pub conversation_id: Uuid,
    /// Its owner.
    pub user_id: Uuid,
    /// The device session the prompt came from (one-time links it asks for die with it).
    pub device_id: Uuid,
    /// The message group of the prompt.
    pub group: Uuid,
    /// What was written.
    pub text: String,
}

/// What the assistant says: shown to its owner live, and kept in the history. They differ only
/// for a one-time link, a bearer secret that is shown once and never stored.
#[derive(Debug)]
struct Said {
    shown: String,
    kept: String,
}

impl From<String> for Said {
    fn from(text: String) -> Self {
        Self { kept: text.clone(), shown: text }
    }
}

/// Answers `prompt` in the background; the prompt's own `send_message` reply is not delayed.
pub fn answer(state: AppState, prompt: Prompt) {
    tokio::spawn(async move {
        let reply_id = Uuid::now_v7();
        let said = reply(&state, &prompt, reply_id).await;
        post(&state, reply_id, prompt.conversation_id, prompt.user_id, &said).await;
    });
}

/// Says `text` in `user_id`'s assistant conversation, if they have one (a configure page's
/// acknowledgement: the link came from there).
pub async fn tell(state: &AppState, user_id: Uuid, text: &str) {
    match state.store.assistant_conversation(user_id).await {
        Ok(Some(conversation)) => post(state, Uuid::now_v7(), conversation.id, user_id, &text.to_owned().into()).await,
        Ok(None) => tracing::info!(user = %user_id, "no assistant conversation to acknowledge in"),
        Err(error) => tracing::error!(%error, user = %user_id, "assistant conversation not read"),
    }
}

/// Stores the assistant's message and pushes it to the owner.
async fn post(state: &AppState, id: Uuid, conversation_id: Uuid, user_id: Uuid, said: &Said) {
    match state.store.post_assistant_reply(id, conversation_id, &said.kept, Timestamp::now()).await {
        Ok(mut delivery) => {
            for message in delivery.messages.values_mut() {
                message.content.clone_from(&said.shown);
            }
            deliver(state, "new_message", &delivery).await;
        }
        Err(error) => tracing::error!(%error, user = %user_id, "assistant message not stored"),
    }
}

async fn reply(state: &AppState, prompt: &Prompt, reply_id: Uuid) -> Said {
    let assistant = &state.assistant;
    let text = match Command::parse(&prompt.text) {
        Some(Command::Configure) => return configure_link(state, prompt, LinkPurpose::Own, None).await,
        Some(Command::SetDefaultApiKey(provider)) => return set_default_api_key(state, prompt, provider).await,
        Some(Command::Help) => HELP.to_owned(),
        Some(Command::Quota) => assistant.quota_report(prompt.user_id).await.unwrap_or_else(|error| {
            tracing::error!(%error, "quota report failed");
            Refusal::Store(error).message()
        }),
        Some(Command::Providers) => assistant.providers_report().await.unwrap_or_else(|refusal| refusal.message()),
        Some(Command::Keys) => keys_report(state, prompt.user_id).await,
        Some(Command::Forget(provider)) => forget(state, prompt.user_id, provider).await,
        Some(Command::Image("")) => "Say what the image should show: /image <description>".to_owned(),
        Some(Command::Image(description)) if description.chars().count() > MAX_PROMPT_CHARS => too_long(),
        Some(Command::Image(description)) => {
            match assistant.image(prompt.user_id, &prompt.conversation_id.to_string(), description).await {
                Ok(image) => format!(
                    "Here is your image (made by {}):\n{}/api/assistant/images/{}",
                    image.provider, state.public_url, image.id
                ),
                Err(refusal) => refusal.message(),
            }
        }
        Some(Command::Unknown(name)) => format!("There is no command {name}.\n{HELP}"),
        None if prompt.text.trim().is_empty() => HELP.to_owned(),
        None if prompt.text.chars().count() > MAX_PROMPT_CHARS => too_long(),
        None => streamed(state, prompt, reply_id).await,
    };
    text.into()
}

/// `/configure` and `/set_default_api_key`: a new link, shown once; the history keeps only
/// that one was shown.
async fn configure_link(
    state: &AppState,
    prompt: &Prompt,
    purpose: LinkPurpose,
    provider: Option<ProviderName>,
) -> Said {
    match configure::issue(state, prompt.user_id, prompt.device_id, purpose, provider).await {
        Ok(url) => {
            let minutes = spoken(std::time::Duration::from_secs(
                u64::try_from(state.settings.keyguard.link_ttl_secs).unwrap_or_default(),
            ));
            let what = match purpose {
                LinkPurpose::Own => "add an AI provider key of your own",
                LinkPurpose::Pool => "add a key to the free tier's pool, shared by everyone without a key",
            };
            let shown = format!(
                "Open this link to {what}:\n{url}\nIt works once, for {minutes}; any earlier link no longer works. \
                 The key is encrypted in your browser and sealed by the keyguard: it is never shown again."
            );
            let kept =
                format!("A one-time link to {what} was shown here. Links are not kept: send /configure for a new one.");
            Said { shown, kept }
        }
        Err(error) => {
            tracing::error!(%error, "configure link not issued");
            Refusal::Store(error).message().into()
        }
    }
}

/// `/set_default_api_key <provider>`: for operators only.
async fn set_default_api_key(state: &AppState, prompt: &Prompt, provider: &str) -> Said {
    match configure::is_operator(state, prompt.user_id).await {
        Ok(true) => {}
        Ok(false) => {
            return "Only the operators of this server can add keys to the free tier: an administrator grants \
                    the operator role."
                .to_owned()
                .into();
        }
        Err(error) => return Refusal::Store(error).message().into(),
    }
    match provider.parse::<ProviderName>() {
        Ok(provider) => configure_link(state, prompt, LinkPurpose::Pool, Some(provider)).await,
        Err(error) => format!("Name the provider: /set_default_api_key <provider>. ({error})").into(),
    }
}

/// `/keys`: the person's stored keys, never the keys themselves.
async fn keys_report(state: &AppState, user_id: Uuid) -> String {
    match state.assistant.keys().list(KeyOwner::User(user_id)).await {
        Ok(keys) if keys.is_empty() => "You have no stored keys. /configure adds one.".to_owned(),
        Ok(keys) => {
            let now = Timestamp::now();
            let mut lines = vec!["Your keys, tried in this order before the free tier:".to_owned()];
            for key in keys {
                let health = match (key.refused_at, key.cooling_for) {
                    (Some(at), _) => format!("refused by {} {}", key.provider, when::moment(at, now)),
                    (None, Some(rest)) => format!("resting after repeated failures for another {}", spoken(rest)),
                    (None, None) => "healthy".to_owned(),
                };
                let used = key
                    .last_used_at
                    .map_or_else(|| "never used".to_owned(), |at| format!("last used {}", when::moment(at, now)));
                lines.push(format!(
                    "- {} …{}: added {}, {used}, {} failure{} since, {health}",
                    key.provider,
                    key.last_four,
                    when::day(key.added_at, now),
                    key.failures,
                    if key.failures == 1 { "" } else { "s" }
                ));
            }
            lines.join("\n")
        }
        Err(refusal) => refusal.message(),
    }
}

/// `/forget <provider>`: deletes the person's stored keys of that provider.
async fn forget(state: &AppState, user_id: Uuid, provider: &str) -> String {
    let provider: ProviderName = match provider.parse() {
        Ok(provider) => provider,
        Err(error) => return format!("Name the provider: /forget <provider>. ({error})"),
    };
    match state.store.delete_provider_keys_of(KeyOwner::User(user_id), provider.as_str()).await {
        Ok(0) => format!("You have no stored {provider} key."),
        Ok(n) => format!("Deleted your {n} stored {provider} key{}.", if n == 1 { "" } else { "s" }),
        Err(error) => Refusal::Store(error).message(),
    }
}

fn too_long() -> String {
    format!("A prompt may be at most {MAX_PROMPT_CHARS} characters long.")
}

/// Asks the providers, publishing each delta to the conversation as it arrives.
async fn streamed(state: &AppState, prompt: &Prompt, reply_id: Uuid) -> String {
    let question = Question {
        user_id: prompt.user_id,
        thread: prompt.conversation_id.to_string(),
        new_thread: false,
        topic: None,
        prompt: prompt.text.clone(),
        keys: Vec::new(),
    };
    let names =
        Map::from_iter([("reply_id".to_owned(), json!(reply_id)), ("prompt_group".to_owned(), json!(prompt.group))]);
    ask_streamed(state, question, conversation_topic(prompt.conversation_id), names).await
}
