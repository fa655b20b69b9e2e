//! End-to-end tests of `manage load` as cron runs it: many files a run,
//! files already loaded skipped, machine-readable output, dry runs, two
//! runs at once, and runs killed part way.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{sample, Env, Run};
use fluxpy::doc::METADATA;
use fluxpy::store::{embedded::Embedded, Attempt, Datasets, Holder, Locks, Store};
use fluxpy::synth::{self, Grid};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const STM: &str = "SpatioTemporalMatrix";
const KRIGED: &str = "KrigedXCO2Matrix";

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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A generated kriged map of `day` of 2009, named for its date.
fn kriged_file(dir: &Path, file: &str, day: f64) -> PathBuf {
    let p = dir.join(file);
    synth::write_mat_v5(
        &p,
        "krigedData",
        &synth::kriged_matrix(&window(), day),
        true,
    )
    .unwrap();
    p
}

/// Cut a file to half its length, as a transfer that died would.
fn truncate(p: &Path) {
    let bytes = std::fs::read(p).unwrap();
    std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
}

fn metadata(env: &Env, name: &str) -> Value {
    env.run(&["db", "-n", name]).ok().json()
}

fn counts(env: &Env) -> String {
    env.run(&["db", "-l", "collections", "-x"]).ok().stdout
}

fn sha256(p: &Path) -> String {
    Sha256::digest(std::fs::read(p).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every stdout line is one JSON object with exactly the documented keys.
fn json_reports(r: &Run) -> Vec<Value> {
    let lines = r.json_lines();
    for l in &lines {
        let mut keys: Vec<_> = l.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["dates", "documents", "error", "path", "seconds", "status"],
            "{l}"
        );
    }
    lines
}

/// Metadata equal but for the files' times and the statistics' last bits
/// (which depend on the order values were summed in).
fn assert_same_metadata(a: &Value, b: &Value) {
    let strip = |v: &Value| {
        let mut v = v.clone();
        let o = v.as_object_mut().unwrap();
        o.remove("stats");
        for f in o["files"].as_array_mut().unwrap() {
            let f = f.as_object_mut().unwrap();
            for volatile in ["seconds", "loaded_at", "force"] {
                f.remove(volatile);
            }
        }
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
fn reloading_a_file_skips_it_and_force_loads_it_again_in_place() {
    let env = Env::new();
    let p = env.grid_file("flux_2004.mat", &window(), 4);
    let ts = ["-o", "timestamp=2004-06-30"];
    let first = env.load_paths(&[s(&p)], STM, "f", &ts).ok();
    assert!(
        first.stdout.starts_with("loaded f: 4 documents"),
        "{}",
        first.stdout
    );
    let docs = env.run(&["export", "-n", "f"]).ok().stdout;
    let md = metadata(&env, "f");

    // The ingest log: what `db -n` shows of the file.
    let files = md["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(f["sha256"], json!(sha256(&p)));
    assert_eq!(f["size"], json!(std::fs::metadata(&p).unwrap().len()));
    assert_eq!(
        f["path"],
        json!(std::fs::canonicalize(&p).unwrap().display().to_string())
    );
    assert_eq!(f["model"], json!(STM));
    assert_eq!(f["documents"], json!(4));
    assert_eq!(
        f["dates"],
        json!([
            "2004-06-30T00:00:00",
            "2004-06-30T03:00:00",
            "2004-06-30T06:00:00",
            "2004-06-30T09:00:00"
        ])
    );
    assert_eq!(f["version"], json!(env!("CARGO_PKG_VERSION")));
    assert!(
        f["seconds"].is_f64() && f["loaded_at"]["$date"].is_string(),
        "{f}"
    );
    // ... which the stored metadata document does not hold.
    let store = Embedded::open(&env.db()).unwrap();
    assert!(!store
        .entry(METADATA, "f")
        .unwrap()
        .unwrap()
        .contains_key("files"));
    drop(store);

    // Again: skipped, nothing written.
    let again = env.load_paths(&[s(&p)], STM, "f", &ts).ok();
    assert!(again.stdout.starts_with("skipped "), "{}", again.stdout);
    assert!(again.stdout.contains("--force"), "{}", again.stdout);
    let again = json_reports(
        &env.load_paths(&[s(&p)], STM, "f", &[&ts[..], &["--json"]].concat())
            .ok(),
    );
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["status"], json!("skipped"));
    assert_eq!(again[0]["documents"], json!(0));
    assert_eq!(env.run(&["export", "-n", "f"]).ok().stdout, docs);
    assert_eq!(metadata(&env, "f"), md);

    // --force: loaded again, replacing: the same documents, the same
    // metadata, one ingest-log entry.
    let forced = env
        .load_paths(
            &[s(&p)],
            STM,
            "f",
            &[&ts[..], &["--force", "--json"]].concat(),
        )
        .ok();
    let forced = json_reports(&forced);
    assert_eq!(forced[0]["status"], json!("loaded"));
    assert_eq!(forced[0]["documents"], json!(4));
    assert_eq!(forced[0]["dates"], f["dates"]);
    assert_eq!(env.run(&["export", "-n", "f"]).ok().stdout, docs);
    assert_eq!(counts(&env), "f (4 records)\n");
    let after = metadata(&env, "f");
    assert_eq!(after["files"].as_array().unwrap().len(), 1);
    assert_same_metadata(&after, &md);

    // The same file under another config is another input: loaded.
    let other = env
        .load_paths(&[s(&p)], STM, "f", &["-o", "timestamp=2004-07-01"])
        .ok();
    assert!(other.stdout.starts_with("loaded f"), "{}", other.stdout);
    assert_eq!(counts(&env), "f (8 records)\n");
    assert_eq!(metadata(&env, "f")["files"].as_array().unwrap().len(), 2);
    env.run(&["db", "-a"]).ok();
}

#[test]
fn a_glob_over_three_files_one_corrupt_loads_two_and_names_the_third() {
    let env = Env::new();
    let dir = env.path("incoming");
    std::fs::create_dir(&dir).unwrap();
    // Created out of name order: loaded in name order all the same.
    let c = kriged_file(&dir, "Kriged_20090617_c.mat", 168.0);
    let b = kriged_file(&dir, "Kriged_20090616_b.mat", 167.0);
    let a = kriged_file(&dir, "Kriged_20090615_a.mat", 166.0);
    truncate(&b);
    let pattern = format!("{}/Kriged_*.mat", dir.display());

    let r = env.load_paths(&[&pattern], KRIGED, "k", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("manage: error: ") && r.stderr.contains(s(&b)),
        "{}",
        r.stderr
    );
    let out: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(out.len(), 3, "{}", r.stdout);
    assert!(out[0].starts_with("loaded k: 1 document from ") && out[0].contains(s(&a)));
    assert!(out[1].contains(s(&c)) && out[1].contains("now spans 2 times"));
    assert_eq!(
        out[2],
        format!(
            "k: 3 files: 2 loaded, 0 skipped, 1 failed ({})",
            b.display()
        )
    );
    assert_eq!(counts(&env), "k (2 records)\n");
    let md = metadata(&env, "k");
    assert_eq!(
        md["dates"],
        json!(["2009-06-15T00:00:00", "2009-06-17T00:00:00"])
    );
    let paths: Vec<_> = md["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap().display().to_string();
    assert_eq!(paths.len(), 2);
    assert!(paths.contains(&canonical(&a)) && paths.contains(&canonical(&c)));
    env.run(&["db", "-a"]).ok();

    // The next night: both good files skipped, the bad one failed again.
    let r = env.load_paths(&[&pattern], KRIGED, "k", &["--json"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(s(&b)), "{}", r.stderr);
    let reports = json_reports(&r);
    let got: Vec<_> = reports
        .iter()
        .map(|j| (j["path"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [(s(&a), "skipped"), (s(&b), "failed"), (s(&c), "skipped")]
    );
    assert!(reports[1]["error"].as_str().unwrap().contains(s(&b)));
    assert_eq!(reports[0]["error"], Value::Null);
    assert_eq!(counts(&env), "k (2 records)\n");

    // Quiet: errors only. Once the file is whole again, it loads.
    let r = env.load_paths(&[&pattern], KRIGED, "k", &["-q"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    kriged_file(&dir, "Kriged_20090616_b.mat", 167.0);
    let r = env.load_paths(&[&pattern], KRIGED, "k", &["-q"]).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
    assert_eq!(counts(&env), "k (3 records)\n");

    // A pattern that matches nothing is a failure of its own.
    let none = format!("{}/Kriged_2010*.mat", dir.display());
    let r = env.load_paths(&[&none, s(&a)], KRIGED, "k", &["--json"]);
    assert_eq!(r.code, 1);
    let reports = json_reports(&r);
    assert_eq!(reports[0]["path"], json!(none));
    assert_eq!(reports[0]["status"], json!("failed"));
    assert_eq!(reports[1]["status"], json!("skipped"));
}

#[test]
fn two_concurrent_loads_of_different_dates_into_one_name_keep_both() {
    let env = Env::new();
    let global = Grid {
        x0: -180.0,
        x1: 180.0,
        y0: -90.0,
        y1: 90.0,
        res: 1.0,
    };
    let p = env.grid_file("flux.mat", &global, 4);
    let days = ["2004-06-30", "2004-07-01"];
    loads_at_once(&env, &[], &p, &days, "");
    assert_eq!(counts(&env), "both (8 records)\n");
    let md = metadata(&env, "both");
    assert_eq!(
        md["dates"],
        json!(["2004-06-30T00:00:00", "2004-07-01T09:00:00"])
    );
    assert_eq!(md["files"].as_array().unwrap().len(), 2);
    let ids: Vec<String> = env
        .run(&["export", "-n", "both"])
        .ok()
        .json_lines()
        .iter()
        .map(|d| d["_id"]["$date"].as_str().unwrap().to_string())
        .collect();
    for d in days {
        assert_eq!(
            ids.iter().filter(|i| i.starts_with(d)).count(),
            4,
            "{d}: {ids:?}"
        );
    }
    let r = env.run(&["db", "-a"]).ok();
    assert!(r.stdout.starts_with("ok"), "{}", r.stdout);
}

#[test]
fn a_lock_held_by_a_live_process_fails_the_file_and_a_stale_one_is_taken_over() {
    let env = Env::new();
    let p = sample();
    let me = Holder::this_process();
    // pid 1 always runs; no pid is this high.
    let live = Holder {
        pid: 1,
        pid_start: fluxpy::store::lock::process_start(1),
        token: "live".into(),
        ..me.clone()
    };
    let dead = Holder {
        pid: 0x7fff_fff0,
        token: "dead".into(),
        ..me.clone()
    };
    let mut store = Embedded::open(&env.db()).unwrap();
    let wait = Duration::from_secs(5);
    assert_eq!(store.try_lock("s", &live, wait).unwrap(), Attempt::Taken);

    let started = Instant::now();
    let r = env.load_paths(&[s(&p)], STM, "s", &["--lock-timeout", "1", "--json"]);
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(r.code, 1);
    assert!((1.0..10.0).contains(&secs), "took {secs} s");
    let reports = json_reports(&r);
    assert_eq!(reports[0]["status"], json!("failed"));
    let e = reports[0]["error"].as_str().unwrap();
    assert!(
        e.contains("'s'")
            && e.contains("could not get its lock within 1 s")
            && e.contains("(pid 1)"),
        "{e}"
    );
    assert_eq!(r.stderr.trim(), format!("manage: error: {e}"));
    // A load in progress is no fault of the store.
    let audit = env.run(&["db", "-a"]).ok();
    assert!(
        audit.stdout.contains("note: 's' is being loaded by"),
        "{}",
        audit.stdout
    );

    // The holder's process is gone: the next load takes the lock over.
    assert!(store.unlock("s", &live).unwrap());
    assert_eq!(store.try_lock("s", &dead, wait).unwrap(), Attempt::Taken);
    let audit = env.run(&["db", "-a"]);
    assert_eq!(audit.code, 3);
    assert!(
        audit.stdout.contains("stale lock on 's'"),
        "{}",
        audit.stdout
    );
    env.load_paths(&[s(&p)], STM, "s", &["--lock-timeout", "1"])
        .ok();
    assert!(store.locks().unwrap().is_empty());
    assert_eq!(counts(&env), "s (8 records)\n");
    env.run(&["db", "-a"]).ok();
}

/// Start `manage ARGS`, wait until it holds its lock (it is then inside the
/// load), let it work 50 ms, and kill it with SIGKILL. `false` if it
/// finished first.
fn kill_mid_load(env: &Env, args: &[&str]) -> bool {
    let mut child = env
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = env.db();
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed = loop {
        if child.try_wait().unwrap().is_some() {
            break Some(false);
        }
        let locked = fluxpy::store::open_read_only(db.to_str())
            .ok()
            .flatten()
            .and_then(|s| s.locks().ok())
            .is_some_and(|l| !l.is_empty());
        if locked {
            std::thread::sleep(Duration::from_millis(50));
            child.kill().unwrap(); // SIGKILL
            break Some(true);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Killed only if the signal ended it: a load that finished within
    // the moment exited by itself (a zombie takes the signal unharmed).
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    killed.expect("the load neither took its lock nor finished") && status.signal() == Some(9)
}

#[test]
fn a_load_killed_part_way_is_flagged_and_completed_by_running_it_again() {
    let env = Env::new();
    // 259,200 cells × 16 steps: a 33 MB file, a second or more to load,
    // so that a kill 50 ms after the lock lands before the commit.
    let big = env.grid_file("big.mat", &Grid::GLOBAL_HALF_DEGREE, 16);
    let args = [
        "load",
        "-p",
        s(&big),
        "-m",
        STM,
        "-n",
        "big",
        "-o",
        "timestamp=2004-01-01",
    ];
    if kill_mid_load(&env, &args) {
        // Nothing of the dataset shows; the audit names the stale lock.
        assert_eq!(counts(&env), "");
        let audit = env.run(&["db", "-a"]);
        assert_eq!(audit.code, 3, "{}", audit.stdout);
        assert!(
            audit.stdout.contains("stale lock on 'big'"),
            "{}",
            audit.stdout
        );
    } else {
        eprintln!("note: the load finished before it could be killed");
        env.run(&["db", "-a"]).ok();
    }
    // Running the same command again completes the load (or skips it,
    // complete already), taking over the stale lock.
    env.run(&args).ok();
    assert_eq!(counts(&env), "big (16 records)\n");
    let r = env.run(&["db", "-a"]).ok();
    assert!(r.stdout.starts_with("ok"), "{}", r.stdout);

    // Killed while reloading: the complete dataset stays as it was, and
    // `db -a --fix` clears what the killed run left.
    let md = metadata(&env, "big");
    let forced = [&args[..], &["--force"]].concat();
    if kill_mid_load(&env, &forced) {
        assert_eq!(env.run(&["db", "-a"]).code, 3);
        let fixed = env.run(&["db", "-a", "--fix"]).ok();
        assert!(
            fixed
                .stdout
                .contains("fixed: removed the stale lock on 'big'"),
            "{}",
            fixed.stdout
        );
        assert_eq!(metadata(&env, "big"), md);
    }
    assert_eq!(counts(&env), "big (16 records)\n");
    env.run(&["db", "-a"]).ok();
}

/// The store file and any file SQLite keeps beside it, with their bytes.
fn snapshot(db: &Path) -> Vec<(String, Vec<u8>)> {
    let stem = db.file_name().unwrap().to_string_lossy().into_owned();
    let mut out: Vec<_> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&stem))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_dry_run_checks_everything_and_leaves_the_store_byte_for_byte_unchanged() {
    let env = Env::new();
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    let p = sample();
    // Nothing there yet: a dry run creates no store.
    let r = env.load_paths(&[s(&p)], STM, "s", &["--dry-run"]).ok();
    assert!(
        r.stdout.starts_with("dry run: would load 8 documents"),
        "{}",
        r.stdout
    );
    assert!(!env.db().exists());

    env.load_paths(&[s(&p)], STM, "s", &[]).ok();
    let new = data.join("flux_b.mat");
    synth::write_mat_v5(&new, synth::Sample::VAR, &synth::Sample::matrix(), false).unwrap();
    let bad = data.join("flux_c.mat");
    std::fs::copy(&new, &bad).unwrap();
    truncate(&bad);
    let before = snapshot(&env.db());
    assert_eq!(before.len(), 1, "one store file");

    let pattern = format!("{}/flux_*.mat", data.display());
    let ts = "timestamp=2004-07-01T00:00:00";
    // The sample's own config, for all three files.
    let cfg = p.with_extension("json");
    let r = env.load_paths(
        &[s(&p), &pattern],
        STM,
        "s",
        &["--dry-run", "--json", "-c", s(&cfg), "-o", ts],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let reports = json_reports(&r);
    let got: Vec<_> = reports
        .iter()
        .map(|j| (j["path"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (s(&new), "would_load"),
            (s(&bad), "failed"),
            (s(&p), "would_load")
        ]
    );
    assert_eq!(reports[0]["documents"], json!(8));
    assert_eq!(reports[0]["dates"][0], json!("2004-07-01T00:00:00"));
    assert!(r.stderr.contains(s(&bad)), "{}", r.stderr);

    // What was loaded is skipped; coordinates that do not fit are refused.
    let skipped = json_reports(
        &env.load_paths(&[s(&p)], STM, "s", &["--dry-run", "--json"])
            .ok(),
    );
    assert_eq!(skipped[0]["status"], json!("skipped"));
    let other = env.grid_file("other.mat", &window(), 2);
    let r = env.load_paths(&[s(&other)], STM, "s", &["--dry-run", "-o", ts]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("coord_index differs"), "{}", r.stderr);

    assert!(snapshot(&env.db()) == before, "the store changed");
    assert_eq!(counts(&env), "s (8 records)\n");
}

/// Two cron jobs whose first loads open the same new embedded store at the
/// same moment both load: switching a new file to its journal mode takes
/// an exclusive lock that SQLite does not wait for, so the second opener
/// used to fail at once with "database is locked" (about half the time).
/// Ten new stores, two loads each.
#[test]
fn first_loads_into_one_new_store_at_once_both_succeed() {
    let env = Env::new();
    let p = common::sample();
    for round in 0..10 {
        let db = env.path(&format!("new{round}.db"));
        let on = ["--db", s(&db)];
        loads_at_once(
            &env,
            &on,
            &p,
            &["2004-06-30", "2004-07-01"],
            &format!("round {round}: "),
        );
        let listed = env.run_on(s(&db), &["db", "-l", "collections"]).ok().stdout;
        assert_eq!(listed.trim(), "both", "round {round}");
    }
}

/// Loads of `file` into `both`, one per day of `days` (its timestamp),
/// started at once with `global` options first; each must succeed (`what`
/// heads the failure).
fn loads_at_once(env: &Env, global: &[&str], file: &Path, days: &[&str], what: &str) {
    let children: Vec<_> = days
        .iter()
        .map(|d| {
            let ts = format!("timestamp={d}");
            let mut args = global.to_vec();
            args.extend(["load", "-p", s(file), "-m", STM, "-n", "both", "-o", &ts]);
            env.command(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{what}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
