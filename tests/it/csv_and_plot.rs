//! `export --format csv` and `plot`, run as the real binary against real
//! stores: the CASA-GFED fixture, the project's sample data, and point and
//! two-parameter gridded datasets written through the library's store.

use crate::common;

use bson::{doc, Bson, DateTime};
use common::{fixture, png_summary, sample, store_points, Env, Point};
use fluxpy::doc::COORD_INDEX;
use fluxpy::store::{embedded::Embedded, Store};

const STM: &str = "SpatioTemporalMatrix";
const DAY: i64 = 86_400_000;
/// 2009-06-01T00:00:00Z in ms.
const JUNE_1: i64 = 1_243_814_400_000;

fn load_casa(env: &Env) {
    let mat = fixture("casagfed2004.mat");
    env.run(&[
        "load",
        "-p",
        mat.to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "casa",
        "-o",
        "timestamp=2004-06-30T00:00:00",
    ])
    .ok();
}

fn coords(env: &Env, name: &str) -> Vec<[f64; 2]> {
    let store = Embedded::open(&env.db()).unwrap();
    fluxpy::doc::coordinates_of(&store.entry(COORD_INDEX, name).unwrap().unwrap()).unwrap()
}

/// A CSV field as the number it stands for; empty is null.
fn field(s: &str) -> Option<f64> {
    (!s.is_empty()).then(|| s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}")))
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn csv_of_one_step_of_casagfed() {
    let env = Env::new();
    load_casa(&env);
    let out = env
        .run(&[
            "export",
            "-n",
            "casa",
            "--at",
            "2004-06-30T03:00:00",
            "--format",
            "csv",
        ])
        .ok()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "x,y,values");
    assert_eq!(lines.len(), 1 + 2635);

    // Rows follow coord_index, and hold the same values as the JSON export.
    let doc = &env
        .run(&["export", "-n", "casa", "--at", "2004-06-30T03:00:00"])
        .ok()
        .json_lines()[0];
    let values = doc["values"].as_array().unwrap();
    for (i, (row, [x, y])) in lines[1..].iter().zip(coords(&env, "casa")).enumerate() {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(f.len(), 3, "row {i}: {row}");
        assert_eq!(field(f[0]), Some(x), "row {i}");
        assert_eq!(field(f[1]), Some(y), "row {i}");
        assert_eq!(field(f[2]), values[i].as_f64(), "row {i}");
    }
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn csv_of_every_step_has_a_timestamp_column() {
    let env = Env::new();
    load_casa(&env);
    let out = env
        .run(&["export", "-n", "casa", "--format", "csv"])
        .ok()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "timestamp,x,y,values");
    assert_eq!(lines.len(), 1 + 8 * 2635);
    let docs = env.run(&["export", "-n", "casa"]).ok().json_lines();
    let coords = coords(&env, "casa");
    for (k, d) in docs.iter().enumerate() {
        let time = d["_id"]["$date"].as_str().unwrap();
        let values = d["values"].as_array().unwrap();
        for i in [0, 1000, 2634] {
            let row = lines[1 + k * 2635 + i];
            let f: Vec<&str> = row.split(',').collect();
            assert_eq!(f[0], time, "{row}");
            assert_eq!([field(f[1]), field(f[2])], coords[i].map(Some), "{row}");
            assert_eq!(field(f[3]), values[i].as_f64(), "{row}");
        }
    }
    assert!(lines.last().unwrap().starts_with("2004-06-30T21:00:00Z,"));
}

#[test]
fn csv_of_a_grid_with_values_errors_and_nulls() {
    // The shape KrigedXCO2Matrix stores: `_span`, then values and errors.
    let env = Env::new();
    let mut store = Embedded::open(&env.db()).unwrap();
    let mut load = store.begin_load("kriged").unwrap();
    load.write(crate::common::docs(vec![doc! {
        "_id": DateTime::from_millis(JUNE_1),
        "_span": 518400,
        "values": [385.1, Bson::Null, 1e-7],
        "errors": [0.5, 0.25, Bson::Null],
    }]))
    .unwrap();
    load.commit(crate::common::entries(
        doc! {"_id": "kriged", "i": [[-100.25, 40.5], [-99.75, 40.5], [0.0, -0.5]]},
        doc! {"_id": "kriged", "gridded": true, "title": "Kriged XCO2"},
    ))
    .unwrap();
    drop(store);
    let one = env
        .run(&[
            "export",
            "-n",
            "kriged",
            "--at",
            "2009-06-01",
            "--format",
            "csv",
        ])
        .ok()
        .stdout;
    assert_eq!(
        one,
        "x,y,values,errors\n-100.25,40.5,385.1,0.5\n-99.75,40.5,,0.25\n0,-0.5,1e-7,\n"
    );
    let all = env
        .run(&["export", "-n", "kriged", "--format", "csv"])
        .ok()
        .stdout;
    assert_eq!(
        all.lines().nth(2),
        Some("2009-06-01T00:00:00Z,-99.75,40.5,,0.25")
    );
    // The metadata lists no dates: plot finds the first time itself.
    let png = env.path("errors.png");
    let out = env
        .run(&[
            "plot",
            "-n",
            "kriged",
            "--param",
            "errors",
            "--width",
            "400",
            "--output",
            png.to_str().unwrap(),
        ])
        .ok()
        .stdout;
    assert!(
        out.contains("at 2009-06-01T00:00:00Z, 3 cells (1 null), errors from 0.25 to 0.5"),
        "{out}"
    );
    assert_eq!(png_summary(&png).0, 400);
}

fn points() -> Vec<Point> {
    vec![
        (JUNE_1, -120.5, 35.25, Some(385.12), Some(0.8123)),
        (JUNE_1 + DAY, 10.0, -20.0, Some(390.0), None),
        (JUNE_1, 150.125, 60.0, Some(379.5), Some(1.5)),
        (JUNE_1 + DAY, -60.0, 5.5, None, Some(0.25)),
    ]
}

#[test]
fn csv_of_point_data() {
    let env = Env::new();
    store_points(&env.db(), "xco2", &points());
    let out = env
        .run(&["export", "-n", "xco2", "--format", "csv"])
        .ok()
        .stdout;
    assert_eq!(
        out,
        "timestamp,x,y,value,error\n\
         2009-06-01T00:00:00Z,-120.5,35.25,385.12,0.8123\n\
         2009-06-02T00:00:00Z,10,-20,390,\n\
         2009-06-01T00:00:00Z,150.125,60,379.5,1.5\n\
         2009-06-02T00:00:00Z,-60,5.5,,0.25\n"
    );
    // --at picks the points of that time.
    let day2 = env
        .run(&[
            "export",
            "-n",
            "xco2",
            "--at",
            "2009-06-02T00:00:00Z",
            "--format",
            "csv",
        ])
        .ok()
        .stdout;
    assert_eq!(
        day2,
        "timestamp,x,y,value,error\n\
         2009-06-02T00:00:00Z,10,-20,390,\n\
         2009-06-02T00:00:00Z,-60,5.5,,0.25\n"
    );
    let none = env.run(&[
        "export",
        "-n",
        "xco2",
        "--at",
        "2009-06-03",
        "--format",
        "csv",
    ]);
    assert_eq!(none.code, 1);
    assert!(
        none.stderr.contains("'xco2'") && none.stderr.contains("no document at 2009-06-03"),
        "{}",
        none.stderr
    );
}

#[test]
fn plot_of_gridded_data_is_a_png_of_the_requested_width() {
    let env = Env::new();
    env.run(&[
        "load",
        "-p",
        sample().to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "sample",
    ])
    .ok();
    let png = env.path("sample.png");
    let out = env
        .run(&[
            "plot",
            "-n",
            "sample",
            "--at",
            "2004-06-30T03:00:00",
            "--width",
            "800",
            "--output",
            png.to_str().unwrap(),
        ])
        .ok()
        .stdout;
    assert!(
        out.contains("sample at 2004-06-30T03:00:00Z") && out.contains("7020 cells"),
        "{out}"
    );
    let (w, h, colours) = png_summary(&png);
    assert_eq!(w, 800);
    assert!((300..800).contains(&h), "height {h}");
    assert!(colours > 50, "{colours} colours");

    // Without --at: the first time step.
    let first = env.path("first.png");
    let out = env
        .run(&["plot", "-n", "sample", "-O", first.to_str().unwrap()])
        .ok()
        .stdout;
    assert!(out.contains("at 2004-06-30T00:00:00Z"), "{out}");
    assert_eq!(png_summary(&first).0, 1200);
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn plot_of_the_casagfed_fixture() {
    let env = Env::new();
    load_casa(&env);
    let png = env.path("casa.png");
    env.run(&[
        "plot",
        "-n",
        "casa",
        "--at",
        "2004-06-30T18:00:00",
        "--width",
        "640",
        "--output",
        png.to_str().unwrap(),
    ])
    .ok();
    let (w, _, colours) = png_summary(&png);
    assert_eq!(w, 640);
    assert!(colours > 50, "{colours} colours");
}

#[test]
fn plot_of_point_data() {
    let env = Env::new();
    // Two days of points on a band of latitudes, values rising eastwards.
    let pts: Vec<Point> = (0..400)
        .map(|k| {
            let x = -170.0 + f64::from(k % 100) * 3.4;
            let y = -40.0 + f64::from(k / 100) * 20.0;
            let day = i64::from(k % 2);
            (JUNE_1 + day * DAY, x, y, Some(380.0 + x / 20.0), Some(0.5))
        })
        .collect();
    store_points(&env.db(), "xco2", &pts);
    let png = env.path("points.png");
    let out = env
        .run(&[
            "plot",
            "-n",
            "xco2",
            "--at",
            "2009-06-02",
            "--width",
            "700",
            "--output",
            png.to_str().unwrap(),
        ])
        .ok()
        .stdout;
    assert!(out.contains("200 points"), "{out}");
    assert!(out.contains("ppm"), "{out}");
    let (w, _, colours) = png_summary(&png);
    assert_eq!(w, 700);
    assert!(colours > 20, "{colours} colours");

    // The errors of the same points, named as gridded datasets name them.
    let errors = env.path("errors.png");
    env.run(&[
        "plot",
        "-n",
        "xco2",
        "--param",
        "errors",
        "--output",
        errors.to_str().unwrap(),
    ])
    .ok();
    assert!(errors.is_file());
}

#[test]
fn plot_of_an_unknown_name_or_time_exits_1_and_writes_nothing() {
    let env = Env::new();
    env.run(&[
        "load",
        "-p",
        sample().to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "sample",
    ])
    .ok();
    store_points(&env.db(), "xco2", &points());
    let png = env.path("x.png");
    let o = png.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["-n", "nope"],
            "collection 'nope': does not exist; existing collections: sample, xco2",
        ),
        (
            vec!["-n", "sample", "--at", "2004-06-30T04:00:00"],
            "collection 'sample': has no document at 2004-06-30T04:00:00Z",
        ),
        (
            vec!["-n", "xco2", "--at", "2010-01-01"],
            "collection 'xco2': has no document at 2010-01-01T00:00:00Z",
        ),
        (
            vec!["-n", "sample", "--param", "errors"],
            "no parameter 'errors'",
        ),
        (
            vec!["-n", "sample", "--at", "yesterday"],
            "--at 'yesterday'",
        ),
    ] {
        let mut a = vec!["plot", "--output", o];
        a.extend(&args);
        let r = env.run(&a);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert!(!png.exists());
    }
    let r = env.run(&[
        "plot",
        "-n",
        "sample",
        "--output",
        env.path("x.jpg").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(".png"), "{}", r.stderr);
    // Nothing but the store and its journal in the folder: no stray temp files.
    let stray: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("store.db"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn csv_and_plot_of_datasets_loaded_by_the_point_and_kriged_models() {
    let env = Env::new();
    // XCO2Matrix: 300 generated points over 3 days of June 2009.
    let xco2 = env.path("XCO2_20090615_test.mat");
    fluxpy::synth::write_mat_v5(
        &xco2,
        "XCO2",
        &fluxpy::synth::xco2_matrix(300, 2009, 166, 3),
        true,
    )
    .unwrap();
    env.run(&[
        "load",
        "-p",
        xco2.to_str().unwrap(),
        "-m",
        "XCO2Matrix",
        "-n",
        "pts",
    ])
    .ok();
    let md = env.run(&["db", "-n", "pts"]).ok().json();
    let first = md["dates"][0].as_str().unwrap().to_string();
    let csv = env
        .run(&["export", "-n", "pts", "--format", "csv"])
        .ok()
        .stdout;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("timestamp,x,y,value,error"));
    assert_eq!(lines.count(), 300);
    let one = env
        .run(&["export", "-n", "pts", "--format", "csv", "--at", &first])
        .ok()
        .stdout;
    assert!(
        one.lines().count() > 1 && one.lines().count() < 301,
        "{one}"
    );
    assert!(
        one.lines()
            .skip(1)
            .all(|l| l.starts_with(&format!("{first}Z,"))),
        "{one}"
    );
    let png = env.path("pts.png");
    env.run(&[
        "plot",
        "-n",
        "pts",
        "--output",
        png.to_str().unwrap(),
        "--width",
        "500",
    ])
    .ok();
    let (w, _, colours) = png_summary(&png);
    assert_eq!(w, 500);
    assert!(colours > 10, "{colours} colours");

    // KrigedXCO2Matrix: one map with values and errors columns.
    let kriged = env.path("Kriged_20090615_test.mat");
    let grid = fluxpy::synth::Grid::NORTH_AMERICA.with_window(-120.0, -100.0, 30.0, 40.0);
    fluxpy::synth::write_mat_v5(
        &kriged,
        "krigedData",
        &fluxpy::synth::kriged_matrix(&grid, 166.0),
        true,
    )
    .unwrap();
    env.run(&[
        "load",
        "-p",
        kriged.to_str().unwrap(),
        "-m",
        "KrigedXCO2Matrix",
        "-n",
        "map",
    ])
    .ok();
    let csv = env
        .run(&[
            "export",
            "-n",
            "map",
            "--format",
            "csv",
            "--at",
            "2009-06-15",
        ])
        .ok()
        .stdout;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("x,y,values,errors"));
    assert_eq!(lines.count(), grid.cells());
    let png = env.path("map.png");
    env.run(&[
        "plot",
        "-n",
        "map",
        "--param",
        "errors",
        "--output",
        png.to_str().unwrap(),
    ])
    .ok();
    assert!(png_summary(&png).2 > 10);
}
