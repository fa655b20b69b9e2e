//! Appends merge into the dataset's stored summary instead of reading every
//! stored document: the statistics after appends and replacements must be
//! those of the documents the store holds, computed here from an export.

use crate::common;

use common::{sample, Env};
use serde_json::{json, Value};

const STM: &str = "SpatioTemporalMatrix";

/// mean, min, max, sample std and median of every stored value, computed
/// from the exported documents (plain sums and a sort, not the tool's table).
fn reference_stats(env: &Env, name: &str) -> [f64; 5] {
    common::reference_stats(&env.run(&["export", "-n", name]).ok().json_lines())
}

fn assert_stats_of_the_store(env: &Env, name: &str) {
    let md = env.run(&["db", "-n", name]).ok().json();
    let s = &md["stats"]["values"];
    let want = reference_stats(env, name);
    for (k, w) in ["mean", "min", "max", "std", "median"].iter().zip(want) {
        let got = s[k].as_f64().unwrap();
        assert!(
            (got - w).abs() <= 1e-9 * w.abs().max(1.0),
            "stats.values.{k}: {got}, the stored values give {w}"
        );
    }
}

fn load(env: &Env, name: &str, timestamp: &str, force: bool) {
    let p = sample();
    let o = format!("timestamp={timestamp}");
    let mut args = vec![
        "load",
        "-p",
        p.to_str().unwrap(),
        "-m",
        STM,
        "-n",
        name,
        "-o",
        &o,
    ];
    if force {
        args.push("--force");
    }
    env.run(&args).ok();
}

fn summary_rows(env: &Env) -> i64 {
    let c = rusqlite::Connection::open(env.db()).unwrap();
    c.query_row("SELECT count(*) FROM \"c:summary_stats\"", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn appends_and_replacements_keep_the_statistics_of_what_is_stored() {
    let env = Env::new();
    load(&env, "s", "2004-06-30T00:00:00", false);
    assert_eq!(summary_rows(&env), 1, "a load writes the dataset's summary");
    assert_stats_of_the_store(&env, "s");
    // New times only.
    load(&env, "s", "2004-07-01T00:00:00", false);
    assert_stats_of_the_store(&env, "s");
    // Stored times replaced by other values: the sample's steps shifted by
    // 12 hours, so the 8 stored steps from 2004-06-30T12 get other columns.
    load(&env, "s", "2004-06-30T12:00:00", false);
    assert_eq!(
        env.run(&["db", "-l", "collections", "-x"]).ok().stdout,
        "s (16 records)\n"
    );
    assert_stats_of_the_store(&env, "s");
    let md = env.run(&["db", "-n", "s"]).ok().json();
    assert_eq!(
        md["dates"],
        json!(["2004-06-30T00:00:00", "2004-07-01T21:00:00"])
    );
}

#[test]
fn a_store_without_a_summary_gets_one_from_its_next_load() {
    let env = Env::new();
    load(&env, "s", "2004-06-30T00:00:00", false);
    load(&env, "s", "2004-07-01T00:00:00", false);
    // A store written before summaries were kept: no entry.
    let c = rusqlite::Connection::open(env.db()).unwrap();
    c.execute("DELETE FROM \"c:summary_stats\"", []).unwrap();
    drop(c);
    assert_eq!(summary_rows(&env), 0);
    load(&env, "s", "2004-06-30T06:00:00", false);
    assert_eq!(summary_rows(&env), 1);
    assert_stats_of_the_store(&env, "s");
    // And from then on appends merge into it.
    load(&env, "s", "2004-07-02T00:00:00", false);
    assert_stats_of_the_store(&env, "s");
}

#[test]
fn the_summary_follows_remove_and_rename() {
    let env = Env::new();
    load(&env, "s", "2004-06-30T00:00:00", false);
    env.run(&["rename", "-n", "s", "-r", "t"]).ok();
    load(&env, "t", "2004-07-01T00:00:00", false);
    assert_stats_of_the_store(&env, "t");
    env.run(&["remove", "-n", "t"]).ok();
    assert_eq!(summary_rows(&env), 0, "remove takes the summary too");
    // A new dataset of the same name starts from nothing.
    load(&env, "t", "2004-08-01T00:00:00", false);
    let md: Value = env.run(&["db", "-n", "t"]).ok().json();
    assert_eq!(md["dates"][0], json!("2004-08-01T00:00:00"));
    assert_stats_of_the_store(&env, "t");
}
