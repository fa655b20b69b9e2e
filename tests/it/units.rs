//! `units_to`: values converted at load with UDUNITS-2, against
//! netCDF4-python's reading of the same file times the factor computed
//! here; units that do not convert, and appends with another conversion,
//! refused.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::Env;
use serde_json::Value;

/// Writes a 3-step CF grid of fluxes in mol m-2 s-1 (order 1e-6, every
/// digit used, one missing cell) to argv[1] and prints the values as
/// netCDF4-python reads them, step by step, cells in the file's order
/// (latitude rows of longitudes), missing as null.
const SCRIPT: &str = r#"
import json, sys
import numpy as np, netCDF4
path = sys.argv[1]
ds = netCDF4.Dataset(path, "w", format="NETCDF4")
ds.createDimension("time", None)
ds.createDimension("lat", 5)
ds.createDimension("lon", 8)
t = ds.createVariable("time", "f8", ("time",))
t.units = "hours since 2010-01-01 00:00:00"
la = ds.createVariable("lat", "f8", ("lat",))
la.units = "degrees_north"
la[:] = [-20.0, -10.0, 0.0, 10.0, 20.0]
lo = ds.createVariable("lon", "f8", ("lon",))
lo.units = "degrees_east"
lo[:] = np.arange(8) * 10.0
v = ds.createVariable("flux", "f8", ("time", "lat", "lon"), fill_value=-1e34)
v.units = "mol m-2 s-1"
data = np.random.default_rng(11).standard_normal((3, 5, 8)) * 3e-6
data[1, 2, 3] = -1e34
v[:] = data
t[:] = [0.0, 3.0, 6.0]
ds.close()
back = netCDF4.Dataset(path)["flux"][:]
print(json.dumps([[None if m else float(x) for x, m in
                   zip(step.data.ravel(), np.ma.getmaskarray(step).ravel())]
                  for step in back]))
"#;

fn write_file(path: &Path) -> Vec<Vec<Option<f64>>> {
    let python = common::python_with(&["netCDF4", "numpy"]);
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: Vec<Vec<Value>> = serde_json::from_slice(&out.stdout).unwrap();
    steps
        .into_iter()
        .map(|s| s.into_iter().map(|v| v.as_f64()).collect())
        .collect()
}

fn load(env: &Env, path: &Path, name: &str, options: &str) -> common::Run {
    let extra: &[&str] = if options.is_empty() {
        &[]
    } else {
        &["-o", options]
    };
    env.load(path, "CFGrid", name, extra)
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn values_are_stored_converted_and_the_metadata_says_the_unit() {
    let env = Env::new();
    let nc = env.path("flux.nc");
    let file = write_file(&nc);
    load(&env, &nc, "umol", "units_to=umol m-2 s-1").ok();

    let md = env.run(&["db", "-n", "umol"]).ok().json();
    assert_eq!(md["units"]["values"], "umol m-2 s-1", "{}", md["units"]);
    assert_eq!(md["units_conversion"]["from"], "mol m-2 s-1");
    assert_eq!(md["units_conversion"]["to"], "umol m-2 s-1");

    let docs = env.run(&["export", "-n", "umol"]).ok().json_lines();
    assert_eq!(docs.len(), file.len());
    // The cells of coord_index are the file's, in its order (the netcdf
    // tests check that); the stored value is the file's times 1e6, rounded
    // to CFGrid's 10 decimals.
    let mut compared = 0;
    for (doc, step) in docs.iter().zip(&file) {
        let values = doc["values"].as_array().unwrap();
        assert_eq!(values.len(), step.len());
        for (got, want) in values.iter().zip(step) {
            match want {
                None => assert!(
                    !got.as_f64().is_some_and(f64::is_finite),
                    "a missing cell stays missing: {got}"
                ),
                Some(x) => {
                    let want = x * 1e6;
                    let got = got.as_f64().unwrap();
                    assert!(
                        (got - want).abs() <= 0.5e-10 + 1e-15 * want.abs(),
                        "{got} against {want} ({x} mol m-2 s-1)"
                    );
                    assert!(want.abs() > 1e-3, "the file's values are of order 1e-6");
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 3 * 40 - 1);
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn units_that_do_not_convert_are_refused_naming_both() {
    let env = Env::new();
    let nc = env.path("flux.nc");
    write_file(&nc);
    let r = load(&env, &nc, "kg", "units_to=kg m-2");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {}", r.stderr);
    assert!(
        r.stderr.contains("\"mol m-2 s-1\"") && r.stderr.contains("\"kg m-2\""),
        "{}",
        r.stderr
    );
    let r = load(
        &env,
        &nc,
        "bogus",
        "units_to=furlongs per fortnight squiggle",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("furlongs per fortnight squiggle"),
        "{}",
        r.stderr
    );
    // Nothing was written.
    let listed = env.run(&["db", "-l", "collections"]);
    assert!(!listed.stdout.contains("kg") && !listed.stdout.contains("bogus"));
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn an_append_with_another_conversion_is_refused() {
    let env = Env::new();
    let nc = env.path("flux.nc");
    write_file(&nc);
    load(&env, &nc, "d", "units_to=umol m-2 s-1").ok();
    let before = env.run(&["export", "-n", "d"]).ok().stdout;
    for other in ["units_to=mmol m-2 s-1", ""] {
        let mut args = vec![
            "load",
            "-p",
            nc.to_str().unwrap(),
            "-m",
            "CFGrid",
            "-n",
            "d",
            "--force",
        ];
        if !other.is_empty() {
            args.extend(["-o", other]);
        }
        let r = env.run(&args);
        assert_eq!(r.code, 1, "{other:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("\"umol m-2 s-1\""),
            "names the stored conversion: {}",
            r.stderr
        );
        if !other.is_empty() {
            assert!(r.stderr.contains("\"mmol m-2 s-1\""), "{}", r.stderr);
        }
    }
    assert_eq!(env.run(&["export", "-n", "d"]).ok().stdout, before);
    // The same conversion appends (here: replaces the same times).
    env.run(&[
        "load",
        "-p",
        nc.to_str().unwrap(),
        "-m",
        "CFGrid",
        "-n",
        "d",
        "--force",
        "-o",
        "units_to=umol m-2 s-1",
    ])
    .ok();
    assert_eq!(env.run(&["export", "-n", "d"]).ok().stdout, before);
}
