//! Any bytes given as a `.mat` file that starts with a plausible MAT v4
//! variable header: opening and reading must end in a matrix or an error,
//! never a panic, a hang or an unbounded allocation. The input is prefixed
//! with a valid header when it lacks one, so that the fuzzer spends its time
//! inside the v4 reader rather than in format detection.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = Vec::with_capacity(data.len() + 22);
    if data.len() < 20 || data[..4] != [0, 0, 0, 0] {
        // type 0 (little-endian double, full), 2 × 3, real, name "m".
        for v in [0i32, 2, 3, 0, 2] {
            bytes.extend(v.to_le_bytes());
        }
        bytes.extend(b"m\0");
    }
    bytes.extend_from_slice(data);
    manage_fuzz::open_and_read(&bytes, "input.mat");
});
