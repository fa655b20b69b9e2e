//! MongoDB connections that die or stall, against the real server
//! `scripts/with-test-env` starts: a `remove` or `rename` cut short at each
//! of its steps (the server made to fail the step's command with
//! `configureFailPoint failCommand`) is reported by `db -a` and finished by
//! running it again, by `db -a --fix` or (a remove) by the next load; and
//! commands whose connection is cut or stalls, through a TCP proxy on
//! 127.0.0.1 written here, end within their time limit, the lease of a
//! stalled load lapsing so that another host takes the dataset over.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Env, FreshDb};
use fluxpy::store::Datasets;
use fluxpy::synth::Grid;

// ---------------------------------------------------------------------
// The proxy.

/// What the proxy's connections share.
#[derive(Default)]
struct Shared {
    /// Bytes forwarded from the clients to the server.
    sent: AtomicU64,
    /// Once `sent` reaches this, nothing more is forwarded either way and
    /// no connection is closed (a stall).
    stall_at: AtomicU64,
    /// Once `sent` reaches this, every connection is closed, and new ones
    /// at once (the connection lost).
    cut_at: AtomicU64,
    cut: AtomicBool,
    streams: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn stalled(&self) -> bool {
        self.sent.load(Ordering::SeqCst) >= self.stall_at.load(Ordering::SeqCst)
    }

    fn cut_all(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.streams.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A TCP proxy on 127.0.0.1 in front of the test server: it forwards bytes
/// both ways, counts those sent to the server, and stalls (stops
/// forwarding, keeping every connection open) or cuts (closes every
/// connection) once a given number has been sent.
struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        shared.stall_at.store(u64::MAX, Ordering::SeqCst);
        shared.cut_at.store(u64::MAX, Ordering::SeqCst);
        let (sh, up) = (Arc::clone(&shared), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if sh.cut.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(&up) else {
                    continue;
                };
                {
                    let mut streams = sh.streams.lock().unwrap();
                    streams.push(client.try_clone().unwrap());
                    streams.push(server.try_clone().unwrap());
                }
                for (from, to, upward) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let sh = Arc::clone(&sh);
                    std::thread::spawn(move || forward(from, to, upward, &sh));
                }
            }
        });
        Proxy { port, shared }
    }

    /// Stall once `bytes` more have been sent to the server.
    fn stall_after(&self, bytes: u64) {
        let at = self.sent() + bytes;
        self.shared.stall_at.store(at, Ordering::SeqCst);
    }

    /// Close every connection once `bytes` more have been sent.
    fn cut_after(&self, bytes: u64) {
        let at = self.sent() + bytes;
        self.shared.cut_at.store(at, Ordering::SeqCst);
    }

    fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::SeqCst)
    }

    /// The test deployment's database `db` through this proxy, with the
    /// URI's extra options `options`.
    fn uri(&self, db: &str, options: &str) -> String {
        let q = if options.is_empty() { "" } else { "?" };
        format!("mongodb://127.0.0.1:{}/{db}{q}{options}", self.port)
    }
}

/// Forward `from` to `to` until either closes; stall or cut when told.
fn forward(mut from: TcpStream, mut to: TcpStream, upward: bool, sh: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if upward {
            let sent = sh.sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            if sent >= sh.cut_at.load(Ordering::SeqCst) {
                sh.cut_all();
            }
        }
        // A stall: these bytes and all later ones stay here, every
        // connection open, for good.
        while sh.stalled() && !sh.cut.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if sh.cut.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// `host:port` of the test deployment's (first) server.
fn upstream(uri: &str) -> String {
    let rest = uri.split_once("://").unwrap().1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    rest[..end].split(',').next().unwrap().to_string()
}

// ---------------------------------------------------------------------
// Helpers.

/// A small generated three-hourly grid file.
fn small_file(env: &Env, file: &str) -> PathBuf {
    env.grid_file(
        file,
        &Grid::NORTH_AMERICA.with_window(-10.0, 10.0, -5.0, 5.0),
        4,
    )
}

/// A North American grid of `steps` steps.
fn big_file(env: &Env, steps: usize) -> PathBuf {
    env.grid_file("big.mat", &Grid::NORTH_AMERICA, steps)
}

/// `manage --db DB ARGS`, as host `host`, with a lease of `lease` seconds.
fn command(env: &Env, db: &str, args: &[&str], host: &str, lease: &str) -> Command {
    let mut c = env.command(&[&["--db", db], args].concat());
    c.env("FLUXPY_HOST_ID", host)
        .env("FLUXPY_LOCK_LEASE_SECONDS", lease);
    c
}

/// Wait for `child` at most `limit`; its exit code, output and how long
/// it took. A child still running then is killed and the test fails.
fn finish(mut child: Child, limit: Duration) -> (i32, String, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.code().unwrap_or(-1), text, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The data collections of the database, through the driver.
fn collections(db: &FreshDb) -> Vec<String> {
    db.store.collections().unwrap()
}

/// A load's answer: it stored the file.
fn assert_loaded(r: &common::Run) {
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("loaded "), "{}", r.stdout);
}

// ---------------------------------------------------------------------
// A remove or rename cut short at each step.

/// How a cut-short operation is finished.
#[derive(Clone, Copy, Debug)]
enum Finish {
    /// The same command again.
    Again,
    /// `db -a --fix`.
    Fix,
    /// (A remove.) The next load into the name.
    Load,
}

/// Each step of a remove on MongoDB, as the command the server fails and
/// how many of those it lets through first: the note (`update`; the first
/// `update` takes the lock), the `metadata` and summary entries
/// (`delete`), the collection and `_geom_NAME` (`drop`; staging
/// collections are dropped only when they exist, here none), the
/// `coord_index` entry, the ingest log and the note again (`delete`).
const REMOVE_STEPS: [(&str, i32); 8] = [
    ("update", 1),
    ("delete", 0),
    ("delete", 1),
    ("drop", 0),
    ("drop", 1),
    ("delete", 2),
    ("delete", 3),
    ("delete", 4),
];

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn a_remove_cut_short_at_each_step_is_reported_and_finished() {
    let fail_point = common::FailPoint::take(&common::mongodb_uri());
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let env = Env::new();
    let app = format!("rm_{}", db.name);
    let target = format!("{}?appName={app}", db.uri);
    let file = small_file(&env, "a.mat");
    let load = common::stm_load_args(&file, "flux");
    assert_loaded(&env.run_on(&db.uri, &load));
    for (k, &(command, skip)) in REMOVE_STEPS.iter().enumerate() {
        let finish = [Finish::Again, Finish::Fix, Finish::Load][k % 3];
        let case = format!(
            "remove cut at {command} #{}, finished by {finish:?}",
            skip + 1
        );
        fail_point.fail(&app, command, Some(skip));
        let r = env.run_on(&target, &["remove", "-n", "flux"]);
        fail_point.off();
        assert_ne!(r.code, 0, "{case}: {}", r.stdout);
        let audit = env.run_on(&db.uri, &["db", "-a"]);
        if k == 0 {
            // Cut before its first step: nothing happened.
            assert_eq!(audit.code, 0, "{case}: {}", audit.stdout);
            assert_eq!(collections(&db), ["flux"], "{case}");
            assert!(env
                .run_on(&db.uri, &load)
                .ok()
                .stdout
                .starts_with("skipped "));
        } else {
            assert_eq!(audit.code, 3, "{case}: {}", audit.stdout);
            assert!(
                audit.stdout.contains("a remove of 'flux' was cut short")
                    && audit.stdout.contains("manage remove -n flux"),
                "{case}: {}",
                audit.stdout
            );
            if command == "delete" && skip == 3 {
                // Only its ingest-log entry was left (the issue's case).
                assert!(
                    audit.stdout.contains("left of 'flux': 1 ingest-log entry)"),
                    "{case}: {}",
                    audit.stdout
                );
            }
        }
        match finish {
            Finish::Again => {
                let r = env.run_on(&db.uri, &["remove", "-n", "flux"]).ok();
                assert_eq!(r.stdout, "removed flux\n", "{case}");
            }
            Finish::Fix => {
                let r = env.run_on(&db.uri, &["db", "-a", "--fix"]);
                assert_eq!(r.code, 0, "{case}: {}{}", r.stdout, r.stderr);
                if k > 0 {
                    assert!(
                        r.stdout.contains("fixed: finished a remove of 'flux'"),
                        "{case}: {}",
                        r.stdout
                    );
                }
                if k == 0 {
                    env.run_on(&db.uri, &["remove", "-n", "flux"]).ok();
                }
            }
            Finish::Load => {
                if k == 0 {
                    env.run_on(&db.uri, &["remove", "-n", "flux"]).ok();
                }
            }
        }
        let audit = env.run_on(&db.uri, &["db", "-a"]);
        if !matches!(finish, Finish::Load) || k == 0 {
            assert_eq!(audit.code, 0, "{case}: {}", audit.stdout);
            assert!(collections(&db).is_empty(), "{case}");
        }
        // The same file loads into a new dataset of that name.
        let r = env.run_on(&db.uri, &load);
        assert_loaded(&r);
        if matches!(finish, Finish::Load) && k > 0 {
            assert!(
                r.stderr.contains("a remove of 'flux' was cut short"),
                "{case}: {}",
                r.stderr
            );
        }
        let audit = env.run_on(&db.uri, &["db", "-a"]);
        assert_eq!(audit.code, 0, "{case}: {}", audit.stdout);
        assert_eq!(collections(&db), ["flux"], "{case}");
        let listed = env.run_on(&db.uri, &["db", "-l", "collections", "-x"]).ok();
        assert!(
            listed.stdout.starts_with("flux"),
            "{case}: {}",
            listed.stdout
        );
    }
}

/// Each step of a rename on MongoDB: the note (`update`; the first two
/// take the locks of both names), the collection and `_geom_NAME`
/// (`renameCollection`), the `coord_index` entry (put, delete), the
/// summary (put, delete), the ingest-log entry (put, delete), the
/// `metadata` entry (put, delete) and the note (`delete`).
const RENAME_STEPS: [(&str, i32); 12] = [
    ("update", 2),
    ("renameCollection", 0),
    ("renameCollection", 1),
    ("update", 3),
    ("delete", 0),
    ("update", 4),
    ("delete", 1),
    ("update", 5),
    ("delete", 2),
    ("update", 6),
    ("delete", 3),
    ("delete", 4),
];

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn a_rename_cut_short_at_each_step_is_reported_and_finished() {
    let fail_point = common::FailPoint::take(&common::mongodb_uri());
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let env = Env::new();
    let app = format!("mv_{}", db.name);
    let target = format!("{}?appName={app}", db.uri);
    let file = small_file(&env, "a.mat");
    assert_loaded(&env.run_on(&db.uri, &common::stm_load_args(&file, "flux")));
    let (mut from, mut to) = ("flux", "flux2");
    for (k, &(command, skip)) in RENAME_STEPS.iter().enumerate() {
        let again = k % 2 == 0;
        let case = format!(
            "rename cut at {command} #{}, finished by {}",
            skip + 1,
            if again { "running it again" } else { "--fix" }
        );
        let before = env.run_on(&db.uri, &["export", "-n", from]).ok().stdout;
        fail_point.fail(&app, command, Some(skip));
        let r = env.run_on(&target, &["rename", "-n", from, "-r", to]);
        fail_point.off();
        assert_ne!(r.code, 0, "{case}: {}", r.stdout);
        let audit = env.run_on(&db.uri, &["db", "-a"]);
        if k == 0 {
            assert_eq!(audit.code, 0, "{case}: {}", audit.stdout);
        } else {
            assert_eq!(audit.code, 3, "{case}: {}", audit.stdout);
            assert!(
                audit
                    .stdout
                    .contains(&format!("a rename of '{from}' to '{to}' was cut short"))
                    && audit
                        .stdout
                        .contains(&format!("manage rename -n {from} -r {to}")),
                "{case}: {}",
                audit.stdout
            );
            // Nothing else may write either name meanwhile.
            let r = env.run_on(&db.uri, &common::stm_load_args(&file, to));
            assert_eq!(r.code, 1, "{case}: {}", r.stdout);
            assert!(r.stderr.contains("was cut short"), "{case}: {}", r.stderr);
        }
        if again {
            let r = env.run_on(&db.uri, &["rename", "-n", from, "-r", to]).ok();
            assert_eq!(r.stdout, format!("renamed {from} to {to}\n"), "{case}");
        } else {
            let r = env.run_on(&db.uri, &["db", "-a", "--fix"]);
            assert_eq!(r.code, 0, "{case}: {}{}", r.stdout, r.stderr);
            if k == 0 {
                env.run_on(&db.uri, &["rename", "-n", from, "-r", to]).ok();
            } else {
                assert!(
                    r.stdout.contains("fixed: finished a rename"),
                    "{case}: {}",
                    r.stdout
                );
            }
        }
        let audit = env.run_on(&db.uri, &["db", "-a"]);
        assert_eq!(audit.code, 0, "{case}: {}", audit.stdout);
        assert_eq!(collections(&db), [to], "{case}");
        // The documents moved whole, and so did the ingest log: the file is
        // loaded in the new name, not in the old one.
        let after = env.run_on(&db.uri, &["export", "-n", to]).ok().stdout;
        assert_eq!(after, before.replace(from, to), "{case}");
        let again = env.run_on(&db.uri, &common::stm_load_args(&file, to)).ok();
        assert!(
            again.stdout.starts_with("skipped "),
            "{case}: {}",
            again.stdout
        );
        (from, to) = (to, from);
    }
    // The old name is free: the same file loads into it.
    assert_loaded(&env.run_on(&db.uri, &common::stm_load_args(&file, to)));
    assert_eq!(env.run_on(&db.uri, &["db", "-a"]).code, 0);
}

// ---------------------------------------------------------------------
// Connections cut or stalled, through the proxy.

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn a_load_whose_connection_stalls_fails_in_time_and_its_lease_lapses() {
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let env = Env::new();
    let big = big_file(&env, 16);
    // Host B stalls a third of the way through what a whole load sends
    // (measured into another database): its documents, the lock taken.
    let measured = FreshDb::new(&uri);
    let total = bytes_of(
        &env,
        &uri,
        &measured.name,
        &common::stm_load_args(&big, "big"),
    );
    let proxy = Proxy::start(&upstream(&uri));
    let via = proxy.uri(&db.name, "socketTimeoutMS=2000");
    proxy.stall_after(total / 3);
    let b = spawn(command(
        &env,
        &via,
        &common::stm_load_args(&big, "big"),
        "host-b",
        "1",
    ));
    let (code, out, took) = finish(b, Duration::from_secs(60));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no answer within 2 s") && out.contains("stalled"),
        "{out}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}: {out}");
    // A lock it left (releasing it got no answer) is no longer renewed.
    let locks = db.store.locks().unwrap();
    if let Some((_, holder)) = locks.first() {
        assert!(locks.len() == 1 && holder.host == "host-b", "{locks:?}");
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(db.store.locks().unwrap()[0].1.expires, holder.expires);
    }
    // Host A takes the dataset over and loads it whole.
    let a = command(
        &env,
        &db.uri,
        &common::stm_load_args(&big, "big"),
        "host-a",
        "60",
    )
    .args(["--lock-timeout", "10"])
    .output()
    .unwrap();
    let r: common::Run = a.into();
    assert_loaded(&r);
    let audit = env.run_on(&db.uri, &["db", "-a"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);
    assert!(db.store.locks().unwrap().is_empty());
    let listed = env.run_on(&db.uri, &["db", "-l", "collections", "-x"]).ok();
    assert!(listed.stdout.starts_with("big (16 "), "{}", listed.stdout);
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn a_load_whose_connection_is_cut_fails_at_once_and_runs_again() {
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let env = Env::new();
    let big = big_file(&env, 16);
    let measured = FreshDb::new(&uri);
    let total = bytes_of(
        &env,
        &uri,
        &measured.name,
        &common::stm_load_args(&big, "big"),
    );
    let proxy = Proxy::start(&upstream(&uri));
    let via = proxy.uri(
        &db.name,
        "socketTimeoutMS=5000&serverSelectionTimeoutMS=1000",
    );
    proxy.cut_after(total / 3);
    let b = spawn(command(
        &env,
        &via,
        &common::stm_load_args(&big, "big"),
        "host-b",
        "60",
    ));
    let (code, out, took) = finish(b, Duration::from_secs(60));
    assert_eq!(code, 1, "{out}");
    assert!(took < Duration::from_secs(20), "took {took:?}: {out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("manage: error"))
            .count(),
        1,
        "{out}"
    );
    // Nothing of it shows as a dataset; what it left is reported.
    assert!(collections(&db).is_empty());
    let audit: common::Run = command(&env, &db.uri, &["db", "-a"], "host-b", "60")
        .output()
        .unwrap()
        .into();
    // Clean, or what it left is reported.
    assert!(
        audit.code == 0
            || audit.code == 3
                && (audit.stdout.contains("_load.big")
                    || audit.stdout.contains("stale lock on 'big'")),
        "{}",
        audit.stdout
    );
    // The same load, run again on this host, finishes it.
    let r: common::Run = command(
        &env,
        &db.uri,
        &common::stm_load_args(&big, "big"),
        "host-b",
        "60",
    )
    .output()
    .unwrap()
    .into();
    assert_loaded(&r);
    assert_eq!(env.run_on(&db.uri, &["db", "-a"]).code, 0);
}

/// Bytes `args` sends to the server, run through a fresh proxy.
fn bytes_of(env: &Env, uri: &str, db: &str, args: &[&str]) -> u64 {
    let proxy = Proxy::start(&upstream(uri));
    let c = command(env, &proxy.uri(db, ""), args, "host-a", "60");
    let (code, out, _) = finish(spawn(c), Duration::from_secs(60));
    assert_eq!(code, 0, "{out}");
    proxy.sent()
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn db_and_remove_on_a_stalled_connection_end_within_the_limit() {
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let env = Env::new();
    let file = small_file(&env, "a.mat");
    // Every command as one host, so that a lock a stalled one leaves is
    // known to be stale (its process is gone).
    let run = |args: &[&str]| -> common::Run {
        command(&env, &db.uri, args, "host-a", "60")
            .output()
            .unwrap()
            .into()
    };
    for name in ["a", "b"] {
        assert_loaded(&run(&common::stm_load_args(&file, name)));
    }
    let stalled = |args: &[&str], at: u64| {
        let proxy = Proxy::start(&upstream(&uri));
        proxy.stall_after(at);
        let via = proxy.uri(&db.name, "timeoutMS=1500");
        let (code, out, took) = finish(
            spawn(command(&env, &via, args, "host-a", "60")),
            Duration::from_secs(60),
        );
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(out.contains("no answer within 1.5 s"), "{args:?}: {out}");
        assert!(
            took < Duration::from_secs(15),
            "{args:?} took {took:?}: {out}"
        );
    };
    // `db` stalled at once, and half way through its audit and listing.
    for args in [&["db", "-a"][..], &["db", "-l", "collections", "-x"]] {
        let total = bytes_of(&env, &uri, &db.name, args);
        for at in [0, total / 2] {
            stalled(args, at);
        }
    }
    // `remove` stalled half way: measured on `a`, stalled on `b`.
    let total = bytes_of(&env, &uri, &db.name, &["remove", "-n", "a"]);
    stalled(&["remove", "-n", "b"], total / 2);
    // What it did is whole or reported; `--fix` finishes it, and `b`'s
    // file loads again.
    let audit = run(&["db", "-a"]);
    if audit.code != 0 {
        assert!(
            audit.stdout.contains("'b'") || audit.stdout.contains("_load.b"),
            "{}",
            audit.stdout
        );
        run(&["db", "-a", "--fix"]).ok();
    }
    if collections(&db).contains(&"b".to_string()) {
        run(&["remove", "-n", "b"]).ok();
    }
    let audit = run(&["db", "-a"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);
    assert_loaded(&run(&common::stm_load_args(&file, "b")));
}
