//! The web console the binary embeds (issue 15): it is built against the API as it is now,
//! and the router serves it at `/` beside the API without changing the API's answers.
//! (Its pages are tested in a real Chromium by .ci/console.sh.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The console's types are generated from `applications/console/openapi.json` when the
/// binary is built: that file must be the document the API serves, or an API change could
/// break the console unseen.
#[test]
fn the_console_is_built_against_the_served_document() -> anyhow::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/console/openapi.json");
    let kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    assert!(
        kept == erpos_http::openapi_document(),
        "applications/console/openapi.json is not the API's document: run \
         `ERPOS_CONSOLE=skip cargo run -- openapi > applications/console/openapi.json` \
         (skip: the console is built against the old document until then), then build \
         (the console's type check tells what the change broke)"
    );
    Ok(())
}

async fn get(router: &axum::Router, path: &str) -> anyhow::Result<(StatusCode, String, String)> {
    let res = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty())?)
        .await?;
    let status = res.status();
    let kind = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = String::from_utf8_lossy(&res.into_body().collect().await?.to_bytes()).into_owned();
    Ok((status, kind, body))
}

#[tokio::test]
async fn the_console_is_served_at_the_root_and_the_api_stays_the_api() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().join("console.db").display());
    let kernel = erpos_kernel::Kernel::open(&url).await?;
    let router =
        erpos_http::router_with(kernel, Some(Arc::new(erpos_applications::console::Console)));
    let (status, kind, page) = get(&router, "/").await?;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(page.contains("<div id=\"root\">"), "{page}");
    // A page of the console reloads to the console; its script is served with its type.
    let (status, _, again) = get(&router, "/records/patient").await?;
    assert_eq!((status, again == page), (StatusCode::OK, true));
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page names its script");
    let (status, kind, _) = get(&router, script).await?;
    assert_eq!(status, StatusCode::OK, "{script}");
    assert!(kind.contains("javascript"), "{kind}");
    // The API's own answers do not change: unknown paths under /api are its JSON errors,
    // and a missing file is not answered with the page.
    let (status, kind, body) = get(&router, "/api/v1/no-such-thing").await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(kind.starts_with("application/json"), "{kind}");
    let (status, kind, _) = get(&router, "/favicon.ico").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(kind.starts_with("application/json"), "{kind}");
    Ok(())
}
