//! `erpos openapi` prints the API's OpenAPI document without a server or a database, the
//! same document `/api/v1/openapi.json` serves: CI generates the TypeScript client from it
//! (`clients/typescript`, issue 12).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn erpos_openapi_prints_the_served_document_and_touches_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_erpos"))
        .arg("openapi")
        .current_dir(dir.path())
        // Whatever database the environment names is not opened.
        .env("ERPOS_DATABASE", "postgres://nobody@127.0.0.1:1/none")
        .env("ERPOS_LOG", "warn")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let served = erpos_http::openapi_document();
    assert_eq!(printed, served, "the printed document is the served one");
    assert!(
        printed["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.")
    );
    assert!(
        printed["paths"]["/api/v1/records/{item}"].is_object(),
        "{}",
        printed["paths"]
    );
    // No database file, no log file: it only prints.
    assert_eq!(
        std::fs::read_dir(dir.path())?.count(),
        0,
        "files were created"
    );
    Ok(())
}
