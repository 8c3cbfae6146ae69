//! Builds the web console (applications/console, issue 15) before the binary that embeds
//! it: `npm ci` when its packages are missing or older than the lock file, then `npm run
//! build` (the API types generated from console/openapi.json, `tsc`, `vite build`), so the
//! README's one run command builds and serves the console on a fresh machine with Node 20
//! and npm. A type error in the console — an API change that breaks it — fails the build.
//!
//! `ERPOS_CONSOLE=skip` builds the binary without running npm (the console then answers a
//! page saying how to build it): for a machine without Node, never for a release.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the console's build reads: a change to any of them builds it again.
const INPUTS: &[&str] = &[
    "src",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
    "openapi.json",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let console = manifest.join("console");
    for input in INPUTS {
        println!("cargo:rerun-if-changed=console/{input}");
    }
    println!("cargo:rerun-if-env-changed=ERPOS_CONSOLE");
    let dist = console.join("dist");
    if std::env::var("ERPOS_CONSOLE").as_deref() == Ok("skip") {
        if !dist.join("index.html").exists() {
            placeholder(&dist);
        }
        println!("cargo:warning=ERPOS_CONSOLE=skip: the console was not built");
        return;
    }
    if stale_packages(&console) {
        npm(
            &console,
            &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
        );
    }
    npm(&console, &["run", "--silent", "build"]);
}

/// Whether `npm ci` must run: no installed packages, or a lock file newer than them.
fn stale_packages(console: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&console.join("node_modules/.package-lock.json"));
    let locked = modified(&console.join("package-lock.json"));
    match (installed, locked) {
        (Some(i), Some(l)) => i < l,
        _ => true,
    }
}

/// Runs npm in `dir`, failing the build with its output when it fails.
fn npm(dir: &Path, args: &[&str]) {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let out = Command::new(npm).args(args).current_dir(dir).output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "building the web console failed: `npm {}` in {}\n{}\n{}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "building the web console needs Node 20 and npm ({e}); install them, or set \
             ERPOS_CONSOLE=skip to build erpos without its console"
        ),
    }
}

/// A page in place of the console when it was not built.
fn placeholder(dist: &Path) {
    let page = "<!doctype html><meta charset=\"utf-8\"><title>erpos</title>\
        <p>This erpos was built with ERPOS_CONSOLE=skip: its console was not built. \
        Build it with Node 20 and npm installed (cargo build). The API is at /api/v1.</p>";
    if let Err(e) =
        std::fs::create_dir_all(dist).and_then(|()| std::fs::write(dist.join("index.html"), page))
    {
        panic!("writing {}: {e}", dist.display());
    }
}
