//! Any bytes as an HDF5 or MATLAB v7.3 file, through a temporary file as
//! `manage load` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    manage_fuzz::contain_parser_panics();
    manage_fuzz::open_and_read(data, "input.h5");
});
