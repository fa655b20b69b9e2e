//! The embedded store's busy wait follows `--lock-timeout`: a load waits
//! for another process's write transaction as long as it says, and no
//! longer (it used to be a fixed 30 s whatever the option).

use crate::common;

use std::time::{Duration, Instant};

use common::{sample, Env};
use fluxpy::store::{Attempt, Holder};

fn load(env: &Env, name: &str, timeout: &str) -> std::process::Child {
    env.command(&[
        "load",
        "-p",
        sample().to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        name,
        "--lock-timeout",
        timeout,
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap()
}

/// Another program's write transaction on the store, held until dropped.
fn hold_write_lock(env: &Env) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(env.db()).unwrap();
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    c
}

/// The store made by a first load.
fn load_first(env: &Env) {
    env.run(&[
        "load",
        "-p",
        sample().to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "first",
    ])
    .ok();
}

/// A load of `name` allowed 1 s while another program writes: refused,
/// its message.
fn refused_while_busy(env: &Env, name: &str) -> String {
    let held = hold_write_lock(env);
    let out = load(env, name, "1").wait_with_output().unwrap();
    drop(held);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn a_busy_store_is_waited_for_as_long_as_lock_timeout_says() {
    let env = Env::new();
    load_first(&env);

    // Busy for longer than the timeout: the load gives up after about 2 s.
    let held = hold_write_lock(&env);
    let start = Instant::now();
    let out = load(&env, "second", "2").wait_with_output().unwrap();
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("within 2 s") && stderr.contains("busy"),
        "{stderr}"
    );
    assert!(
        took >= Duration::from_millis(1900),
        "gave up after {took:?}"
    );
    assert!(
        took < Duration::from_secs(15),
        "waited {took:?} for a 2 s timeout"
    );

    // Busy for 3 s with 40 s allowed: the load waits, then succeeds.
    let child = load(&env, "second", "40");
    std::thread::sleep(Duration::from_secs(3));
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("could not be released"));

    // Held past the old fixed 30 s wait, with 60 s allowed: still loads.
    let held = hold_write_lock(&env);
    let child = load(&env, "third", "60");
    std::thread::sleep(Duration::from_secs(33));
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.run(&["db", "-a"]).code, 0);
}

/// A load refused because the store is busy with another write names the
/// load that holds the dataset's lock, where the table of locks (read
/// while the writer writes) says one does: host B's load, most likely
/// that very writer, not only "busy". Its lease looks lapsed, as a lease
/// does while its own load's write keeps it from being renewed, so the
/// load tries to take it over, and finds the store busy.
#[test]
fn a_busy_store_names_the_load_that_holds_the_lock() {
    let env = Env::new();
    load_first(&env);
    let host_b = Holder {
        host: "host-b".into(),
        token: "b".into(),
        expires: chrono::Utc::now() - chrono::Duration::seconds(5),
        ..Holder::this_process()
    };
    let mut store = fluxpy::store::open(Some(env.db().to_str().unwrap())).unwrap();
    let taken = store.try_lock("second", &host_b, Duration::from_secs(5));
    assert_eq!(taken.unwrap(), Attempt::Taken);
    drop(store);

    let stderr = refused_while_busy(&env, "second");
    assert!(
        stderr.contains("within 1 s: a load by") && stderr.contains("@host-b"),
        "{stderr}"
    );
    // With no lock in the table, only the store's being busy is said.
    let stderr = refused_while_busy(&env, "third");
    assert!(
        stderr.contains("within 1 s: the store is busy with another write"),
        "{stderr}"
    );
}

#[test]
fn parallel_loads_into_different_names_all_release_their_locks() {
    let env = Env::new();
    let children: Vec<_> = (0..8)
        .map(|k| load(&env, &format!("n{k}"), "120"))
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("could not be released"), "{stderr}");
    }
    let audit = env.run(&["db", "-a"]);
    assert_eq!(audit.code, 0, "{}{}", audit.stdout, audit.stderr);
    assert!(audit.stdout.contains("8 datasets"), "{}", audit.stdout);
}
