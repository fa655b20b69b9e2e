//! A dataset holds what was read, and says nothing else: a file of another
//! model or precision is refused before anything is written, statistics are
//! exact or refused, keys that change nothing say so, over-size documents
//! are refused, and repeated points are counted as they are stored.

mod common;

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

fn load(env: &Env, path: &std::path::Path, model: &str, name: &str, extra: &[&str]) -> Run {
    let mut a = vec![
        "load",
        "-p",
        path.to_str().unwrap(),
        "-m",
        model,
        "-n",
        name,
    ];
    a.extend(extra);
    env.run(&a)
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
    load(&env, &s, STM, "s", &[]).ok();
    let k = kriged_file(&env, 15);
    load(&env, &k, KRIGED, "k", &[]).ok();
    let x = xco2_file(&env);
    load(&env, &x, XCO2, "x", &[]).ok();
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
        let r = load(&env, file, model, name, &opts);
        refused(&env, &r, &needles, &before);
        let r = load(
            &env,
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
    load(&env, &k2, KRIGED, "k", &[]).ok();
    let dates = env.run(&["db", "-n", "k"]).ok().json();
    assert_eq!(dates["dates"].as_array().unwrap().len(), 2, "{dates}");
}

#[test]
fn a_later_load_with_another_precision_is_refused() {
    let env = Env::new();
    let a = grid_file(&env, "a.mat");
    let b = grid_file(&env, "b.mat");
    let ts = "timestamp=2004-06-30";
    load(&env, &a, STM, "s", &["-o", &format!("{ts};precision=3")]).ok();
    let before = state(&env);
    for (p, dry) in [("2", false), ("4", false), ("0", true), ("15", false)] {
        let o = format!("timestamp=2004-07-30;precision={p}");
        let mut extra = vec!["-o", &o];
        if dry {
            extra.push("--dry-run");
        }
        let r = load(&env, &b, STM, "s", &extra);
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
    let r = load(&env, &b, STM, "s", &["-o", "timestamp=2004-07-30"]);
    refused(&env, &r, &["precision 3", "precision 2"], &before);
    // The same precision adds.
    load(
        &env,
        &b,
        STM,
        "s",
        &["-o", "timestamp=2004-07-30;precision=3"],
    )
    .ok();
    let times = env.run(&["db", "-n", "s", "--times"]).ok().stdout;
    assert_eq!(times.lines().count(), 8, "{times}");
}
