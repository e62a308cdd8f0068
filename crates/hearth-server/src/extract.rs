//! Request extractors: JSON bodies with hearth's error shape, the authenticated user, and
//! the client's address.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body. Unlike axum's `Json`, every rejection is an [`ApiError`]: not JSON → 400,
/// wrong shape → 422 naming the field, over the limit → 413. Messages never echo values.
///
/// Bodies carry passwords and provider keys: once parsed (into zeroizing types where they are
/// secret), the body's buffer is wiped too, when this extractor is its only owner (a body
/// that arrived in one piece may still share its allocation with the connection's read buffer,
/// which hyper reuses).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type_is_json =
            request.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
            });
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            _ => ApiError::bad_request("malformed", "The request body could not be read."),
        })?;
        if !content_type_is_json {
            return Err(ApiError::bad_request("malformed", "Expected Content-Type: application/json."));
        }
        let parsed = parse_json(&bytes).map(Json);
        if let Ok(mut buffer) = bytes.try_into_mut() {
            zeroize::Zeroize::zeroize(buffer.as_mut());
        }
        parsed
    }
}

/// Parses a JSON body: syntax errors are 400; type and missing-field errors 422 with the
/// field's path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first: the typed parse stops at the first type error, so a truncated body
    // such as `{"email": 1,` would otherwise be a 422 instead of malformed. `IgnoredAny`
    // checks the whole body without copying any value out of it.
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
        return Err(ApiError::bad_request("malformed", "The request body is not valid JSON."));
    }
    // PostgreSQL cannot store a NUL character in text (SQLite can): refused here, the same on
    // both backends, instead of failing in the database.
    if has_nul_escape(bytes) {
        return Err(nul_refused());
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(shape_error)
}

/// Parses a JSON value already read (a channel event's payload) as [`parse_json`] parses text:
/// the same 422s naming the field, the same refusal of the NUL character.
pub fn parse_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if holds_nul(&value) {
        return Err(nul_refused());
    }
    serde_path_to_error::deserialize(value).map_err(shape_error)
}

fn nul_refused() -> ApiError {
    ApiError::Invalid(BTreeMap::from([(
        "body".to_owned(),
        vec!["text must not contain the NUL character (\\u0000)".to_owned()],
    )]))
}

/// Whether any string (or key) of a value holds the NUL character.
fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}

/// A parse that failed on the data (not the syntax) as a 422 naming the field: its path and
/// serde's problem with the value hidden.
fn shape_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = field_path(error.path());
    let inner = error.into_inner();
    if inner.classify() != serde_json::error::Category::Data {
        return ApiError::bad_request("malformed", "The request body is not valid JSON.");
    }
    let text = inner.to_string();
    // serde_json's " at line L column C" suffix means nothing to an API client.
    let text = text.split(" at line ").next().unwrap_or(&text);
    let parent = if path == "." || path.is_empty() { None } else { Some(path) };
    let (field, problem) = match text.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`')) {
        Some(name) => (parent.map_or_else(|| name.to_owned(), |p| format!("{p}.{name}")), "is required".to_owned()),
        None => (parent.unwrap_or_else(|| "body".to_owned()), without_values(text)),
    };
    ApiError::Invalid(BTreeMap::from([(field, vec![problem])]))
}

/// The path of the field a problem is in, e.g. `recents[3]` or `apiKeys.groq`. A map's keys are
/// the client's text like its values (a provider key pasted where a provider's name goes), and
/// serde does not tell them from field names: a segment is shown only if it reads as a field
/// name (letters and `_`, at most 40), and as `…` otherwise.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let shown = |name: &str| {
        let field_like =
            !name.is_empty() && name.len() <= 40 && name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
        if field_like { name.to_owned() } else { "…".to_owned() }
    };
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&shown(key));
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// Whether valid JSON text holds a `\u0000` escape in a string (the only way JSON can carry
/// a NUL character). In valid JSON every backslash starts an escape, so each is read with the
/// character after it, and an escaped backslash cannot start another.
fn has_nul_escape(json: &[u8]) -> bool {
    let mut rest = json;
    while let Some(at) = rest.iter().position(|&b| b == b'\\') {
        let escape = &rest[at + 1..];
        if escape.starts_with(b"u0000") {
            return true;
        }
        rest = escape.get(1..).unwrap_or_default();
    }
    false
}

/// serde's message with the offending value hidden, so a password sent in the wrong field
/// is neither echoed back nor logged: "invalid type: string \"…\", expected f64".
/// A value is quoted but written as it came (a string's own `"` escaped, a variant's `` ` `` not),
/// so where it ends cannot be told: all from its opening quote to serde's ", expected" (the last
/// one, as the value may hold those words too) is hidden.
fn without_values(text: &str) -> String {
    let (found, expected) = match text.rsplit_once(", expected") {
        Some((found, expected)) => (found, Some(expected)),
        None => (text, None),
    };
    let mut out = match found.find(['"', '`']) {
        Some(at) => {
            let quote = &found[at..=at];
            format!("{}{quote}…{quote}", &found[..at])
        }
        None => found.to_owned(),
    };
    if let Some(expected) = expected {
        out.push_str(", expected");
        out.push_str(expected);
    }
    out
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized("Missing Authorization: Bearer token."))?;
        state.sessions.authenticate(token).await
    }
}

/// An administrator, from `Authorization: Bearer <admin_token>` (what `POST /admin/session`
/// gave). A person's access token is refused with a 403 that says so.
#[derive(Debug, Clone)]
pub struct AdminAuth(pub crate::admin::Admin);

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized(
            "Missing Authorization: Bearer admin token (sign in with hearth admin login).",
        ))?;
        if !crate::admin::is_admin_token(token) && state.sessions.tokens().verify(token).is_some() {
            return Err(ApiError::Forbidden {
                code: "admin_token_required",
                message: "A person's access token cannot be used on /admin: sign in with hearth admin login.",
            });
        }
        state.admins.authenticate(&*state.store, token, hearth_store::Timestamp::now()).await.map(AdminAuth)
    }
}

/// The token of `Authorization: Bearer <token>`, if the header is there and says so.
fn bearer(parts: &Parts) -> Option<&str> {
    let header = parts.headers.get(axum::http::header::AUTHORIZATION)?;
    let value = header.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim)
}

/// The client's address: the peer, or the first untrusted address in `X-Forwarded-For`
/// when the peer is a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(client_ip(peer, &parts.headers, &state.settings.server.trusted_proxies)))
    }
}

/// Walks `X-Forwarded-For` from the right while addresses are trusted proxies.
pub fn client_ip(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded.into_iter().rev().find(|ip| !trusted.contains(ip)).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        magnification: f64,
    }

    #[test]
    fn nul_characters_are_refused_but_an_escaped_backslash_before_u0000_is_text() {
        assert!(has_nul_escape(br#"{"a":"x\u0000y"}"#));
        assert!(has_nul_escape(br#"{"a":["ok","\\\u0000"]}"#));
        assert!(!has_nul_escape(br#"{"a":"\\u0000"}"#), "a backslash, then the text u0000");
        assert!(!has_nul_escape(br#"{"a":"\u0001","b":"\n\t\""}"#));
        assert!(!has_nul_escape(br#"{"a":"plain"}"#));
        let Err(ApiError::Invalid(fields)) = parse_json::<serde_json::Value>(br#"{"name":"a\u0000b"}"#) else {
            panic!("expected 422");
        };
        assert!(fields["body"][0].contains("NUL"), "{fields:?}");
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_422_without_values() {
        assert!(matches!(parse_json::<Login>(b"{not json"), Err(ApiError::BadRequest { .. })));
        // Truncated after a type error: still malformed, not a 422.
        assert!(matches!(parse_json::<Login>(br#"{"email": 1,"#), Err(ApiError::BadRequest { .. })));
        assert!(matches!(parse_json::<Login>(b"[1,"), Err(ApiError::BadRequest { .. })));
        let Err(ApiError::Invalid(fields)) = parse_json::<Login>(br#"{"email":"a","magnification":"hunter2secret"}"#)
        else {
            panic!("expected 422");
        };
        let problem = &fields["magnification"][0];
        assert!(!problem.contains("hunter2secret"), "{problem}");
        let Err(ApiError::Invalid(fields)) = parse_json::<Login>(br#"{"magnification":1.0}"#) else {
            panic!("expected 422");
        };
        assert_eq!(fields["email"], ["is required"]);
        let Err(ApiError::Invalid(fields)) = parse_json::<Login>(br#"{"email":12345678,"magnification":1}"#) else {
            panic!("expected 422");
        };
        assert!(!fields["email"][0].contains("12345678"), "{fields:?}");
    }

    /// Found by fuzz/'s channel_payloads target: the `\"` inside a string value ended the
    /// hidden part, and a value holding ", expected" split the message inside the value.
    #[test]
    fn a_value_with_a_quote_or_the_word_expected_is_hidden_too() {
        for body in [
            br#"{"email":"a","magnification":"x\"hunter2secret"}"#.as_slice(),
            br#"{"email":"a","magnification":"x, expected hunter2secret"}"#,
            br#"{"email":"a","magnification":"x`hunter2secret"}"#,
        ] {
            let Err(ApiError::Invalid(fields)) = parse_json::<Login>(body) else {
                panic!("expected 422");
            };
            let problem = &fields["magnification"][0];
            assert!(!problem.contains("hunter2secret"), "{problem}");
            assert!(problem.ends_with(", expected f64"), "{problem}");
        }
    }

    #[test]
    fn a_map_key_in_a_field_path_is_shown_only_if_it_reads_as_a_field_name() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Keys {
            keys: BTreeMap<String, String>,
            list: Vec<Login>,
        }
        let secret = br#"{"keys":{"gsk_SECRET0123456789abcdef": 5},"list":[]}"#;
        let Err(ApiError::Invalid(fields)) = parse_json::<Keys>(secret) else { panic!("expected 422") };
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["keys.…"], "{fields:?}");
        let named = br#"{"keys":{"groq": 5},"list":[]}"#;
        let Err(ApiError::Invalid(fields)) = parse_json::<Keys>(named) else { panic!("expected 422") };
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["keys.groq"]);
        let nested = br#"{"keys":{},"list":[{"email":"a","magnification":"x"}]}"#;
        let Err(ApiError::Invalid(fields)) = parse_json::<Keys>(nested) else { panic!("expected 422") };
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["list[0].magnification"]);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.1".parse().expect("header"));
        assert_eq!(client_ip(proxy, &headers, &[proxy]), "203.0.113.9".parse::<IpAddr>().expect("ip"));
        assert_eq!(client_ip(proxy, &headers, &[]), proxy);
    }
}

/// What a path parameter must be, said in a 422 when it is not.
pub trait PathParam: DeserializeOwned + Send {
    /// The problem with a value that does not parse, e.g. "must be a UUID".
    const EXPECTED: &'static str;
}

impl PathParam for Uuid {
    const EXPECTED: &'static str = "must be a UUID";
}

impl PathParam for String {
    const EXPECTED: &'static str = "must be text (valid UTF-8 once percent-decoded)";
}

/// A route's one path parameter. Unlike axum's `Path`, a value that does not parse (not UTF-8,
/// not a UUID where one is expected) is a 422 `invalid` naming the parameter, never a
/// plain-text 400, and the value is not echoed. A well-formed id of nothing the caller may see
/// is the handler's 404: malformed and unknown are told apart the same way on every route.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: PathParam, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        let error = match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => return Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => error.into_kind(),
            Err(other) => return Err(ApiError::internal(format!("path parameters: {other}"))),
        };
        let parameter = match &error {
            ErrorKind::ParseErrorAtKey { key, .. }
            | ErrorKind::InvalidUtf8InPathParam { key }
            | ErrorKind::DeserializeError { key, .. } => key.clone(),
            ErrorKind::ParseError { .. } | ErrorKind::ParseErrorAtIndex { .. } | ErrorKind::Message(_) => {
                only_path_parameter(parts)
            }
            // The route and the handler disagree: our bug, not the client's.
            other => return Err(ApiError::internal(format!("path parameters: {other}"))),
        };
        Err(ApiError::invalid(&parameter, T::EXPECTED))
    }
}

/// The name of the route's (last) path parameter, e.g. `id` for `/api/devices/{id}`.
fn only_path_parameter(parts: &Parts) -> String {
    let route = parts.extensions.get::<axum::extract::MatchedPath>().map(|path| path.as_str().to_owned());
    route
        .as_deref()
        .and_then(|route| route.rsplit('{').next().and_then(|rest| rest.split_once('}')))
        .map_or_else(|| "path".to_owned(), |(name, _)| name.trim_start_matches('*').to_owned())
}

/// A query string. Unlike axum's `Query`, a rejection is an [`ApiError`] (400).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|_| ApiError::bad_request("malformed", "The query string is malformed."))
    }
}
