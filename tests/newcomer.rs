//! What a new user meets first: help that teaches the models, the shipped
//! configs, the times of a dataset, the wording of messages, completions
//! and the manual page.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, sample, Env};

const STM: &str = "SpatioTemporalMatrix";

fn configs(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn load_help_teaches_each_models_matrix_required_keys_and_defaults() {
    let env = Env::new();
    let help = env.run(&["load", "--help"]).ok().stdout;
    // The shapes, keys and defaults of the behaviour contract (SPEC.md).
    for expected in [
        "SpatioTemporalMatrix (mediator Grid4D)",
        "N x (2+T): x, y, then T time steps",
        "required: timestamp",
        "steps=[10800]",
        "KrigedXCO2Matrix (mediator Grid3D)",
        "N x 9: y, x, values, errors",
        "spans=[518400]",
        "var_name=\"krigedData\"",
        "title=\"Kriged XCO2\"",
        "XCO2Matrix (mediator Unstructured3D)",
        "N x 6: x, y, value, day of year, year, error",
    ] {
        assert!(
            help.contains(expected),
            "load --help lacks {expected:?}:\n{help}"
        );
    }
    // Precision 2, 1 and 2, in the models' order (CFGrid's comes from the file).
    let precisions: Vec<&str> = help
        .split("precision=")
        .skip(1)
        .map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next().unwrap())
        .collect();
    assert_eq!(precisions, ["2", "1", "2"], "{help}");
}

#[test]
fn help_models_prints_the_same_table_and_every_shipped_config() {
    let env = Env::new();
    let models = env.run(&["models"]).ok().stdout;
    assert_eq!(env.run(&["help", "models"]).ok().stdout, models);
    let help = env.run(&["load", "--help"]).ok().stdout;
    let table_start = help.find("Models (-m)").expect("a models table");
    let last = "does not start with __ is read.";
    let table_end =
        table_start + help[table_start..].find(last).expect("its last line") + last.len();
    let table = &help[table_start..table_end];
    assert!(
        models.starts_with(table.trim_end()),
        "{models}\n---\n{table}"
    );
    for model in [
        "SpatioTemporalMatrix",
        "KrigedXCO2Matrix",
        "XCO2Matrix",
        "CFGrid",
    ] {
        let file = std::fs::read_to_string(configs(&format!("{model}.json"))).unwrap();
        assert!(
            models.contains(file.trim_end()),
            "{model}'s config is not shown"
        );
        let _: serde_json::Value = serde_json::from_str(&file).expect("the config is JSON");
    }
}

#[test]
fn the_spatiotemporal_config_loads_the_projects_sample() {
    let env = Env::new();
    let cfg = configs("SpatioTemporalMatrix.json");
    let out = env
        .run(&[
            "load",
            "-p",
            s(&sample()),
            "-m",
            STM,
            "-n",
            "flux",
            "-c",
            s(&cfg),
            "--json",
        ])
        .ok();
    // scipy.io.loadmat reads the sample's flux_na_2004 as 7020 x 10:
    // x, y and 8 steps.
    assert_eq!(out.json()["documents"], 8);
    // The config's timestamp and 3-hour step, worked out by hand.
    let times = env.run(&["db", "-n", "flux", "--times"]).ok().stdout;
    let expected: Vec<String> = (0..8)
        .map(|k| format!("2004-06-30T{:02}:00:00", 3 * k))
        .collect();
    assert_eq!(times.lines().collect::<Vec<_>>(), expected);
}

#[test]
#[cfg_attr(no_fixtures, ignore = "needs ../shared/fixtures/fluxpy")]
fn the_kriged_and_xco2_configs_load_the_old_tools_files() {
    let env = Env::new();
    let kriged = fixture("kriged_xco2.mat").unwrap();
    let cfg = configs("KrigedXCO2Matrix.json");
    let out = env
        .run(&[
            "load",
            "-p",
            s(&kriged),
            "-m",
            "KrigedXCO2Matrix",
            "-n",
            "k",
            "-c",
            s(&cfg),
            "-o",
            "timestamp=2009-06-15",
        ])
        .ok();
    assert!(
        out.stdout.contains("loaded k: 1 document from") && out.stdout.contains("spans 1 time ("),
        "{}",
        out.stdout
    );
    // One map, with the config's span (518400 s, six days).
    let times = env.run(&["db", "-n", "k", "--times"]).ok().stdout;
    assert_eq!(times, "2009-06-15T00:00:00\t518400\n");

    let xco2 = fixture("xco2.mat").unwrap();
    let cfg = configs("XCO2Matrix.json");
    let out = env
        .run(&[
            "load",
            "-p",
            s(&xco2),
            "-m",
            "XCO2Matrix",
            "-n",
            "x",
            "-c",
            s(&cfg),
            "--json",
        ])
        .ok();
    // scipy.io.loadmat reads XCO2 as 1311 x 6: one document per row.
    assert_eq!(out.json()["documents"], 1311);
    let listed: Vec<String> = out.json()["dates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let times = env.run(&["db", "-n", "x", "--times"]).ok().stdout;
    assert_eq!(times.lines().collect::<Vec<_>>(), listed);
}

/// A grid of `steps` steps, written as a MAT v5 file.
fn grid_file(env: &Env, name: &str, steps: usize) -> PathBuf {
    let p = env.path(name);
    let m = fluxpy::synth::flux_matrix(
        &fluxpy::synth::Grid::GLOBAL_HALF_DEGREE.with_window(-10.0, 10.0, -5.0, 5.0),
        steps,
        3.0,
    );
    fluxpy::synth::write_mat_v5(&p, "flux", &m, false).unwrap();
    p
}

#[test]
fn times_lists_every_stored_time_even_with_gaps_and_errors_point_to_it() {
    let env = Env::new();
    let two = grid_file(&env, "two.mat", 2);
    let one = grid_file(&env, "one.mat", 1);
    env.run(&[
        "load",
        "-p",
        s(&two),
        "-m",
        STM,
        "-n",
        "g",
        "-o",
        "timestamp=2005-01-01",
    ])
    .ok();
    let out = env
        .run(&[
            "load",
            "-p",
            s(&one),
            "-m",
            STM,
            "-n",
            "g",
            "-o",
            "timestamp=2006-01-01T12:00:00",
        ])
        .ok();
    assert!(out.stdout.contains("1 document from"), "{}", out.stdout);
    assert!(out.stdout.contains("spans 3 times"), "{}", out.stdout);
    let times = env.run(&["db", "-n", "g", "--times"]).ok().stdout;
    assert_eq!(
        times,
        "2005-01-01T00:00:00\n2005-01-01T03:00:00\n2006-01-01T12:00:00\n"
    );
    let png = env.path("g.png");
    for args in [
        vec!["export", "-n", "g", "--at", "2005-06-01"],
        vec!["plot", "-n", "g", "--at", "2005-06-01", "--output", s(&png)],
    ] {
        let r = env.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("`manage db -n g --times` lists its times"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn one_wording_for_a_missing_name_and_counts_in_the_right_number() {
    let env = Env::new();
    let one = grid_file(&env, "one.mat", 1);
    env.run(&[
        "load",
        "-p",
        s(&one),
        "-m",
        STM,
        "-n",
        "g",
        "-o",
        "timestamp=2005-01-01",
    ])
    .ok();
    assert_eq!(
        env.run(&["db", "-l", "collections", "-x"]).ok().stdout,
        "g (1 record)\n"
    );
    assert!(env
        .run(&["db", "-a"])
        .ok()
        .stdout
        .starts_with("ok: 1 dataset, each"));
    let png = env.path("x.png");
    for args in [
        vec!["db", "-n", "nope"],
        vec!["db", "-n", "nope", "--times"],
        vec!["export", "-n", "nope"],
        vec!["plot", "-n", "nope", "--output", s(&png)],
        vec!["remove", "-n", "nope"],
    ] {
        let r = env.run(&args);
        assert_eq!(r.code, 1, "{args:?}");
        assert!(
            r.stderr
                .contains("collection 'nope': does not exist; existing collections: g"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn loaded_by_names_the_user_from_the_password_database() {
    let env = Env::new();
    let one = grid_file(&env, "one.mat", 1);
    // Whatever the environment claims, the name is the password database's.
    let mut c = env.command(&[
        "load",
        "-p",
        s(&one),
        "-m",
        STM,
        "-n",
        "g",
        "-o",
        "timestamp=2005-01-01",
    ]);
    c.env("USER", "somebody-else")
        .env("LOGNAME", "somebody-else");
    assert!(c.status().unwrap().success());
    let id = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8(id.stdout).unwrap().trim().to_string();
    let meta = env.run(&["db", "-n", "g"]).ok().json();
    let by = meta["files"][0]["loaded_by"].as_str().unwrap().to_string();
    assert!(
        by.starts_with(&format!("{me}@")),
        "loaded_by {by}, id -un {me}"
    );
}

#[test]
fn plot_writes_to_output_and_its_short_form_is_not_load_s() {
    let env = Env::new();
    env.run(&["load", "-p", s(&sample()), "-m", STM, "-n", "flux"])
        .ok();
    let png = env.path("flux.png");
    let r = env.run(&["plot", "-n", "flux", "-o", s(&png)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!png.exists());
    env.run(&["plot", "-n", "flux", "-O", s(&png), "--width", "400"])
        .ok();
    assert_eq!(common::png_summary(&png).0, 400);
}

#[test]
fn completions_and_the_manual_page_come_from_the_command_line() {
    let env = Env::new();
    let bash = env.run(&["completions", "bash"]).ok().stdout;
    for flag in ["--collection_name", "--lock-timeout", "--times", "--output"] {
        assert!(bash.contains(flag), "bash completion lacks {flag}");
    }
    let zsh = env.run(&["completions", "zsh"]).ok().stdout;
    assert!(zsh.starts_with("#compdef manage"), "{}", &zsh[..40]);
    let man = env.run(&["man"]).ok().stdout;
    assert!(man.contains(".TH manage 1"), "{}", &man[..200]);
    assert!(man.contains("load") && man.contains("plot"));
    let r = env.run(&["completions", "tcsh"]);
    assert_eq!(r.code, 2);
}

#[test]
fn the_sample_generator_writes_the_committed_sample_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    fluxpy::synth::Sample::write(dir.path()).unwrap();
    for name in ["flux_na_2004.mat", "flux_na_2004.json"] {
        let made = std::fs::read(dir.path().join(name)).unwrap();
        let committed = std::fs::read(sample().with_file_name(name)).unwrap();
        assert!(
            made == committed,
            "sample-data/{name} differs from what the generator writes"
        );
    }
}

#[test]
fn the_cfgrid_config_loads_a_carbontracker_like_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/netcdf");
    let nc = dir.join("ct_like_netcdf4.nc");
    if !nc.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI=true but {} is missing",
            nc.display()
        );
        eprintln!("skipped: needs {}", nc.display());
        return;
    }
    let env = Env::new();
    let cfg = configs("CFGrid.json");
    let out = env
        .run(&[
            "load",
            "-p",
            s(&nc),
            "-m",
            "CFGrid",
            "-n",
            "ct_flux",
            "-c",
            s(&cfg),
            "--json",
        ])
        .ok();
    // The fixture's README: 8 three-hourly steps on a 1 degree global grid.
    assert_eq!(out.json()["documents"], 8, "{}", out.stdout);
    let coords = env.run(&["db", "-l", "coord_index", "-x"]).ok().stdout;
    assert!(coords.contains("ct_flux"), "{coords}");
    let times = env.run(&["db", "-n", "ct_flux", "--times"]).ok().stdout;
    assert_eq!(times.lines().count(), 8, "{times}");
    assert!(times.starts_with("2004-06-30T01:30:00"), "{times}");
}
