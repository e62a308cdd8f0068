//! `GET /api/asyncapi.json` held to the running server, both ways: the document is AsyncAPI
//! 3.0 whose references all resolve; the events each topic accepts are exactly the documented
//! ones (probed black-box: documented events never get the unknown-event reply, anything else
//! does); and a conversation of three people, a room and the assistant records every push and reply
//! the server sends, each of which must be documented with a payload schema it fits, while
//! every documented push must have been seen.
//!
//! The schemas are checked by a small JSON Schema subset (the keywords the document uses: see
//! `KEYWORDS`); a keyword it does not know is a failure, so a constraint never goes unchecked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use hearth_ai::{ApiKey, ProviderName};
use hearth_fake_provider::FakeProvider;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::assistant::{ASSISTANT, fake_key, spawn_with_fake};
use crate::channels::jwk;
use crate::harness::{Session, TestApp, spawn_app};
use crate::rooms::create_room;
use crate::socket_client::{Client, connect, send};

const SYSTEM: &str = "system:general";

/// Documented pushes no test here can provoke, with the reason. Empty: every push is provoked
/// by the scenario below.
const NOT_PROVOKED: &[(&str, &str, &str)] = &[];

/// The JSON Schema keywords the checker applies.
const KEYWORDS: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "format",
    "oneOf",
    "anyOf",
];

/// Keywords that constrain nothing.
const ANNOTATIONS: &[&str] = &["description", "title", "examples", "default"];

/// The kind of a topic (or a channel address): what comes before its `:`.
fn kind(topic: &str) -> &str {
    topic.split(':').next().unwrap_or(topic)
}

/// The reply of a topic to an event it does not have (the protocol's own refusal on `phoenix`
/// carries no code).
fn unknown_reply(topic: &str, event: &str) -> Value {
    if topic == "phoenix" {
        return json!({"status": "error", "response": {"reason": "unmatched topic"}});
    }
    json!({"status": "error", "response": {"error": "unknown_event", "reason": format!("unknown event {event:?}")}})
}

// --- the document ---

/// One operation of the document, its messages resolved.
#[derive(Debug, Clone)]
struct Operation {
    /// `receive` (a client sends it) or `send` (the server pushes it).
    action: String,
    /// The channel's topic kind: `phoenix`, `system`, `user`, `conversation`, `room`.
    kind: String,
    /// The event (the message's `name`).
    event: String,
    /// The message object.
    message: Value,
    /// The reply messages, for client events.
    replies: Vec<Value>,
}

#[derive(Debug)]
struct Document {
    root: Value,
}

impl Document {
    async fn fetch(app: &TestApp) -> Self {
        let reply = app.get("/api/asyncapi.json").await;
        let root = reply.expect_status(StatusCode::OK).clone();
        assert_eq!(
            reply.headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        Self { root }
    }

    /// What `#/a/b` points at.
    fn pointer(&self, reference: &str) -> Option<&Value> {
        self.root.pointer(reference.strip_prefix('#')?)
    }

    /// `value`, or what its `$ref` (and theirs) point at.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            value = self.pointer(reference).unwrap_or_else(|| panic!("{reference} does not resolve"));
        }
        value
    }

    /// The topic kind of the channel an operation or reply names.
    fn channel_kind(&self, channel: &Value) -> String {
        let address = self.resolve(channel)["address"].as_str().expect("a channel has an address");
        kind(address).to_owned()
    }

    fn operations(&self) -> Vec<Operation> {
        let operations = self.root["operations"].as_object().expect("operations");
        operations
            .iter()
            .map(|(id, operation)| {
                let operation = self.resolve(operation);
                let messages = operation["messages"].as_array().expect("messages");
                assert_eq!(messages.len(), 1, "{id}: one event per operation");
                let message = self.resolve(&messages[0]).clone();
                let replies = operation["reply"]["messages"]
                    .as_array()
                    .map(|replies| replies.iter().map(|reply| self.resolve(reply).clone()).collect())
                    .unwrap_or_default();
                Operation {
                    action: operation["action"].as_str().expect("action").to_owned(),
                    kind: self.channel_kind(&operation["channel"]),
                    event: message["name"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{id}: a message without name"))
                        .to_owned(),
                    message,
                    replies,
                }
            })
            .collect()
    }

    /// (topic kind, event) of what clients send.
    fn client_events(&self) -> BTreeSet<(String, String)> {
        self.operations().into_iter().filter(|o| o.action == "receive").map(|o| (o.kind, o.event)).collect()
    }

    /// (topic kind, event) of what the server pushes, with each push's message.
    fn pushes(&self) -> BTreeMap<(String, String), Vec<Value>> {
        let mut pushes: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
        for operation in self.operations().into_iter().filter(|o| o.action == "send") {
            pushes.entry((operation.kind, operation.event)).or_default().push(operation.message);
        }
        pushes
    }

    /// The reply messages documented for a client event.
    fn replies(&self, kind: &str, event: &str) -> Vec<Value> {
        self.operations()
            .into_iter()
            .filter(|o| o.action == "receive" && o.kind == kind && o.event == event)
            .flat_map(|o| o.replies)
            .collect()
    }

    /// Problems of `value` against `schema` (empty: it fits).
    fn check(&self, schema: &Value, value: &Value, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        self.validate(schema, value, at, &mut problems);
        problems
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let Some(rules) = schema.as_object() else {
            problems.push(format!("{at}: the schema is not an object: {schema}"));
            return;
        };
        if let Some(unknown) =
            rules.keys().find(|k| !KEYWORDS.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()))
        {
            problems.push(format!("{at}: the checker does not know the keyword {unknown:?}"));
        }
        if let Some(reference) = rules.get("$ref").and_then(Value::as_str) {
            match self.pointer(reference) {
                Some(target) => self.validate(target, value, at, problems),
                None => problems.push(format!("{at}: {reference} does not resolve")),
            }
        }
        if let Some(types) = rules.get("type") {
            let types: Vec<&str> = match types {
                Value::Array(types) => types.iter().filter_map(Value::as_str).collect(),
                other => other.as_str().into_iter().collect(),
            };
            if !types.iter().any(|t| type_fits(t, value)) {
                problems.push(format!("{at}: {value} is not of type {types:?}"));
                return;
            }
        }
        if let Some(options) = rules.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            problems.push(format!("{at}: {value} is not one of {options:?}"));
        }
        if let Some(expected) = rules.get("const")
            && expected != value
        {
            problems.push(format!("{at}: {value} is not {expected}"));
        }
        for (keyword, must_match) in [("oneOf", Some(1)), ("anyOf", None)] {
            if let Some(options) = rules.get(keyword).and_then(Value::as_array) {
                let matching = options.iter().filter(|option| self.check(option, value, at).is_empty()).count();
                if must_match.map_or(matching == 0, |n| matching != n) {
                    problems.push(format!("{at}: {value} fits {matching} of the {keyword} schemas"));
                }
            }
        }
        match value {
            Value::Object(object) => self.validate_object(rules, object, at, problems),
            Value::Array(items) => {
                let count = items.len() as u64;
                if rules.get("minItems").and_then(Value::as_u64).is_some_and(|min| count < min)
                    || rules.get("maxItems").and_then(Value::as_u64).is_some_and(|max| count > max)
                {
                    problems.push(format!("{at}: {count} items is out of bounds"));
                }
                match rules.get("items") {
                    Some(Value::Array(positions)) => {
                        for (i, (schema, item)) in positions.iter().zip(items).enumerate() {
                            self.validate(schema, item, &format!("{at}[{i}]"), problems);
                        }
                    }
                    Some(schema) => {
                        for (i, item) in items.iter().enumerate() {
                            self.validate(schema, item, &format!("{at}[{i}]"), problems);
                        }
                    }
                    None => {}
                }
            }
            Value::String(text) => {
                let length = text.chars().count() as u64;
                if rules.get("minLength").and_then(Value::as_u64).is_some_and(|min| length < min)
                    || rules.get("maxLength").and_then(Value::as_u64).is_some_and(|max| length > max)
                {
                    problems.push(format!("{at}: {length} characters is out of bounds"));
                }
                let fits = match rules.get("format").and_then(Value::as_str) {
                    None => true,
                    Some("uuid") => uuid::Uuid::parse_str(text).is_ok(),
                    Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
                    Some(other) => {
                        problems.push(format!("{at}: the checker does not know the format {other:?}"));
                        true
                    }
                };
                if !fits {
                    problems.push(format!("{at}: {text:?} is not a {}", rules["format"]));
                }
            }
            Value::Number(number) => {
                if let Some(minimum) = rules.get("minimum").and_then(Value::as_f64)
                    && number.as_f64().is_some_and(|n| n < minimum)
                {
                    problems.push(format!("{at}: {number} is below {minimum}"));
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn validate_object(
        &self,
        rules: &serde_json::Map<String, Value>,
        object: &serde_json::Map<String, Value>,
        at: &str,
        problems: &mut Vec<String>,
    ) {
        for name in rules.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = name.as_str().expect("required names are strings");
            if !object.contains_key(name) {
                problems.push(format!("{at}: the required {name:?} is missing"));
            }
        }
        let properties = rules.get("properties").and_then(Value::as_object);
        for (key, item) in object {
            let path = format!("{at}.{key}");
            if let Some(names) = rules.get("propertyNames") {
                self.validate(names, &Value::String(key.clone()), &format!("{at} (key {key:?})"), problems);
            }
            match (properties.and_then(|p| p.get(key)), rules.get("additionalProperties")) {
                (Some(schema), _) => self.validate(schema, item, &path, problems),
                (None, Some(Value::Bool(false))) => problems.push(format!("{path}: not in the document")),
                (None, None | Some(Value::Bool(true))) => {}
                (None, Some(schema)) => self.validate(schema, item, &path, problems),
            }
        }
    }

    /// Problems of a schema itself: keywords the checker does not know, at any depth.
    fn lint(&self, schema: &Value, at: &str, problems: &mut Vec<String>) {
        let Some(rules) = schema.as_object() else {
            problems.push(format!("{at}: a schema is not an object"));
            return;
        };
        for (keyword, inner) in rules {
            if ANNOTATIONS.contains(&keyword.as_str()) {
                continue;
            }
            if !KEYWORDS.contains(&keyword.as_str()) {
                problems.push(format!("{at}: the checker does not know the keyword {keyword:?}"));
                continue;
            }
            let at = format!("{at}/{keyword}");
            match (keyword.as_str(), inner) {
                ("properties", Value::Object(properties)) => {
                    for (name, schema) in properties {
                        self.lint(schema, &format!("{at}/{name}"), problems);
                    }
                }
                ("additionalProperties" | "propertyNames" | "items", Value::Object(_)) => {
                    self.lint(inner, &at, problems);
                }
                ("items" | "oneOf" | "anyOf", Value::Array(schemas)) => {
                    for (i, schema) in schemas.iter().enumerate() {
                        self.lint(schema, &format!("{at}/{i}"), problems);
                    }
                }
                _ => {}
            }
        }
    }
}

fn type_fits(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => false,
    }
}

/// Every `$ref` in `value`, with where it is.
fn references(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                if key == "$ref" {
                    found.push((at.to_owned(), inner.as_str().unwrap_or_default().to_owned()));
                } else {
                    references(inner, &format!("{at}/{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                references(item, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

// --- a recording socket ---

/// What the server sent to every peer of a test.
#[derive(Debug, Default)]
struct Seen {
    /// Every JSON frame.
    frames: Vec<Value>,
    /// Pushes: (topic, event, payload).
    pushes: Vec<(String, String, Value)>,
    /// JSON replies: (topic, the event answered, `{"status", "response"}`).
    replies: Vec<(String, String, Value)>,
    /// Binary replies: (topic, the event answered, status).
    binary_replies: Vec<(String, String, String)>,
    /// What did not make sense (a reply to no request).
    problems: Vec<String>,
}

/// A connected person (serializer 2.0.0) whose every received frame is recorded.
struct Peer {
    id: String,
    socket: Client,
    next_ref: u64,
    /// The event of each ref sent.
    asked: HashMap<String, String>,
    seen: Arc<Mutex<Seen>>,
}

impl Peer {
    /// Connects and joins the person's user topic and system:general.
    async fn connect(app: &TestApp, session: &Session, seen: &Arc<Mutex<Seen>>) -> Self {
        let socket = connect(app, &session.auth_token).await.expect("accepted");
        let mut peer =
            Self { id: session.user_id.clone(), socket, next_ref: 0, asked: HashMap::new(), seen: seen.clone() };
        let user_topic = peer.user_topic();
        peer.ok(&user_topic, "phx_join", json!({})).await;
        peer.ok(SYSTEM, "phx_join", json!({})).await;
        peer
    }

    fn user_topic(&self) -> String {
        format!("user:{}", self.id)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().expect("the record")
    }

    fn next_ref(&mut self, event: &str) -> String {
        self.next_ref += 1;
        let r = self.next_ref.to_string();
        self.asked.insert(r.clone(), event.to_owned());
        r
    }

    /// The next WebSocket message (at most 10 s).
    async fn next_message(&mut self) -> WsMessage {
        tokio::time::timeout(Duration::from_secs(10), self.socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket is open")
            .expect("a frame")
    }

    /// Reads and records the next frame; JSON frames are returned.
    async fn read(&mut self) -> Option<Value> {
        let message = self.next_message().await;
        match message {
            WsMessage::Text(text) => {
                let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
                self.record(&frame);
                Some(frame)
            }
            WsMessage::Binary(bytes) => {
                self.record_binary(&bytes);
                None
            }
            _ => None,
        }
    }

    fn record(&self, frame: &Value) {
        let (topic, event) = (frame[2].as_str().unwrap_or_default(), frame[3].as_str().unwrap_or_default());
        let mut seen = self.seen();
        seen.frames.push(frame.clone());
        if event == "phx_reply" {
            match frame[1].as_str().and_then(|r| self.asked.get(r)) {
                Some(asked) => seen.replies.push((topic.to_owned(), asked.clone(), frame[4].clone())),
                None => seen.problems.push(format!("a reply to no request: {frame}")),
            }
        } else {
            seen.pushes.push((topic.to_owned(), event.to_owned(), frame[4].clone()));
        }
    }

    /// A binary frame: only replies are expected (kind 1: join_ref, ref, topic, status).
    fn record_binary(&self, bytes: &[u8]) {
        let mut seen = self.seen();
        if bytes.first() != Some(&1) || bytes.len() < 5 {
            seen.problems.push(format!("a binary frame that is not a reply: {bytes:?}"));
            return;
        }
        let mut at = 5;
        let mut parts = Vec::new();
        for &length in &bytes[1..5] {
            let end = at + usize::from(length);
            parts.push(String::from_utf8_lossy(&bytes[at..end]).into_owned());
            at = end;
        }
        match self.asked.get(&parts[1]) {
            Some(asked) => seen.binary_replies.push((parts[2].clone(), asked.clone(), parts[3].clone())),
            None => seen.problems.push(format!("a binary reply to no request: {parts:?}")),
        }
    }

    /// Sends an event (`{}` join params for joins) and returns its reply's payload.
    async fn call(&mut self, topic: &str, event: &str, payload: Value) -> Value {
        let r = self.next_ref(event);
        let join_ref = if event == "phx_join" { json!(r) } else { Value::Null };
        send(&mut self.socket, json!([join_ref, r, topic, event, payload])).await;
        loop {
            if let Some(frame) = self.read().await
                && frame[3] == "phx_reply"
                && frame[1] == r.as_str()
            {
                return frame[4].clone();
            }
        }
    }

    async fn ok(&mut self, topic: &str, event: &str, payload: Value) -> Value {
        let reply = self.call(topic, event, payload).await;
        assert_eq!(reply["status"], "ok", "{topic} {event}: {reply}");
        reply["response"].clone()
    }

    async fn refused(&mut self, topic: &str, event: &str, payload: Value) -> String {
        let reply = self.call(topic, event, payload).await;
        assert_eq!(reply["status"], "error", "{topic} {event} should be refused: {reply}");
        reply["response"]["reason"].as_str().expect("a reason").to_owned()
    }

    /// Sends `bytes` as a V2 binary push and returns the reply's bytes.
    async fn call_binary(&mut self, topic: &str, event: &str, bytes: &[u8]) -> Vec<u8> {
        let r = self.next_ref(event);
        let parts = ["", r.as_str(), topic, event];
        let mut frame = vec![0];
        frame.extend(parts.map(|part| u8::try_from(part.len()).expect("short")));
        for part in parts {
            frame.extend_from_slice(part.as_bytes());
        }
        frame.extend_from_slice(bytes);
        self.socket.send(WsMessage::binary(frame)).await.expect("send");
        loop {
            let message = self.next_message().await;
            match message {
                WsMessage::Binary(reply) => {
                    self.record_binary(&reply);
                    let header: usize = reply[1..5].iter().map(|&n| usize::from(n)).sum();
                    return reply[5 + header..].to_vec();
                }
                WsMessage::Text(text) => {
                    let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
                    self.record(&frame);
                    assert!(frame[1] != r.as_str(), "{event} answered in JSON: {frame}");
                }
                _ => {}
            }
        }
    }

    /// Waits for a push of `event` on `topic` that `wanted` accepts; returns its payload.
    async fn expect_where(&mut self, topic: &str, event: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            if let Some(frame) = self.read().await
                && frame[2] == topic
                && frame[3] == event
                && wanted(&frame[4])
            {
                return frame[4].clone();
            }
        }
    }

    async fn expect(&mut self, topic: &str, event: &str) -> Value {
        self.expect_where(topic, event, |_| true).await
    }
}

// --- the tests ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_asyncapi_3_and_every_reference_resolves() {
    let app = spawn_app().await;
    let document = Document::fetch(&app).await;
    let root = &document.root;
    assert_eq!(root["asyncapi"], "3.0.0");
    assert!(root["info"]["title"].is_string() && root["info"]["version"].is_string(), "{}", root["info"]);

    let mut refs = Vec::new();
    references(root, "#", &mut refs);
    assert!(refs.len() > 100, "the document is made of references: {}", refs.len());
    for (at, reference) in &refs {
        assert!(document.pointer(reference).is_some(), "{at}: {reference:?} does not resolve");
    }

    // The topics, with their parameters.
    let channels = root["channels"].as_object().expect("channels");
    let addresses: BTreeSet<&str> = channels.values().filter_map(|c| c["address"].as_str()).collect();
    let expected =
        BTreeSet::from(["phoenix", SYSTEM, "user:{userId}", "conversation:{conversationId}", "room:{roomId}"]);
    assert_eq!(addresses, expected);
    for channel in channels.values() {
        let address = channel["address"].as_str().expect("address");
        for parameter in address.split('{').skip(1).filter_map(|rest| rest.split('}').next()) {
            assert!(channel["parameters"][parameter].is_object(), "{address}: {parameter} is not described");
        }
    }

    // Each operation's messages are its channel's; every message is named, every schema
    // is one the checker here understands.
    for (id, operation) in root["operations"].as_object().expect("operations") {
        let channel = operation["channel"]["$ref"].as_str().expect("a channel reference");
        for message in operation["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(operation["reply"]["messages"].as_array().into_iter().flatten())
        {
            let reference = message["$ref"].as_str().expect("a message reference");
            assert!(reference.starts_with(&format!("{channel}/messages/")), "{id}: {reference} is not of {channel}");
        }
    }
    let mut problems = Vec::new();
    for (id, message) in root["components"]["messages"].as_object().expect("messages") {
        assert!(message["name"].is_string(), "{id} has no name");
        document.lint(&message["payload"], &format!("messages/{id}"), &mut problems);
    }
    for (id, schema) in root["components"]["schemas"].as_object().expect("schemas") {
        document.lint(schema, &format!("schemas/{id}"), &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // The served document is the file, and the OpenAPI document lists it.
    let reply = app.get("/api/asyncapi.json").await;
    assert_eq!(reply.text, include_str!("../../src/http/asyncapi.json"));
    let openapi = app.get("/api/openapi.json").await;
    let listed = &openapi.expect_status(StatusCode::OK)["paths"]["/api/asyncapi.json"]["get"];
    assert!(listed["responses"]["200"]["content"]["application/json"].is_object(), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_works_as_the_document_says() {
    let app = spawn_app().await;
    let document = Document::fetch(&app).await;
    let ann = app.register("ann@example.org").await;
    let base = format!("ws://{}/socket/websocket", app.addr);

    // The token as the bearer subprotocol, offered with `phoenix`, which the server selects.
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&ann.auth_token);
    let mut request = format!("{base}?vsn=2.0.0").into_client_request().expect("a request");
    let protocols = format!("phoenix, base64url.bearer.phx.{encoded}");
    request.headers_mut().insert("sec-websocket-protocol", protocols.parse().expect("a header value"));
    let (_, response) = tokio_tungstenite::connect_async(request).await.expect("the bearer subprotocol is accepted");
    assert_eq!(response.headers()["sec-websocket-protocol"], "phoenix");

    // No token, or a serializer that does not exist: 403 before the upgrade.
    for url in [format!("{base}?vsn=2.0.0"), format!("{base}?token={}&vsn=3.0.0", ann.auth_token)] {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
            other => panic!("{url}: {:?}", other.map(|(_, response)| response.status())),
        }
    }

    // Serializer 1.0.0: objects, and the server's have no join_ref.
    let url = format!("{base}?token={}&vsn=1.0.0", ann.auth_token);
    let (mut v1, _) = tokio_tungstenite::connect_async(url).await.expect("accepted");
    let frame_schema = json!({"$ref": "#/components/schemas/frameV1FromServer"});
    let client_schema = json!({"$ref": "#/components/schemas/frameV1FromClient"});
    for (topic, event) in [("phoenix", "heartbeat"), (SYSTEM, "phx_join")] {
        let frame = json!({"topic": topic, "event": event, "payload": {}, "ref": "1", "join_ref": "1"});
        assert_eq!(document.check(&client_schema, &frame, "sent"), Vec::<String>::new());
        v1.send(WsMessage::text(frame.to_string())).await.expect("send");
        let message = tokio::time::timeout(Duration::from_secs(5), v1.next()).await.expect("a reply").expect("open");
        let reply: Value = serde_json::from_str(message.expect("a frame").to_text().expect("text")).expect("JSON");
        assert_eq!(document.check(&frame_schema, &reply, "v1"), Vec::<String>::new());
        assert_eq!((&reply["event"], &reply["payload"]["status"]), (&json!("phx_reply"), &json!("ok")), "{reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_accepted_are_exactly_the_documented_ones() {
    let app = spawn_app().await;
    let document = Document::fetch(&app).await;
    let documented = document.client_events();
    let pushes = document.pushes();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (ann_session, bob_session) = (app.register("ann@example.org").await, app.register("bob@example.org").await);
    let mut ann = Peer::connect(&app, &ann_session, &seen).await;
    // A private conversation: its events can be refused or harmless, never leave it.
    let payload = json!({"other_user_id": bob_session.user_id, "public_key": jwk("ann"), "private_key": {}});
    let started = ann.ok(SYSTEM, "start_private_conversation", payload).await;
    let conversation = format!("conversation:{}", started["conversation"]["id"].as_str().expect("an id"));
    ann.ok(&conversation, "phx_join", json!({})).await;
    // A room of Ann's alone.
    let room = format!("room:{}", create_room(&app, &ann_session, "lobby", "public").await);
    ann.ok(&room, "phx_join", json!({})).await;
    let topics = ["phoenix".to_owned(), SYSTEM.to_owned(), ann.user_topic(), conversation, room];
    assert_eq!(
        topics.iter().map(|t| kind(t)).collect::<BTreeSet<_>>(),
        documented.iter().map(|(topic_kind, _)| topic_kind.as_str()).collect::<BTreeSet<_>>(),
        "one topic of each kind the document has"
    );

    // The unknown-event reply, as the server gives it.
    assert_eq!(ann.call(&topics[1], "nonsense", json!({})).await, unknown_reply(SYSTEM, "nonsense"));
    assert_eq!(ann.call(&topics[0], "nonsense", json!({})).await, unknown_reply("phoenix", "nonsense"));

    // Every documented event, with an empty payload: answered, never as unknown.
    for topic in &topics {
        for (_, event) in documented.iter().filter(|(k, _)| k == kind(topic)) {
            let reply = ann.call(topic, event, json!({})).await;
            assert!(matches!(reply["status"].as_str(), Some("ok" | "error")), "{topic} {event}: {reply}");
            assert_ne!(reply, unknown_reply(topic, event), "{topic} does not take the documented {event}");
            if event == "phx_leave" {
                ann.ok(topic, "phx_join", json!({})).await;
            }
        }
    }

    // Every other name the document knows (events of other topics, pushes) and some it does
    // not: the unknown-event reply.
    let mut names: BTreeSet<&str> = documented.iter().map(|(_, event)| event.as_str()).collect();
    names.extend(pushes.keys().map(|(_, event)| event.as_str()));
    names.extend(["nonsense", "phx_reply", "phx_error", "presence", "ping"]);
    for topic in &topics {
        for name in &names {
            if documented.contains(&(kind(topic).to_owned(), (*name).to_owned())) {
                continue;
            }
            let reply = ann.call(topic, name, json!({})).await;
            assert_eq!(reply, unknown_reply(topic, name), "{topic} takes {name}, which the document does not list");
        }
    }

    // No other topic kinds.
    for topic in ["room:lobby", "rooms:1", "system:other", "user:not-a-uuid", "conversation:42", "users:1"] {
        assert_eq!(ann.refused(topic, "phx_join", json!({})).await, "unknown topic", "{topic}");
    }
    assert!(seen.lock().expect("the record").problems.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_push_and_reply_is_documented_and_fits_its_schema() {
    let fake = FakeProvider::start().await.expect("start the fake");
    let app = spawn_with_fake(&fake, |settings| {
        let key = ApiKey::new(fake_key(ProviderName::Groq, "ok"));
        settings.keyguard.free_tier.keys.insert(ProviderName::Groq, vec![key]);
    })
    .await;
    let document = Document::fetch(&app).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (ann_session, bob_session, carol_session) = (
        app.register("ann@example.org").await,
        app.register("bob@example.org").await,
        app.register("carol@example.org").await,
    );
    let mut ann = Peer::connect(&app, &ann_session, &seen).await;
    let mut bob = Peer::connect(&app, &bob_session, &seen).await;
    let mut carol = Peer::connect(&app, &carol_session, &seen).await;
    let (ann_user, bob_user, carol_user) = (ann.user_topic(), bob.user_topic(), carol.user_topic());
    ann.expect(SYSTEM, "presence_state").await;

    // A private conversation: keys, a message sent, edited, typed about, read, deleted.
    let payload = json!({"other_user_id": bob.id, "public_key": jwk("ann"), "private_key": {"wrapped": "a"}});
    let started = ann.ok(SYSTEM, "start_private_conversation", payload).await;
    let private = format!("conversation:{}", started["conversation"]["id"].as_str().expect("an id"));
    bob.expect(&bob_user, "new_conversation").await;
    let bob_id = bob.id.clone();
    ann.expect_where(SYSTEM, "presence_diff", |diff| diff["joins"].get(&bob_id).is_some()).await;
    ann.ok(&private, "phx_join", json!({})).await;
    bob.ok(&private, "phx_join", json!({})).await;
    bob.ok(&private, "set_encryption_keys", json!({"public_key": jwk("bob"), "private_key": {"wrapped": "b"}})).await;
    ann.expect(&private, "set_encryption_keys").await;
    // Bob publishes his identity (REST): his conversations hear of it.
    let identity = json!({
        "identity_key": {"signing": jwk("bob-signing"), "agreement": jwk("bob-agreement")},
        "identity_private_key": {"signing": "v1.s", "agreement": "v1.a"},
    });
    let request = app.request(reqwest::Method::PUT, "/api/identity_key", Some(&bob_session.auth_token));
    let published = app.send(request.json(&identity)).await;
    assert_eq!(published.status, StatusCode::NO_CONTENT, "{}", published.text);
    ann.expect(&private, "identity_key").await;
    let ann_id = ann.id.clone();
    let both = |a: &str, b: &str| json!({ann_id.clone(): a, bob_id.clone(): b});
    let chosen = uuid::Uuid::now_v7();
    let payload = json!({
        "encrypted_messages": both("for ann", "for bob"), "client_msg_id": "m-1", "message_group_id": chosen
    });
    let sent = ann.ok(&private, "send_message", payload).await;
    assert_eq!(sent["message"]["message_group"], json!(chosen));
    let group = sent["message"]["message_group"].as_str().expect("a group").to_owned();
    bob.expect(&bob_user, "new_message").await;
    let private_id = private.trim_start_matches("conversation:").to_owned();
    bob.ok(&bob_user, "delivered_conversation", json!({"conversation_id": private_id})).await;
    ann.expect(&private, "delivered_conversation").await;
    let edit = json!({"message_group_id": group, "encrypted_messages": both("edited a", "edited b")});
    ann.ok(&private, "edit_message", edit).await;
    bob.expect(&bob_user, "edit_message").await;
    ann.ok(&private, "start_typing", json!({})).await;
    bob.expect(&private, "start_typing").await;
    ann.ok(&private, "finish_typing", json!({})).await;
    bob.expect(&private, "finish_typing").await;
    bob.ok(&private, "read_conversation", json!({})).await;
    ann.expect(&private, "read_conversation").await;
    ann.ok(&private, "delete_message", json!({"message_group_id": group})).await;
    bob.expect(&private, "delete_message").await;
    bob.expect(&bob_user, "delete_message").await;
    ann.refused(&private, "change_alias", json!({"alias": "no alias in private"})).await;
    ann.ok(&private, "phx_leave", json!({})).await;
    ann.expect(&private, "phx_close").await;

    // A group: renamed, grown, left.
    let payload =
        json!({"user_ids": [bob.id], "public_key": jwk("ann"), "private_key": {"wrapped": "g"}, "alias": "Team"});
    let started = ann.ok(SYSTEM, "start_group_conversation", payload).await;
    let team = format!("conversation:{}", started["conversation"]["id"].as_str().expect("an id"));
    bob.expect(&bob_user, "new_conversation").await;
    ann.ok(&team, "phx_join", json!({})).await;
    bob.ok(&team, "phx_join", json!({})).await;
    ann.ok(&team, "change_alias", json!({"alias": "Team 2"})).await;
    bob.expect(&team, "update_alias").await;
    ann.ok(&team, "modify_conversation", json!({"new_members": [carol.id]})).await;
    carol.expect(&carol_user, "new_conversation").await;
    carol.ok(&team, "phx_join", json!({})).await;
    bob.ok(&team, "leave_conversation", json!({})).await;
    ann.expect(&team, "leave_conversation").await;
    bob.expect(&team, "phx_close").await;

    // system:general: renaming, hiding, leaving; the user topic left too.
    carol.ok(SYSTEM, "set_display_name", json!({"display_name": "Caroline"})).await;
    ann.expect(SYSTEM, "set_display_name").await;
    carol.ok(SYSTEM, "set_hidden", json!({"hidden": true})).await;
    let carol_id = carol.id.clone();
    ann.expect_where(SYSTEM, "presence_diff", |diff| diff["leaves"].get(&carol_id).is_some()).await;
    carol.ok(SYSTEM, "set_hidden", json!({"hidden": false})).await;
    for topic in [SYSTEM, &carol_user] {
        carol.ok(topic, "phx_leave", json!({})).await;
        carol.expect(topic, "phx_close").await;
        carol.ok(topic, "phx_join", json!({})).await;
    }
    carol.ok("phoenix", "heartbeat", json!({})).await;

    // The binary diagnostic.
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(carol.call_binary(SYSTEM, "echo_binary", &bytes).await, bytes);

    // The assistant conversation: a prompt, streamed back.
    let started = ann.ok(SYSTEM, "start_assistant_conversation", json!({})).await;
    let assistant = format!("conversation:{}", started["conversation"]["id"].as_str().expect("an id"));
    ann.expect(&ann_user, "new_conversation").await;
    ann.ok(&assistant, "phx_join", json!({})).await;
    let prompt = json!({"encrypted_messages": {ann.id.clone(): "what is a socket"}});
    ann.ok(&assistant, "send_message", prompt).await;
    ann.expect(&assistant, "assistant_delta").await;
    ann.expect_where(&ann_user, "new_message", |pushed| pushed["message"]["sender"] == ASSISTANT).await;

    // A room: joined over REST, posts sent, edited, deleted by a moderator, typed about,
    // read, the assistant asked; the channel left and the room left.
    let room_id = create_room(&app, &ann_session, "lobby", "public").await;
    let room = format!("room:{room_id}");
    ann.ok(&room, "phx_join", json!({})).await;
    let joined = app.post_authed(&format!("/api/rooms/{room_id}/join"), &bob_session.auth_token, None).await;
    joined.expect_status(StatusCode::OK);
    ann.expect(&room, "member_joined").await;
    bob.ok(&room, "phx_join", json!({})).await;
    let posted = bob.ok(&room, "post", json!({"text": "hello room", "client_msg_id": "r-1"})).await;
    ann.expect(&room, "new_post").await;
    bob.ok(&room, "edit_post", json!({"message_id": posted["id"], "text": "hello, room"})).await;
    ann.expect(&room, "edit_post").await;
    ann.ok(&room, "delete_post", json!({"message_id": posted["id"]})).await;
    bob.expect(&room, "delete_post").await;
    bob.refused(&room, "delete_post", json!({"message_id": posted["id"]})).await;
    bob.ok(&room, "start_typing", json!({})).await;
    ann.expect(&room, "start_typing").await;
    bob.ok(&room, "finish_typing", json!({})).await;
    ann.expect(&room, "finish_typing").await;
    bob.ok(&room, "read_room", json!({})).await;
    ann.expect(&room, "read_room").await;
    bob.ok(&room, "post", json!({"text": "@assistant what is a room"})).await;
    ann.expect(&room, "assistant_delta").await;
    ann.expect_where(&room, "new_post", |pushed| pushed["sender"] == ASSISTANT).await;
    ann.ok(&room, "phx_leave", json!({})).await;
    ann.expect(&room, "phx_close").await;
    ann.ok(&room, "phx_join", json!({})).await;
    let left = app.post_authed(&format!("/api/rooms/{room_id}/leave"), &bob_session.auth_token, None).await;
    left.expect_status(StatusCode::NO_CONTENT);
    ann.expect(&room, "member_left").await;
    bob.expect(&room, "phx_close").await;
    bob.refused(&room, "phx_join", json!({})).await;
    // Bob back, and Ann, the only moderator, leaving: Bob moderates now.
    let joined = app.post_authed(&format!("/api/rooms/{room_id}/join"), &bob_session.auth_token, None).await;
    joined.expect_status(StatusCode::OK);
    bob.ok(&room, "phx_join", json!({})).await;
    let left = app.post_authed(&format!("/api/rooms/{room_id}/leave"), &ann_session.auth_token, None).await;
    left.expect_status(StatusCode::NO_CONTENT);
    bob.expect(&room, "member_left").await;
    bob.expect(&room, "moderator_appointed").await;
    ann.expect(&room, "phx_close").await;

    let seen = std::mem::take(&mut *seen.lock().expect("the record"));
    let mut problems = seen.problems;

    // Every frame is a V2 frame; pushes are broadcasts (null refs) but for presence_state
    // (the channel's join_ref) and phx_close (the join_ref twice).
    let frame_schema = json!({"$ref": "#/components/schemas/frameV2"});
    for frame in &seen.frames {
        problems.extend(document.check(&frame_schema, frame, "frame"));
        let (join_ref, r, event) = (&frame[0], &frame[1], frame[3].as_str().unwrap_or_default());
        let refs_ok = match event {
            "phx_reply" => r.is_string(),
            "phx_close" => join_ref.is_string() && r == join_ref,
            "presence_state" => join_ref.is_string() && r.is_null(),
            _ => join_ref.is_null() && r.is_null(),
        };
        if !refs_ok {
            problems.push(format!("refs not as documented: {frame}"));
        }
    }

    // Every push is documented and fits; every documented push was seen.
    let documented = document.pushes();
    let mut observed = BTreeSet::new();
    for (topic, event, payload) in &seen.pushes {
        let key = (kind(topic).to_owned(), event.clone());
        match documented.get(&key) {
            None => problems.push(format!("{topic} pushed {event}, which the document does not list: {payload}")),
            Some(messages) => {
                let fits = messages.iter().any(|m| document.check(&m["payload"], payload, event).is_empty());
                if !fits {
                    problems.push(format!(
                        "{topic} {event}: {:?}",
                        document.check(&messages[0]["payload"], payload, event)
                    ));
                }
            }
        }
        observed.insert(key);
    }
    for (topic_kind, event) in documented.keys() {
        let allowed = NOT_PROVOKED.iter().any(|(k, e, _)| k == topic_kind && e == event);
        if !observed.contains(&(topic_kind.clone(), event.clone())) && !allowed {
            problems.push(format!("the document lists {event} on {topic_kind}, never pushed here"));
        }
    }

    // Every reply fits exactly one documented reply of its event; every client event was
    // answered `ok` at least once.
    let mut answered_ok = BTreeSet::new();
    for (topic, event, reply) in &seen.replies {
        let replies = document.replies(kind(topic), event);
        let fitting = replies.iter().filter(|m| document.check(&m["payload"], reply, event).is_empty()).count();
        if fitting != 1 {
            problems.push(format!("{topic} {event}: the reply {reply} fits {fitting} documented replies"));
        }
        if reply["status"] == "ok" {
            answered_ok.insert((kind(topic).to_owned(), event.clone()));
        }
    }
    for (topic, event, status) in &seen.binary_replies {
        let binary = document
            .replies(kind(topic), event)
            .into_iter()
            .any(|m| m["contentType"] == "application/octet-stream" && m["payload"]["format"] == "binary");
        if !binary {
            problems.push(format!("{topic} {event}: a binary reply the document does not describe"));
        }
        if status == "ok" {
            answered_ok.insert((kind(topic).to_owned(), event.clone()));
        }
    }
    for (topic_kind, event) in document.client_events() {
        if !answered_ok.contains(&(topic_kind.clone(), event.clone())) {
            problems.push(format!("{event} on {topic_kind} was never answered ok here: its reply is unchecked"));
        }
    }
    // The same problem seen by several sockets is said once.
    let problems: BTreeSet<String> = problems.into_iter().collect();
    assert!(problems.is_empty(), "{problems:#?}");
}
