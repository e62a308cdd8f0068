//! The error statuses every operation of the OpenAPI document can answer, added where they
//! arise rather than by hand on each handler: they come from the extractors and middleware all
//! handlers share, so a handler's own `responses(…)` lists only what its rules answer (409,
//! 429, 503, …). What an operation can answer follows from what it takes:
//!
//! - a JSON body: 400 `malformed` (not JSON, not `application/json`), 413 (over the body
//!   limit), 422 `invalid` (a field of the wrong shape or value);
//! - a path parameter: 422 `invalid` (malformed id), 404 (a well-formed id of nothing the
//!   caller may see);
//! - a query string: 400 `malformed` (a repeated or unparsable parameter), 422 `invalid`;
//! - a bearer token: 401.
//!
//! Every 429 carries `Retry-After` (seconds), and every error is an [`ErrorBody`].
//!
//! [`ErrorBody`]: crate::error::ErrorBody

use utoipa::Modify;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

/// Adds the shared error statuses to every operation (see the module's documentation).
#[derive(Debug)]
pub struct DocumentedErrors;

impl Modify for DocumentedErrors {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                document(operation);
            }
        }
    }
}

fn document(operation: &mut Operation) {
    let takes = |place: ParameterIn| {
        operation.parameters.iter().flatten().any(|parameter| match parameter {
            RefOr::T(parameter) => parameter.parameter_in == place,
            RefOr::Ref(_) => false,
        })
    };
    let (body, path, query) = (operation.request_body.is_some(), takes(ParameterIn::Path), takes(ParameterIn::Query));
    let secured = operation.security.as_ref().is_some_and(|requirements| !requirements.is_empty());
    let mut add = |status: &str, description: &str| {
        operation.responses.responses.entry(status.to_owned()).or_insert_with(|| error(description).into());
    };
    if body || query {
        add("400", "`malformed`: the body is not JSON (or not `application/json`), or the query string does not parse");
    }
    if secured {
        add("401", "`unauthorized`: no bearer token, or one that is expired or revoked");
    }
    if path {
        add("404", "`not_found`: nothing the caller may see has that id");
    }
    if body {
        add("413", "`payload_too_large`: the body is over 1 MiB");
    }
    if body || path || query {
        add("422", "`invalid`: `fields` names each field (or parameter) and what is wrong with it");
    }
    for (status, response) in &mut operation.responses.responses {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            response.description = default_description(status).to_owned();
        }
    }
    // Whatever the handler said of its 429, the header is always there.
    if let Some(RefOr::T(limited)) = operation.responses.responses.get_mut("429") {
        let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).build();
        let retry_after =
            HeaderBuilder::new().schema(Some(seconds)).description(Some("Seconds until a retry can succeed")).build();
        limited.headers.insert("Retry-After".to_owned(), retry_after.into());
        if limited.content.is_empty() {
            limited.content = error(&limited.description).content;
        }
    }
}

/// What a status means when a handler's `responses(…)` did not say (OpenAPI requires every
/// response to have a description).
fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "success",
        "201" => "created",
        "204" => "done (no body)",
        "400" => "`malformed` or another code saying what is wrong with the request",
        "401" => "`unauthorized`: missing, wrong, expired or revoked credentials",
        "404" => "`not_found`",
        "409" => "conflicts with what exists",
        "422" => "`invalid`: `fields` names each field and what is wrong with it",
        "429" => "too many requests: retry after `Retry-After` seconds",
        "502" | "503" | "504" => "the AI providers behind hearth did not answer",
        _ => "see the operation's description",
    }
}

/// An error response: its description and an [`ErrorBody`](crate::error::ErrorBody).
fn error(description: &str) -> Response {
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    ResponseBuilder::new().description(description).content("application/json", body).build()
}
