//! Missing values are stored as the old tool stored them: the BSON doubles
//! NaN, +Infinity and -Infinity, never null (which crashes the Carbon Data
//! Explorer's server), on both stores and for every model; `export` writes
//! them as relaxed Extended JSON does, CSV as empty fields; stores written
//! with null by earlier versions still read, export and append, and
//! `db -a` names them, `db -a --fix` rewrites them as NaN.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bson::{Bson, Document};
use common::{mongodb_test_uri, python_with, run_python, Env, FreshDb, Run, MONGODB_URI};
use fluxpy::store::{Filter, Store};
use serde_json::{json, Value};

fn oldtool(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/oldtool")
        .join(name);
    assert!(p.is_file(), "fixture {} is missing", p.display());
    p
}

fn python() -> PathBuf {
    python_with(&["numpy", "scipy"]).expect("python3 with numpy and scipy is needed for this test")
}

fn mongo_uri() -> String {
    mongodb_test_uri(MONGODB_URI).unwrap_or_else(|| {
        panic!("{MONGODB_URI} is not set: run this test inside scripts/with-mongodb")
    })
}

/// Three small MAT files with NaN and infinite values, one per model.
const MAKE_MATS: &str = r#"
import sys, numpy as np, scipy.io as sio
d = sys.argv[1]
nan, inf = float('nan'), float('inf')
sio.savemat(d + '/grid.mat', {'grid': np.array([
    [-100.5, 40.5, 1.234, nan, inf],
    [-99.5, 40.5, -inf, 0.5, nan],
    [-98.5, 41.5, 2.0, 3.0, 4.006],
])})
# y, x, value, variance, then 5 unused columns: a NaN value, a negative variance.
sio.savemat(d + '/Kriged_20090615_t.mat', {'krigedData': np.array([
    [40.5, -100.5, 386.94, 0.25, 0, 0, 0, 0, 0],
    [40.5, -99.5, nan, 1.0, 0, 0, 0, 0, 0],
    [41.5, -98.5, 387.0, -1.0, 0, 0, 0, 0, 0],
])})
# x, y, value, day of year, year, error.
sio.savemat(d + '/XCO2_20090615_t.mat', {'XCO2': np.array([
    [-100.5, 40.5, 386.5, 166, 2009, 0.5],
    [-99.5, 40.5, nan, 166, 2009, 0.25],
    [-98.5, 41.5, 387.25, 166, 2009, inf],
])})
"#;

/// Where each dataset of [`MAKE_MATS`] goes: (name, file, model, options).
const DATASETS: [(&str, &str, &str, &str); 3] = [
    (
        "grid",
        "grid.mat",
        "SpatioTemporalMatrix",
        "timestamp=2004-06-30",
    ),
    ("kriged", "Kriged_20090615_t.mat", "KrigedXCO2Matrix", ""),
    ("points", "XCO2_20090615_t.mat", "XCO2Matrix", ""),
];

fn nan() -> Value {
    json!({"$numberDouble": "NaN"})
}
fn inf() -> Value {
    json!({"$numberDouble": "Infinity"})
}
fn neg_inf() -> Value {
    json!({"$numberDouble": "-Infinity"})
}

/// `manage ARGS` against `db` (an embedded file or a MongoDB URI).
fn run(db: &str, args: &[&str]) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_manage"))
        .args(args)
        .env("FLUXPY_DB", db)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run manage");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn load_all(db: &str, dir: &Path) {
    for (name, file, model, o) in DATASETS {
        let path = dir.join(file);
        let mut args = vec![
            "load",
            "-p",
            path.to_str().unwrap(),
            "-m",
            model,
            "-n",
            name,
        ];
        if !o.is_empty() {
            args.extend(["-o", o]);
        }
        run(db, &args).ok();
    }
}

/// The exported documents (JSON lines) of every dataset, and the checks
/// of what they say: the forms of NaN and the infinities, numbers rounded
/// elsewhere, statistics over the finite values only.
fn check_exports(db: &str) {
    let grid = run(db, &["export", "-n", "grid"]).ok().json_lines();
    let values: Vec<&Value> = grid.iter().map(|d| &d["values"]).collect();
    assert_eq!(values[0], &json!([1.23, neg_inf(), 2.0]));
    assert_eq!(values[1], &json!([nan(), 0.5, 3.0]));
    assert_eq!(values[2], &json!([inf(), nan(), 4.01]));
    // Statistics of the six finite values only: 0.5, 1.23, 2, 3, 4.01.
    let md = run(db, &["db", "-n", "grid"]).ok().json();
    let stats = &md["stats"]["values"];
    assert_eq!(stats["min"], json!(0.5), "{md}");
    assert_eq!(stats["max"], json!(4.01), "{md}");
    assert_eq!(stats["median"], json!(2.0), "{md}");
    let mean = (0.5 + 1.23 + 2.0 + 3.0 + 4.01) / 5.0;
    assert!(
        (stats["mean"].as_f64().unwrap() - mean).abs() < 1e-12,
        "{md}"
    );

    let kriged = run(db, &["export", "-n", "kriged"]).ok().json_lines();
    assert_eq!(kriged[0]["values"], json!([386.9, nan(), 387.0]));
    // sqrt(0.25), sqrt(1), and a negative variance, which has no root.
    assert_eq!(kriged[0]["errors"], json!([0.5, 1.0, nan()]));

    let points = run(db, &["export", "-n", "points"]).ok().json_lines();
    let at = |x: f64| {
        &points
            .iter()
            .find(|d| d["coordinates"][0] == json!(x))
            .unwrap_or_else(|| panic!("no point at x = {x}"))["properties"]
    };
    assert_eq!(at(-100.5), &json!({"value": 386.5, "error": 0.5}));
    assert_eq!(at(-99.5), &json!({"value": nan(), "error": 0.25}));
    assert_eq!(at(-98.5), &json!({"value": 387.25, "error": inf()}));

    // CSV: a missing value is an empty field.
    let csv = run(
        db,
        &[
            "export",
            "-n",
            "grid",
            "--at",
            "2004-06-30T03:00:00",
            "--format",
            "csv",
        ],
    )
    .ok()
    .stdout;
    assert_eq!(
        csv,
        "x,y,values\n-100.5,40.5,\n-99.5,40.5,0.5\n-98.5,41.5,3\n"
    );
    let csv = run(db, &["export", "-n", "points", "--format", "csv"])
        .ok()
        .stdout;
    assert!(
        csv.lines().any(|r| r.ends_with(",-99.5,40.5,,0.25")),
        "{csv}"
    );
    assert!(
        csv.lines().any(|r| r.ends_with(",-98.5,41.5,387.25,")),
        "{csv}"
    );
}

/// What the store holds for the missing values, read through the library:
/// doubles, NaN and ±Infinity, never null.
fn check_stored(store: &dyn Store) {
    let mut docs: Vec<Document> = vec![];
    store
        .scan("grid", &Filter::All, &mut |d| {
            docs.push(d);
            Ok(())
        })
        .unwrap();
    let bits = |d: &Document| -> Vec<u64> {
        d.get_array("values")
            .unwrap()
            .iter()
            .map(|v| match v {
                Bson::Double(x) => x.to_bits(),
                other => panic!("a stored value is {other:?}, not a double"),
            })
            .collect()
    };
    assert_eq!(bits(&docs[0])[1], f64::NEG_INFINITY.to_bits());
    assert_eq!(bits(&docs[1])[0], f64::NAN.to_bits());
    assert_eq!(bits(&docs[2])[0], f64::INFINITY.to_bits());
    assert_eq!(bits(&docs[2])[1], f64::NAN.to_bits());
    let mut points = vec![];
    store
        .scan("points", &Filter::All, &mut |d| {
            points.push(d);
            Ok(())
        })
        .unwrap();
    let value = points
        .iter()
        .find(|d| d.get_array("coordinates").unwrap()[0] == Bson::Double(-99.5))
        .unwrap()
        .get_document("properties")
        .unwrap()
        .get("value");
    assert!(
        matches!(value, Some(Bson::Double(x)) if x.is_nan()),
        "{value:?}"
    );
}

#[test]
fn nan_and_infinity_are_stored_as_doubles_in_the_embedded_store() {
    let env = Env::new();
    run_python(&python(), MAKE_MATS, &[env.dir.path().to_str().unwrap()]);
    let db = env.db();
    let db = db.to_str().unwrap();
    load_all(db, env.dir.path());
    check_exports(db);
    let store = fluxpy::store::embedded::Embedded::open(&env.db()).unwrap();
    check_stored(&store);
    // A store written so audits clean.
    let audit = run(db, &["db", "-a"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);
}

#[test]
fn nan_and_infinity_are_stored_as_doubles_in_mongodb() {
    let uri = mongo_uri();
    let fresh = FreshDb::new(&uri);
    let env = Env::new();
    run_python(&python(), MAKE_MATS, &[env.dir.path().to_str().unwrap()]);
    load_all(&fresh.uri, env.dir.path());
    check_exports(&fresh.uri);
    check_stored(&fresh.store);
    let audit = run(&fresh.uri, &["db", "-a"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);
}

/// A canonical Extended JSON number of the old tool's documents.
fn canonical(v: &Value) -> f64 {
    let s = v["$numberDouble"].as_str().expect("a $numberDouble");
    s.parse().unwrap_or_else(|_| panic!("{s}"))
}

/// The relaxed form `export` writes.
fn relaxed(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::Object(_) => match v["$numberDouble"].as_str().unwrap() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            s => panic!("{s}"),
        },
        other => panic!("a stored value is {other}"),
    }
}

/// `casanan.mat` loaded with its config gives the old tool's documents:
/// NaN where they have NaN, the same numbers elsewhere (the old tool's
/// `casa_nan.jsonl`, written by its own `manage.py`, is the reference).
#[test]
fn the_old_tools_nan_documents_are_reproduced() {
    let env = Env::new();
    let mat = oldtool("casanan.mat");
    let config = oldtool("casanan.json");
    env.run(&[
        "load",
        "-p",
        mat.to_str().unwrap(),
        "-c",
        config.to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "casa_nan",
    ])
    .ok();
    let ours = env.run(&["export", "-n", "casa_nan"]).ok().json_lines();
    let reference: Vec<Value> = std::fs::read_to_string(oldtool("casa_nan.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_time: HashMap<i64, &Value> = reference
        .iter()
        .map(|d| {
            let ms: i64 = d["_id"]["$date"]["$numberLong"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            (ms, d)
        })
        .collect();
    assert_eq!(ours.len(), reference.len());
    let (mut nans, mut numbers) = (0, 0);
    for d in &ours {
        let at = d["_id"]["$date"].as_str().unwrap();
        let ms = chrono::DateTime::parse_from_rfc3339(at)
            .unwrap()
            .timestamp_millis();
        let want = by_time[&ms]["values"].as_array().unwrap();
        let got = d["values"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{at}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let (g, w) = (relaxed(g), canonical(w));
            if w.is_nan() {
                assert!(g.is_nan(), "{at} cell {i}: {g}, the old tool stored NaN");
                assert_eq!(d["values"][i], nan());
                nans += 1;
            } else {
                // Equal as numbers: where the old tool stored -0.0, manage
                // stores 0.0 (it never stores a negative zero).
                assert!(g == w, "{at} cell {i}: {g} vs {w}");
                numbers += 1;
            }
        }
    }
    // Cell 0 at the first step and cell 5 at every step: 9 NaN.
    assert_eq!(nans, 9);
    assert!(numbers > 20_000, "{numbers}");
}

/// Write every NaN of dataset `name` back as null, as earlier versions
/// stored missing values, straight through the library.
fn store_nulls_the_old_way(store: &dyn Store, name: &str) -> usize {
    let mut docs = vec![];
    store
        .scan(name, &Filter::All, &mut |d| {
            docs.push(d);
            Ok(())
        })
        .unwrap();
    let mut n = 0;
    for mut d in docs {
        if let Ok(values) = d.get_array_mut("values") {
            for v in values.iter_mut() {
                if matches!(v, Bson::Double(x) if !x.is_finite()) {
                    *v = Bson::Null;
                    n += 1;
                }
            }
        }
        store.put(name, &d).unwrap();
    }
    n
}

/// A dataset stored with nulls (as earlier versions did) reads, exports
/// and appends; `db -a` names it (exit 3), `db -a --fix` rewrites its
/// nulls as NaN, after which it audits clean and exports NaN.
fn nulls_written_earlier(db: &str, open: &dyn Fn() -> Box<dyn Store>) {
    let mat = oldtool("casanan.mat");
    let config = oldtool("casanan.json");
    let load = |extra: &[&str]| {
        let mut args = vec![
            "load",
            "-p",
            mat.to_str().unwrap(),
            "-c",
            config.to_str().unwrap(),
            "-m",
            "SpatioTemporalMatrix",
            "-n",
            "casa_nan",
        ];
        args.extend(extra);
        run(db, &args)
    };
    load(&[]).ok();
    // Written and closed before the binary runs again.
    assert_eq!(store_nulls_the_old_way(&*open(), "casa_nan"), 9);
    let before = run(db, &["export", "-n", "casa_nan"]).ok().json_lines();
    assert_eq!(before[0]["values"][0], Value::Null);
    assert_eq!(before[0]["values"][5], Value::Null);
    // CSV: empty, as NaN is.
    let csv = run(
        db,
        &[
            "export",
            "-n",
            "casa_nan",
            "--at",
            "2012-12-22T03:00:00",
            "--format",
            "csv",
        ],
    )
    .ok()
    .stdout;
    assert!(csv.lines().nth(1).unwrap().ends_with(','), "{csv}");

    let audit = run(db, &["db", "-a"]);
    assert_eq!(audit.code, 3, "{}{}", audit.stdout, audit.stderr);
    let line = audit
        .stdout
        .lines()
        .find(|l| l.contains("'casa_nan'"))
        .unwrap_or_else(|| panic!("{}", audit.stdout));
    assert!(
        line.contains("9 missing values") && line.contains("null"),
        "{line}"
    );
    assert!(line.contains("--fix"), "{line}");

    // Appending to it: the same file at later times.
    load(&["-o", "timestamp=2012-12-23T03:00:00"]).ok();
    let appended = run(db, &["export", "-n", "casa_nan"]).ok().json_lines();
    assert_eq!(appended.len(), 16);
    // The old documents kept their nulls; the new ones have NaN.
    assert_eq!(appended[0]["values"][0], Value::Null);
    assert_eq!(appended[8]["values"][0], nan());
    let md = run(db, &["db", "-n", "casa_nan"]).ok().json();
    assert_eq!(
        md["dates"],
        json!(["2012-12-22T03:00:00", "2012-12-24T00:00:00"])
    );

    let fixed = run(db, &["db", "-a", "--fix"]);
    assert_eq!(fixed.code, 0, "{}{}", fixed.stdout, fixed.stderr);
    assert!(
        fixed
            .stdout
            .contains("rewrote 9 missing values of 'casa_nan'"),
        "{}",
        fixed.stdout
    );
    let after = run(db, &["export", "-n", "casa_nan"]).ok().json_lines();
    assert_eq!(after.len(), 16);
    for (a, b) in after.iter().zip(&appended) {
        for (x, y) in a["values"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["values"].as_array().unwrap())
        {
            if y.is_null() {
                assert_eq!(x, &nan());
            } else {
                assert_eq!(x, y);
            }
        }
    }
    assert_eq!(after[0]["values"][5], nan());
    // The statistics did not change: missing values never counted.
    assert_eq!(
        run(db, &["db", "-n", "casa_nan"]).ok().json()["stats"],
        md["stats"]
    );
    assert_eq!(run(db, &["db", "-a"]).code, 0);
}

#[test]
fn nulls_of_earlier_versions_read_append_and_are_fixed_in_the_embedded_store() {
    let env = Env::new();
    let db = env.db();
    nulls_written_earlier(db.to_str().unwrap(), &|| {
        Box::new(fluxpy::store::embedded::Embedded::open(&db).unwrap())
    });
}

#[test]
fn nulls_of_earlier_versions_read_append_and_are_fixed_in_mongodb() {
    let uri = mongo_uri();
    let fresh = FreshDb::new(&uri);
    nulls_written_earlier(&fresh.uri, &|| {
        Box::new(fluxpy::store::mongo::Mongo::open_database(&uri, &fresh.name).unwrap())
    });
}
