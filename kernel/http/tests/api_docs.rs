//! The API reference page (`GET /api/v1/docs`, issue 12): public, served from the binary
//! (Swagger UI vendored in `kernel/assets/swagger-ui`), every file it loads served from
//! this origin under a Content-Security-Policy that allows nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::each_backend;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// A GET with no credentials, as a browser opening the page sends it: status, headers and
/// the body as text.
async fn get(
    app: &common::TestApp,
    path: &str,
) -> anyhow::Result<(StatusCode, axum::http::HeaderMap, String)> {
    let res = app
        .bare
        .clone()
        .oneshot(Request::get(path).body(Body::empty())?)
        .await?;
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await?.to_bytes();
    Ok((status, headers, String::from_utf8(bytes.to_vec())?))
}

/// The `src="…"` and `href="…"` values of a page.
fn links(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for piece in page.split(attr).skip(1) {
            if let Some((link, _)) = piece.split_once('"') {
                out.push(link.to_owned());
            }
        }
    }
    out
}

#[tokio::test]
async fn the_reference_page_and_every_file_it_loads_are_served_without_credentials()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        let (s, headers, page) = get(&app, "/api/v1/docs").await?;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert!(page.contains("id=\"swagger-ui\""), "{page}");
        let csp = headers["content-security-policy"].to_str()?;
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        assert!(
            !csp.contains("http"),
            "the page may load from this origin only: {csp}"
        );

        // Every file the page links is relative (served here, under any prefix) and served.
        let linked = links(&page);
        assert!(linked.len() >= 3, "{linked:?}");
        for link in &linked {
            assert!(!link.contains("//"), "{link} is not on this origin");
            let (s, headers, body) = get(&app, &format!("/api/v1/{link}")).await?;
            assert_eq!(s, StatusCode::OK, "{link}");
            let ctype = headers["content-type"].to_str()?;
            let want = if link.ends_with(".css") {
                "text/css"
            } else {
                "text/javascript"
            };
            assert!(ctype.starts_with(want), "{link}: {ctype}");
            assert_eq!(headers["x-content-type-options"], "nosniff", "{link}");
            assert!(body.len() > 100, "{link}: {} bytes", body.len());
        }
        // The page renders this server's own document, which is public too.
        let (_, _, init) = get(&app, "/api/v1/docs/init.js").await?;
        assert!(init.contains("url: \"openapi.json\""), "{init}");
        assert!(init.contains("validatorUrl: null"), "{init}");
        let (s, _, doc) = get(&app, "/api/v1/openapi.json").await?;
        assert_eq!(s, StatusCode::OK);
        let doc: serde_json::Value = serde_json::from_str(&doc)?;
        assert!(
            doc["paths"]["/api/v1/docs"]["get"].is_object(),
            "the page is documented"
        );

        // Nothing else is served from there: an unknown name is the JSON 404.
        for name in [
            "index.html",
            "swagger-ui-bundle.js.map",
            "..%2F..%2FCargo.toml",
            "%FF",
        ] {
            let (s, headers, body) = get(&app, &format!("/api/v1/docs/{name}")).await?;
            assert!(
                s == StatusCode::NOT_FOUND || s == StatusCode::BAD_REQUEST,
                "{name}: {s}"
            );
            assert_eq!(
                headers["content-type"], "application/json",
                "{name}: {body}"
            );
            let body: serde_json::Value = serde_json::from_str(&body)?;
            assert!(body["error"]["code"].is_string(), "{name}: {body}");
        }
        Ok(())
    })
    .await
}
