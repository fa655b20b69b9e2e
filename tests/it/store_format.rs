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
