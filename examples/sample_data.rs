//! Writes the project's `sample-data/`: a synthetic SpatioTemporalMatrix
//! (1° North America, one day of 3-hourly steps) as a MATLAB v5 file with
//! its JSON config.
//!
//!     cargo run --release --example sample_data [-- DIR]

use std::path::PathBuf;

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample-data"));
    if let Err(e) = fluxpy::synth::Sample::write(&dir) {
        eprintln!("sample_data: {e}");
        std::process::exit(1);
    }
    println!("wrote {}", dir.join(fluxpy::synth::Sample::MAT).display());
}
