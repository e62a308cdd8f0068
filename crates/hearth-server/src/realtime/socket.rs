//! `GET /socket/websocket`: authenticate, then run a Phoenix socket whose topics are seed
//! 002's: `system:general`, `user:{id}` and `conversation:{id}`, and rooms' `room:{id}`.
//!
//! The access token comes from the `token` connect param or the bearer subprotocol; a
//! missing, bad or revoked one is refused with 403 before the upgrade, so a revoked device
//! cannot reconnect.
//!
//! Besides seed 002's events, `system:general` answers [`ECHO_BINARY`], a diagnostic event
//! that lets a client check that binary (V2 binary frame) payloads work end to end.

use axum::Extension;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use phoenix_channels::Payload;
use phoenix_channels::server::{ConnectRequest, Handler, Outbox, Refused, Reply, SocketConfig, SocketHandle};
use serde_json::Value;

use super::conversation::{self, ConversationEvent};
use super::hub::{Finished, SocketId};
use super::incoming::ChannelError;
use super::room::{self, RoomEvent};
use super::system::SystemEvent;
use super::user::UserEvent;
use crate::auth::AuthUser;
use crate::events::SYSTEM_TOPIC;
use crate::presence;
use crate::state::AppState;

/// `echo_binary` on `system:general`: a diagnostic event for clients to test binary support.
/// A push whose payload is binary (an `ArrayBuffer` in the JS client, sent as a V2 binary
/// frame) is answered with an `ok` reply whose response is the same bytes, as a binary reply
/// frame; a JSON payload is refused with an error reply.
pub const ECHO_BINARY: &str = "echo_binary";

/// The socket limits from the settings.
pub fn socket_config(settings: &crate::settings::RealtimeSettings) -> SocketConfig {
    SocketConfig {
        idle_timeout: std::time::Duration::from_secs(settings.idle_timeout_secs.max(1)),
        max_message_size: settings.max_frame_bytes,
        max_channels: settings.max_channels,
        queue_capacity: settings.socket_queue,
        ..SocketConfig::default()
    }
}

/// # GET /socket/websocket
pub async fn connect(
    State(state): State<AppState>,
    ws: WebSocketUpgrade,
    RawQuery(query): RawQuery,
    outbox: Option<Extension<Outbox>>,
    headers: HeaderMap,
) -> Response {
    let request = match ConnectRequest::parse(query.as_deref(), &headers) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    let token = request.param("token").map(str::to_owned).or_else(|| request.bearer_token.clone());
    let Some(token) = token else { return Refused.into_response() };
    let Ok(auth) = state.sessions.authenticate(&token).await else { return Refused.into_response() };
    let config = state.socket_config.clone();
    request
        .upgrade(ws, &config, outbox.map(|Extension(outbox)| outbox), move |handle| Session::new(state, auth, handle))
}

/// One connected device's socket.
pub struct Session {
    state: AppState,
    auth: AuthUser,
    handle: SocketHandle,
    id: SocketId,
    /// This socket's presence meta, while it is on `system:general`.
    presence_ref: Option<String>,
    /// Dropped with the session: shutdown waits for every socket's.
    _finished: Option<Finished>,
}

impl Session {
    fn new(state: AppState, auth: AuthUser, handle: SocketHandle) -> Self {
        let (id, finished) = state.hub.connect(auth.user_id, auth.device_id, handle.clone());
        tracing::debug!(user = %auth.user_id, device = %auth.device_id, "socket connected");
        Self { state, auth, handle, id, presence_ref: None, _finished: finished }
    }
}

/// The topics a socket can join.
enum Topic {
    System,
    User(uuid::Uuid),
    Conversation(uuid::Uuid),
    Room(uuid::Uuid),
}

fn parse_topic(topic: &str) -> Option<Topic> {
    match topic.split_once(':')? {
        ("system", "general") => Some(Topic::System),
        ("user", id) => uuid::Uuid::parse_str(id).ok().map(Topic::User),
        ("conversation", id) => uuid::Uuid::parse_str(id).ok().map(Topic::Conversation),
        ("room", id) => uuid::Uuid::parse_str(id).ok().map(Topic::Room),
        _ => None,
    }
}

impl Handler for Session {
    async fn opened(&mut self) {
        // A revocation published between the upgrade and the hub registration (in `new`)
        // reached no socket: check once more now that later ones will.
        let live = matches!(
            self.state.store.device(self.auth.device_id).await,
            Ok(Some(device)) if device.revoked_at.is_none()
        );
        if !live {
            self.handle.disconnect(axum::extract::ws::close_code::AWAY);
        }
    }

    async fn join(&mut self, topic: &str, _payload: Payload) -> Result<Value, Value> {
        // Subscribed before the reply reads the conversation's state: an event published
        // meanwhile (a member setting keys, an edit, a rename) waits in this socket's queue and
        // goes out after the reply. Subscribed after it, such an event reached nobody on this
        // socket, and its client never learnt of it (a member's key missing until a rejoin).
        self.state.hub.subscribe(self.id, topic);
        let response = match parse_topic(topic) {
            Some(Topic::System) => Ok(serde_json::json!({})),
            Some(Topic::User(id)) if id == self.auth.user_id => Ok(serde_json::json!({})),
            Some(Topic::User(_)) => Err(ChannelError::new("not_your_topic", "you can only join your own user topic")),
            Some(Topic::Conversation(id)) => conversation::join(&self.state, self.auth, id).await,
            Some(Topic::Room(id)) => room::join(&self.state, self.auth, id).await,
            None => Err(ChannelError::new("unknown_topic", "unknown topic")),
        };
        if response.is_err() {
            self.state.hub.unsubscribe(self.id, topic);
        }
        response.map_err(ChannelError::into_value)
    }

    async fn joined(&mut self, topic: &str) {
        if topic == SYSTEM_TOPIC {
            if let Some(previous) = self.presence_ref.take() {
                presence::left(&self.state, self.auth.user_id, &previous).await;
            }
            let (phx_ref, view, arrival) = presence::joined(&self.state, self.auth.user_id, self.auth.device_id).await;
            self.presence_ref = Some(phx_ref);
            // State first, then the diff announcing this device (its own sockets get both).
            let _ = self.handle.push(topic, "presence_state", Payload::Json(view));
            arrival.announce(&self.state).await;
        }
    }

    async fn handle_in(&mut self, topic: &str, event: &str, payload: Payload) -> Option<Reply> {
        let payload = match payload {
            Payload::Json(_) if topic == SYSTEM_TOPIC && event == ECHO_BINARY => {
                return Some(ChannelError::new("binary_expected", "echo_binary expects a binary payload").into_reply());
            }
            Payload::Json(payload) => payload,
            Payload::Binary(bytes) if topic == SYSTEM_TOPIC && event == ECHO_BINARY => {
                return Some(Reply { status: "ok".into(), response: Payload::Binary(bytes) });
            }
            Payload::Binary(_) => {
                return Some(ChannelError::new("json_expected", "expected a JSON payload").into_reply());
            }
        };
        let result = match parse_topic(topic) {
            Some(Topic::Conversation(id)) => match ConversationEvent::parse(event, payload) {
                Ok(event) => event.run(&self.state, self.auth, id).await,
                Err(refusal) => Err(refusal),
            },
            Some(Topic::Room(id)) => match RoomEvent::parse(event, payload) {
                Ok(event) => event.run(&self.state, self.auth, id).await,
                Err(refusal) => Err(refusal),
            },
            Some(Topic::System) => match SystemEvent::parse(event, payload) {
                Ok(event) => event.run(&self.state, self.auth).await,
                Err(refusal) => Err(refusal),
            },
            // Joining checked that the topic is the socket's own user's.
            Some(Topic::User(_)) => match UserEvent::parse(event, payload) {
                Ok(event) => event.run(&self.state, self.auth).await,
                Err(refusal) => Err(refusal),
            },
            _ => Err(ChannelError::unknown_event(event)),
        };
        Some(result.unwrap_or_else(ChannelError::into_reply))
    }

    async fn left(&mut self, topic: &str) {
        if topic == SYSTEM_TOPIC
            && let Some(phx_ref) = self.presence_ref.take()
        {
            presence::left(&self.state, self.auth.user_id, &phx_ref).await;
        }
        self.state.hub.unsubscribe(self.id, topic);
    }

    async fn closed(&mut self) {
        self.state.hub.disconnect(self.id);
        tracing::debug!(user = %self.auth.user_id, device = %self.auth.device_id, "socket closed");
    }
}
