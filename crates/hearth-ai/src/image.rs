//! Image generation (OpenAI's images API). The image comes back as bytes that hearth stores
//! itself; a provider's expiring URL is fetched at once and never handed on.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt as _;
use serde_json::Value;

use crate::wire::{failure_from_response, image_request, transport_failure};
use crate::{ApiKey, FailureClass, ProviderFailure, ProviderName, ProviderSettings};

/// Largest image accepted from a provider.
const MAX_IMAGE_BYTES: usize = 20 * 1024 * 1024;

/// A generated image.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedImage {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// Its media type, from its signature: `image/png`, `image/jpeg` or `image/webp`.
    pub content_type: &'static str,
    /// The prompt as the provider rewrote it, if it did.
    pub revised_prompt: Option<String>,
}

impl std::fmt::Debug for GeneratedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedImage")
            .field("bytes", &self.bytes.len())
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// Asks `provider` for one image of `prompt`.
pub(crate) async fn generate(
    http: &reqwest::Client,
    provider: ProviderName,
    settings: &ProviderSettings,
    key: &ApiKey,
    prompt: &str,
) -> Result<GeneratedImage, ProviderFailure> {
    let model = settings.image_model.as_deref().ok_or(ProviderFailure::new(FailureClass::UnsupportedModel))?;
    let response = image_request(http, settings, model, key, prompt).send().await.map_err(transport_failure)?;
    if !response.status().is_success() {
        return Err(failure_from_response(provider, key, response).await);
    }
    let body = read_bounded(response).await?;
    let json: Value = serde_json::from_slice(&body).map_err(|_| ProviderFailure::new(FailureClass::UpstreamError))?;
    let first = json.pointer("/data/0").ok_or(ProviderFailure::new(FailureClass::UpstreamError))?;
    let revised_prompt = first.get("revised_prompt").and_then(Value::as_str).map(str::to_owned);
    let bytes = if let Some(encoded) = first.get("b64_json").and_then(Value::as_str) {
        STANDARD.decode(encoded).map_err(|_| ProviderFailure::new(FailureClass::UpstreamError))?
    } else if let Some(url) = first.get("url").and_then(Value::as_str) {
        // An expiring provider URL: fetch it now, without the key (it is a signed URL).
        let response = http.get(url).send().await.map_err(transport_failure)?;
        if !response.status().is_success() {
            return Err(ProviderFailure::new(FailureClass::UpstreamError).with_status(response.status().as_u16()));
        }
        read_bounded(response).await?
    } else {
        return Err(ProviderFailure::new(FailureClass::UpstreamError));
    };
    let content_type = image_type(&bytes).ok_or(ProviderFailure::new(FailureClass::UpstreamError))?;
    Ok(GeneratedImage { bytes, content_type, revised_prompt })
}

async fn read_bounded(response: reqwest::Response) -> Result<Vec<u8>, ProviderFailure> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(transport_failure)?;
        if body.len() + chunk.len() > MAX_IMAGE_BYTES {
            return Err(ProviderFailure::new(FailureClass::UpstreamError));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The media type of an encoded image, by its signature.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}
