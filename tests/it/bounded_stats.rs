//! Statistics in bounded memory: past the exact table's limit the median
//! comes from a sketch, within the relative error the metadata states;
//! below it, it stays exact. References from numpy over what
//! netCDF4-python reads of the same files.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::Env;
use serde_json::Value;

/// Writes `whole.nc` (STEPS steps of a 60 × 120 grid of doubles of order
/// 1 with every digit used), `a.nc` and `b.nc` (its first and last steps),
/// then prints numpy's statistics of its values rounded to 10 and to 2
/// decimals as JSON.
const SCRIPT: &str = r#"
import json, sys
import numpy as np, netCDF4
d, steps = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(5)
data = rng.standard_normal((steps, 60, 120)) + 0.25
def write(path, k0, k1):
    ds = netCDF4.Dataset(path, "w", format="NETCDF4")
    ds.createDimension("time", None)
    ds.createDimension("lat", 60)
    ds.createDimension("lon", 120)
    t = ds.createVariable("time", "f8", ("time",))
    t.units = "hours since 2010-01-01 00:00:00"
    la = ds.createVariable("lat", "f8", ("lat",))
    la.units = "degrees_north"
    la[:] = np.arange(-88.5, 90, 3.0)
    lo = ds.createVariable("lon", "f8", ("lon",))
    lo.units = "degrees_east"
    lo[:] = np.arange(-178.5, 180, 3.0)
    v = ds.createVariable("flux", "f8", ("time", "lat", "lon"))
    v.units = "mol m-2 s-1"
    v[:] = data[k0:k1]
    t[:] = np.arange(k0, k1) * 3.0
    ds.close()
write(d + "/whole.nc", 0, steps)
write(d + "/a.nc", 0, steps // 2)
write(d + "/b.nc", steps // 2, steps)
x = netCDF4.Dataset(d + "/whole.nc")["flux"][:].filled(np.nan).ravel()
out = {}
for places in (10, 2):
    v = np.round(x, places)
    out[str(places)] = {
        "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)),
        "min": float(v.min()), "max": float(v.max()),
        "median": float(np.median(v)), "distinct": int(np.unique(v).size),
    }
print(json.dumps(out))
"#;

/// 40 steps of 7,200 cells: 288,000 values, nearly all distinct at 10
/// decimals (more than the table's 65,536), under 1,000 at 2.
const STEPS: usize = 40;

fn reference(dir: &Path) -> Value {
    let python = common::python_with(&["netCDF4", "numpy"]);
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(dir)
        .arg(STEPS.to_string())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the reference script")
}

fn load(env: &Env, file: &Path, name: &str, precision: u32) {
    let o = format!("precision={precision}");
    env.load(file, "CFGrid", name, &["-o", &o]).ok();
}

fn stats(env: &Env, name: &str) -> Value {
    env.run(&["db", "-n", name]).ok().json()["stats"]["values"].clone()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// The size in bytes of dataset `name`'s summary entry.
fn summary_entry_bytes(env: &Env, name: &str) -> usize {
    use fluxpy::doc::SUMMARY;
    use fluxpy::store::{embedded::Embedded, Store};
    let store = Embedded::open(&env.db()).unwrap();
    let entry = store
        .entry(SUMMARY, name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} has a summary entry"));
    bson::to_vec(&entry).unwrap().len()
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn medians_against_numpy_appends_and_the_summary_entry_size() {
    let env = Env::new();
    let dir = env.dir.path();
    let want = reference(dir);
    let (whole, a, b) = (dir.join("whole.nc"), dir.join("a.nc"), dir.join("b.nc"));

    // Precision 10: nearly every value distinct, past the exact table.
    let r10 = &want["10"];
    assert!(
        r10["distinct"].as_u64().unwrap() > 200_000,
        "the reference data has as many distinct values as intended: {r10}"
    );
    load(&env, &whole, "p10", 10);
    let s = stats(&env, "p10");
    let bound = f(&s, "median_relative_error");
    assert_eq!(bound, 1e-3, "the metadata states the median's bound: {s}");
    let (median, np_median) = (f(&s, "median"), f(r10, "median"));
    // numpy's median is the mean of the two middle values, 1e-5 apart at
    // most among 288,000 normal values: the bound, and that gap.
    assert!(
        (median - np_median).abs() <= bound * np_median.abs() + 1e-5,
        "median {median}, numpy {np_median}"
    );
    // The rest stays exact (to the rounding of the last operation).
    for key in ["mean", "std", "min", "max"] {
        let (got, exp) = (f(&s, key), f(r10, key));
        assert!(
            (got - exp).abs() <= 1e-12 * exp.abs().max(1e-3),
            "{key}: {got} against numpy's {exp}"
        );
    }
    assert_eq!(f(&s, "min"), f(r10, "min"));
    assert_eq!(f(&s, "max"), f(r10, "max"));
    // The summary entry keeps a sketch, not 288,000 counts (4.6 MB).
    let bytes = summary_entry_bytes(&env, "p10");
    assert!(bytes < 1 << 20, "summary entry of {bytes} bytes");

    // Precision 2: a small table, the median exact to the bit.
    let r2 = &want["2"];
    assert!(r2["distinct"].as_u64().unwrap() < 2_000, "{r2}");
    load(&env, &whole, "p2", 2);
    let s2 = stats(&env, "p2");
    assert!(
        s2.get("median_relative_error").is_none(),
        "an exact median says no error: {s2}"
    );
    assert_eq!(f(&s2, "median").to_bits(), f(r2, "median").to_bits());
    assert_eq!(f(&s2, "min"), f(r2, "min"));
    assert_eq!(f(&s2, "max"), f(r2, "max"));
    assert!((f(&s2, "mean") - f(r2, "mean")).abs() <= 1e-12);
    assert!(summary_entry_bytes(&env, "p2") < 64 << 10);

    // An append of the two halves gives the statistics of one load, to the
    // bit, whether the median is exact or sketched.
    for (places, name, one) in [(10, "ab10", "p10"), (2, "ab2", "p2")] {
        load(&env, &a, name, places);
        load(&env, &b, name, places);
        assert_eq!(stats(&env, name), stats(&env, one), "precision {places}");
    }
    // Loading a half again replaces its documents: a sketch cannot take
    // their values out, so the dataset is read once, and the statistics
    // are still those of one load.
    env.run(&[
        "load",
        "-p",
        a.to_str().unwrap(),
        "-m",
        "CFGrid",
        "-n",
        "ab10",
        "-o",
        "precision=10",
        "--force",
    ])
    .ok();
    assert_eq!(stats(&env, "ab10"), stats(&env, "p10"));
}
