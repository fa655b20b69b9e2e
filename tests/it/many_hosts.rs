//! Many hosts, one MongoDB deployment: commits fenced by their lock, leases
//! judged by the server's clock, steps run again after a fail-over, and an
//! append of earlier times that rewrites nothing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use fluxpy::store::lock::Holder;
use fluxpy::store::Attempt;
use fluxpy::synth::Grid;

use crate::common::{self, Env, FailPoint, FreshDb, Target};

const STM: &str = "SpatioTemporalMatrix";

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// The raw database of a fresh test database, through the driver.
fn raw(db: &FreshDb) -> mongodb::sync::Database {
    mongodb::sync::Client::with_uri_str(common::mongodb_uri())
        .unwrap()
        .database(&db.name)
}

/// Every document of dataset `name`, as `export` writes them.
fn exported(target: &Target, name: &str) -> String {
    target.run(&["export", "-n", name]).ok().stdout
}

/// Internal collections of the store that are staging collections.
fn staging(target: &Target) -> Vec<String> {
    target
        .store()
        .all_collections()
        .unwrap()
        .into_iter()
        .filter(|c| c.starts_with("_load"))
        .collect()
}

/// A holder as host `host`, with lease `lease` seconds from now (negative:
/// lapsed that long ago), by this host's clock.
fn holder(host: &str, token: &str, lease: i64) -> Holder {
    Holder {
        host: host.into(),
        token: token.into(),
        expires: chrono::Utc::now() + chrono::Duration::seconds(lease),
        ..Holder::this_process()
    }
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn a_load_whose_lock_was_taken_over_commits_nothing_at_any_step() {
    let env = Env::new();
    let target = Target::mongodb(&env);
    let wait = Duration::from_secs(5);
    let day = |d: i64| {
        doc! { "_id": bson::DateTime::from_millis(d * 86_400_000), "values": [1.0, 2.0, 3.0] }
    };
    let coords = |n: &str| doc! { "_id": n, "i": [[-166.5, 10.5], [-165.5, 10.5], [-164.5, 10.5]] };
    let md = |n: &str| doc! { "_id": n, "title": n, "gridded": true };
    // A first load (swap) and an append (merge) into a stored dataset.
    for (name, stored) in [("first", false), ("append", true)] {
        let mut store = target.store();
        if stored {
            let mut l = store.begin_load(name).unwrap();
            l.write(crate::common::docs(vec![day(1)])).unwrap();
            l.commit(crate::common::entries(coords(name), md(name)))
                .unwrap();
        }
        let before = stored.then(|| exported(&target, name));
        let a = holder("host-a", &format!("a-{name}"), 60);
        assert_eq!(store.try_lock(name, &a, wait).unwrap(), Attempt::Taken);
        store.fence(name, &a.token);
        let mut l = store.begin_load(name).unwrap();
        l.write(crate::common::docs(vec![day(2), day(3)])).unwrap();
        assert_eq!(staging(&target).len(), 1, "{:?}", staging(&target));
        // Host B takes the lock over while A is about to commit.
        target
            .mongo
            .as_ref()
            .map(raw)
            .unwrap()
            .collection::<Document>("_locks")
            .update_one(
                doc! { "_id": name },
                doc! { "$set": { "token": "b", "host": "host-b" } },
            )
            .run()
            .unwrap();
        let e = l
            .commit(crate::common::entries(coords(name), md(name)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("another process took its lock over") && !e.contains('\n'),
            "{name}: {e}"
        );
        let after = store.exists(name).unwrap().then(|| exported(&target, name));
        assert_eq!(after, before, "{name}: nothing committed");
        assert!(
            staging(&target).is_empty(),
            "{name}: {:?}",
            staging(&target)
        );
        assert_eq!(
            store.entry("metadata", name).unwrap().is_some(),
            stored,
            "{name}"
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn a_host_stopped_past_its_lease_commits_nothing_into_the_next_holders_load() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let env = Env::new();
    let target = Target::mongodb(&env);
    let big = env.grid_file("big.mat", &Grid::GLOBAL_HALF_DEGREE, 96);
    let small = common::sample();
    let stm = |p| vec!["load", "-p", p, "-m", STM, "-n", "f"];
    let mut a = target.command(&common::stm_load_args(&big, "f"), Some("host-a"));
    a.env("FLUXPY_LOCK_LEASE_SECONDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let a = a.spawn().unwrap();
    let pid = Pid::from_raw(a.id() as i32);
    // Stopped once it stages documents: mid-load, holding its lease.
    let deadline = Instant::now() + Duration::from_secs(120);
    let stage = loop {
        assert!(Instant::now() < deadline, "host A staged nothing");
        if let Some(c) = staging(&target).pop() {
            if target.store().count(&c).unwrap_or(0) > 0 {
                break c;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    kill(pid, Signal::SIGSTOP).unwrap();
    assert!(stage.starts_with("_load@"), "{stage}");
    std::thread::sleep(Duration::from_secs(3));
    // Host B finds A's lease lapsed, takes the lock over and loads.
    let b = target.run_as(Some("host-b"), &stm(s(&small)));
    kill(pid, Signal::SIGCONT).unwrap();
    let a = a.wait_with_output().unwrap();
    let a_err = String::from_utf8_lossy(&a.stderr).to_string();
    b.ok();
    assert_eq!(a.status.code(), Some(1), "{a_err}");
    assert!(
        a_err.contains("another process took its lock over") && a_err.trim().lines().count() == 1,
        "{a_err}"
    );
    // The dataset holds exactly B's documents.
    target
        .run(
            &stm(s(&small))[..5]
                .iter()
                .copied()
                .chain(["-n", "ref"])
                .collect::<Vec<_>>(),
        )
        .ok();
    assert_eq!(exported(&target, "f"), exported(&target, "ref"));
    assert!(staging(&target).is_empty(), "{:?}", staging(&target));
    let audit = target.run(&["db", "-a"]);
    assert_eq!(audit.code, 0, "{}{}", audit.stdout, audit.stderr);
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn hosts_whose_clocks_are_off_judge_a_lease_by_the_servers_clock() {
    let env = Env::new();
    let target = Target::mongodb(&env);
    let p = common::sample();
    let mut store = target.store();
    let wait = Duration::from_secs(5);
    let load = |offset: &str| {
        let mut c = target.command(
            &[
                "load",
                "-p",
                s(&p),
                "-m",
                STM,
                "-n",
                "s",
                "--force",
                "--lock-timeout",
                "1",
            ],
            Some("host-a"),
        );
        c.env("FLUXPY_CLOCK_OFFSET_SECONDS", offset);
        common::Run::from(c.output().unwrap())
    };
    for offset in ["3600", "-3600", "0"] {
        // A lease of host B that holds for another 30 s.
        let live = holder("host-b", "b-live", 30);
        assert_eq!(store.try_lock("s", &live, wait).unwrap(), Attempt::Taken);
        let r = load(offset);
        assert_eq!(r.code, 1, "offset {offset}: {}", r.stderr);
        assert!(
            r.stderr.contains("could not get its lock within 1 s") && r.stderr.contains("@host-b"),
            "offset {offset}: {}",
            r.stderr
        );
        assert!(store.unlock("s", &live).unwrap(), "offset {offset}");
        // One that lapsed 5 s ago.
        let lapsed = holder("host-b", "b-lapsed", -5);
        assert_eq!(store.try_lock("s", &lapsed, wait).unwrap(), Attempt::Taken);
        let r = load(offset);
        assert_eq!(r.code, 0, "offset {offset}: {}", r.stderr);
        assert!(target.locks().is_empty(), "offset {offset}");
    }
}

/// The commands whose failure a fail-over causes, failed once each with
/// `PrimarySteppedDown` (and the retryable-write label, as a server
/// attaches it), on each of a first load, an append and a rename.
#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn a_fail_over_at_any_write_step_loses_and_duplicates_nothing() {
    let env = Env::new();
    let uri = common::mongodb_uri();
    let grid = Grid::GLOBAL_HALF_DEGREE.with_window(-30.0, 30.0, -20.0, 20.0);
    let first = env.grid_file("first.mat", &grid, 6);
    let later = env.grid_file("later.mat", &grid, 4);
    let load = |p: &std::path::PathBuf, t: &str, n: &str| {
        vec![
            "load".to_string(),
            "-p".into(),
            s(p).into(),
            "-m".into(),
            STM.into(),
            "-n".into(),
            n.into(),
            "-o".into(),
            format!("timestamp={t}"),
        ]
    };
    let steps: Vec<(&str, Vec<String>)> = vec![
        ("first load", load(&first, "2004-06-01", "d")),
        ("append", load(&later, "2004-07-01", "d")),
        (
            "rename",
            vec![
                "rename".into(),
                "-n".into(),
                "d".into(),
                "-r".into(),
                "e".into(),
            ],
        ),
    ];
    // Only this test's connections fail: the fail point matches their
    // appName, and they look for the primary again every half second once
    // an error marks it unknown.
    let app = "fail-over-test";
    let on = |db: &FreshDb| {
        let sep = if db.uri.contains('?') { '&' } else { '?' };
        format!("{}{sep}appName={app}&heartbeatFrequencyMS=500", db.uri)
    };
    let run = |uri: &str, args: &[String]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        env.run_on(uri, &a)
    };
    let export = |uri: &str| env.run_on(uri, &["export", "-n", "e"]).ok().stdout;
    // The reference: the same steps without a failure.
    let reference = FreshDb::new(&uri);
    for (_, args) in &steps {
        run(&on(&reference), args).ok();
    }
    let want = export(&on(&reference));
    assert!(!want.is_empty());
    let commands = [
        "insert",
        "update",
        "delete",
        "create",
        "drop",
        "renameCollection",
        "aggregate",
        "findAndModify",
    ];
    let fp = FailPoint::take(&uri);
    let mut outcomes = Vec::new();
    for (k, (what, _)) in steps.iter().enumerate() {
        for command in commands {
            let db = FreshDb::new(&uri);
            let db_uri = on(&db);
            // The steps before this one, without failure.
            for (_, args) in &steps[..k] {
                run(&db_uri, args).ok();
            }
            fp.fail_with(
                app,
                command,
                doc! { "errorCode": 189, "errorLabels": ["RetryableWriteError"] },
            );
            let r = run(&db_uri, &steps[k].1);
            let hit = !still_armed(&db_uri, &db.name, command);
            fp.off();
            let repaired = r.code != 0;
            if repaired {
                assert_eq!(
                    r.stderr.trim().lines().count(),
                    1,
                    "{what}, {command}: {}",
                    r.stderr
                );
                run(&db_uri, &steps[k].1).ok();
            }
            for (_, args) in &steps[k + 1..] {
                run(&db_uri, args).ok();
            }
            assert_eq!(export(&db_uri), want, "{what}, {command}");
            let audit = env.run_on(&db_uri, &["db", "-a"]);
            assert_eq!(audit.code, 0, "{what}, {command}: {}", audit.stdout);
            outcomes.push(format!(
                "{what}/{command}: {}, {}",
                if hit { "failed once" } else { "not sent" },
                if repaired { "run again" } else { "succeeded" }
            ));
        }
    }
    eprintln!("{}", outcomes.join("\n"));
    // The failures did happen, at the steps no driver retries among them.
    for sent in [
        "first load/insert",
        "first load/create",
        "first load/renameCollection",
        "first load/update",
        "append/insert",
        "append/aggregate",
        "append/delete",
        "append/drop",
        "rename/renameCollection",
        "rename/update",
    ] {
        assert!(
            outcomes.contains(&format!("{sent}: failed once, succeeded")),
            "{sent}: {outcomes:#?}"
        );
    }
    // The steps only the driver retries (inserts, one-document writes)
    // and those manage runs again itself: every one succeeded at once.
    assert!(
        outcomes.iter().all(|o| o.ends_with("succeeded")),
        "{outcomes:#?}"
    );
}

/// Whether the fail point armed on `command` is still waiting for it: one
/// such command sent by a connection of the fail point's appName (`uri`),
/// without retries, fails. (Run on database `db`, in collections the
/// loads do not use.)
fn still_armed(uri: &str, db: &str, command: &str) -> bool {
    let client =
        mongodb::sync::Client::with_uri_str(format!("{uri}&retryWrites=false&retryReads=false"))
            .unwrap();
    let d = client.database(db);
    let c = d.collection::<Document>("probe");
    let failed = match command {
        "insert" => c.insert_one(doc! { "x": 1 }).run().is_err(),
        "update" => c
            .update_one(doc! { "x": 1 }, doc! { "$set": { "y": 1 } })
            .run()
            .is_err(),
        "delete" => c.delete_one(doc! { "x": 1 }).run().is_err(),
        "create" => d.create_collection("probe_made").run().is_err(),
        "drop" => d.collection::<Document>("probe_made").drop().run().is_err(),
        "renameCollection" => client
            .database("admin")
            .run_command(doc! {
                "renameCollection": format!("{db}.probe_none"),
                "to": format!("{db}.probe_other"),
            })
            .run()
            .is_err_and(|e| e.to_string().contains("failCommand")),
        "aggregate" => c.aggregate([doc! { "$match": {} }]).run().is_err(),
        "findAndModify" => c
            .find_one_and_update(doc! { "x": 1 }, doc! { "$set": { "z": 1 } })
            .run()
            .is_err(),
        other => panic!("no probe for {other}"),
    };
    let _ = d.collection::<Document>("probe").drop().run();
    let _ = d.collection::<Document>("probe_made").drop().run();
    failed
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn an_append_of_earlier_times_rewrites_nothing() {
    let env = Env::new();
    let target = Target::mongodb(&env);
    let db = raw(target.mongo.as_ref().unwrap());
    let grid = Grid::GLOBAL_HALF_DEGREE.with_window(-30.0, 30.0, -20.0, 20.0);
    let late = env.grid_file("late.mat", &grid, 6);
    let early = env.grid_file("early.mat", &grid, 3);
    let at = |p: &std::path::PathBuf, t: &str| {
        let mut a = common::stm_load_args(p, "g")
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        *a.last_mut().unwrap() = format!("timestamp={t}");
        a
    };
    let late = at(&late, "2004-07-01");
    let early = at(&early, "2004-06-30");
    target
        .run(&late.iter().map(String::as_str).collect::<Vec<_>>())
        .ok();
    db.run_command(doc! { "profile": 2 }).run().unwrap();
    target
        .run(&early.iter().map(String::as_str).collect::<Vec<_>>())
        .ok();
    db.run_command(doc! { "profile": 0 }).run().unwrap();
    let profiled: Vec<Document> = db
        .collection::<Document>("system.profile")
        .find(doc! {})
        .run()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let stages = |d: &Document| -> Vec<String> {
        d.get_document("command")
            .ok()
            .and_then(|c| c.get_array("pipeline").ok())
            .map(|p| {
                p.iter()
                    .filter_map(Bson::as_document)
                    .flat_map(|s| s.keys().cloned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let all: Vec<String> = profiled.iter().flat_map(stages).collect();
    // The append went through the server's merge, and nothing wrote out.
    assert!(all.iter().any(|s| s == "$merge"), "{all:?}");
    assert!(!all.iter().any(|s| s == "$out"), "{all:?}");
    // What is stored is every time once, read back in time order.
    let ids: Vec<String> = target
        .run(&["export", "-n", "g"])
        .ok()
        .json_lines()
        .iter()
        .map(|d| d["_id"]["$date"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 9);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted);
}

/// `shardStaging=hashed` asks for a new dataset's staging collection
/// sharded on hashed `_id`: on a server that is not a `mongos` (the test
/// server is one server), the load is refused in one line naming the
/// option, and leaves nothing.
#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn sharded_staging_is_refused_where_the_server_is_not_a_mongos() {
    let env = Env::new();
    let db = FreshDb::new(&common::mongodb_uri());
    let sep = if db.uri.contains('?') { '&' } else { '?' };
    let uri = format!("{}{sep}shardStaging=hashed", db.uri);
    let p = common::sample();
    let r = env.run_on(&uri, &["load", "-p", s(&p), "-m", STM, "-n", "sh"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("shardStaging=hashed") && r.stderr.contains("not a mongos"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    let audit = env.run_on(&db.uri, &["db", "-a"]).ok();
    assert!(
        audit.stdout.starts_with("ok: 0 datasets,"),
        "{}",
        audit.stdout
    );
    let bad = env.run_on(
        &format!("{}{sep}shardStaging=range", db.uri),
        &["load", "-p", s(&p), "-m", STM, "-n", "sh"],
    );
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("shardStaging=\"range\"") && bad.stderr.trim().lines().count() == 1,
        "{}",
        bad.stderr
    );
}

/// A SecantusDB server of this test's own (a primary stepping down would
/// fail every other test's writes on the shared one), stopped when
/// dropped.
struct OwnServer {
    child: std::process::Child,
    port: u16,
}

impl OwnServer {
    fn start(dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let python = common::python_with(&["secantus"]);
        let child = std::process::Command::new(python)
            .args(["-m", "secantus", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--storage-path")
            .arg(dir)
            .args(["--log-level", "WARNING"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "SecantusDB did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Database `db` of this server, named as a replica set (SecantusDB's
    /// is `secantus`), as a user names one: the driver then waits for a
    /// primary instead of writing to a secondary. It checks for one every
    /// half second once one is lost.
    fn uri(&self, db: &str) -> String {
        format!(
            "mongodb://127.0.0.1:{}/{db}?replicaSet=secantus&appName=stepdown-test&heartbeatFrequencyMS=500",
            self.port
        )
    }

    /// The primary steps down for `secs` seconds (`replSetStepDown`,
    /// forced: it has no secondary); it answers writes with
    /// `NotWritablePrimary` meanwhile, then is elected again.
    fn step_down(&self, secs: i32) {
        let client =
            mongodb::sync::Client::with_uri_str(format!("mongodb://127.0.0.1:{}/", self.port))
                .unwrap();
        // The server may close the connection as it steps down.
        let _ = client
            .database("admin")
            .run_command(doc! { "replSetStepDown": secs, "force": true })
            .run();
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The primary steps down (and is elected again 3 s later) while a first
/// load writes and while an append writes: both ride it out, with the
/// documents of loads that saw no fail-over.
#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn a_primary_stepping_down_during_a_load_and_an_append_is_ridden_out() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let server = OwnServer::start(dir.path());
    let grid = Grid::GLOBAL_HALF_DEGREE.with_window(-180.0, 180.0, -40.0, 40.0);
    let first = env.grid_file("first.mat", &grid, 32);
    let later = env.grid_file("later.mat", &grid, 16);
    let args = |p: &std::path::PathBuf, t: &str| -> Vec<String> {
        let mut a: Vec<String> = common::stm_load_args(p, "d")
            .into_iter()
            .map(str::to_string)
            .collect();
        *a.last_mut().unwrap() = format!("timestamp={t}");
        a
    };
    let steps = [args(&first, "2004-01-01"), args(&later, "2004-02-01")];
    let run = |uri: &str, a: &[String]| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        env.run_on(uri, &a)
    };
    let reference = server.uri("reference");
    for a in &steps {
        run(&reference, a).ok();
    }
    let uri = server.uri("stepdown");
    for (k, a) in steps.iter().enumerate() {
        let mut c = env.command(&a.iter().map(String::as_str).collect::<Vec<_>>());
        c.env("FLUXPY_DB", &uri)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        // Once the load has staged documents, the primary steps down.
        let store = fluxpy::store::open(Some(&uri)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let staged = store
                .all_collections()
                .unwrap()
                .into_iter()
                .filter(|c| c.starts_with("_load@"))
                .any(|c| store.count(&c).unwrap_or(0) > 0);
            if staged {
                break;
            }
            assert!(Instant::now() < deadline, "step {k}: nothing staged");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(store);
        server.step_down(3);
        let r = common::Run::from(child.wait_with_output().unwrap());
        assert_eq!(r.code, 0, "step {k}: {}", r.stderr);
    }
    let export = |uri: &str| env.run_on(uri, &["export", "-n", "d"]).ok().stdout;
    assert_eq!(export(&uri), export(&reference));
    let audit = env.run_on(&uri, &["db", "-a"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);
}
