//! Any bytes given as a `.mat` file: opening and reading must end in a
//! matrix or an error, never a panic, a hang or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.mat");
    std::fs::write(&path, data).unwrap();
    if let Ok(mut m) = fluxpy::source::open(&path, None) {
        let cols = m.info().cols;
        let _ = m.read_columns(0, cols);
    }
});
