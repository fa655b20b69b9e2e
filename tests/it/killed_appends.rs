//! Appends killed with SIGKILL at many moments, on both stores: the dataset
//! is left as it was, or in a state `db -a` reports, and running the same
//! command again gives the very documents of an append never interrupted.
//! Never does a dataset look complete (an audit that is clean) while it
//! holds other than what its loads wrote.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Env, FreshDb};
use fluxpy::store::Datasets;
use fluxpy::synth::{self, Grid};

const STM: &str = "SpatioTemporalMatrix";
/// How long after the append takes its lock it is killed: from before its
/// first document to (on a fast store) after its commit.
const DELAYS_MS: [u64; 8] = [0, 20, 50, 100, 200, 400, 800, 1600];

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn load_args<'a>(p: &'a Path, ts: &'a str) -> [&'a str; 9] {
    ["load", "-p", s(p), "-m", STM, "-n", "g", "-o", ts]
}

/// `steps` steps of the 0.5° grid between `lat`°S and `lat`°N.
fn grid_file(env: &Env, name: &str, lat: f64, steps: usize) -> PathBuf {
    let grid = Grid::GLOBAL_HALF_DEGREE.with_window(-180.0, 180.0, -lat, lat);
    let p = env.path(name);
    let m = synth::flux_matrix(&grid, steps, 3.0);
    synth::write_mat_v5(&p, "flux", &m, false).unwrap();
    p
}

/// Start the append, wait until it holds its lock, wait `delay`, SIGKILL it.
/// `false` when it finished first.
fn kill_append(env: &Env, db: &str, args: &[&str], delay: Duration) -> bool {
    let mut a = vec!["--db", db];
    a.extend_from_slice(args);
    let mut child = env
        .command(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let locked = fluxpy::store::open_read_only(Some(db))
            .ok()
            .flatten()
            .and_then(|s| s.locks().ok())
            .is_some_and(|l| !l.is_empty());
        if locked {
            break;
        }
        assert!(Instant::now() < deadline, "the append never took its lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(delay);
    let finished = child.try_wait().unwrap().is_some();
    if !finished {
        child.kill().unwrap(); // SIGKILL
    }
    child.wait().unwrap();
    !finished
}

/// Every delay, on the store `fresh()` hands out (a new one each time),
/// with files of `steps` steps between `lat`°S and `lat`°N: large enough
/// that most kills land before the append's commit.
fn killed_appends(
    lat: f64,
    steps: usize,
    mut fresh: impl FnMut() -> (String, Box<dyn std::any::Any>),
) {
    let env = Env::new();
    let a = grid_file(&env, "a.mat", lat, steps);
    let b = grid_file(&env, "b.mat", lat, steps);
    let first = load_args(&a, "timestamp=2004-01-01T00:00:00");
    let append = load_args(&b, "timestamp=2004-01-05T00:00:00");

    // What the store holds after the first load, and after the append run
    // uninterrupted.
    let (reference, _keep) = fresh();
    env.run_on(&reference, &first).ok();
    let before = env.run_on(&reference, &["export", "-n", "g"]).ok().stdout;
    env.run_on(&reference, &append).ok();
    let after = env.run_on(&reference, &["export", "-n", "g"]).ok().stdout;
    assert_ne!(before, after);

    let mut killed = 0;
    for delay in DELAYS_MS.map(Duration::from_millis) {
        let (db, _keep) = fresh();
        env.run_on(&db, &first).ok();
        if kill_append(&env, &db, &append, delay) {
            killed += 1;
        }
        let audit = env.run_on(&db, &["db", "-a"]);
        match audit.code {
            // Clean: then it is the dataset before the append, or after it.
            0 => {
                let now = env.run_on(&db, &["export", "-n", "g"]).ok().stdout;
                assert!(
                    now == before || now == after,
                    "killed after {delay:?}: a clean audit over a dataset that is neither"
                );
            }
            3 => {}
            c => panic!(
                "db -a exit {c} after a kill: {}{}",
                audit.stdout, audit.stderr
            ),
        }
        // The same command, run again, completes the append.
        env.run_on(&db, &append).ok();
        assert_eq!(
            env.run_on(&db, &["export", "-n", "g"]).ok().stdout,
            after,
            "killed after {delay:?}, then run again"
        );
        let audit = env.run_on(&db, &["db", "-a"]).ok();
        assert!(
            audit.stdout.starts_with("ok: 1 dataset,"),
            "{}",
            audit.stdout
        );
    }
    eprintln!("{killed} of {} appends killed part way", DELAYS_MS.len());
}

#[test]
fn appends_killed_at_any_moment_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    killed_appends(30.0, 16, || {
        n += 1;
        let db = dir.path().join(format!("store{n}.db"));
        (db.to_str().unwrap().to_string(), Box::new(()))
    });
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn appends_killed_at_any_moment_on_mongodb() {
    let uri = common::mongodb_test_uri(common::MONGODB_URI);
    killed_appends(20.0, 8, || {
        let db = FreshDb::new(&uri);
        (db.uri.clone(), Box::new(db))
    });
}
