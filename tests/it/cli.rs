//! End-to-end tests of the `manage` binary on real files and a real store.

use crate::common;

use common::{fixture, sample, Env};
use serde_json::json;

const STM: &str = "SpatioTemporalMatrix";

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn casagfed_fixture_matches_the_old_tools_expectations() {
    let mat = fixture("casagfed2004.mat");
    let env = Env::new();
    // The fixture's own JSON says 2012; the old tool's test overrode it.
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
    let docs = env.run(&["export", "-n", "casa"]).ok().json_lines();
    assert_eq!(docs.len(), 8);
    assert!(docs
        .iter()
        .all(|d| d["values"].as_array().unwrap().len() == 2635));
    assert_eq!(docs[0]["values"][0], json!(0.08));
    assert_eq!(docs[0]["_id"], json!({"$date": "2004-06-30T00:00:00Z"}));
    assert_eq!(docs[7]["_id"], json!({"$date": "2004-06-30T21:00:00Z"}));

    let md = env.run(&["db", "-n", "casa"]).ok().json();
    assert_eq!(md["bbox"], json!([-166.5, 10.5, -50.5, 69.5]));
    assert_eq!(md["bboxmd5"], json!("6f3e33c145010bc74c5ccd3ba772f504"));
    assert_eq!(
        md["dates"],
        json!(["2004-06-30T00:00:00", "2004-06-30T21:00:00"])
    );
    assert_eq!(md["steps"], json!([10800]));
    assert_eq!(md["gridded"], json!(true));
    assert_eq!(
        md["gridres"],
        json!({"units": "degrees", "x": 1.0, "y": 1.0})
    );
    assert_eq!(md["title"], json!("Surface Carbon Flux"));

    let ci = env.run(&["db", "-l", "coord_index"]).ok();
    assert_eq!(ci.stdout.trim(), "casa");
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn title_override_reaches_the_metadata() {
    let mat = fixture("casagfed2004.mat");
    let env = Env::new();
    env.run(&[
        "load",
        "-p",
        mat.to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "casa",
        "-o",
        "timestamp=2004-06-30T00:00:00;title=MyData",
    ])
    .ok();
    assert_eq!(
        env.run(&["db", "-n", "casa"]).ok().json()["title"],
        json!("MyData")
    );
}

#[test]
fn sample_data_loads_with_its_sidecar_config() {
    let env = Env::new();
    let out = env
        .run(&[
            "load",
            "-p",
            sample().to_str().unwrap(),
            "-m",
            STM,
            "-n",
            "sample",
        ])
        .ok();
    assert!(out.stdout.contains("8 documents"), "{}", out.stdout);
    let md = env.run(&["db", "-n", "sample"]).ok().json();
    assert_eq!(md["title"], json!("Synthetic surface carbon flux (sample)"));
    assert_eq!(md["bbox"], json!([-166.5, 10.5, -50.5, 69.5]));
    assert_eq!(md["bboxmd5"], json!("6f3e33c145010bc74c5ccd3ba772f504"));
    let stats = &md["stats"]["values"];
    for k in ["mean", "min", "max", "std", "median"] {
        assert!(stats[k].is_f64(), "stats.values.{k} = {}", stats[k]);
    }
    // Every value is the generator's flux rounded to 2 decimals.
    let docs = env.run(&["export", "-n", "sample"]).ok().json_lines();
    let m = fluxpy::synth::Sample::matrix();
    for (k, d) in docs.iter().enumerate() {
        let v = d["values"].as_array().unwrap();
        assert_eq!(v.len(), m.nrows());
        for i in [0, 1234, m.nrows() - 1] {
            let want = fluxpy::model::round_to(m[[i, 2 + k]], 2);
            assert_eq!(v[i].as_f64().unwrap(), want, "step {k} cell {i}");
        }
    }
    assert_eq!(
        env.run(&["db", "-l", "collections", "-x"]).ok().stdout,
        "sample (8 records)\n"
    );
}

#[test]
fn committed_sample_data_is_what_the_generator_writes() {
    let dir = tempfile::tempdir().unwrap();
    fluxpy::synth::Sample::write(dir.path()).unwrap();
    let fresh = fluxpy::source::open(&dir.path().join("flux_na_2004.mat"), None)
        .unwrap()
        .read_columns(0, 10)
        .unwrap();
    let committed = fluxpy::source::open(&sample(), None)
        .unwrap()
        .read_columns(0, 10)
        .unwrap();
    assert_eq!(
        fresh, committed,
        "regenerate with: cargo run --example sample_data"
    );
    let cfg = |p: &std::path::Path| std::fs::read_to_string(p.with_extension("json")).unwrap();
    assert_eq!(cfg(&dir.path().join("flux_na_2004.mat")), cfg(&sample()));
}

#[test]
fn appending_adds_times_and_reloading_replaces_them() {
    let env = Env::new();
    let p = sample();
    let p = p.to_str().unwrap();
    env.run(&["load", "-p", p, "-m", STM, "-n", "s"]).ok();
    env.run(&[
        "load",
        "-p",
        p,
        "-m",
        STM,
        "-n",
        "s",
        "-o",
        "timestamp=2004-07-01T00:00:00",
    ])
    .ok();
    env.run(&[
        "load",
        "-p",
        p,
        "-m",
        STM,
        "-n",
        "s",
        "-o",
        "timestamp=2004-07-01T00:00:00",
    ])
    .ok();
    assert_eq!(
        env.run(&["db", "-l", "collections", "-x"]).ok().stdout,
        "s (16 records)\n"
    );
    let md = env.run(&["db", "-n", "s"]).ok().json();
    assert_eq!(
        md["dates"],
        json!(["2004-06-30T00:00:00", "2004-07-01T21:00:00"])
    );
    let ids: Vec<_> = env
        .run(&["export", "-n", "s"])
        .ok()
        .json_lines()
        .iter()
        .map(|d| d["_id"]["$date"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "export is in _id order");
    assert_eq!(ids[8], "2004-07-01T00:00:00Z");
}

#[test]
fn appending_other_coordinates_is_refused_before_writing() {
    let env = Env::new();
    let p = sample();
    env.run(&["load", "-p", p.to_str().unwrap(), "-m", STM, "-n", "s"])
        .ok();
    let other = env.path("other.mat");
    let m = fluxpy::synth::flux_matrix(
        &fluxpy::synth::Grid::GLOBAL_HALF_DEGREE.with_window(-10.0, 10.0, -5.0, 5.0),
        2,
        3.0,
    );
    fluxpy::synth::write_mat_v5(&other, "flux", &m, false).unwrap();
    let r = env.run(&[
        "load",
        "-p",
        other.to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "s",
        "-o",
        "timestamp=2005-01-01",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("coord_index differs"), "{}", r.stderr);
    assert_eq!(
        env.run(&["db", "-l", "collections", "-x"]).ok().stdout,
        "s (8 records)\n"
    );
}

#[test]
fn export_at_one_time() {
    let env = Env::new();
    env.run(&[
        "load",
        "-p",
        sample().to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "s",
    ])
    .ok();
    let one = env
        .run(&["export", "-n", "s", "--at", "2004-06-30T03:00:00Z"])
        .ok()
        .json_lines();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["_id"], json!({"$date": "2004-06-30T03:00:00Z"}));
    let none = env.run(&["export", "-n", "s", "--at", "2004-06-30T04:00:00"]);
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("no document at"), "{}", none.stderr);
}

#[test]
fn rename_moves_all_three_parts_and_refuses_an_existing_target() {
    let env = Env::new();
    let p = sample();
    let p = p.to_str().unwrap();
    env.run(&["load", "-p", p, "-m", STM, "-n", "a"]).ok();
    env.run(&["load", "-p", p, "-m", STM, "-n", "b"]).ok();
    let r = env.run(&["rename", "-n", "a", "-r", "b"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("'b'") && r.stderr.contains("already exists"),
        "{}",
        r.stderr
    );

    env.run(&["rename", "-n", "a", "-r", "c"]).ok();
    assert_eq!(env.run(&["db", "-l", "collections"]).ok().stdout, "b\nc\n");
    assert_eq!(env.run(&["db", "-l", "metadata"]).ok().stdout, "b\nc\n");
    assert_eq!(env.run(&["db", "-l", "coord_index"]).ok().stdout, "b\nc\n");
    assert_eq!(env.run(&["db", "-n", "c"]).ok().json()["_id"], json!("c"));
    assert_eq!(env.run(&["export", "-n", "c"]).ok().json_lines().len(), 8);
    env.run(&["db", "-a"]).ok();
}

#[test]
fn remove_deletes_all_three_parts_and_unknown_names_exit_1() {
    let env = Env::new();
    let p = sample();
    let p = p.to_str().unwrap();
    env.run(&["load", "-p", p, "-m", STM, "-n", "a"]).ok();
    env.run(&["load", "-p", p, "-m", STM, "-n", "b"]).ok();
    env.run(&["remove", "-n", "a"]).ok();
    assert_eq!(env.run(&["db", "-l", "collections"]).ok().stdout, "b\n");
    assert_eq!(env.run(&["db", "-l", "metadata"]).ok().stdout, "b\n");
    assert_eq!(env.run(&["db", "-l", "coord_index"]).ok().stdout, "b\n");

    let r = env.run(&["remove", "-n", "a"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("'a'") && r.stderr.contains("existing collections: b"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1);
}

#[test]
fn reserved_and_malformed_names_are_refused() {
    let env = Env::new();
    let p = sample();
    let p = p.to_str().unwrap();
    for bad in [
        "metadata",
        "coord_index",
        "summary_stats",
        "system.x",
        "_x",
        "a$b",
        "",
    ] {
        let r = env.run(&["load", "-p", p, "-m", STM, "-n", bad]);
        assert_eq!(r.code, 1, "-n {bad:?}: {}", r.stderr);
        assert!(r.stderr.contains("collection name"), "{}", r.stderr);
    }
    let long = "x".repeat(121);
    assert_eq!(env.run(&["load", "-p", p, "-m", STM, "-n", &long]).code, 1);
    // Nothing was written: not even a store was created.
    assert!(!env.db().exists());
}

#[test]
fn audit_of_a_clean_store_exits_0() {
    let env = Env::new();
    // No store yet: an audit says so, and creates none.
    let r = env.run(&["db", "-a"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    env.run(&[
        "load",
        "-p",
        sample().to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "s",
    ])
    .ok();
    let r = env.run(&["db", "-a"]).ok();
    assert!(r.stdout.starts_with("ok"), "{}", r.stdout);
}

#[test]
fn failures_are_one_line_and_leave_the_store_untouched() {
    let env = Env::new();
    let p = sample();
    let p = p.to_str().unwrap();
    env.run(&["load", "-p", p, "-m", STM, "-n", "s"]).ok();
    let before = env.run(&["export", "-n", "s"]).ok().stdout;
    for (args, needle) in [
        (vec!["-o", "timestamp=2004-13-45"], "timestamp"),
        (vec!["-o", "steps=[\"three hours\"]"], "steps"),
        (vec!["-o", "var_name=nope"], "nope"),
        (vec!["-o", "oops"], "-o"),
    ] {
        let mut a = vec!["load", "-p", p, "-m", STM, "-n", "s"];
        a.extend(args);
        let r = env.run(&a);
        assert_eq!(r.code, 1, "{a:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    let r = env.run(&["load", "-p", "/nonexistent.mat", "-m", STM, "-n", "s"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("/nonexistent.mat"), "{}", r.stderr);
    let r = env.run(&["load", "-p", p, "-m", "NoSuchModel", "-n", "s"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("NoSuchModel"), "{}", r.stderr);
    assert_eq!(env.run(&["export", "-n", "s"]).ok().stdout, before);
}

#[test]
fn usage_errors_exit_2_and_every_command_has_help() {
    let env = Env::new();
    assert_eq!(env.run(&["load", "-p", "x.mat"]).code, 2);
    assert_eq!(env.run(&["db"]).code, 2);
    assert_eq!(env.run(&["frobnicate"]).code, 2);
    for c in ["load", "remove", "rename", "db", "export", "plot"] {
        let r = env.run(&[c, "-h"]).ok();
        assert!(r.stdout.contains("Usage: manage"), "{c}: {}", r.stdout);
    }
    // --db is global: accepted after the command too.
    let other = env.path("other.db");
    env.run(&[
        "load",
        "-p",
        sample().to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "o",
        "--db",
        other.to_str().unwrap(),
    ])
    .ok();
    let r = env
        .run(&["db", "-l", "collections", "--db", other.to_str().unwrap()])
        .ok();
    assert_eq!(r.stdout, "o\n");
    assert!(!env.db().exists());
}

#[test]
fn an_unreachable_mongodb_fails_fast_in_one_line_without_the_password() {
    let env = Env::new();
    // Port 1 on the loopback: nothing listens, the connection is refused.
    let quick = "mongodb://alice:s3cr%40t@127.0.0.1:1/carbon?serverSelectionTimeoutMS=400";
    // A URI without a database (the default server selection timeout of
    // 30 s, which covers an election, is unit-tested; this one is short).
    let no_database = "mongodb://alice:s3cr%40t@127.0.0.1:1/?serverSelectionTimeoutMS=1500";
    for (uri, within, commands) in [
        (
            quick,
            4.0,
            &[&["db", "-l", "collections"][..], &["remove", "-n", "x"]][..],
        ),
        (no_database, 15.0, &[&["db", "-a"][..]][..]),
    ] {
        for args in commands {
            let started = std::time::Instant::now();
            let mut a = vec!["--db", uri];
            a.extend(args.iter().copied());
            let r = env.run(&a);
            let secs = started.elapsed().as_secs_f64();
            assert_eq!(r.code, 1, "{}", r.stderr);
            assert!(secs < within, "took {secs} s");
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
            assert!(r.stderr.contains("127.0.0.1:1"), "{}", r.stderr);
            for secret in ["s3cr", "%40t", "s3cr@t"] {
                assert!(!r.stderr.contains(secret), "{}", r.stderr);
                assert!(!r.stdout.contains(secret), "{}", r.stdout);
            }
        }
    }
    // A URI the driver refuses is named without its password.
    let r = env.run(&["--db", "mongodb://alice:hunter2@/carbon", "db", "-a"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("alice:***@"), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
}

/// `manage export` to a stdout that was closed (`>&-`) or a pipe nobody
/// reads fails in one line, having written nothing; a reader that stops
/// part way (`| head`) ends it quietly.
#[test]
fn export_to_a_closed_stdout_fails_and_to_a_reader_that_stops_ends_quietly() {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::Stdio;

    let env = Env::new();
    let p = sample();
    env.run(&[
        "load",
        "-p",
        p.to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "s",
    ])
    .ok();
    let closed_line = "manage: error: stdout is closed: nothing was written";

    // `manage export -n s >&-`, through a shell.
    let out = std::process::Command::new("sh")
        .args(["-c", "exec \"$0\" export -n s >&-"])
        .arg(env!("CARGO_BIN_EXE_manage"))
        .env("FLUXPY_DB", env.db())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), closed_line);

    // A pipe whose reader is gone before anything is written.
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills in two new descriptors, each owned once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let out = env
        .command(&["export", "-n", "s"])
        .stdout(Stdio::from(writer))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), closed_line);

    // A reader that takes a few bytes and goes.
    let mut child = env
        .command(&["export", "-n", "s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(&first[..2], b"{\"");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    // And to /dev/null, as asked, it succeeds.
    let out = env
        .command(&["export", "-n", "s"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}
