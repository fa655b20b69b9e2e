//! MongoDB deployments that outgrow one server, against the real server
//! `scripts/with-test-env` starts: the ingest log's index, the server
//! selection timeout, and replacements through the driver's retryable
//! writes.

use crate::common;

use bson::{doc, Document};
use common::{Env, FreshDb};
use fluxpy::store::Store;
use fluxpy::synth::Grid;
use mongodb::sync::Client;

/// A 10 × 5 cell window.
fn small() -> Grid {
    Grid {
        x0: -120.0,
        x1: -110.0,
        y0: 30.0,
        y1: 35.0,
        res: 1.0,
    }
}

/// The key of every index of `_ingest_log`, through the driver's
/// `listIndexes`.
fn ingest_log_index_keys(uri: &str, db: &str) -> Vec<Document> {
    Client::with_uri_str(uri)
        .unwrap()
        .database(db)
        .collection::<Document>("_ingest_log")
        .list_indexes()
        .run()
        .unwrap()
        .map(|i| i.unwrap().keys)
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn the_ingest_log_has_its_index_on_the_dataset_name_once() {
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let env = Env::new();
    let a = env.grid_file("a.mat", &small(), 2);
    let b = env.grid_file("b.mat", &small(), 3);
    let expected = vec![doc! { "_id": 1 }, doc! { "name": 1, "_id": 1 }];
    let sorted = |mut keys: Vec<Document>| {
        keys.sort_by_key(|k| k.len());
        keys
    };
    env.run_on(&db.uri, &common::stm_load_args(&a, "a")).ok();
    assert_eq!(sorted(ingest_log_index_keys(&uri, &db.name)), expected);
    // Another process, another dataset, and a forced reload: each asks for
    // the index again, and none fails or adds a second one.
    env.run_on(&db.uri, &common::stm_load_args(&b, "b")).ok();
    let mut reload = common::stm_load_args(&a, "a");
    reload.push("--force");
    env.run_on(&db.uri, &reload).ok();
    assert_eq!(sorted(ingest_log_index_keys(&uri, &db.name)), expected);
    // One entry per file, the reload's replacing the first load's.
    assert_eq!(db.store.entry_ids("_ingest_log").unwrap().len(), 2);
}

/// A step of `cells` values, all `v` but the last (`v + i` for cell i): about
/// 9 bytes of BSON per value plus its index as key.
fn big_step(ms: i64, v: f64, cells: usize) -> Document {
    let values: Vec<f64> = (0..cells).map(|i| v + i as f64).collect();
    doc! { "_id": bson::DateTime::from_millis(ms), "values": values }
}

/// Write twelve steps twice in one load into `name` of `store` and commit.
fn load_twice(store: &mut dyn Store, name: &str, cells: usize) -> fluxpy::error::Result<()> {
    let hour = 3_600_000;
    let mut load = store.begin_load(name)?;
    load.write(crate::common::docs(
        (0..12).map(|k| big_step(k * hour, 1.0, cells)).collect(),
    ))?;
    load.write(crate::common::docs(
        (0..12).map(|k| big_step(k * hour, 2.0, cells)).collect(),
    ))?;
    load.commit(crate::common::entries(
        doc! { "_id": name, "i": [[0.5, 0.5]] },
        doc! { "_id": name, "title": name, "gridded": true },
    ))
}

/// Every document of `name`, in natural order, through the driver.
fn natural(uri: &str, db: &str, name: &str) -> Vec<Document> {
    Client::with_uri_str(uri)
        .unwrap()
        .database(db)
        .collection::<Document>(name)
        .find(doc! {})
        .run()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn replacements_are_retried_writes_that_survive_a_stepdown_error() {
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    // A connection of its own name, so that the fail point hits only it;
    // it checks the server every half second (not 10 s) once an error
    // marks it unknown, so that the retry finds it soon.
    let app = "replace-retry-test";
    let sep = if uri.contains('?') { '&' } else { '?' };
    let app_uri = format!("{uri}{sep}appName={app}&heartbeatFrequencyMS=500");
    let mut store = fluxpy::store::mongo::Mongo::open_database(&app_uri, &db.name).unwrap();
    let turn = common::FailPoint::take(&uri);
    let admin = Client::with_uri_str(&uri).unwrap().database("admin");
    // The server answers the replacements' `update` as a primary stepping
    // down does (PrimarySteppedDown, labelled retryable), `times` times.
    let arm = |times: i32| {
        admin
            .run_command(doc! {
                "configureFailPoint": "failCommand",
                "mode": { "times": times },
                "data": {
                    "failCommands": ["update"],
                    "errorCode": 189,
                    "errorLabels": ["RetryableWriteError"],
                    "appName": app,
                },
            })
            .run()
            .unwrap();
    };
    // Twelve times: the driver sends a write twice, and manage sends it
    // five times in all (see `retrying`), so ten answers are ridden out and
    // the eleventh fails the load, which leaves nothing.
    arm(12);
    let e = load_twice(&mut store, "failed", 70_000)
        .unwrap_err()
        .to_string();
    assert!(e.contains("_load.failed"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    turn.off();
    assert!(!store.exists("failed").unwrap());
    // Once: the driver sends the write again and the load succeeds, whole.
    arm(1);
    load_twice(&mut store, "retried", 70_000).unwrap();
    turn.off();
    let stored = natural(&uri, &db.name, "retried");
    assert_eq!(stored.len(), 12);
    for (k, d) in stored.iter().enumerate() {
        assert_eq!(d, &big_step(k as i64 * 3_600_000, 2.0, 70_000), "step {k}");
    }
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn times_written_twice_in_one_load_are_replaced_in_place() {
    let uri = common::mongodb_uri();
    let mut db = FreshDb::new(&uri);
    // Twelve steps of about 1 MB, each written twice: the first eight go
    // in one insert (8 MiB) before their second writing arrives, so those
    // are replaced in the staging collection, the rest deduplicated before
    // sending.
    let hour = 3_600_000;
    load_twice(&mut db.store, "twice", 70_000).unwrap();
    let stored = natural(&uri, &db.name, "twice");
    // Natural order is `_id` order, each time once, with its second writing.
    let times: Vec<i64> = stored
        .iter()
        .map(|d| d.get_datetime("_id").unwrap().timestamp_millis())
        .collect();
    assert_eq!(times, (0..12).map(|k| k * hour).collect::<Vec<_>>());
    for (k, d) in stored.iter().enumerate() {
        assert_eq!(d, &big_step(k as i64 * hour, 2.0, 70_000), "step {k}");
    }
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn read_only_commands_never_ask_for_the_ingest_log_index() {
    let admin_uri = common::mongodb_test_uri(common::MONGODB_AUTH_URI);
    let dbname = common::fresh_db_name();
    let admin = Client::with_uri_str(&admin_uri).unwrap();
    let env = Env::new();
    let a = env.grid_file("a.mat", &small(), 2);
    let admin_db = fluxpy::store::mongo::with_database(&admin_uri, &dbname);
    env.run_on(&admin_db, &common::stm_load_args(&a, "a")).ok();
    // Without the index, as before this version: a reader must not need it.
    admin
        .database(&dbname)
        .collection::<Document>("_ingest_log")
        .drop_index("name_1__id_1")
        .run()
        .unwrap();
    let user = "ingest_reader";
    let _ = admin
        .database("admin")
        .run_command(doc! { "dropUser": user })
        .run();
    admin
        .database("admin")
        .run_command(doc! {
            "createUser": user,
            "pwd": "readerpass1",
            "roles": [{ "role": "read", "db": &dbname }],
        })
        .run()
        .unwrap();
    let rest = admin_uri.split_once("://").unwrap().1;
    let hosts = rest
        .rsplit_once('@')
        .map_or(rest, |(_, h)| h)
        .split(['/', '?'])
        .next()
        .unwrap();
    let reader = format!("mongodb://{user}:readerpass1@{hosts}/{dbname}?authSource=admin");
    for args in [
        &["db", "-l", "collections"][..],
        &["db", "-a"],
        &["db", "-n", "a"],
        &["export", "-n", "a"],
    ] {
        let r = env.run_on(&reader, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
    let keys = ingest_log_index_keys(&admin_db, &dbname);
    assert_eq!(keys, vec![doc! { "_id": 1 }]);
    admin.database(&dbname).drop().run().unwrap();
}
