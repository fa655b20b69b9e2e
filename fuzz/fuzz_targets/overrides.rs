//! Any text as `-o "k=v;k=v"`, and any text as a timestamp.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = fluxpy::config::parse_overrides(s);
        let _ = fluxpy::config::parse_timestamp(s);
    }
});
