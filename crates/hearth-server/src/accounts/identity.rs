//! The account's identity (docs/e2e.md): a long-term signing and agreement key pair its client
//! makes. The server stores and relays it and checks only its shape and size: it never reads a
//! key or verifies a signature. The public form (`identity_key`) is shown with the user to
//! everyone; the private form (`identity_private_key`), wrapped by the client, is sealed by the
//! vault at rest and given back only to the account itself.
//!
//! The first identity needs nothing but the access token (registration, or the first sign-in
//! of an account made before identities); replacing one needs the current password too, so a
//! bearer token alone cannot swap a person's identity. Whoever shares a conversation with the
//! person hears of every change (`identity_key` on `conversation:{id}`).

use std::collections::BTreeMap;

use hearth_store::{Identity, StoreError, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::current_password::verify_current_password;
use super::fields::Password;
use crate::conversations::keys::{MAX_KEY_BYTES, key_json};
use crate::error::{ApiError, ApiResult};
use crate::events::conversation_topic;
use crate::state::AppState;
use crate::vault::identity_private_key_context;

/// The event that tells a person's conversations that their identity changed.
pub const IDENTITY_KEY_EVENT: &str = "identity_key";

/// The public form of an identity: the public signing and agreement keys (JWKs, opaque here);
/// more members are kept. At most 16 384 bytes as JSON text.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the field in the OpenAPI document only.
pub struct IdentityKey {
    /// The public signing key (ECDSA on P-256).
    #[schema(value_type = Object)]
    signing: Value,
    /// The public agreement key (ECDH on P-256).
    #[schema(value_type = Object)]
    agreement: Value,
}

/// The private form of an identity: each private key wrapped by the client (opaque here);
/// more members are kept. At most 16 384 bytes as JSON text.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the field in the OpenAPI document only.
pub struct IdentityPrivateKey {
    /// The private signing key, wrapped.
    signing: String,
    /// The private agreement key, wrapped.
    agreement: String,
}

/// `PUT /api/identity_key`. No Debug: it may hold a password.
#[derive(Deserialize, ToSchema)]
pub struct PublishIdentityRequest {
    /// The public form, shown to everyone.
    #[schema(value_type = IdentityKey)]
    identity_key: Value,
    /// The private form, wrapped by the client. Sealed at rest; given back only to you.
    #[schema(value_type = IdentityPrivateKey)]
    identity_private_key: Value,
    /// The current password: needed only to replace an identity the account already has
    /// (checked, and counted against the account's attempts, whenever it is given).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<Password>,
}

/// The account's own identity as its owner sees it: both forms, null when it has none.
#[derive(Debug)]
pub struct OwnIdentity {
    /// The public form.
    pub identity_key: Value,
    /// The private form, as the client wrapped it (null also when it did not open).
    pub identity_private_key: Value,
}

/// The push to a person's conversations when their identity changed.
#[derive(Debug, Serialize)]
struct IdentityChanged<'a> {
    user_id: Uuid,
    /// The new public form; null when the identity was removed (a password reset).
    identity_key: Option<&'a Value>,
}

/// The problems of an identity's public form, if any.
fn public_form_problems(value: &Value) -> Option<String> {
    let shaped = value.as_object().is_some_and(|members| {
        ["signing", "agreement"].iter().all(|name| members.get(*name).is_some_and(Value::is_object))
    });
    if !shaped {
        return Some("must be an object with the object members signing and agreement".to_owned());
    }
    too_large(value)
}

/// The problems of an identity's private form, if any.
fn private_form_problems(value: &Value) -> Option<String> {
    let shaped = value.as_object().is_some_and(|members| {
        ["signing", "agreement"].iter().all(|name| members.get(*name).is_some_and(Value::is_string))
    });
    if !shaped {
        return Some("must be an object with the string members signing and agreement".to_owned());
    }
    too_large(value)
}

fn too_large(value: &Value) -> Option<String> {
    (value.to_string().len() > MAX_KEY_BYTES).then(|| format!("must be at most {MAX_KEY_BYTES} bytes as JSON text"))
}

/// An identity's private form, checked (a 422 naming `field`) and sealed for the user's row.
pub fn seal_private_form(state: &AppState, user_id: Uuid, field: &str, value: &Value) -> ApiResult<Vec<u8>> {
    if let Some(problem) = private_form_problems(value) {
        return Err(ApiError::invalid(field, problem));
    }
    Ok(seal(state, user_id, &value.to_string()))
}

fn seal(state: &AppState, user_id: Uuid, private_form: &str) -> Vec<u8> {
    let row = user_id.to_string();
    state.vault.seal(private_form.as_bytes(), identity_private_key_context(&row))
}

/// The answer to a first publication when the account has an identity already.
fn identity_exists() -> ApiError {
    ApiError::Conflict {
        code: "identity_exists",
        message: "This account has an identity already: send the current password to replace it.",
    }
}

/// Stores the caller's identity and tells everyone who shares a conversation with them. The
/// first one needs no password; replacing one does (else 409 `identity_exists`), and a wrong
/// one is the 422 of any wrong current password.
pub async fn publish(state: &AppState, user_id: Uuid, request: PublishIdentityRequest) -> ApiResult<()> {
    let mut problems = BTreeMap::<String, Vec<String>>::new();
    if let Some(problem) = public_form_problems(&request.identity_key) {
        problems.insert("identity_key".to_owned(), vec![problem]);
    }
    if let Some(problem) = private_form_problems(&request.identity_private_key) {
        problems.insert("identity_private_key".to_owned(), vec![problem]);
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let identity = Identity {
        public_key: request.identity_key.to_string(),
        sealed_private_key: seal(state, user_id, &request.identity_private_key.to_string()),
    };
    // Without a password only a first identity is stored, decided in the store's one
    // statement: two first publications at once cannot both win.
    let replace = match request.password {
        Some(password) => {
            verify_current_password(state, user_id, password).await?;
            true
        }
        None => false,
    };
    state.store.set_identity(user_id, &identity, replace, Timestamp::now()).await.map_err(|error| match error {
        StoreError::Conflict("identity") => identity_exists(),
        other => other.into(),
    })?;
    tracing::info!(user = %user_id, replace, "identity published");
    announce(state, user_id, Some(&request.identity_key)).await;
    Ok(())
}

/// Tells every conversation of the user (`identity_key` on `conversation:{id}`) that their
/// identity is now `identity_key` (`None`: removed). The change is stored already: a failure
/// here is logged, not answered.
pub async fn announce(state: &AppState, user_id: Uuid, identity_key: Option<&Value>) {
    let conversations = match state.store.conversations_of(user_id).await {
        Ok(conversations) => conversations,
        Err(error) => {
            tracing::error!(%error, user = %user_id, "could not tell the conversations of an identity change");
            return;
        }
    };
    let change = IdentityChanged { user_id, identity_key };
    // The assistant conversation has no one else to tell.
    for conversation in conversations.iter().filter(|conversation| !conversation.assistant) {
        state.publish_typed(conversation_topic(conversation.id), IDENTITY_KEY_EVENT, &change).await;
    }
}

/// The user's own identity, both forms (null when none; the private form null too when it
/// does not open, logged: the vault's keys and the database disagree).
pub async fn own(state: &AppState, user_id: Uuid) -> ApiResult<OwnIdentity> {
    let Some(identity) = state.store.identity(user_id).await? else {
        return Ok(OwnIdentity { identity_key: Value::Null, identity_private_key: Value::Null });
    };
    let row = user_id.to_string();
    let identity_private_key = match state.vault.open(&identity.sealed_private_key, identity_private_key_context(&row))
    {
        Ok(plain) => key_json(&String::from_utf8_lossy(&plain)),
        Err(error) => {
            tracing::error!(%error, user = %user_id, "a sealed identity private key did not open");
            Value::Null
        }
    };
    Ok(OwnIdentity { identity_key: key_json(&identity.public_key), identity_private_key })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_forms_are_checked_for_shape_and_size() {
        let public = json!({"signing": {"kty": "EC"}, "agreement": {"kty": "EC"}, "extra": 1});
        assert_eq!(public_form_problems(&public), None);
        let private = json!({"signing": "v1.a", "agreement": "v1.b"});
        assert_eq!(private_form_problems(&private), None);
        for bad in [
            json!(null),
            json!("text"),
            json!([]),
            json!({}),
            json!({"signing": {}}),
            json!({"signing": "v1.a", "agreement": "v1.b"}),
            json!({"signing": {}, "agreement": null}),
        ] {
            assert!(public_form_problems(&bad).is_some(), "{bad}");
        }
        for bad in [json!({"signing": "v1.a"}), json!({"signing": {}, "agreement": {}}), json!("v1.a"), public] {
            assert!(private_form_problems(&bad).is_some(), "{bad}");
        }
        let huge = json!({"signing": "x".repeat(MAX_KEY_BYTES), "agreement": "y"});
        assert!(private_form_problems(&huge).is_some_and(|problem| problem.contains("bytes")));
        let huge = json!({"signing": {"x": "x".repeat(MAX_KEY_BYTES)}, "agreement": {}});
        assert!(public_form_problems(&huge).is_some_and(|problem| problem.contains("bytes")));
    }
}
