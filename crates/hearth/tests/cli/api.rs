//! A small JSON client for hearth's API.

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Talks JSON to one server.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    /// A client for the server at `base` (`http://127.0.0.1:PORT`).
    pub fn new(client: reqwest::Client, base: &str) -> Self {
        Self { client, base: base.to_owned() }
    }

    /// Sends a request (with a bearer token and a JSON body when given) and returns the
    /// status and the JSON reply (`Null` when the body is empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_else(|e| panic!("{method} {path}: body: {e}"));
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {bytes:?}"))
        };
        (status, json)
    }

    /// Calls and asserts the status.
    pub async fn expect(
        &self,
        status: u16,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let (got, json) = self.call(method.clone(), path, token, body).await;
        assert_eq!(got.as_u16(), status, "{method} {path} answered {got}: {json}");
        json
    }
}

/// A session reply's access and refresh tokens.
pub fn tokens(session: &Value) -> (String, String) {
    let access = session["auth_token"].as_str().unwrap_or_else(|| panic!("no auth_token in {session}"));
    let refresh = session["refresh_token"].as_str().unwrap_or_else(|| panic!("no refresh_token in {session}"));
    (access.to_owned(), refresh.to_owned())
}
