//! Marks the tests that need the old tool's fixtures as ignored (with the
//! reason) when `../shared/fixtures/fluxpy` is not there, so that a run
//! without them says so instead of counting them as passed. With `CI=true`
//! they are never ignored: a missing fixture folder fails those tests.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_fixtures)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let root = Path::new(&manifest);
    let fixtures = root.join("../shared/fixtures/fluxpy");
    // The parent folder changes when `shared` appears or goes; the folder
    // itself when files are added to it.
    println!("cargo::rerun-if-changed={}", root.join("..").display());
    if fixtures.is_dir() {
        println!("cargo::rerun-if-changed={}", fixtures.display());
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !fixtures.is_dir() && !ci {
        println!("cargo::rustc-cfg=no_fixtures");
    }
}
