//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off in every build that
//! ships): the parsers that read what clients send, callable without a database, a socket or a
//! running server. Each runs exactly the code a request or a channel event runs, up to the
//! point where the handler would touch state.

use std::collections::BTreeMap;

use hearth_ai::ProviderName;
use hearth_vault::ServerSecret;
use phoenix_channels::server::Reply;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

pub use crate::page_token::PageTokens;

use crate::ApiError;
use crate::assistant::commands::Command;
use crate::http::{account, auth, chat, configure, encryption_keys};
use crate::realtime::{conversation, events, system};

/// Every channel event whose payload is parsed, as `(topic kind, event)`, the topic kind being
/// the topic's part before `:`. `("assistant", "send_message")` is a `send_message` in an
/// assistant conversation, whose text is then read as a command.
pub const CHANNEL_EVENTS: &[(&str, &str)] = &[
    ("system", "set_hidden"),
    ("system", "set_display_name"),
    ("system", "start_group_conversation"),
    ("system", "start_private_conversation"),
    ("conversation", "send_message"),
    ("conversation", "edit_message"),
    ("conversation", "delete_message"),
    ("conversation", "change_alias"),
    ("conversation", "modify_conversation"),
    ("conversation", "set_encryption_keys"),
    ("assistant", "send_message"),
];

/// Parses `payload` as the handler of `event` on a `topic_kind` topic does (see
/// [`CHANNEL_EVENTS`]): `Ok` when the handler would go on to the store, else the error reply it
/// sends. An event not in the list is refused as the socket refuses it.
pub fn parse_channel_payload(topic_kind: &str, event: &str, payload: Value) -> Result<(), Reply> {
    match (topic_kind, event) {
        ("system", "set_hidden") => parse::<system::SetHidden>(payload),
        ("system", "set_display_name") => {
            parse::<system::SetDisplayName>(payload.clone())?;
            // The handler's next step, on the text it parsed (the request type's field is its own).
            let Named { display_name } = serde_json::from_value(payload).expect("parsed just above");
            crate::http::fields::display_name("display_name", &display_name)
                .map(drop)
                .map_err(|_| Reply::error("display_name must be 1 to 100 characters without control characters"))
        }
        ("system", "start_group_conversation") => parse::<system::StartGroup>(payload),
        ("system", "start_private_conversation") => parse::<system::StartPrivate>(payload),
        ("conversation", "send_message") => parse::<conversation::SendMessage>(payload),
        ("conversation", "edit_message") => parse::<conversation::EditMessage>(payload),
        ("conversation", "delete_message") => parse::<conversation::DeleteMessage>(payload),
        ("conversation", "change_alias") => parse::<conversation::ChangeAlias>(payload),
        ("conversation", "modify_conversation") => parse::<conversation::ModifyConversation>(payload),
        ("conversation", "set_encryption_keys") => parse::<conversation::SetKeys>(payload),
        ("assistant", "send_message") => {
            parse::<conversation::SendMessage>(payload.clone())?;
            // The assistant reads its owner's one copy as a prompt or a command.
            let Copies { encrypted_messages } = serde_json::from_value(payload).expect("parsed just above");
            for text in encrypted_messages.values() {
                if let Some(Command::Forget(name) | Command::SetDefaultApiKey(name)) = Command::parse(text) {
                    let _ = name.parse::<ProviderName>();
                }
            }
            Ok(())
        }
        _ => Err(Reply::error(format!("unknown event {event:?}"))),
    }
}

/// The same shape as `system::SetDisplayName`, whose field is private to its handler.
#[derive(Deserialize)]
struct Named {
    display_name: String,
}

/// The same shape as `conversation::SendMessage`, whose fields are private to its handler.
#[derive(Deserialize)]
struct Copies {
    encrypted_messages: BTreeMap<Uuid, String>,
}

fn parse<T: DeserializeOwned>(payload: Value) -> Result<(), Reply> {
    events::parse::<T>(payload).map(drop)
}

/// Every REST endpoint that takes a JSON body, by method and path.
pub const REST_BODIES: &[&str] = &[
    "PATCH /api/password",
    "PATCH /api/email",
    "PATCH /api/profile",
    "DELETE /api/account",
    "POST /auth/register",
    "POST /auth/login",
    "POST /auth/refresh",
    "POST /auth/password/request",
    "POST /auth/password/reset",
    "POST /auth/device/link",
    "POST /api/chat/message",
    "POST /configure/{link}",
    "PUT /api/encryption_keys",
];

/// Parses `body` as the JSON extractor of `endpoint` (one of [`REST_BODIES`]) does: `Ok` when the
/// handler would run, else the error the client gets (404 for an endpoint not in the list).
/// `/auth/refresh`'s body type is also `/auth/confirm`'s and `/auth/password/confirm`'s.
pub fn parse_rest_body(endpoint: &str, body: &[u8]) -> Result<(), ApiError> {
    match endpoint {
        "PATCH /api/password" => body_of::<account::ChangePasswordRequest>(body),
        "PATCH /api/email" => body_of::<account::ChangeEmailRequest>(body),
        "PATCH /api/profile" => body_of::<account::ProfileRequest>(body),
        "DELETE /api/account" => body_of::<account::DeleteAccountRequest>(body),
        "POST /auth/register" => body_of::<auth::RegisterRequest>(body),
        "POST /auth/login" => body_of::<auth::LoginRequest>(body),
        "POST /auth/refresh" => body_of::<auth::TokenRequest>(body),
        "POST /auth/password/request" => body_of::<auth::PasswordResetRequest>(body),
        "POST /auth/password/reset" => body_of::<auth::ResetPasswordRequest>(body),
        "POST /auth/device/link" => body_of::<auth::DeviceLinkRedeemRequest>(body),
        "POST /api/chat/message" => body_of::<chat::ChatMessageRequest>(body),
        "POST /configure/{link}" => body_of::<configure::Submission>(body),
        "PUT /api/encryption_keys" => body_of::<encryption_keys::PrivateKeys>(body),
        _ => Err(ApiError::NotFound),
    }
}

fn body_of<T: DeserializeOwned>(body: &[u8]) -> Result<(), ApiError> {
    crate::extract::parse_json::<T>(body).map(drop)
}

/// Page tokens keyed from a fixed secret, so that a token a fuzz run saves opens in the next run.
pub fn test_page_tokens() -> PageTokens {
    let secret =
        ServerSecret::from_text("fuzzing-only-secret-key-base-0123456789abcdef").expect("longer than 32 bytes");
    PageTokens::new(&secret)
}

/// [`PageTokens::decode`]: the cursor inside a token of `listing`, or the 400 a client gets.
pub fn decode_page_token(tokens: &PageTokens, listing: &str, token: &str) -> Result<Vec<u8>, ApiError> {
    tokens.decode(listing, token)
}
