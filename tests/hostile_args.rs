//! Hostile arguments and environment: secrets in `--db`/`FLUXPY_DB` are
//! never printed nor turned into file names; values that cannot be held
//! are refused when the command line is parsed.

mod common;

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
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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
