//! OpenAI image generations, and the fake's own URLs for the images it hands out.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use super::{AppState, admit, openai, read_json, recorded, unix_seconds};
use crate::Provider;
use crate::body::{self, Ending};
use crate::failure::Failure;
use crate::png;

/// The most images one request may ask for.
const MAX_IMAGES: u64 = 10;

/// An image generation request body (`size` and other fields are accepted and ignored:
/// every image is 8×8).
#[derive(Debug, Deserialize)]
struct ImageRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    n: Option<u64>,
    #[serde(default)]
    response_format: Option<String>,
}

/// How the images are handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Inline, base64-encoded.
    Base64,
    /// As a URL on the fake.
    Url,
}

impl ImageRequest {
    fn validated(self) -> Result<ImageRequest, Failure> {
        if self.prompt.as_deref().is_none_or(str::is_empty) {
            return Err(Failure::invalid_field("prompt", "Missing required parameter: 'prompt'."));
        }
        if let Some(n) = self.n
            && !(1..=MAX_IMAGES).contains(&n)
        {
            return Err(Failure::invalid_field("n", format!("Invalid 'n': {n} is not between 1 and {MAX_IMAGES}.")));
        }
        if let Some(format) = self.response_format.as_deref()
            && format != "url"
            && format != "b64_json"
        {
            return Err(Failure::invalid_field(
                "response_format",
                format!("Invalid value: '{format}'. Supported values are: 'url' and 'b64_json'."),
            ));
        }
        Ok(self)
    }

    /// `gpt-image-*` models always answer in base64; other (dall-e) models follow
    /// `response_format`, whose default is `url`, as OpenAI's is.
    fn format(&self) -> Format {
        let gpt_image = self.model.as_deref().is_some_and(|m| m.starts_with("gpt-image"));
        if gpt_image || self.response_format.as_deref() == Some("b64_json") { Format::Base64 } else { Format::Url }
    }
}

/// # POST /openai/v1/images/generations
pub(super) async fn generate(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let credentials = openai::bearer(&parts);
    let images = read_json::<ImageRequest>(body).await.and_then(ImageRequest::validated);
    if let Some(mut record) = recorded(&state, Provider::OpenAi, &parts, &credentials) {
        if let Ok(images) = &images {
            record.model = images.model.clone();
            record.last_user_text = images.prompt.clone();
        }
        state.recorder.push(record);
    }

    let model = match &images {
        Ok(ImageRequest { model: Some(model), .. }) => model.clone(),
        _ => "dall-e-2".to_owned(),
    };
    let refuse = |f: &Failure| openai::failure(Provider::OpenAi, f, &model);
    let ending = match admit(&credentials, false, refuse).await {
        Ok(ending) => ending,
        Err(response) => return response,
    };
    let images = match images {
        Ok(images) => images,
        Err(f) => return openai::failure(Provider::OpenAi, &f, &model),
    };

    let prompt = images.prompt.as_deref().unwrap_or_default();
    let root = parts
        .headers
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .map_or_else(|| "http://127.0.0.1".to_owned(), |host| format!("http://{host}"));
    let data: Vec<_> = (0..images.n.unwrap_or(1))
        .map(|index| {
            let seed = png::seed(prompt, index);
            match images.format() {
                Format::Base64 => json!({
                    "b64_json": STANDARD.encode(png::render(seed)),
                    "revised_prompt": prompt,
                }),
                Format::Url => json!({
                    "url": format!("{root}/_fake/images/{seed:016x}.png"),
                    "revised_prompt": prompt,
                }),
            }
        })
        .collect();
    let answer = json!({"created": unix_seconds(), "data": data});
    match ending {
        Ending::Truncated => body::cut_json(&answer),
        _ => body::json(StatusCode::OK, &answer),
    }
}

/// # GET /_fake/images/{seed}.png
///
/// Serves an image handed out by URL. Images are regenerated from the seed in the name, so
/// nothing is stored and every URL stays valid.
pub(super) async fn png(Path(file): Path<String>) -> Response {
    let seed =
        file.strip_suffix(".png").filter(|hex| hex.len() == 16).and_then(|hex| u64::from_str_radix(hex, 16).ok());
    match seed {
        Some(seed) => (StatusCode::OK, [(CONTENT_TYPE, "image/png")], png::render(seed)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
