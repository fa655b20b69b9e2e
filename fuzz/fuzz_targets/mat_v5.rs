//! Any bytes given as a `.mat` file: opening and reading must end in a
//! matrix or an error, never a panic that escapes, a hang or an unbounded
//! allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `manage` contains panics of the MAT parser it uses and reports them as
    // a damaged file (see source/matv5.rs); only a panic that escapes is a
    // crash, which libfuzzer-sys's own catch turns into an abort.
    manage_fuzz::contain_parser_panics();
    manage_fuzz::open_and_read(data, "input.mat");
});
