//! A dataset holds what was read, and says nothing else: a file of another
//! model or precision is refused before anything is written, statistics are
//! exact or refused, keys that change nothing say so, over-size documents
//! are refused, and repeated points are counted as they are stored.

use crate::common;

use std::path::PathBuf;

use common::{sample, Env, Run};
use fluxpy::synth;
use ndarray::Array2;

const STM: &str = "SpatioTemporalMatrix";
const KRIGED: &str = "KrigedXCO2Matrix";
const XCO2: &str = "XCO2Matrix";

/// What a store holds, to see that a refused load changed nothing.
fn state(env: &Env) -> String {
    let listing = env.run(&["db", "-l", "collections", "-x"]).ok().stdout;
    let metadata = env.run(&["db", "-l", "metadata"]).stdout;
    let mut exports = String::new();
    for name in ["s", "k", "x"] {
        exports += &env.run(&["export", "-n", name]).stdout;
        exports += &env.run(&["db", "-n", name]).stdout;
    }
    format!("{listing}\n{metadata}\n{exports}")
}

fn write(env: &Env, file: &str, var: &str, m: &Array2<f64>) -> PathBuf {
    let p = env.path(file);
    synth::write_mat_v5(&p, var, m, true).unwrap();
    p
}

fn small_grid() -> synth::Grid {
    synth::Grid::NORTH_AMERICA.with_window(-100.0, -90.0, 30.0, 36.0)
}

fn kriged_file(env: &Env, day: u32) -> PathBuf {
    let m = synth::kriged_matrix(&small_grid(), f64::from(day));
    write(
        env,
        &format!("Kriged_200906{day:02}_x.mat"),
        "krigedData",
        &m,
    )
}

fn xco2_file(env: &Env) -> PathBuf {
    write(
        env,
        "XCO2_20090615_x.mat",
        "xco2",
        &synth::xco2_matrix(40, 2009, 166, 3),
    )
}

fn grid_file(env: &Env, file: &str) -> PathBuf {
    write(
        env,
        file,
        "flux",
        &synth::flux_matrix(&small_grid(), 4, 3.0),
    )
}

/// A refused load: exit 1, one line naming every needle, the store as it was.
fn refused(env: &Env, r: &Run, needles: &[&str], before: &str) {
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "'{n}' not in: {}", r.stderr);
    }
    assert_eq!(state(env), before, "a refused load changed the store");
}

#[test]
fn a_file_of_another_model_is_refused_before_anything_is_written() {
    let env = Env::new();
    let s = sample();
    env.load(&s, STM, "s", &[]).ok();
    let k = kriged_file(&env, 15);
    env.load(&k, KRIGED, "k", &[]).ok();
    let x = xco2_file(&env);
    env.load(&x, XCO2, "x", &[]).ok();
    let before = state(&env);

    // Each dataset refuses each other model, naming the dataset, the model
    // it holds and the one given; a dry run refuses it the same way.
    let cases: [(&PathBuf, &str, &str, &str); 6] = [
        (&k, KRIGED, "s", STM),
        (&x, XCO2, "s", STM),
        (&s, STM, "k", KRIGED),
        (&x, XCO2, "k", KRIGED),
        (&s, STM, "x", XCO2),
        (&k, KRIGED, "x", XCO2),
    ];
    for (file, model, name, stored) in cases {
        let needles = [
            &format!("collection '{name}'")[..],
            &format!("holds {stored}"),
            &format!("loaded as {model}"),
            file.file_name().unwrap().to_str().unwrap(),
        ];
        let opts = ["-o", "timestamp=2009-06-20"];
        let r = env.load(file, model, name, &opts);
        refused(&env, &r, &needles, &before);
        let r = env.load(
            file,
            model,
            name,
            &["-o", "timestamp=2009-06-20", "--dry-run"],
        );
        refused(&env, &r, &needles, &before);
    }
    // The dataset is still whole: audit and export agree.
    env.run(&["db", "-a"]).ok();
    for name in ["s", "k", "x"] {
        env.run(&["export", "-n", name]).ok();
    }
    // The same model still adds to it.
    let k2 = kriged_file(&env, 21);
    env.load(&k2, KRIGED, "k", &[]).ok();
    let dates = env.run(&["db", "-n", "k"]).ok().json();
    assert_eq!(dates["dates"].as_array().unwrap().len(), 2, "{dates}");
}

#[test]
fn a_later_load_with_another_precision_is_refused() {
    let env = Env::new();
    let a = grid_file(&env, "a.mat");
    let b = grid_file(&env, "b.mat");
    let ts = "timestamp=2004-06-30";
    env.load(&a, STM, "s", &["-o", &format!("{ts};precision=3")])
        .ok();
    let before = state(&env);
    for (p, dry) in [("2", false), ("4", false), ("0", true), ("15", false)] {
        let o = format!("timestamp=2004-07-30;precision={p}");
        let mut extra = vec!["-o", &o];
        if dry {
            extra.push("--dry-run");
        }
        let r = env.load(&b, STM, "s", &extra);
        refused(
            &env,
            &r,
            &[
                "collection 's'",
                "precision 3",
                &format!("precision {p}"),
                "b.mat",
            ],
            &before,
        );
    }
    // Without precision, the model's default (2) is not the stored 3 either.
    let r = env.load(&b, STM, "s", &["-o", "timestamp=2004-07-30"]);
    refused(&env, &r, &["precision 3", "precision 2"], &before);
    // The same precision adds.
    env.load(&b, STM, "s", &["-o", "timestamp=2004-07-30;precision=3"])
        .ok();
    let times = env.run(&["db", "-n", "s", "--times"]).ok().stdout;
    assert_eq!(times.lines().count(), 8, "{times}");
}

/// mean, min, max, sample std and median of `values` rounded as the old
/// tool did (`float('%.Nf' % x)`), in exact rational arithmetic by Python:
/// an independent reference for the statistics of extreme values.
const EXACT_STATS: &str = r#"
import json, sys
from fractions import Fraction
from decimal import Decimal, getcontext
getcontext().prec = 60
p = int(sys.argv[1])
v = sorted(float('%.*f' % (p, x)) for x in json.loads(sys.argv[2]))
n = len(v)
f = [Fraction(x) for x in v]
mean = sum(f) / n
var = sum((x - mean) ** 2 for x in f) / (n - 1)
std = (Decimal(var.numerator) / Decimal(var.denominator)).sqrt()
h = n // 2
median = f[h] if n % 2 else (f[h - 1] + f[h]) / 2
print(json.dumps({"rounded": v, "stats": [float(mean), v[0], v[-1], float(std), float(median)]}))
"#;

fn exact_stats(python: &std::path::Path, precision: u32, values: &[f64]) -> (Vec<f64>, [f64; 5]) {
    let out = std::process::Command::new(python)
        .args(["-c", EXACT_STATS, &precision.to_string()])
        .arg(serde_json::to_string(values).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rounded = j["rounded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let s: Vec<f64> = j["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    (rounded, s.try_into().unwrap())
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    a == b || ((a - b) / b).abs() <= rel
}

/// A grid of `values.len() / steps` cells and `steps` steps holding `values`
/// cell by cell; coordinates x = cell number, y = `y`.
fn grid_of(values: &[f64], steps: usize, y: f64) -> Array2<f64> {
    let cells = values.len() / steps;
    Array2::from_shape_fn((cells, 2 + steps), |(i, j)| match j {
        0 => i as f64,
        1 => y,
        _ => values[i * steps + j - 2],
    })
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn statistics_of_values_of_any_magnitude_are_exact() {
    let python = common::python_with(&["fractions", "decimal"]);
    let cases: [(u32, Vec<f64>); 5] = [
        // Sums, squares and the middle pair over the largest double.
        (2, vec![1e308, -1e308, 1.5e308, 1.2e308, 0.25, -7.5]),
        // Squares of ±1e300 overflow; a plain sum does not.
        (3, vec![1e300, -1e300, 1e300, 2.5, -1.125, 0.0]),
        // 1e20 · 10^2 units are more than an i64 holds.
        (2, vec![1e20, 3e20, 2e20, 2e20, 1.5, -4e20]),
        // Precision 15: 100 · 10^15 units already are.
        (
            15,
            vec![
                100.12345678901234,
                99.5,
                101.25,
                100.123456789012,
                3.0,
                250.75,
            ],
        ),
        // Coordinates far out, values at precision 5.
        (5, vec![1e305, 2e305, 12345.678901, -0.00001, 5.5, 6.25]),
    ];
    for (precision, values) in cases {
        let env = Env::new();
        let half = values.len() / 2;
        // Two loads: a fresh dataset, then an append of new times.
        let (a, b) = (&values[..half], &values[half..]);
        let y = if precision == 5 { 1e305 } else { 1.0 };
        let fa = write(&env, "a.mat", "flux", &grid_of(a, 1, y));
        let fb = write(&env, "b.mat", "flux", &grid_of(b, 1, y));
        let o = format!("timestamp=2004-06-30;precision={precision}");
        env.load(&fa, STM, "s", &["-o", &o]).ok();
        let o = format!("timestamp=2004-07-30;precision={precision}");
        env.load(&fb, STM, "s", &["-o", &o]).ok();

        let (rounded, want) = exact_stats(&python, precision, &values);
        let md = env.run(&["db", "-n", "s"]).ok().json();
        let st = &md["stats"]["values"];
        let got: Vec<f64> = ["mean", "min", "max", "std", "median"]
            .iter()
            .map(|k| st[k].as_f64().unwrap_or_else(|| panic!("{k}: {st}")))
            .collect();
        for (i, k) in ["mean", "min", "max", "std", "median"].iter().enumerate() {
            let rel = if *k == "std" { 1e-12 } else { 1e-15 };
            assert!(
                close(got[i], want[i], rel),
                "precision {precision} {values:?}: {k} is {} not {}",
                got[i],
                want[i]
            );
        }
        // What is stored is what was read, rounded: no value became Infinity.
        let mut stored: Vec<f64> = env
            .run(&["export", "-n", "s"])
            .ok()
            .json_lines()
            .iter()
            .flat_map(|d| d["values"].as_array().unwrap().clone())
            .map(|v| v.as_f64().unwrap())
            .collect();
        stored.sort_by(f64::total_cmp);
        assert_eq!(stored, rounded, "precision {precision}");
        if precision == 5 {
            let bbox = md["bbox"].as_array().unwrap();
            assert_eq!(bbox[1].as_f64(), Some(1e305), "{md}");
        }
    }
}

#[test]
fn keys_that_change_nothing_are_named_in_a_warning_each() {
    let env = Env::new();
    let g = grid_file(&env, "g.mat");
    // The model's own values (the sample's config has them): no warning.
    let r = env.load(&sample(), STM, "s", &[]).ok();
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let o = "timestamp=2004-06-30;header=['lng','lat'];parameters=['values']";
    let r = env.load(&g, STM, "t", &["-o", o]).ok();
    assert!(r.stderr.is_empty(), "{}", r.stderr);

    // Other values: one line per key, naming it and where it was given.
    let o = "timestamp=2004-07-30;parameters=['flux']";
    let r = env.load(&g, STM, "t2", &["-o", o]).ok();
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].starts_with("warning: -o: config key 'parameters' is ignored"),
        "{}",
        r.stderr
    );
    assert!(lines[0].contains("stores values"), "{}", r.stderr);
    let md = env.run(&["db", "-n", "t2"]).ok().json();
    assert!(
        md.get("parameters").is_none() && md["stats"].get("values").is_some(),
        "{md}"
    );

    let cfg = env.path("g_cfg.json");
    std::fs::write(
        &cfg,
        r#"{"timestamp": "2004-08-30", "header": ["lon", "lat"], "formats": {"values": "%.3f"}}"#,
    )
    .unwrap();
    let r = env.load(&g, STM, "t3", &["-c", cfg.to_str().unwrap()]).ok();
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stderr);
    for (line, key) in lines.iter().zip(["header", "formats"]) {
        assert!(
            line.contains(&format!("config key '{key}' is ignored")),
            "{line}"
        );
        assert!(line.contains("g_cfg.json"), "{line}");
    }
    // -q keeps stderr for errors.
    let r = env
        .load(&g, STM, "t4", &["-q", "-c", cfg.to_str().unwrap()])
        .ok();
    assert!(r.stderr.is_empty(), "{}", r.stderr);

    // Kriged has no header; its parameters are values and errors.
    let k = kriged_file(&env, 15);
    let r = env
        .load(
            &k,
            KRIGED,
            "k",
            &["-o", "header=['a','b'];parameters=['values']"],
        )
        .ok();
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stderr);
    assert!(lines[0].contains("'header'"), "{}", r.stderr);
    assert!(
        lines[1].contains("'parameters'") && lines[1].contains("values and errors"),
        "{}",
        r.stderr
    );
}

/// `manage ARGS` on `db` (the embedded store of `env` when `None`).
fn on(env: &Env, db: Option<&str>, args: &[&str]) -> Run {
    let mut a: Vec<&str> = db.map(|d| vec!["--db", d]).unwrap_or_default();
    a.extend(args);
    env.run(&a)
}

fn oversize_documents_are_refused_in(env: &Env, db: Option<&str>) {
    let g = grid_file(env, "g.mat");
    let g_path = g.to_str().unwrap();
    on(
        env,
        db,
        &[
            "load",
            "-p",
            g_path,
            "-m",
            STM,
            "-n",
            "s",
            "-o",
            "timestamp=2004-06-30",
        ],
    )
    .ok();
    let state = || {
        let mut out = on(env, db, &["db", "-l", "collections", "-x"]).ok().stdout;
        out += &on(env, db, &["db", "-l", "metadata"]).ok().stdout;
        out += &on(env, db, &["export", "-n", "s"]).ok().stdout;
        out += &on(env, db, &["db", "-n", "s"]).ok().stdout;
        out
    };
    let before = state();
    // A config with a 50 MB value: refused, into a new dataset or an
    // existing one, loaded or dry-run, and the store is unchanged.
    let big = env.path("big.json");
    let notes = "x".repeat(50 << 20);
    std::fs::write(
        &big,
        format!(r#"{{"timestamp": "2004-07-30", "notes": "{notes}"}}"#),
    )
    .unwrap();
    for (name, dry) in [("new", false), ("s", false), ("new", true)] {
        let mut a = vec![
            "load",
            "-q",
            "-p",
            g_path,
            "-m",
            STM,
            "-n",
            name,
            "-c",
            big.to_str().unwrap(),
        ];
        if dry {
            a.push("--dry-run");
        }
        let r = on(env, db, &a);
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        // Refused as a config larger than any config (1 MiB), before it
        // is read, and so before its metadata could be made.
        for n in ["big.json", "larger than 1024 KiB"] {
            assert!(r.stderr.contains(n), "'{n}' not in {}", r.stderr);
        }
        assert_eq!(state(), before);
    }
    // A kriged map too large for one document: refused before it is read.
    let n = 600_000;
    let m = Array2::from_shape_fn((n, 9), |(i, j)| match j {
        0 => (i / 1000) as f64 * 0.01,
        1 => (i % 1000) as f64 * 0.01,
        _ => 1.0,
    });
    let k = write(env, "Kriged_20090615_big.mat", "krigedData", &m);
    let r = on(
        env,
        db,
        &["load", "-p", k.to_str().unwrap(), "-m", KRIGED, "-n", "k"],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    for n in [
        "Kriged_20090615_big.mat",
        "600000 cells",
        "16 MiB",
        "at most",
    ] {
        assert!(r.stderr.contains(n), "'{n}' not in {}", r.stderr);
    }
    assert_eq!(state(), before);
    // One that fits loads.
    let small = m.slice(ndarray::s![..400_000, ..]).to_owned();
    let k = write(env, "Kriged_20090615_fits.mat", "krigedData", &small);
    on(
        env,
        db,
        &[
            "load",
            "-q",
            "-p",
            k.to_str().unwrap(),
            "-m",
            KRIGED,
            "-n",
            "k",
        ],
    )
    .ok();
}

#[test]
fn documents_over_the_limit_are_refused_before_anything_is_written() {
    oversize_documents_are_refused_in(&Env::new(), None);
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn documents_over_the_limit_are_refused_before_anything_is_written_on_mongodb() {
    let db = common::FreshDb::new(&common::mongodb_uri());
    oversize_documents_are_refused_in(&Env::new(), Some(&db.uri));
}

#[test]
fn repeated_points_are_refused_naming_the_rows_and_the_rest_is_counted_as_stored() {
    let env = Env::new();
    let x = xco2_file(&env);
    env.load(&x, XCO2, "x", &[]).ok();
    let before = state(&env);
    let base = synth::xco2_matrix(40, 2009, 166, 3);
    let with = |edit: &dyn Fn(&mut Array2<f64>)| {
        let mut m = base.clone();
        edit(&mut m);
        m
    };
    // Row 31 repeats row 6: exactly; with another value; a hair away (the
    // same point to 5 decimals); and as a third copy of row 2.
    let cases: [(Array2<f64>, &str); 4] = [
        (
            with(&|m| {
                let r = m.row(5).to_owned();
                m.row_mut(30).assign(&r)
            }),
            "rows 6 and 31",
        ),
        (
            with(&|m| {
                let r = m.row(5).to_owned();
                m.row_mut(30).assign(&r);
                m[[30, 2]] = 999.0;
            }),
            "rows 6 and 31",
        ),
        (
            with(&|m| {
                m[[5, 0]] = (m[[5, 0]] * 1e5).round() / 1e5;
                let r = m.row(5).to_owned();
                m.row_mut(30).assign(&r);
                m[[30, 0]] += 3e-6;
            }),
            "rows 6 and 31",
        ),
        (
            with(&|m| {
                let r = m.row(1).to_owned();
                m.row_mut(20).assign(&r);
                m.row_mut(39).assign(&r);
            }),
            "rows 2 and 21",
        ),
    ];
    for (i, (m, rows)) in cases.iter().enumerate() {
        let f = write(&env, &format!("XCO2_20090615_dup{i}.mat"), "xco2", m);
        for name in ["x", "fresh"] {
            for dry in [false, true] {
                let extra: &[&str] = if dry { &["--dry-run"] } else { &[] };
                let r = env.load(&f, XCO2, name, extra);
                refused(
                    &env,
                    &r,
                    &[&format!("dup{i}.mat"), rows, "same point on the same day"],
                    &before,
                );
                // The document both rows would be.
                let id = r
                    .stderr
                    .split("document '")
                    .nth(1)
                    .unwrap()
                    .split('\'')
                    .next()
                    .unwrap();
                assert!(id.starts_with("2009-06-1"), "{}", r.stderr);
            }
        }
    }
    // The same point on another day is another document: every row counts.
    let m = with(&|m| {
        let r = m.row(5).to_owned();
        m.row_mut(30).assign(&r);
        m[[30, 3]] += 1.0;
    });
    let f = write(&env, "XCO2_20090615_other_day.mat", "xco2", &m);
    let r = env.load(&f, XCO2, "y", &["--json"]).ok();
    assert_eq!(r.json()["documents"], 40, "{}", r.stdout);
    let stored = env.run(&["export", "-n", "y"]).ok().stdout.lines().count();
    assert_eq!(stored, 40);
}
