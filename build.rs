//! Marks the tests that need `../shared` (the old tool's files, other
//! writers' files, the Carbon Data Explorer's server) as ignored, with the
//! reason, when that folder is not beside the checkout: a run without it
//! says so in its closing line instead of counting them as passed. With
//! `CI=true` they are never ignored: a missing folder fails those tests.
//! (Python and MongoDB are the features `python-tests` and
//! `mongodb-tests`, see Cargo.toml.)

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_shared)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let root = Path::new(&manifest);
    let shared = root.join("../shared/fixtures");
    // The parent folder changes when `shared` appears or goes.
    println!("cargo::rerun-if-changed={}", root.join("..").display());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !shared.is_dir() && !ci {
        println!("cargo::rustc-cfg=no_shared");
    }
}
