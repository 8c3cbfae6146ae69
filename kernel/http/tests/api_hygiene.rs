//! API hygiene over the real router: health, the OpenAPI document, one JSON error shape for
//! unknown paths, wrong methods, wrong content types, malformed JSON and oversized bodies,
//! and request ids on every response.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{each_backend, patient_def};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

async fn raw(
    app: &common::TestApp,
    req: Request<Body>,
) -> anyhow::Result<(StatusCode, axum::http::HeaderMap, Value)> {
    let res = app.router.clone().oneshot(req).await?;
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await?.to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)?
    };
    Ok((status, headers, body))
}

fn assert_error_shape(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["details"].is_array(), "{body}");
}

#[tokio::test]
async fn health_and_openapi() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (status, body) = app.call("GET", "/healthz", None).await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["database"], app.backend);
        let (status, doc) = app.call("GET", "/api/v1/openapi.json", None).await?;
        assert_eq!(status, StatusCode::OK);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for path in [
            "/api/v1/data-items",
            "/api/v1/data-items/{name}/migration",
            "/api/v1/records/{item}/{id}",
            "/healthz",
        ] {
            assert!(
                doc["paths"][path].is_object(),
                "{path} missing from the OpenAPI document"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn every_error_has_the_one_shape() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        let (status, _, body) =
            raw(&app, Request::get("/api/v1/nothing").body(Body::empty())?).await?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_error_shape(&body, "not_found");

        let (status, _, body) = raw(
            &app,
            Request::put("/api/v1/records/huanzhe").body(Body::empty())?,
        )
        .await?;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_error_shape(&body, "method_not_allowed");

        let (status, _, body) = raw(
            &app,
            Request::post("/api/v1/records/huanzhe").body(Body::from("{}"))?,
        )
        .await?;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_error_shape(&body, "unsupported_media_type");

        let req = Request::post("/api/v1/records/huanzhe")
            .header("content-type", "application/json")
            .body(Body::from("{\"xingming\": "))?;
        let (status, _, body) = raw(&app, req).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_error_shape(&body, "malformed_json");

        let huge = json!({"xingming": "张".repeat(3 * 1024 * 1024)}).to_string();
        let req = Request::post("/api/v1/records/huanzhe")
            .header("content-type", "application/json")
            .body(Body::from(huge))?;
        let (status, _, body) = raw(&app, req).await?;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_error_shape(&body, "payload_too_large");
        assert_eq!(app.count_rows("huanzhe").await?, 0);

        let (status, body) = app
            .call(
                "POST",
                "/api/v1/data-items/huanzhe/migration",
                Some(json!({"confirm_destructive": "yes"})),
            )
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_error_shape(&body, "validation_failed");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn responses_carry_a_request_id() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (_, headers, _) = raw(&app, Request::get("/healthz").body(Body::empty())?).await?;
        assert!(headers.get("x-request-id").is_some());
        let req = Request::get("/healthz")
            .header("x-request-id", "front-desk-42")
            .body(Body::empty())?;
        let (_, headers, _) = raw(&app, req).await?;
        assert_eq!(headers.get("x-request-id").unwrap(), "front-desk-42");
        Ok(())
    })
    .await
}
