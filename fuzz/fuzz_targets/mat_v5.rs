//! Any bytes given as a `.mat` file: opening and reading must end in a
//! matrix or an error, never a panic that escapes, a hang or an unbounded
//! allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // MAT v5 is read by `manage`'s own code, which must not panic; an
    // input may also be told as another format, whose library's panics
    // `manage` contains and reports as a damaged file. Only a panic that
    // escapes is a crash, which libfuzzer-sys's own catch turns into an
    // abort.
    manage_fuzz::contain_parser_panics();
    manage_fuzz::open_and_read(data, "input.mat");
});
