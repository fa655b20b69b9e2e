//! Any bytes as a NetCDF file (NetCDF-3 or NetCDF-4), through a temporary
//! file as `manage load` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    manage_fuzz::contain_parser_panics();
    manage_fuzz::open_and_read(data, "input.nc");
});
