//! End-to-end tests of the per-dataset locks through the real binary, on
//! the embedded store and (inside `scripts/with-test-env`) on MongoDB:
//! loads interrupted by SIGINT and SIGTERM, pids reused by other
//! processes, and leases between two hosts (simulated by two
//! `FLUXPY_HOST_ID`s).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{sample, Env, Run, Target};
use fluxpy::store::lock::process_start;
use fluxpy::store::{Attempt, Datasets, Holder};
use fluxpy::synth::Grid;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const STM: &str = "SpatioTemporalMatrix";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A global half-degree SpatioTemporalMatrix file of `steps` steps:
/// 259,200 cells a step, seconds to load.
fn big_file(env: &Env, steps: usize) -> PathBuf {
    env.grid_file("big.mat", &Grid::GLOBAL_HALF_DEGREE, steps)
}

/// Spawn `command`, and once it holds a lock, let it work a moment and
/// send it `signal`. Fails the test if it finished before.
fn signal_mid_load(target: &Target, mut command: Command, signal: Signal) -> Run {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the load finished before it could be interrupted"
        );
        if !target.locks().is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            assert!(
                child.try_wait().unwrap().is_none(),
                "the load finished before it could be interrupted"
            );
            kill(Pid::from_raw(child.id() as i32), signal).unwrap();
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the load took no lock within 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    Run::from(out)
}

/// One line on stderr, `manage: interrupted: SIGNAL received; …`.
fn assert_interrupted(r: &Run, code: i32, signal: &str) {
    assert_eq!(r.code, code, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].starts_with(&format!("manage: interrupted: {signal} received;")),
        "{}",
        r.stderr
    );
}

/// A new dataset interrupted by SIGINT leaves nothing; a reload interrupted
/// by SIGTERM leaves the dataset as it was; neither leaves its lock.
fn interrupted_loads(target: &Target) {
    // Global steps: over a second even for a fast build, so that the
    // signal arrives mid-load (fewer into MongoDB's slow test server).
    let steps = if target.mongo.is_some() { 16 } else { 64 };
    let big = big_file(target.env, steps);
    let args = common::stm_load_args(&big, "big");
    let r = signal_mid_load(target, target.command(&args, None), Signal::SIGINT);
    assert_interrupted(&r, 130, "SIGINT");
    assert!(target.locks().is_empty(), "{:?}", target.locks());
    let audit = target.run(&["db", "-a"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);
    assert_eq!(target.counts(), "");

    target.run(&args).ok();
    let counts = target.counts();
    assert_eq!(counts, format!("big ({steps} records)\n"));
    let md = target.run(&["db", "-n", "big"]).ok().stdout;
    let forced = [&args[..], &["--force"]].concat();
    let r = signal_mid_load(target, target.command(&forced, None), Signal::SIGTERM);
    assert_interrupted(&r, 143, "SIGTERM");
    assert!(target.locks().is_empty(), "{:?}", target.locks());
    let audit = target.run(&["db", "-a"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);
    assert_eq!(target.counts(), counts);
    assert_eq!(target.run(&["db", "-n", "big"]).ok().stdout, md);
}

crate::on_both_stores!(
    sigint_and_sigterm_mid_load_undo_it_and_release_the_lock,
    interrupted_loads
);

/// A lock whose pid is a live process (this test's) but which names
/// another start time is stale: its holder died and the pid was reused.
fn reused_pids(target: &Target) {
    let p = sample();
    let mut store = target.store();
    let w = Duration::from_secs(5);
    let me = Holder::this_process();
    let started = process_start(me.pid).expect("a start time");
    let reused = Holder {
        pid_start: Some(started + 1),
        token: "reused".into(),
        ..me.clone()
    };
    let live = Holder {
        pid_start: Some(started),
        token: "live".into(),
        ..me.clone()
    };
    let args = ["load", "-p", s(&p), "-m", STM, "-n", "p"];
    let timeout = [&args[..], &["--lock-timeout", "1"]].concat();

    // The very process: held.
    assert_eq!(store.try_lock("p", &live, w).unwrap(), Attempt::Taken);
    let r = target.run(&timeout);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("could not get its lock within 1 s")
            && r.stderr.contains(&format!("(pid {})", me.pid)),
        "{}",
        r.stderr
    );
    assert_eq!(target.run(&["db", "-a"]).code, 0);
    assert!(store.unlock("p", &live).unwrap());

    // Another process under the same pid: stale, reported, removed.
    assert_eq!(store.try_lock("p", &reused, w).unwrap(), Attempt::Taken);
    let audit = target.run(&["db", "-a"]);
    assert_eq!(audit.code, 3, "{}", audit.stdout);
    assert!(
        audit.stdout.contains("stale lock on 'p'") && audit.stdout.contains("started later"),
        "{}",
        audit.stdout
    );
    let fixed = target.run(&["db", "-a", "--fix"]).ok();
    assert!(
        fixed.stdout.contains("removed the stale lock on 'p'"),
        "{}",
        fixed.stdout
    );
    assert!(target.locks().is_empty());

    // And a load takes such a lock over.
    assert_eq!(store.try_lock("p", &reused, w).unwrap(), Attempt::Taken);
    target.run(&timeout).ok();
    assert!(target.locks().is_empty());
    assert_eq!(target.counts(), "p (8 records)\n");
    assert_eq!(target.run(&["db", "-a"]).code, 0);
}

crate::on_both_stores!(a_lock_of_a_reused_pid_is_stale, reused_pids);

/// Two hosts: host B's lock is taken over by host A once its lease has
/// lapsed, and not while B renews it (a slow load running as host B).
fn two_hosts(target: &Target) {
    let p = sample();
    let mut store = target.store();
    let w = Duration::from_secs(5);
    let me = Holder::this_process();
    // A live process of this host, but the lock says host B: only its
    // lease counts.
    let host_b = Holder {
        host: "host-b".into(),
        token: "b".into(),
        ..me.clone()
    };
    let lapsed = Holder {
        expires: Utc::now() - chrono::Duration::seconds(5),
        ..host_b.clone()
    };
    let live = Holder {
        expires: Utc::now() + chrono::Duration::hours(1),
        ..host_b.clone()
    };
    let a = Some("host-a");
    let args = [
        "load",
        "-p",
        s(&p),
        "-m",
        STM,
        "-n",
        "h",
        "--lock-timeout",
        "1",
    ];

    assert_eq!(store.try_lock("h", &live, w).unwrap(), Attempt::Taken);
    let r = target.run_as(a, &args);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("could not get its lock within 1 s") && r.stderr.contains("@host-b"),
        "{}",
        r.stderr
    );
    let audit = target.run_as(a, &["db", "-a"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);
    assert!(store.unlock("h", &live).unwrap());

    assert_eq!(store.try_lock("h", &lapsed, w).unwrap(), Attempt::Taken);
    let audit = target.run_as(a, &["db", "-a"]);
    assert_eq!(audit.code, 3, "{}", audit.stdout);
    assert!(
        audit.stdout.contains("stale lock on 'h'") && audit.stdout.contains("lease lapsed"),
        "{}",
        audit.stdout
    );
    target.run_as(a, &args).ok();
    assert!(target.locks().is_empty());
    assert_eq!(target.counts(), "h (8 records)\n");

    // A slow load as host B (global steps: seconds even for a fast build),
    // its lease a fifth of a second on the embedded store: renewed, it
    // holds for as long as the load runs. The MongoDB test server answers a
    // renewal in tens of milliseconds alone, but a Python server busy with
    // the whole suite answered one after more than 2 s behind a load's
    // inserts: there the lease is 6 s, renewed every 2 s.
    let (steps, lease) = if target.mongo.is_some() {
        (128, Duration::from_secs(6))
    } else {
        (160, Duration::from_millis(200))
    };
    let big = big_file(target.env, steps);
    let mut slow = target.command(&common::stm_load_args(&big, "big"), Some("host-b"));
    slow.env("FLUXPY_LOCK_LEASE_SECONDS", lease.as_secs_f64().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = slow.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let first = loop {
        if let Some((_, h)) = target.locks().pop() {
            break h;
        }
        assert!(Instant::now() < deadline, "the slow load took no lock");
        std::thread::sleep(Duration::from_millis(10));
    };
    // Until its first lease has lapsed by the store's clock (the server's,
    // on MongoDB), and a lease more: only renewals keep it.
    let server = target.mongo.as_ref().map(|_| target.store());
    let now = || server.as_ref().map_or_else(Utc::now, |s| s.now().unwrap());
    let first_expiry = first.expires;
    let margin = chrono::Duration::from_std(lease).unwrap();
    while now() < first_expiry + margin {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(server);
    let locks = target.locks();
    let audit = target.run_as(a, &["db", "-a"]);
    // At once (no wait for the lock), so that the slow load still runs.
    let takeover = [
        "load",
        "-p",
        s(&p),
        "-m",
        STM,
        "-n",
        "big",
        "--lock-timeout",
        "0",
    ];
    let r = target.run_as(a, &takeover);
    let b = child.wait_with_output().unwrap();
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert!(locks.len() == 1 && locks[0].1.host == "host-b", "{locks:?}");
    assert_eq!(audit.code, 0, "{}{}", audit.stdout, audit.stderr);
    // Refused while host B's renewed lease held the lock (had the slow
    // load ended first, host A would have loaded).
    assert_eq!(r.code, 1, "host A took the lock over: {}", r.stdout);
    assert!(
        r.stderr.contains("could not get its lock within 0 s") && r.stderr.contains("@host-b"),
        "{}",
        r.stderr
    );
    assert!(target.locks().is_empty());
    assert_eq!(
        target.counts(),
        format!("big ({steps} records)\nh (8 records)\n")
    );
}

crate::on_both_stores!(
    a_lapsed_lease_of_another_host_is_taken_over_and_a_renewed_one_is_not,
    two_hosts
);

/// A command waiting for a lock that another process holds stops at once
/// on a signal, leaving that lock alone.
fn interrupted_waits(target: &Target) {
    let p = sample();
    let mut store = target.store();
    let w = Duration::from_secs(5);
    let me = Holder::this_process();
    // This very test process holds both locks.
    let held = Holder {
        token: "held".into(),
        ..me.clone()
    };
    target
        .run(&["load", "-p", s(&p), "-m", STM, "-n", "w"])
        .ok();
    assert_eq!(store.try_lock("w", &held, w).unwrap(), Attempt::Taken);
    for (args, signal, code, name) in [
        (
            vec![
                "load",
                "-p",
                s(&p),
                "-m",
                STM,
                "-n",
                "w",
                "--force",
                "--lock-timeout",
                "60",
            ],
            Signal::SIGINT,
            130,
            "SIGINT",
        ),
        (vec!["remove", "-n", "w"], Signal::SIGTERM, 143, "SIGTERM"),
    ] {
        let child = target
            .command(&args, None)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let started = Instant::now();
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        let secs = started.elapsed().as_secs_f64();
        let r = Run::from(out);
        assert_interrupted(&r, code, name);
        assert!(secs < 5.0, "{args:?} took {secs} s to stop");
        assert_eq!(target.locks(), [("w".to_string(), held.clone())]);
    }
    assert!(store.unlock("w", &held).unwrap());
    assert_eq!(target.counts(), "w (8 records)\n");
    assert_eq!(target.run(&["db", "-a"]).code, 0);
}

crate::on_both_stores!(
    a_signal_while_waiting_for_a_lock_stops_the_wait_and_leaves_the_lock,
    interrupted_waits
);

#[test]
fn a_lease_that_is_not_a_number_of_seconds_is_refused_by_name() {
    let env = Env::new();
    let target = Target::embedded(&env);
    let p = sample();
    for bad in ["0", "ten", "-5", "1e9"] {
        let mut c = target.command(&["load", "-p", s(&p), "-m", STM, "-n", "e"], None);
        c.env("FLUXPY_LOCK_LEASE_SECONDS", bad);
        let r = Run::from(c.output().expect("run manage"));
        assert_eq!(r.code, 1, "{bad}");
        assert!(
            r.stderr.contains("FLUXPY_LOCK_LEASE_SECONDS")
                && r.stderr.contains("0.1 to 604800")
                && r.stderr.lines().count() == 1,
            "{bad}: {}",
            r.stderr
        );
    }
    assert_eq!(target.counts(), "");
    assert!(target.locks().is_empty());
}

/// MongoDB: a load whose lock another host took over (as after this host
/// was paused for longer than the lease) fails before its commit, and drops
/// the staging collection of its own acquisition.
#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn a_load_whose_lock_was_taken_over_fails_and_drops_its_own_staging_on_mongodb() {
    let env = Env::new();
    let target = Target::mongodb(&env);
    let big = big_file(&env, 32);
    let mut slow = target.command(&common::stm_load_args(&big, "big"), Some("host-b"));
    slow.env("FLUXPY_LOCK_LEASE_SECONDS", "0.5")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = slow.spawn().unwrap();
    let mut store = target.store();
    let deadline = Instant::now() + Duration::from_secs(120);
    // The load stages into a collection of its own lock acquisition.
    let staged = |store: &dyn fluxpy::store::Store| -> Vec<String> {
        store
            .leftovers()
            .unwrap()
            .into_iter()
            .filter(|l| fluxpy::store::staged_dataset(l) == Some("big"))
            .collect()
    };
    while staged(&*store).is_empty() {
        assert!(Instant::now() < deadline, "the slow load wrote nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        staged(&*store)[0].starts_with("_load@"),
        "{:?}",
        staged(&*store)
    );
    let locks = store.locks().unwrap();
    assert_eq!(locks.len(), 1, "{locks:?}");
    let b = locks[0].1.clone();
    assert_eq!(b.host, "host-b");
    // Host A takes the lock over.
    let a = Holder {
        host: "host-a".into(),
        token: "a".into(),
        ..Holder::this_process()
    }
    .renewed(Duration::from_secs(600));
    assert!(store.unlock("big", &b).unwrap());
    assert_eq!(
        store.try_lock("big", &a, Duration::from_secs(5)).unwrap(),
        Attempt::Taken
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("'big'") && stderr.contains("took its lock over"),
        "{stderr}"
    );
    // A's lock is untouched; B dropped what it staged.
    let locks = store.locks().unwrap();
    assert!(
        locks.len() == 1 && locks[0].0 == "big" && locks[0].1.token == "a",
        "{locks:?}"
    );
    assert!(staged(&*store).is_empty(), "{:?}", staged(&*store));
    assert_eq!(target.counts(), "");
    assert!(store.unlock("big", &a).unwrap());
    assert_eq!(target.run(&["db", "-a"]).code, 0);
}
