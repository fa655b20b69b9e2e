//! Any bytes as a JSON config file, then every typed accessor the models use.
#![no_main]

use fluxpy::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.json");
    std::fs::write(&path, data).unwrap();
    let mut c = Config::new();
    if c.push_file(&path).is_ok() {
        let _ = c.string("timestamp").map(|t| t.map(|t| fluxpy::config::parse_timestamp(&t)));
        let _ = c.seconds(&["step", "steps"]);
        let _ = c.seconds(&["span", "spans"]);
        let _ = c.unsigned("precision", 15);
        let _ = c.string_list("columns");
        let _ = c.object(&["gridres", "grid"]);
        let _ = c.unknown_keys(fluxpy::model::is_known_key);
        // Every model built from it, as `load` does after reading the file.
        for &kind in fluxpy::model::ModelKind::ALL {
            let mut layered = Config::new().for_file(&dir.path().join("Kriged_20090615_x.mat"));
            layered.push("defaults", kind.defaults());
            layered.push_file(&path).unwrap();
            let _ = kind.build("fuzz", &layered);
        }
    }
});
