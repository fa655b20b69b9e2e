//! NetCDF (CF) files through the real binary with `-m CFGrid`, checked
//! against what netCDF4-python and numpy read from the same files
//! (`tests/python/cf_reference.py`).

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::Env;
use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/cf_reference.py");

/// What `cf_reference.py` prints for `args`, run by netCDF4-python.
fn python(args: &[&str]) -> String {
    let out = Command::new(common::python_with(&["netCDF4", "numpy"]))
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "cf_reference.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A fixture of `../shared/fixtures/netcdf`.
fn fixture(name: &str) -> PathBuf {
    common::shared_fixture("netcdf", name)
}

const FIXTURES: [&str; 3] = [
    "ct_like_netcdf4.nc",
    "ct_like_netcdf3_classic.nc",
    "ct_like_packed_int16.nc",
];

fn coord_index(env: &Env, name: &str) -> Vec<[f64; 2]> {
    use fluxpy::doc::COORD_INDEX;
    use fluxpy::store::{embedded::Embedded, Store};
    let store = Embedded::open(&env.db()).unwrap();
    fluxpy::doc::coordinates_of(&store.entry(COORD_INDEX, name).unwrap().unwrap()).unwrap()
}

/// The loaded dataset against the reference: same cells in the same order,
/// same times, values equal within `tolerance`, nulls at the same cells.
fn check_against_reference(env: &Env, name: &str, reference: &Value, tolerance: f64) {
    let want_coords: Vec<[f64; 2]> = reference["coords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
        .collect();
    assert_eq!(coord_index(env, name), want_coords, "{name}: coord_index");
    let docs = env.run(&["export", "-n", name]).ok().json_lines();
    let times = reference["times"].as_array().unwrap();
    assert_eq!(docs.len(), times.len(), "{name}: one document per step");
    for (k, (doc, t)) in docs.iter().zip(times).enumerate() {
        assert_eq!(&doc["_id"]["$date"], t, "{name}: time of step {k}");
        let got = doc["values"].as_array().unwrap();
        let want = reference["values"][k].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name}: step {k}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            match (g.as_f64(), w.as_f64()) {
                (None, None) => {}
                (Some(g), Some(w)) => assert!(
                    (g - w).abs() <= tolerance,
                    "{name}: step {k} cell {i}: {g} vs {w}"
                ),
                _ => panic!("{name}: step {k} cell {i}: {g} vs {w}"),
            }
        }
    }
    let md = env.run(&["db", "-n", name]).ok().json();
    assert_eq!(md["title"], reference["title"], "{name}: title");
    // As a MATLAB-loaded grid's: the coordinates' units and the values'.
    assert_eq!(
        md["units"],
        serde_json::json!({"x": "degrees", "y": "degrees", "values": reference["units"]}),
        "{name}: units"
    );
    assert_eq!(md["gridded"], true);
    let first = times[0].as_str().unwrap();
    let last = times[times.len() - 1].as_str().unwrap();
    assert_eq!(
        md["dates"],
        serde_json::json!([&first[..19], &last[..19]]),
        "{name}: dates"
    );
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn every_fixture_loads_to_the_documents_netcdf4_python_reads() {
    for f in FIXTURES {
        let path = fixture(f);
        let env = Env::new();
        env.load(&path, "CFGrid", "ct", &[]).ok();
        // CFGrid settles the precision from the file; the reference rounds
        // netCDF4's values to it as Python's '%.Nf' does.
        let precision = env.run(&["db", "-n", "ct"]).ok().json()["precision"]
            .as_i64()
            .unwrap()
            .to_string();
        let reference: Value = serde_json::from_str(&python(&[
            "expect",
            path.to_str().unwrap(),
            "bio_flux_opt",
            &precision,
        ]))
        .unwrap();
        // Float files exactly; the int16 file is unpacked by netCDF4 in
        // single precision, so within a hair of its 1e-10 packing step.
        let tolerance = if f.contains("packed") { 1e-15 } else { 0.0 };
        check_against_reference(&env, "ct", &reference, tolerance);
        let md = env.run(&["db", "-n", "ct"]).ok().json();
        assert_eq!(md["steps"], serde_json::json!([10800]), "{f}");
        assert_eq!(
            md["gridres"],
            serde_json::json!({"units": "degrees", "x": 1.0, "y": 1.0}),
            "{f}"
        );
        assert_eq!(md["bbox"], serde_json::json!([-179.5, -89.5, 179.5, 89.5]));
    }
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn the_three_fixtures_give_the_same_documents() {
    let paths: Vec<PathBuf> = FIXTURES.iter().map(|f| fixture(f)).collect();
    let env = Env::new();
    let mut exports = vec![];
    let mut metadata = vec![];
    for (k, p) in paths.iter().enumerate() {
        let name = format!("ct{k}");
        env.load(p, "CFGrid", &name, &[]).ok();
        exports.push(env.run(&["export", "-n", &name]).ok().json_lines());
        let mut md = env.run(&["db", "-n", &name]).ok().json();
        // CFGrid's precision is each file's own: a float32 variable's
        // digits, or the packing step of the int16 one.
        for key in ["_id", "files", "stats", "precision"] {
            md.as_object_mut().unwrap().remove(key);
        }
        metadata.push(md);
        assert_eq!(coord_index(&env, &name), coord_index(&env, "ct0"), "{p:?}");
    }
    // NetCDF-4 and NetCDF-3 (latitude stored north to south): identical.
    assert_eq!(exports[0], exports[1]);
    assert_eq!(metadata[0], metadata[1]);
    assert_eq!(metadata[0], metadata[2]);
    // Packed int16 (scale_factor 1e-10): the same missing cells, values
    // within the packing step.
    let (mut worst, mut values) = (0f64, 0usize);
    for (a, b) in exports[0].iter().zip(&exports[2]) {
        assert_eq!(a["_id"], b["_id"]);
        for (x, y) in a["values"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["values"].as_array().unwrap())
        {
            assert_eq!(x.as_f64().is_none(), y.as_f64().is_none());
            if let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) {
                worst = worst.max((x - y).abs());
                values += 1;
            }
        }
    }
    assert_eq!(
        values,
        8 * (180 - 30) * 360,
        "cells south of 60S are masked"
    );
    assert!(worst <= 1e-10 + 1e-16, "packed values differ by {worst}");
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn other_names_dimension_orders_packing_and_irregular_times() {
    let env = Env::new();
    let dir = env.path("odd");
    std::fs::create_dir(&dir).unwrap();
    python(&["odd", dir.to_str().unwrap()]);
    let odd = dir.join("odd.nc");
    env.load(&odd, "CFGrid", "odd", &["-o", "precision=2"]).ok();
    let reference: Value =
        serde_json::from_str(&python(&["expect", odd.to_str().unwrap(), "co2"])).unwrap();
    // Precision 2 is the packing step (scale_factor 0.01): exact.
    let mut r = reference.clone();
    for step in r["values"].as_array_mut().unwrap() {
        for v in step.as_array_mut().unwrap() {
            if let Some(x) = v.as_f64() {
                *v = serde_json::json!((x * 100.0).round() / 100.0);
            }
        }
    }
    check_against_reference(&env, "odd", &r, 1e-12);
    let md = env.run(&["db", "-n", "odd"]).ok().json();
    // Times 0 h, 1 h, 7 h: spacings of 1 h and 6 h, once each.
    assert_eq!(md["steps"], serde_json::json!([3600, 21600]));

    // drop_empty_cells leaves out the cell missing at every step.
    env.load(
        &odd,
        "CFGrid",
        "odd_dropped",
        &["-o", "precision=2;drop_empty_cells=true"],
    )
    .ok();
    let all = coord_index(&env, "odd");
    let kept = coord_index(&env, "odd_dropped");
    let empty: Vec<usize> = (0..all.len())
        .filter(|&i| {
            r["values"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s[i].is_null())
        })
        .collect();
    assert_eq!(
        empty.len(),
        1,
        "the file has one cell missing at every step"
    );
    assert_eq!(kept.len(), all.len() - 1);
    assert!(!kept.contains(&all[empty[0]]));
    let docs = env.run(&["export", "-n", "odd_dropped"]).ok().json_lines();
    for (k, d) in docs.iter().enumerate() {
        // The reference's null (missing) is the stored NaN.
        let want: Vec<Value> = (0..all.len())
            .filter(|i| *i != empty[0])
            .map(|i| match &r["values"][k][i] {
                Value::Null => serde_json::json!({"$numberDouble": "NaN"}),
                v => v.clone(),
            })
            .collect();
        let got: Vec<Value> = d["values"].as_array().unwrap().clone();
        assert_eq!(got, want, "step {k}");
    }
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn fixture_with_empty_cells_dropped() {
    let path = fixture("ct_like_netcdf4.nc");
    let env = Env::new();
    env.load(&path, "CFGrid", "full", &[]).ok();
    env.load(&path, "CFGrid", "land", &["-o", "drop_empty_cells=true"])
        .ok();
    let full = coord_index(&env, "full");
    let land = coord_index(&env, "land");
    assert_eq!(full.len(), 180 * 360);
    assert_eq!(land.len(), 150 * 360, "the 30 rows south of 60S are masked");
    assert!(land.iter().all(|[_, y]| *y > -60.0));
    assert!(full.iter().filter(|[_, y]| *y > -60.0).eq(land.iter()));
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn export_csv_and_plot_accept_a_cf_dataset() {
    let path = fixture("ct_like_netcdf3_classic.nc");
    let env = Env::new();
    env.load(&path, "CFGrid", "ct", &[]).ok();
    let at = "2004-06-30T13:30:00";
    let csv = env
        .run(&["export", "-n", "ct", "--at", at, "--format", "csv"])
        .ok()
        .stdout;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "x,y,values");
    assert_eq!(lines.len(), 1 + 180 * 360);
    let doc = &env
        .run(&["export", "-n", "ct", "--at", at])
        .ok()
        .json_lines()[0];
    let values = doc["values"].as_array().unwrap();
    for (i, (row, [x, y])) in lines[1..].iter().zip(coord_index(&env, "ct")).enumerate() {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(f[0].parse::<f64>().unwrap(), x, "row {i}");
        assert_eq!(f[1].parse::<f64>().unwrap(), y, "row {i}");
        let v = (!f[2].is_empty()).then(|| f[2].parse::<f64>().unwrap());
        assert_eq!(v, values[i].as_f64(), "row {i}");
    }
    let png = env.path("ct.png");
    let r = env
        .run(&[
            "plot",
            "-n",
            "ct",
            "--at",
            at,
            "--output",
            png.to_str().unwrap(),
        ])
        .ok();
    assert!(
        r.stdout.contains("64800 cells (10800 null)"),
        "{}",
        r.stdout
    );
    let (w, h, colours) = common::png_summary(&png);
    assert_eq!(w, 1200);
    assert!(h > 400 && h < 800, "{h}");
    assert!(
        colours > 50,
        "a map of many colours, not a blank image: {colours}"
    );
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn appending_a_second_cf_file_adds_its_times() {
    let (a, b) = (
        fixture("ct_like_netcdf4.nc"),
        fixture("ct_like_netcdf3_classic.nc"),
    );
    let env = Env::new();
    env.load(&a, "CFGrid", "ct", &[]).ok();
    // The same times from the other file replace, never duplicate.
    env.load(&b, "CFGrid", "ct", &[]).ok();
    assert_eq!(env.run(&["export", "-n", "ct"]).ok().json_lines().len(), 8);
    // A MAT-file is not for CFGrid, and says which model reads it.
    let r = env.run(&[
        "load",
        "-p",
        common::sample().to_str().unwrap(),
        "-m",
        "CFGrid",
        "-n",
        "m",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("SpatioTemporalMatrix"), "{}", r.stderr);
}
