//! The web console (issue 15) inside the binary: the bundle `build.rs` builds from
//! `applications/console` is embedded at compile time and handed to the HTTP router, which
//! serves it at `/`. Nothing is read from disk or fetched at run time.

use erpos_http::assets::{Asset, Assets};

/// The built bundle (`index.html`, `assets/…`).
#[derive(rust_embed::Embed)]
#[folder = "console/dist/"]
struct Bundle;

/// The console's files, for [`erpos_http::router_with`].
pub struct Console;

impl Assets for Console {
    fn get(&self, path: &str) -> Option<Asset> {
        let file = Bundle::get(path)?;
        let etag = file
            .metadata
            .sha256_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        Some(Asset {
            media_type: file.metadata.mimetype().to_owned().into(),
            bytes: file.data,
            etag: Some(etag),
        })
    }
}
