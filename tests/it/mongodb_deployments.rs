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
