//! MongoDB-only behaviour, against the real server `scripts/with-test-env`
//! starts (SecantusDB; any MongoDB deployment will do): a swap that fails,
//! flux-server's `_geom_NAME` collection, natural order, reloads, and
//! authentication against a server that requires it.

use crate::common;

use std::path::{Path, PathBuf};

use bson::{doc, Bson, Document};
use common::{Env, FreshDb};
use fluxpy::synth::{self, Grid};
use mongodb::sync::{Client, Database};

const STM: &str = "SpatioTemporalMatrix";
const XCO2: &str = "XCO2Matrix";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The database `db` of the deployment, through the driver itself.
fn database(uri: &str, db: &str) -> Database {
    Client::with_uri_str(uri).unwrap().database(db)
}

/// The `_id`s of a collection in natural order (a `find` without sort).
fn natural_ids(db: &Database, collection: &str) -> Vec<Bson> {
    db.collection::<Document>(collection)
        .find(doc! {})
        .projection(doc! { "_id": 1 })
        .run()
        .unwrap()
        .map(|d| d.unwrap().get("_id").unwrap().clone())
        .collect()
}

fn names(db: &Database) -> Vec<String> {
    let mut n = db.list_collection_names().run().unwrap();
    n.sort();
    n
}

/// A generated XCO2 point file.
fn points_file(env: &Env, file: &str, n: usize, first_day: u32) -> PathBuf {
    let p = env.path(file);
    synth::write_mat_v5(
        &p,
        "XCO2",
        &synth::xco2_matrix(n, 2009, first_day, 3),
        false,
    )
    .unwrap();
    p
}

/// flux-server's geometry collection of `name`, as a load makes it: one
/// `{ll, idx}` per coord_index pair, in order; its number of documents.
fn checked_geom(db: &Database, name: &str) -> usize {
    let ci = db
        .collection::<Document>("coord_index")
        .find_one(doc! { "_id": name })
        .run()
        .unwrap()
        .expect("a coord_index entry");
    let cells = ci.get_array("i").unwrap();
    let geom = db.collection::<Document>(&format!("_geom_{name}"));
    let docs: Vec<Document> = geom
        .find(doc! {})
        .sort(doc! { "idx": 1 })
        .run()
        .unwrap()
        .map(|d| d.unwrap())
        .collect();
    assert_eq!(
        docs.len(),
        cells.len(),
        "_geom_{name}: one document per cell"
    );
    for (i, (d, ll)) in docs.iter().zip(cells).enumerate() {
        assert_eq!(d.get_i32("idx").unwrap() as usize, i);
        assert_eq!(d.get("ll"), Some(ll), "_geom_{name} cell {i}");
    }
    docs.len()
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn a_first_load_whose_swap_fails_leaves_nothing_and_runs_again() {
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let env = Env::new();
    // Only this test's connections: the fail point matches their appName.
    let app = format!("fp_{}", db.name);
    let target = format!("{}?appName={app}", db.uri);
    let sample = common::sample();
    let args = ["load", "-p", s(&sample), "-m", STM, "-n", "flux"];
    let fail_point = common::FailPoint::take(&uri);
    fail_point.fail(&app, "renameCollection", None);
    let r = env.run_on(&target, &args);
    fail_point.off();
    drop(fail_point);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    // It names the load's own staging collection.
    assert!(
        r.stderr.contains("'_load@") && r.stderr.contains(".flux'"),
        "{}",
        r.stderr
    );
    // Nothing of it shows, nothing is left over.
    assert!(!names(&database(&uri, &db.name)).contains(&"flux".to_string()));
    let audit = env.run_on(&db.uri, &["db", "-a"]).ok();
    assert!(
        audit.stdout.starts_with("ok: 0 datasets,"),
        "{}",
        audit.stdout
    );
    // And the same load now succeeds.
    env.run_on(&db.uri, &args).ok();
    assert_eq!(
        env.run_on(&db.uri, &["db", "-l", "collections"])
            .ok()
            .stdout,
        "flux\n"
    );
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn an_append_whose_merge_fails_is_reported_and_finished_by_the_next_load() {
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let env = Env::new();
    let app = format!("fp_{}", db.name);
    let target = format!("{}?appName={app}", db.uri);
    let grid = Grid::NORTH_AMERICA.with_window(-10.0, 10.0, -5.0, 5.0);
    let a = env.grid_file("a.mat", &grid, 4);
    let b = env.grid_file("b.mat", &grid, 4);
    let c = env.grid_file("c.mat", &grid, 2);
    let load = |uri: &str, p: &Path, ts: &str| {
        env.run_on(
            uri,
            &[
                "load",
                "-p",
                s(p),
                "-m",
                STM,
                "-n",
                "flux",
                "-o",
                &format!("timestamp={ts}"),
            ],
        )
    };
    // The reference: the same loads into another database, uninterrupted.
    let reference = FreshDb::new(&uri);
    load(&reference.uri, &a, "2004-01-01T00:00:00").ok();
    load(&reference.uri, &b, "2004-01-01T12:00:00").ok();
    let want = env
        .run_on(&reference.uri, &["export", "-n", "flux"])
        .ok()
        .stdout;
    load(&reference.uri, &c, "2004-01-02T12:00:00").ok();
    let want_with_c = env
        .run_on(&reference.uri, &["export", "-n", "flux"])
        .ok()
        .stdout;
    assert_ne!(want, want_with_c);

    load(&db.uri, &a, "2004-01-01T00:00:00").ok();
    // The merge is an `aggregate`, as are the counts before it: skip those
    // until the command that fails is the merge (its error names the
    // load's own staging collection `_load@HASH.flux`).
    let mut skip = 0;
    let r = loop {
        let fail_point = common::FailPoint::take(&uri);
        fail_point.fail(&app, "aggregate", Some(skip));
        let r = load(&target, &b, "2004-01-01T12:00:00");
        fail_point.off();
        drop(fail_point);
        assert_eq!(r.code, 1, "skipping {skip} aggregates: {}", r.stderr);
        if r.stderr.contains("'_load@") {
            break r;
        }
        // Failed before writing anything: the dataset is as it was.
        env.run_on(&db.uri, &["db", "-a"]).ok();
        skip += 1;
        assert!(skip < 10, "no aggregate of the append was its merge");
    };
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("finishes it"), "{}", r.stderr);
    // Not complete, and said so, naming the file and how it is finished.
    let audit = env.run_on(&db.uri, &["db", "-a"]);
    assert_eq!(audit.code, 3, "{}", audit.stdout);
    assert!(
        audit.stdout.contains("'flux' has no metadata entry")
            && audit.stdout.contains("b.mat was cut short")
            && audit.stdout.contains("finishes it"),
        "{}",
        audit.stdout
    );
    // The next load, of another file, finishes it first (from what the
    // append kept, without b.mat), then appends its own.
    let other = load(&db.uri, &c, "2004-01-02T12:00:00").ok();
    assert!(
        other
            .stderr
            .contains("b.mat into 'flux' was cut short; it is finished"),
        "{}",
        other.stderr
    );
    assert_eq!(
        env.run_on(&db.uri, &["export", "-n", "flux"]).ok().stdout,
        want_with_c
    );
    // b.mat is loaded, once.
    let again = load(&db.uri, &b, "2004-01-01T12:00:00").ok();
    assert!(again.stdout.starts_with("skipped "), "{}", again.stdout);
    let audit = env.run_on(&db.uri, &["db", "-a"]).ok();
    assert!(
        audit.stdout.starts_with("ok: 1 dataset,"),
        "{}",
        audit.stdout
    );
    // The same metadata, but for when each file was loaded and how long it took.
    let metadata = |uri: &str| {
        let mut m: serde_json::Value =
            serde_json::from_str(&env.run_on(uri, &["db", "-n", "flux"]).ok().stdout).unwrap();
        for f in m["files"].as_array_mut().unwrap() {
            let f = f.as_object_mut().unwrap();
            f.remove("loaded_at");
            f.remove("seconds");
        }
        m
    };
    assert_eq!(metadata(&db.uri), metadata(&reference.uri));
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn flux_servers_geometry_collection_follows_its_dataset() {
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let raw = database(&uri, &db.name);
    let env = Env::new();
    let a = points_file(&env, "a.mat", 40, 166);
    // The same sequence of positions, 20 more: a load of it adds points.
    let b = points_file(&env, "b.mat", 60, 180);
    env.run_on(&db.uri, &["load", "-p", s(&a), "-m", XCO2, "-n", "pts"])
        .ok();
    // The load made it (flux-server dies making it itself).
    let cells = checked_geom(&raw, "pts");

    // Not a leftover to `db -a`, nor to `--fix`.
    let audit = env.run_on(&db.uri, &["db", "-a"]).ok();
    assert!(!audit.stdout.contains("_geom_"), "{}", audit.stdout);
    let fixed = env.run_on(&db.uri, &["db", "-a", "--fix"]).ok();
    assert!(!fixed.stdout.contains("_geom_"), "{}", fixed.stdout);
    assert!(names(&raw).contains(&"_geom_pts".to_string()));

    // A reload with the same coordinates keeps it.
    env.run_on(
        &db.uri,
        &["load", "-p", s(&a), "-m", XCO2, "-n", "pts", "--force"],
    )
    .ok();
    assert_eq!(
        raw.collection::<Document>("_geom_pts")
            .count_documents(doc! {})
            .run()
            .unwrap() as usize,
        cells
    );

    // `rename` moves it with the coordinates, and with an index a user
    // gave it (a 2dsphere index, as flux-server's own code would).
    raw.collection::<Document>("_geom_pts")
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "ll": "2dsphere" })
                .build(),
        )
        .run()
        .unwrap();
    env.run_on(&db.uri, &["rename", "-n", "pts", "-r", "points"])
        .ok();
    let n = names(&raw);
    assert!(!n.contains(&"_geom_pts".to_string()), "{n:?}");
    let moved = raw.collection::<Document>("_geom_points");
    assert_eq!(
        moved.count_documents(doc! {}).run().unwrap() as usize,
        cells
    );
    let indexes = moved.list_index_names().run().unwrap();
    assert!(
        indexes.iter().any(|i| i.contains("2dsphere")),
        "{indexes:?}"
    );

    // A load that adds points changes coord_index: the cache is made
    // again from the new coordinates.
    env.run_on(&db.uri, &["load", "-p", s(&b), "-m", XCO2, "-n", "points"])
        .ok();
    assert!(checked_geom(&raw, "points") > cells);

    // `remove` drops it.
    env.run_on(&db.uri, &["remove", "-n", "points"]).ok();
    assert!(
        names(&raw).iter().all(|n| !n.starts_with("_geom_")),
        "{:?}",
        names(&raw)
    );

    // The cache of a dataset that is gone is reported, and `--fix` drops it.
    raw.collection::<Document>("_geom_gone")
        .insert_one(doc! { "ll": [0.5, 0.5], "idx": 0 })
        .run()
        .unwrap();
    let r = env.run_on(&db.uri, &["db", "-a"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.contains("'_geom_gone'"), "{}", r.stdout);
    let fixed = env.run_on(&db.uri, &["db", "-a", "--fix"]).ok();
    assert!(fixed.stdout.contains("_geom_gone"), "{}", fixed.stdout);
    env.run_on(&db.uri, &["db", "-a"]).ok();
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn documents_are_stored_in_id_order_whatever_the_batches() {
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let raw = database(&uri, &db.name);
    let env = Env::new();
    // About 0.9 MB a step: 24 steps are several 8 MiB inserts.
    let grid = Grid::GLOBAL_HALF_DEGREE.with_window(-180.0, 180.0, -20.0, 20.0);
    let late = env.grid_file("late.mat", &grid, 24);
    let early = env.grid_file("early.mat", &grid, 4);
    env.run_on(
        &db.uri,
        &[
            "load",
            "-p",
            s(&late),
            "-m",
            STM,
            "-n",
            "g",
            "-o",
            "timestamp=2004-07-01",
        ],
    )
    .ok();
    let ids = natural_ids(&raw, "g");
    assert_eq!(ids.len(), 24);
    let mut sorted = ids.clone();
    sorted.sort_by_key(|b| b.as_datetime().unwrap().timestamp_millis());
    assert_eq!(ids, sorted, "natural order of a fresh load");

    // Times added before the stored ones: still in time order.
    env.run_on(
        &db.uri,
        &[
            "load",
            "-p",
            s(&early),
            "-m",
            STM,
            "-n",
            "g",
            "-o",
            "timestamp=2004-06-30",
        ],
    )
    .ok();
    let ids = natural_ids(&raw, "g");
    assert_eq!(ids.len(), 28);
    let mut sorted = ids.clone();
    sorted.sort_by_key(|b| b.as_datetime().unwrap().timestamp_millis());
    // Every time once; the earlier ones where the server put them: NAME is
    // not rewritten (see docs/mongodb.md on order).
    assert_eq!(sorted.windows(2).filter(|w| w[0] == w[1]).count(), 0);
    // Read back through the tool in the same order.
    let exported: Vec<i64> = env
        .run_on(&db.uri, &["export", "-n", "g"])
        .ok()
        .json_lines()
        .iter()
        .map(|d| {
            let t = d["_id"]["$date"].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    let in_time_order: Vec<i64> = sorted
        .iter()
        .map(|b| b.as_datetime().unwrap().timestamp_millis())
        .collect();
    assert_eq!(exported, in_time_order);
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn a_forced_reload_of_points_replaces_them_in_place() {
    let uri = common::mongodb_uri();
    let mat = common::fixture("xco2.mat");
    let db = FreshDb::new(&uri);
    let raw = database(&uri, &db.name);
    let env = Env::new();
    env.run_on(&db.uri, &["load", "-p", s(&mat), "-m", XCO2, "-n", "x"])
        .ok();
    let before = natural_ids(&raw, "x");
    assert_eq!(before.len(), 1311);
    let export = env.run_on(&db.uri, &["export", "-n", "x"]).ok().stdout;
    env.run_on(
        &db.uri,
        &["load", "-p", s(&mat), "-m", XCO2, "-n", "x", "--force"],
    )
    .ok();
    // (Its speed is the benchmark's to show, not a test's.)
    assert_eq!(natural_ids(&raw, "x"), before, "same documents, same order");
    assert_eq!(
        env.run_on(&db.uri, &["export", "-n", "x"]).ok().stdout,
        export
    );
}

/// A URI of the auth server for `user:password` (percent-encoded here) and
/// database `db`, with `tail` (e.g. `?authSource=admin`) appended.
fn auth_uri(admin_uri: &str, user: &str, password: &str, db: &str, tail: &str) -> String {
    let rest = admin_uri.split_once("://").unwrap().1;
    let hosts = rest
        .rsplit_once('@')
        .map_or(rest, |(_, h)| h)
        .split(['/', '?'])
        .next()
        .unwrap();
    let enc: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("mongodb://{user}:{enc}@{hosts}/{db}{tail}")
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn authentication_works_and_a_wrong_password_fails_in_one_line() {
    let admin_uri = common::mongodb_test_uri(common::MONGODB_AUTH_URI);
    let dbname = common::fresh_db_name();
    let admin = Client::with_uri_str(&admin_uri).unwrap();
    let users = [("plain_user", "plainpass1"), ("odd_user", "p@ss:w%rd/?#[]")];
    for (user, pwd) in users {
        let _ = admin
            .database("admin")
            .run_command(doc! { "dropUser": user })
            .run();
        admin
            .database("admin")
            .run_command(doc! {
                "createUser": user,
                "pwd": pwd,
                "roles": [{ "role": "readWrite", "db": &dbname }],
            })
            .run()
            .unwrap();
    }
    let env = Env::new();
    let sample = common::sample();
    for (user, pwd) in users {
        let uri = auth_uri(&admin_uri, user, pwd, &dbname, "?authSource=admin");
        env.run_on(&uri, &["load", "-p", s(&sample), "-m", STM, "-n", user])
            .ok();
        let listed = env.run_on(&uri, &["db", "-l", "collections"]).ok().stdout;
        assert!(listed.contains(user), "{listed}");
        let r = env.run_on(&uri, &["db", "-a"]);
        assert!(!r.stdout.contains(pwd) && !r.stderr.contains(pwd));
    }

    // A wrong password: one line, the host, "authentication failed", no password.
    let (user, pwd) = users[1];
    let wrong = format!("{pwd}-wrong");
    let uri = auth_uri(&admin_uri, user, &wrong, &dbname, "?authSource=admin");
    let r = env.run_on(&uri, &["db", "-l", "collections"]);
    let host = uri.split_once('@').unwrap().1.split('/').next().unwrap();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains(host), "{}", r.stderr);
    assert!(r.stderr.contains("authentication failed"), "{}", r.stderr);
    assert!(!r.stderr.contains("collection"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("p@ss") && !r.stderr.contains("p%40ss"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("authSource=admin"), "{}", r.stderr);

    // The right password but no authSource: the user is looked up in the
    // URI's database, and the message says to add authSource=admin.
    let uri = auth_uri(&admin_uri, user, pwd, &dbname, "");
    let r = env.run_on(&uri, &["db", "-l", "collections"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("authentication failed"), "{}", r.stderr);
    assert!(r.stderr.contains("authSource=admin"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("p@ss") && !r.stderr.contains("p%40ss"),
        "{}",
        r.stderr
    );

    let _ = admin.database(&dbname).drop().run();
    for (user, _) in users {
        let _ = admin
            .database("admin")
            .run_command(doc! { "dropUser": user })
            .run();
    }
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn appends_merge_into_the_stored_summary_and_keep_the_statistics_of_what_is_stored() {
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let raw = database(&uri, &db.name);
    let env = Env::new();
    let grid = Grid::GLOBAL_HALF_DEGREE.with_window(-20.0, 20.0, -10.0, 10.0);
    let p = env.grid_file("g.mat", &grid, 8);
    let load = |ts: &str| {
        let o = format!("timestamp={ts}");
        env.run_on(
            &db.uri,
            &["load", "-p", s(&p), "-m", STM, "-n", "g", "-o", &o],
        )
        .ok();
    };
    load("2004-06-30T00:00:00");
    load("2004-07-01T00:00:00");
    // Every stored time from 2004-06-30T12 replaced by other values.
    load("2004-06-30T12:00:00");
    let summaries = raw
        .collection::<Document>("summary_stats")
        .count_documents(doc! { "_id": "g" })
        .run()
        .unwrap();
    assert_eq!(summaries, 1);
    let docs = env
        .run_on(&db.uri, &["export", "-n", "g"])
        .ok()
        .json_lines();
    assert_eq!(docs.len(), 16);
    let md = env.run_on(&db.uri, &["db", "-n", "g"]).ok().json();
    let want = common::reference_stats(&docs);
    for (k, w) in ["mean", "min", "max", "std", "median"].iter().zip(want) {
        let got = md["stats"]["values"][k].as_f64().unwrap();
        assert!(
            (got - w).abs() <= 1e-9 * w.abs().max(1.0),
            "stats.values.{k}: {got}, the stored values give {w}"
        );
    }
}
