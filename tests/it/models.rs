//! End-to-end tests of the KrigedXCO2Matrix and XCO2Matrix models: the old
//! tool's fixtures when present, and generated files always.

use crate::common;

use std::path::{Path, PathBuf};

use common::{fixture, Env};
use fluxpy::doc::COORD_INDEX;
use fluxpy::model::round_to;
use fluxpy::store::{embedded::Embedded, Store};
use fluxpy::synth::{self, Grid};
use serde_json::{json, Value};

const KRIGED: &str = "KrigedXCO2Matrix";
const XCO2: &str = "XCO2Matrix";

/// A 1° window of the global grid: 40 × 20 = 800 cells.
fn window() -> Grid {
    Grid {
        x0: -120.0,
        x1: -80.0,
        y0: 20.0,
        y1: 40.0,
        res: 1.0,
    }
}

fn export(env: &Env, name: &str) -> Vec<Value> {
    env.run(&["export", "-n", name]).ok().json_lines()
}

fn metadata(env: &Env, name: &str) -> Value {
    env.run(&["db", "-n", name]).ok().json()
}

fn counts(env: &Env) -> String {
    env.run(&["db", "-l", "collections", "-x"]).ok().stdout
}

/// Write a generated kriged map for `day` of 2009 as `dir/file`.
fn kriged_file(env: &Env, file: &str, grid: &Grid, day: f64) -> PathBuf {
    let p = env.path(file);
    synth::write_mat_v5(&p, "krigedData", &synth::kriged_matrix(grid, day), true).unwrap();
    p
}

/// A fixture under another name (a symbolic link in the test's directory).
fn linked(env: &Env, fixture: &Path, name: &str) -> PathBuf {
    let p = env.path(name);
    std::os::unix::fs::symlink(fixture, &p).unwrap();
    p
}

fn as_f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Equal metadata, but for the last bits of the statistics, which depend on
/// the order values were summed in (a fresh load sums in parallel).
fn assert_same_metadata(a: &Value, b: &Value) {
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("stats");
        v
    };
    assert_eq!(strip(a), strip(b));
    for (p, s) in b["stats"].as_object().unwrap() {
        for (k, want) in s.as_object().unwrap() {
            let got = a["stats"][p][k].as_f64().unwrap();
            let want = want.as_f64().unwrap();
            assert!((got - want).abs() < 1e-9, "stats.{p}.{k}: {got} vs {want}");
        }
    }
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn kriged_fixture_matches_the_old_tools_expectations() {
    let mat = fixture("kriged_xco2.mat");
    let env = Env::new();
    env.load(&mat, KRIGED, "k", &["-o", "timestamp=2009-06-15"])
        .ok();
    let docs = export(&env, "k");
    assert_eq!(docs.len(), 1);
    let d = &docs[0];
    assert_eq!(d["_id"], json!({"$date": "2009-06-15T00:00:00Z"}));
    assert_eq!(d["_span"], json!(518400));
    assert_eq!(d["values"].as_array().unwrap().len(), 14210);
    assert_eq!(d["errors"].as_array().unwrap().len(), 14210);
    assert_eq!(d["values"][0], json!(386.9));
    assert_eq!(d["errors"][0], json!(0.8));
    let md = metadata(&env, "k");
    assert_eq!(md["bbox"], json!([-179.5, -54.5, 179.5, 82.5]));
    assert_eq!(md["dates"], json!(["2009-06-15T00:00:00"]));
    assert_eq!(md["spans"], json!([518400]));
    assert_eq!(md["gridded"], json!(true));
    assert_eq!(md["title"], json!("Kriged XCO2"));
    for p in ["values", "errors"] {
        assert!(md["stats"][p]["median"].is_f64(), "{md}");
    }
}

#[test]
fn kriged_generated_map_takes_its_date_from_the_file_name() {
    let env = Env::new();
    let grid = window();
    let p = kriged_file(&env, "Kriged_20090615_synth.mat", &grid, 166.0);
    env.load(&p, KRIGED, "k", &[]).ok();
    let docs = export(&env, "k");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["_id"], json!({"$date": "2009-06-15T00:00:00Z"}));
    assert_eq!(docs[0]["_span"], json!(518400));
    let m = synth::kriged_matrix(&grid, 166.0);
    let (values, errors) = (as_f64s(&docs[0]["values"]), as_f64s(&docs[0]["errors"]));
    assert_eq!(values.len(), grid.cells());
    for i in 0..grid.cells() {
        assert_eq!(values[i], round_to(m[[i, 2]], 1), "value {i}");
        assert_eq!(errors[i], round_to(m[[i, 3]].sqrt(), 1), "error {i}");
    }
    let md = metadata(&env, "k");
    assert_eq!(md["bbox"], json!([-119.5, 20.5, -80.5, 39.5]));
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(md["stats"]["values"]["min"], json!(min));

    // An explicit timestamp wins over the file name.
    env.load(&p, KRIGED, "k2", &["-o", "timestamp=2010-01-01"])
        .ok();
    assert_eq!(
        metadata(&env, "k2")["dates"],
        json!(["2010-01-01T00:00:00"])
    );
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn two_kriged_fixture_files_append_in_order() {
    let mat = fixture("kriged_xco2.mat");
    let env = Env::new();
    for name in ["Kriged_20090615_v1.mat", "Kriged_20090621_v1.mat"] {
        env.load(&linked(&env, &mat, name), KRIGED, "k", &[]).ok();
    }
    assert_eq!(counts(&env), "k (2 records)\n");
    let md = metadata(&env, "k");
    assert_eq!(
        md["dates"],
        json!(["2009-06-15T00:00:00", "2009-06-21T00:00:00"])
    );
    assert_eq!(md["spans"], json!([518400, 518400]));
    let ids: Vec<_> = export(&env, "k").iter().map(|d| d["_id"].clone()).collect();
    assert_eq!(
        ids,
        vec![
            json!({"$date": "2009-06-15T00:00:00Z"}),
            json!({"$date": "2009-06-21T00:00:00Z"})
        ]
    );
}

#[test]
fn two_kriged_generated_files_append_and_metadata_covers_both() {
    let env = Env::new();
    let grid = window();
    let late = kriged_file(&env, "Kriged_20090621_synth.mat", &grid, 172.0);
    let early = kriged_file(&env, "Kriged_20090615_synth.mat", &grid, 166.0);
    // Loaded latest first, the second with its own span: still in date order.
    env.load(&late, KRIGED, "k", &[]).ok();
    let out = env.load(&early, KRIGED, "k", &["-o", "span=86400"]).ok();
    assert!(out.stdout.contains("now spans 2 times"), "{}", out.stdout);
    assert_eq!(counts(&env), "k (2 records)\n");
    let md = metadata(&env, "k");
    assert_eq!(
        md["dates"],
        json!(["2009-06-15T00:00:00", "2009-06-21T00:00:00"])
    );
    assert_eq!(md["spans"], json!([86400, 518400]));
    // Statistics over both maps.
    let all: Vec<f64> = export(&env, "k")
        .iter()
        .flat_map(|d| as_f64s(&d["values"]))
        .collect();
    assert_eq!(all.len(), 2 * grid.cells());
    let max = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    assert_eq!(md["stats"]["values"]["max"], json!(max));
    let stored_mean = md["stats"]["values"]["mean"].as_f64().unwrap();
    assert!((stored_mean - mean).abs() < 1e-9, "{stored_mean} vs {mean}");

    // Reloading a date replaces it.
    env.load(&early, KRIGED, "k", &[]).ok();
    assert_eq!(counts(&env), "k (2 records)\n");
    assert_eq!(metadata(&env, "k")["spans"], json!([518400, 518400]));
    env.run(&["db", "-a"]).ok();
}

#[test]
fn a_kriged_file_with_other_coordinates_is_refused_when_appended() {
    let env = Env::new();
    // The old tool's kriged map where ../shared is there, else a generated one.
    let first = if cfg!(no_shared) {
        kriged_file(&env, "Kriged_20090615_synth.mat", &window(), 166.0)
    } else {
        linked(&env, &fixture("kriged_xco2.mat"), "Kriged_20090615_v1.mat")
    };
    env.load(&first, KRIGED, "k", &[]).ok();
    let before = metadata(&env, "k");
    let other = kriged_file(
        &env,
        "Kriged_20090621_other.mat",
        &window().with_window(-10.0, 10.0, -5.0, 5.0),
        172.0,
    );
    let r = env.load(&other, KRIGED, "k", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("coord_index differs") && r.stderr.contains("Kriged_20090621_other.mat"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1);
    assert_eq!(counts(&env), "k (1 record)\n");
    assert_eq!(metadata(&env, "k"), before, "nothing written");
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn xco2_fixture_points_are_dated_by_their_own_day_and_reload_in_place() {
    let mat = fixture("xco2.mat");
    let env = Env::new();
    env.load(&mat, XCO2, "x", &[]).ok();
    assert_eq!(counts(&env), "x (1311 records)\n");
    let docs = export(&env, "x");
    let point = docs
        .iter()
        .find(|d| d["coordinates"] == json!([-169.05661, 15.31385]))
        .expect("the first point of the file");
    assert_eq!(point["properties"]["value"], json!(386.79));
    assert_eq!(point["timestamp"], json!({"$date": "2009-06-15T00:00:00Z"}));
    let md = metadata(&env, "x");
    let dates = md["dates"].as_array().unwrap();
    assert_eq!(dates.len(), 6);
    assert_eq!(dates[0], json!("2009-06-15T00:00:00"));
    assert_eq!(dates[5], json!("2009-06-20T00:00:00"));
    assert_eq!(md["gridded"], json!(false));
    assert_eq!(md["geometry"], json!({"type": "Point"}));

    env.load(&mat, XCO2, "x", &[]).ok();
    assert_eq!(counts(&env), "x (1311 records)\n");
    let again = metadata(&env, "x");
    assert_same_metadata(&again, &md);

    // --at picks the points of one day.
    let day = env
        .run(&["export", "-n", "x", "--at", "2009-06-15"])
        .ok()
        .json_lines();
    assert!(day.contains(point), "the point is among those of its day");
    assert!(day.len() < 1311);
    assert!(day
        .iter()
        .all(|d| d["timestamp"] == json!({"$date": "2009-06-15T00:00:00Z"})));
}

#[test]
fn xco2_generated_points_load_append_and_export_by_day() {
    let env = Env::new();
    let m = synth::xco2_matrix(600, 2009, 166, 6);
    let p = env.path("xco2_a.mat");
    synth::write_mat_v5(&p, "XCO2", &m, false).unwrap();
    env.load(&p, XCO2, "x", &[]).ok();
    assert_eq!(counts(&env), "x (600 records)\n");
    let docs = export(&env, "x");
    // Every row is one document, rounded as documented.
    for i in [0, 299, 599] {
        let (x, y) = (round_to(m[[i, 0]], 5), round_to(m[[i, 1]], 5));
        let d = docs
            .iter()
            .find(|d| d["coordinates"] == json!([x, y]))
            .unwrap_or_else(|| panic!("row {i}"));
        assert_eq!(d["properties"]["value"], json!(round_to(m[[i, 2]], 2)));
        assert_eq!(d["properties"]["error"], json!(round_to(m[[i, 5]], 4)));
        let day = chrono::NaiveDate::from_yo_opt(2009, m[[i, 3]] as u32).unwrap();
        assert_eq!(
            d["timestamp"]["$date"],
            json!(format!("{day}T00:00:00Z")),
            "row {i}"
        );
    }
    let md = metadata(&env, "x");
    assert_eq!(md["dates"].as_array().unwrap().len(), 6);
    assert_eq!(md["dates"][0], json!("2009-06-15T00:00:00"));

    // Another file of other points and days: added, dates and points merged.
    let mut m2 = synth::xco2_matrix(400, 2009, 172, 6);
    m2.column_mut(0).mapv_inplace(|x| x + 0.05);
    let p2 = env.path("xco2_b.mat");
    synth::write_mat_v5(&p2, "XCO2", &m2, false).unwrap();
    env.load(&p2, XCO2, "x", &[]).ok();
    env.load(&p, XCO2, "x", &[]).ok();
    assert_eq!(counts(&env), "x (1000 records)\n");
    let md = metadata(&env, "x");
    assert_eq!(md["dates"].as_array().unwrap().len(), 12);
    let store = Embedded::open(&env.db()).unwrap();
    let ci = store.entry(COORD_INDEX, "x").unwrap().unwrap();
    assert_eq!(ci.get_array("i").unwrap().len(), 1000);
    drop(store);

    let day = env
        .run(&["export", "-n", "x", "--at", "2009-06-21T00:00:00Z"])
        .ok()
        .json_lines();
    let want = m2.column(3).iter().filter(|&&d| d == 172.0).count();
    assert!(want > 0);
    assert_eq!(day.len(), want);
    let r = env.run(&["export", "-n", "x", "--at", "2010-01-01"]);
    assert_eq!(r.code, 1);
    env.run(&["db", "-a"]).ok();
}

#[test]
fn mediators_are_accepted_where_the_shape_fits() {
    let env = Env::new();
    let k = kriged_file(&env, "Kriged_20090615_synth.mat", &window(), 166.0);
    let x = env.path("xco2.mat");
    synth::write_mat_v5(&x, "XCO2", &synth::xco2_matrix(50, 2009, 166, 6), false).unwrap();
    let one_step = env.path("one_step.mat");
    synth::write_mat_v5(
        &one_step,
        "f",
        &synth::flux_matrix(&window(), 1, 3.0),
        false,
    )
    .unwrap();
    let stm = "SpatioTemporalMatrix";
    let ts = "timestamp=2004-06-30";
    for (i, (path, model, mediator)) in [
        (&k, KRIGED, "Grid3D"),
        (&x, XCO2, "Unstructured3D"),
        (&one_step, stm, "Grid4D"),
        (&one_step, stm, "Grid3DMediator"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("m{i}");
        env.load(path, model, &name, &["-d", mediator, "-o", ts])
            .ok();
    }
    let sample = common::sample();
    for (path, model, mediator, needle) in [
        (&k, KRIGED, "Unstructured3D", "it takes Grid3D"),
        (&k, KRIGED, "Grid4D", "it takes Grid3D"),
        (&x, XCO2, "Grid3D", "it takes Unstructured3D"),
        (&sample, stm, "Grid3D", "has 8 time steps"),
        (&sample, stm, "Unstructured3D", "does not fit"),
        (&k, KRIGED, "Grid5D", "unknown mediator 'Grid5D'"),
    ] {
        let r = env.load(path, model, "refused", &["-d", mediator]);
        assert_eq!(r.code, 1, "{model} -d {mediator}");
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    assert_eq!(
        counts(&env),
        "m0 (1 record)\nm1 (50 records)\nm2 (1 record)\nm3 (1 record)\n"
    );
}

#[test]
fn a_file_name_that_gives_no_date_is_a_clear_error() {
    let env = Env::new();
    let p = kriged_file(&env, "kriged_latest.mat", &window(), 166.0);
    let r = env.load(&p, KRIGED, "k", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("kriged_latest.mat") && r.stderr.contains("-o timestamp="),
        "{}",
        r.stderr
    );
    // A regex of the user's, in the old tool's form, on another model.
    let f = env.path("flux_2004-06-30.mat");
    synth::write_mat_v5(&f, "f", &synth::flux_matrix(&window(), 2, 3.0), false).unwrap();
    let regex = r#"regex={"regex": "^flux_(?P<timestamp>[0-9-]{10})\\.mat$", "map": {"timestamp": "%Y-%m-%d"}}"#;
    env.load(&f, "SpatioTemporalMatrix", "s", &["-o", regex])
        .ok();
    assert_eq!(
        metadata(&env, "s")["dates"],
        json!(["2004-06-30T00:00:00", "2004-06-30T03:00:00"])
    );
    assert_eq!(counts(&env), "s (2 records)\n");
}

#[test]
fn the_example_configs_load_generated_files_as_documented() {
    let env = Env::new();
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let k = kriged_file(&env, "Kriged_20090621_synth.mat", &window(), 172.0);
    let c = configs.join("KrigedXCO2Matrix.json");
    let r = env.load(&k, KRIGED, "k", &["-c", c.to_str().unwrap()]).ok();
    assert_eq!(r.stderr, "", "no unknown keys");
    let md = metadata(&env, "k");
    assert_eq!(md["dates"], json!(["2009-06-21T00:00:00"]));
    assert_eq!(md["spans"], json!([518400]));
    assert_eq!(md["units"]["errors"], json!("ppm"));

    let x = env.path("XCO2_20090615_synth.mat");
    let mut m = synth::xco2_matrix(30, 2009, 166, 6);
    m[[0, 3]] = f64::NAN;
    m[[0, 4]] = f64::NAN;
    synth::write_mat_v5(&x, "XCO2", &m, false).unwrap();
    let c = configs.join("XCO2Matrix.json");
    let r = env.load(&x, XCO2, "x", &["-c", c.to_str().unwrap()]).ok();
    assert_eq!(r.stderr, "", "no unknown keys");
    let md = metadata(&env, "x");
    assert_eq!(md["title"], json!("XCO2 retrievals"));
    // The undated row takes the date of the file name.
    let first = &export(&env, "x")[0];
    assert_eq!(first["timestamp"], json!({"$date": "2009-06-15T00:00:00Z"}));
    let (x0, y0) = (round_to(m[[0, 0]], 5), round_to(m[[0, 1]], 5));
    let undated = export(&env, "x")
        .into_iter()
        .find(|d| d["coordinates"] == json!([x0, y0]))
        .unwrap();
    assert_eq!(undated["timestamp"], first["timestamp"]);
}
