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

use crate::accounts::{self, signin, tokens};
use crate::assistant::commands::Command;
use crate::error::ApiError;
use crate::http::{chat, configure, encryption_keys};
use crate::realtime::{ChannelError, ConversationEvent, SystemEvent};

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

/// Parses `payload` as the socket parses `event` on a `topic_kind` topic (see
/// [`CHANNEL_EVENTS`]) into that topic's event enum, then makes the checks the domain makes before
/// it touches the store: `Ok` when the event would go on, else the error reply it gets.
pub fn parse_channel_payload(topic_kind: &str, event: &str, payload: Value) -> Result<(), Reply> {
    let refused = |error: ChannelError| error.into_reply();
    match topic_kind {
        "system" => {
            SystemEvent::parse(event, payload.clone()).map_err(refused)?;
            if event == "set_display_name" {
                // The domain's next step, on the text parsed (the event's field is its own).
                let Named { display_name } = serde_json::from_value(payload).expect("parsed just above");
                crate::accounts::fields::display_name("display_name", &display_name)
                    .map_err(|error| refused(error.into()))?;
            }
            Ok(())
        }
        "conversation" => ConversationEvent::parse(event, payload).map(drop).map_err(refused),
        "assistant" => {
            ConversationEvent::parse(event, payload.clone()).map_err(refused)?;
            // The assistant reads its owner's one copy as a prompt or a command.
            if event == "send_message" {
                let Copies { encrypted_messages } = serde_json::from_value(payload).expect("parsed just above");
                for text in encrypted_messages.values() {
                    if let Some(Command::Forget(name) | Command::SetDefaultApiKey(name)) = Command::parse(text) {
                        let _ = name.parse::<ProviderName>();
                    }
                }
            }
            Ok(())
        }
        _ => Err(refused(ChannelError::unknown_event(event))),
    }
}

/// The same shape as `SystemEvent::SetDisplayName`'s payload, whose field is private to it.
#[derive(Deserialize)]
struct Named {
    display_name: String,
}

/// The same shape as `ConversationEvent::SendMessage`'s payload.
#[derive(Deserialize)]
struct Copies {
    encrypted_messages: BTreeMap<Uuid, String>,
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
    "PUT /api/identity_key",
];

/// Parses `body` as the JSON extractor of `endpoint` (one of [`REST_BODIES`]) does: `Ok` when the
/// handler would run, else the error the client gets (404 for an endpoint not in the list).
/// `/auth/refresh`'s body type is also `/auth/confirm`'s and `/auth/password/confirm`'s.
pub fn parse_rest_body(endpoint: &str, body: &[u8]) -> Result<(), ApiError> {
    match endpoint {
        "PATCH /api/password" => body_of::<accounts::ChangePasswordRequest>(body),
        "PATCH /api/email" => body_of::<accounts::ChangeEmailRequest>(body),
        "PATCH /api/profile" => body_of::<accounts::ProfileRequest>(body),
        "DELETE /api/account" => body_of::<accounts::DeleteAccountRequest>(body),
        "POST /auth/register" => body_of::<signin::RegisterRequest>(body),
        "POST /auth/login" => body_of::<signin::LoginRequest>(body),
        "POST /auth/refresh" => body_of::<tokens::TokenRequest>(body),
        "POST /auth/password/request" => body_of::<tokens::PasswordResetRequest>(body),
        "POST /auth/password/reset" => body_of::<tokens::ResetPasswordRequest>(body),
        "POST /auth/device/link" => body_of::<signin::DeviceLinkRedeemRequest>(body),
        "POST /api/chat/message" => body_of::<chat::ChatMessageRequest>(body),
        "POST /configure/{link}" => body_of::<configure::Submission>(body),
        "PUT /api/encryption_keys" => body_of::<encryption_keys::PrivateKeys>(body),
        "PUT /api/identity_key" => body_of::<accounts::identity::PublishIdentityRequest>(body),
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
