//! The web client at `/`: the page and its files come from the binary, under a strict
//! Content-Security-Policy, compressed, revalidated by ETag; anything else there is the JSON
//! 404.

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

use crate::harness::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_a_strict_policy_and_links_only_its_own_files() {
    let app = spawn_app().await;
    for path in ["/", &format!("/chat/{}", uuid::Uuid::now_v7())] {
        let page = app.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(page.headers[CONTENT_TYPE], "text/html; charset=utf-8");
        let policy = page.headers[CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        assert!(policy.starts_with("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'"));
        assert!(!policy.contains("unsafe"), "no unsafe-inline or unsafe-eval: {policy}");
        assert!(page.text.contains(r#"<script type="module" src="/js/app.js"></script>"#));
        assert!(!page.text.contains("http://") && !page.text.contains("https://"), "nothing from elsewhere");
    }
    for (path, content_type) in [
        ("/js/app.js", "text/javascript; charset=utf-8"),
        ("/js/e2e.js", "text/javascript; charset=utf-8"),
        ("/css/app.css", "text/css; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml; charset=utf-8"),
    ] {
        let file = app.get(path).await;
        assert_eq!(file.status, StatusCode::OK, "{path}");
        assert_eq!(file.headers[CONTENT_TYPE], content_type, "{path}");
        assert_eq!(file.headers[CACHE_CONTROL], "no-cache", "{path}");
        assert!(!file.text.is_empty());
    }
    // Every module the page imports, at once (`from "./x.js"`) or when needed (`import("./x.js")`),
    // and every module those import, is served.
    let mut to_visit = vec!["/js/app.js".to_owned()];
    let mut served = std::collections::BTreeSet::new();
    while let Some(path) = to_visit.pop() {
        if !served.insert(path.clone()) {
            continue;
        }
        let module = app.get(&path).await;
        assert_eq!(module.status, StatusCode::OK, "{path}");
        for import in module.text.split("\"./").skip(1).filter_map(|rest| rest.split('"').next()) {
            to_visit.push(format!("/js/{import}"));
        }
    }
    for module in ["/js/signin.js", "/js/client.js", "/js/account.js", "/js/keys.js", "/js/phoenix.js"] {
        assert!(served.contains(module), "{module} is not reached from app.js: {served:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_revalidate_by_etag_and_unknown_ones_are_the_json_404() {
    let app = spawn_app().await;
    let first = app.get("/js/e2e.js").await;
    let etag = first.headers[ETAG].clone();
    let again =
        app.send(app.request(reqwest::Method::GET, "/js/e2e.js", None).header(IF_NONE_MATCH, etag.clone())).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers[ETAG], etag);
    assert!(again.text.is_empty());
    assert_ne!(app.get("/css/app.css").await.headers[ETAG], etag, "each file has its own");

    for path in ["/js/nope.js", "/js/../Cargo.toml", "/js/%2e%2e%2fCargo.toml", "/css/", "/index.htm", "/chat/"] {
        let missing = app.get(path).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(missing.json["error"], "not_found", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_sent_compressed_to_browsers_that_accept_it() {
    use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, VARY};
    use std::io::Read as _;

    let app = spawn_app().await;
    let fetch = |path: &'static str, accept: Option<&'static str>| {
        let mut request = app.request(reqwest::Method::GET, path, None);
        if let Some(accept) = accept {
            request = request.header(ACCEPT_ENCODING, accept);
        }
        async move { request.send().await.expect("the server answers") }
    };
    for path in ["/", "/js/client.js", "/js/e2e.js", "/css/app.css"] {
        let plain = fetch(path, None).await;
        assert_eq!(plain.headers().get(CONTENT_ENCODING), None, "{path}");
        let plain = plain.bytes().await.expect("body");

        let brotli = fetch(path, Some("br, gzip")).await;
        assert_eq!(brotli.headers()[CONTENT_ENCODING], "br", "{path}");
        assert!(brotli.headers()[VARY].to_str().expect("ascii").to_lowercase().contains("accept-encoding"));
        let compressed = brotli.bytes().await.expect("body");
        // The modules are large enough for brotli to shrink them well; the page is small.
        let at_most = if path.starts_with("/js/") { plain.len() * 35 / 100 } else { plain.len() - 1 };
        assert!(compressed.len() <= at_most, "{path}: {} of {} bytes", compressed.len(), plain.len());
        let mut unpacked = Vec::new();
        brotli::Decompressor::new(&compressed[..], 4096).read_to_end(&mut unpacked).expect("valid brotli");
        assert_eq!(unpacked, plain, "{path}");

        let gzip = fetch(path, Some("gzip")).await;
        assert_eq!(gzip.headers()[CONTENT_ENCODING], "gzip", "{path}");
        let compressed = gzip.bytes().await.expect("body");
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..]).read_to_end(&mut unpacked).expect("valid gzip");
        assert_eq!(unpacked, plain, "{path}");
    }
    // The API is not compressed by this layer: its replies are small and some are streamed.
    let health = fetch("/health", Some("br, gzip")).await;
    assert_eq!(health.headers().get(CONTENT_ENCODING), None);
}
