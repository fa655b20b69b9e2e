//! The embedded store keeps large documents in a compact form; stores whose
//! documents are plain zstd-compressed BSON (as written before that form
//! existed) must read back and take appends the same.

use crate::common;

use common::{sample, Env};
use serde_json::Value;

const STM: &str = "SpatioTemporalMatrix";

/// The BSON document of an exported step, built with the bson crate.
fn step_bson(d: &Value) -> Vec<u8> {
    let ms = chrono::DateTime::parse_from_rfc3339(d["_id"]["$date"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let values: Vec<bson::Bson> = d["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().map_or(bson::Bson::Null, bson::Bson::Double))
        .collect();
    bson::to_vec(&bson::doc! { "_id": bson::DateTime::from_millis(ms), "values": values }).unwrap()
}

#[test]
fn a_store_of_plain_zstd_documents_reads_and_appends_as_before() {
    let env = Env::new();
    let p = sample();
    let p = p.to_str().unwrap();
    env.run(&["load", "-p", p, "-m", STM, "-n", "s"]).ok();
    let exported = env.run(&["export", "-n", "s"]).ok().stdout;
    let docs: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    // Rewrite every document the old way: zstd of its BSON.
    let c = rusqlite::Connection::open(env.db()).unwrap();
    let rows: Vec<(Vec<u8>, Vec<u8>)> = {
        let mut st = c
            .prepare("SELECT key, doc FROM \"c:s\" ORDER BY key")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(rows.len(), docs.len());
    for ((key, now), d) in rows.iter().zip(&docs) {
        let old = zstd::bulk::compress(&step_bson(d), 1).unwrap();
        assert_ne!(&old, now, "the store keeps another form today");
        c.execute(
            "UPDATE \"c:s\" SET doc = ?1 WHERE key = ?2",
            rusqlite::params![old, key],
        )
        .unwrap();
    }
    drop(c);
    assert_eq!(env.run(&["export", "-n", "s"]).ok().stdout, exported);

    // An append to it, replacing half its times: the old documents that
    // stay read back as they were.
    env.run(&[
        "load",
        "-p",
        p,
        "-m",
        STM,
        "-n",
        "s",
        "-o",
        "timestamp=2004-06-30T12:00:00",
    ])
    .ok();
    let after = env.run(&["export", "-n", "s"]).ok().stdout;
    let first_four: Vec<&str> = exported.lines().take(4).collect();
    assert_eq!(after.lines().take(4).collect::<Vec<_>>(), first_four);
    assert_eq!(after.lines().count(), 12);
}

/// A new embedded store notes the stored format's version (SQLite's
/// `user_version`, read back by SQLite itself); one noted as newer than
/// this build reads is refused by name, and left byte for byte as it was.
#[test]
fn a_store_of_a_newer_format_version_is_refused_by_name() {
    let env = Env::new();
    let p = sample();
    env.load(&p, STM, "casa", &[]).ok();
    let version = |c: &rusqlite::Connection| -> i64 {
        c.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };
    let c = rusqlite::Connection::open(env.db()).unwrap();
    assert_eq!(version(&c), 2);
    // A store of version 1 (the compact form without 8-byte integers) is
    // read as it is, and the next load notes the version it writes.
    c.pragma_update(None, "user_version", 1).unwrap();
    drop(c);
    env.run(&["export", "-n", "casa"]).ok();
    env.load(&p, STM, "casa_too", &[]).ok();
    let c = rusqlite::Connection::open(env.db()).unwrap();
    assert_eq!(version(&c), 2);
    c.pragma_update(None, "user_version", 3).unwrap();
    drop(c);
    let before = std::fs::read(env.db()).unwrap();
    for args in [
        vec!["db", "-l", "collections"],
        vec!["export", "-n", "casa"],
    ] {
        let r = env.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{}", r.stderr);
        assert!(
            lines[0].contains("store format version 3") && lines[0].contains("newer manage"),
            "{}",
            r.stderr
        );
    }
    let r = env.load(&p, STM, "other", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("store format version 3"), "{}", r.stderr);
    assert_eq!(std::fs::read(env.db()).unwrap(), before);
}

/// The same on MongoDB: the first load notes `{_id: "format", version: 2}`
/// in `_meta` (read back with the driver), which `db -a` does not report;
/// a newer version is refused by name.
#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn a_mongodb_database_of_a_newer_format_version_is_refused_by_name() {
    use mongodb::bson::doc;
    let db = common::FreshDb::new(&common::mongodb_uri());
    let env = Env::new();
    let p = sample();
    let load = |name: &str| {
        env.run_on(
            &db.uri,
            &["load", "-p", p.to_str().unwrap(), "-m", STM, "-n", name],
        )
    };
    load("casa").ok();
    let client = mongodb::sync::Client::with_uri_str(&db.uri).unwrap();
    let meta = client
        .database(&db.name)
        .collection::<bson::Document>("_meta");
    let noted = meta
        .find_one(doc! { "_id": "format" })
        .run()
        .unwrap()
        .unwrap();
    assert_eq!(
        noted
            .get_i64("version")
            .ok()
            .or(noted.get_i32("version").ok().map(i64::from)),
        Some(2)
    );
    env.run_on(&db.uri, &["db", "-a"]).ok();
    meta.update_one(doc! { "_id": "format" }, doc! { "$set": { "version": 3 } })
        .run()
        .unwrap();
    let r = env.run_on(&db.uri, &["db", "-l", "collections"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("store format version 3"), "{}", r.stderr);
    let r = load("other");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("store format version 3"), "{}", r.stderr);
}
