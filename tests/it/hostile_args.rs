//! Hostile arguments and environment: secrets in `--db`/`FLUXPY_DB` are
//! never printed nor turned into file names; values that cannot be held
//! are refused when the command line is parsed.

use crate::common;

use std::process::Command;

use common::Run;

/// `manage ARGS` in the empty directory `cwd`, with `env` set.
fn run_in(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_manage"));
    c.args(args)
        .current_dir(cwd)
        .env_remove("FLUXPY_DB")
        .env_remove("RUST_BACKTRACE")
        .env("HOME", cwd)
        .env("XDG_DATA_HOME", cwd.join("xdg"));
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    Run::from(out)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

const LOOKALIKES: &[&str] = &[
    "Mongodb://bob:Hunter2@db1.example/fluxvis",
    "MONGODB://bob:Hunter2@db1.example/fluxvis",
    "mongodb:/bob:Hunter2@db1.example/fluxvis",
    "mongodb+svr://bob:Hunter2@db1.example/fluxvis",
    "mongo://bob:Hunter2@db1.example/fluxvis",
    "postgresql://bob:Hunter2@db1.example/fluxvis",
];

#[test]
fn uri_lookalikes_are_refused_and_create_nothing() {
    let sample = common::sample();
    let sample = sample.to_str().unwrap();
    for uri in LOOKALIKES {
        for (how, args_env) in [("--db", true), ("FLUXPY_DB", false)] {
            for cmd in [
                vec!["db", "-a"],
                vec!["db", "-l", "collections"],
                vec!["export", "-n", "x"],
                vec!["remove", "-n", "x"],
                vec![
                    "load",
                    "-p",
                    sample,
                    "-m",
                    "SpatioTemporalMatrix",
                    "-n",
                    "x",
                ],
            ] {
                let dir = tempfile::tempdir().unwrap();
                let (mut args, env) = if args_env {
                    (vec!["--db", uri], vec![])
                } else {
                    (vec![], vec![("FLUXPY_DB", *uri)])
                };
                args.extend(&cmd);
                let r = run_in(dir.path(), &args, &env);
                let what = format!("{how} {uri} {cmd:?}");
                assert_ne!(r.code, 0, "{what} was accepted: {}", r.stdout);
                assert_eq!(r.stderr.lines().count(), 1, "{what}: {}", r.stderr);
                assert!(
                    r.stderr.contains("looks like a URI"),
                    "{what}: {}",
                    r.stderr
                );
                assert!(r.stderr.contains("bob:***@db1"), "{what}: {}", r.stderr);
                assert!(
                    !r.stderr.contains("Hunter2") && !r.stdout.contains("Hunter2"),
                    "{what} printed the password: {}",
                    r.stderr
                );
                assert!(
                    files_under(dir.path()).is_empty(),
                    "{what} created {:?}",
                    files_under(dir.path())
                );
            }
        }
    }
}

#[test]
fn misspelled_secret_uri_options_are_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    for uri in [
        "mongodb://db1.example/fluxvis?tlsCertificateKeyFilePasword=Hunter2",
        "mongodb://db1.example/fluxvis?passwrd=Hunter2",
        "mongodb://db1.example/fluxvis?authMechanismProprties=AWS_SESSION_TOKEN:Hunter2",
        "mongodb://db1.example/fluxvis?sekret=1&apiToken=Hunter2",
    ] {
        let r = run_in(dir.path(), &["--db", uri, "db", "-a"], &[]);
        assert_eq!(r.code, 1, "{uri}: {}", r.stderr);
        assert!(r.stderr.contains("not a valid MongoDB URI"), "{}", r.stderr);
        assert!(!r.stderr.contains("Hunter2"), "{uri}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    // An option whose name suggests nothing secret is still shown, so that
    // the user can see the typo.
    let r = run_in(
        dir.path(),
        &[
            "--db",
            "mongodb://db1.example/x?replicaSett=rs0",
            "db",
            "-a",
        ],
        &[],
    );
    assert!(r.stderr.contains("replicaSett=rs0"), "{}", r.stderr);
}

#[test]
fn help_never_shows_the_value_of_fluxpy_db() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("FLUXPY_DB", "mongodb://alice:s3cret@db1/fluxvis")];
    for args in [
        vec!["--help"],
        vec!["-h"],
        vec!["help"],
        vec!["load", "--help"],
        vec!["load", "-h"],
        vec!["remove", "--help"],
        vec!["rename", "--help"],
        vec!["db", "--help"],
        vec!["export", "--help"],
        vec!["plot", "--help"],
        vec!["help", "load"],
    ] {
        let r = run_in(dir.path(), &args, &env);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(
            !r.stdout.contains("s3cret") && !r.stdout.contains("alice"),
            "{args:?} shows FLUXPY_DB: {}",
            r.stdout
        );
        if args.len() > 1 && args[0] != "help" || args == ["help", "load"] {
            assert!(
                r.stdout.contains("[env: FLUXPY_DB]"),
                "{args:?}: {}",
                r.stdout
            );
        }
    }
}

/// A folder of copies of the sample, each with its own config.
fn folder(env: &common::Env, configs: &[(&str, serde_json::Value)]) -> std::path::PathBuf {
    let dir = env.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    let base: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::sample().with_extension("json")).unwrap(),
    )
    .unwrap();
    for (name, changes) in configs {
        std::fs::copy(common::sample(), dir.join(format!("{name}.mat"))).unwrap();
        let mut c = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        std::fs::write(dir.join(format!("{name}.json")), c.to_string()).unwrap();
    }
    dir
}

#[test]
fn steps_beyond_the_year_9999_are_refused_and_the_run_goes_on() {
    let env = common::Env::new();
    let dir = folder(
        &env,
        &[
            ("a_1e13", serde_json::json!({"steps": [1e13]})),
            ("b_1e300", serde_json::json!({"steps": 1e300})),
            (
                "c_year_9999",
                serde_json::json!({"timestamp": "9999-12-31T12:00:00", "steps": [10800]}),
            ),
            (
                "d_fine",
                serde_json::json!({"timestamp": "2005-06-30T00:00:00"}),
            ),
        ],
    );
    let dir = dir.to_str().unwrap();
    for extra in [
        vec!["--dry-run"],
        vec!["--dry-run", "--json"],
        vec!["--json"],
        vec![],
    ] {
        let mut args = vec!["load", "-p", dir, "-m", "SpatioTemporalMatrix", "-n", "t"];
        args.extend(&extra);
        let r = env.run(&args);
        assert_eq!(r.code, 1, "{extra:?}: {}{}", r.stdout, r.stderr);
        assert!(
            !r.stderr.contains("panicked") && !r.stderr.contains("internal error"),
            "{}",
            r.stderr
        );
        if extra.contains(&"--json") {
            let lines = r.json_lines();
            assert_eq!(lines.len(), 4, "{extra:?}: one line per file: {}", r.stdout);
            for l in &lines[..3] {
                assert_eq!(l["status"], "failed", "{l}");
                assert!(
                    l["error"].as_str().unwrap().contains("after the year 9999"),
                    "{l}"
                );
            }
            assert_ne!(lines[3]["status"], "failed", "{}", lines[3]);
        } else {
            assert_eq!(
                r.stderr.matches("after the year 9999").count(),
                3,
                "{extra:?}: {}",
                r.stderr
            );
            assert!(
                r.stderr.contains("'steps'") || r.stderr.contains("'step'"),
                "{}",
                r.stderr
            );
            assert!(r.stderr.contains("1e300"), "{}", r.stderr);
        }
    }
    // The good file was loaded, and no lock is left behind.
    let a = env.run(&["db", "-a"]);
    assert_eq!(a.code, 0, "{}{}", a.stdout, a.stderr);
    let dates = env.run(&["db", "-n", "t"]).ok().json()["dates"].clone();
    assert_eq!(
        dates,
        serde_json::json!(["2005-06-30T00:00:00", "2005-06-30T21:00:00"])
    );
}

#[test]
fn times_the_store_cannot_hold_are_refused() {
    let env = common::Env::new();
    let sample = common::sample();
    let sample = sample.to_str().unwrap();
    for (o, needle) in [
        ("timestamp=+10000-01-01", "years 1 to 9999"),
        ("timestamp=-0001-01-01T00:00:00Z", "years 1 to 9999"),
        ("timestamp=0000-12-31T00:00:00", "years 1 to 9999"),
        ("step=0.0004", "whole number of milliseconds"),
        ("step=0.0015", "whole number of milliseconds"),
        ("step=[1e-9]", "whole number of milliseconds"),
        (
            "timestamp=2004-06-30T00:00:00.0005",
            "fraction of a millisecond",
        ),
    ] {
        let r = env.run(&[
            "load",
            "-p",
            sample,
            "-m",
            "SpatioTemporalMatrix",
            "-n",
            "t",
            "-o",
            o,
        ]);
        assert_eq!(r.code, 1, "{o}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{o}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{o}: {}", r.stderr);
    }
    // Refused before the store was opened for writing: none was created.
    assert!(!env.db().exists());
}

#[test]
fn millisecond_times_are_listed_as_stored() {
    let env = common::Env::new();
    let sample = common::sample();
    let o = "timestamp=2004-06-30T00:00:00.250Z;steps=[0.5]";
    let r = env.run(&[
        "load",
        "-p",
        sample.to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "t",
        "-o",
        o,
    ]);
    assert!(r.stdout.contains("8 documents"), "{}", r.stdout);
    // 8 steps of 500 ms from 00:00:00.250: the last at 00:00:03.750.
    let meta = env.run(&["db", "-n", "t"]).ok().json();
    assert_eq!(
        meta["dates"],
        serde_json::json!(["2004-06-30T00:00:00.250", "2004-06-30T00:00:03.750"])
    );
    let docs = env.run(&["export", "-n", "t"]).ok().json_lines();
    assert_eq!(docs.len(), 8, "every step stored");
    for at in [
        "2004-06-30T00:00:00.250",
        "2004-06-30T00:00:03.750",
        "2004-06-30T00:00:01.250Z",
    ] {
        let r = env.run(&["export", "-n", "t", "--at", at]).ok();
        assert_eq!(r.json_lines().len(), 1, "--at {at}: {}", r.stdout);
    }
}

#[test]
fn lock_timeouts_are_checked_when_parsed() {
    let env = common::Env::new();
    let sample = common::sample();
    for t in ["99999999", "1e20", "-1", "NaN", "inf", "604801", "", "soon"] {
        let r = env.run(&[
            "load",
            &format!("--lock-timeout={t}"),
            "-p",
            sample.to_str().unwrap(),
            "-m",
            "SpatioTemporalMatrix",
            "-n",
            "t",
        ]);
        assert_eq!(r.code, 2, "--lock-timeout {t:?}: {}", r.stderr);
        assert!(r.stderr.contains("--lock-timeout"), "{}", r.stderr);
        assert!(
            !r.stderr.contains("panicked") && r.stderr.lines().count() <= 4,
            "{}",
            r.stderr
        );
    }
    // The longest allowed wait works end to end.
    env.run(&[
        "load",
        "--lock-timeout",
        "604800",
        "-p",
        sample.to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "t",
    ])
    .ok();
}

/// `manage ARGS` on `env`, given 60 s: a run that blocks fails the test.
fn run_bounded(env: &common::Env, args: &[&str]) -> Run {
    let mut child = env
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().ok();
            panic!("{args:?} hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run::from(out)
}

#[test]
fn fifos_and_devices_given_with_p_are_refused_without_blocking() {
    let env = common::Env::new();
    let dir = env.path("in");
    std::fs::create_dir(&dir).unwrap();
    let fifo = dir.join("pipe.mat");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::fs::copy(common::sample(), dir.join("real.mat")).unwrap();
    let load = |p: &str, dry: bool| {
        let mut a = vec![
            "load",
            "-p",
            p,
            "-m",
            "SpatioTemporalMatrix",
            "-n",
            "f",
            "-o",
            "timestamp=2004-01-01",
        ];
        if dry {
            a.push("--dry-run");
        }
        run_bounded(&env, &a)
    };
    let fifo_s = fifo.to_str().unwrap();
    for dry in [true, false] {
        let r = load(fifo_s, dry);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("pipe.mat: is a FIFO"), "{}", r.stderr);
        for dev in ["/dev/null", "/dev/zero"] {
            let r = load(dev, dry);
            assert_eq!(r.code, 1, "{}", r.stderr);
            assert!(
                r.stderr.contains(&format!("{dev}: is a device")),
                "{}",
                r.stderr
            );
        }
    }
    // Through a glob: the FIFO fails by name, the real file is loaded.
    let pattern = format!("{}/*.mat", dir.display());
    let r = load(&pattern, false);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("pipe.mat: is a FIFO"), "{}", r.stderr);
    assert!(r.stdout.contains("real.mat"), "{}", r.stdout);
    // A folder lists regular files only.
    let r = load(dir.to_str().unwrap(), true);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("pipe.mat"), "{}", r.stderr);
    assert_eq!(env.run(&["db", "-a"]).code, 0);
}

#[test]
fn nesting_of_config_values_is_bounded() {
    let env = common::Env::new();
    let sample = common::sample();
    let sample = sample.to_str().unwrap();
    let load = |extra: &[&str]| {
        let mut a = vec![
            "load",
            "-p",
            sample,
            "-m",
            "SpatioTemporalMatrix",
            "-n",
            "n",
        ];
        a.extend(extra);
        env.run(&a)
    };
    for (open, close) in [("[", "]"), ("(", ")"), ("{'k':", "}")] {
        for depth in [65, 20_000] {
            let o = format!("units={}1{}", open.repeat(depth), close.repeat(depth));
            let r = load(&["-o", &o]);
            assert_eq!(r.code, 1, "{open} × {depth}: {}", r.stderr);
            assert!(
                r.stderr.contains(&format!("nested {depth} levels deep")),
                "{}",
                r.stderr
            );
        }
    }
    // Brackets inside a quoted string are text, not nesting.
    let deep_text = format!("units={{'x': '{}'}}", "[".repeat(1000));
    let r = load(&["-o", &deep_text, "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = env.path("deep.json");
    std::fs::write(
        &file,
        format!(
            "{{\"units\": {}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ),
    )
    .unwrap();
    let r = load(&["-c", file.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("deep.json") && r.stderr.contains("levels deep"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1);
}

#[test]
fn a_config_with_a_byte_order_mark_is_read() {
    let env = common::Env::new();
    let file = env.path("bom.json");
    std::fs::write(
        &file,
        b"\xef\xbb\xbf{\"timestamp\": \"2001-02-03\", \"title\": \"BOM\"}",
    )
    .unwrap();
    let sample = common::sample();
    env.run(&[
        "load",
        "-p",
        sample.to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "b",
        "-c",
        file.to_str().unwrap(),
    ])
    .ok();
    let meta = env.run(&["db", "-n", "b"]).ok().json();
    assert_eq!(meta["title"], "BOM");
    assert_eq!(meta["dates"][0], "2001-02-03T00:00:00");
}
