//! The web client at `/`: the page and its files come from the binary, under a strict
//! Content-Security-Policy, revalidated by ETag; anything else there is the JSON 404.

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
    // Every module the page imports is served.
    let app_js = app.get("/js/app.js").await.text;
    for import in app_js.lines().filter_map(|l| l.strip_prefix("import ")).filter_map(|l| l.split('"').nth(1)) {
        let path = format!("/js/{}", import.trim_start_matches("./"));
        assert_eq!(app.get(&path).await.status, StatusCode::OK, "{path}");
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
